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
/// `buf` must already have room for the tag ([`KeyError::Integrity`] otherwise, `buf`
/// untouched): growing it here would leave the plaintext in the freed allocation.
pub fn gcm_seal_in_place(
    key: &[u8; GCM_KEY_LEN],
    nonce: &[u8; GCM_NONCE_LEN],
    aad: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), KeyError> {
    if buf.capacity() - buf.len() < GCM_TAG_LEN {
        return Err(KeyError::Integrity);
    }
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
    hkdf_sha256_each(salt, ikm, &mut [(info, okm)])
}

/// One HKDF-Extract(salt, ikm), then HKDF-Expand(PRK, info, `okm.len()`) into each `okm`:
/// the PRK is made (and held in memory) once for all the outputs.
pub fn hkdf_sha256_each(salt: &[u8], ikm: &[u8], outputs: &mut [(&[u8], &mut [u8])]) -> Option<()> {
    let hkdf = hkdf::Hkdf::<Sha256>::new(Some(salt), ikm);
    for (info, okm) in outputs.iter_mut() {
        hkdf.expand(info, okm).ok()?;
    }
    Some(())
}

/// RFC 2104 HMAC-SHA256 under `key` of the concatenation of `parts`, untruncated.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Option<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).ok()?;
    for part in parts {
        mac.update(part);
    }
    Some(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // test module
    use super::*;

    #[test]
    fn a_seal_without_room_for_the_tag_is_refused_and_leaves_the_plaintext_alone() {
        let key = [7u8; GCM_KEY_LEN];
        let nonce = [9u8; GCM_NONCE_LEN];
        let mut tight = b"4111111111111111".to_vec();
        tight.shrink_to_fit();
        assert!(tight.capacity() - tight.len() < GCM_TAG_LEN);
        assert!(matches!(
            gcm_seal_in_place(&key, &nonce, b"aad", &mut tight),
            Err(KeyError::Integrity)
        ));
        assert_eq!(tight, b"4111111111111111");
        let mut roomy = Vec::with_capacity(16 + GCM_TAG_LEN);
        roomy.extend_from_slice(b"4111111111111111");
        let before = roomy.as_ptr();
        gcm_seal_in_place(&key, &nonce, b"aad", &mut roomy).unwrap();
        // Sealed where it was: no reallocation left the plaintext behind.
        assert_eq!((roomy.len(), roomy.as_ptr()), (16 + GCM_TAG_LEN, before));
        gcm_open_in_place(&key, &nonce, b"aad", &mut roomy).unwrap();
        assert_eq!(roomy, b"4111111111111111");
    }

    #[test]
    fn hkdf_each_output_equals_its_own_expansion() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        hkdf_sha256_each(
            b"salt",
            b"ikm",
            &mut [(b"one", &mut a[..]), (b"two", &mut b[..])],
        )
        .unwrap();
        let (mut a1, mut b1) = ([0u8; 32], [0u8; 32]);
        hkdf_sha256(b"salt", b"ikm", b"one", &mut a1).unwrap();
        hkdf_sha256(b"salt", b"ikm", b"two", &mut b1).unwrap();
        assert_eq!((a, b), (a1, b1));
        assert_ne!(a, b);
    }
}
