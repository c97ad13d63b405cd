//! Persistence, as one port per aggregate: [`TokenStore`], [`KeyStore`], [`DeviceStore`],
//! [`AuthorizationStore`], [`IdempotencyStore`] and [`AuditStore`]; [`Store`] is all of them
//! plus a health check, what services hold. [`sqlite::SqliteStore`] is the embedded
//! implementation (one writer thread that group-commits, reader connections for reads);
//! [`postgres::PostgresStore`] the shared one, for many replicas on one PostgreSQL.
//! Operations are timed in one place, [`Timing`], which each backend's funnels call.
//!
//! Every write that changes state also appends its audit record in the same transaction, so a
//! change and its record are durable together or not at all. A method returns only after its
//! transaction has committed durably.

mod audit;
mod authorizations;
mod devices;
mod idempotency;
mod keys;
pub mod postgres;
pub mod sqlite;
mod tokens;

pub use audit::{read_whole_audit_log, AuditStore};
pub use authorizations::{
    AuthorizationChallengeRecord, AuthorizationCommit, AuthorizationRecord, AuthorizationStore,
    ChallengeIssue, ChallengeState, CommitOutcome, CounterUpdate,
};
pub use devices::{
    AndroidBoot, ChallengePurpose, ChallengeRecord, ConsumeOutcome, DeviceOwner, DeviceRecord,
    DeviceState, DeviceStore, EnrolOutcome, Revocation, RevocationReason, RevokeOutcome,
};
pub use idempotency::{IdempotencyRecord, IdempotencyStore, Idempotent};
pub use keys::{
    ApprovalOutcome, DataKeyInfo, KeyApproval, KeyChangeOutcome, KeyStore, Rewrapped,
    SigningKeyRecord, SigningKeyState,
};
pub use tokens::{
    ring_matches, DetokenizeOutcome, Lookup, NewToken, TokenRecord, TokenStore, TokenizeOutcome,
    TransitionOutcome,
};

use crate::fault::Fault;
use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The future every store method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Why the store failed. Callers map every variant to 503 except where noted. Each fault
/// keeps the driver's or the system's error as its source (see [`Fault`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be reached or written (disk full, read-only, I/O error).
    Unavailable(Fault),
    /// The writer thread has stopped.
    Closed,
    /// Stored data does not decode (corruption, or a newer schema).
    Corrupt(Fault),
}

impl StoreError {
    /// The database could not be reached or written, for a reason payhsm checked itself.
    pub fn unavailable(context: impl Into<Cow<'static, str>>) -> Self {
        Self::Unavailable(Fault::new(context))
    }

    /// The database could not be reached or written because of `source`.
    pub fn unavailable_from(
        context: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Unavailable(Fault::caused_by(context, source))
    }

    /// Stored data does not decode, as payhsm checked it.
    pub fn corrupt(context: impl Into<Cow<'static, str>>) -> Self {
        Self::Corrupt(Fault::new(context))
    }

    /// Stored data does not decode: `source` says why.
    pub fn corrupt_from(
        context: impl Into<Cow<'static, str>>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Corrupt(Fault::caused_by(context, source))
    }
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

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Displayed with the fault's context: the next cause is the fault's source.
            Self::Unavailable(f) | Self::Corrupt(f) => f.source(),
            Self::Closed => None,
        }
    }
}

/// The whole store: every port, and a health check. Services hold it as `Arc<dyn Store>` and
/// use the ports they need.
pub trait Store:
    TokenStore + KeyStore + DeviceStore + AuthorizationStore + IdempotencyStore + AuditStore + 'static
{
    /// Checks the store answers (for `/readyz`).
    fn ping(&self) -> StoreFuture<'_, ()>;
}

/// Where a store reports how long each operation took (`payhsm_store_duration_seconds{op}`).
pub trait StoreObserver: Send + Sync {
    /// `op` is the port method's name.
    fn observe(&self, op: &'static str, elapsed: Duration);
}

/// The one place store operations are timed: every backend sends each operation through a
/// funnel (the SQLite writer queue and reader pool, the PostgreSQL writer and pool), and
/// each funnel times it here.
#[derive(Clone, Default)]
pub struct Timing(Option<Arc<dyn StoreObserver>>);

impl Timing {
    /// Reports to `observer`.
    pub fn new(observer: Arc<dyn StoreObserver>) -> Self {
        Self(Some(observer))
    }

    /// Runs `call`, reporting its duration as `op`.
    pub async fn time<T>(&self, op: &'static str, call: impl Future<Output = T>) -> T {
        let Some(observer) = &self.0 else {
            return call.await;
        };
        let started = Instant::now();
        let result = call.await;
        observer.observe(op, started.elapsed());
        result
    }
}

impl std::fmt::Debug for Timing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Timing").field(&self.0.is_some()).finish()
    }
}

/// Every port trait, for code that calls a store's methods directly: `use
/// payhsm::store::prelude::*;`.
pub mod prelude {
    pub use super::{
        AuditStore, AuthorizationStore, DeviceStore, IdempotencyStore, KeyStore, Store, TokenStore,
    };
}
