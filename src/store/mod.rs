//! Persistence. The [`Store`] trait is what services see; [`sqlite::SqliteStore`] is the
//! embedded implementation (one writer thread that group-commits, reader connections for
//! reads); [`postgres::PostgresStore`] implements the same trait for many replicas on one
//! PostgreSQL.
//!
//! Every write that changes state also appends its audit record in the same transaction, so a
//! change and its record are durable together or not at all. A method returns only after its
//! transaction has committed durably.

mod authorizations;
mod devices;
mod keys;
pub mod postgres;
pub mod sqlite;

pub use authorizations::{
    AuthorizationChallengeRecord, AuthorizationCommit, AuthorizationRecord, ChallengeIssue,
    ChallengeState, CommitOutcome, CounterUpdate, IdempotencyRecord, Idempotent,
};
pub use devices::{ChallengePurpose, ChallengeRecord, ConsumeOutcome, DeviceRecord, EnrolOutcome};
pub use keys::{
    ApprovalOutcome, DataKeyInfo, KeyApproval, KeyChangeOutcome, Rewrapped, SigningKeyRecord,
    SigningKeyState,
};

use crate::audit::{AuditEvent, AuditRecord};
use crate::card::{Domain, Last4, StatusChange, Token, TokenFormat, TokenStatus};
use crate::keys::{Fingerprint, KeyVersion, SealedPan, WrappedDataKey};
use std::future::Future;
use std::pin::Pin;

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A token row as stored. `sealed` and `fingerprint` are `None` once the token is deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token.
    pub token: Token,
    /// Its domain.
    pub domain: Domain,
    /// Keyed HMAC of the PAN in this domain (unique per domain while the token lives).
    pub fingerprint: Option<Fingerprint>,
    /// AES-256-GCM of PAN and expiry; AAD binds token, domain and key version.
    pub sealed: Option<SealedPan>,
    /// Last four digits of the PAN.
    pub last4: Last4,
    /// Lifecycle state.
    pub status: TokenStatus,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

/// Where a PAN's live token may already be: its fingerprint under one loaded key version,
/// and the token derived from that fingerprint ([`TokenFormat::derive`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lookup {
    /// The PAN's fingerprint in the domain under one key version.
    pub fingerprint: Fingerprint,
    /// The token derived from it under [`NewToken::format`].
    pub derived: Token,
}

/// A tokenization to perform atomically.
///
/// A PAN's first token is derived from its fingerprint, so the store finds it by reading
/// that one row; only tokens that are not (a random draw after the derived one was taken, or
/// a record whose fingerprint changed when it was re-sealed) are kept in the fingerprint
/// index. One index with random keys per insert instead of two (`docs/decisions.md`).
#[derive(Debug)]
pub struct NewToken {
    /// The record to insert if the PAN has no live token in this domain: the derived token
    /// when its token is `lookup[0].derived`, otherwise a random draw.
    pub record: TokenRecord,
    /// The format the derived tokens were formed with. A store that derived tokens under
    /// another format before moves those to the fingerprint index first, or they could not
    /// be found any more.
    pub format: TokenFormat,
    /// One entry per loaded key version, the current one first; a live record matching any
    /// of them in the domain is returned instead of inserting.
    pub lookup: Vec<Lookup>,
}

/// What [`Store::detokenize`] found, told once its audit record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetokenizeOutcome {
    /// The token is active: its sealed PAN, to open with the token and domain as AAD.
    Active(SealedPan),
    /// The token is suspended: no PAN is released (the sealed PAN is not even read out).
    Suspended,
    /// No live token with that value in that domain (absent or deleted).
    NotFound,
}

/// What [`Store::tokenize`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizeOutcome {
    /// Inserted; the audit event was written with outcome `created`.
    Created(TokenRecord),
    /// The PAN already had a live token in this domain; the audit event was written with
    /// outcome `existing` and that token.
    Existing(TokenRecord),
    /// The candidate token is already taken in this domain: nothing was written (not even the
    /// audit record); draw a random token and try again.
    TokenTaken,
}

/// What [`Store::transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Applied; the record after the change.
    Done(TokenRecord),
    /// No live token: audited with outcome `token_not_found`.
    NotFound,
    /// Not allowed from the current state: audited with outcome `token_state_conflict`.
    Conflict(TokenStatus),
}

/// Why the store failed. Callers map every variant to 503 except where noted.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or written (disk full, read-only, I/O error).
    Unavailable(String),
    /// The writer thread has stopped.
    Closed,
    /// Stored data does not decode (corruption, or a newer schema).
    Corrupt(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unavailable(m) => write!(f, "store unavailable: {m}"),
            Self::Closed => f.write_str("store writer has stopped"),
            Self::Corrupt(m) => write!(f, "stored data is corrupt: {m}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// Persistence for the vault. Every method is atomic; writers return after a durable commit.
pub trait Store: Send + Sync + 'static {
    /// Returns the live token of this PAN in the domain (matching any of `new.lookup`), or
    /// inserts `new.record`. Writes `audit` (with `token`, `last4` and `outcome` filled in:
    /// `created` or `existing`) in the same transaction.
    fn tokenize(&self, new: NewToken, audit: AuditEvent) -> StoreFuture<'_, TokenizeOutcome>;

    /// Reads the token for detokenization and writes `audit` in the same transaction, with
    /// `outcome` set to `ok` (active), `token_suspended` or `token_not_found` (absent or
    /// deleted). Answers only after the audit record is durable; if the audit record cannot
    /// be written, returns an error and no sealed PAN.
    fn detokenize(
        &self,
        token: &Token,
        domain: &Domain,
        audit: AuditEvent,
    ) -> StoreFuture<'_, DetokenizeOutcome>;

    /// Applies a lifecycle change ([`TokenStatus::apply`]) and writes `audit` with its
    /// outcome. Delete wipes the ciphertext and the fingerprint.
    fn transition(
        &self,
        token: &Token,
        domain: &Domain,
        change: StatusChange,
        audit: AuditEvent,
    ) -> StoreFuture<'_, TransitionOutcome>;

    /// Writes an audit record on its own (refused requests, key events).
    fn record(&self, audit: AuditEvent) -> StoreFuture<'_, ()>;

    /// Reads a token (any state) without writing.
    fn token(&self, token: &Token, domain: &Domain) -> StoreFuture<'_, Option<TokenRecord>>;

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

    /// Audit records with `seq > after`, at most `limit`, in order.
    fn audit_records(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>>;

    /// Checks the store answers (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;

    /// Stores a newly issued challenge and writes `audit` in the same transaction.
    fn create_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ()>;

    /// Marks the challenge `id` of this `purpose` used if it is unused and `now` is before
    /// its expiry, and returns it. Single use is enforced by the database (a conditional
    /// update), so of concurrent consumers exactly one gets [`ConsumeOutcome::Consumed`].
    /// Writes no audit record: the use case that consumes it audits its own outcome.
    fn consume_challenge(
        &self,
        id: &str,
        purpose: ChallengePurpose,
        now: time::OffsetDateTime,
    ) -> StoreFuture<'_, ConsumeOutcome>;

    /// Stores an enrolled device and writes `audit` in the same transaction; for a credential
    /// id that is already enrolled it writes nothing ([`EnrolOutcome::CredentialExists`]).
    fn enrol_device(
        &self,
        device: DeviceRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, EnrolOutcome>;

    /// Reads a challenge by id (any purpose, used or not) without writing.
    fn challenge(&self, id: &str) -> StoreFuture<'_, Option<ChallengeRecord>>;

    /// Reads a device by its id.
    fn device(&self, device_id: &str) -> StoreFuture<'_, Option<DeviceRecord>>;

    /// Reads a device by its credential id.
    fn device_by_credential(&self, credential_id: &[u8]) -> StoreFuture<'_, Option<DeviceRecord>>;

    /// Compare-and-set of a device's signature counter: sets it to `new` only if it is still
    /// `expected_old`, and then writes `audit` in the same transaction. Returns `false` (and
    /// writes nothing) if the device is unknown or its counter changed in between.
    fn update_sign_count(
        &self,
        device_id: &str,
        expected_old: u32,
        new: u32,
        audit: AuditEvent,
    ) -> StoreFuture<'_, bool>;

    /// Stores a payment challenge and writes `audit` in the same transaction. With an
    /// idempotency record, first looks its key up: the same request gets the stored answer
    /// and writes nothing, another request with the key gets [`Idempotent::KeyReused`];
    /// otherwise the record is stored with the challenge. The token's state is read in the
    /// same transaction: unless it is active, nothing is written
    /// ([`ChallengeIssue::TokenNotActive`]).
    fn create_authorization_challenge(
        &self,
        challenge: AuthorizationChallengeRecord,
        audit: AuditEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreFuture<'_, Idempotent<ChallengeIssue>>;

    /// Reads a payment challenge by id (used or not) without writing.
    fn authorization_challenge(
        &self,
        id: &str,
    ) -> StoreFuture<'_, Option<AuthorizationChallengeRecord>>;

    /// Ends an authorization attempt in one transaction (see [`AuthorizationCommit`]). The
    /// idempotency key is looked up first, as for [`Store::create_authorization_challenge`].
    /// The challenge is consumed by a conditional update, so of concurrent attempts exactly
    /// one consumes it; the counter moves by compare-and-set. An approval is committed only if
    /// its token is still active, read in the same transaction
    /// ([`CommitOutcome::TokenNotActive`] otherwise, with nothing written).
    fn commit_authorization(
        &self,
        commit: AuthorizationCommit,
    ) -> StoreFuture<'_, Idempotent<CommitOutcome>>;

    /// Reads an idempotency key of `principal`.
    fn idempotency(&self, principal: &str, key: &str)
        -> StoreFuture<'_, Option<IdempotencyRecord>>;
}
