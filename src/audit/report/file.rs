//! The signed report and the verifier's side: reading a report file (JSON, Markdown or HTML),
//! checking its signature against the audit key set, and re-deriving its figures from an
//! export of the log. Sans-io: bytes and values in, a verdict out (a fuzz target calls
//! [`parse_report_file`]).

use super::render::{render_html, render_markdown, EMBED_CLOSE, EMBED_OPEN};
use super::{derive, DeriveError, Report, REPORT_KIND};
use crate::audit::{to_hex, verify_export, AuditRecord, VerifyError};
use crate::jose::{verify_compact, JoseError, Jwks};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

/// The largest report file read.
pub const MAX_REPORT_FILE: usize = 64 * 1024 * 1024;

/// The daemon's answer and the JSON format: the report and its signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedReport {
    /// The report.
    pub report: Report,
    /// A compact JWS (ES256, audit key) over [`claims`] of the report.
    pub jws: String,
}

/// What the audit key signs for a report: its kind, period and time, the log head it covers,
/// and the SHA-256 of its canonical JSON, so the report bytes are the signed ones.
pub fn claims(report: &Report) -> Value {
    json!({
        "payhsm": "evidence-report",
        "kind": REPORT_KIND,
        "since": report.since,
        "until": report.until,
        "generated_at": report.generated_at,
        "log_records": report.log.records,
        "log_head": report.log.head,
        "report_sha256": to_hex(&Sha256::digest(report.canonical_json())),
    })
}

/// How a report file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// The signed answer, as the daemon sent it.
    Json,
    /// Markdown with the signed report embedded.
    Markdown,
    /// One HTML page with the signed report embedded.
    Html,
}

impl ReportFormat {
    /// Parses `json`, `md` or `html`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "json" => Self::Json,
            "md" => Self::Markdown,
            "html" => Self::Html,
            _ => return None,
        })
    }

    /// The file's text for `signed`.
    pub fn render(self, signed: &SignedReport) -> String {
        match self {
            Self::Json => {
                let mut s = serde_json::to_string(signed).unwrap_or_default();
                s.push('\n');
                s
            }
            Self::Markdown => render_markdown(signed),
            Self::Html => render_html(signed),
        }
    }
}

/// A report file read back: its format and the signed report it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    /// How it was written.
    pub format: ReportFormat,
    /// What it holds (for Markdown and HTML, the visible text is its rendering).
    pub signed: SignedReport,
}

/// Why a report does not verify.
#[derive(Debug)]
#[non_exhaustive]
pub enum ReportFileError {
    /// The file is larger than [`MAX_REPORT_FILE`].
    TooLarge,
    /// Not UTF-8.
    NotUtf8,
    /// Not a report: bad JSON, or no embedded signed report.
    Malformed(String),
    /// The visible text differs from the rendering of the signed report at this line.
    BodyEdited {
        /// 1-based line number.
        line: usize,
        /// What the file says there.
        found: String,
        /// What the signed report renders there.
        signed: String,
    },
    /// The JWS does not verify against the key set (bad signature, unknown `kid`, ...).
    Signature(JoseError),
    /// The JWS verifies but signs another report (its digest, period or head differ).
    NotTheSignedReport,
    /// The report's period cannot be read.
    Period(DeriveError),
    /// The log export given does not verify.
    LogNotIntact(VerifyError),
    /// The log holds fewer records than the report was derived from.
    LogTooShort {
        /// Records the report covers.
        needed: u64,
        /// Records the export holds.
        found: u64,
    },
    /// A figure derived from the log differs from the report's.
    FigureDiffers {
        /// Where, as a JSON path (`pci_dss_10_2_10_3.detokenized`).
        path: String,
        /// What the report says.
        in_report: String,
        /// What the log gives.
        from_log: String,
    },
}

impl std::fmt::Display for ReportFileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TooLarge => write!(f, "the file is larger than {MAX_REPORT_FILE} bytes"),
            Self::NotUtf8 => f.write_str("the file is not UTF-8"),
            Self::Malformed(why) => write!(f, "not a signed report: {why}"),
            Self::BodyEdited {
                line,
                found,
                signed,
            } => write!(
                f,
                "line {line} differs from the signed report: it says {found:?}, the signed \
                 report renders {signed:?}"
            ),
            Self::Signature(e) => write!(f, "the signature does not verify: {e}"),
            Self::NotTheSignedReport => f.write_str(
                "the signature is valid but covers another report (digest, period or log head \
                 differ): the report was edited",
            ),
            Self::Period(e) => write!(f, "{e}"),
            Self::LogNotIntact(e) => write!(f, "the audit log export is not intact: {e}"),
            Self::LogTooShort { needed, found } => write!(
                f,
                "the report covers {needed} audit records but the export holds {found}"
            ),
            Self::FigureDiffers {
                path,
                in_report,
                from_log,
            } => write!(
                f,
                "{path}: the report says {in_report} but the log gives {from_log}"
            ),
        }
    }
}

impl std::error::Error for ReportFileError {}

/// Reads a report file: the JSON answer, or Markdown or HTML whose text must be exactly the
/// rendering of the signed report it embeds (so an edited figure is found here). The signature
/// is checked by [`verify_signature`].
pub fn parse_report_file(bytes: &[u8]) -> Result<ReportFile, ReportFileError> {
    if bytes.len() > MAX_REPORT_FILE {
        return Err(ReportFileError::TooLarge);
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ReportFileError::NotUtf8)?;
    if text.trim_start().starts_with('{') {
        let signed: SignedReport = serde_json::from_str(text).map_err(malformed_json)?;
        return Ok(ReportFile {
            format: ReportFormat::Json,
            signed,
        });
    }
    let mut embedded = text.match_indices(EMBED_OPEN);
    let (Some((at, _)), None) = (embedded.next(), embedded.next()) else {
        return Err(ReportFileError::Malformed(
            "expected exactly one embedded signed report (payhsm-signed-report:v1)".into(),
        ));
    };
    let rest = text.get(at + EMBED_OPEN.len()..).unwrap_or_default();
    let blob = rest
        .split_once(EMBED_CLOSE)
        .map(|(b, _)| b)
        .ok_or_else(|| ReportFileError::Malformed("the embedded report is not closed".into()))?;
    let json = URL_SAFE_NO_PAD
        .decode(blob)
        .map_err(|_| ReportFileError::Malformed("the embedded report is not base64url".into()))?;
    let signed: SignedReport = serde_json::from_slice(&json).map_err(malformed_json)?;
    let format = if text.starts_with("<!DOCTYPE html>") {
        ReportFormat::Html
    } else {
        ReportFormat::Markdown
    };
    let rendered = format.render(&signed);
    if rendered != text {
        return Err(first_difference(text, &rendered));
    }
    Ok(ReportFile { format, signed })
}

/// A report that is not the JSON a signed report is: where, never what. serde_json's own
/// messages quote the file's values ("invalid type: string \"4111...\""), and a report file
/// is outside input whose errors are printed.
fn malformed_json(e: serde_json::Error) -> ReportFileError {
    ReportFileError::Malformed(format!(
        "not a signed report: {:?} error at line {}, column {}",
        e.classify(),
        e.line(),
        e.column()
    ))
}

/// At most 200 characters of `s` for an error message, and none if `s` could hold a card
/// number anywhere (checked on the whole text: a number cut at the 200th character would no
/// longer look like one): a report file is outside input, and what it says is echoed.
fn shown(s: &str) -> String {
    if crate::card::contains_pan(s) {
        "<not shown: it holds what could be a card number>".to_owned()
    } else {
        s.chars().take(200).collect()
    }
}

fn first_difference(found: &str, signed: &str) -> ReportFileError {
    let clip = shown;
    let mut a = found.split('\n');
    let mut b = signed.split('\n');
    let mut line = 0;
    loop {
        line += 1;
        match (a.next(), b.next()) {
            (Some(x), Some(y)) if x == y => continue,
            (x, y) => {
                return ReportFileError::BodyEdited {
                    line,
                    found: clip(x.unwrap_or("<end of file>")),
                    signed: clip(y.unwrap_or("<end of file>")),
                }
            }
        }
    }
}

/// Checks the JWS against the audit key set at `now_unix` and that it signs this very report.
/// Returns the `kid` that signed.
pub fn verify_signature(
    signed: &SignedReport,
    jwks: &Jwks,
    now_unix: i64,
) -> Result<String, ReportFileError> {
    let got = verify_compact(&signed.jws, jwks, now_unix).map_err(ReportFileError::Signature)?;
    if got != claims(&signed.report) {
        return Err(ReportFileError::NotTheSignedReport);
    }
    // verify_compact found the kid in the set; read it back for the caller.
    let kid = signed
        .jws
        .split('.')
        .next()
        .and_then(|h| URL_SAFE_NO_PAD.decode(h).ok())
        .and_then(|h| serde_json::from_slice::<Value>(&h).ok())
        .and_then(|h| h.get("kid").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_default();
    Ok(kid)
}

/// Verifies `export` (a JSON-lines audit export; with `expected_key`, its checkpoint must be
/// signed by that key), then derives the report again from its first records and compares
/// every figure: the first difference is named.
pub fn verify_against_log(
    report: &Report,
    export: &str,
    expected_key: Option<&[u8]>,
) -> Result<(), ReportFileError> {
    verify_export(export, expected_key).map_err(ReportFileError::LogNotIntact)?;
    let mut records = Vec::new();
    for line in export.lines() {
        // The checkpoint line is the only line that is not a record (the export verified).
        if let Ok(r) = serde_json::from_str::<AuditRecord>(line) {
            if r.seq > report.log.records {
                break;
            }
            records.push(r);
        }
    }
    let found = records.last().map_or(0, |r| r.seq);
    if found < report.log.records {
        return Err(ReportFileError::LogTooShort {
            needed: report.log.records,
            found,
        });
    }
    let inputs = report.inputs().map_err(ReportFileError::Period)?;
    let again = derive(&inputs, &records);
    let (a, b) = (
        serde_json::to_value(report).unwrap_or(Value::Null),
        serde_json::to_value(&again).unwrap_or(Value::Null),
    );
    match first_diff(&a, &b, String::new()) {
        None => Ok(()),
        Some((path, in_report, from_log)) => Err(ReportFileError::FigureDiffers {
            path,
            in_report,
            from_log,
        }),
    }
}

/// The first path where two JSON values differ, with both values (clipped).
fn first_diff(a: &Value, b: &Value, path: String) -> Option<(String, String, String)> {
    let clip = |v: Option<&Value>| shown(&v.map_or_else(|| "nothing".to_owned(), Value::to_string));
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => {
                        if let Some(d) = first_diff(v, w, join(k)) {
                            return Some(d);
                        }
                    }
                    None => return Some((join(k), clip(Some(v)), clip(None))),
                }
            }
            y.iter()
                .find(|(k, _)| !x.contains_key(*k))
                .map(|(k, w)| (join(k), clip(None), clip(Some(w))))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                if let Some(d) = first_diff(v, w, format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (x.len() != y.len()).then(|| {
                let i = x.len().min(y.len());
                (format!("{path}[{i}]"), clip(x.get(i)), clip(y.get(i)))
            })
        }
        _ => (a != b).then(|| (path, clip(Some(a)), clip(Some(b)))),
    }
}

#[cfg(test)]
pub(super) fn first_diff_for_tests(a: &Value, b: &Value) -> Option<(String, String, String)> {
    first_diff(a, b, String::new())
}
