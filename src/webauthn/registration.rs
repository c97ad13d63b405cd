//! SKELETON (helper A implements): the registration ceremony (§7.1).
use super::attestation::{AndroidKeyInfo, AttestationPolicy, Format, Trust, TrustAnchors};
use super::cose::CoseAlgorithm;

/// A relying party as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// Acceptable RP IDs (usually one).
    pub ids: Vec<String>,
    /// Exact allowed origins.
    pub origins: Vec<String>,
    /// Allowed top origins for cross-origin (iframe) ceremonies; empty refuses crossOrigin.
    pub top_origins: Vec<String>,
}

/// What the relying party expects of one registration.
#[derive(Debug, Clone)]
pub struct RegistrationExpectations<'a> {
    /// The relying party.
    pub rp: &'a RelyingParty,
    /// The challenge exactly as it must appear in clientDataJSON (base64url).
    pub challenge: &'a str,
    /// UV required (the default for payments).
    pub require_user_verification: bool,
    /// Attestation policy (algorithms).
    pub policy: &'a AttestationPolicy,
}

/// The bytes of a registration response.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationInput<'a> {
    /// clientDataJSON, exact bytes.
    pub client_data_json: &'a [u8],
    /// attestationObject (CBOR).
    pub attestation_object: &'a [u8],
}

/// A verified registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationVerdict {
    /// Attestation format.
    pub format: Format,
    /// Trust level.
    pub trust: Trust,
    /// Anchor reached.
    pub anchor: Option<String>,
    /// AAGUID.
    pub aaguid: [u8; 16],
    /// UV flag.
    pub user_verified: bool,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backup_state: bool,
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// COSE public key bytes, to store.
    pub public_key_cbor: Vec<u8>,
    /// Its algorithm.
    pub alg: CoseAlgorithm,
    /// Initial signature counter.
    pub sign_count: u32,
    /// Android details.
    pub android: Option<AndroidKeyInfo>,
}

/// Registration ceremony problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Placeholder.
    Unspecified,
}

impl RegistrationError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "registration_failed"
    }
}

impl std::fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Verifies a registration response.
pub fn verify_registration(
    input: RegistrationInput<'_>,
    expect: &RegistrationExpectations<'_>,
    anchors: &TrustAnchors,
    now: time::OffsetDateTime,
) -> Result<RegistrationVerdict, super::WebauthnError> {
    let _ = (input, expect, anchors, now);
    unimplemented!()
}
