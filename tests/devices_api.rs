//! Device enrolment API v1 end to end: real mTLS, real SoftHSM2, real SQLite, and a software
//! authenticator (tests/support/authenticator.rs) producing registration responses.
//!
//! The enrolment tests run the real verifier (src/webauthn) end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use payhsm::client::{Client, Response};
use support::authenticator::{cbor, Attestation, Authenticator};
use support::*;

/// Asks for an enrolment challenge.
async fn challenge(c: &mut Client, user: &str, rp_id: &str) -> Response {
    post(
        c,
        "/v1/devices/challenges",
        serde_json::json!({"user": user, "rp_id": rp_id}),
    )
    .await
}

/// A challenge for `alice` at `localhost`: (challenge_id, challenge).
async fn issued(c: &mut Client) -> (String, String) {
    let r = challenge(c, "alice", "localhost").await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let body = r.json().unwrap();
    (
        body["challenge_id"].as_str().unwrap().to_owned(),
        body["challenge"].as_str().unwrap().to_owned(),
    )
}

/// Registers `auth` against a fresh challenge.
async fn enrol(c: &mut Client, auth: &Authenticator, attestation: Attestation) -> Response {
    let (id, ch) = issued(c).await;
    let reg = auth.register(&ch, attestation);
    post(c, "/v1/devices", reg.body(&id)).await
}

fn audit_lines(d: &Daemon) -> Vec<serde_json::Value> {
    audit_export(d)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn the_test_cbor_writer_follows_rfc_8949() {
    let enc = |v: i64| {
        let mut o = Vec::new();
        cbor::int(&mut o, v);
        o
    };
    assert_eq!(enc(0), [0x00]);
    assert_eq!(enc(23), [0x17]);
    assert_eq!(enc(24), [0x18, 0x18]);
    assert_eq!(enc(-1), [0x20]);
    assert_eq!(enc(-7), [0x26]);
    assert_eq!(enc(-257), [0x39, 0x01, 0x00]);
    assert_eq!(enc(1000), [0x19, 0x03, 0xe8]);
    let auth = Authenticator::new();
    let data = auth.auth_data();
    assert_eq!(data[32], 0x45, "UP|UV|AT");
    assert_eq!(&data[53..55], &[0, 32], "credential id length");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_comes_with_the_enrolment_options_a_browser_needs() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let r = challenge(&mut gw, "alice", "localhost").await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let body = r.json().unwrap();
    let ch = URL_SAFE_NO_PAD
        .decode(body["challenge"].as_str().unwrap())
        .unwrap();
    assert_eq!(ch.len(), 32);
    assert_eq!(body["rp"], serde_json::json!({"id": "localhost"}));
    assert_eq!(body["user"], serde_json::json!({"name": "alice"}));
    assert_eq!(
        body["pub_key_cred_params"],
        serde_json::json!([{"type": "public-key", "alg": -7}, {"type": "public-key", "alg": -8}])
    );
    assert_eq!(body["user_verification"], "required");
    assert_eq!(body["attestation"], "direct");
    assert!(body["expires_at"].as_str().unwrap().ends_with('Z'));
    // Two challenges are never the same.
    let again = challenge(&mut gw, "alice", "localhost")
        .await
        .json()
        .unwrap();
    assert_ne!(again["challenge"], body["challenge"]);
    assert_ne!(again["challenge_id"], body["challenge_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenges_refuse_unknown_relying_parties_bad_users_and_other_groups() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let r = challenge(&mut gw, "alice", "evil.example").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (422, "unknown_relying_party")
    );
    for user in [String::new(), "x".repeat(65)] {
        let r = challenge(&mut gw, &user, "localhost").await;
        assert_eq!((r.status, error_code(&r).as_str()), (422, "invalid_user"));
    }
    // A control character is refused with the other unsafe characters, when decoded.
    let r = challenge(&mut gw, "a\nb", "localhost").await;
    assert_eq!((r.status, error_code(&r).as_str()), (422, "unsafe_text"));
    let r = post(
        &mut gw,
        "/v1/devices/challenges",
        serde_json::json!({"user": "alice"}),
    )
    .await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "malformed_request")
    );
    for who in ["vault-reader", "auditor", "custodian-1"] {
        let mut c = d.client(who).await;
        let r = challenge(&mut c, "alice", "localhost").await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "forbidden"),
            "{who}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrolment_refuses_unknown_challenges_bad_base64_and_other_groups() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (id, ch) = issued(&mut gw).await;
    let reg = auth.register(&ch, Attestation::None);

    let r = post(&mut gw, "/v1/devices", reg.body("no-such-challenge")).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "challenge_not_found")
    );
    let mut bad = reg.body(&id);
    bad["attestation_object"] = "o2NmbXQ=".into(); // padded: not base64url without padding
    let r = post(&mut gw, "/v1/devices", bad).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (400, "malformed_request")
    );
    // A vault reader may not enrol, even with a valid challenge id; the refusal is audited
    // and is decided before the challenge is touched.
    let mut reader = d.client("vault-reader").await;
    let r = post(&mut reader, "/v1/devices", reg.body(&id)).await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    let audit = audit_lines(&d);
    assert!(audit
        .iter()
        .any(|l| l["action"] == "enrol_device" && l["outcome"] == "forbidden"));
    assert!(audit.iter().any(
        |l| l["action"] == "device_enrolment_refused" && l["outcome"] == "challenge_not_found"
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_attestation_enrols_with_trust_none() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let r = enrol(&mut gw, &auth, Attestation::None).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let body = r.json().unwrap();
    assert_eq!(body["format"], "none");
    assert_eq!(body["trust"], "none");
    assert_eq!(body["aaguid"], "00000000-0000-0000-0000-000000000000");
    assert_eq!(body["user_verified"], true);
    assert!(!body["device_id"].as_str().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn packed_self_attestation_enrols_with_trust_self() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let r = enrol(&mut gw, &auth, Attestation::PackedSelf).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let body = r.json().unwrap();
    assert_eq!(body["format"], "packed");
    assert_eq!(body["trust"], "self");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_challenge_is_refused_as_used() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let (id, ch) = issued(&mut gw).await;
    let first = Authenticator::new().register(&ch, Attestation::None);
    let r = post(&mut gw, "/v1/devices", first.body(&id)).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    // The same response again, and a different credential on the same challenge.
    let r = post(&mut gw, "/v1/devices", first.body(&id)).await;
    assert_eq!((r.status, error_code(&r).as_str()), (409, "challenge_used"));
    let other = Authenticator::new().register(&ch, Attestation::None);
    let r = post(&mut gw, "/v1/devices", other.body(&id)).await;
    assert_eq!((r.status, error_code(&r).as_str()), (409, "challenge_used"));
}

/// Asserts a 422 carrying the verifier's own reason code (not one of the service's codes),
/// audited as a refused enrolment with that code as outcome; returns the code.
async fn assert_rejected_by_verifier(d: &Daemon, r: &Response) -> String {
    assert_eq!(r.status, 422, "{:?}", r.json());
    let code = error_code(r);
    assert!(
        ![
            "unknown_relying_party",
            "credential_id_mismatch",
            "malformed_request",
            ""
        ]
        .contains(&code.as_str()),
        "{code}"
    );
    let audit = audit_lines(d);
    assert!(
        audit
            .iter()
            .any(|l| l["action"] == "device_enrolment_refused" && l["outcome"] == code.as_str()),
        "refusal {code} not audited"
    );
    code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_origin_is_refused_with_the_verifier_code_and_burns_the_challenge() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut auth = Authenticator::new();
    auth.origin = "https://evil.example".to_owned();
    let (id, ch) = issued(&mut gw).await;
    let r = post(
        &mut gw,
        "/v1/devices",
        auth.register(&ch, Attestation::None).body(&id),
    )
    .await;
    assert_rejected_by_verifier(&d, &r).await;
    // The failed attempt used the challenge up.
    auth.origin = "https://localhost".to_owned();
    let r = post(
        &mut gw,
        "/v1/devices",
        auth.register(&ch, Attestation::None).body(&id),
    )
    .await;
    assert_eq!((r.status, error_code(&r).as_str()), (409, "challenge_used"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_without_user_verification_is_refused() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut auth = Authenticator::new();
    auth.user_verified = false;
    let r = enrol(&mut gw, &auth, Attestation::PackedSelf).await;
    assert_rejected_by_verifier(&d, &r).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_id_other_than_the_attested_one_is_refused() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (id, ch) = issued(&mut gw).await;
    let mut body = auth.register(&ch, Attestation::None).body(&id);
    body["credential_id"] = URL_SAFE_NO_PAD.encode([9u8; 32]).into();
    let r = post(&mut gw, "/v1/devices", body).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (422, "credential_id_mismatch")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_registered_twice_is_refused() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let r = enrol(&mut gw, &auth, Attestation::None).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let r = enrol(&mut gw, &auth, Attestation::PackedSelf).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (409, "credential_exists")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_bound_to_a_token_is_audited_with_its_credential_and_never_the_pan() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pan = random_pan("411111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "shop").await);
    let auth = Authenticator::new();
    let (id, ch) = issued(&mut gw).await;
    let mut body = auth.register(&ch, Attestation::PackedSelf).body(&id);
    body["token"] = token.clone().into();
    body["domain"] = "shop".into();
    let r = post(&mut gw, "/v1/devices", body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let device_id = r.json().unwrap()["device_id"].as_str().unwrap().to_owned();

    let export = audit_export(&d);
    assert!(!export.contains(&pan), "the PAN is in the audit log");
    let credential = URL_SAFE_NO_PAD.encode(&auth.credential_id);
    let enrolled: Vec<serde_json::Value> = audit_lines(&d)
        .into_iter()
        .filter(|l| l["action"] == "device_enrolled")
        .collect();
    assert_eq!(enrolled.len(), 1);
    let detail = enrolled[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("credential={credential}")),
        "{detail}"
    );
    assert!(detail.contains(&format!("device={device_id}")), "{detail}");
    assert!(detail.contains("format=packed trust=self"), "{detail}");
    assert_eq!(enrolled[0]["token"], token.as_str());
    assert_eq!(
        enrolled[0]["policy_ids"],
        serde_json::json!(["gateway-device-enrolment"])
    );
    // The export still verifies with the new field.
    let (ok, msg) = audit_verify(&d, "audit.jsonl", &export);
    assert!(ok, "{msg}");

    // Binding to a token that does not exist is refused.
    let (id, ch) = issued(&mut gw).await;
    let mut body = Authenticator::new()
        .register(&ch, Attestation::None)
        .body(&id);
    body["token"] = "4111119999991111".into();
    body["domain"] = "shop".into();
    let r = post(&mut gw, "/v1/devices", body).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "token_not_found")
    );
}
