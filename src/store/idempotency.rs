//! Idempotency keys with the answers they stand for.

use super::StoreFuture;

/// An idempotency key bound to a request and the answer it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyRecord {
    /// The caller's identity: keys are scoped per principal.
    pub principal: String,
    /// The key as sent.
    pub key: String,
    /// SHA-256 of the operation and the canonical request.
    pub request_hash: [u8; 32],
    /// The answer (service-level JSON) to give again.
    pub response: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

/// The result of a write guarded by an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Idempotent<T> {
    /// No earlier request with the key (or no key): the write ran.
    Fresh(T),
    /// The key was used before for the same request: nothing was written; its answer.
    Replayed(String),
    /// The key was used before for a different request: nothing was written.
    KeyReused,
}

/// Idempotency keys. They are written by the writes they guard (see
/// [`super::AuthorizationStore`]); this port reads them.
pub trait IdempotencyStore: Send + Sync {
    /// Reads an idempotency key of `principal`.
    fn idempotency(&self, principal: &str, key: &str)
        -> StoreFuture<'_, Option<IdempotencyRecord>>;
}
