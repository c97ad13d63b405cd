//! SKELETON (helper B implements): attestation statement formats (§8) and certificate chains
//! verified against configured trust anchors (never a root found inside x5c).
use super::authdata::AuthenticatorData;
use super::cbor::Value;
use super::cose::CoseAlgorithm;

/// The attestation statement formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `packed`
    Packed,
    /// `fido-u2f`
    FidoU2f,
    /// `none`
    None,
    /// `tpm`
    Tpm,
    /// `android-key`
    AndroidKey,
    /// `apple`
    Apple,
    /// `android-safetynet` (parsed and reported, never trusted)
    AndroidSafetyNet,
}

impl Format {
    /// The WebAuthn format identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Packed => "packed",
            Self::FidoU2f => "fido-u2f",
            Self::None => "none",
            Self::Tpm => "tpm",
            Self::AndroidKey => "android-key",
            Self::Apple => "apple",
            Self::AndroidSafetyNet => "android-safetynet",
        }
    }
}

/// How far the attestation establishes where the key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The chain reaches a configured anchor.
    Hardware,
    /// Self attestation: signed by the credential key itself.
    SelfAttested,
    /// No attestation, or one that cannot be tied to a configured anchor.
    None,
}

impl Trust {
    /// `hardware`, `self` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::SelfAttested => "self",
            Self::None => "none",
        }
    }
}

/// A configured trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// A name for reports (file name).
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// If set, only authenticators with these AAGUIDs may chain to it.
    pub aaguids: Option<Vec<[u8; 16]>>,
}

/// The configured anchors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    /// All anchors.
    pub anchors: Vec<Anchor>,
}

/// What the relying party accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// Algorithms accepted for statement signatures and credential keys.
    pub algorithms: Vec<CoseAlgorithm>,
}

/// Android Key Attestation details worth recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidKeyInfo {
    /// attestationSecurityLevel: software, trusted_environment or strongbox.
    pub security_level: String,
    /// userAuthType from the TEE-enforced list, if present.
    pub user_auth_type: Option<u64>,
}

/// The result of verifying an attestation statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationVerdict {
    /// The format.
    pub format: Format,
    /// The trust established.
    pub trust: Trust,
    /// The anchor reached, if any.
    pub anchor: Option<String>,
    /// Android details.
    pub android: Option<AndroidKeyInfo>,
}

/// Everything a statement is verified over.
#[derive(Debug)]
pub struct StatementInput<'a> {
    /// `fmt`
    pub format: &'a str,
    /// `attStmt`
    pub att_stmt: &'a Value,
    /// Parsed authData (with attested credential data).
    pub auth_data: &'a AuthenticatorData,
    /// Raw authData bytes.
    pub auth_data_raw: &'a [u8],
    /// SHA-256 of clientDataJSON.
    pub client_data_hash: &'a [u8; 32],
}

/// Attestation problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttestationError {
    /// Unknown format.
    UnsupportedFormat,
}

impl AttestationError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "unsupported_format"
    }
}

impl std::fmt::Display for AttestationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

/// Verifies an attestation statement (§7.1 steps 19-21).
pub fn verify_statement(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, super::WebauthnError> {
    let _ = (input, anchors, policy, now);
    unimplemented!()
}
