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
pub(crate) use signer::sign_compact;
pub use signer::{AuthorizationSigner, SignedJws};

/// Signing failed, or a signing key could not be proven: the HSM's or JOSE's error is the
/// source.
#[derive(Debug)]
#[non_exhaustive]
pub enum SignError {
    /// The HSM failed while `doing` something with the key `label`.
    Hsm {
        /// What was being done, e.g. `sign`.
        doing: &'static str,
        /// The key's label in the token.
        label: String,
        /// The HSM's error.
        source: crate::keys::HsmError,
    },
    /// The token's signature does not verify under the key's public key (mismatched key pair
    /// or a faulty token): it is never handed out.
    SignatureDoesNotVerify {
        /// The key's label in the token.
        label: String,
    },
    /// The key in the token is not the one the store records.
    NotTheRecordedKey {
        /// The key's label in the token.
        label: String,
        /// The recorded key id (RFC 7638 thumbprint).
        kid: String,
    },
    /// The claims or the JWKS could not be encoded.
    Jose(JoseError),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hsm { doing, label, .. } => {
                write!(f, "authorization key {label:?}: the HSM failed to {doing}")
            }
            Self::SignatureDoesNotVerify { label } => write!(
                f,
                "authorization key {label:?}: the token's signature does not verify under its \
                 public key (mismatched key pair or a faulty token)"
            ),
            Self::NotTheRecordedKey { label, kid } => write!(
                f,
                "signing key {label:?} in the token is not the recorded key {kid}"
            ),
            Self::Jose(_) => f.write_str("the authorization could not be encoded"),
        }
    }
}

impl std::error::Error for SignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Hsm { source, .. } => Some(source),
            Self::Jose(e) => Some(e),
            Self::SignatureDoesNotVerify { .. } | Self::NotTheRecordedKey { .. } => None,
        }
    }
}
