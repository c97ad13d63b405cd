//! The accept loop (after mini-redis `server.rs::run`): a semaphore bounds connections, each
//! connection does its TLS handshake under a deadline, takes the caller's identity from its
//! certificate and is served by hyper (HTTP/1.1 keep-alive or HTTP/2). On shutdown the loop
//! stops accepting and in-flight requests drain, within a deadline.

use super::identity::principal_from_certificate;
use crate::api::App;
use crate::policy::Principal;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// Bounds on what one server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerLimits {
    /// Open connections at most; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// Time a client has to complete the TLS handshake.
    pub handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1.1), counted from the end of the
    /// TLS handshake or of the previous response: it also closes idle keep-alive connections.
    pub header_timeout: Duration,
    /// Time a client has to send a whole request body. Enforced by the API layer: give it to
    /// [`App::body_timeout`](crate::api::App::body_timeout).
    pub body_timeout: Duration,
    /// Time in-flight requests get to finish on shutdown.
    pub drain_timeout: Duration,
    /// The largest request body accepted. Enforced by the API layer: give it to
    /// [`App::max_body_bytes`](crate::api::App::max_body_bytes).
    pub max_body_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            drain_timeout: Duration::from_secs(30),
            max_body_bytes: 16 * 1024,
        }
    }
}

/// Pause after a failed `accept` (for instance out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves the API on `listener` until `shutdown` completes, then drains open connections for
/// at most `limits.drain_timeout` and returns.
pub async fn run(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Arc<App>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(tls);
    let http = Arc::new(http_builder(&limits));
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // hyper-util's `GracefulShutdown` is behind a feature this crate does not enable; a watch
    // channel does the same: every connection is told, finishes its in-flight requests and
    // closes.
    let (draining, drain_signal) = watch::channel(false);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);

    loop {
        // Wait for a free slot before accepting, so excess clients queue in the backlog.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
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
        let conn = Connection {
            acceptor: acceptor.clone(),
            http: http.clone(),
            app: app.clone(),
            drain: drain_signal.clone(),
            handshake_timeout: limits.handshake_timeout,
            idle_timeout: limits.header_timeout,
            _permit: permit,
        };
        tasks.spawn(async move {
            conn.serve(tcp).await;
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

/// The HTTP/1.1 + HTTP/2 connection builder.
fn http_builder(limits: &ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .keep_alive(true)
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// One accepted TCP connection and what it needs to be served.
struct Connection {
    acceptor: TlsAcceptor,
    http: Arc<auto::Builder<TokioExecutor>>,
    app: Arc<App>,
    /// Turns `true` when the server drains.
    drain: watch::Receiver<bool>,
    handshake_timeout: Duration,
    /// How long the connection may stay without a request in flight.
    idle_timeout: Duration,
    /// Held until the connection closes.
    _permit: OwnedSemaphorePermit,
}

impl Connection {
    async fn serve(self, tcp: TcpStream) {
        // Small request/response exchanges: do not wait to coalesce segments.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "set_nodelay failed");
        }
        let tls =
            match tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("TLS handshake timed out");
                    return;
                }
            };
        let principal = {
            let (_, session) = tls.get_ref();
            let leaf = session.peer_certificates().and_then(|chain| chain.first());
            match leaf.map(|der| principal_from_certificate(der.as_ref())) {
                Some(Ok(p)) => Arc::new(p),
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "no identity in client certificate");
                    return;
                }
                None => {
                    // Unreachable with a verifier that requires client certificates.
                    tracing::debug!("client presented no certificate");
                    return;
                }
            }
        };
        tracing::debug!(principal = %principal, "connection accepted");
        let app = self.app;
        let activity = Arc::new(Activity::new());
        let seen = activity.clone();
        let service = service_fn(move |req| {
            let app = app.clone();
            let principal: Arc<Principal> = principal.clone();
            let busy = seen.start();
            async move {
                let response = crate::api::handle(&app, &principal, req).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        });
        let conn = self.http.serve_connection(TokioIo::new(tls), service);
        tokio::pin!(conn);
        let mut drain = self.drain;
        let result = tokio::select! {
            r = conn.as_mut() => r,
            () = async { drop(drain.wait_for(|draining| *draining).await) } => {
                // Finish in-flight requests, refuse new ones (HTTP/2 GOAWAY, HTTP/1.1
                // `connection: close`), then close.
                conn.as_mut().graceful_shutdown();
                conn.await
            }
            () = activity.idle_for(self.idle_timeout) => {
                tracing::debug!("idle connection closed");
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Whether a connection is doing anything: requests in flight, and when the last one ended.
///
/// hyper bounds the wait for HTTP/1.1 request headers, but not the time before the protocol is
/// known (hyper-util reads the first bytes to tell HTTP/1.1 from HTTP/2), nor an HTTP/2
/// connection without streams: a client that finishes the TLS handshake and sends nothing would
/// hold its connection slot for ever. The idle timer closes such connections.
struct Activity {
    in_flight: std::sync::atomic::AtomicUsize,
    last: std::sync::Mutex<tokio::time::Instant>,
}

/// One request in flight; it ends when dropped.
struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        *self
            .0
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = tokio::time::Instant::now();
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Activity {
    fn new() -> Self {
        Self {
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            last: std::sync::Mutex::new(tokio::time::Instant::now()),
        }
    }

    fn start(self: &Arc<Self>) -> Busy {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Busy(self.clone())
    }

    /// Completes once no request has been in flight for `idle`.
    async fn idle_for(&self, idle: Duration) {
        loop {
            let last = *self
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let deadline = last + idle;
            if tokio::time::Instant::now() >= deadline
                && self.in_flight.load(std::sync::atomic::Ordering::SeqCst) == 0
            {
                return;
            }
            // In flight: look again after another period (a slow body has its own timeout).
            let wake = deadline.max(tokio::time::Instant::now() + idle / 4);
            tokio::time::sleep_until(wake).await;
        }
    }
}
