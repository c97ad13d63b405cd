//! The vault records its KEK's check value at first start; a daemon whose KEK differs (another
//! token, other components) refuses to start instead of failing to unwrap later.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use std::process::Command;
use support::{audit_export, dev_token_store, keys, repo, Daemon};

#[test]
fn a_daemon_whose_kek_differs_from_the_recorded_one_refuses_to_start() {
    let mut d = Daemon::start();
    d.terminate();
    let log = audit_export(&d);
    let recorded: Vec<_> = log.lines().filter(|l| l.contains("kek_recorded")).collect();
    assert_eq!(recorded.len(), 1, "{log}");
    assert!(recorded[0].contains("KCV "));

    // Same vault, same KEK: starts, records nothing new.
    d.restart();
    d.terminate();
    let log = audit_export(&d);
    assert_eq!(log.matches("kek_recorded").count(), 1);

    // Same vault, a new token with a KEK of its own (the dev daemon makes one).
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsmd"));
    cmd.arg("dev")
        .arg("--data-dir")
        .arg(&d.data_dir)
        .args(["--listen", "127.0.0.1:0"])
        .arg("--keys")
        .arg(keys())
        .arg("--policies")
        .arg(repo().join("policies"));
    match dev_token_store(&d.data_dir) {
        None => {
            let tokens = d.data_dir.join("softhsm-tokens");
            std::fs::remove_dir_all(&tokens).unwrap();
            std::fs::create_dir(&tokens).unwrap();
        }
        // kryoptic: its SQLite token file (support::softhsm::write_store_config).
        Some((var, conf)) => {
            for entry in std::fs::read_dir(&d.data_dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                if name.starts_with("kryoptic.sql") {
                    std::fs::remove_file(&path).unwrap();
                }
            }
            cmd.env(var, conf);
        }
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("listening"),
        "{stderr}"
    );
    assert!(
        stderr.contains("KEK") && stderr.contains("every replica needs the same KEK"),
        "{stderr}"
    );
}
