//! JOSE for payment authorizations: compact JWS (ES256), JWK / JWKS, RFC 7638 thumbprints, and
//! the HSM-backed authorization signer.
//!
//! - [`jwk`]: EC P-256 JWKs, strict JWKS parsing, thumbprints. Sans-io.
//! - [`jws`]: compact JWS encoding and the strict ES256 verifier. Sans-io.
//! - [`signer`]: [`AuthorizationSigner`], the I/O shell that signs through the HSM.
//! - [`error`]: [`JoseError`] and its stable codes.

pub mod error;
pub mod jwk;
pub mod jws;
mod signer;

pub use error::{FormatError, JoseError, JwksError, TimeError};
pub use jwk::{thumbprint, Jwk, Jwks};
pub use jws::{encode, verify_compact, verify_compact_with_leeway, verify_signature, SigningInput};
pub use signer::{AuthorizationSigner, SignedJws};

/// Signing failed (HSM unavailable or the claims could not be encoded).
#[derive(Debug)]
pub struct SignError(pub String);

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignError {}
