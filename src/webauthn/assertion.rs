//! SKELETON (helper A implements): the authentication ceremony (§7.2) and SPC payment checks.
use super::registration::RelyingParty;

/// A registered credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// COSE public key bytes.
    pub public_key_cbor: Vec<u8>,
    /// Last accepted signature counter.
    pub sign_count: u32,
    /// BE recorded at registration.
    pub backup_eligible: bool,
}

/// Which clientData type is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssertionType {
    /// `webauthn.get`
    Get,
    /// `payment.get` (Secure Payment Confirmation)
    PaymentGet,
}

/// What the browser was asked to display (SPC); every member given must match exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExpectedPayment {
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
    /// payment.total.value
    pub total_value: Option<String>,
    /// payment.instrument.displayName
    pub instrument_display_name: Option<String>,
    /// payment.instrument.icon
    pub instrument_icon: Option<String>,
}

/// What the relying party expects of one assertion.
#[derive(Debug, Clone)]
pub struct AssertionExpectations<'a> {
    /// The relying party.
    pub rp: &'a RelyingParty,
    /// The challenge exactly as it must appear in clientDataJSON.
    pub challenge: &'a str,
    /// Acceptable types.
    pub types: &'a [AssertionType],
    /// UV required (the default for payments).
    pub require_user_verification: bool,
    /// SPC: what must be in clientData.payment (required when the type is payment.get).
    pub payment: Option<&'a ExpectedPayment>,
}

/// The bytes of an assertion.
#[derive(Debug, Clone, Copy)]
pub struct AssertionInput<'a> {
    /// The credential id the client used.
    pub credential_id: &'a [u8],
    /// clientDataJSON, exact bytes.
    pub client_data_json: &'a [u8],
    /// authenticatorData.
    pub authenticator_data: &'a [u8],
    /// signature.
    pub signature: &'a [u8],
}

/// A verified assertion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssertionVerdict {
    /// The counter to store (compare-and-set against the stored one).
    pub sign_count: u32,
    /// UV flag.
    pub user_verified: bool,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backup_state: bool,
    /// The clientData type seen.
    pub kind: AssertionType,
}

/// Assertion ceremony problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AssertionError {
    /// Placeholder.
    Unspecified,
}

impl AssertionError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "assertion_failed"
    }
}

impl std::fmt::Display for AssertionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Verifies an assertion against a stored credential.
pub fn verify_assertion(
    input: AssertionInput<'_>,
    expect: &AssertionExpectations<'_>,
    stored: &StoredCredential,
) -> Result<AssertionVerdict, super::WebauthnError> {
    let _ = (input, expect, stored);
    unimplemented!()
}
