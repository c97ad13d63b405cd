//! The verifier's error: one enum with a sub-enum per area (rustls style), each variant with a
//! stable reason code (`reject: <code>` in the CLI, `error.code` in the API).

use super::assertion::AssertionError;
use super::attestation::AttestationError;
use super::authdata::AuthDataError;
use super::browser_bound::BrowserBoundError;
use super::cbor::CborError;
use super::client_data::ClientDataError;
use super::cose::CoseError;
use super::registration::RegistrationError;

/// Why a WebAuthn response was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebauthnError {
    /// Malformed or non-canonical CBOR.
    Cbor(CborError),
    /// A COSE key that cannot be used, or a signature that does not verify.
    Cose(CoseError),
    /// Authenticator data malformed or failing a flag/hash rule.
    AuthData(AuthDataError),
    /// clientDataJSON malformed or not what was expected.
    ClientData(ClientDataError),
    /// The attestation statement or its certificate chain failed.
    Attestation(AttestationError),
    /// A registration ceremony rule failed.
    Registration(RegistrationError),
    /// An authentication (assertion) ceremony rule failed.
    Assertion(AssertionError),
    /// An SPC browser-bound key or its signature failed.
    BrowserBound(BrowserBoundError),
}

impl WebauthnError {
    /// The stable snake_case reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Cbor(e) => e.code(),
            Self::Cose(e) => e.code(),
            Self::AuthData(e) => e.code(),
            Self::ClientData(e) => e.code(),
            Self::Attestation(e) => e.code(),
            Self::Registration(e) => e.code(),
            Self::Assertion(e) => e.code(),
            Self::BrowserBound(e) => e.code(),
        }
    }
}

impl std::fmt::Display for WebauthnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Cbor(e) => write!(f, "CBOR: {e}"),
            Self::Cose(e) => write!(f, "COSE: {e}"),
            Self::AuthData(e) => write!(f, "authenticator data: {e}"),
            Self::ClientData(e) => write!(f, "clientDataJSON: {e}"),
            Self::Attestation(e) => write!(f, "attestation: {e}"),
            Self::Registration(e) => write!(f, "registration: {e}"),
            Self::Assertion(e) => write!(f, "assertion: {e}"),
            Self::BrowserBound(e) => write!(f, "browser-bound key: {e}"),
        }
    }
}

impl std::error::Error for WebauthnError {}

macro_rules! from_sub {
    ($($sub:ident => $variant:ident),*) => {$(
        impl From<$sub> for WebauthnError {
            fn from(e: $sub) -> Self {
                Self::$variant(e)
            }
        }
    )*};
}

from_sub!(CborError => Cbor, CoseError => Cose, AuthDataError => AuthData,
    ClientDataError => ClientData, AttestationError => Attestation,
    RegistrationError => Registration, AssertionError => Assertion,
    BrowserBoundError => BrowserBound);
