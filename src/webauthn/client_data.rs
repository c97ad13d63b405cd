//! SKELETON (helper A implements): clientDataJSON (§5.8.1) and SPC's payment member.

/// SPC `payment` member of clientDataJSON (CollectedClientPaymentData).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentData {
    /// payment.rpId
    pub rp_id: Option<String>,
    /// payment.topOrigin
    pub top_origin: Option<String>,
    /// payment.payeeName
    pub payee_name: Option<String>,
    /// payment.payeeOrigin
    pub payee_origin: Option<String>,
    /// payment.total.currency
    pub total_currency: Option<String>,
    /// payment.total.value (a decimal string, as the browser sends it)
    pub total_value: Option<String>,
    /// payment.instrument.displayName
    pub instrument_display_name: Option<String>,
    /// payment.instrument.icon
    pub instrument_icon: Option<String>,
}

/// Parsed clientDataJSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    /// `type`
    pub kind: String,
    /// `challenge`, as the base64url string sent.
    pub challenge: String,
    /// `origin`
    pub origin: String,
    /// `crossOrigin` (absent = false)
    pub cross_origin: bool,
    /// `topOrigin`
    pub top_origin: Option<String>,
    /// `payment` (SPC)
    pub payment: Option<PaymentData>,
}

/// clientDataJSON problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientDataError {
    /// Not JSON or missing members.
    Malformed,
}

impl ClientDataError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "client_data_malformed"
    }
}

impl std::fmt::Display for ClientDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl ClientData {
    /// Parses the exact bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ClientDataError> {
        let _ = bytes;
        unimplemented!()
    }
}
