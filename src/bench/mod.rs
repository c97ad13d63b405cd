//! Load generation support.
//!
//! - [`authenticator`]: a software WebAuthn authenticator (also used by the end-to-end tests).

pub mod authenticator;
