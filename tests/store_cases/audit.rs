//! The audit chain: gapless and verifiable under concurrent writers, continued after a
//! restart, without a hole or a fork where a job of a batch failed, append-only in the
//! database itself, and its head readable on its own.

use super::{all_audit, assert_chain, dom, event, fp, new_token, tok, tokenize, Fixture};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use payhsm::audit::{export_jsonl, verify_export, Checkpoint};
use payhsm::store::TokenizeOutcome;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::sync::Arc;

pub async fn concurrent_tokenizations_all_commit_with_a_gapless_signed_chain(f: &dyn Fixture) {
    let s = f.open().await;
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
    let audit = all_audit(&*s).await;
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

pub async fn chain_continues_after_close_and_reopen(f: &dyn Fixture) {
    {
        let s = f.open().await;
        s.record(event("startup")).await.unwrap();
        tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;
    }
    let s = f.open().await;
    s.record(event("startup")).await.unwrap();
    let audit = all_audit(&*s).await;
    assert_eq!(audit.len(), 3);
    assert_chain(&audit);
    assert_eq!(s.audit_records(1, 1).await.unwrap()[0].seq, 2);
}

pub async fn failed_jobs_in_a_batch_leave_no_hole_or_fork(f: &dyn Fixture) {
    let s = f.open().await;
    tokenize(&*s, new_token(tok(0), "shop", fp(0))).await;
    f.fail_audit_inserts("detokenize").await;
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
    if f.rolls_back_requests_alone() {
        assert_eq!(ok, 40);
    }
    // Either way: one record per acknowledged write and nothing else, in one gapless chain,
    // and an unacknowledged tokenization left nothing behind.
    let audit = all_audit(&*s).await;
    assert_eq!(audit.len(), 1 + ok);
    assert_chain(&audit);
    let mut present = 0;
    for i in (1..=60u32).filter(|i| i % 3 != 0) {
        present += usize::from(s.token(&tok(i), &dom("shop")).await.unwrap().is_some());
    }
    assert_eq!(present, ok);
}

pub async fn audit_log_rows_cannot_be_updated_or_deleted(f: &dyn Fixture) {
    let s = f.open().await;
    s.record(event("startup")).await.unwrap();
    let refused = f.execute("UPDATE audit_log SET action = 'x'").await;
    assert!(refused.is_err(), "audit_log accepted an UPDATE");
    let refused = f.execute("DELETE FROM audit_log").await;
    assert!(refused.is_err(), "audit_log accepted a DELETE");
    let audit = all_audit(&*s).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].event.action, "startup");
}

pub async fn the_latest_audit_record_is_the_head_of_the_chain(f: &dyn Fixture) {
    let s = f.open().await;
    assert_eq!(s.latest_audit_record().await.unwrap(), None);
    s.record(event("startup")).await.unwrap();
    tokenize(&*s, new_token(tok(1), "shop", fp(1))).await;
    let audit = all_audit(&*s).await;
    assert_eq!(audit.len(), 2);
    assert_eq!(
        s.latest_audit_record().await.unwrap().as_ref(),
        audit.last()
    );
    // After a restart, too.
    drop(s);
    let s = f.open().await;
    let head = s.latest_audit_record().await.unwrap().unwrap();
    assert_eq!((head.seq, &head.hash), (2, &audit[1].hash));
}
