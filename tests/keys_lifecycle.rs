//! Key lifecycle in a running daemon (issue 5): dual control by two distinct custodian
//! certificates, data key rotation and a rewrap that survives SIGKILL, retire and destroy
//! refused while records use a version, and the authorization signing key rotation.
//! Real mTLS, real SoftHSM2, real SQLite, the real `payhsm` CLI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::Client;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::*;

const DOMAIN: &str = "shop";

/// `payhsm keys ARGS` as the sample identity `who`, against daemon `d`.
fn keys_cli(d: &Daemon, who: &str, args: &[&str]) -> std::process::Output {
    let url = format!("https://{}", d.addr);
    let (cert, key) = (format!("clients/{who}.pem"), format!("clients/{who}.key"));
    let keys_dir = keys();
    let (cert, key) = (keys_dir.join(cert), keys_dir.join(key));
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend_from_slice(&[
        "--url",
        &url,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    payhsm(&all)
}

fn stdout_json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Two custodians approve `args` (custodian-1 first, then custodian-2); returns the summary.
fn dual(d: &Daemon, args: &[&str]) -> String {
    let first = keys_cli(d, "custodian-1", args);
    assert_eq!(first.status.code(), Some(3), "{first:?}");
    assert_eq!(stdout_json(&first)["status"], "pending");
    let second = keys_cli(d, "custodian-2", args);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let v = stdout_json(&second);
    assert_eq!(v["status"], "applied");
    assert_eq!(
        v["approved_by"],
        serde_json::json!([
            "spiffe://payhsm.dev/custodian-1",
            "spiffe://payhsm.dev/custodian-2"
        ])
    );
    v["summary"].as_str().unwrap().to_owned()
}

/// `keys list --json` entries of one purpose, by version.
fn listed(d: &Daemon, purpose: &str) -> Vec<serde_json::Value> {
    let out = keys_cli(d, "auditor", &["list", "--json"]);
    assert!(out.status.success(), "{out:?}");
    stdout_json(&out)["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["purpose"] == purpose)
        .cloned()
        .collect()
}

fn data_key(d: &Daemon, version: u64) -> serde_json::Value {
    listed(d, "data")
        .into_iter()
        .find(|k| k["version"] == version)
        .unwrap()
}

async fn tokenize_many(c: &mut Client, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let pan = random_pan("4", 16);
        let r = tokenize(c, &pan, DOMAIN).await;
        assert_eq!(r.status, 201, "{:?}", r.json());
        out.push((token_of(&r), pan));
    }
    out
}

async fn assert_all_detokenize(d: &Daemon, cards: &[(String, String)]) {
    let mut vault = d.client("vault-reader").await;
    for (token, pan) in cards {
        let r = detokenize(&mut vault, token, DOMAIN).await;
        assert_eq!(r.status, 200, "{token}: {:?}", r.json());
        assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_custodian_cannot_change_a_key_alone_and_each_approval_is_audited() {
    let d = Daemon::start();
    let rotate = ["rotate", "--purpose", "data"];

    // Not a custodian: the policy refuses before any approval is recorded.
    let gw = keys_cli(&d, "gateway", &rotate);
    assert_eq!(gw.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&gw.stderr).contains("403 forbidden"));

    // The first custodian's approval is recorded and waits.
    let first = keys_cli(&d, "custodian-1", &rotate);
    assert_eq!(first.status.code(), Some(3), "{first:?}");
    // The same custodian again (same identity) does not count as the second.
    let again = keys_cli(&d, "custodian-1", &rotate);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("409 same_custodian"));
    // Nothing changed: version 1 is still the only, active, data key.
    let data = listed(&d, "data");
    assert_eq!(data.len(), 1);
    assert_eq!(data[0]["state"], "active");
    // An approval of a different change does not complete this one.
    let other = keys_cli(
        &d,
        "custodian-2",
        &["rotate", "--purpose", "authorization-signing"],
    );
    assert_eq!(other.status.code(), Some(3), "{other:?}");
    assert_eq!(listed(&d, "data").len(), 1);

    // A second, distinct custodian applies it.
    let second = keys_cli(&d, "custodian-2", &rotate);
    assert_eq!(second.status.code(), Some(0), "{second:?}");
    let data = listed(&d, "data");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["state"], "decrypt_only");
    assert_eq!(data[1]["state"], "active");
    assert_eq!(data[1]["kcv"].as_str().unwrap().len(), 10);

    // The audit log names each custodian: two pending approvals, one refusal, one grant, and
    // the rotation by the second custodian (with both named), never key material.
    let audit = audit_export(&d);
    let lines: Vec<serde_json::Value> = audit
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|v: &serde_json::Value| v.get("action").is_some())
        .collect();
    let of = |action: &str, outcome: &str| {
        lines
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .map(|e| e["principal"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("approve_key_change", "pending"),
        [
            "spiffe://payhsm.dev/custodian-1",
            "spiffe://payhsm.dev/custodian-2"
        ]
    );
    assert_eq!(
        of("approve_key_change", "same_custodian"),
        ["spiffe://payhsm.dev/custodian-1"]
    );
    assert_eq!(
        of("approve_key_change", "forbidden"),
        ["spiffe://payhsm.dev/gateway"]
    );
    assert_eq!(
        of("approve_key_change", "granted"),
        ["spiffe://payhsm.dev/custodian-2"]
    );
    assert_eq!(
        of("key_rotate", "done"),
        ["spiffe://payhsm.dev/custodian-2"]
    );
    let rotated = lines.iter().find(|e| e["action"] == "key_rotate").unwrap();
    let detail = rotated["detail"].as_str().unwrap();
    assert!(detail.contains("approved by spiffe://payhsm.dev/custodian-1 and"));
    assert!(
        detail.contains(data[1]["kcv"].as_str().unwrap()),
        "{detail}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotation_then_rewrap_killed_midway_resumes_and_every_token_still_detokenizes() {
    let mut d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let cards = tokenize_many(&mut gw, 400).await;
    drop(gw);
    dual(&d, &["rotate", "--purpose", "data"]);

    // Old records still open under version 1; new ones are sealed under version 2.
    let mut gw = d.client("gateway").await;
    let fresh = tokenize_many(&mut gw, 5).await;
    // Tokenizing a card again finds its token whatever version sealed it.
    let again = tokenize(&mut gw, &cards[0].1, DOMAIN).await;
    assert_eq!(again.status, 200);
    assert_eq!(token_of(&again), cards[0].0);
    drop(gw);
    assert_eq!(data_key(&d, 1)["records"], 400);
    assert_eq!(data_key(&d, 2)["records"], 5);

    // Retire and destroy are refused while version 1 seals records; nothing is recorded.
    for change in ["retire", "destroy"] {
        let out = keys_cli(
            &d,
            "custodian-1",
            &[change, "--purpose", "data", "--key-version", "1"],
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("409 key_in_use"),
            "{out:?}"
        );
    }

    // Rewrap one record per batch, and SIGKILL the daemon once some have moved.
    let url = format!("https://{}", d.addr);
    let mut rewrap = Command::new(env!("CARGO_BIN_EXE_payhsm"))
        .args(["keys", "rewrap", "--batch", "1", "--url", &url])
        .args([
            "--cert",
            keys().join("clients/custodian-3.pem").to_str().unwrap(),
        ])
        .args([
            "--key",
            keys().join("clients/custodian-3.key").to_str().unwrap(),
        ])
        .current_dir(repo())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let progress = BufReader::new(rewrap.stderr.take().unwrap());
    let mut seen = 0;
    for line in progress.lines() {
        let line = line.unwrap();
        seen += 1;
        if seen == 40 {
            d.kill();
            break;
        }
        assert!(line.contains("records on data key version 2"), "{line}");
    }
    assert_eq!(seen, 40, "the rewrap ended before it could be interrupted");
    let status = rewrap.wait().unwrap();
    assert!(
        !status.success(),
        "the rewrap cannot succeed without its daemon"
    );

    d.restart();
    let moved = 400 - data_key(&d, 1)["records"].as_u64().unwrap();
    assert!((39..400).contains(&moved), "{moved} moved before the kill");

    // Run again: it resumes where the committed batches stopped and finishes.
    let done = keys_cli(&d, "custodian-3", &["rewrap", "--batch", "50"]);
    assert!(done.status.success(), "{done:?}");
    let v = stdout_json(&done);
    assert_eq!(v["remaining"], 0);
    assert_eq!(v["active_version"], 2);
    assert_eq!(data_key(&d, 1)["records"], 0);
    assert_eq!(data_key(&d, 2)["records"], 405);
    assert_all_detokenize(&d, &cards).await;
    assert_all_detokenize(&d, &fresh).await;

    // Version 1 no longer seals anything: retire it, then destroy it; every token still
    // detokenizes, and a card tokenized again converges on its token.
    dual(&d, &["retire", "--purpose", "data", "--key-version", "1"]);
    assert_eq!(data_key(&d, 1)["state"], "retired");
    dual(&d, &["destroy", "--purpose", "data", "--key-version", "1"]);
    assert_eq!(data_key(&d, 1)["state"], "destroyed");
    d.terminate();
    d.restart();
    assert_all_detokenize(&d, &cards).await;
    let mut gw = d.client("gateway").await;
    let again = tokenize(&mut gw, &cards[7].1, DOMAIN).await;
    assert_eq!(again.status, 200);
    assert_eq!(token_of(&again), cards[7].0);

    // The active version cannot be retired: rotate first.
    let out = keys_cli(
        &d,
        "custodian-1",
        &["retire", "--purpose", "data", "--key-version", "2"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("409 key_state_conflict"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_signing_key_is_published_before_it_signs() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let kids = |jwks: &serde_json::Value| -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = get(&mut gw, "/v1/keys/jwks").await.json().unwrap();
    assert_eq!(kids(&before).len(), 1);

    dual(&d, &["rotate", "--purpose", "authorization-signing"]);
    let signing = listed(&d, "authorization-signing");
    assert_eq!(signing.len(), 2);
    assert_eq!(signing[0]["state"], "active");
    assert_eq!(signing[1]["state"], "published");
    assert_eq!(signing[1]["label"], "payhsm-authz-v2");
    let new_kid = signing[1]["thumbprint"].as_str().unwrap().to_owned();
    // Verifiers learn the new key now: the current key first, then the new one.
    let after = get(&mut gw, "/v1/keys/jwks").await.json().unwrap();
    assert_eq!(kids(&after), [kids(&before)[0].clone(), new_kid.clone()]);

    // It may not sign before it has been published as long as verifiers cache the JWKS.
    let early = keys_cli(
        &d,
        "custodian-1",
        &[
            "activate",
            "--purpose",
            "authorization-signing",
            "--key-version",
            "2",
        ],
    );
    assert_eq!(early.status.code(), Some(1), "{early:?}");
    assert!(
        String::from_utf8_lossy(&early.stderr).contains("409 key_not_published_long_enough"),
        "{early:?}"
    );
    // Data keys are activated by rotation only.
    let data = keys_cli(
        &d,
        "custodian-1",
        &["activate", "--purpose", "data", "--key-version", "1"],
    );
    assert!(String::from_utf8_lossy(&data.stderr).contains("422 unsupported_key_change"));
    // A published key that never signed can be retired straight away, and then destroyed:
    // it leaves the JWKS and the token.
    dual(
        &d,
        &[
            "retire",
            "--purpose",
            "authorization-signing",
            "--key-version",
            "2",
        ],
    );
    let jwks = get(&mut gw, "/v1/keys/jwks").await.json().unwrap();
    assert_eq!(kids(&jwks), kids(&before));
    dual(
        &d,
        &[
            "destroy",
            "--purpose",
            "authorization-signing",
            "--key-version",
            "2",
        ],
    );
    assert_eq!(listed(&d, "authorization-signing")[1]["state"], "destroyed");
    // The active key cannot be retired while it signs.
    let out = keys_cli(
        &d,
        "custodian-1",
        &[
            "retire",
            "--purpose",
            "authorization-signing",
            "--key-version",
            "1",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("409 key_state_conflict"));
}

/// One approved payment authorization; returns the `kid` of its JWS header.
async fn authorized_kid(
    gw: &mut Client,
    auth: &support::authenticator::Authenticator,
    target: &(String, String),
    counter: u32,
) -> String {
    let r = post(
        gw,
        "/v1/authorizations/challenges",
        serde_json::json!({"token": target.0, "domain": DOMAIN, "device_id": target.1,
                           "amount": 500, "currency": "EUR", "payee": "Shop"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let c = r.json().unwrap();
    let assertion = auth.assert(c["challenge"].as_str().unwrap(), counter, None);
    let r = post(
        gw,
        "/v1/authorizations",
        assertion.body(c["challenge_id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let jws = r.json().unwrap()["authorization"]
        .as_str()
        .unwrap()
        .to_owned();
    jsonwebtoken::decode_header(&jws).unwrap().kid.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_old_signing_key_stays_published_until_its_authorizations_expire() {
    let d = Daemon::start_with(&["--signing-key-publish-lead", "0"]);
    let mut gw = d.client("gateway").await;
    let auth = support::authenticator::Authenticator::new();
    let target = enrol_for_token(&mut gw, &auth, DOMAIN).await;
    let old_kid = authorized_kid(&mut gw, &auth, &target, 1).await;

    dual(&d, &["rotate", "--purpose", "authorization-signing"]);
    // Published but not active: authorizations are still signed by the old key.
    assert_eq!(authorized_kid(&mut gw, &auth, &target, 2).await, old_kid);
    dual(
        &d,
        &[
            "activate",
            "--purpose",
            "authorization-signing",
            "--key-version",
            "2",
        ],
    );
    let new_kid = authorized_kid(&mut gw, &auth, &target, 3).await;
    assert_ne!(new_kid, old_kid);
    let signing = listed(&d, "authorization-signing");
    assert_eq!(signing[0]["state"], "retiring");
    assert_eq!(signing[0]["records"], 2);
    assert_eq!(signing[1]["state"], "active");
    assert_eq!(signing[1]["thumbprint"], new_kid.as_str());

    // Both keys are in the JWKS, the signing one first: the old one verifies what it signed.
    let jwks = get(&mut gw, "/v1/keys/jwks").await.json().unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [new_kid.as_str(), old_kid.as_str()]);
    // Retiring it now would strand unexpired authorizations: refused before any approval.
    let out = keys_cli(
        &d,
        "custodian-1",
        &[
            "retire",
            "--purpose",
            "authorization-signing",
            "--key-version",
            "1",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("409 key_in_use"), "{stderr}");
    assert!(stderr.contains("2 unexpired authorizations"), "{stderr}");
    assert_eq!(listed(&d, "authorization-signing")[0]["state"], "retiring");
}
