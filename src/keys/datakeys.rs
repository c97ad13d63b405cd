//! SKELETON: to be implemented (keys helper).
use super::{Fingerprint, KeyVersion, SealedPan};
use crate::card::{Domain, Expiry, Pan, Token};

/// 32 bytes of data key material, zeroized on drop. No `Clone`.
pub struct DataKeyMaterial(zeroize::Zeroizing<[u8; 32]>);

impl DataKeyMaterial {
    /// Takes ownership of raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(zeroize::Zeroizing::new(bytes))
    }
}

/// The unwrapped data keys.
pub struct DataKeyRing {}

/// Why a data key operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyError {
    /// No key of that version is loaded.
    UnknownVersion(KeyVersion),
    /// The ciphertext did not authenticate.
    Integrity,
    /// The system random source failed.
    Random,
    /// No active key.
    NoActiveKey,
}

impl DataKeyRing {
    /// Builds the ring; `active` must be among `keys`.
    pub fn new(
        keys: Vec<(KeyVersion, DataKeyMaterial)>,
        active: KeyVersion,
    ) -> Result<Self, KeyError> {
        let _ = (keys, active);
        unimplemented!()
    }
    /// The version that seals new records.
    pub fn active(&self) -> KeyVersion {
        unimplemented!()
    }
    /// Seals PAN and expiry under the active version.
    pub fn seal(
        &self,
        pan: &Pan,
        expiry: Option<Expiry>,
        token: &Token,
        domain: &Domain,
    ) -> Result<SealedPan, KeyError> {
        let _ = (pan, expiry, token, domain);
        unimplemented!()
    }
    /// Opens a sealed record.
    pub fn open(
        &self,
        sealed: &SealedPan,
        token: &Token,
        domain: &Domain,
    ) -> Result<(Pan, Option<Expiry>), KeyError> {
        let _ = (sealed, token, domain);
        unimplemented!()
    }
    /// Fingerprints of the PAN in the domain under every loaded version, active first.
    pub fn fingerprints(&self, pan: &Pan, domain: &Domain) -> Vec<Fingerprint> {
        let _ = (pan, domain);
        unimplemented!()
    }
}
