//! The PCI DSS evidence report against a real daemon: `GET /v1/audit/report` for the auditor
//! only, figures equal to counts taken from the exported log, `payhsm audit verify-report`
//! refusing an edited report or one signed by another key, `--data-dir` mode, and the HTML
//! page's charts drawn by headless Chromium.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::*;

/// Today (UTC), `YYYY-MM-DD`: the records of these tests are all of today.
fn today() -> String {
    let d = time::OffsetDateTime::now_utc().date();
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// `--url/--cert/--key` for the sample identity `who` of daemon `d`.
fn connect(d: &Daemon, who: &str) -> Vec<String> {
    let keys = keys();
    vec![
        "--url".into(),
        format!("https://{}", d.addr),
        "--cert".into(),
        keys.join(format!("clients/{who}.pem"))
            .display()
            .to_string(),
        "--key".into(),
        keys.join(format!("clients/{who}.key"))
            .display()
            .to_string(),
    ]
}

fn run(args: &[String]) -> std::process::Output {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    payhsm(&args)
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A file in the daemon's temp dir.
fn scratch(d: &Daemon, name: &str) -> PathBuf {
    d.data_dir.parent().unwrap().join(name)
}

/// `payhsm audit report` over the API as the auditor, written to `name`.
fn report_file(d: &Daemon, format: &str, name: &str) -> PathBuf {
    let out_path = scratch(d, name);
    let day = today();
    let mut args: Vec<String> = [
        "audit", "report", "--since", &day, "--until", &day, "--format", format, "--out",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.push(out_path.display().to_string());
    args.extend(connect(d, "auditor"));
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    out_path
}

/// The audit key set as `payhsm audit jwks` prints it, saved to a file.
fn jwks_file(d: &Daemon, name: &str) -> PathBuf {
    let mut args = vec!["audit".to_owned(), "jwks".to_owned()];
    args.extend(connect(d, "auditor"));
    let out = run(&args);
    assert!(out.status.success(), "{}", text(&out));
    let path = scratch(d, name);
    std::fs::write(&path, &out.stdout).unwrap();
    path
}

fn verify_report(file: &Path, jwks: &Path, log: Option<&Path>) -> (bool, String) {
    let mut args = vec![
        "audit".to_owned(),
        "verify-report".to_owned(),
        file.display().to_string(),
        "--jwks".to_owned(),
        jwks.display().to_string(),
    ];
    if let Some(log) = log {
        args.extend(["--log".to_owned(), log.display().to_string()]);
    }
    let out = run(&args);
    (out.status.success(), text(&out))
}

/// A daemon with a history: three cards tokenized, three PANs released to the vault reader,
/// a detokenize refused by the policy (the gateway), one for an unknown token, and a data
/// key rotation under dual control.
async fn daemon_with_history() -> (Daemon, Vec<String>) {
    let d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let mut tokens = Vec::new();
    let pans: Vec<String> = (0..3).map(|_| random_pan("411111", 16)).collect();
    for pan in &pans {
        let r = tokenize(&mut gw, pan, "shop").await;
        assert_eq!(r.status, 201);
        tokens.push(token_of(&r));
    }
    let mut vault = d.client("vault-reader").await;
    for t in [&tokens[0], &tokens[1], &tokens[1]] {
        assert_eq!(detokenize(&mut vault, t, "shop").await.status, 200);
    }
    let r = detokenize(&mut gw, &tokens[2], "shop").await;
    assert_eq!((r.status, error_code(&r).as_str()), (403, "forbidden"));
    // A token of no card: its last digit changed until it fails Luhn (so it is a token).
    let mut unknown = tokens[2].clone();
    loop {
        let last = unknown.pop().unwrap();
        unknown.push(char::from(b'0' + (last as u8 - b'0' + 1) % 10));
        if !luhn_ok(&unknown) && !tokens.contains(&unknown) {
            break;
        }
    }
    let r = detokenize(&mut vault, &unknown, "shop").await;
    assert_eq!(r.status, 404, "{:?}", r.json());
    for who in ["custodian-1", "custodian-2"] {
        let mut args: Vec<String> = ["keys", "rotate", "--purpose", "data"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        args.extend(connect(&d, who));
        let out = run(&args);
        assert!(matches!(out.status.code(), Some(0 | 3)), "{}", text(&out));
    }
    // A signed tree head in the log, which the report names and checks against the log.
    let mut auditor = d.client("auditor").await;
    assert_eq!(get(&mut auditor, "/v1/audit/sth").await.status, 200);
    (d, pans)
}

/// Counts taken from an export: records of `action` with `outcome` (any when `None`), by
/// `principal` when given.
fn count(log: &[serde_json::Value], action: &str, outcome: Option<&str>, who: Option<&str>) -> u64 {
    log.iter()
        .filter(|r| r["action"] == action)
        .filter(|r| outcome.is_none_or(|o| r["outcome"] == o))
        .filter(|r| who.is_none_or(|w| r["principal"] == w))
        .count() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_figures_equal_counts_taken_from_the_log() {
    let (mut d, pans) = daemon_with_history().await;
    let report_path = report_file(&d, "json", "report.json");
    let jwks = jwks_file(&d, "jwks.json");
    d.terminate();
    let export = audit_export(&d);
    let export_path = scratch(&d, "export.jsonl");
    std::fs::write(&export_path, &export).unwrap();
    let answer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    let r = &answer["report"];
    let covered = r["log"]["records"].as_u64().unwrap();
    let log: Vec<serde_json::Value> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["seq"].as_u64().is_some_and(|s| s <= covered))
        .collect();
    assert_eq!(log.len() as u64, covered);
    // The report covers its own read, audited before the log was read.
    let own = log.last().unwrap();
    assert_eq!(
        (&own["action"], &own["outcome"]),
        (&"read_audit".into(), &"ok".into())
    );
    assert!(own["detail"].as_str().unwrap().starts_with("report since="));

    let vault = "spiffe://payhsm.dev/vault-reader";
    let gw = "spiffe://payhsm.dev/gateway";
    let a = &r["pci_dss_10_2_10_3"];
    assert_eq!(
        a["detokenized"],
        count(&log, "detokenize", Some("ok"), None)
    );
    assert_eq!(a["detokenized"], 3);
    let rows = a["detokenize_by_principal"].as_array().unwrap();
    let row = |who: &str| rows.iter().find(|p| p["principal"] == who).unwrap().clone();
    assert_eq!(row(vault)["released"], 3);
    assert_eq!(
        row(vault)["refused"],
        count(&log, "detokenize", Some("token_not_found"), Some(vault))
    );
    assert_eq!(row(vault)["per_day"][today()], 3);
    assert_eq!(
        row(gw)["refused"],
        count(&log, "detokenize", Some("forbidden"), Some(gw))
    );
    let refusal = |code: &str| {
        a["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["outcome"] == code)
            .map_or(0, |f| f["count"].as_u64().unwrap())
    };
    let forbidden = log.iter().filter(|r| r["outcome"] == "forbidden").count() as u64;
    assert_eq!(refusal("forbidden"), forbidden);
    assert!(forbidden >= 1);
    assert_eq!(refusal("token_not_found"), 1);
    assert_eq!(
        a["policy_denials"],
        log.iter().filter(|r| r["decision"] == "deny").count() as u64
    );
    assert_eq!(a["integrity"]["chain_verified"], true);
    assert_eq!(a["integrity"]["gaps"], serde_json::json!([]));
    // The latest tree head in the log (one was signed for the auditor's proof above, or
    // none yet), and whether its root is the log's.
    let heads: Vec<&serde_json::Value> = log
        .iter()
        .filter(|r| r["action"] == "tree_head_signed")
        .collect();
    assert!(!heads.is_empty());
    match heads.last() {
        Some(h) => {
            let jws = h["detail"].as_str().unwrap().split("sth=").nth(1).unwrap();
            assert_eq!(a["integrity"]["latest_signed_tree_head"], jws);
            assert_eq!(a["integrity"]["tree_head_matches_log"], true);
        }
        None => assert_eq!(
            a["integrity"]["latest_signed_tree_head"],
            serde_json::Value::Null
        ),
    }

    let p = &r["pci_dss_3_5"];
    assert_eq!(
        p["tokens_created"],
        count(&log, "tokenize", Some("created"), None)
    );
    assert_eq!(p["tokens_created"], 3);
    assert_eq!(p["tokens"]["luhn_invalid"], true);

    let k = &r["pci_dss_3_6_3_7"];
    assert_eq!(
        k["changes_applied"],
        count(&log, "key_rotate", Some("done"), None)
    );
    assert_eq!(k["changes_applied"], 1);
    assert_eq!(k["changes_with_two_custodians"], 1);
    let rotation = k["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "key_rotate")
        .unwrap();
    let custodians: Vec<&str> = rotation["custodians"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(custodians.len(), 2);
    assert!(
        custodians.iter().all(|c| c.contains("custodian")),
        "{custodians:?}"
    );
    let data_keys: Vec<&serde_json::Value> = k["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["purpose"] == "data")
        .collect();
    assert_eq!(data_keys.len(), 2);
    assert!(data_keys
        .iter()
        .all(|k| k["check"].as_str().unwrap().starts_with("KCV ")));

    let id = &r["pci_dss_8_3_4_2"];
    assert_eq!(
        id["tls"]["protocol_versions"],
        serde_json::json!(["TLSv1_3"])
    );
    let seen: Vec<&str> = id["principals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["principal"].as_str().unwrap())
        .collect();
    for who in [vault, gw, "spiffe://payhsm.dev/auditor"] {
        assert!(seen.contains(&who), "{who} in {seen:?}");
    }
    // Never a PAN, nor its middle digits.
    let body = std::fs::read_to_string(&report_path).unwrap();
    for pan in &pans {
        assert!(!body.contains(pan.as_str()) && !body.contains(&pan[6..12]));
    }

    // The whole report re-derives from the export, signature included.
    let (ok, msg) = verify_report(&report_path, &jwks, Some(&export_path));
    assert!(ok, "{msg}");
    assert!(msg.contains("every figure derived again"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edited_reports_and_reports_of_another_key_fail_verify_report() {
    let (d, _) = daemon_with_history().await;
    let jwks = jwks_file(&d, "jwks.json");
    let json = report_file(&d, "json", "report.json");
    let html = report_file(&d, "html", "report.html");
    let md = report_file(&d, "md", "report.md");
    for file in [&json, &html, &md] {
        let (ok, msg) = verify_report(file, &jwks, None);
        assert!(ok, "{}: {msg}", file.display());
    }
    // Without --jwks the key set is read from the daemon (any client certificate).
    let mut args = vec![
        "audit".to_owned(),
        "verify-report".to_owned(),
        html.display().to_string(),
    ];
    args.extend(connect(&d, "gateway"));
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // A file that cannot be read is a usage problem (2), not a verdict.
    let missing = scratch(&d, "no-such-report.html");
    let (ok, msg) = verify_report(&missing, &jwks, None);
    assert!(!ok && msg.contains("no-such-report"), "{msg}");
    let out = run(&[
        "audit".to_owned(),
        "verify-report".to_owned(),
        missing.display().to_string(),
        "--jwks".to_owned(),
        jwks.display().to_string(),
    ]);
    assert_eq!(out.status.code(), Some(2));

    // json: a changed figure.
    let mut answer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    answer["report"]["pci_dss_10_2_10_3"]["detokenized"] = 2.into();
    let edited = scratch(&d, "edited.json");
    std::fs::write(&edited, answer.to_string()).unwrap();
    let (ok, msg) = verify_report(&edited, &jwks, None);
    assert!(!ok, "{msg}");
    assert!(msg.contains("covers another report"), "{msg}");

    // html and md: a changed number in the visible text.
    for (file, name) in [(&html, "edited.html"), (&md, "edited.md")] {
        let page = std::fs::read_to_string(file).unwrap();
        let figure = "PANs released by detokenization in the period: 3.";
        assert!(page.contains(figure), "{name}");
        let edited = scratch(&d, name);
        std::fs::write(
            &edited,
            page.replace(figure, "PANs released by detokenization in the period: 1."),
        )
        .unwrap();
        let (ok, msg) = verify_report(&edited, &jwks, None);
        assert!(!ok, "{name}: {msg}");
        assert!(
            msg.contains("differs from the signed report"),
            "{name}: {msg}"
        );
    }

    // Another daemon (its own token, so its own audit key) signs a report: it does not verify
    // against this daemon's key set, though it does against its own.
    let other = Daemon::start();
    let foreign = report_file(&other, "html", "foreign.html");
    let (ok, msg) = verify_report(&foreign, &jwks, None);
    assert!(!ok, "{msg}");
    assert!(msg.contains("signature does not verify"), "{msg}");
    let (ok, msg) = verify_report(&foreign, &jwks_file(&other, "other-jwks.json"), None);
    assert!(ok, "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_auditor_gets_a_report_and_bad_periods_are_400() {
    let d = Daemon::start();
    let day = today();
    let path = format!("/v1/audit/report?since={day}&until={day}");
    for who in ["gateway", "vault-reader", "custodian-1"] {
        let mut c = d.client(who).await;
        let r = get(&mut c, &path).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "forbidden"),
            "{who}"
        );
    }
    let mut auditor = d.client("auditor").await;
    for query in [
        "",
        "since=2026-01-01",
        "since=2026-01-01&until=2026-01-01&since=2026-01-01",
        "since=2026-01-02&until=2026-01-01",
        "since=2026-1-01&until=2026-01-02",
        "since=2024-01-01&until=2026-01-01",
        "since=2026-01-01&until=2026-01-31&x=1",
    ] {
        let r = get(&mut auditor, &format!("/v1/audit/report?{query}")).await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (400, "malformed_request"),
            "{query}"
        );
    }
    let r = get(&mut auditor, &path).await;
    assert_eq!(r.status, 200);
    let answer = r.json().unwrap();
    let refused = answer["report"]["pci_dss_10_2_10_3"]["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["outcome"] == "forbidden")
        .unwrap()
        .clone();
    // The three refused reads are in the report, as read_audit refusals.
    assert_eq!(refused["by_action"]["read_audit"], 3);
    assert!(answer["jws"].as_str().unwrap().split('.').count() == 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_dir_mode_signs_with_the_audit_key_in_the_hsm() {
    let (mut d, _) = daemon_with_history().await;
    let jwks = jwks_file(&d, "jwks.json");
    d.terminate();
    let export_path = scratch(&d, "export.jsonl");
    std::fs::write(&export_path, audit_export(&d)).unwrap();
    let day = today();
    for format in ["json", "html"] {
        let out_path = scratch(&d, &format!("offline.{format}"));
        let out = payhsm(&[
            "audit",
            "report",
            "--data-dir",
            d.data_dir.to_str().unwrap(),
            "--since",
            &day,
            "--until",
            &day,
            "--format",
            format,
            "--out",
            out_path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let (ok, msg) = verify_report(&out_path, &jwks, Some(&export_path));
        assert!(ok, "{format}: {msg}");
    }
    let answer: serde_json::Value =
        serde_json::from_slice(&std::fs::read(scratch(&d, "offline.json")).unwrap()).unwrap();
    let r = &answer["report"];
    assert_eq!(r["pci_dss_10_2_10_3"]["detokenized"], 3);
    assert!(r["facts"]["source"].as_str().unwrap().contains("offline"));
    assert!(r["facts"]["tls"]["revocation"]
        .as_str()
        .unwrap()
        .contains("not known"));
}

/// Chromium from Debian's `chromium` package (scripts/setup installs it).
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in ["/usr/bin", "/usr/local/bin", "/snap/bin"] {
            let p = Path::new(dir).join(name);
            if p.exists() {
                return p;
            }
        }
    }
    panic!("headless Chromium is needed to render the HTML report: apt-get install chromium (scripts/setup does)");
}

/// Renders `page` to a PNG with headless Chromium, killed after two minutes.
fn screenshot(page: &Path, png: &Path) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", page.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium exited with {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish rendering within 120 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let bytes = std::fs::read(png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_reports_charts_are_drawn_by_headless_chromium() {
    let (d, _) = daemon_with_history().await;
    let html = report_file(&d, "html", "report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.to_lowercase().contains("<script"));
    let bars = page.lines().filter(|l| l.contains("class=\"bar\"")).count();
    // Two data key versions with records or not, and the vault reader's day.
    assert!(bars >= 2, "{bars} bars");
    // The same page without its bars: the charts' frames and labels stay.
    let bare = scratch(&d, "bare.html");
    let without: String = page
        .lines()
        .filter(|l| !l.contains("class=\"bar\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&bare, without).unwrap();
    let with_bars = screenshot(&html, &scratch(&d, "report.png"));
    let no_bars = screenshot(&bare, &scratch(&d, "bare.png"));
    assert!(with_bars.len() > 1000, "a blank screenshot");
    assert_ne!(with_bars, no_bars, "the bars changed nothing on the screen");
}
