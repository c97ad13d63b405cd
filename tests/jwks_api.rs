//! GET /v1/keys/jwks and `payhsm authz verify` against the real dev daemon (mTLS, SoftHSM2).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use support::*;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use payhsm::jose::{encode, Jwk, Jwks};
use payhsm::keys::EcPublicKey;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::io::Write as _;
use std::process::{Command, Output, Stdio};

/// RFC 7638 §3.2 by hand: the canonical JSON of the required members, SHA-256, base64url.
fn hand_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn fetch_jwks(d: &Daemon, who: &str) -> (Value, payhsm::client::Response) {
    let mut c = d.client(who).await;
    let r = get(&mut c, "/v1/keys/jwks").await;
    assert_eq!(r.status, 200, "{who}: {:?}", r.json());
    (r.json().unwrap(), r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwks_serves_one_es256_key_named_by_its_thumbprint_and_survives_a_restart() {
    let mut d = Daemon::start();
    let (jwks, r) = fetch_jwks(&d, "gateway").await;
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(r.headers["cache-control"], "max-age=300");
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{jwks}");
    let key = &keys[0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none());
    let (x, y) = (key["x"].as_str().unwrap(), key["y"].as_str().unwrap());
    assert_eq!(URL_SAFE_NO_PAD.decode(x).unwrap().len(), 32);
    assert_eq!(URL_SAFE_NO_PAD.decode(y).unwrap().len(), 32);
    assert_eq!(key["kid"].as_str().unwrap(), hand_thumbprint(x, y));
    assert!(Jwks::parse(&r.body).is_ok());

    // Public key material: every authenticated client may read it.
    for who in ["vault-reader", "auditor", "custodian-1"] {
        assert_eq!(fetch_jwks(&d, who).await.0, jwks);
    }
    let mut c = d.client("gateway").await;
    let r = post(&mut c, "/v1/keys/jwks", json!({})).await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (405, "method_not_allowed")
    );

    // The key lives in the token: same key, same kid after a restart.
    d.terminate();
    d.restart();
    assert_eq!(fetch_jwks(&d, "gateway").await.0, jwks);
}

/// A ring P-256 key that signs JWS the way the daemon does.
struct TestSigner {
    pair: EcdsaKeyPair,
    jwk: Jwk,
}

impl TestSigner {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let public = EcPublicKey(pair.public_key().as_ref().try_into().unwrap());
        Self {
            pair,
            jwk: Jwk::from_public_key(public),
        }
    }

    fn sign(&self, claims: &Value) -> String {
        let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.jwk.kid()});
        let input = encode(&header, claims).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let sig = self.pair.sign(&rng, input.as_bytes()).unwrap();
        input.into_compact(sig.as_ref().try_into().unwrap())
    }

    fn jwks_file(&self, dir: &std::path::Path) -> String {
        let path = dir.join("jwks.json");
        let doc = Jwks::new(vec![self.jwk.clone()]).unwrap().to_json();
        std::fs::write(&path, doc.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

fn verify_cli(jws: &str, jwks: &str, extra: &[&str]) -> Output {
    let mut args = vec!["authz", "verify", jws, "--jwks", jwks];
    args.extend_from_slice(extra);
    payhsm(&args)
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn authz_verify_prints_the_claims_of_a_valid_jws_from_a_jwks_file() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = TestSigner::new();
    let jwks = signer.jwks_file(tmp.path());
    let claims = json!({"authorization_id": "az_1", "amount": 4200, "currency": "EUR",
                        "iat": now(), "exp": now() + 300});
    let jws = signer.sign(&claims);

    let out = verify_cli(&jws, &jwks, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        claims
    );

    // `-` reads the JWS from stdin (a trailing newline is fine).
    let mut child = Command::new(env!("CARGO_BIN_EXE_payhsm"))
        .args(["authz", "verify", "-", "--jwks", &jwks])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{jws}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        claims
    );
}

#[test]
fn authz_verify_names_the_refusal_and_exits_1() {
    let tmp = tempfile::tempdir().unwrap();
    let signer = TestSigner::new();
    let jwks = signer.jwks_file(tmp.path());
    let jws = signer.sign(&json!({"amount": 4200, "exp": now() + 300}));
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[10] ^= 0x80;
    let flipped = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
    // Beyond the default leeway of 60 s.
    let expired = signer.sign(&json!({"exp": now() - 61}));
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, signer.jwk.kid())),
        URL_SAFE_NO_PAD.encode(b"{}")
    );
    let other = TestSigner::new().sign(&json!({}));
    for (jws, code) in [
        (flipped.as_str(), "bad_signature"),
        (expired.as_str(), "expired"),
        (none.as_str(), "unsupported_alg"),
        (other.as_str(), "unknown_kid"),
        (input, "wrong_part_count"),
    ] {
        let out = verify_cli(jws, &jwks, &[]);
        assert_eq!(out.status.code(), Some(1), "{code}: {out:?}");
        assert_eq!(stdout(&out).trim(), format!("invalid: {code}"));
    }
    // Within the leeway, a JWS just past its exp verifies; with `--leeway 0` it is expired.
    let just_expired = signer.sign(&json!({"exp": now() - 1}));
    let out = verify_cli(&just_expired, &jwks, &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let out = verify_cli(&just_expired, &jwks, &["--leeway", "0"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(&out).trim(), "invalid: expired");
}

#[test]
fn authz_verify_exits_2_when_the_jwks_cannot_be_read() {
    let tmp = tempfile::tempdir().unwrap();
    let jws = TestSigner::new().sign(&json!({}));
    let missing = tmp.path().join("absent.json");
    let out = verify_cli(&jws, missing.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let garbage = tmp.path().join("garbage.json");
    std::fs::write(
        &garbage,
        br#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}"#,
    )
    .unwrap();
    let out = verify_cli(&jws, garbage.to_str().unwrap(), &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("jwks_unsupported_key"));
    assert!(out.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authz_verify_fetches_the_daemons_jwks_over_mtls() {
    let d = Daemon::start();
    let keys = keys();
    let (ca, cert, key) = (
        keys.join("ca.pem"),
        keys.join("clients/gateway.pem"),
        keys.join("clients/gateway.key"),
    );
    let connect = [
        "--ca",
        ca.to_str().unwrap(),
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ];
    // A JWS signed by a key the daemon does not hold: the daemon's JWKS was fetched and read,
    // and the kid is not in it.
    let jws = TestSigner::new().sign(&json!({"exp": now() + 60}));
    let url = format!("https://{}/v1/keys/jwks", d.addr);
    let out = tokio::task::spawn_blocking({
        let (jws, url) = (jws.clone(), url.clone());
        let connect = connect.map(str::to_owned);
        move || {
            let connect: Vec<&str> = connect.iter().map(String::as_str).collect();
            verify_cli(&jws, &url, &connect)
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(&out).trim(), "invalid: unknown_kid");

    // A wrong path on the daemon is an unreadable JWKS (exit 2), not a verdict.
    let bad_url = format!("https://{}/v1/keys/nope", d.addr);
    let out = tokio::task::spawn_blocking({
        let connect = connect.map(str::to_owned);
        move || {
            let connect: Vec<&str> = connect.iter().map(String::as_str).collect();
            verify_cli(&jws, &bad_url, &connect)
        }
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
}
