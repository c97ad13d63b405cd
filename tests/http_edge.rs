//! The HTTP edge as a careless or hostile client meets it (issue 16, finding 7): every error,
//! also those written before a request reaches a route, carries the documented JSON body;
//! request bodies are read only as the plain UTF-8 JSON they claim to be; headers that must be
//! single are; a ClientHello cannot write to the log; `/metrics` is behind the policy; a
//! malformed device id is a malformed request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use std::time::Duration;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `raw` bytes on a new HTTP/1.1 TLS connection as `who`; everything the server
/// answers until it closes or goes quiet (bounded).
async fn exchange(d: &Daemon, who: &str, raw: &[u8]) -> String {
    let mut tls = d.tls_stream(who, &[b"http/1.1"]).await;
    // The server may close before reading all of it (a 431, a 414): that is its answer.
    let _ = tls.write_all(raw).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), tls.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The status and the JSON error code of the first response in `answer`.
fn status_and_code(answer: &str) -> (u16, String) {
    let status = answer
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP/1.1 response: {answer:?}"));
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let code = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no JSON error body: {answer:?}"));
    (status, code)
}

fn post_tokens(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "POST /v1/tokens HTTP/1.1\r\nhost: localhost\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_read_only_as_the_plain_utf8_json_they_claim_to_be() {
    let d = Daemon::start();
    let body = serde_json::json!({"pan": random_pan("4111", 16), "domain": "shop"}).to_string();
    let json = "content-type: application/json\r\n";
    for (headers, want) in [
        (
            format!("{json}content-encoding: gzip\r\n"),
            (415, "unsupported_content_encoding"),
        ),
        (
            format!("{json}content-type: application/json\r\n"),
            (400, "malformed_request"),
        ),
        (
            "content-type: application/json; charset=iso-8859-1\r\n".to_owned(),
            (415, "unsupported_media_type"),
        ),
    ] {
        let answer = exchange(&d, "gateway", &post_tokens(&headers, body.as_bytes())).await;
        let (status, code) = status_and_code(&answer);
        assert_eq!((status, code.as_str()), want, "{headers:?}");
    }
    // Nothing was tokenized by the refused requests; the same body, plainly sent, is new.
    let answer = exchange(&d, "gateway", &post_tokens(json, body.as_bytes())).await;
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_written_before_a_route_is_reached_carry_the_json_error_body() {
    let d = Daemon::start_with(&["--header-timeout-ms", "1000"]);
    let long_uri = format!(
        "GET /{} HTTP/1.1\r\nhost: localhost\r\n\r\n",
        "a".repeat(70_000)
    );
    let big_headers = format!(
        "GET /healthz HTTP/1.1\r\nhost: localhost\r\n{}\r\n",
        (0..200)
            .map(|i| format!("x-filler-{i}: {}\r\n", "b".repeat(900)))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("bad request line", b"GET\r\n\r\n".to_vec(), 400),
        (
            "bad header",
            b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n".to_vec(),
            400,
        ),
        ("URI too long", long_uri.into_bytes(), 414),
        ("headers too large", big_headers.into_bytes(), 431),
        (
            "headers never finished",
            b"GET /healthz HTTP/1.1\r\nhost: x\r\n".to_vec(),
            408,
        ),
        (
            "body over the limit",
            post_tokens("content-type: application/json\r\n", &vec![b' '; 20_000]),
            413,
        ),
    ];
    for (what, raw, want) in cases {
        println!("{what}");
        let answer = exchange(&d, "gateway", &raw).await;
        let (status, code) = status_and_code(&answer);
        assert_eq!(status, want, "{what}: {answer}");
        assert!(!code.is_empty(), "{what}");
        assert!(
            answer
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {answer}"
        );
    }
    // HEAD has no body by definition (RFC 9110 §9.3.2): its error travels in a header.
    let answer = exchange(
        &d,
        "gateway",
        b"HEAD /v1/tokens HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-error-code: method_not_allowed"),
        "{answer}"
    );
}

/// A TLS 1.3 ClientHello offering TLS_AES_128_GCM_SHA256 whose server_name extension holds
/// `name` as a host_name (RFC 6066 §3 forbids an IP address there).
fn client_hello_with_server_name(name: &str) -> Vec<u8> {
    let u16be = |n: usize| u16::try_from(n).unwrap().to_be_bytes();
    let mut sni = vec![0u8]; // host_name
    sni.extend_from_slice(&u16be(name.len()));
    sni.extend_from_slice(name.as_bytes());
    let mut list = u16be(sni.len()).to_vec();
    list.extend_from_slice(&sni);
    let mut extensions = vec![0, 0]; // server_name
    extensions.extend_from_slice(&u16be(list.len()));
    extensions.extend_from_slice(&list);
    // supported_versions: TLS 1.3
    extensions.extend_from_slice(&[0, 0x2b, 0, 3, 2, 3, 4]);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // legacy session id
    body.extend_from_slice(&[0, 2, 0x13, 0x01]); // cipher suites
    body.extend_from_slice(&[1, 0]); // compression: null
    body.extend_from_slice(&u16be(extensions.len()));
    body.extend_from_slice(&extensions);
    let mut handshake = vec![1, 0];
    handshake.extend_from_slice(&u16be(body.len()));
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 3, 1];
    record.extend_from_slice(&u16be(handshake.len()));
    record.extend_from_slice(&handshake);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hellos_naming_an_ip_address_write_nothing_to_the_log() {
    let d = Daemon::start();
    let before = d.logs().lines().count();
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(d.addr).await.unwrap();
        tcp.write_all(&client_hello_with_server_name("127.0.0.1"))
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    }
    // A request afterwards proves the daemon read them all (and is still serving).
    let mut gw = d.client("gateway").await;
    assert_eq!(get(&mut gw, "/healthz").await.status, 200);
    let logs = d.logs();
    let added: Vec<&str> = logs.lines().skip(before).collect();
    assert!(
        !added
            .iter()
            .any(|l| l.contains("SNI") || l.contains("127.0.0.1")),
        "pre-authentication input reached the log: {added:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_monitoring_identity_reads_the_metrics() {
    let d = Daemon::start();
    for who in ["gateway", "vault-reader", "auditor", "custodian-1"] {
        let mut c = d.client(who).await;
        let r = get(&mut c, "/metrics").await;
        assert_eq!(
            (r.status, error_code(&r).as_str()),
            (403, "forbidden"),
            "{who}"
        );
        assert!(!String::from_utf8_lossy(&r.body).contains("payhsm_requests_total"));
    }
    let mut scraper = d.client("monitoring").await;
    let r = get(&mut scraper, "/metrics").await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("payhsm_requests_total"));
    // The scraper reads nothing else.
    assert_eq!(get(&mut scraper, "/v1/keys").await.status, 403);
    // Liveness, readiness and the JWKS stay open to every client that passed mTLS.
    for path in ["/healthz", "/readyz", "/v1/keys/jwks"] {
        let mut gw = d.client("gateway").await;
        assert_eq!(get(&mut gw, path).await.status, 200, "{path}");
    }
}
