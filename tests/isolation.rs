//! The daemon confines itself once it serves (Linux): Landlock limits its files, no_new_privs
//! is set, and a seccomp allow-list refuses every other system call. Shown from outside
//! (`/proc/PID/status`), from inside (the probes the daemon logs: `execve`, `/etc/shadow`, a
//! file outside the data directory), and by every route still answering. Every other test of
//! the suite also runs against a confined daemon, which is the wider proof that serving needs
//! nothing off the list.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use serde_json::{json, Value};
use support::*;

/// `Seccomp` and `NoNewPrivs` of the daemon's `/proc/PID/status`.
fn status(d: &Daemon) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{}/status", d.pid())).unwrap();
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
            .unwrap_or_else(|| panic!("no {name} in /proc/PID/status"))
    };
    (field("Seccomp:"), field("NoNewPrivs:"))
}

/// The JSON log line whose message is `message`.
fn log_line(d: &Daemon, message: &str) -> Value {
    d.logs()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message"] == message)
        .unwrap_or_else(|| panic!("no {message:?} line in:\n{}", d.logs()))
}

/// Whether this kernel has Landlock (the `landlock_create_ruleset` version query).
fn kernel_has_landlock() -> bool {
    std::path::Path::new("/proc/self/status").exists()
        && std::process::Command::new("python3")
            .args([
                "-c",
                "import ctypes,sys; l=ctypes.CDLL(None); sys.exit(0 if l.syscall(444,None,0,1)>0 else 1)",
            ])
            .status()
            .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_serving_daemon_is_confined_and_every_route_still_works() {
    assert!(
        kernel_has_landlock(),
        "this kernel has no Landlock: file confinement cannot be shown here"
    );
    let d = Daemon::start_with(&["--json-logs"]);
    assert_eq!(status(&d), ("2".to_owned(), "1".to_owned()));
    let files = log_line(&d, "file access confined");
    assert_eq!(files["landlock"], "full");
    let probes = &log_line(&d, "confined");
    assert_eq!(probes["seccomp"], true);
    assert_eq!(probes["execve"], "EPERM", "{probes}");
    assert_eq!(probes["open_etc_shadow"], "EACCES", "{probes}");
    assert_eq!(probes["write_outside_data"], "EACCES", "{probes}");
    // Narrowed arguments: no new namespace, no socket family serving does not use; threads
    // still start (clone3 answers ENOSYS and glibc falls back to the checked clone).
    assert_eq!(probes["user_namespace"], "EPERM", "{probes}");
    assert_eq!(probes["other_socket"], "EPERM", "{probes}");
    assert_eq!(probes["thread"], "allowed", "{probes}");

    // Confined, it still does all it serves: tokens, batches, lifecycle, keys, audit, proofs,
    // metrics, the contract, devices, payments' challenge.
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let mut auditor = d.client("auditor").await;
    let pan = random_pan("411111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, "shop").await);
    let r = detokenize(&mut reader, &token, "shop").await;
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    let batch = post(
        &mut gw,
        "/v1/tokens/batch",
        json!({"domain": "shop", "items": [{"pan": random_pan("422222", 16)}]}),
    )
    .await;
    assert_eq!(batch.status, 200);
    for (path, who) in [
        (format!("/v1/tokens/{token}?domain=shop"), "gateway"),
        ("/v1/keys/jwks".to_owned(), "gateway"),
        ("/v1/audit/jwks".to_owned(), "gateway"),
        ("/v1/openapi.json".to_owned(), "gateway"),
        ("/healthz".to_owned(), "gateway"),
        ("/readyz".to_owned(), "gateway"),
        ("/metrics".to_owned(), "monitoring"),
        ("/v1/keys".to_owned(), "auditor"),
        ("/v1/audit?limit=5".to_owned(), "auditor"),
        ("/v1/audit/sth".to_owned(), "auditor"),
        ("/v1/audit/proof?seq=1".to_owned(), "auditor"),
        ("/v1/devices?user=alice".to_owned(), "gateway"),
    ] {
        let mut c = d.client(who).await;
        let r = get(&mut c, &path).await;
        assert_eq!(
            r.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
    }
    for change in ["suspend", "resume"] {
        let r = post(
            &mut gw,
            &format!("/v1/tokens/{token}/{change}"),
            json!({"domain": "shop"}),
        )
        .await;
        assert_eq!(r.status, 200, "{change}");
    }
    let r = post(
        &mut gw,
        "/v1/devices/challenges",
        json!({"user": "alice", "rp_id": "localhost"}),
    )
    .await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    let r = get(&mut auditor, "/v1/audit/consistency?from=1&to=2").await;
    assert_eq!(r.status, 200);
    // And the store took every write: the log verifies.
    let export = audit_export(&d);
    assert!(payhsm::audit::verify_export(&export, None).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_isolation_nothing_is_confined() {
    let d = Daemon::start_with(&["--no-isolation"]);
    assert_eq!(status(&d), ("0".to_owned(), "0".to_owned()));
    assert!(d.logs().contains("isolation disabled"));
}
