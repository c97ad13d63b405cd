//! The Merkle tree over the audit log as the daemon serves it: tree heads signed by the HSM
//! audit key as the log grows and at shutdown, stored in the log; inclusion and consistency
//! proofs over the API and the CLI, each checked by the independent RFC 9162 implementation of
//! `support::rfc9162` (not the library's code) and by `payhsm audit verify-proof`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use payhsm::audit::proof::{verify_tree_head, TreeHead};
use payhsm::jose::Jwks;
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::rfc9162::{mth, root_from_path, roots_from_proof, Hash};
use support::*;

fn unhex(s: &str) -> Hash {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

fn leaf(line: &str) -> Hash {
    support::rfc9162::h(&[&[0], line.as_bytes()])
}

/// The record lines of an export (its last line is the checkpoint).
fn record_lines(export: &str) -> Vec<String> {
    export
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(str::to_owned)
        .collect()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

async fn jwks(d: &Daemon) -> Jwks {
    let mut c = d.client("gateway").await;
    let r = get(&mut c, "/v1/audit/jwks").await;
    assert_eq!(r.status, 200);
    Jwks::parse(&r.body).unwrap()
}

/// The auditor's CLI connection options for `d`.
fn auditor_args(d: &Daemon) -> Vec<String> {
    let keys = support::keys();
    vec![
        "--url".into(),
        format!("https://{}", d.addr),
        "--ca".into(),
        keys.join("ca.pem").to_str().unwrap().into(),
        "--cert".into(),
        keys.join("clients/auditor.pem").to_str().unwrap().into(),
        "--key".into(),
        keys.join("clients/auditor.key").to_str().unwrap().into(),
    ]
}

/// `payhsm audit <args> <connection>`: stdout as JSON.
fn cli_json(d: &Daemon, args: &[&str]) -> Value {
    let mut all: Vec<String> = vec!["audit".into()];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    all.extend(auditor_args(d));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = payhsm(&all);
    assert!(
        out.status.success(),
        "payhsm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `payhsm audit verify-proof` on `proof` with the key set at `jwks`: (exit code, stdout).
fn verify_proof(d: &Daemon, name: &str, proof: &Value, jwks: &std::path::Path) -> (i32, String) {
    let path = d.data_dir.parent().unwrap().join(name);
    std::fs::write(&path, proof.to_string()).unwrap();
    let out = payhsm(&[
        "audit",
        "verify-proof",
        path.to_str().unwrap(),
        "--jwks",
        jwks.to_str().unwrap(),
    ]);
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// The audit key set written where the CLI can read it.
async fn jwks_file(d: &Daemon) -> PathBuf {
    let mut c = d.client("auditor").await;
    let r = get(&mut c, "/v1/audit/jwks").await;
    let path = d.data_dir.parent().unwrap().join("audit-jwks.json");
    std::fs::write(&path, &r.body).unwrap();
    path
}

async fn tokenize_n(d: &Daemon, n: usize) {
    let mut gw = d.client("gateway").await;
    for _ in 0..n {
        let r = tokenize(&mut gw, &random_pan("411111", 16), "shop").await;
        assert_eq!(r.status, 201);
    }
}

/// The `tree_head_signed` records of the log: (their seq, the head they store, verified).
fn stored_heads(export: &str, jwks: &Jwks) -> Vec<(u64, TreeHead)> {
    record_lines(export)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["action"] == "tree_head_signed")
        .map(|r| {
            let detail = r["detail"].as_str().unwrap();
            let jws = detail.split("sth=").nth(1).unwrap();
            let head = verify_tree_head(jws, jwks, now()).unwrap();
            (r["seq"].as_u64().unwrap(), head)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_heads_are_signed_as_the_log_grows_and_at_shutdown_and_stored_in_it() {
    let mut d = Daemon::start_with(&[
        "--tree-head-every-records",
        "5",
        "--tree-head-interval-secs",
        "3600",
    ]);
    let keys = jwks(&d).await;
    // Every 5 records (the loop looks once a second): twice, with a bounded wait each.
    let mut heads = Vec::new();
    for want in 1..=2 {
        tokenize_n(&d, 6).await;
        let started = Instant::now();
        heads = loop {
            let heads = stored_heads(&audit_export(&d), &keys);
            if heads.len() >= want {
                break heads;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "heads: {heads:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        };
    }
    // Each head is the RFC 9162 root of the records before its own, and sits right after them.
    let lines = record_lines(&audit_export(&d));
    let raw: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    for (seq, head) in &heads {
        assert_eq!(*seq, head.tree_size + 1, "{head:?}");
        assert_eq!(head.root_hash, mth(&raw[..head.tree_size as usize]));
    }
    assert!(heads
        .windows(2)
        .all(|w| w[0].1.tree_size < w[1].1.tree_size));

    // At shutdown, a last head over everything written before it.
    tokenize_n(&d, 2).await;
    assert!(d.terminate().success());
    let export = audit_export(&d);
    let (seq, last) = *stored_heads(&export, &keys).last().unwrap();
    let lines = record_lines(&export);
    assert_eq!(
        seq as usize,
        lines.len(),
        "the shutdown head is the last record"
    );
    let raw: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(last.tree_size as usize, lines.len() - 1);
    assert_eq!(last.root_hash, mth(&raw[..lines.len() - 1]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inclusion_proof_from_the_cli_verifies_independently_and_offline() {
    let d = Daemon::start();
    tokenize_n(&d, 6).await;
    let jwks_path = jwks_file(&d).await;
    let keys = jwks(&d).await;

    // No head yet covers record 4: one is signed for the proof.
    let proof = cli_json(&d, &["prove", "--seq", "4"]);
    assert_eq!(proof["leaf_index"], 3);
    let size = proof["tree_size"].as_u64().unwrap();
    assert!(size >= 7);
    let head = verify_tree_head(proof["signed_tree_head"].as_str().unwrap(), &keys, now())
        .expect("a signed head");
    let root = unhex(proof["root_hash"].as_str().unwrap());
    assert_eq!((head.tree_size, head.root_hash), (size, root));
    // The leaf is record 4's export line, and the path leads to the signed root.
    let export = audit_export(&d);
    let lines = record_lines(&export);
    assert_eq!(proof["leaf"], lines[3].as_str());
    let path: Vec<Hash> = proof["audit_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    assert_eq!(
        root_from_path(leaf(&lines[3]), 3, size as usize, &path),
        Some(root)
    );

    let (code, out) = verify_proof(&d, "proof.json", &proof, &jwks_path);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: record 4 "), "{out}");

    // Any edit fails, with its code.
    let mut edited = proof.clone();
    edited["leaf"] = Value::String(lines[4].clone());
    assert_eq!(
        verify_proof(&d, "p1.json", &edited, &jwks_path),
        (
            1,
            "invalid: proof_does_not_verify: the proof does not verify against the signed root\n"
                .into()
        )
    );
    let mut edited = proof.clone();
    edited["tree_size"] = Value::from(size + 1);
    let (code, out) = verify_proof(&d, "p2.json", &edited, &jwks_path);
    assert_eq!(
        (code, out.split(':').nth(1)),
        (1, Some(" tree_head_mismatch"))
    );
    let mut edited = proof.clone();
    edited["signed_tree_head"] = Value::Null;
    let (code, out) = verify_proof(&d, "p3.json", &edited, &jwks_path);
    assert_eq!(
        (code, out.split(':').nth(1)),
        (1, Some(" unsigned_tree_head"))
    );
    // Against another key set (the authorization keys), the head does not verify.
    let mut gw = d.client("gateway").await;
    let other = d.data_dir.parent().unwrap().join("authz-jwks.json");
    std::fs::write(&other, get(&mut gw, "/v1/keys/jwks").await.body).unwrap();
    let (code, out) = verify_proof(&d, "p4.json", &proof, &other);
    assert_eq!(
        (code, out.split(':').nth(1)),
        (1, Some(" tree_head_signature"))
    );

    // Under an explicit later size with no head of it: the proof, and no signed head.
    let r = get(
        &mut d.client("auditor").await,
        &format!("/v1/audit/proof?seq=2&tree_size={}", size + 1),
    )
    .await;
    assert_eq!(r.status, 200);
    let p = r.json().unwrap();
    assert_eq!(p["signed_tree_head"], Value::Null);
    let lines = record_lines(&audit_export(&d));
    let raw: Vec<Vec<u8>> = lines.iter().map(|l| l.as_bytes().to_vec()).collect();
    assert_eq!(
        unhex(p["root_hash"].as_str().unwrap()),
        mth(&raw[..size as usize + 1])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistency_proof_shows_todays_log_extends_yesterdays() {
    let d = Daemon::start();
    tokenize_n(&d, 3).await;
    let jwks_path = jwks_file(&d).await;
    let keys = jwks(&d).await;
    let first = cli_json(&d, &["sth"]);
    let first_size = first["tree_size"].as_u64().unwrap();
    let head = verify_tree_head(first["signed_tree_head"].as_str().unwrap(), &keys, now()).unwrap();
    assert_eq!(head.tree_size, first_size);
    assert_eq!(
        first["root_hash"].as_str().unwrap(),
        hex(&head.root_hash),
        "the answer is the signed head's"
    );

    tokenize_n(&d, 9).await;
    // A proof of the newest record signs a head that covers it.
    let newest = record_lines(&audit_export(&d)).len();
    let second = cli_json(&d, &["prove", "--seq", &newest.to_string()]);
    let second_size = second["tree_size"].as_u64().unwrap();

    let proof = cli_json(
        &d,
        &[
            "consistency",
            "--from",
            &first_size.to_string(),
            "--to",
            &second_size.to_string(),
        ],
    );
    assert_eq!(proof["first_signed_tree_head"], first["signed_tree_head"]);
    assert_eq!(proof["second_signed_tree_head"], second["signed_tree_head"]);
    let path: Vec<Hash> = proof["consistency_path"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| unhex(h.as_str().unwrap()))
        .collect();
    let (old, new) = (
        unhex(proof["first_root_hash"].as_str().unwrap()),
        unhex(proof["second_root_hash"].as_str().unwrap()),
    );
    assert_eq!(old, head.root_hash);
    assert_eq!(
        roots_from_proof(first_size as usize, second_size as usize, &path, true, old),
        Some((old, new))
    );
    let (code, out) = verify_proof(&d, "consistency.json", &proof, &jwks_path);
    assert_eq!(code, 0, "{out}");
    // A path with one hash changed does not verify.
    let mut edited = proof.clone();
    edited["consistency_path"][0] = Value::String("00".repeat(32));
    let (code, out) = verify_proof(&d, "c1.json", &edited, &jwks_path);
    assert_eq!(
        (code, out.split(':').nth(1)),
        (1, Some(" proof_does_not_verify"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_are_for_the_auditor_and_bad_sizes_have_codes() {
    let d = Daemon::start();
    tokenize_n(&d, 2).await;
    let mut auditor = d.client("auditor").await;
    let size = record_lines(&audit_export(&d)).len() as u64;
    for (path, status, code) in [
        (
            "/v1/audit/proof?seq=0".to_owned(),
            404,
            "audit_record_not_found",
        ),
        (
            format!("/v1/audit/proof?seq={}", size + 50),
            404,
            "audit_record_not_found",
        ),
        (
            "/v1/audit/proof?seq=3&tree_size=2".to_owned(),
            422,
            "invalid_tree_size",
        ),
        (
            format!("/v1/audit/proof?seq=1&tree_size={}", size + 50),
            422,
            "invalid_tree_size",
        ),
        (
            "/v1/audit/consistency?from=3&to=2".to_owned(),
            422,
            "invalid_tree_size",
        ),
        (
            "/v1/audit/consistency?from=0&to=2".to_owned(),
            422,
            "invalid_tree_size",
        ),
        ("/v1/audit/proof".to_owned(), 400, "malformed_request"),
        (
            "/v1/audit/proof?seq=1&seq=2".to_owned(),
            400,
            "malformed_request",
        ),
        (
            "/v1/audit/consistency?from=1".to_owned(),
            400,
            "malformed_request",
        ),
        ("/v1/audit/sth?x=1".to_owned(), 400, "malformed_request"),
    ] {
        let r = get(&mut auditor, &path).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (status, code),
            "{path}"
        );
    }
    // Each refused proof is audited with its answer's code, never as "ok": the two not
    // found, the two inclusion proofs and the two consistency proofs with bad sizes.
    let outcomes: Vec<String> = record_lines(&audit_export(&d))
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| {
            r["action"] == "read_audit"
                && r["principal"]
                    .as_str()
                    .unwrap_or_default()
                    .ends_with("auditor")
        })
        .filter(|r| {
            let detail = r["detail"].as_str().unwrap_or_default();
            detail.starts_with("inclusion") || detail.starts_with("consistency")
        })
        .map(|r| r["outcome"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        [
            "audit_record_not_found",
            "audit_record_not_found",
            "invalid_tree_size",
            "invalid_tree_size",
            "invalid_tree_size",
            "invalid_tree_size"
        ]
    );
    // Anyone else is refused, and the refusal is audited.
    let mut gw = d.client("gateway").await;
    for path in [
        "/v1/audit/sth",
        "/v1/audit/proof?seq=1",
        "/v1/audit/consistency?from=1&to=2",
    ] {
        let r = get(&mut gw, path).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "forbidden"),
            "{path}"
        );
    }
    let refusals: Vec<String> = record_lines(&audit_export(&d))
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["outcome"] == "forbidden")
        .map(|r| r["action"].as_str().unwrap().to_owned())
        .collect();
    // A caller that may not read the log is asked whether it may prove its own records.
    assert_eq!(refusals, ["read_audit", "prove_audit_record", "read_audit"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proof_requests_sign_at_most_one_head_a_second() {
    let d = Daemon::start();
    let mut auditor = d.client("auditor").await;
    let mut gw = d.client("gateway").await;
    let started = std::time::Instant::now();
    // Each round adds a record no head covers yet, then asks for its proof without a size:
    // without a bound every request would sign a head (an HSM signature and a durable record).
    let rounds = 6;
    for _ in 0..rounds {
        let r = tokenize(&mut gw, &random_pan("411111", 16), "shop").await;
        assert_eq!(r.status, 201);
        let size = record_lines(&audit_export(&d)).len();
        let r = get(&mut auditor, &format!("/v1/audit/proof?seq={size}")).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert!(r.json().unwrap()["tree_size"].as_u64().unwrap() >= size as u64);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let heads = stored_heads(&audit_export(&d), &jwks(&d).await).len();
    println!("{rounds} proofs of fresh records signed {heads} heads in {elapsed:.1} s");
    // Heads at least a second apart: n of them span n - 1 seconds (half a second of slack
    // for the wall clock the heads' times are read from).
    assert!(heads >= 1);
    assert!(
        heads as f64 <= elapsed + 1.5,
        "{heads} heads in {elapsed:.1} s"
    );
}

/// `payhsm audit verify-receipt` as `who`: (exit code, stdout).
fn verify_receipt(d: &Daemon, who: &str, receipt: &Value, jwks: &std::path::Path) -> (i32, String) {
    let dir = d.data_dir.parent().unwrap();
    let path = dir.join(format!("receipt-{who}.json"));
    std::fs::write(&path, receipt.to_string()).unwrap();
    let keys = support::keys();
    let url = format!("https://{}", d.addr);
    let out = payhsm(&[
        "audit",
        "verify-receipt",
        path.to_str().unwrap(),
        "--jwks",
        jwks.to_str().unwrap(),
        "--url",
        &url,
        "--ca",
        keys.join("ca.pem").to_str().unwrap(),
        "--cert",
        keys.join(format!("clients/{who}.pem")).to_str().unwrap(),
        "--key",
        keys.join(format!("clients/{who}.key")).to_str().unwrap(),
    ]);
    (
        out.status.code().unwrap(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_released_pan_carries_a_receipt_its_reader_can_prove() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pans: Vec<String> = (0..3).map(|_| random_pan("411111", 16)).collect();
    let mut tokens = Vec::new();
    for pan in &pans {
        tokens.push(token_of(&tokenize(&mut gw, pan, "shop").await));
    }
    let mut reader = d.client("vault-reader").await;
    let single = detokenize(&mut reader, &tokens[0], "shop")
        .await
        .json()
        .unwrap();
    let batch = post(
        &mut reader,
        "/v1/tokens/detokenize/batch",
        serde_json::json!({"domain": "shop", "tokens": [tokens[1], tokens[2]]}),
    )
    .await
    .json()
    .unwrap();
    let mut receipts = vec![single["receipt"].clone()];
    receipts.extend(
        batch["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["receipt"].clone()),
    );
    // Each names its release's record: by seq, with its chain hash, for its token.
    let lines = record_lines(&audit_export(&d));
    for (receipt, token) in receipts.iter().zip(&tokens) {
        let seq = receipt["seq"].as_u64().unwrap();
        let record: Value = serde_json::from_str(&lines[seq as usize - 1]).unwrap();
        assert_eq!(record["hash"], receipt["record_hash"]);
        assert_eq!(
            (&record["action"], &record["outcome"], &record["token"]),
            (
                &Value::from("detokenize"),
                &Value::from("ok"),
                &Value::from(token.as_str())
            )
        );
        assert!(record["principal"]
            .as_str()
            .unwrap()
            .contains("vault-reader"));
    }

    // The reader proves its own receipts; an edited one does not pass.
    let jwks = jwks_file(&d).await;
    for receipt in &receipts {
        let (code, out) = verify_receipt(&d, "vault-reader", receipt, &jwks);
        assert_eq!(code, 0, "{out}");
        assert!(out.starts_with("ok: record "), "{out}");
    }
    let mut edited = receipts[0].clone();
    edited["record_hash"] = Value::String("00".repeat(32));
    let (code, out) = verify_receipt(&d, "vault-reader", &edited, &jwks);
    assert_eq!(
        (code, out.split(':').nth(1)),
        (1, Some(" receipt_mismatch")),
        "{out}"
    );
    // An auditor proves it too; a record that is not the reader's is not found for it.
    let (code, out) = verify_receipt(&d, "auditor", &receipts[1], &jwks);
    assert_eq!(code, 0, "{out}");
    let r = get(&mut reader, "/v1/audit/proof?seq=1").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (404, "audit_record_not_found")
    );
    let r = get(
        &mut gw,
        &format!("/v1/audit/proof?seq={}", receipts[0]["seq"]),
    )
    .await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
}

fn hex(h: &Hash) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_of_one_vault_build_the_same_tree_over_the_one_history() {
    let url = postgres::fresh_database();
    let a = Daemon::start_with(&["--postgres", &url]);
    let b = a.replica(&["--postgres", &url]);
    tokenize_n(&a, 3).await;
    tokenize_n(&b, 3).await;
    let keys = jwks(&a).await;
    // A head signed by A, a proof served by B under it, and the same proof from A.
    let head = get(&mut a.client("auditor").await, "/v1/audit/sth")
        .await
        .json()
        .unwrap();
    let size = head["tree_size"].as_u64().unwrap();
    let path = format!("/v1/audit/proof?seq=2&tree_size={size}");
    let from_b = get(&mut b.client("auditor").await, &path)
        .await
        .json()
        .unwrap();
    let from_a = get(&mut a.client("auditor").await, &path)
        .await
        .json()
        .unwrap();
    assert_eq!(from_a, from_b);
    assert_eq!(from_b["root_hash"], head["root_hash"]);
    assert_eq!(from_b["signed_tree_head"], head["signed_tree_head"]);
    let signed =
        verify_tree_head(from_b["signed_tree_head"].as_str().unwrap(), &keys, now()).unwrap();
    assert_eq!(signed.tree_size, size);
}
