//! WebAuthn Level 3 and Secure Payment Confirmation verification: a sans-io core.
//!
//! Bytes, values, an injected clock and configured trust anchors come in; a verdict or a typed
//! error comes out. Nothing here touches sockets, files, clocks, the store or the HSM, so every
//! function is fuzzable and every test pins its time.
//!
//! - [`cbor`]: a strict, bounded CBOR decoder (the subset WebAuthn uses).
//! - [`cose`]: COSE_Key parsing and signature verification.
//! - [`authdata`]: authenticator data (§6.1), flags, attested credential data.
//! - [`client_data`]: clientDataJSON (§5.8.1), including SPC's `payment` member.
//! - [`attestation`]: attestation statement formats (§8) and certificate chains to anchors.
//! - [`registration`]: the registration ceremony (§7.1).
//! - [`assertion`]: the authentication ceremony (§7.2) and SPC payment checks.

pub mod assertion;
pub mod attestation;
pub mod authdata;
pub mod browser_bound;
pub mod case;
pub mod cbor;
pub mod client_data;
pub mod cose;
mod error;
pub mod registration;
#[cfg(test)]
pub(crate) mod test_authenticator;

pub use error::WebauthnError;
