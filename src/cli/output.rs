//! What the command prints and the exit code it returns.
//!
//! 2xx: the body on stdout (JSON pretty-printed, anything else as is). Otherwise the API
//! error's code and message on stderr. Response bodies and their pretty copies are wiped after
//! printing: a detokenize response holds a PAN.

use crate::client::{ClientError, Response};
use serde_json::Value;
use std::fmt;
use std::io::Write;
use zeroize::{Zeroize, Zeroizing};

/// Success: the daemon answered 2xx.
pub const EXIT_OK: i32 = 0;
/// The daemon answered with an API error (4xx, 5xx).
pub const EXIT_API_ERROR: i32 = 1;
/// Bad usage, bad local files, no connection, or a local failure.
pub const EXIT_USAGE: i32 = 2;

/// A failure before or around the API call (exit code 2).
#[derive(Debug)]
pub enum CliError {
    /// Bad input: arguments, stdin, files.
    Usage(String),
    /// Could not talk to the daemon.
    Client(ClientError),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Usage(m) => f.write_str(m),
            Self::Client(e) => e.fmt(f),
        }
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        Self::Client(e)
    }
}

/// Prints `err` on stderr and returns [`EXIT_USAGE`].
pub fn fail(err: &CliError) -> i32 {
    eprintln!("payhsm: {err}");
    EXIT_USAGE
}

/// Prints `response` and returns the exit code; wipes the body afterwards.
pub fn report(mut response: Response) -> i32 {
    let code = if (200..300).contains(&response.status) {
        match print_body(&response.body) {
            Ok(()) => EXIT_OK,
            Err(e) => fail(&CliError::Usage(format!("writing to stdout: {e}"))),
        }
    } else {
        eprintln!("payhsm: {}", describe_api_error(&response));
        EXIT_API_ERROR
    };
    response.body.zeroize();
    code
}

fn print_body(body: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match serde_json::from_slice::<Value>(body) {
        Ok(mut value) => {
            let pretty = serde_json::to_string_pretty(&value).map(Zeroizing::new);
            wipe_strings(&mut value);
            let pretty = pretty.map_err(std::io::Error::other)?;
            out.write_all(pretty.as_bytes())?;
            out.write_all(b"\n")?;
        }
        // Not JSON: Prometheus metrics, plain-text health answers.
        Err(_) => out.write_all(body)?,
    }
    out.flush()
}

/// `HTTP 404 unknown_token: no such token`, from the API v1 error shape
/// `{"error": {"code", "message"}}`; server text is stripped of control characters.
pub(crate) fn describe_api_error(response: &Response) -> String {
    let status = response.status;
    let reason = hyper::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let parsed = serde_json::from_slice::<Value>(&response.body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let field = |name: &str| error.and_then(|e| e.get(name)).and_then(Value::as_str);
    match (field("code"), field("message")) {
        (Some(code), Some(message)) => {
            format!("HTTP {status} {}: {}", printable(code), printable(message))
        }
        (Some(code), None) => format!("HTTP {status} {}", printable(code)),
        _ => format!("HTTP {status} {reason}").trim_end().to_owned(),
    }
}

/// Server-supplied text without terminal control characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// Zeroizes every string in a JSON value (serde_json's `Value` does not on drop).
fn wipe_strings(value: &mut Value) {
    match value {
        Value::String(s) => s.zeroize(),
        Value::Array(items) => items.iter_mut().for_each(wipe_strings),
        Value::Object(map) => map.values_mut().for_each(wipe_strings),
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::HeaderMap;

    fn response(status: u16, body: &str) -> Response {
        Response {
            status,
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn api_error_shows_status_code_and_message() {
        let r = response(
            422,
            r#"{"error":{"code":"invalid_pan","message":"the PAN fails the Luhn check"}}"#,
        );
        assert_eq!(
            describe_api_error(&r),
            "HTTP 422 invalid_pan: the PAN fails the Luhn check"
        );
    }

    #[test]
    fn api_error_without_json_shows_the_status_reason() {
        assert_eq!(
            describe_api_error(&response(503, "down")),
            "HTTP 503 Service Unavailable"
        );
    }

    #[test]
    fn api_error_text_loses_control_characters() {
        let r = response(
            400,
            r#"{"error":{"code":"bad\u001b[2J","message":"x\r\ny"}}"#,
        );
        assert_eq!(describe_api_error(&r), "HTTP 400 bad[2J: xy");
    }

    #[test]
    fn wipe_strings_empties_nested_strings() {
        let mut v: Value =
            serde_json::from_str(r#"{"pan":"4111111111111111","a":[{"b":"c"}],"n":1}"#).unwrap();
        wipe_strings(&mut v);
        assert_eq!(v, serde_json::json!({"pan":"","a":[{"b":""}],"n":1}));
    }
}
