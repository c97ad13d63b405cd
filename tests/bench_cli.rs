//! `payhsm bench` end to end: every scenario against a real `payhsmd dev` (real mTLS, real
//! SoftHSM2, real SQLite) for a tiny fixed request count, its JSON report read back, and its
//! effects counted in the daemon's audit log. No timing is asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::collections::HashMap;
use support::*;

const REQUESTS: u64 = 20;

/// Runs `payhsm bench ARGS --json` against `d`; the JSON objects by scenario.
fn bench(d: &Daemon, args: &[&str]) -> HashMap<String, serde_json::Value> {
    let url = format!("https://{}", d.addr);
    let mut all = vec!["bench", "--url", &url, "--json"];
    all.extend_from_slice(args);
    let out = payhsm(&all);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "payhsm bench failed ({}): {stderr}",
        out.status
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["scenario"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

/// (action, outcome) -> count over the daemon's exported audit log.
fn audit_counts(d: &Daemon) -> HashMap<(String, String), u64> {
    let mut counts = HashMap::new();
    for line in audit_export(d).lines() {
        let r: serde_json::Value = serde_json::from_str(line).unwrap();
        if let (Some(a), Some(o)) = (r["action"].as_str(), r["outcome"].as_str()) {
            *counts.entry((a.to_owned(), o.to_owned())).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn every_scenario_runs_without_errors_and_its_effects_are_in_the_audit_log() {
    let d = Daemon::start();
    let requests = REQUESTS.to_string();
    let report = bench(
        &d,
        &[
            "--scenario",
            "all",
            "--connections",
            "2",
            "--requests",
            &requests,
            "--warmup",
            "0",
            "--pool",
            "10",
        ],
    );
    let names = [
        "noop",
        "tokenize-new",
        "tokenize-existing",
        "detokenize",
        "metadata",
        "lifecycle",
        "authorize",
        "handshake",
    ];
    assert_eq!(report.len(), names.len(), "{report:?}");
    for name in names {
        let r = &report[name];
        for field in payhsm::bench::report::JSON_FIELDS {
            assert!(r.get(field).is_some(), "{name}: no {field}: {r}");
        }
        assert_eq!(r["ops"], REQUESTS, "{name}: {r}");
        assert_eq!(r["errors"], 0, "{name}: {r}");
        assert_eq!(r["connections"], 2);
        assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0, "{name}: {r}");
        assert!(r["p50_ms"].as_f64().unwrap() > 0.0, "{name}: {r}");
        assert!(r["machine"]["cores"].as_u64().unwrap() >= 1);
    }

    let counts = audit_counts(&d);
    let n = |a: &str, o: &str| {
        counts
            .get(&(a.to_owned(), o.to_owned()))
            .copied()
            .unwrap_or(0)
    };
    // New cards: tokenize-new's 20, the four pools of 10, one card per authorize connection.
    assert_eq!(n("tokenize", "created"), REQUESTS + 4 * 10 + 2);
    assert_eq!(n("tokenize", "existing"), REQUESTS);
    assert_eq!(n("detokenize", "ok"), REQUESTS);
    assert_eq!(n("suspend", "ok") + n("resume", "ok"), REQUESTS);
    assert_eq!(n("device_enrolled", "enrolled"), 2);
    assert_eq!(n("authorization_approved", "approved"), REQUESTS);
}

#[test]
fn idle_mode_opens_the_connections_and_reads_the_daemon_memory() {
    let d = Daemon::start();
    let pid = d.pid().to_string();
    let report = bench(
        &d,
        &[
            "--scenario",
            "idle",
            "--connections",
            "8",
            "--requests",
            "1",
            "--server-pid",
            &pid,
        ],
    );
    let idle = &report["idle"];
    assert_eq!(idle["ops"], 8, "{idle}");
    assert_eq!(idle["errors"], 0, "{idle}");
    assert_eq!(idle["idle"]["opened"], 8, "{idle}");
    assert_eq!(idle["idle"]["alive_after_idle"], 8, "{idle}");
    assert!(
        idle["idle"]["server_rss_kb_open"].as_u64().unwrap() > 0,
        "{idle}"
    );
}

#[test]
fn a_run_against_an_unknown_domain_policy_fails_with_exit_1() {
    // The sample policy lets the gateway authorize payments only in shop and acme-shop: every
    // `authorize` flow in another domain is refused (403) and the run says so.
    let d = Daemon::start();
    let url = format!("https://{}", d.addr);
    let out = payhsm(&[
        "bench",
        "--url",
        &url,
        "--json",
        "--scenario",
        "authorize",
        "--domain",
        "elsewhere",
        "--connections",
        "1",
        "--requests",
        "3",
        "--warmup",
        "0",
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["errors"], 3);
    assert_eq!(r["error_classes"]["HTTP 403 forbidden"], 3, "{r}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("max-error-rate"));
}

#[test]
fn a_handshake_run_under_a_flood_of_silent_sockets_reports_the_flood_and_no_errors() {
    let d = Daemon::start();
    let report = bench(
        &d,
        &[
            "--scenario",
            "handshake",
            "--connections",
            "2",
            "--requests",
            "20",
            "--warmup",
            "1",
            "--flood",
            "40",
        ],
    );
    let r = &report["handshake"];
    assert_eq!(r["ops"], 20, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["flood"]["sockets"], 40, "{r}");
    // The daemon's per-address handshake cap (128 by default) takes all 40: each was opened
    // once and held for the run.
    assert!(r["flood"]["opened"].as_u64().unwrap() >= 40, "{r}");
}
