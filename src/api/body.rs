//! Request and response bytes: bodies read under a size limit into zeroized buffers,
//! responses encoded into a [`SecretBuf`] that zeroizes when hyper drops it, and request ids.

use super::error::ApiError;
use crate::card::contains_pan;
use crate::text::LoggableText;
use bytes::Buf;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::header::{HeaderMap, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE};
use serde::Serialize;
use std::fmt::Display;
use std::time::Duration;
use zeroize::Zeroizing;

/// A response body: owned bytes zeroized on drop, read through a cursor.
///
/// Every response body is one of these, so a released PAN does not outlive the response in
/// payhsm's own buffers. (hyper and rustls copy the bytes into their write buffers; those
/// copies are outside our control.)
#[derive(Default)]
pub struct SecretBuf {
    bytes: Zeroizing<Vec<u8>>,
    pos: usize,
}

impl SecretBuf {
    /// Wraps `bytes`, positioned at the start.
    pub fn new(bytes: Zeroizing<Vec<u8>>) -> Self {
        Self { bytes, pos: 0 }
    }

    /// A copy of `bytes` (for non-secret bodies).
    pub fn copy_from(bytes: &[u8]) -> Self {
        Self::new(Zeroizing::new(bytes.to_vec()))
    }
}

impl std::fmt::Debug for SecretBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretBuf({} bytes left)", self.remaining())
    }
}

impl Buf for SecretBuf {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn chunk(&self) -> &[u8] {
        self.bytes.get(self.pos..).unwrap_or_default()
    }

    fn advance(&mut self, cnt: usize) {
        self.pos = self.pos.saturating_add(cnt).min(self.bytes.len());
    }
}

/// A `Write` into a zeroized buffer that, when it must grow, copies into a new zeroized
/// allocation instead of letting `Vec` reallocate (which would leave the old bytes behind).
struct ZeroizingWriter(Zeroizing<Vec<u8>>);

impl std::io::Write for ZeroizingWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let needed = self.0.len().saturating_add(data.len());
        if needed > self.0.capacity() {
            let mut bigger = Zeroizing::new(Vec::with_capacity(needed.saturating_mul(2)));
            bigger.extend_from_slice(&self.0);
            self.0 = bigger;
        }
        self.0.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Serializes `value` as JSON into a [`SecretBuf`].
pub fn json<T: Serialize>(value: &T) -> Result<SecretBuf, ApiError> {
    let mut w = ZeroizingWriter(Zeroizing::new(Vec::with_capacity(512)));
    serde_json::to_writer(&mut w, value).map_err(|e| {
        ApiError::Internal(crate::fault::Fault::caused_by(
            "cannot encode the answer",
            e,
        ))
    })?;
    Ok(SecretBuf::new(w.0))
}

/// Reads a request body of at most `limit` bytes into a zeroized buffer, within `timeout`. A
/// larger body is `PayloadTooLarge`, refused from its `content-length` before reading when it
/// has one; a body still arriving after `timeout` is `RequestTimeout` (the connection closes,
/// since the rest of the body is never read).
pub async fn read_body<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
    timeout: Duration,
) -> Result<Zeroizing<Vec<u8>>, ApiError>
where
    B: Body,
    B::Error: Display,
{
    tokio::time::timeout(timeout, read_limited(headers, body, limit))
        .await
        .unwrap_or(Err(ApiError::RequestTimeout))
}

async fn read_limited<B>(
    headers: &HeaderMap,
    body: B,
    limit: usize,
) -> Result<Zeroizing<Vec<u8>>, ApiError>
where
    B: Body,
    B::Error: Display,
{
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    // Sized up front so the buffer never reallocates (which would leave copies behind).
    let mut buf = Zeroizing::new(Vec::with_capacity(declared.unwrap_or(limit).min(limit)));
    let limited = Limited::new(body.map_err(|e| e.to_string()), limit);
    let mut limited = std::pin::pin!(limited);
    while let Some(frame) = limited.frame().await {
        let frame = frame.map_err(|e| {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Malformed("the request body could not be read")
            }
        })?;
        if let Ok(mut data) = frame.into_data() {
            if buf.len().saturating_add(data.remaining()) > buf.capacity() {
                // Only when content-length understated the body; hyper normally refuses that.
                return Err(ApiError::Malformed(
                    "the body is longer than its content-length",
                ));
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                let n = chunk.len();
                buf.extend_from_slice(chunk);
                data.advance(n);
            }
        }
    }
    Ok(buf)
}

/// Refuses a request whose body is not plain JSON as declared: exactly one `content-type`,
/// `application/json` with no charset other than UTF-8 (RFC 8259 §8.1; 415), and no content
/// coding (RFC 9110 §8.4: a gzip body must not be read as JSON; 415). Two `content-type`
/// headers are ambiguous (400).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    for coding in headers.get_all(CONTENT_ENCODING) {
        let identity = coding
            .to_str()
            .is_ok_and(|c| c.trim().eq_ignore_ascii_case("identity"));
        if !identity {
            return Err(ApiError::UnsupportedContentEncoding);
        }
    }
    let mut types = headers.get_all(CONTENT_TYPE).iter();
    let (Some(value), None) = (types.next(), types.next()) else {
        return match headers.contains_key(CONTENT_TYPE) {
            true => Err(ApiError::Malformed("give one `content-type` header")),
            false => Err(ApiError::UnsupportedMediaType),
        };
    };
    let mut parts = value
        .to_str()
        .map_err(|_| ApiError::UnsupportedMediaType)?
        .split(';')
        .map(str::trim);
    if !parts
        .next()
        .is_some_and(|t| t.eq_ignore_ascii_case("application/json"))
    {
        return Err(ApiError::UnsupportedMediaType);
    }
    for param in parts.filter(|p| !p.is_empty()) {
        let (name, value) = param.split_once('=').unwrap_or((param, ""));
        if name.trim().eq_ignore_ascii_case("charset") {
            let charset = value.trim().trim_matches('"');
            if !(charset.eq_ignore_ascii_case("utf-8") || charset.eq_ignore_ascii_case("utf8")) {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
    }
    Ok(())
}

/// The longest incoming request id echoed back.
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The caller's `x-request-id` when it is 1 to 64 characters of `[A-Za-z0-9_-]` holding no
/// card number, else a new one (16 random bytes in hex, holding none either). The id is echoed
/// and audited, so a card number in it is replaced rather than refused: the request still gets
/// an answer with an id to quote.
pub fn request_id(headers: &HeaderMap) -> String {
    let given = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .and_then(|id| LoggableText::parse(id).ok());
    match given {
        Some(id) => id.into_string(),
        None => new_request_id(),
    }
}

/// 16 random bytes as 32 lowercase hex digits, drawn again while they hold a card number (a
/// Luhn-valid run of 12 or more decimal digits: about one draw in eighty).
pub fn new_request_id() -> String {
    use std::fmt::Write as _;
    use std::sync::atomic::{AtomicU64, Ordering};
    loop {
        let mut raw = [0u8; 16];
        if getrandom::getrandom(&mut raw).is_err() {
            // Ids need to be unique, not secret: fall back to a process counter.
            static FALLBACK: AtomicU64 = AtomicU64::new(0);
            return format!("local-{}", FALLBACK.fetch_add(1, Ordering::Relaxed));
        }
        let mut id = String::with_capacity(32);
        for b in raw {
            let _ = write!(id, "{b:02x}");
        }
        if !contains_pan(&id) {
            return id;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Full;
    use hyper::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn sane_request_id_is_echoed() {
        let h = headers(&[("x-request-id", "abc-DEF_123")]);
        assert_eq!(request_id(&h), "abc-DEF_123");
        let long = "a".repeat(64);
        assert_eq!(request_id(&headers(&[("x-request-id", &long)])), long);
    }

    #[test]
    fn missing_or_odd_request_id_is_replaced_by_a_random_one() {
        let too_long = "a".repeat(65);
        for h in [
            headers(&[]),
            headers(&[("x-request-id", "")]),
            headers(&[("x-request-id", "has space")]),
            headers(&[("x-request-id", "semi;colon")]),
            headers(&[("x-request-id", &too_long)]),
        ] {
            let id = request_id(&h);
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(&headers(&[])), request_id(&headers(&[])));
    }

    #[test]
    fn a_request_id_holding_a_card_number_is_replaced() {
        for given in [
            "4111111111111111",
            "4111-1111-1111-1111",
            "req-4111111111111111",
        ] {
            let id = request_id(&headers(&[("x-request-id", given)]));
            assert_eq!(id.len(), 32, "{id}");
            assert!(!id.contains("4111111111111111") && !id.contains("4111-1111"));
        }
        // Generated ids never hold one either (one in about eighty 32-hex-digit draws would).
        for _ in 0..2000 {
            assert!(!contains_pan(&request_id(&headers(&[]))));
        }
    }

    #[tokio::test]
    async fn body_within_limit_is_read() {
        let body = Full::new(Bytes::from_static(b"{\"a\":1}"));
        let got = read_body(&headers(&[]), body, 16, SECOND).await.unwrap();
        assert_eq!(&got[..], b"{\"a\":1}");
    }

    #[tokio::test]
    async fn oversized_body_is_payload_too_large() {
        let body = Full::new(Bytes::from(vec![b'x'; 17]));
        let e = read_body(&headers(&[]), body, 16, SECOND)
            .await
            .unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (413, "payload_too_large"));
    }

    #[tokio::test]
    async fn oversized_content_length_is_refused_before_reading() {
        let body = Full::new(Bytes::from_static(b"{}"));
        let h = headers(&[("content-length", "1000000")]);
        let e = read_body(&h, body, 16, SECOND).await.unwrap_err();
        assert_eq!(e.code(), "payload_too_large");
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// A body whose bytes never come.
    struct Stalled;

    impl Body for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
            std::task::Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_request_timeout() {
        let short = Duration::from_millis(20);
        let e = read_body(&headers(&[]), Stalled, 16, short)
            .await
            .unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (408, "request_timeout"));
    }

    #[test]
    fn only_json_content_type_is_accepted() {
        assert!(require_json(&headers(&[("content-type", "application/json")])).is_ok());
        assert!(require_json(&headers(&[(
            "content-type",
            "Application/JSON; charset=utf-8"
        )]))
        .is_ok());
        for bad in [
            headers(&[]),
            headers(&[("content-type", "text/plain")]),
            headers(&[("content-type", "application/x-www-form-urlencoded")]),
            headers(&[("content-type", "application/json; charset=iso-8859-1")]),
            headers(&[("content-type", "application/json; charset=\"utf-16\"")]),
        ] {
            assert_eq!(
                require_json(&bad).unwrap_err().code(),
                "unsupported_media_type"
            );
        }
    }

    #[test]
    fn a_content_coding_or_two_content_types_are_refused() {
        let json = ("content-type", "application/json");
        assert!(require_json(&headers(&[json, ("content-encoding", "identity")])).is_ok());
        for coding in ["gzip", "br", "deflate", "identity, gzip"] {
            let e = require_json(&headers(&[json, ("content-encoding", coding)])).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (415, "unsupported_content_encoding"),
                "{coding}"
            );
        }
        let two = headers(&[json, ("content-type", "application/json")]);
        let e = require_json(&two).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (400, "malformed_request"));
    }

    #[test]
    fn secret_buf_reads_through_its_cursor() {
        let mut b = SecretBuf::copy_from(b"hello");
        assert_eq!(b.remaining(), 5);
        assert_eq!(b.chunk(), b"hello");
        b.advance(2);
        assert_eq!(b.chunk(), b"llo");
        b.advance(10);
        assert_eq!(b.remaining(), 0);
        assert!(b.chunk().is_empty());
    }

    #[test]
    fn json_grows_beyond_its_initial_capacity() {
        let long = "x".repeat(2000);
        let b = json(&serde_json::json!({ "v": long })).unwrap();
        assert_eq!(b.remaining(), 2000 + 8);
    }
}
