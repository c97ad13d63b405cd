//! The audit log over the API: `GET /v1/audit` for the auditor identity only, pages in
//! order with a checkpoint signed by the HSM audit key, and `payhsm audit export --url`
//! writing the same lines as `--data-dir`, which `payhsm audit verify` accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use payhsm::audit::verify_export;
use support::{audit_export, error_code, get, payhsm, random_pan, tokenize, Daemon};

/// A daemon with `n` tokenizations in its log.
async fn daemon_with(n: usize) -> Daemon {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    for _ in 0..n {
        assert_eq!(
            tokenize(&mut gw, &random_pan("411111", 16), "shop")
                .await
                .status,
            201
        );
    }
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auditor_reads_pages_in_order_with_a_signed_checkpoint_over_the_head() {
    let d = daemon_with(5).await;
    let mut auditor = d.client("auditor").await;
    let first = get(&mut auditor, "/v1/audit?after=0&limit=2").await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let page = first.json().unwrap();
    let records = page["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["seq"], 1);
    assert_eq!(records[1]["seq"], 2);
    // The head is past the page: five tokenizations, and this read's own record.
    let checkpoint = &page["checkpoint"];
    let covered = checkpoint["records"].as_u64().unwrap();
    assert!(covered >= 6, "checkpoint covers {covered}");

    let next = get(&mut auditor, "/v1/audit?after=2").await.json().unwrap();
    let rest = next["records"].as_array().unwrap();
    assert_eq!(rest[0]["seq"], 3);
    // The earlier reads are in the log, as reads by the auditor.
    let reads: Vec<_> = rest
        .iter()
        .filter(|r| r["action"] == "read_audit")
        .collect();
    assert!(!reads.is_empty());
    assert!(reads
        .iter()
        .all(|r| r["principal"].as_str().unwrap().contains("auditor")
            && r["decision"] == "allow"
            && r["outcome"] == "ok"));

    // What was read, with the checkpoint that came with it, verifies as an export.
    let mut lines = String::new();
    for r in records.iter().chain(rest) {
        lines.push_str(&r.to_string());
        lines.push('\n');
    }
    let last = rest.last().unwrap()["seq"].as_u64().unwrap();
    assert_eq!(last, next["checkpoint"]["records"].as_u64().unwrap());
    lines.push_str(&serde_json::json!({ "checkpoint": next["checkpoint"] }).to_string());
    lines.push('\n');
    let summary = verify_export(&lines, None).expect("pages verify as an export");
    assert_eq!(summary.records, last);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_auditor_reads_the_log_and_refusals_are_audited() {
    let d = daemon_with(1).await;
    for who in ["gateway", "vault-reader", "monitoring", "custodian-1"] {
        let mut c = d.client(who).await;
        let r = get(&mut c, "/v1/audit").await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "forbidden"),
            "{who}"
        );
    }
    let mut auditor = d.client("auditor").await;
    let page = get(&mut auditor, "/v1/audit").await.json().unwrap();
    let refused = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "read_audit" && r["outcome"] == "forbidden")
        .count();
    assert_eq!(refused, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_query_parameters_are_refused_with_400() {
    let d = daemon_with(0).await;
    let mut auditor = d.client("auditor").await;
    for query in [
        "after=-1",
        "after=%2B1",
        "after=x",
        "limit=0",
        "limit=1001",
        "after=1&after=2",
        "since=1",
        "after=99999999999999999999",
    ] {
        let r = get(&mut auditor, &format!("/v1/audit?{query}")).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (400, "malformed_request"),
            "{query}"
        );
    }
    let r = get(&mut auditor, "/v1/audit?after=1000000").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["records"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_over_the_api_matches_the_data_dir_export_and_verifies() {
    let d = daemon_with(3).await;
    let url = format!("https://{}", d.addr);
    let out_path = d.data_dir.parent().unwrap().join("api-export.jsonl");
    let keys = support::keys();
    let cert = keys.join("clients/auditor.pem");
    let key = keys.join("clients/auditor.key");
    let out = payhsm(&[
        "audit",
        "export",
        "--url",
        &url,
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--out",
        out_path.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verified = payhsm(&["audit", "verify", out_path.to_str().unwrap()]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    let from_api = std::fs::read_to_string(&out_path).unwrap();

    // A gateway certificate exports nothing.
    let gw_cert = keys.join("clients/gateway.pem");
    let gw_key = keys.join("clients/gateway.key");
    let refused = payhsm(&[
        "audit",
        "export",
        "--url",
        &url,
        "--cert",
        gw_cert.to_str().unwrap(),
        "--key",
        gw_key.to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());

    let mut d = d;
    d.terminate();
    let from_dir = audit_export(&d);
    // The data-dir export holds every record of the API export, line for line (it may hold
    // more: the refused read above came after).
    let api_records: Vec<&str> = from_api.lines().filter(|l| l.contains("\"seq\"")).collect();
    let dir_records: Vec<&str> = from_dir.lines().filter(|l| l.contains("\"seq\"")).collect();
    assert!(api_records.len() >= 4);
    assert_eq!(api_records[..], dir_records[..api_records.len()]);
}
