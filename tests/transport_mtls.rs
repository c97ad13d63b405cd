//! The mTLS front door: who never reaches HTTP, which protocols are spoken, and how the daemon
//! shuts down.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::{tls_config, Client, ClientOptions};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use std::time::Duration;
use support::*;

/// Tries to tokenize `pan` with this TLS configuration; true if an HTTP answer came back.
async fn reaches_http(d: &Daemon, tls: rustls::ClientConfig, pan: &str) -> bool {
    let url = format!("https://{}", d.addr);
    let Ok(mut c) = Client::connect_with(&url, Arc::new(tls)).await else {
        return false;
    };
    let body = serde_json::json!({"pan": pan, "domain": "door"}).to_string();
    c.request(hyper::Method::POST, "/v1/tokens", Some(body.into_bytes()))
        .await
        .is_ok()
}

fn options_for(d: &Daemon, who: Option<&str>) -> ClientOptions {
    let mut o = d.options(who.unwrap_or("gateway"));
    if who.is_none() {
        o.identity = None;
    }
    o
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_without_a_valid_certificate_never_reach_http() {
    let d = Daemon::start();
    let pan = random_pan("4111", 16);
    // no certificate, another CA, expired, revoked by the CRL
    for who in [None, Some("untrusted"), Some("expired"), Some("revoked")] {
        let tls = tls_config(&options_for(&d, who)).unwrap();
        assert!(!reaches_http(&d, tls, &pan).await, "{who:?} reached HTTP");
    }
    // None of them tokenized anything: the PAN is new to the vault.
    let mut gw = d.client("gateway").await;
    let r = tokenize(&mut gw, &pan, "door").await;
    assert_eq!(r.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_is_refused_even_with_a_good_certificate() {
    let d = Daemon::start();
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(keys().join("ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let chain: Vec<_> = CertificateDer::pem_file_iter(keys().join("clients/gateway.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(keys().join("clients/gateway.key")).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap();
    assert!(!reaches_http(&d, tls, &random_pan("4111", 16)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keep_alive_and_http2_both_serve() {
    let d = Daemon::start();
    let mut h1 = d.client("gateway").await;
    assert!(!h1.negotiated_http2());
    for _ in 0..5 {
        assert_eq!(get(&mut h1, "/healthz").await.status, 200);
    }
    let mut opts = d.options("gateway");
    opts.http2 = true;
    let mut h2 = Client::connect(&opts).await.unwrap();
    assert!(h2.negotiated_http2());
    let r = tokenize(&mut h2, &random_pan("5100", 16), "h2").await;
    assert_eq!(r.status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_limit_are_told_server_busy_and_a_freed_slot_serves_again() {
    let d = Daemon::start_with(&["--max-connections", "2"]);
    let mut a = d.client("gateway").await;
    let mut b = d.client("vault-reader").await;
    assert_eq!(get(&mut a, "/healthz").await.status, 200);
    assert_eq!(get(&mut b, "/healthz").await.status, 200);
    // A third client is answered at once, 503 `server_busy`, rather than left waiting.
    let mut third = d.client("auditor").await;
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        third.request(hyper::Method::GET, "/healthz", None),
    )
    .await
    .expect("the refused connection was left waiting")
    .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(error_code(&r), "server_busy");
    drop(a);
    let mut served = false;
    for _ in 0..50 {
        let mut c = d.client("auditor").await;
        if let Ok(r) = c.request(hyper::Method::GET, "/healthz", None).await {
            if r.status == 200 {
                served = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served, "the freed slot was never given to a new client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_the_request_in_flight_then_exits_cleanly() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut d = Daemon::start();
    let tls = tls_config(&d.options("gateway")).unwrap();
    let tcp = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    let body = serde_json::json!({"pan": random_pan("4111", 16), "domain": "drain"}).to_string();
    let head = format!(
        "POST /v1/tokens HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body.as_bytes()[..10]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = d.pid();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    // New connections are no longer accepted...
    let opts = d.options("gateway");
    let refused = match Client::connect(&opts).await {
        Err(_) => true,
        Ok(mut c) => c
            .request(hyper::Method::GET, "/healthz", None)
            .await
            .is_err(),
    };
    assert!(refused, "a new connection was served after SIGTERM");
    // ...but the request in flight completes.
    tls.write_all(&body.as_bytes()[10..]).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = d.wait_exit();
    assert!(status.success(), "exit status {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_identity_comes_from_the_certificate_uri_san() {
    let d = Daemon::start();
    // The gateway certificate's URI SAN is the principal the audit records carry.
    let mut gw = d.client("gateway").await;
    let r = tokenize(&mut gw, &random_pan("4111", 16), "who").await;
    assert_eq!(r.status, 201);
    let export = audit_export(&d);
    assert!(
        export.contains("\"principal\":\"spiffe://payhsm.dev/gateway\""),
        "{export}"
    );
}
