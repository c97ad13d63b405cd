//! SKELETON (helper A implements): authenticator data (WebAuthn L3 §6.1).
use super::cbor::Value;
use super::cose::CoseKey;

/// The flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flags(pub u8);

impl Flags {
    /// User present (bit 0).
    pub fn up(self) -> bool {
        self.0 & 0x01 != 0
    }
    /// User verified (bit 2).
    pub fn uv(self) -> bool {
        self.0 & 0x04 != 0
    }
    /// Backup eligible (bit 3).
    pub fn be(self) -> bool {
        self.0 & 0x08 != 0
    }
    /// Backup state (bit 4).
    pub fn bs(self) -> bool {
        self.0 & 0x10 != 0
    }
    /// Attested credential data included (bit 6).
    pub fn at(self) -> bool {
        self.0 & 0x40 != 0
    }
    /// Extension data included (bit 7).
    pub fn ed(self) -> bool {
        self.0 & 0x80 != 0
    }
}

/// Attested credential data (§6.5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestedCredential {
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// The credential id (at most 1023 bytes).
    pub credential_id: Vec<u8>,
    /// The credential public key.
    pub public_key: CoseKey,
    /// Its exact CBOR bytes as they appeared (stored for later assertions).
    pub public_key_cbor: Vec<u8>,
}

/// Parsed authenticator data.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthenticatorData {
    /// SHA-256 of the RP ID.
    pub rp_id_hash: [u8; 32],
    /// Flags.
    pub flags: Flags,
    /// Signature counter.
    pub sign_count: u32,
    /// Present when flag AT is set.
    pub attested: Option<AttestedCredential>,
    /// Present when flag ED is set (a CBOR map).
    pub extensions: Option<Value>,
}

/// Authenticator data problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthDataError {
    /// Too short or trailing bytes.
    Malformed,
}

impl AuthDataError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "authdata_malformed"
    }
}

impl std::fmt::Display for AuthDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl AuthenticatorData {
    /// Parses exactly (trailing bytes are an error).
    pub fn parse(bytes: &[u8]) -> Result<Self, super::WebauthnError> {
        let _ = bytes;
        unimplemented!()
    }
}
