//! `--flood N`: while a scenario runs, N TCP connections from another loopback address that
//! never send a ClientHello, each reopened as soon as the daemon closes it. This is the
//! pre-authentication flood of issue 16 (finding 2): what the daemon's unauthenticated
//! budget is measured against, through the latencies of the scenario's normal clients.
//!
//! Loopback only: the source must be a 127.0.0.0/8 address, and so must the daemon's.

use super::BenchError;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpSocket;
use tokio::task::JoinSet;

/// Pause after a refused or failed connect before the next try.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// How long one flood socket waits for the daemon to close it before opening anew anyway.
const HOLD_AT_MOST: Duration = Duration::from_secs(60);

/// What to flood with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodOptions {
    /// Sockets held open at once.
    pub sockets: usize,
    /// The loopback address they connect from.
    pub from: Ipv4Addr,
}

/// A running flood; [`Flooding::stop`] ends it and says how many sockets it opened.
pub(crate) struct Flooding {
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
    tasks: JoinSet<()>,
}

impl Flooding {
    /// Starts `opts.sockets` flood sockets against `target`.
    pub(crate) fn start(target: SocketAddr, opts: FloodOptions) -> Result<Self, BenchError> {
        if !opts.from.is_loopback() || !target.ip().is_loopback() {
            return Err(BenchError::Config(
                "--flood connects from a loopback address to a loopback daemon only".to_owned(),
            ));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let opened = Arc::new(AtomicU64::new(0));
        let mut tasks = JoinSet::new();
        for _ in 0..opts.sockets {
            let (stop, opened) = (stop.clone(), opened.clone());
            tasks.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match silent_socket(opts.from, target).await {
                        Ok(mut tcp) => {
                            opened.fetch_add(1, Ordering::Relaxed);
                            // Until the daemon closes it; nothing is ever sent.
                            let mut byte = [0u8; 1];
                            let _ = tokio::time::timeout(HOLD_AT_MOST, tcp.read(&mut byte)).await;
                        }
                        Err(_) => tokio::time::sleep(RETRY_PAUSE).await,
                    }
                }
            });
        }
        Ok(Self {
            stop,
            opened,
            tasks,
        })
    }

    /// Ends the flood; the number of sockets it opened.
    pub(crate) async fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        self.opened.load(Ordering::Relaxed)
    }
}

/// A TCP connection from `from` (any port) to `target`.
async fn silent_socket(
    from: Ipv4Addr,
    target: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(IpAddr::V4(from), 0))?;
    socket.connect(target).await
}
