//! Authenticator data (WebAuthn L3 §6.1) and attested credential data (§6.5.2), parsed exactly:
//! every byte is accounted for, and the flags say what must follow.

use super::cbor::{self, Value};
use super::cose::CoseKey;
use super::WebauthnError;

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
    /// Shorter than the 37 fixed bytes, or cut inside attested credential data.
    Truncated,
    /// Bytes after everything the flags announce.
    TrailingBytes,
    /// A credential id of 0 or more than 1023 bytes.
    CredentialIdLength,
    /// BS set while BE is clear (§6.1.3).
    BackupStateWithoutEligibility,
    /// ED set but no extensions map follows.
    ExtensionsMissing,
    /// The extensions are not a CBOR map.
    ExtensionsNotMap,
    /// rpIdHash is not the SHA-256 of an accepted RP ID.
    RpIdHashMismatch,
    /// UP clear.
    UserNotPresent,
    /// UV clear while user verification is required.
    UserNotVerified,
}

impl AuthDataError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "authdata_malformed",
            Self::Truncated => "authdata_truncated",
            Self::TrailingBytes => "authdata_trailing_bytes",
            Self::CredentialIdLength => "credential_id_length",
            Self::BackupStateWithoutEligibility => "backup_state_without_eligibility",
            Self::ExtensionsMissing => "extensions_missing",
            Self::ExtensionsNotMap => "extensions_not_map",
            Self::RpIdHashMismatch => "rp_id_hash_mismatch",
            Self::UserNotPresent => "user_not_present",
            Self::UserNotVerified => "user_not_verified",
        }
    }
}

impl std::fmt::Display for AuthDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed",
            Self::Truncated => "truncated",
            Self::TrailingBytes => "bytes left after the announced data",
            Self::CredentialIdLength => "credential id length not in 1..=1023",
            Self::BackupStateWithoutEligibility => "BS set without BE",
            Self::ExtensionsMissing => "ED set but no extensions follow",
            Self::ExtensionsNotMap => "extensions are not a map",
            Self::RpIdHashMismatch => "rpIdHash does not match an accepted RP ID",
            Self::UserNotPresent => "user not present (UP clear)",
            Self::UserNotVerified => "user not verified (UV clear)",
        })
    }
}

/// Longest credential id accepted (§6.5.2, §7.1 step 24).
pub const MAX_CREDENTIAL_ID_LEN: usize = 1023;

impl AuthenticatorData {
    /// Parses exactly (trailing bytes are an error).
    pub fn parse(bytes: &[u8]) -> Result<Self, WebauthnError> {
        let (rp_id_hash, rest) = bytes
            .split_first_chunk::<32>()
            .ok_or(AuthDataError::Truncated)?;
        let (flags, rest) = rest.split_first().ok_or(AuthDataError::Truncated)?;
        let (count, mut rest) = rest
            .split_first_chunk::<4>()
            .ok_or(AuthDataError::Truncated)?;
        let flags = Flags(*flags);
        // §6.1.3: "If the BE flag is not set, the BS flag MUST NOT be set."
        if flags.bs() && !flags.be() {
            return Err(AuthDataError::BackupStateWithoutEligibility.into());
        }
        let attested = if flags.at() {
            let (credential, used) = AttestedCredential::parse_prefix(rest)?;
            rest = rest.get(used..).ok_or(AuthDataError::Truncated)?;
            Some(credential)
        } else {
            None
        };
        let extensions = if flags.ed() {
            if rest.is_empty() {
                return Err(AuthDataError::ExtensionsMissing.into());
            }
            let (value, used) = cbor::decode_prefix(rest)?;
            if value.as_map().is_none() {
                return Err(AuthDataError::ExtensionsNotMap.into());
            }
            rest = rest.get(used..).ok_or(AuthDataError::Truncated)?;
            Some(value)
        } else {
            None
        };
        if !rest.is_empty() {
            return Err(AuthDataError::TrailingBytes.into());
        }
        Ok(Self {
            rp_id_hash: *rp_id_hash,
            flags,
            sign_count: u32::from_be_bytes(*count),
            attested,
            extensions,
        })
    }

    /// §7.1 step 13 / §7.2 step 15: rpIdHash is SHA-256 of one of `rp_ids`.
    pub fn check_rp_id(&self, rp_ids: &[String]) -> Result<(), AuthDataError> {
        let matches = rp_ids.iter().any(|id| {
            let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
            digest.as_ref() == self.rp_id_hash.as_slice()
        });
        if matches {
            Ok(())
        } else {
            Err(AuthDataError::RpIdHashMismatch)
        }
    }

    /// §7.1 steps 14-15 / §7.2 steps 16-17: UP set, and UV set when required.
    pub fn check_user(&self, require_user_verification: bool) -> Result<(), AuthDataError> {
        if !self.flags.up() {
            return Err(AuthDataError::UserNotPresent);
        }
        if require_user_verification && !self.flags.uv() {
            return Err(AuthDataError::UserNotVerified);
        }
        Ok(())
    }
}

impl AttestedCredential {
    /// aaguid | credentialIdLength | credentialId | credentialPublicKey, from the start of
    /// `bytes`; returns it and the bytes used.
    fn parse_prefix(bytes: &[u8]) -> Result<(Self, usize), WebauthnError> {
        let (aaguid, rest) = bytes
            .split_first_chunk::<16>()
            .ok_or(AuthDataError::Truncated)?;
        let (len, rest) = rest
            .split_first_chunk::<2>()
            .ok_or(AuthDataError::Truncated)?;
        let len = usize::from(u16::from_be_bytes(*len));
        if len == 0 || len > MAX_CREDENTIAL_ID_LEN {
            return Err(AuthDataError::CredentialIdLength.into());
        }
        let (credential_id, rest) = rest.split_at_checked(len).ok_or(AuthDataError::Truncated)?;
        let (key_value, key_len) = cbor::decode_prefix(rest)?;
        let public_key = CoseKey::from_cbor(&key_value)?;
        let public_key_cbor = rest
            .get(..key_len)
            .ok_or(AuthDataError::Truncated)?
            .to_vec();
        Ok((
            Self {
                aaguid: *aaguid,
                credential_id: credential_id.to_vec(),
                public_key,
                public_key_cbor,
            },
            16 + 2 + len + key_len,
        ))
    }
}

#[cfg(test)]
#[path = "authdata_tests.rs"]
mod tests;
