//! The HSM handle's worker threads end with its last handle, before the drop returns: one
//! still closing its session at process exit crashes in SoftHSM2's static destructors. Alone in
//! its test binary, so no other test's workers come and go while it counts them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use payhsm::keys::{Hsm, HsmConfig, Pin};
use support::softhsm::{fixture, serial, TOKEN, USER_PIN};

fn open(sessions: usize) -> Hsm {
    let cfg = HsmConfig {
        token_label: TOKEN.to_owned(),
        pin: Pin::new(USER_PIN.to_owned()),
        sessions,
    };
    Hsm::open(&fixture().module, cfg).unwrap()
}

/// HSM worker threads alive in this process (Linux: their names under /proc/self/task).
fn hsm_workers() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|name| name.starts_with("payhsm-hsm-"))
        .count()
}

#[tokio::test]
async fn dropping_the_last_handle_ends_its_workers_before_returning() {
    let _serial = serial().await;
    // Every other test of this process that holds `serial` has dropped its handles.
    let before = hsm_workers();
    let hsm = open(3);
    let clone = hsm.clone();
    hsm.ping().await.unwrap();
    // A new thread takes its name once it runs: wait (bounded) until all three have.
    let started = std::time::Instant::now();
    while hsm_workers() < before + 3 && started.elapsed() < std::time::Duration::from_secs(10) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(hsm_workers(), before + 3);
    drop(hsm);
    clone.ping().await.unwrap();
    assert_eq!(hsm_workers(), before + 3, "a clone keeps the workers");
    // No worker may outlive the last handle: one still closing its session at process exit
    // crashes in SoftHSM2's static destructors.
    drop(clone);
    // Joined, the workers have finished; the kernel may list an exited thread in
    // /proc/self/task a moment longer (seen once in CI): wait for that, bounded.
    let joined = std::time::Instant::now();
    while hsm_workers() > before && joined.elapsed() < std::time::Duration::from_secs(2) {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(hsm_workers(), before);
}
