//! Key lifecycle records: data key versions and signing keys with their dates and states,
//! custodian approvals (dual control), and the rewrap of token records.

use super::{StoreFuture, TokenRecord};
use crate::audit::AuditEvent;
use crate::card::{Domain, Token};
use crate::keys::{DataKeyState, Fingerprint, KeyVersion, SealedPan, WrappedDataKey};

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

/// What [`KeyStore::approve_key_change`] did.
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

/// Key lifecycle: data key versions, signing keys, dual-control approvals and the rewrap of
/// token records under the active data key.
pub trait KeyStore: Send + Sync {
    /// All wrapped data keys, oldest first.
    fn data_keys(&self) -> StoreFuture<'_, Vec<WrappedDataKey>>;

    /// Stores `key` as the active data key version (the active one before it becomes
    /// decrypt-only) with its audit record. `key.version` must be the next version, else
    /// [`KeyChangeOutcome::StateConflict`] and nothing is written.
    fn activate_data_key(
        &self,
        key: WrappedDataKey,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// Every data key version with its dates and the number of records it seals.
    fn data_key_info(&self) -> StoreFuture<'_, Vec<DataKeyInfo>>;

    /// `decrypt_only -> retired`, refused while any record is sealed under it.
    fn retire_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// `retired -> destroyed` (the wrapped key is erased), refused while any record is sealed
    /// under it.
    fn destroy_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// Records a custodian's approval of a key change (dual control), with `audit` completed
    /// with the outcome; see [`ApprovalOutcome`].
    fn approve_key_change(
        &self,
        approval: KeyApproval,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ApprovalOutcome>;

    /// Live records sealed under another version than `active`, at most `limit`.
    fn tokens_to_rewrap(
        &self,
        active: KeyVersion,
        limit: usize,
    ) -> StoreFuture<'_, Vec<TokenRecord>>;

    /// How many live records are sealed under another version than `active`.
    fn count_to_rewrap(&self, active: KeyVersion) -> StoreFuture<'_, u64>;

    /// Applies a batch of rewrapped records in one transaction (each only if unchanged since
    /// it was read) with one audit record; returns how many moved.
    fn rewrap(&self, batch: Vec<Rewrapped>, audit: AuditEvent) -> StoreFuture<'_, u64>;

    /// Every authorization signing key, oldest first.
    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>>;

    /// Adds a signing key (the next version) with its audit record.
    fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// `published -> active`; the active key becomes `retiring`.
    fn activate_signing_key(
        &self,
        version: u32,
        now: String,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// `retiring` (or never-used `published`) `-> retired`, refused while an authorization it
    /// signed is unexpired at `now_unix`.
    fn retire_signing_key(
        &self,
        version: u32,
        now: String,
        now_unix: i64,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// How many authorizations signed by `kid` are unexpired at `now_unix`, and when the last
    /// of them expires (RFC 3339).
    fn unexpired_authorizations(
        &self,
        kid: &str,
        now_unix: i64,
    ) -> StoreFuture<'_, (u64, Option<String>)>;

    /// `retired -> destroyed`.
    fn destroy_signing_key(
        &self,
        version: u32,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome>;

    /// The KEK check value every replica must match: records `kcv` for the KEK `label` with
    /// `audit` if none is recorded yet and returns `None`; otherwise writes nothing and returns
    /// the recorded value (the caller refuses to start when it differs from its own KEK's).
    fn pin_kek_kcv(
        &self,
        label: &str,
        kcv: &str,
        audit: AuditEvent,
    ) -> StoreFuture<'_, Option<String>>;
}
