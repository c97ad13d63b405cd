//! The audit log through the real daemon: every operation and refusal is recorded, the export
//! verifies, each kind of tampering is caught, and no PAN leaves without its record.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use support::*;

async fn some_activity(d: &Daemon) -> String {
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let pan = random_pan("4111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "aud").await);
    tokenize(&mut gw, &pan, "aud").await;
    detokenize(&mut reader, &token, "aud").await;
    detokenize(&mut gw, &token, "aud").await; // refused
    post(
        &mut gw,
        &format!("/v1/tokens/{token}/suspend?domain=aud"),
        serde_json::json!({}),
    )
    .await;
    token
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_and_refusal_is_recorded_and_the_export_verifies() {
    let d = Daemon::start();
    let token = some_activity(&d).await;
    let export = audit_export(&d);
    let lines: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // A refusal before the token was looked up keeps it masked (it might not name a token).
    let masked = payhsm::card::Token::parse(&token).unwrap().masked();
    let actions: Vec<(&str, &str)> = lines
        .iter()
        .filter(|r| r["token"] == token.as_str() || r["token"] == masked.as_str())
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("tokenize", "created"),
            ("tokenize", "existing"),
            ("detokenize", "ok"),
            ("detokenize", "forbidden"),
            ("suspend", "ok"),
        ]
    );
    let refused = lines.iter().find(|r| r["outcome"] == "forbidden").unwrap();
    assert_eq!(refused["decision"], "deny");
    assert_eq!(refused["principal"], "spiffe://payhsm.dev/gateway");
    let allowed = lines
        .iter()
        .find(|r| r["action"] == "detokenize" && r["outcome"] == "ok")
        .unwrap();
    assert_eq!(allowed["decision"], "allow");
    assert!(!allowed["policy_ids"].as_array().unwrap().is_empty());
    assert!(lines.last().unwrap().get("checkpoint").is_some());
    let (ok, msg) = audit_verify(&d, "intact.jsonl", &export);
    assert!(ok, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_detects_edits_removals_reordering_and_truncation() {
    let d = Daemon::start();
    some_activity(&d).await;
    let export = audit_export(&d);
    let lines: Vec<&str> = export.lines().collect();
    assert!(lines.len() >= 6);
    let join = |v: Vec<&str>| v.join("\n") + "\n";

    let edited = export.replacen("\"outcome\":\"forbidden\"", "\"outcome\":\"ok\"", 1);
    assert_ne!(edited, export);
    let mut removed = lines.clone();
    removed.remove(2);
    let mut reordered = lines.clone();
    reordered.swap(1, 2);
    let truncated_keep_checkpoint = {
        let mut v = lines[..lines.len() - 2].to_vec();
        v.push(lines[lines.len() - 1]);
        v
    };
    let truncated = lines[..lines.len() - 2].to_vec();
    for (name, text, expect) in [
        ("edited", edited, "line "),
        ("removed", join(removed), "line 3"),
        ("reordered", join(reordered), "line 2"),
        (
            "truncated-with-checkpoint",
            join(truncated_keep_checkpoint),
            "line ",
        ),
        ("truncated", join(truncated), "line "),
    ] {
        let (ok, msg) = audit_verify(&d, name, &text);
        assert!(!ok, "{name} verified: {msg}");
        assert!(msg.contains(expect), "{name}: {msg}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detokenize_is_refused_when_audit_write_fails() {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let pan = random_pan("4111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "aud").await);
    let db = rusqlite::Connection::open(d.data_dir.join("payhsm.db")).unwrap();
    db.execute_batch(
        "CREATE TRIGGER audit_down BEFORE INSERT ON audit_log WHEN NEW.action = 'detokenize' \
         BEGIN SELECT RAISE(ABORT, 'audit disk gone'); END;",
    )
    .unwrap();
    let r = detokenize(&mut reader, &token, "aud").await;
    assert_eq!(
        (r.status, error_code(&r).as_str()),
        (503, "store_unavailable")
    );
    assert!(!String::from_utf8_lossy(&r.body).contains(&pan[6..12]));
    db.execute_batch("DROP TRIGGER audit_down;").unwrap();
    let r = detokenize(&mut reader, &token, "aud").await;
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    // The refused release left no record: the chain is intact and shows one detokenize.
    let export = audit_export(&d);
    let releases = export
        .lines()
        .filter(|l| l.contains("\"action\":\"detokenize\""))
        .count();
    assert_eq!(releases, 1);
    let path = d.data_dir.parent().unwrap().join("after-failure.jsonl");
    std::fs::write(&path, export).unwrap();
    assert!(payhsm(&["audit", "verify", path.to_str().unwrap()])
        .status
        .success());
}
