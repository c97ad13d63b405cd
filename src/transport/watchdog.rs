//! What one connection is doing, so that a client cannot hold its slot for ever by not reading.
//!
//! hyper bounds the wait for HTTP/1.1 request headers, but not the time before the protocol is
//! known (hyper-util reads the first bytes to tell HTTP/1.1 from HTTP/2), nor an HTTP/2
//! connection without streams, nor a response the client never reads: an HTTP/2 stream whose
//! flow-control window the client keeps at zero, or HTTP/1.1 requests pipelined by a client
//! that never reads the answers (the socket's send buffer fills and every write waits). The
//! [`Activity`] of a connection tracks three things:
//! - requests being handled (from the call of the handler until its response is produced);
//! - responses being sent: produced, but their body not yet taken in full by hyper
//!   ([`TrackedBody`]);
//! - whether a write to the socket is waiting, since when ([`Watched`]).
//!
//! [`Activity::watch`] says when the connection should end: *stalled* when a response or a
//! socket write has made no progress for the write timeout (then the connection is dropped,
//! not drained: draining it would wait on the same client), *idle* when nothing has been in
//! flight for the idle timeout (HTTP/1.1 keep-alive and HTTP/2 alike).

use hyper::body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Why [`Activity::watch`] says a connection should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// Nothing in flight for the idle timeout: close gracefully.
    Idle,
    /// A response or a socket write made no progress for the write timeout: drop it.
    Stalled,
}

/// What one connection is doing. Shared by its service, its response bodies and its I/O.
#[derive(Debug)]
pub struct Activity {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Handlers running.
    handling: usize,
    /// When the last request was answered in full (or the connection was established).
    last_done: Instant,
    /// Responses being sent: id -> when they last made progress.
    sending: HashMap<u64, Instant>,
    next_id: u64,
    /// Since when a socket write has been waiting with nothing written.
    write_blocked_since: Option<Instant>,
    /// Bytes arrived since the last handler started: a request may be half received.
    read_since_request: bool,
    /// The client spoke HTTP/2 (ALPN or preface): nothing HTTP/1.1 is ever written for it.
    http2: bool,
    /// Answer `408` and end the connection at hyper's next read.
    request_timed_out: bool,
    /// hyper's task waiting for bytes, to wake it when the request times out.
    read_waker: Option<std::task::Waker>,
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// A connection doing nothing, as of now.
    pub fn new() -> Self {
        Self {
            state: Mutex::new(State {
                handling: 0,
                last_done: Instant::now(),
                sending: HashMap::new(),
                next_id: 0,
                write_blocked_since: None,
                read_since_request: false,
                http2: false,
                request_timed_out: false,
                read_waker: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A handler starts; the returned guard ends it.
    pub fn handling(self: &Arc<Self>) -> Handling {
        let mut s = self.state();
        s.handling += 1;
        s.read_since_request = false;
        drop(s);
        Handling(self.clone())
    }

    /// The client speaks HTTP/2.
    pub fn set_http2(&self) {
        self.state().http2 = true;
    }

    /// Called when the connection goes idle: if an HTTP/1.1 request was half received, hyper
    /// (still waiting for the rest of its headers) is woken, and its next read answers `408`
    /// and ends the connection. Whether that is so.
    pub fn time_out_partial_request(&self) -> bool {
        let mut s = self.state();
        s.request_timed_out = s.read_since_request && !s.http2;
        let waker = s.read_waker.take().filter(|_| s.request_timed_out);
        let timed_out = s.request_timed_out;
        drop(s);
        if let Some(w) = waker {
            w.wake();
        }
        timed_out
    }

    /// Wraps a response body produced now, so the connection knows until when it is sent.
    pub fn track<B>(self: &Arc<Self>, body: B) -> TrackedBody<B> {
        let mut s = self.state();
        let id = s.next_id;
        s.next_id = s.next_id.wrapping_add(1);
        s.sending.insert(id, Instant::now());
        TrackedBody {
            inner: body,
            activity: self.clone(),
            id,
        }
    }

    fn wrote(&self, progressed: bool) {
        let mut s = self.state();
        if progressed {
            s.write_blocked_since = None;
        } else if s.write_blocked_since.is_none() {
            s.write_blocked_since = Some(Instant::now());
        }
    }

    /// What the connection should do now, and when to look again.
    fn check(&self, idle: Duration, write: Duration, now: Instant) -> Result<Ended, Instant> {
        let s = self.state();
        let oldest_send = s.sending.values().min().copied();
        let stuck_since = match (oldest_send, s.write_blocked_since) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Look again at least this often: a write may block, a response may start.
        let mut wake = now + idle.min(write) / 4;
        if let Some(since) = stuck_since {
            if now >= since + write {
                return Ok(Ended::Stalled);
            }
            wake = wake.min(since + write);
        }
        if s.handling == 0 && s.sending.is_empty() {
            let deadline = s.last_done + idle;
            if now >= deadline {
                return Ok(Ended::Idle);
            }
            wake = wake.min(deadline);
        }
        Err(wake)
    }

    /// Completes when the connection should end: [`Ended::Stalled`] once a response or a
    /// socket write has made no progress for `write`; with `idle` given, [`Ended::Idle`] once
    /// nothing has been in flight for it.
    pub async fn watch(&self, idle: Option<Duration>, write: Duration) -> Ended {
        // Without an idle timeout, look for stalls only: an idle deadline never comes.
        let never = Duration::from_secs(365 * 24 * 3600);
        loop {
            match self.check(idle.unwrap_or(never), write, Instant::now()) {
                Ok(ended) => return ended,
                Err(wake) => tokio::time::sleep_until(wake).await,
            }
        }
    }
}

/// A handler in progress; it ends when dropped.
#[derive(Debug)]
pub struct Handling(Arc<Activity>);

impl Drop for Handling {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.handling = s.handling.saturating_sub(1);
        s.last_done = Instant::now();
    }
}

/// A response body whose sending the connection's [`Activity`] watches: each frame hyper
/// takes is progress; the response is sent when the body ends or is dropped.
#[derive(Debug)]
pub struct TrackedBody<B> {
    inner: B,
    activity: Arc<Activity>,
    id: u64,
}

impl<B> Drop for TrackedBody<B> {
    fn drop(&mut self) {
        let mut s = self.activity.state();
        s.sending.remove(&self.id);
        s.last_done = Instant::now();
    }
}

impl<B: Body + Unpin> Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            let id = self.id;
            if let Some(t) = self.activity.state().sending.get_mut(&id) {
                *t = Instant::now();
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A connection's I/O, telling its [`Activity`] whether writes make progress and when bytes
/// arrive. For HTTP/1.1 it also gives hyper's own bare error answers their JSON body, and
/// writes the `408` of a request whose headers did not arrive in time
/// ([`super::bare_errors`]).
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    activity: Arc<Activity>,
    /// Bytes accepted from hyper but not yet written to `inner` (a rewritten answer).
    outbox: Vec<u8>,
    /// Whether anything was read yet (to tell an HTTP/2 preface).
    read_any: bool,
    /// Whether the `408` was queued (it is written once).
    timeout_sent: bool,
}

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0";

impl<T> Watched<T> {
    /// Watches the I/O of `inner`.
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        Self {
            inner,
            activity,
            outbox: Vec::new(),
            read_any: false,
            timeout_sent: false,
        }
    }

    fn note<R>(&self, polled: &Poll<io::Result<R>>, progressed: impl Fn(&R) -> bool) {
        match polled {
            Poll::Ready(Ok(r)) => self.activity.wrote(progressed(r)),
            Poll::Pending => self.activity.wrote(false),
            // The connection fails with the error; nothing to watch.
            Poll::Ready(Err(_)) => {}
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// Writes the outbox to `inner`; ready once it is empty.
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.outbox.is_empty() {
            let polled = Pin::new(&mut self.inner).poll_write(cx, &self.outbox);
            self.note(&polled, |n| *n > 0);
            match polled {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => drop(self.outbox.drain(..n.min(self.outbox.len()))),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    fn http1(&self) -> bool {
        !self.activity.state().http2
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.activity.state().request_timed_out {
            // The headers never completed: answer 408, then fail the read so hyper ends.
            if !self.timeout_sent {
                self.timeout_sent = true;
                self.outbox
                    .extend_from_slice(&super::bare_errors::request_timeout());
            }
            if self.drain(cx)?.is_pending()
                || Pin::new(&mut self.inner).poll_flush(cx)?.is_pending()
            {
                return Poll::Pending;
            }
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the request headers did not arrive in time",
            )));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let fresh = buf.filled().get(before..).unwrap_or_default();
        let mut s = self.activity.state();
        // Bytes read while a request is in flight are its body; after it, a new request.
        if !fresh.is_empty() && s.handling == 0 && s.sending.is_empty() {
            s.read_since_request = true;
        }
        if !self.read_any && fresh.starts_with(H2_PREFACE) {
            s.http2 = true;
        }
        if polled.is_pending()
            && !s
                .read_waker
                .as_ref()
                .is_some_and(|w| w.will_wake(cx.waker()))
        {
            s.read_waker = Some(cx.waker().clone());
        }
        drop(s);
        if !fresh.is_empty() {
            self.read_any = true;
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        if self.http1() {
            if let Some(rewritten) = super::bare_errors::rewrite(buf) {
                self.outbox = rewritten;
                // Accepted whole; flushed before anything else is written.
                let _ = self.drain(cx)?;
                return Poll::Ready(Ok(buf.len()));
            }
        }
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(&polled, |n| *n > 0 || buf.is_empty());
        polled
    }

    // hyper then hands over each answer as one buffer, so a bare error is seen whole.
    fn is_write_vectored(&self) -> bool {
        false
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.note(&polled, |()| true);
        polled
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.drain(cx)?.is_pending() {
            return Poll::Pending;
        }
        if Pin::new(&mut self.inner).poll_flush(cx)?.is_pending() {
            return Poll::Pending;
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);
    const WRITE: Duration = Duration::from_secs(15);

    /// What `a` says `after` from now.
    fn at(a: &Activity, after: Duration) -> Result<Ended, Instant> {
        a.check(IDLE, WRITE, Instant::now() + after)
    }

    #[test]
    fn a_quiet_connection_is_idle_after_the_idle_timeout() {
        let a = Arc::new(Activity::new());
        assert!(at(&a, Duration::from_secs(9)).is_err());
        assert_eq!(at(&a, IDLE), Ok(Ended::Idle));
    }

    #[test]
    fn a_running_handler_is_neither_idle_nor_stalled() {
        let a = Arc::new(Activity::new());
        let h = a.handling();
        assert!(at(&a, Duration::from_secs(60)).is_err());
        drop(h);
        assert_eq!(at(&a, IDLE), Ok(Ended::Idle));
    }

    #[test]
    fn a_response_never_taken_stalls_after_the_write_timeout() {
        let a = Arc::new(Activity::new());
        let body = a.track(http_body_util::Full::new(bytes::Bytes::from_static(b"{}")));
        assert!(at(&a, Duration::from_secs(14)).is_err(), "not idle either");
        assert_eq!(at(&a, WRITE), Ok(Ended::Stalled));
        drop(body);
        assert!(at(&a, Duration::from_secs(1)).is_err());
    }

    #[test]
    fn a_blocked_write_stalls_and_progress_clears_it() {
        let a = Arc::new(Activity::new());
        a.wrote(false);
        // Still blocked: the first time counts.
        a.wrote(false);
        let long_idle = Duration::from_secs(3600);
        assert!(a
            .check(long_idle, WRITE, Instant::now() + WRITE / 2)
            .is_err());
        assert_eq!(
            a.check(long_idle, WRITE, Instant::now() + WRITE),
            Ok(Ended::Stalled)
        );
        a.wrote(true);
        assert!(a.check(long_idle, WRITE, Instant::now() + WRITE).is_err());
    }

    #[tokio::test]
    async fn watch_returns_stalled_when_a_response_is_never_taken() {
        let a = Arc::new(Activity::new());
        let _body = a.track(());
        let ended = a.watch(Some(IDLE), Duration::from_millis(50)).await;
        assert_eq!(ended, Ended::Stalled);
    }
}
