//! The store conformance suite (issue 17): every behaviour of the store port that does not
//! depend on the backend, written once as `pub async fn <case>(f: &dyn Fixture)` and run
//! against SQLite (`tests/store_sqlite.rs`) and PostgreSQL (`tests/store_postgres.rs`) through
//! one [`conformance!`] list each. `tests/store_conformance.rs` checks both lists name every
//! case here, so a case cannot run on one backend only.
//!
//! Cases by area: [`tokens`], [`audit`], [`devices`], [`authorizations`], [`keys`],
//! [`replicas`]. The fixtures are in [`backends`].
#![allow(dead_code, unused_imports, unused_macros)] // each test crate uses part of the suite

pub mod audit;
pub mod authorizations;
pub mod backends;
pub mod devices;
pub mod keys;
pub mod replicas;
pub mod tokens;

pub use audit::*;
pub use authorizations::*;
pub use devices::*;
pub use keys::*;
pub use replicas::*;
pub use tokens::*;

use payhsm::audit::{link, AuditEvent, AuditRecord, PolicyVerdict, GENESIS};
use payhsm::card::{Domain, Last4, Token, TokenFormat, TokenStatus};
use payhsm::keys::{Fingerprint, KeyVersion, SealedPan};
use payhsm::store::prelude::*;
use payhsm::store::{Lookup, NewToken, TokenRecord, TokenizeOutcome};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// What a fixture method returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One backend's store on fresh data, for one case.
pub trait Fixture: Send + Sync {
    /// A store on this fixture's data. Called again once every earlier store is dropped, it
    /// opens the same data again (what a restart sees).
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>>;

    /// A second store on the same data, as another replica opens it. PostgreSQL opens a new
    /// store on the same database. SQLite returns `first` itself: a file has one writer (a
    /// second open is refused, see `tests/store_sqlite.rs`), so there the replica cases check
    /// the same contract between concurrent callers of one store.
    fn replica(&self, first: &Arc<dyn Store>) -> BoxFuture<'_, Arc<dyn Store>>;

    /// Runs `sql` on a connection of its own beside the store: `Err` with the database's
    /// message if it is refused.
    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), String>>;

    /// The integer the one-row, one-column `sql` selects, read beside the store.
    fn query_i64<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, i64>;

    /// From now on every insert into the audit log of a record with this `action` fails with
    /// the message `audit down` (a trigger, in each backend's dialect).
    fn fail_audit_inserts<'a>(&'a self, action: &'a str) -> BoxFuture<'a, ()>;

    /// Whether a request that fails inside a group commit is rolled back alone (SQLite: a
    /// savepoint per request) or with the requests batched with it, all answered an error and
    /// none applied (PostgreSQL: no savepoint round trips, `docs/decisions.md`).
    fn rolls_back_requests_alone(&self) -> bool;
}

/// One `#[tokio::test]` per listed case, each on a fixture made by `$fixture` (an expression
/// evaluated in the test). `tests/store_conformance.rs` reads these lists: one invocation per
/// backend file, the case names separated by commas.
macro_rules! conformance {
    ($fixture:expr; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let fixture = $fixture;
                $crate::store_cases::$case(&fixture).await;
            }
        )+
    };
}
pub(crate) use conformance;

/// An audit event as the services write them, outcome left to the store.
pub fn event(action: &str) -> AuditEvent {
    AuditEvent::new(
        "2026-01-01T00:00:00.000Z".into(),
        "req".into(),
        "spiffe://gw".into(),
        action.into(),
        PolicyVerdict::NotAsked,
    )
}

/// A fingerprint that encodes `n`.
pub fn fp(n: u32) -> Fingerprint {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Fingerprint(b)
}

/// A 16-digit token whose middle encodes `n`; its last digit is 2 where 1 would pass Luhn (a
/// token never does).
pub fn tok(n: u32) -> Token {
    let t = format!("411111{n:06}1111");
    if payhsm::card::luhn_valid(t.as_bytes()) {
        return Token::parse(&format!("411111{n:06}1112")).unwrap();
    }
    Token::parse(&t).unwrap()
}

pub fn dom(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

/// The token the cases treat as derived from `f` (the store does not derive: it trusts that
/// `lookup[0].derived` is the token derived from `lookup[0].fingerprint`).
pub fn derived_tok(f: &Fingerprint) -> Token {
    let n = u32::from_be_bytes(f.0[..4].try_into().unwrap());
    tok(500_000 + n)
}

/// A tokenization offering `token`, sealed under data key version 1: a random draw, found
/// later through the index, unless it is `derived_tok(fingerprint)`.
pub fn new_token(token: Token, domain: &str, fingerprint: Fingerprint) -> NewToken {
    NewToken {
        format: TokenFormat::default(),
        record: TokenRecord {
            token,
            domain: dom(domain),
            fingerprint: Some(fingerprint),
            sealed: Some(SealedPan {
                key_version: KeyVersion(1),
                nonce: [7; 12],
                ciphertext: vec![0xab; 40],
            }),
            last4: Last4::parse("1111").unwrap(),
            status: TokenStatus::Active,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
        },
        lookup: vec![Lookup {
            version: KeyVersion(1),
            fingerprint,
            derived: derived_tok(&fingerprint),
        }],
    }
}

/// A tokenization offering the token derived from `fingerprint` (the first offer).
pub fn derived_token(domain: &str, fingerprint: Fingerprint) -> NewToken {
    new_token(derived_tok(&fingerprint), domain, fingerprint)
}

/// Tokenizes `t` with a plain audit event.
pub async fn tokenize(s: &dyn Store, t: NewToken) -> TokenizeOutcome {
    s.tokenize(t, event("tokenize")).await.unwrap()
}

/// The whole audit log.
pub async fn all_audit(s: &dyn Store) -> Vec<AuditRecord> {
    s.audit_records(0, 100_000).await.unwrap()
}

/// Recomputes the chain with `link`: gapless from 1 and every hash reproduced.
pub fn assert_chain(records: &[AuditRecord]) {
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        let (again, h) = link(&prev, i as u64 + 1, r.event.clone());
        assert_eq!(&again, r, "record {}", i + 1);
        prev = h;
    }
}
