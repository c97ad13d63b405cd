//! Key check values for AES-256 keys and components: what custodians compare aloud to know two
//! parties hold the same key, without revealing it. Definitions and sources: `docs/kcv.md`.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes256;
use cmac::{Cmac, Mac};

/// Length of an AES-256 key in bytes.
const KEY_LEN: usize = 32;

/// The encrypt-zeros KCV: the leftmost 3 bytes of AES-256-ECB(key, 16 zero bytes).
///
/// This is the legacy method (PCI PIN 15-1 "first method", at most 24 bits), what AWS CloudHSM
/// shows for symmetric keys. X9.24-1:2017 and PCI PIN allow it for TDEA only: for AES prefer
/// [`kcv_cmac`]; use this one only to compare with a system that shows it.
pub fn kcv_aes_ecb(key: &[u8; KEY_LEN]) -> [u8; 3] {
    let cipher = Aes256::new(GenericArray::from_slice(key));
    let mut block = GenericArray::from([0u8; 16]);
    cipher.encrypt_block(&mut block);
    let mut out = [0u8; 3];
    for (o, b) in out.iter_mut().zip(block.iter()) {
        *o = *b;
    }
    out
}

/// The CMAC KCV: the leftmost 5 bytes (40 bits, the most X9.24-1:2017 allows) of
/// AES-256-CMAC(key, 16 zero bytes), as NIST SP 800-38B defines CMAC.
///
/// X9.24-1:2017 and PCI PIN 15-1: "AES must only use the CMAC method". Systems that show
/// 6 hex digits (AWS Payment Cryptography) show the first 3 of these 5 bytes.
pub fn kcv_cmac(key: &[u8; KEY_LEN]) -> [u8; 5] {
    let tag = aes256_cmac(key, &[0u8; 16]);
    let mut out = [0u8; 5];
    for (o, b) in out.iter_mut().zip(tag.iter()) {
        *o = *b;
    }
    out
}

/// AES-256-CMAC (NIST SP 800-38B) of `message` under `key`, the full 16-byte tag: the MAC under
/// [`kcv_cmac`], run against the Wycheproof vectors by `tests/wycheproof.rs`.
pub fn aes256_cmac(key: &[u8; KEY_LEN], message: &[u8]) -> [u8; 16] {
    let mut mac = <Cmac<Aes256> as KeyInit>::new(GenericArray::from_slice(key));
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A KCV as custodians read it: uppercase hex, no separators (`kcv_cmac` gives 10 digits,
/// `kcv_aes_ecb` 6).
pub fn display(kcv: &[u8]) -> String {
    super::hex::encode_public(kcv)
}
