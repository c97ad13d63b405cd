//! Secure Payment Confirmation display data: what the browser's dialog is asked to show,
//! bound into a payment challenge and compared with the assertion's (SPC §5).

/// What a Secure Payment Confirmation dialog was asked to show, beyond amount and payee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpcDisplay {
    /// payment.payeeOrigin, when the dialog shows it (SPC 2025: payeeName and/or payeeOrigin;
    /// payhsm always asks for the name, which it signs).
    pub payee_origin: Option<String>,
    /// payment.topOrigin.
    pub top_origin: String,
    /// payment.instrument.displayName.
    pub instrument_display_name: String,
    /// payment.instrument.icon.
    pub instrument_icon: String,
    /// payment.instrument.details (SPC 2025): a further line about the instrument, if asked.
    pub instrument_details: Option<String>,
    /// payment.paymentEntitiesLogos (SPC 2025): the logos of the payment entities, in the
    /// order the dialog shows them.
    pub entity_logos: Vec<SpcLogo>,
}

/// One of `paymentEntitiesLogos`: an image and its label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpcLogo {
    /// `url`: an `https:` or `data:image/` URL.
    pub url: String,
    /// `label`: what the logo stands for.
    pub label: String,
}

/// The most logos a challenge may ask the dialog to show.
pub const MAX_SPC_LOGOS: usize = 4;
