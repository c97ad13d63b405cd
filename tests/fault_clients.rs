//! Fault harness (issue 6): slow or abusive clients cannot starve the others.
//!
//! Against a daemon allowed 8 connections with 1 s handshake, header and body timeouts:
//! clients that connect and never start TLS, clients that finish the handshake and send
//! nothing, and a slowloris trickling a request body one byte at a time, together more than
//! the connection limit. A well-behaved client's requests are all answered; latencies are
//! printed, not asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Tls = TlsStream;

/// Reads until the server closes; what it sent. Bounded so a hang fails the test.
async fn until_closed(tls: &mut Tls) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(15), tls.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_and_a_slowloris_do_not_starve_a_good_client() {
    let d = Daemon::start_with(&[
        "--max-connections",
        "8",
        "--handshake-timeout-ms",
        "1000",
        "--header-timeout-ms",
        "1000",
        "--body-timeout-ms",
        "1000",
    ]);
    let started = Instant::now();
    // Two never start TLS: the handshake timeout frees their slots.
    let mut silent_tcp = Vec::new();
    for _ in 0..2 {
        silent_tcp.push(TcpStream::connect(d.addr).await.unwrap());
    }
    // Five finish the handshake and send nothing (HTTP/1.1, HTTP/2 by ALPN, no ALPN).
    let mut idle = Vec::new();
    for alpn in [
        &[b"http/1.1".as_slice()][..],
        &[b"http/1.1".as_slice()][..],
        &[b"h2".as_slice()][..],
        &[b"h2".as_slice()][..],
        &[][..],
    ] {
        idle.push(tokio::spawn({
            let mut tls = d.tls_stream("gateway", alpn).await;
            async move {
                let sent = until_closed(&mut tls).await;
                println!(
                    "idle connection closed by the server after {:?}",
                    started.elapsed()
                );
                sent
            }
        }));
    }
    // A slowloris: headers at once, then the body one byte every 100 ms.
    let slowloris = tokio::spawn({
        let mut tls = d.tls_stream("gateway", &[b"http/1.1"]).await;
        async move {
            let body =
                serde_json::json!({"pan": random_pan("4111", 16), "domain": "slow"}).to_string();
            let head = format!(
                "POST /v1/tokens HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n",
                body.len()
            );
            tls.write_all(head.as_bytes()).await.unwrap();
            for b in body.bytes() {
                if tls.write_all(&[b]).await.is_err() || tls.flush().await.is_err() {
                    break; // closed by the server
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let answer = until_closed(&mut tls).await;
            println!("slowloris closed after {:?}", started.elapsed());
            answer
        }
    });

    // 2 + 5 + 1 = 8 slots taken. The well-behaved client still gets every answer: once a slot
    // frees it is served, and its keep-alive connection is answered at once.
    let mut latencies = Vec::new();
    for round in 0..3 {
        let t = Instant::now();
        let mut gw = d.client("gateway").await;
        let r = tokenize(&mut gw, &random_pan("5100", 16), "good").await;
        assert_eq!(r.status, 201, "round {round}");
        latencies.push(t.elapsed());
        for _ in 0..5 {
            let t = Instant::now();
            assert_eq!(get(&mut gw, "/healthz").await.status, 200);
            latencies.push(t.elapsed());
        }
    }
    println!("well-behaved client latencies (connect included on the first of each round): {latencies:?}");

    // The abusers were all closed by the server: idle ones with nothing sent, the slowloris
    // with 408 before its body was complete (its tokenization never happened).
    for i in idle {
        let sent = i.await.unwrap();
        assert!(!sent.contains("HTTP/1.1 2"), "{sent}");
    }
    let answer = slowloris.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    for mut s in silent_tcp {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(15), s.read(&mut buf)).await;
        assert!(
            matches!(n, Ok(Ok(0)) | Ok(Err(_))),
            "a connection that never started TLS was kept"
        );
    }
}
