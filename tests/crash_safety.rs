//! Durability: a daemon killed with SIGKILL during a burst of tokenizations loses nothing it
//! acknowledged, and no PAN ends up with two tokens in one domain.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_burst_loses_no_acknowledged_token() {
    let mut d = Daemon::start();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let mut c = d.client("gateway").await;
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let pan = random_pan("4111", 16);
                let body = serde_json::json!({"pan": pan, "domain": "crash"}).to_string();
                match c
                    .request(hyper::Method::POST, "/v1/tokens", Some(body.into_bytes()))
                    .await
                {
                    Ok(r) if r.status == 201 => acked.lock().unwrap().push((pan, token_of(&r))),
                    _ => break,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    d.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        acked.len() > 50,
        "only {} tokenizations before the kill",
        acked.len()
    );

    d.restart();
    let mut reader = d.client("vault-reader").await;
    let mut gw = d.client("gateway").await;
    for (pan, token) in &acked {
        let r = detokenize(&mut reader, token, "crash").await;
        assert_eq!(r.status, 200, "acknowledged token {token} lost");
        assert_eq!(r.json().unwrap()["pan"], pan.as_str());
        let r = tokenize(&mut gw, pan, "crash").await;
        assert_eq!(
            (r.status, token_of(&r)),
            (200, token.clone()),
            "a PAN got two tokens"
        );
    }
    // The audit chain survived the kill too.
    let export = audit_export(&d);
    let path = d.data_dir.parent().unwrap().join("after-kill.jsonl");
    std::fs::write(&path, export).unwrap();
    let out = payhsm(&["audit", "verify", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
