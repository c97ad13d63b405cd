//! Fault harness (issue 6), durability: a daemon killed with SIGKILL under sustained
//! tokenization load from several connections loses nothing it acknowledged (every token
//! detokenizes to its card through the vault reader after a restart), and no card ends up
//! with two tokens in one domain, whether its request was answered or cut off by the kill.
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

/// PANs the load draws from: some new, some again (convergence under concurrency).
struct Cards {
    /// Every PAN sent, answered or not.
    sent: Vec<String>,
}

impl Cards {
    /// A PAN to tokenize: every third one a PAN sent before, the rest new.
    fn next(&mut self, n: usize) -> String {
        if n % 3 == 2 && !self.sent.is_empty() {
            let i = n.wrapping_mul(7919) % self.sent.len();
            return self.sent[i].clone();
        }
        let pan = random_pan("4111", 16);
        self.sent.push(pan.clone());
        pan
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_sustained_load_loses_no_acknowledged_token() {
    const DOMAIN: &str = "crash";
    let mut d = Daemon::start();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let cards = Arc::new(Mutex::new(Cards { sent: Vec::new() }));
    let mut tasks = Vec::new();
    // Sustained load: 8 connections, each tokenizing back to back until the daemon dies.
    for _ in 0..8 {
        let mut c = d.client("gateway").await;
        let (acked, cards) = (acked.clone(), cards.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let pan = cards.lock().unwrap().next(n);
                let body = serde_json::json!({"pan": pan, "domain": DOMAIN}).to_string();
                match c
                    .request(hyper::Method::POST, "/v1/tokens", Some(body.into_bytes()))
                    .await
                {
                    Ok(r) if r.status == 201 || r.status == 200 => {
                        acked.lock().unwrap().push((pan, token_of(&r)))
                    }
                    Ok(r) => panic!("tokenize answered {} before the kill", r.status),
                    Err(_) => break, // the kill
                }
            }
        }));
    }
    // Kill in the middle of the load, once it has run for a while.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before_kill = acked.lock().unwrap().len();
    d.kill();
    for t in tasks {
        t.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let sent = std::mem::take(&mut cards.lock().unwrap().sent);
    println!(
        "{} tokenizations acknowledged ({before_kill} when the kill was sent), {} distinct cards sent",
        acked.len(),
        sent.len()
    );
    assert!(acked.len() > 50, "only {} before the kill", acked.len());
    // Convergence held under load: one card, one token, across connections.
    let mut by_pan = std::collections::HashMap::new();
    for (pan, token) in &acked {
        let first = by_pan.entry(pan.clone()).or_insert_with(|| token.clone());
        assert_eq!(first, token, "a card got two tokens under load");
    }

    d.restart();
    let mut reader = d.client("vault-reader").await;
    let mut gw = d.client("gateway").await;
    // Every acknowledged token detokenizes to its card (the vault reader's call).
    for (pan, token) in &acked {
        let r = detokenize(&mut reader, token, DOMAIN).await;
        assert_eq!(r.status, 200, "acknowledged token {token} lost");
        assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    }
    // Every card sent, answered or cut off by the kill, has one token: tokenizing it again
    // finds the acknowledged one, and afterwards the store holds one row per card.
    for pan in &sent {
        let r = tokenize(&mut gw, pan, DOMAIN).await;
        assert!([200, 201].contains(&r.status), "{}", r.status);
        if let Some(token) = by_pan.get(pan) {
            assert_eq!(
                (r.status, &token_of(&r)),
                (200, token),
                "a card got two tokens"
            );
        }
    }
    let db = rusqlite::Connection::open_with_flags(
        d.data_dir.join("payhsm.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let (rows, fingerprints): (usize, usize) = db
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT fingerprint) FROM tokens WHERE domain = ?1",
            [DOMAIN],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, fingerprints), (sent.len(), sent.len()));
    drop(db);

    // The audit chain survived the kill too.
    let (ok, msg) = audit_verify(&d, "after-kill.jsonl", &audit_export(&d));
    assert!(ok, "{msg}");
}
