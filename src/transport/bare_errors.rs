//! hyper's own HTTP/1.1 error answers, given the documented JSON error body.
//!
//! hyper answers a request it cannot parse by itself, before any route is reached: `400` (a
//! bad request line or header), `414` (URI too long) and `431` (headers too large), each with
//! an empty body, then closes the connection. It has no hook to shape these answers, so the
//! connection's writer recognises them on the way out and writes the same status with the
//! body every other error has (`{"error":{"code","message"}}`, see `docs/api.md`). The request
//! headers that never completed get a `408` the same way (the server writes it before closing).
//!
//! Recognised is exactly what hyper writes and payhsm never does: a status line, then only the
//! headers `connection`, `content-length: 0` and `date`, at the very end of a write. Every
//! answer of payhsm's own carries `content-type`, so none can match. Sans-io.

use crate::api::ApiError;
use hyper::StatusCode;

/// The replacement for `written` when it ends with one of hyper's bare error answers: the
/// bytes before it, unchanged, then the same status with the JSON error body.
pub fn rewrite(written: &[u8]) -> Option<Vec<u8>> {
    let start = find_bare_head(written)?;
    let head = written.get(start..)?;
    let status = parse_status(head)?;
    let date = header_value(head, b"date");
    let mut out = written.get(..start)?.to_vec();
    out.extend_from_slice(&answer(status, date));
    Some(out)
}

/// The `408` written when a request's headers did not all arrive within the header timeout.
pub fn request_timeout() -> Vec<u8> {
    answer(StatusCode::REQUEST_TIMEOUT, None)
}

/// A complete HTTP/1.1 answer: `status`, the JSON error body, `connection: close`. The
/// request never parsed, so its id is a new one, in the body and `x-request-id` as on every
/// other answer.
fn answer(status: StatusCode, date: Option<&[u8]>) -> Vec<u8> {
    let e = ApiError::HttpLayer(status);
    let (status, code) = e.status_and_code();
    let request_id = crate::api::new_request_id();
    let body = serde_json::json!({
        "error": {"code": code, "message": e.to_string(), "request_id": request_id}
    })
    .to_string();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nx-error-code: {code}\r\nx-request-id: {request_id}\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    )
    .into_bytes();
    if let Some(date) = date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// Where the bare error head that ends `written` starts, if it does.
fn find_bare_head(written: &[u8]) -> Option<usize> {
    if !written.ends_with(b"\r\n\r\n") {
        return None;
    }
    // hyper's head is short: look only at the tail.
    let from = written.len().saturating_sub(512);
    let tail = written.get(from..)?;
    let at = tail
        .windows(7)
        .rposition(|w| w == b"HTTP/1.")
        .map(|i| from + i)?;
    let head = written.get(at..)?;
    let lines = head.strip_suffix(b"\r\n\r\n")?;
    let mut lines = lines
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    parse_status(head)?;
    lines.next()?;
    let (mut length_zero, mut count) = (false, 0);
    for line in lines {
        let (name, value) = split_header(line)?;
        count += 1;
        match name.to_ascii_lowercase().as_slice() {
            b"content-length" => length_zero = value == b"0",
            b"connection" | b"date" => {}
            _ => return None,
        }
    }
    (length_zero && count <= 3).then_some(at)
}

/// The status of a head starting `HTTP/1.x NNN`; only client errors are hyper's.
fn parse_status(head: &[u8]) -> Option<StatusCode> {
    let code = head.get(9..12)?;
    if head.get(8) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let status = StatusCode::from_bytes(code).ok()?;
    status.is_client_error().then_some(status)
}

fn split_header(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let colon = line.iter().position(|b| *b == b':')?;
    let name = line.get(..colon)?;
    let value = line.get(colon + 1..)?.trim_ascii();
    Some((name, value))
}

/// The value of header `name` in `head`.
fn header_value<'a>(head: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    head.split(|b| *b == b'\n')
        .skip(1)
        .filter_map(|l| split_header(l.strip_suffix(b"\r").unwrap_or(l)))
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Fuzzing entry point: whatever `data` is, a rewrite keeps the bytes before the bare head,
/// answers a client error with a JSON body, and is only made for what ends in a bare head.
#[allow(clippy::panic)]
pub(crate) fn fuzz_rewrite(data: &[u8]) {
    if let Some(out) = rewrite(data) {
        let start = find_bare_head(data).unwrap_or_else(|| panic!("rewritten without a head"));
        if out.get(..start) != data.get(..start) {
            panic!("the bytes before the bare head changed");
        }
        let answer = out.get(start..).unwrap_or_default();
        let text = String::from_utf8_lossy(answer);
        if !text.contains("content-type: application/json") || !text.ends_with('}') {
            panic!("a rewrite without the JSON body");
        }
        if find_bare_head(&out).is_some() {
            panic!("a rewrite is still a bare head");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYPER_400: &[u8] =
        b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\
        date: Sun, 06 Dec 2026 23:59:36 GMT\r\n\r\n";

    fn body_of(answer: &[u8]) -> serde_json::Value {
        let text = std::str::from_utf8(answer).unwrap();
        let (_, body) = text.split_once("\r\n\r\n").unwrap();
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn hypers_bare_400_gets_the_json_body_and_keeps_its_date() {
        let out = rewrite(HYPER_400).unwrap();
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{text}");
        assert!(
            text.contains("date: Sun, 06 Dec 2026 23:59:36 GMT\r\n"),
            "{text}"
        );
        assert!(
            text.contains("x-error-code: malformed_request\r\n"),
            "{text}"
        );
        assert_eq!(body_of(&out)["error"]["code"], "malformed_request");
        // A fresh request id, the same in the header and the body.
        let id = body_of(&out)["error"]["request_id"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(id.len(), 32);
        assert!(text.contains(&format!("x-request-id: {id}\r\n")), "{text}");
    }

    #[test]
    fn each_status_hyper_writes_has_its_code() {
        for (status, code) in [
            ("400 Bad Request", "malformed_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let head =
                format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let out = rewrite(head.as_bytes()).unwrap();
            assert_eq!(body_of(&out)["error"]["code"], code, "{status}");
        }
        assert_eq!(
            body_of(&request_timeout())["error"]["code"],
            "request_timeout"
        );
    }

    #[test]
    fn what_comes_before_the_bare_head_is_kept() {
        let before =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        let mut written = before.to_vec();
        written.extend_from_slice(HYPER_400);
        let out = rewrite(&written).unwrap();
        assert!(out.starts_with(before));
        assert_eq!(
            body_of(&out[before.len()..])["error"]["code"],
            "malformed_request"
        );
    }

    #[test]
    fn payhsms_own_answers_are_never_touched() {
        for own in [
            &b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\ndate: x\r\n\r\n",
            b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\nallow: GET\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 12\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\nx",
            b"{\"error\":{}}",
            b"",
        ] {
            assert!(rewrite(own).is_none(), "{}", String::from_utf8_lossy(own));
        }
    }

    #[test]
    fn the_fuzz_entry_holds_on_the_known_cases() {
        fuzz_rewrite(HYPER_400);
        fuzz_rewrite(b"HTTP/1.1 431 x\r\ncontent-length: 0\r\n\r\n");
        fuzz_rewrite(b"HTTP/1.");
        fuzz_rewrite(&[0xff; 600]);
    }
}
