//! Token records: the port for tokenize, detokenize, lifecycle changes and metadata reads.

use super::StoreFuture;
use crate::audit::{AuditEvent, Receipt};
use crate::card::{Domain, Last4, StatusChange, Token, TokenFormat, TokenStatus};
use crate::keys::{Fingerprint, KeyVersion, SealedPan};

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
    /// The data key version of the fingerprint.
    pub version: KeyVersion,
    /// The PAN's fingerprint in the domain under that key version.
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

/// What [`TokenStore::detokenize`] found, told once its audit record is durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DetokenizeOutcome {
    /// The token is active: its sealed PAN, to open with the token and domain as AAD, and the
    /// receipt of the release's audit record.
    Active(SealedPan, Receipt),
    /// The token is suspended: no PAN is released (the sealed PAN is not even read out).
    Suspended,
    /// No live token with that value in that domain (absent or deleted).
    NotFound,
}

/// What [`TokenStore::tokenize`] did.
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
    /// The request's key ring is not the stored one: `lookup[0]` is not the active data key
    /// version, or a version that still opens records is missing from `lookup` (another
    /// replica rotated or retired a key). Nothing was written; reload the ring and try again.
    KeysChanged,
}

/// What [`TokenStore::transition`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransitionOutcome {
    /// Applied; the record after the change.
    Done(TokenRecord),
    /// No live token: audited with outcome `token_not_found`.
    NotFound,
    /// Not allowed from the current state: audited with outcome `token_state_conflict`.
    Conflict(TokenStatus),
}

/// Token records. Every method is atomic; writers return after a durable commit.
pub trait TokenStore: Send + Sync {
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

    /// Reads a token (any state) without writing.
    fn token(&self, token: &Token, domain: &Domain) -> StoreFuture<'_, Option<TokenRecord>>;
}

/// The check behind [`TokenizeOutcome::KeysChanged`], for every backend: `live` is each stored
/// version that still opens records, with whether it is the active one. A store that holds no
/// data key yet (only before the daemon's first start completes) has nothing to compare.
pub fn ring_matches(
    live: &[(KeyVersion, bool)],
    sealed_under: Option<KeyVersion>,
    versions: &[KeyVersion],
) -> bool {
    if live.is_empty() {
        return true;
    }
    let active = live.iter().find(|(_, a)| *a).map(|(v, _)| *v);
    active.is_some()
        && versions.first().copied() == active
        && sealed_under.is_none_or(|v| Some(v) == active)
        && live.iter().all(|(v, _)| versions.contains(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: KeyVersion = KeyVersion(1);
    const V2: KeyVersion = KeyVersion(2);
    const V3: KeyVersion = KeyVersion(3);

    #[test]
    fn a_ring_matches_only_the_stored_active_and_live_versions() {
        let live = [(V1, false), (V2, true)];
        assert!(ring_matches(&live, Some(V2), &[V2, V1]));
        assert!(ring_matches(&live, None, &[V2, V1]));
        // A ring that knows a version the store retired still finds every live record.
        assert!(ring_matches(&live, Some(V2), &[V2, V1, V3]));
        // Missed a rotation: seals under the old active version.
        assert!(!ring_matches(&live, Some(V1), &[V1]));
        // Sealed under a version other than the active one.
        assert!(!ring_matches(&live, Some(V1), &[V2, V1]));
        // Misses a version that still opens records: its lookups could miss a live token.
        assert!(!ring_matches(&live, Some(V2), &[V2]));
        // Nothing stored yet (first start): nothing to compare.
        assert!(ring_matches(&[], Some(V1), &[V1]));
    }
}
