//! Fault harness (issue 6): the store's disk is full, then has space again.
//!
//! The fault is real and needs no privilege: `prlimit --pid` lowers the running daemon's
//! RLIMIT_FSIZE to 0, so every write(2) into a regular file fails with EFBIG (payhsmd ignores
//! SIGXFSZ), which SQLite reports as SQLITE_FULL, as on a full disk. Raising the limit back is
//! the space returning. A size-limited tmpfs would need mount privileges that CI may not have,
//! and a read-only remount or `chattr +i` too; RLIMIT_FSIZE works as any user.
//!
//! A disk that turns read-only under a running daemon cannot be made here: Linux refuses to
//! remount read-only a mount with files open for writing (EBUSY), and the kernel's own
//! remount after I/O errors needs a faulty block device. What is tested is the daemon starting
//! on a read-only store: a read-only bind mount when the tests run as root (root ignores
//! permission bits), the permission bits otherwise.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::Client;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

const DOMAIN: &str = "disk";

/// Sets the soft file size limit of process `pid` (`None`: unlimited).
fn file_size_limit(pid: u32, bytes: Option<u64>) {
    let soft = bytes.map_or("unlimited".to_owned(), |b| b.to_string());
    let out = std::process::Command::new("prlimit")
        .args([
            "--pid",
            &pid.to_string(),
            &format!("--fsize={soft}:unlimited"),
        ])
        .output()
        .expect("prlimit (util-linux) is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn suspend(c: &mut Client, token: &str) -> payhsm::client::Response {
    c.request(
        hyper::Method::POST,
        &format!("/v1/tokens/{token}/suspend?domain={DOMAIN}"),
        None,
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_and_audited_reads_with_503_and_recovers() {
    let mut d = Daemon::start();
    let pid = d.pid();
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let mut cards = Vec::new();
    for _ in 0..20 {
        let pan = random_pan("4111", 16);
        let r = tokenize(&mut gw, &pan, DOMAIN).await;
        assert_eq!(r.status, 201);
        cards.push((pan, token_of(&r)));
    }

    file_size_limit(pid, Some(0));
    // Writes: a new card, a lifecycle change.
    let refused_pan = random_pan("5100", 16);
    let r = tokenize(&mut gw, &refused_pan, DOMAIN).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "store_unavailable".to_owned())
    );
    let r = suspend(&mut gw, &cards[0].1).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "store_unavailable".to_owned())
    );
    // A detokenize needs its audit record durable first: refused, no card leaves.
    let r = detokenize(&mut reader, &cards[1].1, DOMAIN).await;
    assert_eq!(
        (r.status, error_code(&r)),
        (503, "store_unavailable".to_owned())
    );
    assert!(!String::from_utf8_lossy(&r.body).contains(&cards[1].0));
    // Metadata reads write nothing and still answer; the refused suspension left no trace.
    let r = get(
        &mut gw,
        &format!("/v1/tokens/{}?domain={DOMAIN}", cards[0].1),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["status"], "active");
    // Readiness says so, the probe being a write.
    let ready = get(&mut gw, "/readyz").await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json().unwrap()["checks"]["store"],
        "store_unavailable"
    );
    // Still full: many writers at once fail alike (one batch), and the daemon lives on.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let mut c = d.client("gateway").await;
        tasks.push(tokio::spawn(async move {
            tokenize(&mut c, &random_pan("4111", 16), DOMAIN)
                .await
                .status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 503);
    }

    // Space returns: everything works again without a restart.
    file_size_limit(pid, None);
    assert_eq!(d.pid(), pid);
    // Readiness comes back first, by its own probe write.
    assert_eq!(get(&mut gw, "/readyz").await.status, 200);
    let r = tokenize(&mut gw, &refused_pan, DOMAIN).await;
    assert_eq!(r.status, 201, "the refused card was half-written");
    let r = suspend(&mut gw, &cards[0].1).await;
    assert_eq!(r.status, 200);
    for (pan, token) in &cards[1..] {
        let r = detokenize(&mut reader, token, DOMAIN).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    }

    // Nothing half-written: the database and its WAL are sound, every token row has its
    // tokenize audit record, and the audit chain verifies, also after a restart (WAL
    // recovery).
    {
        let db = rusqlite::Connection::open_with_flags(
            d.data_dir.join("payhsm.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .unwrap();
        let check: String = db
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        let (rows, unaudited): (i64, i64) = db
            .query_row(
                "SELECT COUNT(*), SUM(NOT EXISTS (SELECT 1 FROM audit_log a
                     WHERE a.token = t.token AND a.action = 'tokenize'))
                 FROM tokens t WHERE t.domain = ?1",
                [DOMAIN],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((rows, unaudited), (21, 0));
    }
    d.kill();
    d.restart();
    let mut reader = d.client("vault-reader").await;
    let r = detokenize(&mut reader, &cards[2].1, DOMAIN).await;
    assert_eq!(r.status, 200);
    let (ok, msg) = audit_verify(&d, "after-full.jsonl", &audit_export(&d));
    assert!(ok, "{msg}");
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    Command::new(program).args(args).output().unwrap()
}

/// `dir` made read-only for this process while it lives.
struct ReadOnly {
    dir: PathBuf,
    mounted: bool,
}

impl ReadOnly {
    fn new(dir: &Path) -> Self {
        let root = String::from_utf8(run("id", &["-u"]).stdout).unwrap().trim() == "0";
        let d = dir.to_str().unwrap();
        if root {
            for args in [&["--bind", d, d][..], &["-o", "remount,ro,bind", d][..]] {
                let out = run("mount", args);
                assert!(
                    out.status.success(),
                    "as root this test needs mount (CAP_SYS_ADMIN): {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        } else {
            assert!(run("chmod", &["-R", "a-w", d]).status.success());
        }
        Self {
            dir: dir.to_owned(),
            mounted: root,
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        let d = self.dir.to_str().unwrap();
        if self.mounted {
            run("umount", &[d]);
        } else {
            run("chmod", &["-R", "u+w", d]);
        }
    }
}

/// Everything in `dir` (name, bytes), in order.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push((path.clone(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_store_stops_the_daemon_at_start_saying_so_and_changes_nothing() {
    let mut d = Daemon::start();
    let mut gw = d.client("gateway").await;
    let pan = random_pan("4111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, DOMAIN).await);
    assert_eq!(d.terminate().code(), Some(0));
    let before = snapshot(&d.data_dir);

    {
        let _ro = ReadOnly::new(&d.data_dir);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_payhsmd"))
            .arg("dev")
            .arg("--data-dir")
            .arg(&d.data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .arg("--keys")
            .arg(keys())
            .arg("--policies")
            .arg(repo().join("policies"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("payhsm.db") && stderr.contains("store unavailable"),
            "{stderr}"
        );
        assert!(
            stderr.contains("Read-only file system") || stderr.contains("Permission denied"),
            "{stderr}"
        );
        assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
    }
    assert!(
        snapshot(&d.data_dir) == before,
        "the refused start changed the data directory"
    );

    // Writable again: the daemon starts and the card is there.
    d.restart();
    let mut reader = d.client("vault-reader").await;
    let r = detokenize(&mut reader, &token, DOMAIN).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
}
