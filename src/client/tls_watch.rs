//! A transparent wrapper around the TLS stream that remembers the first TLS error it carried.
//!
//! Why: under TLS 1.3 the server refuses a client certificate after the client's handshake has
//! finished, so the refusal arrives as an alert on a later read. HTTP/1.1 passes that error up
//! intact, but the HTTP/2 stack keeps only its text. Recording it here, where the error is still
//! a typed `rustls::Error`, lets every request failure say "TLS" reliably.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The first TLS error seen on a connection, shared with the client.
#[derive(Clone, Default)]
pub(super) struct TlsErrorSlot(Arc<Mutex<Option<rustls::Error>>>);

impl TlsErrorSlot {
    /// The recorded TLS error, as tokio-rustls reports them (`InvalidData` around it).
    pub(super) fn get(&self) -> Option<io::Error> {
        let guard = self.0.lock().ok()?;
        guard
            .as_ref()
            .map(|e| io::Error::new(io::ErrorKind::InvalidData, e.clone()))
    }

    fn record<T>(&self, result: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        if let Poll::Ready(Err(e)) = &result {
            if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                if let Ok(mut slot) = self.0.lock() {
                    slot.get_or_insert_with(|| tls.clone());
                }
            }
        }
        result
    }
}

/// `S` with its TLS errors recorded in a [`TlsErrorSlot`].
pub(super) struct Watched<S> {
    inner: S,
    slot: TlsErrorSlot,
}

impl<S> Watched<S> {
    pub(super) fn new(inner: S, slot: TlsErrorSlot) -> Self {
        Self { inner, slot }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.slot.record(result)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.slot.record(result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.slot.record(result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.slot.record(result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.slot.record(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_tls_error_and_ignores_plain_io_errors() {
        let slot = TlsErrorSlot::default();
        let plain: Poll<io::Result<()>> = Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        let _ = slot.record(plain);
        assert!(slot.get().is_none());
        for alert in [
            rustls::AlertDescription::CertificateRequired,
            rustls::AlertDescription::BadCertificate,
        ] {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(alert),
            );
            let _ = slot.record::<()>(Poll::Ready(Err(e)));
        }
        let got = slot.get().map(|e| e.to_string());
        assert_eq!(
            got.as_deref(),
            Some("received fatal alert: CertificateRequired")
        );
    }
}
