//! The SQLite store against real database files: convergence, lifecycle, audit in the same
//! transaction, group commit under concurrency, and refusal of unknown schemas.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use payhsm::audit::{
    export_jsonl, link, verify_export, AuditEvent, AuditRecord, Checkpoint, PolicyVerdict, GENESIS,
};
use payhsm::card::{Domain, Last4, StatusChange, Token, TokenFormat, TokenStatus};
use payhsm::keys::{DataKeyState, Fingerprint, KeyVersion, SealedPan, WrappedDataKey};
use payhsm::store::prelude::*;
use payhsm::store::sqlite::{open, open_read_only, SqliteOptions, SqliteStore};
use payhsm::store::{
    DetokenizeOutcome, KeyChangeOutcome, Lookup, NewToken, StoreError, TokenRecord,
    TokenizeOutcome, TransitionOutcome,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vault.db");
    (dir, path)
}

fn store(path: &Path) -> SqliteStore {
    open(path, SqliteOptions::default()).unwrap()
}

fn event(action: &str) -> AuditEvent {
    AuditEvent::new(
        "2026-01-01T00:00:00.000Z".into(),
        "req".into(),
        "spiffe://gw".into(),
        action.into(),
        PolicyVerdict::NotAsked,
    )
}

fn fp(n: u32) -> Fingerprint {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Fingerprint(b)
}

/// A 16-digit token whose middle encodes `n`; its last digit is 2 where 1 would pass Luhn (a
/// token never does).
fn tok(n: u32) -> Token {
    let t = format!("411111{n:06}1111");
    if payhsm::card::luhn_valid(t.as_bytes()) {
        return Token::parse(&format!("411111{n:06}1112")).unwrap();
    }
    Token::parse(&t).unwrap()
}

fn dom(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

/// The token the tests treat as derived from `f` (the store does not derive: it trusts that
/// `lookup[0].derived` is the token derived from `lookup[0].fingerprint`).
fn derived_tok(f: &Fingerprint) -> Token {
    let n = u32::from_be_bytes(f.0[..4].try_into().unwrap());
    tok(500_000 + n)
}

/// A tokenization offering `token`: a random draw, found later through the index, unless it is
/// `derived_tok(fingerprint)`.
fn new_token(token: Token, domain: &str, fingerprint: Fingerprint) -> NewToken {
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
fn derived_token(domain: &str, fingerprint: Fingerprint) -> NewToken {
    new_token(derived_tok(&fingerprint), domain, fingerprint)
}

/// The `derived` column of a token row, read beside the store.
fn derived_column(path: &Path, token: &Token) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT derived FROM tokens WHERE token = ?1",
        [token.as_str()],
        |r| r.get(0),
    )
    .unwrap()
}

/// Tokenizes `t` with a plain audit event.
async fn tokenize(s: &SqliteStore, t: NewToken) -> TokenizeOutcome {
    s.tokenize(t, event("tokenize")).await.unwrap()
}

async fn all_audit(s: &SqliteStore) -> Vec<AuditRecord> {
    s.audit_records(0, 100_000).await.unwrap()
}

/// Recomputes the chain with `link`: gapless from 1 and every hash reproduced.
fn assert_chain(records: &[AuditRecord]) {
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        let (again, h) = link(&prev, i as u64 + 1, r.event.clone());
        assert_eq!(&again, r, "record {}", i + 1);
        prev = h;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn same_pan_converges_within_a_domain_and_differs_across_domains() {
    let (_d, path) = db();
    let s = store(&path);
    let first = tokenize(&s, new_token(tok(1), "shop", fp(1))).await;
    let TokenizeOutcome::Created(created) = first else {
        panic!("{first:?}")
    };
    let again = tokenize(&s, new_token(tok(2), "shop", fp(1))).await;
    assert_eq!(again, TokenizeOutcome::Existing(created.clone()));
    let other = tokenize(&s, new_token(tok(3), "other", fp(1))).await;
    assert!(matches!(other, TokenizeOutcome::Created(ref r) if r.token == tok(3)));

    let audit = all_audit(&s).await;
    let outcomes: Vec<_> = audit.iter().map(|r| r.event.outcome.as_str()).collect();
    assert_eq!(outcomes, ["created", "existing", "created"]);
    assert_eq!(audit[1].event.token.as_deref(), Some(tok(1).as_str()));
    assert_eq!(audit[1].event.last4.as_deref(), Some("1111"));
    assert_chain(&audit);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_derived_token_is_found_by_its_own_row_and_kept_out_of_the_index() {
    let (_d, path) = db();
    let s = store(&path);
    let first = tokenize(&s, derived_token("shop", fp(1))).await;
    assert!(matches!(first, TokenizeOutcome::Created(ref r) if r.token == derived_tok(&fp(1))));
    // A later request offering a random draw for the same PAN gets the derived token.
    let again = tokenize(&s, new_token(tok(2), "shop", fp(1))).await;
    assert!(matches!(again, TokenizeOutcome::Existing(ref r) if r.token == derived_tok(&fp(1))));
    assert_eq!(derived_column(&path, &derived_tok(&fp(1))), 1);
    // A random draw is indexed, and found through the index.
    tokenize(&s, new_token(tok(3), "shop", fp(3))).await;
    assert_eq!(derived_column(&path, &tok(3)), 0);
    let found = tokenize(&s, derived_token("shop", fp(3))).await;
    assert!(matches!(found, TokenizeOutcome::Existing(ref r) if r.token == tok(3)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deleted_derived_token_is_not_reused_and_its_successor_is_found() {
    let (_d, path) = db();
    let s = store(&path);
    let shop = dom("shop");
    tokenize(&s, derived_token("shop", fp(1))).await;
    let gone = derived_tok(&fp(1));
    s.transition(&gone, &shop, StatusChange::Delete, event("delete"))
        .await
        .unwrap();
    // The derived token's row still exists (deleted): the store refuses it, writing nothing.
    let audit_before = all_audit(&s).await.len();
    assert_eq!(
        tokenize(&s, derived_token("shop", fp(1))).await,
        TokenizeOutcome::TokenTaken
    );
    assert_eq!(all_audit(&s).await.len(), audit_before);
    let next = tokenize(&s, new_token(tok(7), "shop", fp(1))).await;
    assert!(matches!(next, TokenizeOutcome::Created(ref r) if r.token == tok(7)));
    let again = tokenize(&s, derived_token("shop", fp(1))).await;
    assert!(matches!(again, TokenizeOutcome::Existing(ref r) if r.token == tok(7)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_changed_token_format_keeps_the_tokens_derived_before_findable() {
    let (_d, path) = db();
    let s = store(&path);
    let TokenizeOutcome::Created(created) = tokenize(&s, derived_token("shop", fp(1))).await else {
        panic!("not created")
    };
    // Under another format the PAN derives another token, which has no row.
    let mut other = new_token(tok(2), "shop", fp(1));
    other.format = TokenFormat::new(4, 4).unwrap();
    other.lookup[0].derived = tok(600_001);
    let out = tokenize(&s, other).await;
    assert_eq!(out, TokenizeOutcome::Existing(created.clone()));
    assert_eq!(derived_column(&path, &created.token), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn taken_token_writes_nothing_not_even_audit() {
    let (_d, path) = db();
    let s = store(&path);
    tokenize(&s, new_token(tok(1), "shop", fp(1))).await;
    let out = tokenize(&s, new_token(tok(1), "shop", fp(2))).await;
    assert_eq!(out, TokenizeOutcome::TokenTaken);
    assert_eq!(all_audit(&s).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn detokenize_outcomes_are_audited() {
    let (_d, path) = db();
    let s = store(&path);
    let shop = dom("shop");
    tokenize(&s, new_token(tok(1), "shop", fp(1))).await;

    let r = s
        .detokenize(&tok(1), &shop, event("detokenize"))
        .await
        .unwrap();
    assert!(matches!(r, DetokenizeOutcome::Active(_)), "{r:?}");

    s.transition(&tok(1), &shop, StatusChange::Suspend, event("suspend"))
        .await
        .unwrap();
    // A suspended token never yields its sealed PAN: the outcome has none to give.
    assert_eq!(
        s.detokenize(&tok(1), &shop, event("detokenize"))
            .await
            .unwrap(),
        DetokenizeOutcome::Suspended
    );

    assert_eq!(
        s.detokenize(&tok(9), &shop, event("detokenize"))
            .await
            .unwrap(),
        DetokenizeOutcome::NotFound
    );

    let audit = all_audit(&s).await;
    let det: Vec<_> = audit
        .iter()
        .filter(|r| r.event.action == "detokenize")
        .map(|r| (r.event.outcome.as_str(), r.event.token.clone()))
        .collect();
    assert_eq!(
        det,
        [
            ("ok", Some(tok(1).to_string())),
            ("token_suspended", Some(tok(1).to_string())),
            // It names nothing: masked (it might be a card number with padding).
            ("token_not_found", Some(tok(9).masked())),
        ]
    );
    assert_chain(&audit);
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_transitions_and_delete_wipes_the_sealed_pan() {
    let (_d, path) = db();
    let s = store(&path);
    let shop = dom("shop");
    tokenize(&s, new_token(tok(1), "shop", fp(1))).await;

    let out = s
        .transition(&tok(1), &shop, StatusChange::Resume, event("resume"))
        .await
        .unwrap();
    assert_eq!(out, TransitionOutcome::Conflict(TokenStatus::Active));
    let out = s
        .transition(&tok(1), &shop, StatusChange::Suspend, event("suspend"))
        .await
        .unwrap();
    assert!(matches!(out, TransitionOutcome::Done(ref r) if r.status == TokenStatus::Suspended));
    let out = s
        .transition(&tok(1), &shop, StatusChange::Delete, event("delete"))
        .await
        .unwrap();
    let TransitionOutcome::Done(deleted) = out else {
        panic!("{out:?}")
    };
    assert_eq!(deleted.status, TokenStatus::Deleted);
    assert_eq!((deleted.sealed, deleted.fingerprint), (None, None));

    let stored = s.token(&tok(1), &shop).await.unwrap().unwrap();
    assert_eq!(stored.status, TokenStatus::Deleted);
    assert_eq!((stored.sealed, stored.fingerprint), (None, None));
    // On disk too: nothing of the sealed PAN or its fingerprint is left in the row.
    let wiped: bool = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT fingerprint IS NULL AND ciphertext IS NULL AND key_version IS NULL
                    AND nonce IS NULL
             FROM tokens",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(wiped);

    let out = s
        .transition(&tok(1), &shop, StatusChange::Resume, event("resume"))
        .await
        .unwrap();
    assert_eq!(out, TransitionOutcome::NotFound);
    assert_eq!(
        s.detokenize(&tok(1), &shop, event("detokenize"))
            .await
            .unwrap(),
        DetokenizeOutcome::NotFound
    );

    // The same PAN tokenizes again, to a new token.
    let again = tokenize(&s, new_token(tok(2), "shop", fp(1))).await;
    assert!(matches!(again, TokenizeOutcome::Created(ref r) if r.token == tok(2)));

    let audit = all_audit(&s).await;
    let outcomes: Vec<_> = audit.iter().map(|r| r.event.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        [
            "created",
            "token_state_conflict",
            "ok",
            "ok",
            "token_not_found",
            "token_not_found",
            "created"
        ]
    );
    assert_chain(&audit);
}

/// The store keeps token rows it has read in memory: a change acknowledged by the writer must be
/// what every later read returns, also while other readers are refilling the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_read_after_an_acknowledged_change_sees_the_change() {
    let (_d, path) = db();
    let s = Arc::new(store(&path));
    let shop = dom("shop");
    tokenize(&s, new_token(tok(1), "shop", fp(1))).await;
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let s = Arc::clone(&s);
            let shop = shop.clone();
            tokio::spawn(async move {
                for _ in 0..2000 {
                    s.token(&tok(1), &shop).await.unwrap().unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 0..200 {
        let (change, expect) = if i % 2 == 0 {
            (StatusChange::Suspend, TokenStatus::Suspended)
        } else {
            (StatusChange::Resume, TokenStatus::Active)
        };
        let out = s
            .transition(&tok(1), &shop, change, event("lifecycle"))
            .await
            .unwrap();
        assert!(matches!(out, TransitionOutcome::Done(_)), "{out:?}");
        let read = s.token(&tok(1), &shop).await.unwrap().unwrap();
        assert_eq!(read.status, expect, "read after change {i}");
    }
    for r in readers {
        r.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_store_on_the_same_file_is_refused_while_the_first_is_open() {
    let (_d, path) = db();
    let first = store(&path);
    let err = open(&path, SqliteOptions::default()).unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("in use by another process")),
        "{err}"
    );
    first.record(event("still_writing")).await.unwrap();
    // A read-only open (audit export) works beside the writer, sees its writes, writes nothing.
    let ro = open_read_only(&path).unwrap();
    assert_eq!(all_audit(&ro).await.len(), 1);
    let refused = ro.record(event("export")).await.unwrap_err();
    assert!(
        matches!(&refused, StoreError::Unavailable(m) if m.contains("read-only")),
        "{refused}"
    );
    first.record(event("after_export")).await.unwrap();
    assert_eq!(all_audit(&ro).await.len(), 2);
    drop(first);
    let second = store(&path);
    second.record(event("startup")).await.unwrap();
    assert_eq!(all_audit(&second).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_tokenizations_all_commit_with_a_gapless_signed_chain() {
    let (_d, path) = db();
    let s = Arc::new(store(&path));
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                s.tokenize(new_token(tok(i), "shop", fp(i)), event("tokenize"))
                    .await
            })
        })
        .collect();
    for t in tasks {
        assert!(matches!(
            t.await.unwrap().unwrap(),
            TokenizeOutcome::Created(_)
        ));
    }
    let audit = all_audit(&s).await;
    assert_eq!(audit.len(), 200);
    assert_chain(&audit);

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let head = audit.last().unwrap().hash.clone();
    let sig = key.sign(&rng, &Checkpoint::message(200, &head)).unwrap();
    let cp = Checkpoint {
        records: 200,
        head,
        public_key: URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        signature: URL_SAFE_NO_PAD.encode(sig.as_ref()),
    };
    let summary =
        verify_export(&export_jsonl(&audit, &cp), Some(key.public_key().as_ref())).unwrap();
    assert_eq!(summary.records, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn chain_continues_after_close_and_reopen() {
    let (_d, path) = db();
    {
        let s = store(&path);
        s.record(event("startup")).await.unwrap();
        tokenize(&s, new_token(tok(1), "shop", fp(1))).await;
    }
    let s = store(&path);
    s.record(event("startup")).await.unwrap();
    let audit = all_audit(&s).await;
    assert_eq!(audit.len(), 3);
    assert_chain(&audit);
    assert_eq!(s.audit_records(1, 1).await.unwrap()[0].seq, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn detokenize_is_refused_when_audit_write_fails() {
    let (_d, path) = db();
    let s = store(&path);
    let shop = dom("shop");
    tokenize(&s, new_token(tok(1), "shop", fp(1))).await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log
             WHEN NEW.action = 'detokenize'
             BEGIN SELECT RAISE(ABORT, 'audit down'); END;",
        )
        .unwrap();

    let err = s
        .detokenize(&tok(1), &shop, event("detokenize"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("audit down")),
        "{err}"
    );
    assert!(!err.to_string().contains("abab"), "no ciphertext in errors");

    // Other writes go on, and the chain has no hole where the refused record would be.
    let out = tokenize(&s, new_token(tok(2), "shop", fp(2))).await;
    assert!(matches!(out, TokenizeOutcome::Created(_)));
    let audit = all_audit(&s).await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|r| r.event.action != "detokenize"));
    assert_chain(&audit);
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_jobs_in_a_batch_leave_no_hole_or_fork() {
    let (_d, path) = db();
    let s = Arc::new(store(&path));
    tokenize(&s, new_token(tok(0), "shop", fp(0))).await;
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log
             WHEN NEW.action = 'detokenize'
             BEGIN SELECT RAISE(ABORT, 'audit down'); END;",
        )
        .unwrap();
    // Interleave failing detokenizations with succeeding tokenizations, all at once.
    let tasks: Vec<_> = (1..=60u32)
        .map(|i| {
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                if i % 3 == 0 {
                    s.detokenize(&tok(0), &dom("shop"), event("detokenize"))
                        .await
                        .map(|_| false)
                } else {
                    s.tokenize(new_token(tok(i), "shop", fp(i)), event("tokenize"))
                        .await
                        .map(|_| true)
                }
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(true) => ok += 1,
            Ok(false) => panic!("a detokenize succeeded without its audit record"),
            Err(_) => {}
        }
    }
    assert_eq!(ok, 40);
    let audit = all_audit(&s).await;
    assert_eq!(audit.len(), 41);
    assert_chain(&audit);
}

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_round_trip_with_their_audit_record() {
    let (_d, path) = db();
    let s = store(&path);
    let key = WrappedDataKey {
        version: KeyVersion(1),
        kek_label: "payhsm-kek".into(),
        iv: [3; 12],
        wrapped: vec![9; 48],
        state: DataKeyState::Active,
        created_at: "2026-01-01T00:00:00.000Z".into(),
    };
    let end = "2027-01-01T00:00:00.000Z".to_owned();
    let done = s
        .activate_data_key(key.clone(), end.clone(), event("data_key_created"))
        .await
        .unwrap();
    assert_eq!(done, KeyChangeOutcome::Done);
    assert_eq!(s.data_keys().await.unwrap(), vec![key.clone()]);
    // The same version again is not the next one: refused, and no audit record is written.
    assert!(matches!(
        s.activate_data_key(key, end, event("data_key_created"))
            .await
            .unwrap(),
        KeyChangeOutcome::StateConflict(_)
    ));
    assert_eq!(all_audit(&s).await.len(), 1);
    s.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn database_with_a_newer_schema_is_refused() {
    let (_d, path) = db();
    drop(store(&path));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (999, 'later')",
            [],
        )
        .unwrap();
    assert!(matches!(
        open(&path, SqliteOptions::default()),
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn audit_log_rows_cannot_be_updated_or_deleted() {
    let (_d, path) = db();
    let s = store(&path);
    s.record(event("startup")).await.unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    assert!(c.execute("UPDATE audit_log SET action = 'x'", []).is_err());
    assert!(c.execute("DELETE FROM audit_log", []).is_err());
}
