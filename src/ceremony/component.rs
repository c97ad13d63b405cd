//! Key components: full-length AES-256 values, each held by one custodian, XORed into the key.
//!
//! PCI PIN 5-1 / PCI DSS 3.6.6: each component is as long as the key, so any set short of all
//! of them says nothing about the key.

use super::{hex, kcv, ComponentError};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of an AES-256 key and of each of its components, in bytes.
pub const KEY_LEN: usize = 32;

/// One custodian's AES-256 key component.
///
/// No `Clone`, no `Display`; `Debug` shows only its CMAC KCV; zeroized on drop; the bytes are
/// reached only through [`Component::expose_secret`] and [`Component::to_hex`].
pub struct Component([u8; KEY_LEN]);

impl Component {
    /// A fresh component from the operating system's random source.
    pub fn random() -> Result<Self, ComponentError> {
        let mut c = Self([0u8; KEY_LEN]);
        getrandom::getrandom(&mut c.0).map_err(|_| ComponentError::RandomUnavailable)?;
        Ok(c)
    }

    /// Reads a transcribed component: exactly 64 hex digits, either case, optionally in groups
    /// separated by spaces (`0123 4567 ...`); surrounding whitespace is ignored.
    pub fn from_hex(text: &str) -> Result<Self, ComponentError> {
        let text = text.trim();
        let digits = hex::digit_count(text);
        let bytes = match hex::decode(text) {
            Some(b) => b,
            None if digits == KEY_LEN * 2 => return Err(ComponentError::InvalidHexDigit),
            None => return Err(ComponentError::WrongLength { digits }),
        };
        let mut c = Self([0u8; KEY_LEN]);
        if bytes.len() != KEY_LEN {
            return Err(ComponentError::WrongLength { digits });
        }
        c.0.copy_from_slice(&bytes);
        Ok(c)
    }

    /// The component for transcription: 64 uppercase hex digits in 16 groups of 4.
    pub fn to_hex(&self) -> Zeroizing<String> {
        hex::encode_grouped(&self.0)
    }

    /// The component's bytes. Use at the line that needs them; never format or log them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The CMAC KCV (X9.24-1:2017), the one to record for an AES component.
    pub fn kcv_cmac(&self) -> [u8; 5] {
        kcv::kcv_cmac(&self.0)
    }

    /// The legacy encrypt-zeros KCV, for comparing with systems that show only it.
    pub fn kcv_aes_ecb(&self) -> [u8; 3] {
        kcv::kcv_aes_ecb(&self.0)
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for Component {}

impl std::fmt::Debug for Component {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Component")
            .field("kcv_cmac", &kcv::display(&self.kcv_cmac()))
            .finish()
    }
}

/// A whole AES-256 key in the clear, on its way into the HSM.
///
/// No `Clone`, no `Display`; `Debug` shows only its CMAC KCV; zeroized on drop.
pub struct KeyMaterial([u8; KEY_LEN]);

impl KeyMaterial {
    /// A fresh key from the operating system's random source (to be split into shares).
    pub fn random() -> Result<Self, ComponentError> {
        let mut k = Self([0u8; KEY_LEN]);
        getrandom::getrandom(&mut k.0).map_err(|_| ComponentError::RandomUnavailable)?;
        Ok(k)
    }

    /// Takes a key recovered from Shamir shares; refuses any length but 32 bytes.
    pub fn try_from_slice(bytes: &[u8]) -> Result<Self, ComponentError> {
        if bytes.len() != KEY_LEN {
            return Err(ComponentError::WrongKeyLength { len: bytes.len() });
        }
        let mut k = Self([0u8; KEY_LEN]);
        k.0.copy_from_slice(bytes);
        Ok(k)
    }

    /// The key's bytes. Use at the line that needs them (the PKCS#11 import); never format
    /// or log them.
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The CMAC KCV (X9.24-1:2017), the one to record for an AES key.
    pub fn kcv_cmac(&self) -> [u8; 5] {
        kcv::kcv_cmac(&self.0)
    }

    /// The legacy encrypt-zeros KCV, for comparing with systems that show only it.
    pub fn kcv_aes_ecb(&self) -> [u8; 3] {
        kcv::kcv_aes_ecb(&self.0)
    }
}

impl Drop for KeyMaterial {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ZeroizeOnDrop for KeyMaterial {}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("kcv_cmac", &kcv::display(&self.kcv_cmac()))
            .finish()
    }
}

/// Combines components into the key by XOR.
///
/// PCI PIN 5-1: a key formed from components needs at least two, so one is refused; so is a
/// set that XORs to the all-zero key (the same component entered twice, for instance).
pub fn combine(components: &[Component]) -> Result<KeyMaterial, ComponentError> {
    if components.len() < 2 {
        return Err(ComponentError::TooFewComponents {
            given: components.len(),
        });
    }
    let mut key = KeyMaterial([0u8; KEY_LEN]);
    for c in components {
        for (k, b) in key.0.iter_mut().zip(c.0.iter()) {
            *k ^= *b;
        }
    }
    // Branch only on the one-bit verdict, not on key bytes.
    if key.0.iter().fold(0u8, |acc, b| acc | b) == 0 {
        return Err(ComponentError::ZeroKey);
    }
    Ok(key)
}
