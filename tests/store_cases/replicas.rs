//! Replicas on one database: what one writes the other reads, the same PANs tokenized on both
//! at once get one token each, a challenge is consumed once, and one gapless audit chain holds
//! every replica's records. On SQLite the "replicas" are one store (see
//! [`Fixture::replica`]): the same contract between concurrent callers.

use super::{all_audit, assert_chain, derived_token, event, fp, Fixture};
use payhsm::store::{
    ChallengePurpose, ChallengeRecord, ConsumeOutcome, DetokenizeOutcome, TokenizeOutcome,
};
use std::collections::HashMap;

fn challenge(id: &str) -> ChallengeRecord {
    let t0 = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    ChallengeRecord {
        id: id.into(),
        purpose: ChallengePurpose::Enrol,
        challenge: vec![0x5a; 32],
        rp_id: "localhost".into(),
        user: "alice".into(),
        token: None,
        domain: None,
        created_at: payhsm::clock::format_rfc3339(t0),
        expires_at: payhsm::clock::format_rfc3339(t0 + time::Duration::seconds(120)),
        used_at: None,
    }
}

pub async fn a_token_written_on_one_replica_is_read_and_detokenized_on_the_other(f: &dyn Fixture) {
    let a = f.open().await;
    let b = f.replica(&a).await;
    let TokenizeOutcome::Created(created) = a
        .tokenize(derived_token("shop", fp(1)), event("tokenize"))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let got = b
        .detokenize(&created.token, &created.domain, event("detokenize"))
        .await
        .unwrap();
    assert!(
        matches!(&got, DetokenizeOutcome::Active(sealed, _) if Some(sealed) == created.sealed.as_ref()),
        "{got:?}"
    );
    assert_eq!(
        b.token(&created.token, &created.domain).await.unwrap(),
        Some(created)
    );
}

pub async fn two_replicas_tokenizing_the_same_pans_at_once_get_one_token_each(f: &dyn Fixture) {
    let a = f.open().await;
    let b = f.replica(&a).await;
    let mut tasks = Vec::new();
    for n in 100..140u32 {
        for s in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(async move {
                let out = s
                    .tokenize(derived_token("shop", fp(n)), event("tokenize"))
                    .await;
                (n, out.unwrap())
            }));
        }
    }
    let mut tokens = HashMap::new();
    let (mut made, mut found) = (0, 0);
    for t in tasks {
        let (n, out) = t.await.unwrap();
        let record = match out {
            TokenizeOutcome::Created(r) => {
                made += 1;
                r
            }
            TokenizeOutcome::Existing(r) => {
                found += 1;
                r
            }
            other => panic!("PAN {n}: {other:?}"),
        };
        let first = tokens.entry(n).or_insert_with(|| record.token.clone());
        assert_eq!(*first, record.token, "PAN {n} got two tokens");
    }
    assert_eq!((made, found), (40, 40));
}

pub async fn a_challenge_consumed_from_two_replicas_at_once_is_consumed_once(f: &dyn Fixture) {
    let a = f.open().await;
    let b = f.replica(&a).await;
    a.create_challenge(challenge("race"), event("create_device_challenge"))
        .await
        .unwrap();
    let now = time::macros::datetime!(2026-01-01 00:00:10 UTC);
    let tasks: Vec<_> = (0..10)
        .flat_map(|_| [a.clone(), b.clone()])
        .map(|s| {
            tokio::spawn(async move {
                s.consume_challenge("race", ChallengePurpose::Enrol, now)
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, ConsumeOutcome::Consumed(_)))
        .count();
    let used = outcomes
        .iter()
        .filter(|o| **o == ConsumeOutcome::AlreadyUsed)
        .count();
    assert_eq!((won, used), (1, 19), "{outcomes:?}");
}

pub async fn replicas_append_to_one_gapless_audit_chain(f: &dyn Fixture) {
    let a = f.open().await;
    let b = f.replica(&a).await;
    let mut tasks = Vec::new();
    for n in 0..30u32 {
        for s in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(async move {
                s.tokenize(derived_token("shop", fp(n)), event("tokenize"))
                    .await
                    .unwrap();
                s.record(event("refused")).await.unwrap();
            }));
        }
    }
    // A third replica starts while the two write: its open-time check of the chain head sees
    // one snapshot, and its records join the same chain.
    let late = f.replica(&a).await;
    late.record(event("late_replica")).await.unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    late.record(event("late_replica")).await.unwrap();

    let records = all_audit(&*b).await;
    assert_eq!(records.len(), 30 * 2 * 2 + 2);
    assert_chain(&records);
    assert_eq!(all_audit(&*a).await, records);
    assert_eq!(all_audit(&*late).await, records);
    let head = late.latest_audit_record().await.unwrap();
    assert_eq!(head.as_ref(), records.last());
    for s in [&a, &b, &late] {
        s.ping().await.unwrap();
    }
}
