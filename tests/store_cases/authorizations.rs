//! Payment authorizations: a challenge (with the audience it names and its SPC display data) and the authorization that
//! ends it read back exactly as they were committed, on the store that wrote them and on
//! another replica; a refusal stores no authorization.

use super::{dom, event, fp, new_token, tok, tokenize, Fixture};
use payhsm::store::prelude::*;
use payhsm::store::{
    AuthorizationChallengeRecord, AuthorizationCommit, AuthorizationRecord, ChallengeIssue,
    CommitOutcome, Idempotent,
};

fn payment_challenge(id: &str, audience: Option<&str>) -> AuthorizationChallengeRecord {
    AuthorizationChallengeRecord {
        id: id.into(),
        challenge: vec![0x5a; 32],
        principal: "spiffe://gw".into(),
        token: tok(7),
        domain: dom("shop"),
        device_id: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        amount: 1234,
        currency: "EUR".into(),
        payee: "Café Zürich".into(),
        spc: None,
        created_at: "2026-01-01T00:00:00.000Z".into(),
        expires_at: "2999-01-01T00:00:00.000Z".into(),
        used_at: None,
        audience: audience.map(str::to_owned),
    }
}

fn approval(challenge: &AuthorizationChallengeRecord, id: &str) -> AuthorizationRecord {
    AuthorizationRecord {
        authorization_id: id.into(),
        challenge_id: challenge.id.clone(),
        token: challenge.token.clone(),
        domain: challenge.domain.clone(),
        amount: challenge.amount,
        currency: challenge.currency.clone(),
        payee: challenge.payee.clone(),
        device_id: challenge.device_id.clone(),
        credential_id: vec![0xc1; 32],
        decision: "approved".into(),
        policy_ids: vec!["gateway-authorize-payments-in-its-domains".into()],
        kid: "payhsm-authz-v1".into(),
        iat: 1_767_225_601,
        exp: 1_767_225_901,
        jws: "eyJhbGciOiJFUzI1NiJ9.eyJqdGkiOiJhMSJ9.c2ln".into(),
    }
}

fn end(
    challenge: &AuthorizationChallengeRecord,
    authorization: Option<AuthorizationRecord>,
) -> AuthorizationCommit {
    AuthorizationCommit {
        challenge_id: challenge.id.clone(),
        now: "2026-01-01T00:00:01.000Z".into(),
        counter: None,
        authorization,
        audit: event("authorization_end"),
        idempotency: None,
    }
}

pub async fn an_authorization_is_read_back_as_committed_with_its_challenges_audience(
    f: &dyn Fixture,
) {
    let s = f.open().await;
    tokenize(&*s, new_token(tok(7), "shop", fp(7))).await;
    // The challenges' device, enrolled and active (its state is read when they are issued).
    let enrolled = s
        .enrol_device(
            super::devices::device("AAAAAAAAAAAAAAAAAAAAAA", 9),
            event("device_enrolled"),
        )
        .await
        .unwrap();
    assert_eq!(enrolled, payhsm::store::EnrolOutcome::Enrolled);
    let named = payment_challenge("pc-named", Some("https://acquirer.example"));
    let unnamed = payment_challenge("pc-unnamed", None);
    // SPC display data, with and without the 2025 members (details, logos).
    let spc = payhsm::payment::SpcDisplay {
        payee_origin: Some("https://shop.example".into()),
        top_origin: "https://shop.example".into(),
        instrument_display_name: "Visa ••1111".into(),
        instrument_icon: "https://bank.example/v.png".into(),
        instrument_details: None,
        entity_logos: Vec::new(),
    };
    let shown = AuthorizationChallengeRecord {
        spc: Some(spc.clone()),
        ..payment_challenge("pc-spc", None)
    };
    let shown_2025 = AuthorizationChallengeRecord {
        spc: Some(payhsm::payment::SpcDisplay {
            // payeeName and/or payeeOrigin: the name is always there, the origin may not be.
            payee_origin: None,
            instrument_details: Some("Debit".into()),
            entity_logos: vec![payhsm::payment::SpcLogo {
                url: "https://network.example/l.png".into(),
                label: "Network".into(),
            }],
            ..spc
        }),
        ..payment_challenge("pc-spc-2025", None)
    };
    for c in [&named, &unnamed, &shown, &shown_2025] {
        let issued = s
            .create_authorization_challenge(c.clone(), event("issued"), None)
            .await
            .unwrap();
        assert_eq!(issued, Idempotent::Fresh(ChallengeIssue::Issued));
        assert_eq!(
            s.authorization_challenge(&c.id).await.unwrap().as_ref(),
            Some(c)
        );
    }
    assert_eq!(s.authorization("a1").await.unwrap(), None);

    let approved = approval(&named, "a1");
    let outcome = s
        .commit_authorization(end(&named, Some(approved.clone())))
        .await
        .unwrap();
    assert_eq!(outcome, Idempotent::Fresh(CommitOutcome::Committed));
    assert_eq!(s.authorization("a1").await.unwrap(), Some(approved.clone()));
    // A refusal ends its challenge and stores no authorization.
    let outcome = s.commit_authorization(end(&unnamed, None)).await.unwrap();
    assert_eq!(outcome, Idempotent::Fresh(CommitOutcome::Committed));
    assert!(s
        .authorization_challenge(&unnamed.id)
        .await
        .unwrap()
        .unwrap()
        .used_at
        .is_some());
    assert_eq!(s.authorization("pc-unnamed").await.unwrap(), None);
    assert_eq!(s.authorization("").await.unwrap(), None);

    let other = f.replica(&s).await;
    assert_eq!(other.authorization("a1").await.unwrap(), Some(approved));
    assert_eq!(
        other
            .authorization_challenge(&named.id)
            .await
            .unwrap()
            .unwrap()
            .audience
            .as_deref(),
        Some("https://acquirer.example")
    );
}
