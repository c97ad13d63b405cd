//! Caller text is screened when the request is decoded, before the policy, the store, the
//! audit log or the signer see it (issue 16 items 3 and 5): a card number where a token
//! belongs is `pan_as_token`, one inside text `pan_in_text`; characters that hide or reorder
//! what a person reads are `unsafe_text`; an SPC icon that is not an `https:` or
//! `data:image/` URL is `invalid_icon`; and what is kept is NFC. Real mTLS, real SoftHSM2,
//! real SQLite, a software authenticator.
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
use serde_json::{json, Value};
use support::authenticator::{Authenticator, SpcPayment};
use support::*;

const PAN: &str = "4111111111111111";

/// A token in `shop` and the device enrolled for it.
struct Target {
    token: String,
    device_id: String,
}

/// A daemon, a gateway client, and a device enrolled for a token in `shop`.
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
    let (token, device_id) = enrol_for_token(&mut gw, &auth, "shop").await;
    World {
        d,
        gw,
        auth,
        t: Target { token, device_id },
    }
}

fn payment(t: &Target, payee: &str) -> Value {
    json!({
        "token": t.token,
        "domain": "shop",
        "device_id": t.device_id,
        "amount": 1234,
        "currency": "EUR",
        "payee": payee,
    })
}

fn with_spc(mut body: Value, display_name: &str, icon: &str) -> Value {
    body["spc"] = json!({
        "payee_origin": "https://merchant.example",
        "top_origin": "https://merchant.example",
        "instrument": {"display_name": display_name, "icon": icon},
    });
    body
}

fn status_code(r: &Response) -> (u16, String) {
    (r.status, error_code(r))
}

fn jws_claims(jws: &str) -> Value {
    let payload = jws.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

async fn challenge(gw: &mut Client, body: Value) -> Response {
    post(gw, "/v1/authorizations/challenges", body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_card_number_where_a_token_or_text_belongs_is_refused_before_the_policy() {
    let mut w = world().await;
    let dashed = "4111-1111-1111-1111";
    // The auditor may do none of these: a 403 would mean the policy (and its audit record)
    // saw the card number first.
    let mut auditor = w.d.client("auditor").await;
    for c in [&mut w.gw, &mut auditor] {
        let r = detokenize(c, PAN, "shop").await;
        assert_eq!(status_code(&r), (422, "pan_as_token".into()));
        let r = get(c, &format!("/v1/tokens/{PAN}?domain=shop")).await;
        assert_eq!(status_code(&r), (422, "pan_as_token".into()));
        let r = post(
            c,
            &format!("/v1/tokens/{PAN}/suspend?domain=shop"),
            json!({}),
        )
        .await;
        assert_eq!(status_code(&r), (422, "pan_as_token".into()));
        let r = tokenize(c, &random_pan("4000", 16), dashed).await;
        assert_eq!(status_code(&r), (422, "pan_in_text".into()));
        let r = post(
            c,
            "/v1/devices/challenges",
            json!({"user": format!("alice {PAN}"), "rp_id": "localhost"}),
        )
        .await;
        assert_eq!(status_code(&r), (422, "pan_in_text".into()));
    }
    let r = challenge(&mut w.gw, payment(&w.t, &format!("Shop {dashed}"))).await;
    assert_eq!(status_code(&r), (422, "pan_in_text".into()));
    let mut body = payment(&w.t, "Shop");
    body["token"] = PAN.into();
    let r = challenge(&mut w.gw, body).await;
    assert_eq!(status_code(&r), (422, "pan_as_token".into()));
    let body = with_spc(
        payment(&w.t, "Shop"),
        "Visa 4111 1111 1111 1111",
        "https://b.example/i.png",
    );
    let r = challenge(&mut w.gw, body).await;
    assert_eq!(status_code(&r), (422, "pan_in_text".into()));

    // Headers: a card number as Idempotency-Key is a key like any other (it is stored only
    // as a keyed tag, so a retry still finds its answer); as x-request-id it is replaced by a
    // fresh id, never echoed.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r =
            w.gw.request_with_headers(
                hyper::Method::POST,
                "/v1/authorizations/challenges",
                Some(payment(&w.t, "Shop").to_string().into_bytes()),
                &[("Idempotency-Key", dashed)],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 201);
        answers.push(r.json().unwrap()["challenge_id"].clone());
    }
    assert_eq!(answers[0], answers[1], "the retry got the stored answer");
    for id in [PAN, dashed] {
        let r =
            w.gw.request_with_headers(
                hyper::Method::GET,
                "/healthz",
                None,
                &[("x-request-id", id)],
            )
            .await
            .unwrap();
        let echoed = r.headers["x-request-id"].to_str().unwrap();
        assert_eq!(echoed.len(), 32, "{echoed}");
        assert!(echoed.bytes().all(|b| b.is_ascii_hexdigit()), "{echoed}");
    }
    // None of the refused text was audited, nor the key in clear.
    let export = audit_export(&w.d);
    assert!(!export.contains(PAN) && !export.contains(dashed));
    assert!(!export.contains("pan_as_token") && !export.contains("pan_in_text"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofing_characters_in_displayed_text_are_refused() {
    let mut w = world().await;
    // U+202E RIGHT-TO-LEFT OVERRIDE: "Acme\u{202e}moc.live" reads as "Acmeevil.com".
    let r = challenge(&mut w.gw, payment(&w.t, "Acme\u{202e}moc.live")).await;
    assert_eq!(status_code(&r), (422, "unsafe_text".into()));
    for user in ["ali\u{200d}ce", "alice\u{2028}admin", "alice\u{e000}"] {
        let r = post(
            &mut w.gw,
            "/v1/devices/challenges",
            json!({"user": user, "rp_id": "localhost"}),
        )
        .await;
        assert_eq!(status_code(&r), (422, "unsafe_text".into()), "{user:?}");
    }
    for name in ["Visa\u{200b}1111", "Visa \u{2066}1111", "Visa\u{feff}"] {
        let body = with_spc(payment(&w.t, "Shop"), name, "https://bank.example/v.png");
        let r = challenge(&mut w.gw, body).await;
        assert_eq!(status_code(&r), (422, "unsafe_text".into()), "{name:?}");
    }
    // Nothing refused was stored: the challenges table has no such text.
    let db = rusqlite::Connection::open(w.d.data_dir.join("payhsm.db")).unwrap();
    let n: i64 = db
        .query_row("SELECT COUNT(*) FROM authorization_challenges", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(n, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spc_icon_must_be_an_https_or_data_image_url() {
    let mut w = world().await;
    for icon in [
        "javascript:alert(1)",
        "JavaScript:alert(1)",
        "http://bank.example/v.png",
        "data:text/html;base64,PHNjcmlwdD4",
        "//bank.example/v.png",
        "https:",
    ] {
        let body = with_spc(payment(&w.t, "Shop"), "Visa", icon);
        let r = challenge(&mut w.gw, body).await;
        assert_eq!(status_code(&r), (422, "invalid_icon".into()), "{icon}");
    }
    for icon in [
        "https://bank.example/v.png",
        "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
    ] {
        let body = with_spc(payment(&w.t, "Shop"), "Visa", icon);
        let r = challenge(&mut w.gw, body).await;
        assert_eq!(r.status, 201, "{icon}: {:?}", r.json());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decomposed_payee_is_kept_and_signed_as_nfc() {
    let mut w = world().await;
    let decomposed = "Cafe\u{301} Zu\u{308}rich";
    let composed = "Caf\u{e9} Z\u{fc}rich";
    // webauthn.get: the JWS carries the payee as kept.
    let r = challenge(&mut w.gw, payment(&w.t, decomposed)).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let a = w.auth.assert(c["challenge"].as_str().unwrap(), 1, None);
    let r = post(
        &mut w.gw,
        "/v1/authorizations",
        a.body(c["challenge_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let claims = jws_claims(r.json().unwrap()["authorization"].as_str().unwrap());
    assert_eq!(claims["payee"], composed);

    // SPC: the browser shows and echoes the payee as the merchant gave it (decomposed); the
    // same text under NFC is the same payee.
    let body = with_spc(
        payment(&w.t, decomposed),
        "Visa",
        "https://bank.example/v.png",
    );
    let r = challenge(&mut w.gw, body).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let shown = SpcPayment {
        rp_id: "localhost".into(),
        top_origin: "https://merchant.example".into(),
        payee_name: decomposed.into(),
        payee_origin: "https://merchant.example".into(),
        currency: "EUR".into(),
        value: "12.34".into(),
        instrument_name: "Visa".into(),
        instrument_icon: "https://bank.example/v.png".into(),
        instrument_details: None,
        logos: Vec::new(),
    };
    let a = w
        .auth
        .assert(c["challenge"].as_str().unwrap(), 2, Some(&shown));
    let r = post(
        &mut w.gw,
        "/v1/authorizations",
        a.body(c["challenge_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let claims = jws_claims(r.json().unwrap()["authorization"].as_str().unwrap());
    assert_eq!(claims["payee"], composed);

    let db = rusqlite::Connection::open(w.d.data_dir.join("payhsm.db")).unwrap();
    let payees: Vec<String> = db
        .prepare("SELECT payee FROM authorization_challenges")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(payees, [composed, composed]);
}
