//! Key lifecycle records: custodian approvals and their window, data key versions (activate,
//! retire, destroy), the conditional rewrap of token records, the ring check behind
//! `KeysChanged`, and the KEK check value pinned once.

use super::Fixture;
use payhsm::audit::{AuditEvent, PolicyVerdict};
use payhsm::card::{Domain, Last4, Token, TokenFormat, TokenStatus};
use payhsm::keys::{DataKeyState, Fingerprint, KeyVersion, SealedPan, WrappedDataKey};
use payhsm::store::prelude::*;
use payhsm::store::{
    ApprovalOutcome, KeyApproval, KeyChangeOutcome, Lookup, NewToken, Rewrapped, TokenRecord,
    TokenizeOutcome,
};

fn event(action: &str) -> AuditEvent {
    AuditEvent::new(
        "2026-01-01T00:00:00.000Z".into(),
        "req".into(),
        "spiffe://custodian".into(),
        action.into(),
        PolicyVerdict::NotAsked,
    )
}

fn approval(custodian: &str, now: &str, expires_at: &str) -> KeyApproval {
    KeyApproval {
        change: "retire data 1".into(),
        custodian: custodian.into(),
        now: now.into(),
        expires_at: expires_at.into(),
    }
}

async fn audit_outcomes(s: &dyn Store) -> Vec<String> {
    s.audit_records(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}:{}", r.event.action, r.event.outcome))
        .collect()
}

pub async fn a_second_distinct_custodian_within_the_window_grants_a_change(f: &dyn Fixture) {
    let s = f.open().await;
    let (a, b) = ("spiffe://c/custodian-1", "spiffe://c/custodian-2");
    let t = |m: u32| format!("2026-01-01T00:{m:02}:00.000Z");
    let first = s
        .approve_key_change(approval(a, &t(0), &t(15)), event("approve"))
        .await
        .unwrap();
    assert_eq!(first, ApprovalOutcome::Pending { expires_at: t(15) });
    // The same custodian again, even with a fresh window, is not a second approval.
    let same = s
        .approve_key_change(approval(a, &t(1), &t(16)), event("approve"))
        .await
        .unwrap();
    assert_eq!(same, ApprovalOutcome::SameCustodian { expires_at: t(15) });
    // Another custodian, after the first approval lapsed: a new first approval.
    let late = s
        .approve_key_change(approval(b, &t(20), &t(35)), event("approve"))
        .await
        .unwrap();
    assert_eq!(late, ApprovalOutcome::Pending { expires_at: t(35) });
    // A different change does not match.
    let mut other = approval(a, &t(21), &t(36));
    other.change = "retire data 2".into();
    assert!(matches!(
        s.approve_key_change(other, event("approve")).await.unwrap(),
        ApprovalOutcome::Pending { .. }
    ));
    // The first custodian within custodian-2's window grants it, naming custodian-2 first.
    let granted = s
        .approve_key_change(approval(a, &t(22), &t(37)), event("approve"))
        .await
        .unwrap();
    assert_eq!(granted, ApprovalOutcome::Granted { first: b.into() });
    // The grant used the pending approval up: the next one starts over.
    let next = s
        .approve_key_change(approval(b, &t(23), &t(38)), event("approve"))
        .await
        .unwrap();
    assert!(matches!(next, ApprovalOutcome::Pending { .. }));
    assert_eq!(
        audit_outcomes(&*s).await,
        [
            "approve:pending",
            "approve:same_custodian",
            "approve:pending",
            "approve:pending",
            "approve:granted",
            "approve:pending"
        ]
    );
}

fn wrapped(version: u32) -> WrappedDataKey {
    WrappedDataKey {
        version: KeyVersion(version),
        kek_label: "payhsm-kek".into(),
        iv: [version as u8; 12],
        wrapped: vec![9; 48],
        state: DataKeyState::Active,
        created_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

fn sealed(version: u32, nonce: u8) -> SealedPan {
    SealedPan {
        key_version: KeyVersion(version),
        nonce: [nonce; 12],
        ciphertext: vec![0xab; 40],
    }
}

/// A 16-digit token whose middle encodes `n`; its last digit is 2 where 1 would pass Luhn (a
/// token never does).
fn token(n: u32) -> Token {
    let t = format!("41111100{n:04}1111");
    if payhsm::card::luhn_valid(t.as_bytes()) {
        return Token::parse(&format!("41111100{n:04}1112")).unwrap();
    }
    Token::parse(&t).unwrap()
}

fn record(n: u32, version: u32) -> TokenRecord {
    TokenRecord {
        token: token(n),
        domain: Domain::parse("shop").unwrap(),
        fingerprint: Some(Fingerprint([n as u8; 32])),
        sealed: Some(sealed(version, 1)),
        last4: Last4::parse("1111").unwrap(),
        status: TokenStatus::Active,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        updated_at: "2026-01-01T00:00:00.000Z".into(),
    }
}

/// Inserts `r` as the token derived from its fingerprint (the store trusts `lookup[0]`).
async fn insert(s: &dyn Store, r: TokenRecord) -> TokenizeOutcome {
    s.tokenize(derived(r), event("tokenize")).await.unwrap()
}

fn derived(r: TokenRecord) -> NewToken {
    let lookup = vec![Lookup {
        version: r.sealed.as_ref().unwrap().key_version,
        fingerprint: r.fingerprint.unwrap(),
        derived: r.token.clone(),
    }];
    NewToken {
        record: r,
        format: TokenFormat::default(),
        lookup,
    }
}

async fn state_of(s: &dyn Store, version: u32) -> (DataKeyState, u64) {
    let info = s.data_key_info().await.unwrap();
    let d = info.iter().find(|d| d.version.0 == version).unwrap();
    (d.state, d.records)
}

pub async fn a_data_key_version_is_retired_and_destroyed_only_once_no_record_uses_it(
    f: &dyn Fixture,
) {
    let s = f.open().await;
    let end = || "2027-01-01T00:00:00.000Z".to_owned();
    let now = || "2026-06-01T00:00:00.000Z".to_owned();
    s.activate_data_key(wrapped(1), end(), event("key_rotate"))
        .await
        .unwrap();
    for n in 0..3 {
        assert!(matches!(
            insert(&*s, record(n, 1)).await,
            TokenizeOutcome::Created(_)
        ));
    }
    // Version 2 becomes active; version 1 only opens its records now.
    let done = s
        .activate_data_key(wrapped(2), end(), event("key_rotate"))
        .await
        .unwrap();
    assert_eq!(done, KeyChangeOutcome::Done);
    assert_eq!(state_of(&*s, 1).await, (DataKeyState::DecryptOnly, 3));
    assert_eq!(state_of(&*s, 2).await, (DataKeyState::Active, 0));
    // Skipping a version is refused.
    assert!(matches!(
        s.activate_data_key(wrapped(4), end(), event("key_rotate"))
            .await
            .unwrap(),
        KeyChangeOutcome::StateConflict(_)
    ));

    // In use: neither retire nor destroy.
    let in_use = KeyChangeOutcome::InUse {
        records: 3,
        until: None,
    };
    assert_eq!(
        s.retire_data_key(KeyVersion(1), now(), event("key_retire"))
            .await
            .unwrap(),
        in_use
    );
    assert_eq!(
        s.destroy_data_key(KeyVersion(1), now(), event("key_destroy"))
            .await
            .unwrap(),
        in_use
    );

    // Rewrap: a record changed since it was read (other nonce) is left alone.
    let todo = s.tokens_to_rewrap(KeyVersion(2), 10).await.unwrap();
    assert_eq!(todo.len(), 3);
    // Read first, so the store's token cache holds the old sealing: the rewrap must replace it.
    let before = s
        .token(&todo[0].token, &todo[0].domain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(before.sealed.map(|p| p.key_version), Some(KeyVersion(1)));
    let moves: Vec<Rewrapped> = todo
        .iter()
        .enumerate()
        .map(|(i, r)| Rewrapped {
            token: r.token.clone(),
            domain: r.domain.clone(),
            old_version: KeyVersion(1),
            old_nonce: if i == 2 { [0xee; 12] } else { [1; 12] },
            sealed: sealed(2, 2),
            fingerprint: Fingerprint([0x80 + i as u8; 32]),
        })
        .collect();
    assert_eq!(s.rewrap(moves, event("rewrap_keys")).await.unwrap(), 2);
    assert_eq!(s.count_to_rewrap(KeyVersion(2)).await.unwrap(), 1);
    let moved = s
        .token(&todo[0].token, &todo[0].domain)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.sealed, Some(sealed(2, 2)));
    assert_eq!(moved.fingerprint, Some(Fingerprint([0x80; 32])));
    // The token was derived from the old fingerprint: under the new one the PAN derives
    // another token, and the index finds this one.
    let mut again = derived(record(50, 2));
    again.record.fingerprint = Some(Fingerprint([0x80; 32]));
    again.lookup[0].fingerprint = Fingerprint([0x80; 32]);
    assert!(matches!(
        s.tokenize(again, event("tokenize")).await.unwrap(),
        TokenizeOutcome::Existing(r) if r.token == todo[0].token
    ));
    let last = vec![Rewrapped {
        token: todo[2].token.clone(),
        domain: todo[2].domain.clone(),
        old_version: KeyVersion(1),
        old_nonce: [1; 12],
        sealed: sealed(2, 3),
        fingerprint: Fingerprint([0x90; 32]),
    }];
    assert_eq!(s.rewrap(last, event("rewrap_keys")).await.unwrap(), 1);
    assert_eq!(s.count_to_rewrap(KeyVersion(2)).await.unwrap(), 0);

    // Destroy needs retire first; the active version cannot be retired.
    assert_eq!(
        s.destroy_data_key(KeyVersion(1), now(), event("key_destroy"))
            .await
            .unwrap(),
        KeyChangeOutcome::StateConflict("decrypt_only".into())
    );
    assert_eq!(
        s.retire_data_key(KeyVersion(2), now(), event("key_retire"))
            .await
            .unwrap(),
        KeyChangeOutcome::StateConflict("active".into())
    );
    assert_eq!(
        s.retire_data_key(KeyVersion(1), now(), event("key_retire"))
            .await
            .unwrap(),
        KeyChangeOutcome::Done
    );
    // A request that still holds the old ring cannot seal a new record under it: the store
    // says its keys changed (the vault reloads its ring and tries again), and writes nothing.
    let before = s.audit_records(0, 1000).await.unwrap().len();
    assert_eq!(
        s.tokenize(derived(record(9, 1)), event("tokenize"))
            .await
            .unwrap(),
        TokenizeOutcome::KeysChanged
    );
    assert_eq!(s.audit_records(0, 1000).await.unwrap().len(), before);
    assert_eq!(
        s.destroy_data_key(KeyVersion(1), now(), event("key_destroy"))
            .await
            .unwrap(),
        KeyChangeOutcome::Done
    );
    let keys = s.data_keys().await.unwrap();
    assert_eq!(keys[0].state, DataKeyState::Destroyed);
    assert!(keys[0].wrapped.is_empty(), "the wrapped key is erased");
    assert_eq!(
        s.retire_data_key(KeyVersion(7), now(), event("key_retire"))
            .await
            .unwrap(),
        KeyChangeOutcome::NotFound
    );
}

pub async fn data_keys_round_trip_with_their_audit_record(f: &dyn Fixture) {
    let s = f.open().await;
    let key = wrapped(1);
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
    assert_eq!(s.audit_records(0, 1000).await.unwrap().len(), 1);
    s.ping().await.unwrap();
}

/// The fingerprint of PAN `n` under data key version `v`.
fn fingerprint_under(n: u32, v: u32) -> Fingerprint {
    Fingerprint([(10 * n + v) as u8; 32])
}

/// PAN `n` sealed under `sealed_under` as a random draw, offered by a request whose ring
/// holds `ring` (its active version first).
fn with_ring(n: u32, sealed_under: u32, ring: &[u32]) -> NewToken {
    let lookup: Vec<_> = ring
        .iter()
        .map(|v| Lookup {
            version: KeyVersion(*v),
            fingerprint: fingerprint_under(n, *v),
            derived: token(1000 * v + n),
        })
        .collect();
    let mut r = record(n, sealed_under);
    r.fingerprint = Some(lookup[0].fingerprint);
    NewToken {
        record: r,
        format: TokenFormat::default(),
        lookup,
    }
}

pub async fn keys_changed_when_the_ring_misses_a_live_version_or_seals_under_a_non_active_one(
    f: &dyn Fixture,
) {
    let s = f.open().await;
    let end = || "2027-01-01T00:00:00.000Z".to_owned();
    s.activate_data_key(wrapped(1), end(), event("key_rotate"))
        .await
        .unwrap();
    assert!(matches!(
        s.tokenize(with_ring(1, 1, &[1]), event("tokenize"))
            .await
            .unwrap(),
        TokenizeOutcome::Created(_)
    ));
    // Another replica rotates: version 2 is active, version 1 still opens a record.
    s.activate_data_key(wrapped(2), end(), event("key_rotate"))
        .await
        .unwrap();
    let before = s.audit_records(0, 1000).await.unwrap().len();
    for (what, stale) in [
        ("missed the rotation", with_ring(2, 1, &[1])),
        (
            "misses version 1, which still opens a record",
            with_ring(3, 2, &[2]),
        ),
        (
            "seals under version 1, no longer active",
            with_ring(4, 1, &[2, 1]),
        ),
        ("puts version 1 first", with_ring(5, 2, &[1, 2])),
    ] {
        assert_eq!(
            s.tokenize(stale, event("tokenize")).await.unwrap(),
            TokenizeOutcome::KeysChanged,
            "{what}"
        );
    }
    // Nothing was written by the refusals.
    assert_eq!(s.audit_records(0, 1000).await.unwrap().len(), before);
    assert_eq!(s.token(&token(2), &dom()).await.unwrap(), None);
    // The current ring seals under version 2 and finds the record sealed under version 1.
    assert!(matches!(
        s.tokenize(with_ring(6, 2, &[2, 1]), event("tokenize"))
            .await
            .unwrap(),
        TokenizeOutcome::Created(_)
    ));
    let mut again = with_ring(7, 2, &[2, 1]);
    again.lookup[1].fingerprint = fingerprint_under(1, 1);
    assert!(matches!(
        s.tokenize(again, event("tokenize")).await.unwrap(),
        TokenizeOutcome::Existing(r) if r.token == token(1)
    ));
}

fn dom() -> Domain {
    Domain::parse("shop").unwrap()
}

pub async fn the_kek_check_value_is_recorded_once_and_returned_after(f: &dyn Fixture) {
    let s = f.open().await;
    let pin = |s: std::sync::Arc<dyn Store>, label: &'static str, kcv: &'static str| async move {
        s.pin_kek_kcv(label, kcv, event("kek_recorded"))
            .await
            .unwrap()
    };
    assert_eq!(pin(s.clone(), "payhsm-kek", "A1B2C3").await, None);
    // Another KEK's value does not replace it: the recorded one comes back, nothing written.
    assert_eq!(
        pin(s.clone(), "payhsm-kek", "D4E5F6").await.as_deref(),
        Some("A1B2C3")
    );
    assert_eq!(audit_outcomes(&*s).await.len(), 1);
    // Values are per KEK label; two replicas pinning one at once: one records, the other
    // gets its value.
    let replica = f.replica(&s).await;
    let (x, y) = tokio::join!(
        pin(s.clone(), "other-kek", "111111"),
        pin(replica.clone(), "other-kek", "222222")
    );
    match (x.as_deref(), y.as_deref()) {
        (None, Some("111111")) | (Some("222222"), None) => {}
        other => panic!("{other:?}"),
    }
    drop((s, replica));
    // A restart reads the recorded value.
    let s = f.open().await;
    assert_eq!(
        pin(s.clone(), "payhsm-kek", "A1B2C3").await.as_deref(),
        Some("A1B2C3")
    );
    assert_eq!(audit_outcomes(&*s).await.len(), 2);
}
