//! Token rows recently read (`store.token_cache_rows`, 16,384 by default), kept in memory so a
//! metadata read or a payment's token check does not open a read transaction each time.
//!
//! Correct only while this process is the database's one writer, which [`super::open`]
//! enforces with an exclusive lock on the database file. The writer thread invalidates every
//! row a batch touched after the batch ends (commit or not) and before it answers the callers,
//! so a change is visible here before anyone is told it happened.
//!
//! A reader that misses takes a stamp (its shard's epoch) before it reads the database and
//! inserts what it read only if the epoch has not moved: an invalidation that came in between
//! may be for the row it read from an older snapshot. Rows that do not exist are not cached (a
//! new token's insert therefore needs no invalidation). What is cached is the row as stored: the
//! sealed PAN, never a plaintext.

use crate::card::{Domain, Token};
use crate::store::TokenRecord;
use std::collections::hash_map::{DefaultHasher, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::{Mutex, PoisonError};

/// Shards, each behind its own lock.
const SHARDS: usize = 16;

type Key = (Domain, Token);

#[derive(Default)]
struct Shard {
    /// Bumped by every invalidation in this shard.
    epoch: u64,
    rows: HashMap<Key, TokenRecord>,
}

/// The cache; see the module documentation.
pub(super) struct TokenCache {
    shards: Vec<Mutex<Shard>>,
    /// Rows kept per shard; a full shard drops an arbitrary row.
    per_shard: usize,
}

/// A shard's epoch when a reader missed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Stamp {
    shard: usize,
    epoch: u64,
}

impl TokenCache {
    /// A cache of about `rows` rows (at least one per shard).
    pub(super) fn new(rows: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: rows.div_ceil(SHARDS).max(1),
        }
    }

    fn shard_of(domain: &Domain, token: &Token) -> usize {
        let mut h = DefaultHasher::new();
        domain.hash(&mut h);
        token.hash(&mut h);
        // The remainder is below SHARDS, which fits any usize.
        usize::try_from(h.finish() % SHARDS as u64).unwrap_or(0)
    }

    fn with_shard<T>(&self, shard: usize, f: impl FnOnce(&mut Shard) -> T) -> Option<T> {
        let lock = self.shards.get(shard)?;
        let mut guard = lock.lock().unwrap_or_else(PoisonError::into_inner);
        Some(f(&mut guard))
    }

    /// The cached row, or the stamp to pass to [`TokenCache::insert`] after reading it.
    pub(super) fn get(&self, domain: &Domain, token: &Token) -> Result<TokenRecord, Stamp> {
        let shard = Self::shard_of(domain, token);
        let key = (domain.clone(), token.clone());
        self.with_shard(shard, |s| match s.rows.get(&key) {
            Some(row) => Ok(row.clone()),
            None => Err(Stamp {
                shard,
                epoch: s.epoch,
            }),
        })
        // Unreachable (shard_of stays in range); a stamp no insert will accept.
        .unwrap_or(Err(Stamp {
            shard: usize::MAX,
            epoch: 0,
        }))
    }

    /// Keeps `row`, read after `stamp` was taken, unless its shard was invalidated since.
    pub(super) fn insert(&self, stamp: Stamp, row: &TokenRecord) {
        if Self::shard_of(&row.domain, &row.token) != stamp.shard {
            return;
        }
        let per_shard = self.per_shard;
        self.with_shard(stamp.shard, |s| {
            if s.epoch != stamp.epoch {
                return;
            }
            if s.rows.len() >= per_shard {
                let victim = s.rows.keys().next().cloned();
                if let Some(victim) = victim {
                    s.rows.remove(&victim);
                }
            }
            s.rows
                .insert((row.domain.clone(), row.token.clone()), row.clone());
        });
    }

    /// Forgets the row; called by the writer for every row a batch touched.
    pub(super) fn invalidate(&self, domain: &Domain, token: &Token) {
        let shard = Self::shard_of(domain, token);
        let key = (domain.clone(), token.clone());
        self.with_shard(shard, |s| {
            s.epoch = s.epoch.wrapping_add(1);
            s.rows.remove(&key);
        });
    }

    /// Rows held (for tests).
    #[cfg(test)]
    fn len(&self) -> usize {
        (0..SHARDS)
            .filter_map(|i| self.with_shard(i, |s| s.rows.len()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::{Last4, TokenStatus};

    const ROWS: usize = 16_384;

    fn row(token: &str, status: TokenStatus) -> TokenRecord {
        TokenRecord {
            token: Token::parse(token).unwrap(),
            domain: Domain::parse("shop").unwrap(),
            fingerprint: None,
            sealed: None,
            last4: Last4::parse("1111").unwrap(),
            status,
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-01T00:00:00Z".into(),
        }
    }

    #[test]
    fn a_read_from_before_an_invalidation_is_not_kept() {
        let cache = TokenCache::new(ROWS);
        let old = row("4000001234561111", TokenStatus::Active);
        let stamp = cache.get(&old.domain, &old.token).unwrap_err();
        // The writer changes the row and invalidates it while the reader is in the database.
        cache.invalidate(&old.domain, &old.token);
        cache.insert(stamp, &old);
        assert!(cache.get(&old.domain, &old.token).is_err());
    }

    #[test]
    fn a_read_kept_is_served_until_invalidated() {
        let cache = TokenCache::new(ROWS);
        let r = row("4000001234561111", TokenStatus::Active);
        let stamp = cache.get(&r.domain, &r.token).unwrap_err();
        cache.insert(stamp, &r);
        assert_eq!(cache.get(&r.domain, &r.token).unwrap(), r);
        cache.invalidate(&r.domain, &r.token);
        assert!(cache.get(&r.domain, &r.token).is_err());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = TokenCache::new(ROWS);
        // A token never passes Luhn: the numbers that would are skipped (one in ten).
        let tokens = (0..ROWS * 3)
            .map(|i| format!("4000{i:08}1111"))
            .filter(|t| !crate::card::luhn_valid(t.as_bytes()));
        for t in tokens.take(ROWS * 2) {
            let r = row(&t, TokenStatus::Active);
            let stamp = cache.get(&r.domain, &r.token).unwrap_err();
            cache.insert(stamp, &r);
        }
        assert!(cache.len() <= ROWS);
        assert!(cache.len() > ROWS / 2);
    }
}
