//! End to end with the daemon's own key: a JWS signed by `AuthorizationSigner` over the dev
//! daemon's token (SoftHSM2, or the module under test) verifies with
//! `payhsm authz verify --jwks https://<daemon>/v1/keys/jwks`.
//!
//! Its own test binary: it points SOFTHSM2_CONF (or KRYOPTIC_CONF) at the daemon's token
//! store before the first PKCS#11 call of the process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use support::*;

use payhsm::config::defaults;
use payhsm::jose::AuthorizationSigner;
use payhsm::keys::{Hsm, HsmConfig, Module, Pin};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jws_signed_with_the_daemons_key_verifies_against_its_served_jwks() {
    let mut d = Daemon::start();
    let mut c = d.client("gateway").await;
    let served = get(&mut c, "/v1/keys/jwks").await.json().unwrap();
    drop(c);
    // Sign while the daemon is stopped, with the same token and key label.
    d.terminate();
    match dev_token_store(&d.data_dir) {
        Some((var, conf)) => std::env::set_var(var, conf),
        None => std::env::set_var("SOFTHSM2_CONF", d.data_dir.join("softhsm2.conf")),
    }
    let module = Module::load(&softhsm::module_path()).unwrap();
    let hsm = Hsm::open(
        &module,
        HsmConfig {
            token_label: defaults::DEV_TOKEN_LABEL.to_owned(),
            pin: Pin::new(defaults::DANGER_DEV_USER_PIN.to_owned()),
            sessions: 1,
        },
    )
    .unwrap();
    let signer = AuthorizationSigner::open(hsm, defaults::AUTHZ_KEY_LABEL)
        .await
        .unwrap();
    assert_eq!(signer.jwks(), served);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"authorization_id": "az_e2e", "amount": 990, "currency": "USD",
                        "iat": now, "exp": now + 120});
    let jws = signer.sign(&claims).await.unwrap().compact;

    d.restart();
    let keys = keys();
    let url = format!("https://{}/v1/keys/jwks", d.addr);
    let out = tokio::task::spawn_blocking(move || {
        payhsm(&[
            "authz",
            "verify",
            &jws,
            "--jwks",
            &url,
            "--ca",
            keys.join("ca.pem").to_str().unwrap(),
            "--cert",
            keys.join("clients/auditor.pem").to_str().unwrap(),
            "--key",
            keys.join("clients/auditor.key").to_str().unwrap(),
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        claims
    );
}
