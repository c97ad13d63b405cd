//! The key hierarchy over PKCS#11.
//!
//! - KEK: AES-256 inside the token (sensitive, never extractable); see [`Hsm`].
//! - Data keys: 32 random bytes per [`KeyVersion`], stored only as [`WrappedDataKey`]
//!   (AES-GCM under the KEK, computed by the HSM). Unwrapped once at start into a
//!   [`DataKeyRing`] held in locked, zeroized memory; HKDF-SHA256 derives the PAN-encryption
//!   and PAN-fingerprint subkeys. The HSM is called once per key version, never once per PAN.
//! - Signing keys: EC P-256 generated in the token, never extractable (audit checkpoints now,
//!   payment authorizations later).

mod datakeys;
mod hsm;
#[doc(hidden)]
pub mod primitives;
mod purpose;
mod selftest;

pub use datakeys::{DataKeyMaterial, DataKeyRing, KeyError, SharedRing};
pub use hsm::{EcPublicKey, FreeSlot, Hsm, HsmConfig, HsmError, Module, Pin, TokenIdentity};
pub use purpose::KeyPurpose;
pub use selftest::{run_known_answer_tests, SelfTestError};

/// A data key version. Versions start at 1 and only grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyVersion(pub u32);

/// A keyed HMAC-SHA256 of a PAN within a domain, under one key version's fingerprint subkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

/// A PAN and expiry sealed with AES-256-GCM under a data key version.
/// AAD binds the token, the domain and the key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedPan {
    /// The data key version that sealed it.
    pub key_version: KeyVersion,
    /// The 96-bit GCM nonce, random per record.
    pub nonce: [u8; 12],
    /// Ciphertext with the 16-byte tag appended.
    pub ciphertext: Vec<u8>,
}

/// State of a data key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKeyState {
    /// Seals new records.
    Active,
    /// Opens existing records only.
    DecryptOnly,
    /// Not loaded: no record is sealed under it; its wrapped form is kept.
    Retired,
    /// Its wrapped form was erased.
    Destroyed,
}

impl DataKeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::DecryptOnly => "decrypt_only",
            Self::Retired => "retired",
            Self::Destroyed => "destroyed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "decrypt_only" => Some(Self::DecryptOnly),
            "retired" => Some(Self::Retired),
            "destroyed" => Some(Self::Destroyed),
            _ => None,
        }
    }
}

/// A data key as stored: encrypted under the KEK by the HSM (AES-GCM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedDataKey {
    /// Version number.
    pub version: KeyVersion,
    /// Label of the KEK object in the token that wraps it.
    pub kek_label: String,
    /// GCM IV used by the HSM.
    pub iv: [u8; 12],
    /// Ciphertext and tag.
    pub wrapped: Vec<u8>,
    /// State.
    pub state: DataKeyState,
    /// RFC 3339 UTC.
    pub created_at: String,
}
