//! Faults of a replicated vault: a replica killed under load while its clients move to the
//! other, and PostgreSQL stopped under load. Bounded in count and time; loopback only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use payhsm::client::Client;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use support::postgres::PgCluster;
use support::*;

const DOMAIN: &str = "shop";

/// A request with an upper bound on its time: a hang fails the test instead of stalling it.
async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(15), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer in 15 s"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_replica_killed_under_load_loses_no_acknowledged_token_and_splits_no_pan() {
    let url = postgres::fresh_database();
    let mut a = Daemon::start_with(&["--postgres", &url]);
    let b = a.replica(&["--postgres", &url]);
    // 400 distinct PANs: a chance repeat would read as one PAN acknowledged twice.
    let mut seen = std::collections::HashSet::new();
    let pans: Vec<String> = std::iter::repeat_with(|| random_pan("411111", 16))
        .filter(|p| seen.insert(p.clone()))
        .take(400)
        .collect();
    let acked_on_a = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));

    // Four clients tokenize on A; when A fails a request they retry that PAN on B.
    let mut tasks = Vec::new();
    for chunk in pans.chunks(100) {
        let chunk = chunk.to_vec();
        let counter = std::sync::Arc::clone(&acked_on_a);
        let mut on_a = Some(a.client("gateway").await);
        let b_opts = b.options("gateway");
        tasks.push(tokio::spawn(async move {
            let mut on_b: Option<Client> = None;
            let mut acked = Vec::new();
            for pan in chunk {
                if let Some(c) = on_a.as_mut() {
                    match tokio::time::timeout(
                        Duration::from_secs(5),
                        c.request(
                            hyper::Method::POST,
                            "/v1/tokens",
                            Some(
                                serde_json::json!({"pan": pan, "domain": DOMAIN})
                                    .to_string()
                                    .into_bytes(),
                            ),
                        ),
                    )
                    .await
                    {
                        Ok(Ok(r)) if matches!(r.status, 200 | 201) => {
                            acked.push((pan, token_of(&r), false));
                            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            continue;
                        }
                        // A died (connection error, no answer) or answered an error: move on.
                        _ => on_a = None,
                    }
                }
                let c = match on_b.as_mut() {
                    Some(c) => c,
                    None => on_b.insert(Client::connect(&b_opts).await.unwrap()),
                };
                let r = tokenize(c, &pan, DOMAIN).await;
                assert!(matches!(r.status, 200 | 201), "{:?}", r.json());
                acked.push((pan, token_of(&r), true));
            }
            acked
        }));
    }
    // Let the load run, then kill A mid-flight (after 60 of its answers, a bounded wait).
    let started = Instant::now();
    while acked_on_a.load(std::sync::atomic::Ordering::Relaxed) < 60 {
        assert!(started.elapsed() < Duration::from_secs(30), "no load on A");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    a.kill();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(bounded("load", t).await.unwrap());
    }
    assert_eq!(acked.len(), pans.len());
    let moved = acked.iter().filter(|(_, _, on_b)| *on_b).count();
    assert!(moved > 0, "A finished before it was killed");

    // Every acknowledged token opens to its PAN on B, and each PAN has exactly that token:
    // tokenizing it again finds it.
    let mut reader = b.client("vault-reader").await;
    let mut gw = b.client("gateway").await;
    let mut tokens: HashMap<String, (String, bool)> = HashMap::new();
    for (pan, token, moved) in &acked {
        let r = detokenize(&mut reader, token, DOMAIN).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        assert_eq!(r.json().unwrap()["pan"], pan.as_str());
        let again = tokenize(&mut gw, pan, DOMAIN).await;
        assert_eq!((again.status, token_of(&again)), (200, token.clone()));
        if let Some((other, other_moved)) = tokens.insert(token.clone(), (pan.clone(), *moved)) {
            panic!(
                "token {token} acknowledged twice: for a PAN ending {} (on B: {moved}) and one \
                 ending {} (on B: {other_moved})",
                &pan[pan.len() - 4..],
                &other[other.len() - 4..]
            );
        }
    }
    // A, restarted, joins again and sees the same vault.
    a.restart();
    let mut reader_a = a.client("vault-reader").await;
    let (pan, token, _) = &acked[0];
    let r = detokenize(&mut reader_a, token, DOMAIN).await;
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_fails_fast_and_service_resumes_by_itself() {
    let pg = PgCluster::start();
    let url = pg.create_database("vault");
    let d = Daemon::start_with(&["--postgres", &url]);
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let pan = random_pan("411111", 16);
    let token = token_of(&tokenize(&mut gw, &pan, DOMAIN).await);

    pg.stop();
    // Writes and reads answer 503 store_unavailable, each well within its bound (no hang),
    // and readiness says the store is down.
    let mut failed_ids = Vec::new();
    for i in 0..5 {
        let r = bounded(
            "tokenize",
            tokenize(&mut gw, &random_pan("422222", 16), DOMAIN),
        )
        .await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (503, "store_unavailable"),
            "tokenize {i}"
        );
        failed_ids.push(r.headers["x-request-id"].to_str().unwrap().to_owned());
        let r = bounded("detokenize", detokenize(&mut reader, &token, DOMAIN)).await;
        assert_eq!(r.status, 503, "detokenize {i}");
    }
    let mut monitor = d.client("monitoring").await;
    let ready = bounded("readyz", get(&mut monitor, "/readyz")).await;
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json().unwrap()["checks"]["store"],
        "store_unavailable"
    );

    pg.start_again();
    // Service resumes without restarting the daemon.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = bounded("readyz", get(&mut monitor, "/readyz")).await;
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {:?}", r.json());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let r = detokenize(&mut reader, &token, DOMAIN).await;
    assert_eq!(r.json().unwrap()["pan"], pan.as_str());
    let r = tokenize(&mut gw, &random_pan("433333", 16), DOMAIN).await;
    assert_eq!(r.status, 201, "{:?}", r.json());
    // Each 503 was logged once at the edge: its request id, its route, and its cause's
    // chain, which names the driver.
    let logs = d.logs();
    let mut causes = String::new();
    for id in &failed_ids {
        let logged: Vec<&str> = logs
            .lines()
            .filter(|l| l.contains(id.as_str()) && l.contains("request failed"))
            .collect();
        assert_eq!(logged.len(), 1, "{id}: {logged:?}");
        for part in ["tokenize", "store_unavailable", "store unavailable: "] {
            assert!(logged[0].contains(part), "{part:?} not in {logged:?}");
        }
        causes.push_str(logged[0]);
    }
    assert!(causes.contains("postgres"), "{causes}");
}
