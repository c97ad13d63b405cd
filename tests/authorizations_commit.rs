//! A payment is approved only on a token that is still active when the approval commits: the
//! token's state is read again inside the transaction that consumes the challenge, moves the
//! counter and stores the authorization. The token is suspended (or deleted) deterministically
//! between the steps of an authorization (`sign_payment`, then `commit_payment`), and between a
//! challenge's checks and its insertion, in process over a real store (each test runs on
//! SQLite and on PostgreSQL, the fixtures of `tests/store_cases/`), a real SoftHSM2 signer and
//! the real policies. Likewise a device revoked between the steps: its revocation is read in
//! the same transactions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod store_cases;
mod support;
use payhsm::audit::{AuditEvent, PolicyVerdict};
use payhsm::card::{Domain, StatusChange, Token, TokenStatus};
use payhsm::config::WebauthnConfig;
use payhsm::jose::AuthorizationSigner;
use payhsm::keys::{Hsm, HsmConfig, Pin};
use payhsm::policy::{PolicyEngine, Principal};
use payhsm::service::{
    Authorizations, AuthorizeInput, Caller, Error, PaymentChallengeInput, SignedPayment,
};
use payhsm::store::Store;
use payhsm::store::{
    AuthorizationChallengeRecord, ChallengeIssue, DeviceRecord, DeviceState, Idempotent,
    Revocation, RevocationReason, RevokeOutcome, TransitionOutcome,
};
use payhsm::webauthn::attestation::{Format, Trust};
use std::sync::Arc;
use store_cases::backends::{PostgresFixture, SqliteFixture};
use store_cases::Fixture;
use support::authenticator::Authenticator;
use support::softhsm::{fixture, serial, TOKEN, USER_PIN};

const DEVICE: &str = "device-1";

/// The store, the use cases, a token in `shop` and a device enrolled for it.
struct World {
    backend: Box<dyn Fixture>,
    store: Arc<dyn Store>,
    authz: Authorizations,
    auth: Authenticator,
    token: Token,
    domain: Domain,
    caller: Caller,
}

fn event(action: &str) -> AuditEvent {
    AuditEvent::new(
        "2026-01-01T00:00:00.000Z".into(),
        "setup".into(),
        "test".into(),
        action.into(),
        PolicyVerdict::NotAsked,
    )
}

async fn world(backend: Box<dyn Fixture>) -> World {
    let store = backend.open().await;
    let hsm = Hsm::open(
        &fixture().module,
        HsmConfig {
            token_label: TOKEN.to_owned(),
            pin: Pin::new(USER_PIN.to_owned()),
            sessions: 2,
        },
    )
    .unwrap();
    let signer = AuthorizationSigner::open(hsm, "authz-commit")
        .await
        .unwrap();
    let policy = Arc::new(PolicyEngine::load(&support::repo().join("policies")).unwrap());
    // A data key for the idempotency-key tags (payments never open a sealed PAN).
    let ring = payhsm::keys::DataKeyRing::new(
        vec![(
            payhsm::keys::KeyVersion(1),
            payhsm::keys::DataKeyMaterial::from_bytes([7; 32]),
        )],
        payhsm::keys::KeyVersion(1),
    )
    .unwrap();
    let ring = Arc::new(payhsm::keys::SharedRing::new(ring));
    let authz = Authorizations::new(
        store.clone(),
        policy,
        ring,
        WebauthnConfig::dev(),
        signer,
        std::sync::Arc::new(payhsm::service::Metadata::disabled()),
    );

    let token = Token::parse("4111110000421111").unwrap();
    let domain = Domain::parse("shop").unwrap();
    // Payments never open the sealed PAN: a placeholder stands for it.
    store
        .tokenize(
            support::placeholder_token(&token, &domain),
            event("tokenize"),
        )
        .await
        .unwrap();
    let auth = Authenticator::new();
    let device = DeviceRecord {
        device_id: DEVICE.to_owned(),
        credential_id: auth.credential_id.clone(),
        rp_id: "localhost".into(),
        user: "alice".into(),
        public_key_cbor: auth.cose_key(),
        alg: -7,
        format: Format::Packed,
        trust: Trust::SelfAttested,
        aaguid: auth.aaguid,
        sign_count: 0,
        backup_eligible: false,
        backup_state: false,
        user_verified: true,
        token: Some(token.clone()),
        domain: Some(domain.clone()),
        created_at: "2026-01-01T00:00:00.000Z".into(),
        last_used_at: None,
        state: DeviceState::Active,
        browser_bound_key: None,
        android_boot: None,
    };
    store
        .enrol_device(device, event("device_enrolled"))
        .await
        .unwrap();
    let caller = Caller {
        principal: Principal::new("spiffe://payhsm.dev/gateway"),
        request_id: "pay-1".into(),
    };
    World {
        backend,
        store,
        authz,
        auth,
        token,
        domain,
        caller,
    }
}

/// Each test on both backends: `sqlite::<test>` and `postgres::<test>`.
macro_rules! on_both_backends {
    ($($test:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(Box::new(super::SqliteFixture::new())).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test(Box::new(super::PostgresFixture::new())).await;
                }
            )+
        }
    };
}

on_both_backends!(
    an_authorization_signed_before_a_suspend_is_refused_at_its_commit,
    an_authorization_signed_before_a_delete_is_refused_at_its_commit,
    an_authorization_on_a_token_still_active_commits,
    a_challenge_for_a_token_suspended_after_its_checks_is_not_stored,
    an_authorization_signed_before_its_device_is_revoked_is_refused_at_its_commit,
    a_challenge_for_a_device_revoked_after_its_checks_is_not_stored,
);

impl World {
    /// A payment of 5.00 EUR to `Shop` with the token and the device.
    fn payment(&self) -> PaymentChallengeInput {
        PaymentChallengeInput {
            token: self.token.clone(),
            domain: self.domain.clone(),
            device_id: DEVICE.to_owned(),
            amount: 500,
            currency: "EUR".into(),
            payee: payhsm::text::DisplayText::parse("Shop").unwrap(),
            spc: None,
            audience: None,
        }
    }

    /// Issues a challenge and signs the device's answer: everything but the commit. Returns
    /// the challenge id too.
    async fn signed(&self) -> (String, SignedPayment) {
        let issued = self
            .authz
            .create_challenge(&self.caller, self.payment(), None)
            .await
            .unwrap();
        let a = self.auth.assert(&issued.challenge, 1, None);
        let input = AuthorizeInput {
            challenge_id: issued.challenge_id.clone(),
            credential_id: a.credential_id,
            authenticator_data: a.authenticator_data,
            client_data_json: a.client_data_json,
            signature: a.signature,
            browser_bound_signature: a.browser_bound_signature,
        };
        let signed = self
            .authz
            .sign_payment(&self.caller, input, None)
            .await
            .unwrap();
        (issued.challenge_id, signed)
    }

    async fn revoke(&self) {
        let revocation = Revocation {
            device_id: DEVICE.to_owned(),
            reason: RevocationReason::Stolen,
            at: "2026-01-01T00:00:01.000Z".into(),
        };
        let done = self
            .store
            .revoke_device(revocation, event("revoke_device"))
            .await
            .unwrap();
        assert!(matches!(done, RevokeOutcome::Revoked(_)), "{done:?}");
    }

    async fn change(&self, change: StatusChange) {
        let done = self
            .store
            .transition(&self.token, &self.domain, change, event(change.as_str()))
            .await
            .unwrap();
        assert!(matches!(done, TransitionOutcome::Done(_)), "{done:?}");
    }

    /// Rows in `authorizations`, read beside the store.
    async fn authorizations(&self) -> i64 {
        self.backend
            .query_i64("SELECT COUNT(*) FROM authorizations")
            .await
    }

    /// (action, outcome, decision) of the records of the payment's request.
    async fn payment_records(&self) -> Vec<(String, String, String)> {
        let records = self.store.audit_records(0, 1000).await.unwrap();
        records
            .into_iter()
            .filter(|r| r.event.request_id == self.caller.request_id)
            .map(|r| {
                let decision = serde_json::to_value(r.event.decision).unwrap();
                let decision = decision.as_str().unwrap().to_owned();
                (r.event.action, r.event.outcome, decision)
            })
            .collect()
    }
}

async fn an_authorization_signed_before_a_suspend_is_refused_at_its_commit(
    backend: Box<dyn Fixture>,
) {
    let _serial = serial().await;
    let w = world(backend).await;
    let (challenge_id, signed) = w.signed().await;
    w.change(StatusChange::Suspend).await;

    let refused = w.authz.commit_payment(signed).await;
    assert!(matches!(refused, Err(Error::TokenSuspended)), "{refused:?}");
    assert_eq!(w.authorizations().await, 0);
    // The attempt ended as a refusal: the challenge is used up, the record says why, and the
    // decision is still the policy's `allow` (it was the token that changed).
    let challenge = w
        .store
        .authorization_challenge(&challenge_id)
        .await
        .unwrap();
    assert!(challenge.unwrap().used_at.is_some());
    let records = w.payment_records().await;
    let last = records.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str(), last.2.as_str()),
        ("authorization_refused", "token_suspended", "allow")
    );
    assert!(
        records.iter().all(|r| r.0 != "authorization_approved"),
        "{records:?}"
    );
}

async fn an_authorization_signed_before_a_delete_is_refused_at_its_commit(
    backend: Box<dyn Fixture>,
) {
    let _serial = serial().await;
    let w = world(backend).await;
    let (_, signed) = w.signed().await;
    w.change(StatusChange::Delete).await;

    let refused = w.authz.commit_payment(signed).await;
    assert!(matches!(refused, Err(Error::TokenNotFound)), "{refused:?}");
    assert_eq!(w.authorizations().await, 0);
    let records = w.payment_records().await;
    assert_eq!(records.last().unwrap().1, "token_not_found", "{records:?}");
}

async fn an_authorization_on_a_token_still_active_commits(backend: Box<dyn Fixture>) {
    let _serial = serial().await;
    let w = world(backend).await;
    let (_, signed) = w.signed().await;
    // A suspend and a resume in between leave the token active: the approval stands.
    w.change(StatusChange::Suspend).await;
    w.change(StatusChange::Resume).await;

    let device = w.store.device(DEVICE).await.unwrap().unwrap();
    assert_eq!(device.last_used_at, None);
    let approved = w.authz.commit_payment(signed).await.unwrap();
    assert_eq!(approved.decision, "approved");
    assert_eq!(w.authorizations().await, 1);
    // The approval's commit is the device's last use.
    let device = w.store.device(DEVICE).await.unwrap().unwrap();
    assert!(device.last_used_at.is_some(), "{device:?}");
    let records = w.payment_records().await;
    assert_eq!(records.last().unwrap().0, "authorization_approved");
}

async fn a_challenge_for_a_token_suspended_after_its_checks_is_not_stored(
    backend: Box<dyn Fixture>,
) {
    let _serial = serial().await;
    let w = world(backend).await;
    // What the service has checked (the token was active) meets a token suspended since.
    w.change(StatusChange::Suspend).await;
    let p = w.payment();
    let record = AuthorizationChallengeRecord {
        id: "challenge-after-suspend".into(),
        challenge: vec![1; 32],
        principal: w.caller.principal.as_str().to_owned(),
        token: p.token,
        domain: p.domain,
        device_id: p.device_id,
        amount: p.amount,
        currency: p.currency,
        payee: p.payee.as_str().to_owned(),
        spc: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        expires_at: "2999-01-01T00:00:00.000Z".into(),
        used_at: None,
        audience: None,
    };
    let before = w.store.audit_records(0, 1000).await.unwrap().len();
    let issued = w
        .store
        .create_authorization_challenge(record, event("authorization_challenge_issued"), None)
        .await
        .unwrap();
    assert_eq!(
        issued,
        Idempotent::Fresh(ChallengeIssue::TokenNotActive(TokenStatus::Suspended))
    );
    let stored = w
        .store
        .authorization_challenge("challenge-after-suspend")
        .await;
    assert!(stored.unwrap().is_none());
    assert_eq!(w.store.audit_records(0, 1000).await.unwrap().len(), before);

    // Through the service: refused with the token's code, audited with the engine's allow.
    let refused = w.authz.create_challenge(&w.caller, w.payment(), None).await;
    assert!(matches!(refused, Err(Error::TokenSuspended)), "{refused:?}");
    let records = w.payment_records().await;
    assert_eq!(
        records.last().unwrap(),
        &(
            "create_authorization_challenge".to_owned(),
            "token_suspended".to_owned(),
            "allow".to_owned()
        )
    );
}

async fn an_authorization_signed_before_its_device_is_revoked_is_refused_at_its_commit(
    backend: Box<dyn Fixture>,
) {
    let _serial = serial().await;
    let w = world(backend).await;
    let (challenge_id, signed) = w.signed().await;
    // The assertion verified and the JWS is signed; the revocation commits before the approval.
    w.revoke().await;

    let refused = w.authz.commit_payment(signed).await;
    assert!(matches!(refused, Err(Error::DeviceRevoked)), "{refused:?}");
    assert_eq!(w.authorizations().await, 0);
    let challenge = w.store.authorization_challenge(&challenge_id).await;
    assert!(challenge.unwrap().unwrap().used_at.is_some());
    let records = w.payment_records().await;
    let last = records.last().unwrap();
    assert_eq!(
        (last.0.as_str(), last.1.as_str()),
        ("authorization_refused", "device_revoked")
    );
    assert!(records.iter().all(|r| r.0 != "authorization_approved"));
    let device = w.store.device(DEVICE).await.unwrap().unwrap();
    assert_eq!(device.last_used_at, None, "a refusal is not a use");
}

async fn a_challenge_for_a_device_revoked_after_its_checks_is_not_stored(
    backend: Box<dyn Fixture>,
) {
    let _serial = serial().await;
    let w = world(backend).await;
    // What the service has checked (the device was active) meets a device revoked since.
    w.revoke().await;
    let p = w.payment();
    let record = AuthorizationChallengeRecord {
        id: "challenge-after-revoke".into(),
        challenge: vec![1; 32],
        principal: w.caller.principal.as_str().to_owned(),
        token: p.token,
        domain: p.domain,
        device_id: p.device_id,
        amount: p.amount,
        currency: p.currency,
        payee: p.payee.as_str().to_owned(),
        spc: None,
        audience: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        expires_at: "2999-01-01T00:00:00.000Z".into(),
        used_at: None,
    };
    let before = w.store.audit_records(0, 1000).await.unwrap().len();
    let issued = w
        .store
        .create_authorization_challenge(record, event("authorization_challenge_issued"), None)
        .await
        .unwrap();
    assert_eq!(issued, Idempotent::Fresh(ChallengeIssue::DeviceRevoked));
    let stored = w
        .store
        .authorization_challenge("challenge-after-revoke")
        .await;
    assert!(stored.unwrap().is_none());
    assert_eq!(w.store.audit_records(0, 1000).await.unwrap().len(), before);

    // Through the service: refused with the stable code, audited with the engine's allow.
    let refused = w.authz.create_challenge(&w.caller, w.payment(), None).await;
    assert!(matches!(refused, Err(Error::DeviceRevoked)), "{refused:?}");
    let records = w.payment_records().await;
    assert_eq!(
        records.last().unwrap(),
        &(
            "create_authorization_challenge".to_owned(),
            "device_revoked".to_owned(),
            "allow".to_owned()
        )
    );
}
