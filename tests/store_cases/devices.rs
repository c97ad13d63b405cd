//! Device enrolment: single-use challenges (also under concurrency), expiry, duplicate
//! credentials, the binding to a token that must still be active, the counter
//! compare-and-set, and the audit record written with each change. The lifecycle: devices
//! listed by user and by token, revocation (final, with its audit record, once of many
//! concurrent attempts).

use super::Fixture;
use payhsm::audit::{AuditEvent, PolicyVerdict};
use payhsm::card::{Domain, StatusChange, Token, TokenStatus};
use payhsm::store::prelude::*;
use payhsm::store::{
    ChallengePurpose, ChallengeRecord, ConsumeOutcome, DeviceOwner, DeviceRecord, DeviceState,
    EnrolOutcome, Revocation, RevocationReason, RevokeOutcome,
};
use payhsm::webauthn::attestation::{Format, Trust};
use time::macros::datetime;
use time::OffsetDateTime;

const T0: OffsetDateTime = datetime!(2026-01-01 00:00:00 UTC);

/// An audit event with an outcome and a detail, as the device service writes them.
fn event(action: &str) -> AuditEvent {
    let mut e = AuditEvent::new(
        "2026-01-01T00:00:00.000Z".into(),
        "req".into(),
        "spiffe://gw".into(),
        action.into(),
        PolicyVerdict::NotAsked,
    );
    e.outcome = "ok".into();
    e.detail = Some(format!("{action} detail"));
    e
}

fn challenge(id: &str, ttl_seconds: i64) -> ChallengeRecord {
    ChallengeRecord {
        id: id.into(),
        purpose: ChallengePurpose::Enrol,
        challenge: vec![0x5a; 32],
        rp_id: "localhost".into(),
        user: "alice".into(),
        token: Some(Token::parse("4111119876541111").unwrap()),
        domain: Some(Domain::parse("shop").unwrap()),
        created_at: payhsm::clock::format_rfc3339(T0),
        expires_at: payhsm::clock::format_rfc3339(T0 + time::Duration::seconds(ttl_seconds)),
        used_at: None,
    }
}

pub(super) fn device(id: &str, credential: u8) -> DeviceRecord {
    DeviceRecord {
        device_id: id.into(),
        credential_id: vec![credential; 32],
        rp_id: "localhost".into(),
        user: "alice".into(),
        public_key_cbor: vec![0xa5, 1, 2],
        alg: -7,
        format: Format::Packed,
        trust: Trust::SelfAttested,
        aaguid: [7; 16],
        sign_count: 5,
        backup_eligible: true,
        backup_state: false,
        user_verified: true,
        token: None,
        domain: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        last_used_at: None,
        state: DeviceState::Active,
        browser_bound_key: None,
        android_boot: None,
    }
}

fn revocation(id: &str, reason: RevocationReason) -> Revocation {
    Revocation {
        device_id: id.into(),
        reason,
        at: "2026-01-02T00:00:00.000Z".into(),
    }
}

async fn actions(s: &dyn Store) -> Vec<String> {
    s.audit_records(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.action)
        .collect()
}

pub async fn a_challenge_is_consumed_once_and_then_reported_used(f: &dyn Fixture) {
    let s = f.open().await;
    let issued = challenge("c1", 120);
    s.create_challenge(issued.clone(), event("create_device_challenge"))
        .await
        .unwrap();
    assert_eq!(s.challenge("c1").await.unwrap(), Some(issued.clone()));
    let now = T0 + time::Duration::seconds(10);
    let ConsumeOutcome::Consumed(got) = s
        .consume_challenge("c1", ChallengePurpose::Enrol, now)
        .await
        .unwrap()
    else {
        panic!("not consumed")
    };
    assert_eq!(got.challenge, issued.challenge);
    assert_eq!(got.token, issued.token);
    assert_eq!(got.used_at.as_deref(), Some("2026-01-01T00:00:10.000Z"));
    assert_eq!(
        s.consume_challenge("c1", ChallengePurpose::Enrol, now)
            .await
            .unwrap(),
        ConsumeOutcome::AlreadyUsed
    );
    assert_eq!(
        s.consume_challenge("nope", ChallengePurpose::Enrol, now)
            .await
            .unwrap(),
        ConsumeOutcome::NotFound
    );
    // Issuing is audited with its detail; consuming writes no record of its own.
    let records = s.audit_records(0, 10).await.unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].event.detail.as_deref(),
        Some("create_device_challenge detail")
    );
}

pub async fn of_twenty_concurrent_consumers_exactly_one_wins(f: &dyn Fixture) {
    let s = f.open().await;
    s.create_challenge(challenge("race", 120), event("create_device_challenge"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.consume_challenge("race", ChallengePurpose::Enrol, T0)
                .await
                .unwrap()
        }));
    }
    let mut consumed = 0;
    let mut used = 0;
    for t in tasks {
        match t.await.unwrap() {
            ConsumeOutcome::Consumed(_) => consumed += 1,
            ConsumeOutcome::AlreadyUsed => used += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((consumed, used), (1, 19));
}

pub async fn an_expired_challenge_is_refused_and_stays_unused(f: &dyn Fixture) {
    let s = f.open().await;
    s.create_challenge(challenge("old", 60), event("create_device_challenge"))
        .await
        .unwrap();
    // At the expiry instant it is already refused.
    for after in [60, 61, 3600] {
        let now = T0 + time::Duration::seconds(after);
        assert_eq!(
            s.consume_challenge("old", ChallengePurpose::Enrol, now)
                .await
                .unwrap(),
            ConsumeOutcome::Expired,
            "{after}s"
        );
    }
    assert_eq!(s.challenge("old").await.unwrap().unwrap().used_at, None);
    let just_before = T0 + time::Duration::milliseconds(59_999);
    assert!(matches!(
        s.consume_challenge("old", ChallengePurpose::Enrol, just_before)
            .await
            .unwrap(),
        ConsumeOutcome::Consumed(_)
    ));
}

pub async fn a_device_keeps_the_browser_bound_key_and_android_boot_it_enrolled_with(
    f: &dyn Fixture,
) {
    let s = f.open().await;
    let bound = DeviceRecord {
        browser_bound_key: Some(vec![0xa5, 0x01, 0x02, 0x03, 0x26]),
        android_boot: Some(payhsm::store::AndroidBoot {
            verified_boot_state: "self_signed".into(),
            device_locked: false,
        }),
        ..device("dev-b", 9)
    };
    s.enrol_device(bound.clone(), event("device_enrolled"))
        .await
        .unwrap();
    s.enrol_device(device("dev-n", 8), event("device_enrolled"))
        .await
        .unwrap();
    assert_eq!(s.device("dev-b").await.unwrap(), Some(bound.clone()));
    assert_eq!(s.device_by_credential(&[9; 32]).await.unwrap(), Some(bound));
    let unbound = s.device("dev-n").await.unwrap().unwrap();
    assert_eq!(unbound.browser_bound_key, None);
}

pub async fn a_credential_id_enrols_once_and_a_duplicate_writes_nothing(f: &dyn Fixture) {
    let s = f.open().await;
    let d1 = device("dev-1", 1);
    assert_eq!(
        s.enrol_device(d1.clone(), event("device_enrolled"))
            .await
            .unwrap(),
        EnrolOutcome::Enrolled
    );
    assert_eq!(s.device("dev-1").await.unwrap(), Some(d1.clone()));
    assert_eq!(
        s.device_by_credential(&[1; 32]).await.unwrap(),
        Some(d1.clone())
    );
    assert_eq!(s.device("dev-2").await.unwrap(), None);
    assert_eq!(s.device_by_credential(&[2; 32]).await.unwrap(), None);
    // Same credential id under another device id: refused, nothing written.
    assert_eq!(
        s.enrol_device(device("dev-2", 1), event("device_enrolled"))
            .await
            .unwrap(),
        EnrolOutcome::CredentialExists
    );
    assert_eq!(s.device("dev-2").await.unwrap(), None);
    assert_eq!(actions(&*s).await, ["device_enrolled"]);
    // A token-bound device round-trips its binding.
    let token = Token::parse("4111119876541111").unwrap();
    let domain = Domain::parse("shop").unwrap();
    add_token(&*s, &token, &domain).await;
    let mut bound = device("dev-3", 3);
    bound.token = Some(token);
    bound.domain = Some(domain);
    bound.format = Format::None;
    bound.trust = Trust::None;
    s.enrol_device(bound.clone(), event("device_enrolled"))
        .await
        .unwrap();
    assert_eq!(s.device("dev-3").await.unwrap(), Some(bound));
}

/// An active token (enrolment never opens its sealed PAN).
async fn add_token(s: &dyn Store, token: &Token, domain: &Domain) {
    s.tokenize(
        crate::support::placeholder_token(token, domain),
        event("tokenize"),
    )
    .await
    .unwrap();
}

pub async fn a_device_is_not_bound_to_a_token_suspended_or_deleted_after_the_services_check(
    f: &dyn Fixture,
) {
    // The service checked the token; a suspend (then a delete) commits before the enrolment
    // job: the job sees it in its own transaction and writes nothing.
    let s = f.open().await;
    let token = Token::parse("4111119876541111").unwrap();
    let domain = Domain::parse("shop").unwrap();
    add_token(&*s, &token, &domain).await;
    let mut bound = device("dev-1", 1);
    bound.token = Some(token.clone());
    bound.domain = Some(domain.clone());
    for (change, status) in [
        (StatusChange::Suspend, TokenStatus::Suspended),
        (StatusChange::Delete, TokenStatus::Deleted),
    ] {
        s.transition(&token, &domain, change, event(change.as_str()))
            .await
            .unwrap();
        assert_eq!(
            s.enrol_device(bound.clone(), event("device_enrolled"))
                .await
                .unwrap(),
            EnrolOutcome::TokenNotActive(status)
        );
        assert_eq!(s.device("dev-1").await.unwrap(), None);
    }
    assert!(!actions(&*s).await.contains(&"device_enrolled".to_owned()));
}

pub async fn the_sign_count_is_a_compare_and_set(f: &dyn Fixture) {
    let s = f.open().await;
    s.enrol_device(device("dev-1", 1), event("device_enrolled"))
        .await
        .unwrap();
    assert!(s
        .update_sign_count("dev-1", 5, 6, event("sign_count"))
        .await
        .unwrap());
    // A stale expectation (another assertion moved the counter) fails and writes nothing.
    assert!(!s
        .update_sign_count("dev-1", 5, 7, event("sign_count"))
        .await
        .unwrap());
    assert!(!s
        .update_sign_count("nobody", 0, 1, event("sign_count"))
        .await
        .unwrap());
    assert_eq!(s.device("dev-1").await.unwrap().unwrap().sign_count, 6);
    assert_eq!(actions(&*s).await, ["device_enrolled", "sign_count"]);
}

pub async fn concurrent_counter_updates_from_the_same_value_let_one_through(f: &dyn Fixture) {
    let s = f.open().await;
    s.enrol_device(device("dev-1", 1), event("device_enrolled"))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for n in 0..10u32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.update_sign_count("dev-1", 5, 6 + n, event("sign_count"))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.unwrap() {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

pub async fn a_device_is_revoked_once_with_its_reason_and_its_audit_record(f: &dyn Fixture) {
    let s = f.open().await;
    s.enrol_device(device("dev-1", 1), event("device_enrolled"))
        .await
        .unwrap();
    let RevokeOutcome::Revoked(revoked) = s
        .revoke_device(
            revocation("dev-1", RevocationReason::Lost),
            event("revoke_device"),
        )
        .await
        .unwrap()
    else {
        panic!("not revoked")
    };
    let state = DeviceState::Revoked {
        at: "2026-01-02T00:00:00.000Z".into(),
        reason: RevocationReason::Lost,
    };
    assert_eq!(revoked.state, state);
    // Read back (also through the credential), the same state.
    assert_eq!(s.device("dev-1").await.unwrap().unwrap().state, state);
    assert_eq!(
        s.device_by_credential(&[1; 32]).await.unwrap().unwrap(),
        *revoked
    );
    // Final: a second revocation, with any reason, changes and records nothing.
    assert_eq!(
        s.revoke_device(
            revocation("dev-1", RevocationReason::UserRequest),
            event("revoke_device")
        )
        .await
        .unwrap(),
        RevokeOutcome::AlreadyRevoked
    );
    assert_eq!(
        s.revoke_device(
            revocation("nobody", RevocationReason::Lost),
            event("revoke_device")
        )
        .await
        .unwrap(),
        RevokeOutcome::NotFound
    );
    assert_eq!(s.device("dev-1").await.unwrap().unwrap().state, state);
    assert_eq!(actions(&*s).await, ["device_enrolled", "revoke_device"]);
    // Every reason round-trips through the store.
    for (n, reason) in RevocationReason::ALL.into_iter().enumerate() {
        let id = format!("dev-r{n}");
        s.enrol_device(device(&id, 10 + n as u8), event("device_enrolled"))
            .await
            .unwrap();
        s.revoke_device(revocation(&id, reason), event("revoke_device"))
            .await
            .unwrap();
        let got = s.device(&id).await.unwrap().unwrap().state;
        assert!(matches!(got, DeviceState::Revoked { reason: r, .. } if r == reason));
    }
}

pub async fn of_concurrent_revocations_of_one_device_exactly_one_commits(f: &dyn Fixture) {
    let s = f.open().await;
    s.enrol_device(device("dev-1", 1), event("device_enrolled"))
        .await
        .unwrap();
    let other = f.replica(&s).await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        let s = if n % 2 == 0 { s.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            s.revoke_device(
                revocation("dev-1", RevocationReason::Stolen),
                event("revoke_device"),
            )
            .await
            .unwrap()
        }));
    }
    let mut revoked = 0;
    for t in tasks {
        match t.await.unwrap() {
            RevokeOutcome::Revoked(_) => revoked += 1,
            RevokeOutcome::AlreadyRevoked => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(revoked, 1);
    assert_eq!(actions(&*s).await, ["device_enrolled", "revoke_device"]);
}

pub async fn devices_are_listed_by_user_and_by_token_oldest_first(f: &dyn Fixture) {
    let s = f.open().await;
    let token = Token::parse("4111119876541111").unwrap();
    let domain = Domain::parse("shop").unwrap();
    add_token(&*s, &token, &domain).await;
    let other_token = Token::parse("4111119876542221").unwrap();
    add_token(&*s, &other_token, &domain).await;
    // Enrolled out of order: the list is by creation time.
    let mut newer = device("dev-b", 2);
    newer.created_at = "2026-01-03T00:00:00.000Z".into();
    newer.token = Some(token.clone());
    newer.domain = Some(domain.clone());
    let mut older = device("dev-a", 1);
    older.created_at = "2026-01-02T00:00:00.000Z".into();
    older.token = Some(token.clone());
    older.domain = Some(domain.clone());
    let mut bob = device("dev-c", 3);
    bob.user = "bob".into();
    bob.token = Some(other_token.clone());
    bob.domain = Some(domain.clone());
    let unbound = device("dev-d", 4);
    for d in [&newer, &older, &bob, &unbound] {
        s.enrol_device(d.clone(), event("device_enrolled"))
            .await
            .unwrap();
    }
    s.revoke_device(
        revocation("dev-b", RevocationReason::Replaced),
        event("revoke_device"),
    )
    .await
    .unwrap();
    let ids = |list: Vec<DeviceRecord>| list.into_iter().map(|d| d.device_id).collect::<Vec<_>>();
    let alice = s
        .devices_of(&DeviceOwner::User("alice".into()))
        .await
        .unwrap();
    assert_eq!(ids(alice.clone()), ["dev-d", "dev-a", "dev-b"]);
    // Revoked devices are listed, with their state.
    assert!(matches!(alice[2].state, DeviceState::Revoked { .. }));
    let card = DeviceOwner::Token(token.clone(), domain.clone());
    assert_eq!(ids(s.devices_of(&card).await.unwrap()), ["dev-a", "dev-b"]);
    let bobs = DeviceOwner::Token(other_token, domain);
    assert_eq!(ids(s.devices_of(&bobs).await.unwrap()), ["dev-c"]);
    // Another domain, another user: none. (The user name compares exactly.)
    let elsewhere = DeviceOwner::Token(token, Domain::parse("other").unwrap());
    assert!(s.devices_of(&elsewhere).await.unwrap().is_empty());
    for user in ["Alice", "carol", ""] {
        let none = s.devices_of(&DeviceOwner::User(user.into())).await.unwrap();
        assert!(none.is_empty(), "{user:?}");
    }
}
