//! The accept loop (after mini-redis `server.rs::run`). Each accepted connection takes a
//! handshake slot (a small budget of its own, capped per source address, so unauthenticated
//! sockets never hold the slots of authenticated clients), does its TLS handshake under a
//! deadline, takes the caller's identity from its certificate (checked again when the session
//! was resumed), trades the handshake slot for an established one (capped in total, per
//! identity and per address; see [`super::budget`]) and is served by hyper (HTTP/1.1
//! keep-alive or HTTP/2). A response the client does not read for the write timeout ends its
//! connection ([`super::watchdog`]). On shutdown the loop stops accepting and in-flight
//! requests drain, within a deadline.

use super::budget::{Budgets, Caps, HandshakeSlot, Refusal};
use super::identity::principal_from_certificate;
use super::tls::ServerTls;
use super::watchdog::{Activity, Ended, Watched};
use crate::api::{ApiError, App};
use crate::policy::Principal;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use rustls::pki_types::UnixTime;
use rustls::server::danger::ClientCertVerifier;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Bounds on what one server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Established (authenticated) connections at most; a client past it gets 503
    /// `server_busy` and its connection is closed.
    pub max_connections: usize,
    /// Established connections of one client identity at most; past it, 429
    /// `too_many_connections`.
    pub max_connections_per_identity: usize,
    /// Established connections from one source address at most; past it, 429
    /// `too_many_connections`.
    pub max_connections_per_address: usize,
    /// Connections still in their TLS handshake at most (the unauthenticated budget,
    /// apart from `max_connections`); past it new sockets are closed at once.
    pub max_handshakes: usize,
    /// Connections in their TLS handshake from one source address at most.
    pub max_handshakes_per_address: usize,
    /// Time a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1.1), counted from the end of the
    /// TLS handshake or of the previous response; a connection of either protocol with no
    /// request in flight for this long is closed.
    pub header_timeout: Duration,
    /// Time a response (or any write to the socket) may go without progress before its
    /// connection is dropped: a client that does not read cannot hold its slot.
    pub write_timeout: Duration,
    /// Time a client has to send a whole request body. Enforced by the API layer: give it to
    /// [`App::body_timeout`](crate::api::App::body_timeout).
    pub body_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown (and the longest a connection's
    /// graceful close may take).
    pub drain_timeout: Duration,
    /// The largest request body accepted. Enforced by the API layer: give it to
    /// [`App::max_body_bytes`](crate::api::App::max_body_bytes).
    pub max_body_bytes: usize,
    /// The largest request body of the batch routes (`/v1/tokens/batch`,
    /// `/v1/tokens/detokenize/batch`): a full batch is larger than any single request.
    /// Enforced by the API layer: give it to
    /// [`App::max_batch_body_bytes`](crate::api::App::max_batch_body_bytes).
    pub max_batch_body_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_connections_per_identity: 1024,
            max_connections_per_address: 1024,
            max_handshakes: 512,
            max_handshakes_per_address: 128,
            handshake_timeout: Duration::from_secs(5),
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(15),
            body_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_body_bytes: 16 * 1024,
            // 500 items of ~70 bytes (a 19-digit PAN, its expiry, pretty-printed) fit twice.
            max_batch_body_bytes: 128 * 1024,
        }
    }
}

impl ServerLimits {
    fn caps(&self) -> Caps {
        Caps {
            connections: self.max_connections,
            per_identity: self.max_connections_per_identity,
            per_address: self.max_connections_per_address,
            handshakes: self.max_handshakes,
            handshakes_per_address: self.max_handshakes_per_address,
            // Twice what the daemon holds authenticated: file descriptors are cheap next to a
            // reconnect storm (see `Budgets::park`); the open-file limit is raised at start.
            parked: self.max_connections.saturating_mul(2),
        }
    }
}

/// Pause after a failed `accept` (for instance out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Concurrent HTTP/2 streams per connection.
const H2_MAX_STREAMS: u32 = 64;

/// The largest request header block accepted over HTTP/2 (bytes).
const H2_MAX_HEADER_LIST: u32 = 16 * 1024;

/// Serves the API on `listener` until `shutdown` completes, then drains open connections for
/// at most `limits.drain_timeout` and returns.
pub async fn run(
    listener: TcpListener,
    tls: ServerTls,
    app: Arc<App>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        acceptor: TlsAcceptor::from(tls.config),
        verifier: tls.verifier,
        http: http_builder(),
        budgets: Budgets::new(limits.caps()),
        app,
        limits: limits.clone(),
    });
    // hyper-util's `GracefulShutdown` is behind a feature this crate does not enable; a watch
    // channel does the same: every connection is told, finishes its in-flight requests and
    // closes.
    let (draining, drain_signal) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Refused before the handshake: parked unread until the handshake deadline while
        // there is room (so a flood cannot turn into a reconnect storm), else closed at once.
        let slot = match shared.budgets.handshake(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                shared.app.metrics.record_refused(refusal.as_str());
                tracing::trace!(%peer, reason = refusal.as_str(), "connection refused");
                if let Some(parked) = shared.budgets.park() {
                    tasks.spawn(hold_unread(tcp, limits.handshake_timeout, parked));
                }
                continue;
            }
        };
        let conn = Connection {
            shared: shared.clone(),
            drain: drain_signal.clone(),
        };
        tasks.spawn(async move {
            conn.serve(tcp, peer, slot).await;
            tracing::trace!(%peer, "connection closed");
        });
        while tasks.try_join_next().is_some() {}
    }

    drop(listener);
    tracing::info!(open = tasks.len(), "draining connections");
    // Receivers may all be gone already; then there is nothing to tell.
    let _ = draining.send(true);
    let drained = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(limits.drain_timeout, drained)
        .await
        .is_err()
    {
        tracing::warn!("drain deadline passed; closing remaining connections");
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// Holds a refused socket without answering until `deadline` or until its client closes it;
/// what it sends is discarded.
async fn hold_unread(mut tcp: TcpStream, deadline: Duration, _parked: super::budget::ParkSlot) {
    use tokio::io::AsyncReadExt;
    let mut sink = [0u8; 512];
    let _ = tokio::time::timeout(deadline, async {
        while let Ok(n) = tcp.read(&mut sink).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

/// A connection's activity and its I/O watched by it (HTTP/2 when ALPN chose `h2`).
fn watched(tls: Tls) -> (Arc<Activity>, TokioIo<Watched<Tls>>) {
    let activity = Arc::new(Activity::new());
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        activity.set_http2();
    }
    let io = TokioIo::new(Watched::new(tls, activity.clone()));
    (activity, io)
}

/// The HTTP/1.1 + HTTP/2 connection builder.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        // The connection's watchdog times out request headers instead (the same deadline,
        // counted from the end of the previous answer), so the client gets a `408` with its
        // JSON body rather than a silent close.
        .header_read_timeout(None);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST);
    builder
}

/// What every connection of one server shares.
struct Shared {
    acceptor: TlsAcceptor,
    /// The client certificate verifier of the TLS configuration, to check a resumed
    /// session's certificate again.
    verifier: Arc<dyn ClientCertVerifier>,
    http: auto::Builder<TokioExecutor>,
    budgets: Arc<Budgets>,
    app: Arc<App>,
    limits: ServerLimits,
}

/// One accepted TCP connection and what it needs to be served.
struct Connection {
    shared: Arc<Shared>,
    /// Turns `true` when the server drains.
    drain: watch::Receiver<bool>,
}

type Tls = TlsStream<TcpStream>;

impl Connection {
    async fn serve(self, tcp: TcpStream, peer: SocketAddr, handshake: HandshakeSlot) {
        let shared = &self.shared;
        // Small request/response exchanges: do not wait to coalesce segments.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let accepted =
            tokio::time::timeout(shared.limits.handshake_timeout, shared.acceptor.accept(tcp))
                .await;
        let tls = match accepted {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let Some(principal) = self.identify(&tls) else {
            return;
        };
        let slot = match shared.budgets.connection(peer.ip(), principal.as_str()) {
            Ok(slot) => slot,
            Err(refusal) => {
                shared.app.metrics.record_refused(refusal.as_str());
                tracing::debug!(%peer, %principal, reason = refusal.as_str(), "connection refused");
                // Still on the handshake budget while it is told why.
                self.refuse(tls, refusal).await;
                drop(handshake);
                return;
            }
        };
        drop(handshake);
        tracing::debug!(%peer, %principal, "connection accepted");
        self.serve_http(tls, Arc::new(principal)).await;
        drop(slot);
    }

    /// The caller's identity from its certificate; `None` (and the connection ends) when it
    /// has none or, for a resumed session, when the certificate no longer verifies.
    fn identify(&self, tls: &Tls) -> Option<Principal> {
        let (_, session) = tls.get_ref();
        let Some((leaf, intermediates)) = session.peer_certificates().and_then(|c| c.split_first())
        else {
            // Unreachable with a verifier that requires client certificates.
            tracing::debug!("client presented no certificate");
            return None;
        };
        // A resumed session carries the certificate verified when it was first made: check it
        // again now (validity and CRLs), so a ticket outliving its certificate is worthless.
        if session.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
            if let Err(e) =
                self.shared
                    .verifier
                    .verify_client_cert(leaf, intermediates, UnixTime::now())
            {
                self.shared
                    .app
                    .metrics
                    .record_refused("resumed_certificate");
                tracing::debug!(error = %e, "resumed session's certificate no longer verifies");
                return None;
            }
        }
        match principal_from_certificate(leaf.as_ref()) {
            Ok(p) => Some(p),
            Err(e) => {
                tracing::debug!(error = %e, "no identity in client certificate");
                None
            }
        }
    }

    /// Serves the API to `principal` until the client closes, the connection goes idle or
    /// stalls, or the server drains.
    async fn serve_http(self, tls: Tls, principal: Arc<Principal>) {
        let limits = &self.shared.limits;
        let (activity, io) = watched(tls);
        let app = self.shared.app.clone();
        let seen = activity.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            let principal = principal.clone();
            let activity = seen.clone();
            async move {
                let handling = activity.handling();
                let response = crate::api::handle(&app, &principal, req).await;
                let response = response.map(|body| activity.track(body));
                drop(handling);
                Ok::<_, Infallible>(response)
            }
        });
        let conn = self.shared.http.serve_connection(io, service);
        tokio::pin!(conn);
        let mut drain = self.drain;
        let ended = tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = async { drop(drain.wait_for(|draining| *draining).await) } => None,
            ended = activity.watch(Some(limits.header_timeout), limits.write_timeout) => Some(ended),
        };
        if ended == Some(Ended::Stalled) {
            self.shared.app.metrics.record_closed("write_stall");
            tracing::debug!("connection dropped: the client does not read its responses");
            return;
        }
        if ended == Some(Ended::Idle) && activity.time_out_partial_request() {
            // hyper still waits for the rest of the headers: its next read answers 408 and
            // fails, which ends the connection (bounded, should the client not read).
            tracing::debug!("request headers timed out");
            let _ = tokio::time::timeout(limits.write_timeout, conn.as_mut()).await;
            return;
        }
        // Idle, or the server drains: finish in-flight requests, refuse new ones (HTTP/2
        // GOAWAY, HTTP/1.1 `connection: close`), then close; a client that does not read
        // cannot stretch this.
        conn.as_mut().graceful_shutdown();
        tokio::select! {
            r = conn.as_mut() => if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            },
            _ = activity.watch(None, limits.write_timeout) => {
                self.shared.app.metrics.record_closed("write_stall");
                tracing::debug!("connection dropped while closing: the client does not read");
            }
            () = tokio::time::sleep(limits.drain_timeout) => {
                self.shared.app.metrics.record_closed("close_timeout");
                tracing::debug!("connection dropped: its graceful close took too long");
            }
        }
    }

    /// Answers the first request of a connection that got no slot with 429
    /// `too_many_connections` (the caller's own cap) or 503 `server_busy`, then closes it.
    async fn refuse(self, tls: Tls, refusal: Refusal) {
        let limits = &self.shared.limits;
        let answered = Arc::new(Notify::new());
        let told = answered.clone();
        let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let told = told.clone();
            async move {
                let request_id = crate::api::body::request_id(req.headers());
                let e = ApiError::ConnectionRefused {
                    per_caller: refusal.is_per_caller(),
                };
                told.notify_one();
                Ok::<_, Infallible>(crate::api::error_response(&e, &request_id))
            }
        });
        let (activity, io) = watched(tls);
        let conn = self.shared.http.serve_connection(io, service);
        tokio::pin!(conn);
        let served = async {
            tokio::select! {
                _ = conn.as_mut() => return,
                () = answered.notified() => {}
            }
            conn.as_mut().graceful_shutdown();
            let _ = conn.as_mut().await;
        };
        tokio::select! {
            () = served => {}
            () = tokio::time::sleep(limits.header_timeout) => {}
            _ = activity.watch(None, limits.write_timeout) => {}
        }
    }
}
