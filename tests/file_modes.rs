//! The daemon's files are its owner's only (issue 16, finding 7): the data directory is 0700
//! and every file and folder under it (the SQLite store, its WAL and shared memory, the
//! SoftHSM2 token) has no group or other permission, also when the caller's umask is lax and
//! when an older database with wider modes is opened.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use support::*;

/// Every path under `dir` (itself included) whose mode gives group or others anything.
fn too_open(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mode = std::fs::symlink_metadata(dir).unwrap().permissions().mode();
    if mode & 0o077 != 0 {
        found.push(format!("{} {mode:o}", dir.display()));
    }
    if dir.is_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            found.extend(too_open(&entry.unwrap().path()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_and_every_file_in_it_are_the_owners_only() {
    let mut d = Daemon::start();
    let mut gw = d.client("gateway").await;
    assert_eq!(
        tokenize(&mut gw, &random_pan("4111", 16), "shop")
            .await
            .status,
        201
    );
    assert!(d.data_dir.join("payhsm.db-wal").exists());
    assert_eq!(too_open(&d.data_dir), Vec::<String>::new());

    // A database left with wide modes (an older version, a copy) is tightened at open.
    d.terminate();
    for name in ["payhsm.db", "payhsm.db-wal", "payhsm.db-shm"] {
        let path = d.data_dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
    }
    std::fs::set_permissions(&d.data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    d.restart();
    let mut gw = d.client("gateway").await;
    assert_eq!(
        tokenize(&mut gw, &random_pan("4111", 16), "shop")
            .await
            .status,
        201
    );
    assert_eq!(too_open(&d.data_dir), Vec::<String>::new());
}
