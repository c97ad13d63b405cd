//! Key lifecycle records: data key versions and signing keys with their dates and states,
//! custodian approvals (dual control), and the rewrap of token records.

use crate::card::{Domain, Token};
use crate::keys::{DataKeyState, Fingerprint, KeyVersion, SealedPan};

/// A data key version as `keys list` shows it: no key material, wrapped or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    /// Version number.
    pub version: KeyVersion,
    /// The KEK that wraps it.
    pub kek_label: String,
    /// State.
    pub state: DataKeyState,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When it started sealing new records.
    pub activated_at: Option<String>,
    /// When it stopped being used at all.
    pub retired_at: Option<String>,
    /// When its wrapped form was erased.
    pub destroyed_at: Option<String>,
    /// The end of its originator-usage period (sealing new records).
    pub cryptoperiod_end: Option<String>,
    /// Token records still sealed under it.
    pub records: u64,
}

/// What a signing key is doing. Keys move forward only:
/// `published -> active -> retiring -> retired -> destroyed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningKeyState {
    /// In the JWKS, not signing yet: verifiers learn it before it signs.
    Published,
    /// Signs new authorizations (one at a time).
    Active,
    /// No longer signs; stays in the JWKS until its last authorization has expired.
    Retiring,
    /// Out of the JWKS; the key pair is still in the token.
    Retired,
    /// The key pair was deleted from the token.
    Destroyed,
}

impl SigningKeyState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Active => "active",
            Self::Retiring => "retiring",
            Self::Retired => "retired",
            Self::Destroyed => "destroyed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "published" => Self::Published,
            "active" => Self::Active,
            "retiring" => Self::Retiring,
            "retired" => Self::Retired,
            "destroyed" => Self::Destroyed,
            _ => return None,
        })
    }

    /// Whether verifiers are told about it.
    pub fn in_jwks(self) -> bool {
        matches!(self, Self::Published | Self::Active | Self::Retiring)
    }
}

/// An authorization signing key (EC P-256 in the token) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningKeyRecord {
    /// Version number, from 1.
    pub version: u32,
    /// CKA_LABEL of the key pair in the token.
    pub label: String,
    /// RFC 7638 thumbprint (the JWS `kid`).
    pub kid: String,
    /// State.
    pub state: SigningKeyState,
    /// RFC 3339 UTC, when it was generated (and published).
    pub created_at: String,
    /// When it started signing.
    pub activated_at: Option<String>,
    /// When it stopped signing.
    pub deactivated_at: Option<String>,
    /// When it left the JWKS.
    pub retired_at: Option<String>,
    /// When the key pair was deleted from the token.
    pub destroyed_at: Option<String>,
    /// The end of its signing period.
    pub cryptoperiod_end: Option<String>,
    /// Authorizations it signed (read only: filled when read, ignored when stored).
    pub authorizations: u64,
}

/// One custodian's approval of a key change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyApproval {
    /// The change, canonical (e.g. `retire data 1`): approvals match on it exactly.
    pub change: String,
    /// The approving custodian's certificate identity.
    pub custodian: String,
    /// RFC 3339 UTC, now.
    pub now: String,
    /// RFC 3339 UTC: an approval left alone expires then.
    pub expires_at: String,
}

/// What [`Store::approve_key_change`](super::Store::approve_key_change) did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOutcome {
    /// The first approval, recorded: another custodian must approve before `expires_at`.
    Pending {
        /// When this approval lapses.
        expires_at: String,
    },
    /// This custodian's approval is already pending: one custodian cannot approve twice.
    SameCustodian {
        /// When the pending approval lapses.
        expires_at: String,
    },
    /// A second, distinct custodian approved in time: the pending approval is used up and the
    /// change may be applied now.
    Granted {
        /// The custodian who approved first.
        first: String,
    },
}

/// What a key state change did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChangeOutcome {
    /// Applied, with its audit record.
    Done,
    /// No such key version.
    NotFound,
    /// Not allowed from the key's current state (named).
    StateConflict(String),
    /// Records still need the key: `records` sealed under a data key, or signed authorizations
    /// that expire only at `until` (RFC 3339).
    InUse {
        /// How many records still use it.
        records: u64,
        /// When the last of them stops needing it, when known.
        until: Option<String>,
    },
}

/// A token record moved to the active data key version by `keys rewrap`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrapped {
    /// The token.
    pub token: Token,
    /// Its domain.
    pub domain: Domain,
    /// The version and nonce it was sealed with: the update applies only if they are unchanged.
    pub old_version: KeyVersion,
    /// The old nonce.
    pub old_nonce: [u8; 12],
    /// Sealed under the active version.
    pub sealed: SealedPan,
    /// The fingerprint under the active version.
    pub fingerprint: Fingerprint,
}
