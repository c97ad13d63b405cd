//! An mTLS client for API v1: one kept-alive HTTP/1.1 or HTTP/2 connection to the daemon.
//!
//! Used by the `payhsm` CLI, the integration tests and the load generator. [`tls_config`] builds
//! the rustls configuration from PEM files; [`Client::connect_with`] takes any configuration,
//! so tests can try what the daemon must refuse (TLS 1.2, no client certificate, ...).
//!
//! A TLS 1.3 client finishes its handshake before the server has checked the client
//! certificate, so a refusal may only show on the first request: [`Client::request`] reports
//! a TLS alert received there as [`ClientError::Tls`] too.

mod tls;
mod tls_watch;
mod url;

pub use tls::tls_config;
pub use url::{BaseUrl, Host, UrlError};

use crate::api::SecretBuf;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::{http1, http2};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::error::Error as StdError;
use std::path::PathBuf;
use std::sync::Arc;
use std::{fmt, io};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

/// Responses larger than this are refused: a hostile or broken server cannot exhaust memory.
const MAX_RESPONSE_BODY: usize = 16 * 1024 * 1024;

/// A client certificate and its private key, both PEM files.
#[derive(Debug, Clone)]
pub struct ClientIdentity {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Base URL, `https://host:port`.
    pub url: String,
    /// The CA certificate(s) the server must chain to; nothing else is trusted.
    pub ca: PathBuf,
    /// The client certificate to present; `None` presents none.
    pub identity: Option<ClientIdentity>,
    /// Offer HTTP/2 (ALPN `h2`) instead of HTTP/1.1.
    pub http2: bool,
}

/// Why a client call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientError {
    /// Bad options: the URL, a PEM file, the TLS configuration, a request path.
    Config(String),
    /// The TCP connection could not be made.
    Connect(io::Error),
    /// The TLS handshake failed or the peer sent a TLS alert (for example, TLS 1.3 refusal of
    /// the client certificate, seen on the first request).
    Tls(io::Error),
    /// An HTTP protocol or connection error after the handshake.
    Http(String),
    /// A response body that is not JSON.
    Json(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration: {m}"),
            Self::Connect(e) => write!(f, "connect: {e}"),
            Self::Tls(e) => write!(f, "TLS: {e}"),
            Self::Http(m) => write!(f, "HTTP: {m}"),
            Self::Json(m) => write!(f, "JSON: {m}"),
        }
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Connect(e) | Self::Tls(e) => Some(e),
            _ => None,
        }
    }
}

/// A complete HTTP response.
///
/// `Debug` shows the status and body length only: a detokenize body holds a PAN.
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Response headers.
    pub headers: HeaderMap,
    /// The whole body.
    pub body: Vec<u8>,
}

impl Response {
    /// The body parsed as JSON.
    pub fn json(&self) -> Result<serde_json::Value, ClientError> {
        serde_json::from_slice(&self.body).map_err(|e| ClientError::Json(e.to_string()))
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

enum Sender {
    Http1(http1::SendRequest<Full<SecretBuf>>),
    Http2(http2::SendRequest<Full<SecretBuf>>),
}

/// One kept-alive connection to the daemon, HTTP/1.1 or HTTP/2 as ALPN decided.
///
/// Requests are sent one at a time (`&mut self`); open several clients for concurrency.
pub struct Client {
    sender: Sender,
    authority: String,
    connection: JoinHandle<Result<(), hyper::Error>>,
    tls_error: tls_watch::TlsErrorSlot,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("authority", &self.authority)
            .field("http2", &self.negotiated_http2())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects with [`tls_config`]`(opts)`.
    pub async fn connect(opts: &ClientOptions) -> Result<Client, ClientError> {
        let tls = tls_config(opts)?;
        Self::connect_with(&opts.url, Arc::new(tls)).await
    }

    /// Connects to `url` (`https://host:port`) with any TLS configuration.
    ///
    /// HTTP/2 is used when the server selected ALPN `h2`, HTTP/1.1 otherwise. A failed TCP
    /// connect is [`ClientError::Connect`]; a failed TLS handshake is [`ClientError::Tls`].
    pub async fn connect_with(
        url: &str,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Client, ClientError> {
        let base =
            BaseUrl::parse(url).map_err(|e| ClientError::Config(format!("URL {url:?}: {e}")))?;
        let server_name = ServerName::try_from(base.host_str())
            .map_err(|e| ClientError::Config(format!("server name: {e}")))?;

        let tcp = TcpStream::connect((base.host_str(), base.port))
            .await
            .map_err(ClientError::Connect)?;
        tcp.set_nodelay(true).map_err(ClientError::Connect)?;

        let tls_stream = TlsConnector::from(tls)
            .connect(server_name, tcp)
            .await
            .map_err(ClientError::Tls)?;
        let http2 = tls_stream.get_ref().1.alpn_protocol() == Some(tls::ALPN_H2);
        let tls_error = tls_watch::TlsErrorSlot::default();
        let io = TokioIo::new(tls_watch::Watched::new(tls_stream, tls_error.clone()));

        let (sender, connection) = if http2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| classify(&e))?;
            (Sender::Http2(sender), tokio::spawn(conn))
        } else {
            let (sender, conn) = http1::handshake(io).await.map_err(|e| classify(&e))?;
            (Sender::Http1(sender), tokio::spawn(conn))
        };
        Ok(Client {
            sender,
            authority: base.authority(),
            connection,
            tls_error,
        })
    }

    /// True when the connection speaks HTTP/2.
    pub fn negotiated_http2(&self) -> bool {
        matches!(self.sender, Sender::Http2(_))
    }

    /// Sends one request and reads the whole response.
    ///
    /// `path_and_query` starts with `/`. Sets the host (HTTP/1.1 `Host`, HTTP/2 `:authority`)
    /// and, when there is a body, `content-type: application/json`. Any status is `Ok`; only
    /// transport failures are errors.
    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        self.request_with_headers(method, path_and_query, body, &[])
            .await
    }

    /// [`Client::request`] with extra request headers (such as `Idempotency-Key`).
    pub async fn request_with_headers(
        &mut self,
        method: Method,
        path_and_query: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<Response, ClientError> {
        let has_body = body.is_some();
        // A request body may carry a PAN (tokenize): it is wiped when hyper drops it, or here
        // on any early return.
        let body = Full::new(SecretBuf::new(zeroize::Zeroizing::new(
            body.unwrap_or_default(),
        )));
        if !path_and_query.starts_with('/') {
            return Err(ClientError::Config(format!(
                "request path {path_and_query:?} must start with /"
            )));
        }
        let mut builder = Request::builder().method(method);
        builder = match self.sender {
            // HTTP/2 needs scheme and authority in the URI; hyper turns them into pseudo-headers.
            Sender::Http2(_) => builder.uri(format!("https://{}{path_and_query}", self.authority)),
            Sender::Http1(_) => builder
                .uri(path_and_query)
                .header(HOST, self.authority.as_str()),
        };
        if has_body {
            builder = builder.header(CONTENT_TYPE, "application/json");
        }
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder
            .body(body)
            .map_err(|e| ClientError::Config(format!("request: {e}")))?;

        let sent = match &mut self.sender {
            Sender::Http1(s) => match s.ready().await {
                Ok(()) => s.send_request(request).await,
                Err(e) => Err(e),
            },
            Sender::Http2(s) => match s.ready().await {
                Ok(()) => s.send_request(request).await,
                Err(e) => Err(e),
            },
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) => return Err(self.explain(Failure::of(&e))),
        };

        let (parts, incoming) = response.into_parts();
        let body = match Limited::new(incoming, MAX_RESPONSE_BODY).collect().await {
            Ok(collected) => collected.to_bytes().to_vec(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(ClientError::Http(format!(
                    "response body larger than {MAX_RESPONSE_BODY} bytes"
                )))
            }
            Err(e) => return Err(self.explain(Failure::of(e.as_ref()))),
        };
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body,
        })
    }

    /// Turns a request failure into a [`ClientError`]: [`ClientError::Tls`] when the failure or
    /// the connection carried a TLS error (HTTP/2 keeps only its text), else [`ClientError::Http`].
    fn explain(&self, failure: Failure) -> ClientError {
        match failure.tls.or_else(|| self.tls_error.get()) {
            Some(tls) => ClientError::Tls(tls),
            None => ClientError::Http(failure.text),
        }
    }
}

/// What a failed request reported, taken out of the (not `Send`) error.
struct Failure {
    tls: Option<io::Error>,
    text: String,
}

impl Failure {
    fn of(err: &(dyn StdError + 'static)) -> Self {
        Self {
            tls: tls_cause(err),
            text: chain(err),
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.connection.abort();
    }
}

/// The rustls error somewhere in `err`'s source chain, as the `io::Error` tokio-rustls makes.
fn classify(err: &hyper::Error) -> ClientError {
    match tls_cause(err) {
        Some(tls) => ClientError::Tls(tls),
        None => ClientError::Http(chain(err)),
    }
}

fn tls_cause(err: &(dyn StdError + 'static)) -> Option<io::Error> {
    let mut current = Some(err);
    while let Some(e) = current {
        // io::Error::source() skips its own payload, so look inside it explicitly.
        let inner = e
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref)
            .map(|inner| inner as &(dyn StdError + 'static));
        for candidate in [Some(e), inner].into_iter().flatten() {
            if let Some(tls) = candidate.downcast_ref::<rustls::Error>() {
                return Some(io::Error::new(io::ErrorKind::InvalidData, tls.clone()));
            }
        }
        current = e.source();
    }
    None
}

/// `err: cause: cause...`, skipping a cause whose text repeats the previous one.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut current = err.source();
    while let Some(e) = current {
        let text = e.to_string();
        if text != last {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        current = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_rustls_alert_inside_an_io_error() {
        let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
        let io_err = io::Error::new(io::ErrorKind::InvalidData, alert);
        let found = tls_cause(&io_err).map(|e| e.to_string());
        assert_eq!(
            found.as_deref(),
            Some("received fatal alert: CertificateRequired")
        );
    }

    #[test]
    fn plain_io_errors_are_not_tls_errors() {
        let io_err = io::Error::new(io::ErrorKind::ConnectionReset, "reset");
        assert!(tls_cause(&io_err).is_none());
    }

    #[test]
    fn response_debug_does_not_show_the_body() {
        let r = Response {
            status: 200,
            headers: HeaderMap::new(),
            body: br#"{"pan":"4111111111111111"}"#.to_vec(),
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("4111"), "{shown}");
        assert!(shown.contains("body_len"));
    }

    #[test]
    fn client_and_its_request_future_are_send() {
        fn assert_send<T: Send>(_: &T) {}
        fn check(c: &mut Client) {
            assert_send(&c.request(Method::GET, "/healthz", None));
        }
        let _ = check;
        let _ = assert_send::<Client>;
    }

    #[tokio::test]
    async fn bad_url_is_a_config_error() {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let err = Client::connect_with("http://127.0.0.1:1", Arc::new(tls))
            .await
            .unwrap_err();
        assert!(matches!(err, ClientError::Config(_)), "{err}");
    }
}

#[cfg(test)]
mod loopback_tests;
