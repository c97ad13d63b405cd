//! Secure Payment Confirmation display data: what the browser's dialog is asked to show,
//! bound into a payment challenge and compared with the assertion's (SPC §5).

/// What a Secure Payment Confirmation dialog was asked to show, beyond amount and payee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpcDisplay {
    /// payment.payeeOrigin.
    pub payee_origin: String,
    /// payment.topOrigin.
    pub top_origin: String,
    /// payment.instrument.displayName.
    pub instrument_display_name: String,
    /// payment.instrument.icon.
    pub instrument_icon: String,
}
