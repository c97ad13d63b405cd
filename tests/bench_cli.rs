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

/// Runs `payhsm ARGS` with `PAYHSM_URL` set to `env_url`.
fn payhsm_with_env_url(env_url: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_payhsm"))
        .args(args)
        .env("PAYHSM_URL", env_url)
        .current_dir(repo())
        .output()
        .unwrap()
}

/// Runs `payhsm bench --url A --url B --json ARGS` (and a `PAYHSM_URL` that must be ignored);
/// the one JSON object of the one scenario, and the exit status.
fn bench_two(a: &Daemon, b: &Daemon, args: &[&str]) -> (serde_json::Value, std::process::Output) {
    let (url_a, url_b) = (format!("https://{}", a.addr), format!("https://{}", b.addr));
    let mut all = vec!["bench", "--url", &url_a, "--url", &url_b, "--json"];
    all.extend_from_slice(args);
    // Nothing listens on port 9: were the environment added to the URLs given, it would show.
    let out = payhsm_with_env_url("https://127.0.0.1:9", &all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {stderr}: {}", String::from_utf8_lossy(&out.stdout)));
    (report, out)
}

#[test]
fn connections_are_spread_round_robin_over_every_url() {
    let (a, b) = (Daemon::start(), Daemon::start());
    let (r, out) = bench_two(
        &a,
        &b,
        &[
            "--scenario",
            "tokenize-new",
            "--connections",
            "4",
            "--requests",
            "40",
            "--warmup",
            "0",
        ],
    );
    assert!(out.status.success(), "{r}");
    assert_eq!(
        (r["ops"].as_u64(), r["errors"].as_u64()),
        (Some(40), Some(0)),
        "{r}"
    );
    let replicas = r["replicas"].as_array().unwrap();
    assert_eq!(replicas.len(), 2, "{r}");
    let mut total = 0;
    for (replica, daemon) in replicas.iter().zip([&a, &b]) {
        assert_eq!(replica["url"], format!("https://{}", daemon.addr), "{r}");
        let ops = replica["ops"].as_u64().unwrap();
        assert!(
            ops > 0,
            "connections 0 and 2 go to the first, 1 and 3 to the second: {r}"
        );
        // Each daemon saw exactly the cards the report puts on it.
        let created = audit_counts(daemon)
            .get(&("tokenize".to_owned(), "created".to_owned()))
            .copied()
            .unwrap_or(0);
        assert_eq!(created, ops, "{r}");
        total += ops;
    }
    assert_eq!(total, 40);
}

#[test]
fn a_connection_sets_up_on_another_replica_than_the_one_it_drives() {
    // Replicas share one store; these two dev daemons do not. A card pooled by one is new to
    // the other, so each timed `tokenize-existing` answers 201 instead of 200 (a pool of 10
    // per connection: no card comes round twice in 6 operations).
    let (a, b) = (Daemon::start(), Daemon::start());
    let (r, _) = bench_two(
        &a,
        &b,
        &[
            "--scenario",
            "tokenize-existing",
            "--connections",
            "2",
            "--requests",
            "6",
            "--warmup",
            "0",
            "--pool",
            "20",
            "--max-error-rate",
            "1",
        ],
    );
    assert_eq!(r["errors"], 6, "{r}");
    assert_eq!(r["error_classes"]["HTTP 201"], 6, "{r}");
}

#[test]
fn a_repeated_url_is_refused_outside_bench_and_the_environment_still_names_the_daemon() {
    let d = Daemon::start();
    let url = format!("https://{}", d.addr);
    let ok = payhsm_with_env_url(&url, &["health"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    for args in [
        &["health", "--url", &url, "--url", &url][..],
        &[
            "tokens", "--url", &url, "get", "T", "--domain", "d", "--url", &url,
        ][..],
        &["keys", "list", "--url", &url, "--url", &url][..],
    ] {
        let out = payhsm(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim(),
            "payhsm: --url is given once, except for `payhsm bench`",
            "{args:?}"
        );
    }
}

#[test]
fn every_scenario_runs_on_two_urls_that_share_a_store() {
    // One daemon named twice: two "replicas" with one store, so pools and devices set up
    // through one URL are used through the other.
    let d = Daemon::start();
    let url = format!("https://{}", d.addr);
    let requests = REQUESTS.to_string();
    for scenario in ["all", "idle"] {
        let report = bench(
            &d,
            &[
                "--url",
                &url,
                "--scenario",
                scenario,
                "--connections",
                "4",
                "--requests",
                &requests,
                "--warmup",
                "0",
                "--pool",
                "8",
            ],
        );
        assert_eq!(report.len(), if scenario == "all" { 8 } else { 1 });
        for (name, r) in &report {
            let want = if name == "idle" { 4 } else { REQUESTS };
            assert_eq!(
                (r["ops"].as_u64(), r["errors"].as_u64()),
                (Some(want), Some(0)),
                "{r}"
            );
            let replicas = r["replicas"].as_array().unwrap();
            assert_eq!(replicas.len(), 2, "{r}");
            let ops: Vec<u64> = replicas
                .iter()
                .map(|x| x["ops"].as_u64().unwrap())
                .collect();
            assert_eq!(ops.iter().sum::<u64>(), want, "{r}");
        }
    }
}
