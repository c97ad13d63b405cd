//! Load generation support.
//!
//! - [`authenticator`]: a software WebAuthn authenticator (also used by the end-to-end tests).
//! - [`pans`]: unique Luhn-valid test PANs, never printed.

pub mod authenticator;
pub mod pans;
