//! Payment authorizations API v1 end to end: real mTLS, real SoftHSM2, real SQLite, and a
//! software authenticator (tests/support/authenticator.rs) enrolled with packed self
//! attestation (trust `self`) and bound to a tokenized card.
//!
//! Tests named `approved_*` / `*_approval_*` reach `AuthorizationSigner::sign`: they pass once
//! the JOSE signer is merged. Every refusal path stops before signing.
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
use support::authenticator::{Assertion, Authenticator, SpcPayment};
use support::*;

const DOMAIN: &str = "shop";
const THRESHOLD_POLICY: &str = "payments-above-100-need-hardware-trust";

/// A token in `shop` and the device enrolled for it.
struct Target {
    token: String,
    device_id: String,
}

/// A daemon, a gateway client, a device enrolled for a token in `shop`.
struct World {
    d: Daemon,
    gw: Client,
    auth: Authenticator,
    t: Target,
}

async fn world() -> World {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, DOMAIN).await;
    World {
        d,
        gw,
        auth,
        t: Target { token, device_id },
    }
}

/// The body of a payment challenge request.
fn payment(t: &Target, amount: u64, currency: &str, payee: &str) -> serde_json::Value {
    serde_json::json!({
        "token": t.token,
        "domain": DOMAIN,
        "device_id": t.device_id,
        "amount": amount,
        "currency": currency,
        "payee": payee,
    })
}

fn with_spc(mut body: serde_json::Value) -> serde_json::Value {
    body["spc"] = serde_json::json!({
        "payee_origin": "https://merchant.example",
        "top_origin": "https://merchant.example",
        "instrument": {"display_name": "Visa ••1111", "icon": "https://bank.example/visa.png"},
    });
    body
}

/// What the SPC dialog showed for `with_spc(payment(.., value, currency, payee))`.
fn spc(value: &str, currency: &str, payee: &str) -> SpcPayment {
    SpcPayment {
        rp_id: "localhost".into(),
        top_origin: "https://merchant.example".into(),
        payee_name: payee.into(),
        payee_origin: "https://merchant.example".into(),
        currency: currency.into(),
        value: value.into(),
        instrument_name: "Visa ••1111".into(),
        instrument_icon: "https://bank.example/visa.png".into(),
        instrument_details: None,
        logos: Vec::new(),
    }
}

async fn post_key(c: &mut Client, path: &str, body: &serde_json::Value, key: &str) -> Response {
    c.request_with_headers(
        hyper::Method::POST,
        path,
        Some(body.to_string().into_bytes()),
        &[("Idempotency-Key", key)],
    )
    .await
    .unwrap()
}

/// Asks for a payment challenge: (challenge_id, challenge).
async fn issue(c: &mut Client, body: serde_json::Value) -> (String, String) {
    let r = post(c, "/v1/authorizations/challenges", body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let b = r.json().unwrap();
    (
        b["challenge_id"].as_str().unwrap().to_owned(),
        b["challenge"].as_str().unwrap().to_owned(),
    )
}

async fn authorize(c: &mut Client, id: &str, a: &Assertion) -> Response {
    post(c, "/v1/authorizations", a.body(id)).await
}

fn status_code(r: &Response) -> (u16, String) {
    (r.status, error_code(r))
}

fn jws_claims(jws: &str) -> serde_json::Value {
    let parts: Vec<&str> = jws.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS");
    let header: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

fn audit_lines(d: &Daemon) -> Vec<serde_json::Value> {
    audit_export(d)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---- approval paths: pass once the JOSE signer is merged ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_authorization_is_a_jws_over_the_payment() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 1234, "EUR", "Café Zürich")).await;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let b = r.json().unwrap();
    assert_eq!(b["decision"], "approved");
    let claims = jws_claims(b["authorization"].as_str().unwrap());
    assert_eq!(claims["authorization_id"], b["authorization_id"]);
    // Challenge and authorization ids are UUIDv7: their first 48 bits are the creation time
    // in milliseconds, so the authorization's is not earlier than its challenge's.
    let authorization_id = b["authorization_id"].as_str().unwrap();
    for uuid in [id.as_str(), authorization_id] {
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(&uuid[14..15], "7", "version 7: {uuid}");
        assert!("89ab".contains(&uuid[19..20]), "RFC 9562 variant: {uuid}");
    }
    assert!(
        id[..13] <= authorization_id[..13],
        "{id} {authorization_id}"
    );
    assert_eq!(claims["token"], w.t.token.as_str());
    assert_eq!(claims["domain"], DOMAIN);
    assert_eq!(claims["amount"], 1234);
    assert_eq!(claims["currency"], "EUR");
    assert_eq!(claims["payee"], "Café Zürich");
    assert_eq!(claims["device_id"], w.t.device_id.as_str());
    assert_eq!(
        claims["credential_id"],
        URL_SAFE_NO_PAD.encode(&w.auth.credential_id)
    );
    assert_eq!(claims["user_verified"], true);
    assert_eq!(claims["trust"], "self");
    assert_eq!(
        claims["policy"],
        serde_json::json!(["gateway-authorize-payments-in-its-domains"])
    );
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 300);

    // A gateway verifies it offline with an independent JOSE library against the JWKS served
    // by the daemon, and with `payhsm authz verify --jwks https://...`.
    let jws = b["authorization"].as_str().unwrap();
    let jwks = get(&mut w.gw, "/v1/keys/jwks").await;
    assert_eq!(jwks.status, 200);
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).unwrap();
    let header = jsonwebtoken::decode_header(jws).unwrap();
    let jwk = set.find(header.kid.as_deref().unwrap()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap();
    let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    let verified = jsonwebtoken::decode::<serde_json::Value>(jws, &key, &validation).unwrap();
    assert_eq!(verified.claims, claims);
    let mut tampered: Vec<u8> = jws.as_bytes().to_vec();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(jsonwebtoken::decode::<serde_json::Value>(&tampered, &key, &validation).is_err());
    let url = format!("https://{}/v1/keys/jwks", w.d.addr);
    let out = payhsm(&[
        "authz",
        "verify",
        jws,
        "--jwks",
        &url,
        "--url",
        &format!("https://{}", w.d.addr),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let approved: Vec<_> = audit_lines(&w.d)
        .into_iter()
        .filter(|l| l["action"] == "authorization_approved")
        .collect();
    assert_eq!(approved.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_spc_payment_get_with_the_asked_payment_data() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, with_spc(payment(&w.t, 1234, "BHD", "Shop"))).await;
    let a = w.auth.assert(&ch, 1, Some(&spc("1.234", "BHD", "Shop")));
    let r = authorize(&mut w.gw, &id, &a).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_once_when_the_same_assertion_is_sent_twice_concurrently() {
    let mut w = world().await;
    let mut gw2 = w.d.client("gateway").await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "USD", "Shop")).await;
    let a = w.auth.assert(&ch, 1, None);
    let (r1, r2) = tokio::join!(authorize(&mut w.gw, &id, &a), authorize(&mut gw2, &id, &a));
    let mut statuses = [r1.status, r2.status];
    statuses.sort();
    assert_eq!(statuses, [201, 409], "{:?} {:?}", r1.json(), r2.json());
    let loser = if r1.status == 409 { &r1 } else { &r2 };
    assert_eq!(error_code(loser), "challenge_used");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approved_idempotent_retry_returns_the_same_authorization() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "USD", "Shop")).await;
    let body = w.auth.assert(&ch, 1, None).body(&id);
    let r1 = post_key(&mut w.gw, "/v1/authorizations", &body, "pay-1").await;
    assert_eq!(r1.status, 201, "{:?}", r1.json());
    let r2 = post_key(&mut w.gw, "/v1/authorizations", &body, "pay-1").await;
    assert_eq!(r2.status, 201, "{:?}", r2.json());
    assert_eq!(r1.json().unwrap(), r2.json().unwrap());
    // Without the key the same assertion meets a used challenge.
    let r3 = post(&mut w.gw, "/v1/authorizations", body).await;
    assert_eq!(status_code(&r3), (409, "challenge_used".into()));
}

// ---- refusal paths: never reach the signer ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_without_user_verification_is_refused() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
    w.auth.user_verified = false;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (422, "user_not_verified".into()));
    assert!(r.json().unwrap().get("authorization").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spc_data_differing_from_the_challenge_is_refused() {
    let mut w = world().await;
    let body = with_spc(payment(&w.t, 1234, "EUR", "Shop"));
    for (shown, member) in [
        (spc("12.35", "EUR", "Shop"), "payment.total.value"),
        (spc("12.34", "USD", "Shop"), "payment.total.currency"),
        (spc("12.34", "EUR", "Evil Shop"), "payment.payeeName"),
        // 1234 EUR is 12.34, never the minor units.
        (spc("1234", "EUR", "Shop"), "payment.total.value"),
    ] {
        let (id, ch) = issue(&mut w.gw, body.clone()).await;
        let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, Some(&shown))).await;
        assert_eq!(
            status_code(&r),
            (422, "payment_mismatch".into()),
            "{member}"
        );
        let message = r.json().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(message.contains(member), "{message}");
    }
    // A challenge with SPC data needs payment.get, not webauthn.get.
    let (id, ch) = issue(&mut w.gw, body).await;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (422, "type_mismatch".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_is_used_once_even_by_a_refused_attempt() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 20_000, "EUR", "Shop")).await;
    let a = w.auth.assert(&ch, 1, None);
    let r = authorize(&mut w.gw, &id, &a).await;
    assert_eq!(status_code(&r), (403, "forbidden".into()));
    let r = authorize(&mut w.gw, &id, &a).await;
    assert_eq!(status_code(&r), (409, "challenge_used".into()));
    let r = authorize(&mut w.gw, "no-such-challenge", &a).await;
    assert_eq!(status_code(&r), (404, "challenge_not_found".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_challenge_is_gone() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
    let db = rusqlite::Connection::open(w.d.data_dir.join("payhsm.db")).unwrap();
    db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
    let n = db
        .execute(
            "UPDATE authorization_challenges SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?1",
            [&id],
        )
        .unwrap();
    assert_eq!(n, 1);
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (410, "challenge_expired".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_that_goes_back_is_refused() {
    let mut w = world().await;
    // A verified but policy-refused assertion still moves the counter to 10.
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 20_000, "EUR", "Shop")).await;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 10, None)).await;
    assert_eq!(status_code(&r), (403, "forbidden".into()));
    for counter in [5, 10] {
        let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
        let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, counter, None)).await;
        assert_eq!(
            status_code(&r),
            (422, "counter_regression".into()),
            "{counter}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_token_gets_no_challenge_and_no_authorization() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
    let r = post(
        &mut w.gw,
        &format!("/v1/tokens/{}/suspend", w.t.token),
        serde_json::json!({"domain": DOMAIN}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (409, "token_suspended".into()));
    let r = post(
        &mut w.gw,
        "/v1/authorizations/challenges",
        payment(&w.t, 500, "EUR", "Shop"),
    )
    .await;
    assert_eq!(status_code(&r), (409, "token_suspended".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_not_enrolled_for_the_token_is_refused() {
    let mut w = world().await;
    let other = token_of(&tokenize(&mut w.gw, &random_pan("550000", 16), DOMAIN).await);
    let mut body = payment(&w.t, 500, "EUR", "Shop");
    body["token"] = other.into();
    let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
    assert_eq!(
        status_code(&r),
        (422, "device_not_enrolled_for_token".into())
    );
    let mut body = payment(&w.t, 500, "EUR", "Shop");
    body["device_id"] = "AAAAAAAAAAAAAAAAAAAAAA".into();
    let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
    assert_eq!(status_code(&r), (404, "device_not_found".into()));
    // What cannot be a device id is a malformed request, not an unknown device.
    for bad in ["!!!", "", "AAAA", "AAAAAAAAAAAAAAAAAAAAAAAA"] {
        let mut body = payment(&w.t, 500, "EUR", "Shop");
        body["device_id"] = bad.into();
        let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
        assert_eq!(
            status_code(&r),
            (400, "malformed_request".into()),
            "{bad:?}"
        );
    }
    // Another device's credential cannot answer this device's challenge.
    let stranger = Authenticator::new();
    let (other_token, _) = enrol_for_token(&mut w.gw, &stranger, DOMAIN).await;
    assert_ne!(other_token, w.t.token);
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
    let r = authorize(&mut w.gw, &id, &stranger.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (422, "credential_mismatch".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_the_threshold_a_self_attested_device_is_refused_by_the_threshold_policy() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 10_001, "EUR", "Shop")).await;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (403, "forbidden".into()));
    let b = r.json().unwrap();
    assert!(b.get("authorization").is_none());
    let message = b["error"]["message"].as_str().unwrap();
    assert!(message.contains(THRESHOLD_POLICY), "{message}");
    let refused: Vec<_> = audit_lines(&w.d)
        .into_iter()
        .filter(|l| l["action"] == "authorization_refused")
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0]["outcome"], "forbidden");
    assert_eq!(refused[0]["decision"], "deny");
    assert_eq!(
        refused[0]["policy_ids"],
        serde_json::json!([THRESHOLD_POLICY])
    );
    assert_eq!(refused[0]["token"], w.t.token.as_str());
    let issued = audit_lines(&w.d)
        .into_iter()
        .filter(|l| l["action"] == "authorization_challenge_issued")
        .count();
    assert_eq!(issued, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_signature_is_refused_and_uses_the_challenge_up() {
    let mut w = world().await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
    let good = w.auth.assert(&ch, 1, None);
    let mut bad = good.clone();
    let last = bad.signature.len() - 1;
    bad.signature[last] ^= 0x01;
    let r = authorize(&mut w.gw, &id, &bad).await;
    assert_eq!(r.status, 422, "{:?}", r.json());
    let r = authorize(&mut w.gw, &id, &good).await;
    assert_eq!(status_code(&r), (409, "challenge_used".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_assertion_sent_twice_concurrently_is_judged_once() {
    let mut w = world().await;
    let mut gw2 = w.d.client("gateway").await;
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 20_000, "EUR", "Shop")).await;
    let a = w.auth.assert(&ch, 1, None);
    let (r1, r2) = tokio::join!(authorize(&mut w.gw, &id, &a), authorize(&mut gw2, &id, &a));
    let mut got = [status_code(&r1), status_code(&r2)];
    got.sort();
    assert_eq!(
        got,
        [(403, "forbidden".into()), (409, "challenge_used".into())]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_outside_the_gateway_allow_list_is_refused() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let auth = Authenticator::new();
    let (token, device_id) = enrol_for_token(&mut gw, &auth, "elsewhere").await;
    let body = serde_json::json!({
        "token": token, "domain": "elsewhere", "device_id": device_id,
        "amount": 500, "currency": "EUR", "payee": "Shop",
    });
    let (id, ch) = issue(&mut gw, body).await;
    let r = authorize(&mut gw, &id, &auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (403, "forbidden".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn challenge_values_are_checked() {
    let mut w = world().await;
    for (amount, currency, payee, code) in [
        (0, "EUR", "Shop".to_owned(), "invalid_amount"),
        (
            1_000_000_000_000_001,
            "EUR",
            "Shop".to_owned(),
            "invalid_amount",
        ),
        (500, "XXX", "Shop".to_owned(), "invalid_currency"),
        (500, "eur", "Shop".to_owned(), "invalid_currency"),
        (500, "EUR", String::new(), "invalid_payee"),
        (500, "EUR", "p".repeat(129), "invalid_payee"),
    ] {
        let r = post(
            &mut w.gw,
            "/v1/authorizations/challenges",
            payment(&w.t, amount, currency, &payee),
        )
        .await;
        assert_eq!(status_code(&r), (422, code.into()), "{amount} {currency}");
    }
    let mut body = with_spc(payment(&w.t, 500, "EUR", "Shop"));
    body["spc"]["payee_origin"] = "http://merchant.example".into();
    let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
    assert_eq!(status_code(&r), (422, "invalid_spc".into()));
    for who in ["vault-reader", "auditor"] {
        let mut c = w.d.client(who).await;
        let r = post(
            &mut c,
            "/v1/authorizations/challenges",
            payment(&w.t, 500, "EUR", "Shop"),
        )
        .await;
        assert_eq!(status_code(&r), (403, "forbidden".into()), "{who}");
    }
    // Another gateway principal cannot answer the gateway's challenge.
    let (id, ch) = issue(&mut w.gw, payment(&w.t, 500, "EUR", "Shop")).await;
    let mut reader = w.d.client("vault-reader").await;
    let r = authorize(&mut reader, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (404, "challenge_not_found".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotency_keys_replay_the_same_challenge_and_refuse_another_body() {
    let mut w = world().await;
    let body = payment(&w.t, 500, "EUR", "Shop");
    let path = "/v1/authorizations/challenges";
    let r1 = post_key(&mut w.gw, path, &body, "order-42").await;
    assert_eq!(r1.status, 201, "{:?}", r1.json());
    let r2 = post_key(&mut w.gw, path, &body, "order-42").await;
    assert_eq!(r2.status, 201);
    assert_eq!(r1.json().unwrap(), r2.json().unwrap());
    let other = payment(&w.t, 501, "EUR", "Shop");
    let r3 = post_key(&mut w.gw, path, &other, "order-42").await;
    assert_eq!(status_code(&r3), (422, "idempotency_key_reused".into()));
    // The same key on the other route is another request too.
    let c = r1.json().unwrap();
    let a = w.auth.assert(c["challenge"].as_str().unwrap(), 1, None);
    let r4 = post_key(
        &mut w.gw,
        "/v1/authorizations",
        &a.body(c["challenge_id"].as_str().unwrap()),
        "order-42",
    )
    .await;
    assert_eq!(status_code(&r4), (422, "idempotency_key_reused".into()));
    let r5 = post_key(&mut w.gw, path, &body, "bad key").await;
    assert_eq!(status_code(&r5), (400, "malformed_request".into()));
    // Keys are per principal: a key of the gateway means nothing for another client.
    let mut reader = w.d.client("vault-reader").await;
    let r6 = post_key(&mut reader, path, &body, "order-42").await;
    assert_eq!(status_code(&r6), (403, "forbidden".into()));
}

// ---- reading authorizations back, the JWS's registered claims, the CLI ----

/// Approves a payment of `body` and returns the POST's answer.
async fn approve(w: &mut World, body: serde_json::Value, counter: u32) -> serde_json::Value {
    let (id, ch) = issue(&mut w.gw, body).await;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, counter, None)).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    r.json().unwrap()
}

fn rfc3339_unix(text: &str) -> i64 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_is_read_back_as_it_was_issued() {
    let mut w = world().await;
    let body = payment(&w.t, 1234, "EUR", "Café Zürich");
    let posted = approve(&mut w, body, 1).await;
    let id = posted["authorization_id"].as_str().unwrap();
    let jws = posted["authorization"].as_str().unwrap();
    let claims = jws_claims(jws);
    // RFC 7519 §4.1.7: jti is the authorization id; no audience was named, so no aud.
    assert_eq!(claims["jti"], id);
    assert!(claims.get("aud").is_none(), "{claims}");

    let r = get(&mut w.gw, &format!("/v1/authorizations/{id}")).await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    let got = r.json().unwrap();
    assert_eq!(
        got,
        serde_json::json!({
            "authorization_id": id,
            "decision": "approved",
            "issued_at": got["issued_at"],
            "expires_at": got["expires_at"],
            "policy_ids": ["gateway-authorize-payments-in-its-domains"],
            "token": w.t.token,
            "domain": DOMAIN,
            "amount": 1234,
            "currency": "EUR",
            "payee": "Café Zürich",
            "device_id": w.t.device_id,
            "authorization": jws,
        })
    );
    assert_eq!(got["decision"], posted["decision"]);
    assert_eq!(
        rfc3339_unix(got["issued_at"].as_str().unwrap()),
        claims["iat"].as_i64().unwrap()
    );
    assert_eq!(
        rfc3339_unix(got["expires_at"].as_str().unwrap()),
        claims["exp"].as_i64().unwrap()
    );
    // The default `webauthn.authorization_ttl_seconds`.
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        300
    );

    for unknown in ["0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "nope"] {
        let r = get(&mut w.gw, &format!("/v1/authorizations/{unknown}")).await;
        assert_eq!(
            status_code(&r),
            (404, "authorization_not_found".into()),
            "{unknown}"
        );
    }
    let r = post(
        &mut w.gw,
        &format!("/v1/authorizations/{id}"),
        serde_json::json!({}),
    )
    .await;
    assert_eq!(status_code(&r), (405, "method_not_allowed".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_and_auditors_read_authorizations_and_others_are_refused_and_audited() {
    let mut w = world().await;
    let body = payment(&w.t, 500, "EUR", "Shop");
    let posted = approve(&mut w, body, 1).await;
    let id = posted["authorization_id"].as_str().unwrap();
    let path = format!("/v1/authorizations/{id}");
    for who in ["gateway", "auditor"] {
        let mut c = w.d.client(who).await;
        let r = get(&mut c, &path).await;
        assert_eq!(r.status, 200, "{who}: {:?}", r.json());
        assert_eq!(r.json().unwrap()["authorization"], posted["authorization"]);
    }
    for who in ["vault-reader", "monitoring"] {
        let mut c = w.d.client(who).await;
        let r = get(&mut c, &path).await;
        assert_eq!(status_code(&r), (403, "forbidden".into()), "{who}");
        assert!(r.json().unwrap().get("authorization").is_none());
    }
    let refused: Vec<_> = audit_lines(&w.d)
        .into_iter()
        .filter(|l| l["action"] == "read_authorization")
        .collect();
    assert_eq!(refused.len(), 2, "{refused:?}");
    for (line, who) in refused.iter().zip(["vault-reader", "monitoring"]) {
        assert_eq!(line["principal"], format!("spiffe://payhsm.dev/{who}"));
        assert_eq!(line["outcome"], "forbidden");
        assert_eq!(line["decision"], "deny");
        assert_eq!(line["token"], w.t.token.as_str());
        assert_eq!(line["domain"], DOMAIN);
        assert_eq!(line["detail"], format!("authorization={id}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_naming_an_audience_is_signed_with_it_as_aud() {
    let mut w = world().await;
    let mut body = payment(&w.t, 500, "EUR", "Shop");
    body["audience"] = "https://acquirer.example".into();
    let posted = approve(&mut w, body, 1).await;
    let claims = jws_claims(posted["authorization"].as_str().unwrap());
    assert_eq!(claims["aud"], "https://acquirer.example");
    assert_eq!(claims["jti"], posted["authorization_id"]);
    // A JOSE library that checks the audience accepts it for that recipient only.
    let jwks = get(&mut w.gw, "/v1/keys/jwks").await;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&jwks.body).unwrap();
    let jws = posted["authorization"].as_str().unwrap();
    let header = jsonwebtoken::decode_header(jws).unwrap();
    let key =
        jsonwebtoken::DecodingKey::from_jwk(set.find(header.kid.as_deref().unwrap()).unwrap())
            .unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["https://acquirer.example"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(jws, &key, &validation).is_ok());
    validation.set_audience(&["https://someone-else.example"]);
    assert!(jsonwebtoken::decode::<serde_json::Value>(jws, &key, &validation).is_err());

    for (audience, code) in [
        ("", "invalid_audience"),
        ("two words", "invalid_audience"),
        ("ünïcode", "invalid_audience"),
        ("aud-4111111111111111", "pan_in_text"),
    ] {
        let mut body = payment(&w.t, 500, "EUR", "Shop");
        body["audience"] = audience.into();
        let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
        assert_eq!(status_code(&r), (422, code.into()), "{audience:?}");
    }
    let mut body = payment(&w.t, 500, "EUR", "Shop");
    body["audience"] = "a".repeat(129).into();
    let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
    assert_eq!(status_code(&r), (422, "invalid_audience".into()));
}

/// `payhsm authz verify JWS --jwks URL` against the daemon with `extra` options: (exit code,
/// stdout).
fn authz_verify(d: &Daemon, jws: &str, extra: &[&str]) -> (i32, String) {
    let url = format!("https://{}", d.addr);
    let jwks = format!("{url}/v1/keys/jwks");
    let mut args = vec!["authz", "verify", jws, "--jwks", &jwks, "--url", &url];
    args.extend_from_slice(extra);
    let out = payhsm(&args);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_verify_refuses_an_expired_authorization_beyond_the_leeway() {
    let mut w = world().await;
    let body = payment(&w.t, 500, "EUR", "Shop");
    let posted = approve(&mut w, body, 1).await;
    let jws = posted["authorization"].as_str().unwrap();
    let claims = jws_claims(jws);
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    let at = |t: i64| t.to_string();
    // Now: valid, and the claims are printed.
    let (code, out) = authz_verify(&w.d, jws, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        claims
    );
    // The default leeway is 60 s: still accepted 59 s after exp, refused from 60 s on.
    let (code, out) = authz_verify(&w.d, jws, &["--at", &at(exp + 59)]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = authz_verify(&w.d, jws, &["--at", &at(exp + 60)]);
    assert_eq!((code, out.trim()), (1, "invalid: expired"));
    // Without leeway, exp itself is too late.
    let (code, out) = authz_verify(&w.d, jws, &["--at", &at(exp), "--leeway", "0"]);
    assert_eq!((code, out.trim()), (1, "invalid: expired"));
    let (code, out) = authz_verify(&w.d, jws, &["--at", &at(exp - 1), "--leeway", "0"]);
    assert_eq!(code, 0, "{out}");
    // A verifier whose clock is behind: iat in the future beyond the leeway is refused.
    let (code, out) = authz_verify(&w.d, jws, &["--at", &at(iat - 61)]);
    assert_eq!((code, out.trim()), (1, "invalid: iat_in_future"));
    let (code, out) = authz_verify(&w.d, jws, &["--at", &at(iat - 10), "--leeway", "10"]);
    assert_eq!(code, 0, "{out}");
    // The leeway is bounded.
    let (code, _) = authz_verify(&w.d, jws, &["--leeway", "301"]);
    assert_eq!(code, 2);
}

/// Runs `payhsm` against the daemon as the sample gateway: (exit code, stdout as JSON).
fn cli_json(d: &Daemon, args: &[&str]) -> (i32, serde_json::Value) {
    let url = format!("https://{}", d.addr);
    let mut all = args.to_vec();
    all.extend_from_slice(&["--url", &url]);
    let out = payhsm(&all);
    let code = out.status.code().unwrap();
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| serde_json::json!({"stderr": String::from_utf8_lossy(&out.stderr)}));
    (code, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_payment_flow_runs_from_the_cli() {
    let w = world().await;
    let (code, issued) = cli_json(
        &w.d,
        &[
            "authorizations",
            "challenge",
            "--token",
            &w.t.token,
            "--domain",
            DOMAIN,
            "--device-id",
            &w.t.device_id,
            "--amount",
            "2500",
            "--currency",
            "EUR",
            "--payee",
            "Shop",
            "--audience",
            "gateway-eu",
        ],
    );
    assert_eq!(code, 0, "{issued}");
    let challenge_id = issued["challenge_id"].as_str().unwrap();
    // The software authenticator answers, as the payer's device would.
    let a = w
        .auth
        .assert(issued["challenge"].as_str().unwrap(), 1, None);
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let (credential_id, authenticator_data, client_data_json, signature) = (
        b64(&a.credential_id),
        b64(&a.authenticator_data),
        b64(&a.client_data_json),
        b64(&a.signature),
    );
    let create = [
        "authorizations",
        "create",
        "--challenge-id",
        challenge_id,
        "--credential-id",
        &credential_id,
        "--authenticator-data",
        &authenticator_data,
        "--client-data-json",
        &client_data_json,
        "--signature",
        &signature,
    ];
    let (code, signed) = cli_json(&w.d, &create);
    assert_eq!(code, 0, "{signed}");
    assert_eq!(signed["decision"], "approved");
    let id = signed["authorization_id"].as_str().unwrap();
    let jws = signed["authorization"].as_str().unwrap();
    assert_eq!(jws_claims(jws)["aud"], "gateway-eu");

    let (code, got) = cli_json(&w.d, &["authorizations", "get", id]);
    assert_eq!(code, 0, "{got}");
    assert_eq!(got["authorization"], jws);
    assert_eq!(got["amount"], 2500);
    let (code, out) = authz_verify(&w.d, jws, &[]);
    assert_eq!(code, 0, "{out}");

    // The same answer again meets a used challenge: exit 1, the API's code on stderr.
    let url = format!("https://{}", w.d.addr);
    let out = payhsm(&[&create[..], &["--url", &url]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("challenge_used"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, _) = cli_json(&w.d, &["authorizations", "get", "no-such-id"]);
    assert_eq!(code, 1);
}

/// java-webauthn-server's YSA-2026-02, and its neighbours: an assertion is bound to one
/// credential, that credential to one device, and the device to its user and card. Alice's
/// authenticator cannot pay with Bob's device or card, whichever ids the request mixes, and an
/// approval names exactly the device, credential and card of its challenge.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assertion_never_authorizes_a_payment_for_another_users_device_or_card() {
    let mut w = world().await; // Bob's device, bound to Bob's card.
    let alice = Authenticator::new();
    let (alice_token, alice_device) = enrol_for_token(&mut w.gw, &alice, DOMAIN).await;
    let bob = Target {
        token: w.t.token.clone(),
        device_id: w.t.device_id.clone(),
    };
    let refused = |r: &Response| r.status == 422 || r.status == 409;

    // 1. Alice answers Bob's challenge with her own credential: not the challenge's device.
    let (id, ch) = issue(&mut w.gw, payment(&bob, 500, "EUR", "Shop")).await;
    let r = authorize(&mut w.gw, &id, &alice.assert(&ch, 1, None)).await;
    assert_eq!(status_code(&r), (422, "credential_mismatch".into()));

    // 2. Alice's assertion relabelled with Bob's credential id: the signature is checked
    // with Bob's stored key, and fails.
    let (id, ch) = issue(&mut w.gw, payment(&bob, 500, "EUR", "Shop")).await;
    let mut body = alice.assert(&ch, 1, None).body(&id);
    body["credential_id"] = URL_SAFE_NO_PAD.encode(&w.auth.credential_id).into();
    let r = post(&mut w.gw, "/v1/authorizations", body).await;
    assert!(refused(&r), "{:?}", r.json());
    assert_ne!(r.status, 201);

    // 3. Alice's device with Bob's card, and Bob's device with Alice's card: no challenge.
    for (token, device) in [(&bob.token, &alice_device), (&alice_token, &bob.device_id)] {
        let t = Target {
            token: token.clone(),
            device_id: device.clone(),
        };
        let r = post(
            &mut w.gw,
            "/v1/authorizations/challenges",
            payment(&t, 500, "EUR", "Shop"),
        )
        .await;
        assert_eq!(
            status_code(&r),
            (422, "device_not_enrolled_for_token".into())
        );
    }

    // 4. Alice's genuine assertion for her own payment cannot be replayed on Bob's
    // challenge: it signs her challenge, not his.
    let mine = Target {
        token: alice_token.clone(),
        device_id: alice_device.clone(),
    };
    let (_, alice_ch) = issue(&mut w.gw, payment(&mine, 500, "EUR", "Shop")).await;
    let (bob_id, _) = issue(&mut w.gw, payment(&bob, 500, "EUR", "Shop")).await;
    let mut body = alice.assert(&alice_ch, 2, None).body(&bob_id);
    body["credential_id"] = URL_SAFE_NO_PAD.encode(&w.auth.credential_id).into();
    let r = post(&mut w.gw, "/v1/authorizations", body).await;
    assert_ne!(r.status, 201, "{:?}", r.json());

    // 5. Each approval names its own device, credential and card, and nothing of Alice's ever
    // approved a payment of Bob's.
    let (id, ch) = issue(&mut w.gw, payment(&bob, 500, "EUR", "Shop")).await;
    let r = authorize(&mut w.gw, &id, &w.auth.assert(&ch, 1, None)).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let claims = jws_claims(r.json().unwrap()["authorization"].as_str().unwrap());
    assert_eq!(claims["device_id"], bob.device_id.as_str());
    assert_eq!(claims["token"], bob.token.as_str());
    assert_eq!(
        claims["credential_id"],
        URL_SAFE_NO_PAD.encode(&w.auth.credential_id)
    );
    let approvals: Vec<serde_json::Value> = audit_lines(&w.d)
        .into_iter()
        .filter(|l| l["outcome"] == "approved")
        .collect();
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    assert!(approvals[0]["detail"]
        .as_str()
        .unwrap()
        .contains(&bob.device_id));
}

/// SPC browser-bound keys: a device enrolled through a browser that has one keeps it; each
/// SPC payment must carry a signature by the same key over its clientDataJSON, and the JWS
/// names the key by its COSE Key Thumbprint. Another browser (the passkey synced elsewhere)
/// has no key or another key, and is refused; a key without its signature, or a signature
/// that does not verify, is refused at enrolment and at payment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_enrolled_with_a_browser_bound_key_pays_only_from_that_browser() {
    use support::authenticator::BrowserKey;
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut auth = Authenticator::new();
    auth.browser_key = Some(BrowserKey::new().unwrap());
    let token = token_of(&tokenize(&mut gw, &random_pan("411111", 16), DOMAIN).await);

    // Enrolment: the key without its signature, or with a bad one, is refused.
    let (id, ch) = enrolment_challenge(&mut gw).await;
    let mut body = auth
        .register(&ch, support::authenticator::Attestation::PackedSelf)
        .body(&id);
    body.as_object_mut()
        .unwrap()
        .remove("browser_bound_signature");
    let r = post(&mut gw, "/v1/devices", body).await;
    assert_eq!(
        status_code(&r),
        (422, "browser_bound_key_incomplete".into())
    );
    let (id, ch) = enrolment_challenge(&mut gw).await;
    let mut body = auth
        .register(&ch, support::authenticator::Attestation::PackedSelf)
        .body(&id);
    body["browser_bound_signature"] = URL_SAFE_NO_PAD
        .encode([0x30, 0x06, 2, 1, 1, 2, 1, 1])
        .into();
    let r = post(&mut gw, "/v1/devices", body).await;
    assert_eq!(
        status_code(&r),
        (422, "browser_bound_signature_invalid".into())
    );
    // With both: enrolled, bound to the card.
    let (id, ch) = enrolment_challenge(&mut gw).await;
    let mut body = auth
        .register(&ch, support::authenticator::Attestation::PackedSelf)
        .body(&id);
    body["token"] = token.clone().into();
    body["domain"] = DOMAIN.into();
    let r = post(&mut gw, "/v1/devices", body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let t = Target {
        token,
        device_id: r.json().unwrap()["device_id"].as_str().unwrap().to_owned(),
    };

    // A payment from the same browser: approved, the JWS names the key.
    let (id, ch) = issue(&mut gw, with_spc(payment(&t, 1234, "EUR", "Shop"))).await;
    let a = auth.assert(&ch, 1, Some(&spc("12.34", "EUR", "Shop")));
    assert!(a.browser_bound_signature.is_some());
    let r = authorize(&mut gw, &id, &a).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let claims = jws_claims(r.json().unwrap()["authorization"].as_str().unwrap());
    let thumbprint = claims["browser_bound_key"].as_str().unwrap().to_owned();
    assert_eq!(thumbprint.len(), 43, "base64url of a SHA-256");

    // The passkey synced to another browser: no key, then another key.
    let key = auth.browser_key.take();
    let (id, ch) = issue(&mut gw, with_spc(payment(&t, 1234, "EUR", "Shop"))).await;
    let a = auth.assert(&ch, 2, Some(&spc("12.34", "EUR", "Shop")));
    let r = authorize(&mut gw, &id, &a).await;
    assert_eq!(status_code(&r), (422, "browser_bound_key_missing".into()));
    auth.browser_key = Some(BrowserKey::new().unwrap());
    let (id, ch) = issue(&mut gw, with_spc(payment(&t, 1234, "EUR", "Shop"))).await;
    let a = auth.assert(&ch, 3, Some(&spc("12.34", "EUR", "Shop")));
    let r = authorize(&mut gw, &id, &a).await;
    assert_eq!(status_code(&r), (422, "browser_bound_key_changed".into()));
    // Back on the enrolling browser, a signature over other bytes is refused, a good one
    // approved with the same thumbprint.
    auth.browser_key = key;
    let (id, ch) = issue(&mut gw, with_spc(payment(&t, 1234, "EUR", "Shop"))).await;
    let mut a = auth.assert(&ch, 4, Some(&spc("12.34", "EUR", "Shop")));
    a.browser_bound_signature = Some(auth.browser_key.as_ref().unwrap().sign(b"other").unwrap());
    let r = authorize(&mut gw, &id, &a).await;
    assert_eq!(
        status_code(&r),
        (422, "browser_bound_signature_invalid".into())
    );
    let (id, ch) = issue(&mut gw, with_spc(payment(&t, 1234, "EUR", "Shop"))).await;
    let a = auth.assert(&ch, 5, Some(&spc("12.34", "EUR", "Shop")));
    let r = authorize(&mut gw, &id, &a).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let claims = jws_claims(r.json().unwrap()["authorization"].as_str().unwrap());
    assert_eq!(claims["browser_bound_key"], thumbprint.as_str());
}

/// An enrolment challenge for alice at `localhost`: (challenge_id, challenge).
async fn enrolment_challenge(gw: &mut Client) -> (String, String) {
    let r = post(
        gw,
        "/v1/devices/challenges",
        serde_json::json!({"user": "alice", "rp_id": "localhost"}),
    )
    .await;
    let c = r.json().unwrap();
    (
        c["challenge_id"].as_str().unwrap().to_owned(),
        c["challenge"].as_str().unwrap().to_owned(),
    )
}

/// SPC 2025's display members: the instrument's details and the payment entities' logos.
/// What the dialog showed must be what the challenge asked: the same details, and logos that
/// are an ordered subset of those asked, never one that was not asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spc_instrument_details_and_entity_logos_are_checked_against_the_challenge() {
    let mut w = world().await;
    let asked = |w: &World| {
        let mut body = with_spc(payment(&w.t, 1234, "EUR", "Shop"));
        body["spc"]["instrument"]["details"] = "Debit, expires 12/30".into();
        body["spc"]["payment_entities_logos"] = serde_json::json!([
            {"url": "https://network.example/logo.png", "label": "Network"},
            {"url": "https://bank.example/logo.png", "label": "Bank"},
        ]);
        body
    };
    let network = (
        "https://network.example/logo.png".to_owned(),
        "Network".to_owned(),
    );
    let bank = (
        "https://bank.example/logo.png".to_owned(),
        "Bank".to_owned(),
    );
    let shown = |details: Option<&str>, logos: Vec<(String, String)>| SpcPayment {
        instrument_details: details.map(str::to_owned),
        logos,
        ..spc("12.34", "EUR", "Shop")
    };
    let mut counter = 0;
    // As asked, and with the second logo left out: approved.
    let r = spc_attempt(
        &mut w,
        &mut counter,
        &asked,
        shown(
            Some("Debit, expires 12/30"),
            vec![network.clone(), bank.clone()],
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let r = spc_attempt(
        &mut w,
        &mut counter,
        &asked,
        shown(Some("Debit, expires 12/30"), vec![network.clone()]),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    // Other details, none, the logos reordered, or a logo not asked: refused.
    for (details, logos) in [
        (Some("Credit"), vec![network.clone()]),
        (None, vec![network.clone()]),
        (
            Some("Debit, expires 12/30"),
            vec![bank.clone(), network.clone()],
        ),
        (
            Some("Debit, expires 12/30"),
            vec![(
                "https://evil.example/l.png".to_owned(),
                "Network".to_owned(),
            )],
        ),
    ] {
        let r = spc_attempt(&mut w, &mut counter, &asked, shown(details, logos.clone())).await;
        assert_eq!(
            status_code(&r),
            (422, "payment_mismatch".into()),
            "{details:?} {logos:?}"
        );
    }
    // payeeName and/or payeeOrigin: a challenge may leave the origin out (the name is always
    // asked, and signed).
    let mut body = asked(&w);
    body["spc"].as_object_mut().unwrap().remove("payee_origin");
    let (id, ch) = issue(&mut w.gw, body).await;
    counter += 1;
    let a = w.auth.assert(
        &ch,
        counter,
        Some(&shown(Some("Debit, expires 12/30"), vec![network.clone()])),
    );
    let r = authorize(&mut w.gw, &id, &a).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    // A logo URL that is not https or an inline image is refused at the challenge.
    let mut body = asked(&w);
    body["spc"]["payment_entities_logos"][0]["url"] = "javascript:alert(1)".into();
    let r = post(&mut w.gw, "/v1/authorizations/challenges", body).await;
    assert_eq!(status_code(&r), (422, "invalid_icon".into()));
}

/// Issues the challenge `asked` builds and answers it showing `shown`, counter `counter + 1`.
async fn spc_attempt(
    w: &mut World,
    counter: &mut u32,
    asked: &dyn Fn(&World) -> serde_json::Value,
    shown: SpcPayment,
) -> Response {
    *counter += 1;
    let body = asked(w);
    let (id, ch) = issue(&mut w.gw, body).await;
    authorize(&mut w.gw, &id, &w.auth.assert(&ch, *counter, Some(&shown))).await
}
