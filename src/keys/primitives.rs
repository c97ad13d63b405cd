//! The software primitives under the data keys, each in the one form payhsm uses it:
//! AES-256-GCM with a 96-bit nonce and a 128-bit tag (PAN sealing), HKDF-SHA256 (the subkeys)
//! and HMAC-SHA256 (PAN fingerprints, idempotency tags).
//!
//! [`DataKeyRing`](super::DataKeyRing) reaches these algorithms only through here, so the
//! Wycheproof vectors (`tests/wycheproof.rs`, `docs/wycheproof.md`) that run through these
//! functions run through the data keys' own code. Hidden from the docs: not an API to seal with.

use super::KeyError;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// AES-256-GCM key length in bytes.
pub const GCM_KEY_LEN: usize = 32;
/// The GCM nonce length payhsm uses (NIST SP 800-38D §8.2.2: 96-bit random IVs).
pub const GCM_NONCE_LEN: usize = 12;
/// The GCM tag length payhsm appends and requires (128 bits, never truncated).
pub const GCM_TAG_LEN: usize = 16;

/// Encrypts `buf` in place under `key` and `nonce` with `aad`, and appends the 16-byte tag.
pub fn gcm_seal_in_place(
    key: &[u8; GCM_KEY_LEN],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), KeyError> {
    // Built per call; the `zeroize` feature of aes-gcm wipes the key schedule on drop.
    Aes256Gcm::new(key.into())
        .encrypt_in_place(Nonce::from_slice(nonce), aad, buf)
        .map_err(|_| KeyError::Integrity)
}

/// Checks the trailing 16-byte tag of `buf` and decrypts the rest in place; on any failure
/// (short input, wrong tag) [`KeyError::Integrity`].
pub fn gcm_open_in_place(
    key: &[u8; GCM_KEY_LEN],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), KeyError> {
    Aes256Gcm::new(key.into())
        .decrypt_in_place(Nonce::from_slice(nonce), aad, buf)
        .map_err(|_| KeyError::Integrity)
}

/// RFC 5869 §2.2-2.3: HKDF-Extract(salt, ikm) then HKDF-Expand(PRK, info, `okm.len()`) into
/// `okm`. `None` when `okm` is longer than 255 * 32 bytes (§2.3), and `okm` is then untouched.
pub fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], okm: &mut [u8]) -> Option<()> {
    hkdf::Hkdf::<Sha256>::new(Some(salt), ikm)
        .expand(info, okm)
        .ok()
}

/// RFC 2104 HMAC-SHA256 under `key` of the concatenation of `parts`, untruncated.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}
