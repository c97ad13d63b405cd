//! Token records: convergence of a PAN on one token per domain, derived tokens and the
//! fingerprint index, detokenize and lifecycle outcomes with their audit records, reads after
//! a change, and refusal when the audit record cannot be written.

use super::{
    all_audit, assert_chain, derived_tok, derived_token, dom, event, fp, new_token, tok, tokenize,
    Fixture,
};
use payhsm::card::{StatusChange, Token, TokenFormat, TokenStatus};
use payhsm::store::{DetokenizeOutcome, StoreError, TokenizeOutcome, TransitionOutcome};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The `derived` column of a token row, read beside the store: 1 or 0.
async fn derived_column(f: &dyn Fixture, token: &Token) -> i64 {
    let sql = format!(
        "SELECT CASE WHEN derived THEN 1 ELSE 0 END FROM tokens WHERE token = '{}'",
        token.as_str()
    );
    f.query_i64(&sql).await
}

pub async fn same_pan_converges_within_a_domain_and_differs_across_domains(f: &dyn Fixture) {
    let s = f.open().await;
    let first = tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;
    let TokenizeOutcome::Created(created) = first else {
        panic!("{first:?}")
    };
    let again = tokenize(&*s, new_token(tok(2), "shop", fp(1))).await;
    assert_eq!(again, TokenizeOutcome::Existing(created.clone()));
    let other = tokenize(&*s, new_token(tok(3), "other", fp(1))).await;
    assert!(matches!(other, TokenizeOutcome::Created(ref r) if r.token == tok(3)));

    let audit = all_audit(&*s).await;
    let outcomes: Vec<_> = audit.iter().map(|r| r.event.outcome.as_str()).collect();
    assert_eq!(outcomes, ["created", "existing", "created"]);
    assert_eq!(audit[1].event.token.as_deref(), Some(tok(1).as_str()));
    assert_eq!(audit[1].event.last4.as_deref(), Some("1111"));
    assert_chain(&audit);
}

pub async fn a_derived_token_is_found_by_its_own_row_and_kept_out_of_the_index(f: &dyn Fixture) {
    let s = f.open().await;
    let first = tokenize(&*s, derived_token("shop", fp(1))).await;
    assert!(matches!(first, TokenizeOutcome::Created(ref r) if r.token == derived_tok(&fp(1))));
    // A later request offering a random draw for the same PAN gets the derived token.
    let again = tokenize(&*s, new_token(tok(2), "shop", fp(1))).await;
    assert!(matches!(again, TokenizeOutcome::Existing(ref r) if r.token == derived_tok(&fp(1))));
    assert_eq!(derived_column(f, &derived_tok(&fp(1))).await, 1);
    // A random draw is indexed, and found through the index.
    tokenize(&*s, new_token(tok(3), "shop", fp(3))).await;
    assert_eq!(derived_column(f, &tok(3)).await, 0);
    let found = tokenize(&*s, derived_token("shop", fp(3))).await;
    assert!(matches!(found, TokenizeOutcome::Existing(ref r) if r.token == tok(3)));
}

pub async fn a_deleted_derived_token_is_not_reused_and_its_successor_is_found(f: &dyn Fixture) {
    let s = f.open().await;
    let shop = dom("shop");
    tokenize(&*s, derived_token("shop", fp(1))).await;
    let gone = derived_tok(&fp(1));
    s.transition(&gone, &shop, StatusChange::Delete, event("delete"))
        .await
        .unwrap();
    // The derived token's row still exists (deleted): the store refuses it, writing nothing.
    let audit_before = all_audit(&*s).await.len();
    assert_eq!(
        tokenize(&*s, derived_token("shop", fp(1))).await,
        TokenizeOutcome::TokenTaken
    );
    assert_eq!(all_audit(&*s).await.len(), audit_before);
    let next = tokenize(&*s, new_token(tok(7), "shop", fp(1))).await;
    assert!(matches!(next, TokenizeOutcome::Created(ref r) if r.token == tok(7)));
    let again = tokenize(&*s, derived_token("shop", fp(1))).await;
    assert!(matches!(again, TokenizeOutcome::Existing(ref r) if r.token == tok(7)));
}

pub async fn a_changed_token_format_keeps_the_tokens_derived_before_findable(f: &dyn Fixture) {
    let s = f.open().await;
    let TokenizeOutcome::Created(created) = tokenize(&*s, derived_token("shop", fp(1))).await
    else {
        panic!("not created")
    };
    // Under another format the PAN derives another token, which has no row.
    let mut other = new_token(tok(2), "shop", fp(1));
    other.format = TokenFormat::new(4, 4).unwrap();
    other.lookup[0].derived = tok(600_001);
    let out = tokenize(&*s, other).await;
    assert_eq!(out, TokenizeOutcome::Existing(created.clone()));
    assert_eq!(derived_column(f, &created.token).await, 0);
}

pub async fn taken_token_writes_nothing_not_even_audit(f: &dyn Fixture) {
    let s = f.open().await;
    tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;
    let out = tokenize(&*s, new_token(tok(1), "shop", fp(2))).await;
    assert_eq!(out, TokenizeOutcome::TokenTaken);
    assert_eq!(all_audit(&*s).await.len(), 1);
}

pub async fn detokenize_outcomes_are_active_suspended_and_not_found_each_audited(f: &dyn Fixture) {
    let s = f.open().await;
    let shop = dom("shop");
    let TokenizeOutcome::Created(created) = tokenize(&*s, new_token(tok(1), "shop", fp(1))).await
    else {
        panic!("not created")
    };

    let r = s
        .detokenize(&tok(1), &shop, event("detokenize"))
        .await
        .unwrap();
    let DetokenizeOutcome::Active(sealed, receipt) = r else {
        panic!("not active: {r:?}")
    };
    assert_eq!(sealed, created.sealed.unwrap());

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

    let audit = all_audit(&*s).await;
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
    // The release's receipt names its record: the `ok` one, by seq and chain hash.
    let released = audit.iter().find(|r| r.seq == receipt.seq).unwrap();
    assert_eq!(
        (
            released.event.action.as_str(),
            released.event.outcome.as_str()
        ),
        ("detokenize", "ok")
    );
    assert_eq!(released.hash, receipt.record_hash);
    assert_chain(&audit);
}

pub async fn lifecycle_transitions_and_delete_wipes_the_sealed_pan(f: &dyn Fixture) {
    let s = f.open().await;
    let shop = dom("shop");
    tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;

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
    // In the database too: nothing of the sealed PAN or its fingerprint is left in the row.
    let wiped = f
        .query_i64(
            "SELECT COUNT(*) FROM tokens WHERE fingerprint IS NULL AND ciphertext IS NULL
                 AND key_version IS NULL AND nonce IS NULL",
        )
        .await;
    assert_eq!(wiped, 1);

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
    let again = tokenize(&*s, new_token(tok(2), "shop", fp(1))).await;
    assert!(matches!(again, TokenizeOutcome::Created(ref r) if r.token == tok(2)));

    let audit = all_audit(&*s).await;
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

/// A store may keep token rows it has read in memory (SQLite does): a change acknowledged by
/// the writer must be what every later read returns, also while other readers are refilling
/// that cache.
pub async fn a_token_read_after_an_acknowledged_change_sees_the_change(f: &dyn Fixture) {
    let s = f.open().await;
    let shop = dom("shop");
    tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (s, shop, done) = (Arc::clone(&s), shop.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                while !done.load(Ordering::Relaxed) {
                    s.token(&tok(1), &shop).await.unwrap().unwrap();
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    for i in 0..100 {
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
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.unwrap();
    }
}

pub async fn detokenize_is_refused_when_audit_write_fails(f: &dyn Fixture) {
    let s = f.open().await;
    let shop = dom("shop");
    tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;
    f.fail_audit_inserts("detokenize").await;

    let err = s
        .detokenize(&tok(1), &shop, event("detokenize"))
        .await
        .unwrap_err();
    // The database's own error is kept as the source, down the chain.
    let chain = payhsm::fault::Chain(&err).to_string();
    assert!(
        matches!(&err, StoreError::Unavailable(_)) && chain.contains("audit down"),
        "{chain}"
    );
    assert!(!chain.contains("abab"), "no ciphertext in errors");

    // Other writes go on, and the chain has no hole where the refused record would be.
    let out = tokenize(&*s, new_token(tok(2), "shop", fp(2))).await;
    assert!(matches!(out, TokenizeOutcome::Created(_)));
    let audit = all_audit(&*s).await;
    assert_eq!(audit.len(), 2);
    assert!(audit.iter().all(|r| r.event.action != "detokenize"));
    assert_chain(&audit);
}
