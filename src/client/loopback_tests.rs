//! The client against an in-process rustls + hyper server on loopback (not the daemon): both
//! HTTP versions, the headers it sets, and TLS refusals reported as `ClientError::Tls`.

use super::*;
use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use tokio::net::TcpListener;

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/client/testdata")
        .join(name)
}

/// Serves every request with a JSON echo of what arrived; requires a client certificate.
async fn echo_server() -> u16 {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(testdata("test-ca.pem")).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let chain = CertificateDer::pem_file_iter(testdata("test-server.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(testdata("test-server.key")).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(echo);
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    port
}

async fn echo(
    req: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, std::convert::Infallible> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut seen = serde_json::json!({
        "method": req.method().as_str(),
        "uri": req.uri().to_string(),
        "version": format!("{:?}", req.version()),
        "host": header("host"),
        "content_type": header("content-type"),
    });
    let body = req.into_body().collect().await.unwrap().to_bytes();
    seen["body"] = serde_json::Value::String(String::from_utf8_lossy(&body).into_owned());
    Ok(hyper::Response::new(Full::new(Bytes::from(
        seen.to_string(),
    ))))
}

fn options(port: u16, http2: bool, with_client_cert: bool) -> ClientOptions {
    ClientOptions {
        url: format!("https://localhost:{port}"),
        ca: testdata("test-ca.pem"),
        identity: with_client_cert.then(|| ClientIdentity {
            cert: testdata("test-client.pem"),
            key: testdata("test-client.key"),
        }),
        http2,
    }
}

#[tokio::test]
async fn http1_requests_reuse_one_connection_and_set_host_and_content_type() {
    let port = echo_server().await;
    let mut client = Client::connect(&options(port, false, true)).await.unwrap();
    assert!(!client.negotiated_http2());
    for _ in 0..3 {
        let r = client
            .request(Method::POST, "/v1/tokens?x=1", Some(br#"{"a":1}"#.to_vec()))
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let seen = r.json().unwrap();
        assert_eq!(seen["version"], "HTTP/1.1");
        assert_eq!(seen["uri"], "/v1/tokens?x=1");
        assert_eq!(seen["host"], format!("localhost:{port}"));
        assert_eq!(seen["content_type"], "application/json");
        assert_eq!(seen["body"], r#"{"a":1}"#);
    }
    let seen = client
        .request(Method::GET, "/healthz", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(seen["content_type"], serde_json::Value::Null);
}

#[tokio::test]
async fn http2_requests_carry_the_authority() {
    let port = echo_server().await;
    let mut client = Client::connect(&options(port, true, true)).await.unwrap();
    assert!(client.negotiated_http2());
    for _ in 0..3 {
        let r = client
            .request(Method::DELETE, "/v1/tokens/1?domain=d", None)
            .await
            .unwrap();
        let seen = r.json().unwrap();
        assert_eq!(seen["version"], "HTTP/2.0");
        assert_eq!(seen["method"], "DELETE");
        assert_eq!(
            seen["uri"],
            format!("https://localhost:{port}/v1/tokens/1?domain=d")
        );
    }
}

#[tokio::test]
async fn missing_client_certificate_is_a_tls_error_on_both_http_versions() {
    let port = echo_server().await;
    for http2 in [false, true] {
        // TLS 1.3: the handshake completes on the client side; the refusal comes as an alert.
        let mut client = Client::connect(&options(port, http2, false)).await.unwrap();
        let err = client
            .request(Method::GET, "/healthz", None)
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Tls(_)), "http2={http2}: {err}");
    }
}

#[tokio::test]
async fn server_outside_the_trusted_ca_is_a_tls_error_at_connect() {
    let port = echo_server().await;
    let mut opts = options(port, false, true);
    // Another certificate as the only anchor: the server's real issuer is not trusted.
    opts.ca = testdata("test-client.pem");
    let err = Client::connect(&opts).await.unwrap_err();
    assert!(matches!(err, ClientError::Tls(_)), "{err}");
}

#[tokio::test]
async fn closed_port_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let mut opts = options(port, false, true);
    opts.url = format!("https://127.0.0.1:{port}");
    let err = Client::connect(&opts).await.unwrap_err();
    assert!(matches!(err, ClientError::Connect(_)), "{err}");
}
