//! The cards of another vault, one per line: JSON lines `{"ref","pan","exp_month","exp_year"}`
//! or CSV with the header `ref,pan,exp_month,exp_year`. Sans-io: lines in, cards or codes out.
//!
//! A PAN goes from the line straight into a boxed [`Pan`] (zeroized on drop), never into a
//! `String`; what is refused is named by a stable code, never by its content.

use crate::api::types::{expiry, PanField};
use crate::card::{Expiry, Pan};
use crate::text::LoggableText;
use serde::Deserialize;
use std::path::Path;
use zeroize::Zeroizing;

/// The CSV header the input must start with.
pub const CSV_HEADER: &str = "ref,pan,exp_month,exp_year";

/// How the input file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One JSON object per line.
    JsonLines,
    /// CSV with [`CSV_HEADER`] on the first line.
    Csv,
}

impl Format {
    /// From the extension (`.csv`; `.jsonl`, `.ndjson`, `.json`), else from the first
    /// non-empty line: `{` starts JSON lines, anything else must be the CSV header.
    pub fn detect(path: &Path, first_line: &str) -> Self {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("csv") => Self::Csv,
            Some(e)
                if ["jsonl", "ndjson", "json"]
                    .iter()
                    .any(|j| e.eq_ignore_ascii_case(j)) =>
            {
                Self::JsonLines
            }
            _ if first_line
                .trim_start_matches('\u{feff}')
                .trim_start()
                .starts_with('{') =>
            {
                Self::JsonLines
            }
            _ => Self::Csv,
        }
    }
}

/// Whether `line` is the CSV header (a byte-order mark and surrounding blanks allowed).
pub fn is_csv_header(line: &str) -> bool {
    line.trim_start_matches('\u{feff}')
        .trim()
        .eq_ignore_ascii_case(CSV_HEADER)
}

/// A card ready to send.
#[derive(Debug)]
pub struct Card {
    /// The card number, boxed so that moving the card never copies the digits.
    pub pan: Box<Pan>,
    /// Its expiry, if the line gave one.
    pub expiry: Option<Expiry>,
}

/// One input line, parsed.
#[derive(Debug)]
pub struct Line {
    /// The external reference, when the line has one that may be written out (no card
    /// number, nothing that hides or reorders text).
    pub reference: Option<LoggableText>,
    /// The card, or the code of why the line is refused.
    pub card: Result<Card, &'static str>,
}

impl Line {
    fn refused(reference: Option<LoggableText>, code: &'static str) -> Self {
        Self {
            reference,
            card: Err(code),
        }
    }
}

#[derive(Deserialize)]
struct JsonLine {
    #[serde(rename = "ref")]
    reference: String,
    pan: PanField,
    #[serde(default)]
    exp_month: Option<u64>,
    #[serde(default)]
    exp_year: Option<u64>,
}

/// Parses one non-empty line (without its line break).
pub fn parse_line(format: Format, line: &str) -> Line {
    match format {
        Format::JsonLines => match serde_json::from_str::<JsonLine>(line) {
            // serde's message may quote the line: only the code is kept.
            Err(_) => Line::refused(None, "malformed_line"),
            Ok(l) => card_line(&l.reference, l.pan.0, l.exp_month, l.exp_year),
        },
        Format::Csv => {
            let Some([reference, pan, month, year]) = csv_fields(line) else {
                return Line::refused(None, "malformed_line");
            };
            let number = |f: &str| {
                let f = f.trim();
                match f.is_empty() {
                    true => Ok(None),
                    false => f.parse::<u64>().map(Some),
                }
            };
            let (Ok(month), Ok(year)) = (number(&month), number(&year)) else {
                let reference = LoggableText::parse(reference.trim()).ok();
                return Line::refused(reference, "invalid_expiry");
            };
            card_line(reference.trim(), Pan::parse(pan.trim()), month, year)
        }
    }
}

fn card_line(
    reference: &str,
    pan: Result<Pan, crate::card::CardError>,
    month: Option<u64>,
    year: Option<u64>,
) -> Line {
    if reference.is_empty() {
        return Line::refused(None, "missing_ref");
    }
    let reference = match LoggableText::parse(reference) {
        Ok(r) => r,
        Err(e) => return Line::refused(None, e.code()),
    };
    let card = pan
        .and_then(|pan| {
            Ok(Card {
                pan: Box::new(pan),
                expiry: expiry(month, year)?,
            })
        })
        .map_err(|e| e.code());
    Line {
        reference: Some(reference),
        card,
    }
}

/// The four fields of a CSV line (RFC 4180 quoting: `"a,b"`, `""` for a quote), or `None`
/// when it does not have exactly four. Each field is zeroized on drop (one is the PAN) and
/// sized up front, so it never reallocates.
fn csv_fields(line: &str) -> Option<[Zeroizing<String>; 4]> {
    let mut fields: Vec<Zeroizing<String>> = Vec::with_capacity(4);
    let mut rest = line;
    loop {
        let (field, after) = match rest.strip_prefix('"') {
            Some(quoted) => {
                let mut value = Zeroizing::new(String::with_capacity(quoted.len()));
                let mut chars = quoted.char_indices();
                let end = loop {
                    match chars.next()? {
                        (i, '"') if quoted.get(i + 1..)?.starts_with('"') => {
                            value.push('"');
                            chars.next();
                        }
                        (i, '"') => break i + 1,
                        (_, c) => value.push(c),
                    }
                };
                (value, quoted.get(end..)?)
            }
            None => {
                let end = rest.find(',').unwrap_or(rest.len());
                (
                    Zeroizing::new(rest.get(..end)?.to_owned()),
                    rest.get(end..)?,
                )
            }
        };
        if fields.len() == 4 {
            return None;
        }
        fields.push(field);
        match after.strip_prefix(',') {
            Some(next) => rest = next,
            None if after.trim().is_empty() => break,
            None => return None,
        }
    }
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(line: &Line) -> Option<&'static str> {
        line.card.as_ref().err().copied()
    }

    #[test]
    fn the_format_comes_from_the_extension_else_the_first_line() {
        assert_eq!(Format::detect(Path::new("a.csv"), "{"), Format::Csv);
        assert_eq!(
            Format::detect(Path::new("a.JSONL"), CSV_HEADER),
            Format::JsonLines
        );
        assert_eq!(
            Format::detect(Path::new("cards"), " {\"ref\":1}"),
            Format::JsonLines
        );
        assert_eq!(
            Format::detect(Path::new("cards.txt"), CSV_HEADER),
            Format::Csv
        );
        assert!(is_csv_header("\u{feff}REF,pan,exp_month,exp_year\r"));
        assert!(!is_csv_header("ref,pan"));
    }

    #[test]
    fn json_lines_give_cards_or_codes() {
        let ok = parse_line(
            Format::JsonLines,
            r#"{"ref":"c-1","pan":"4111111111111111","exp_month":12,"exp_year":2030}"#,
        );
        assert_eq!(ok.reference.unwrap().as_str(), "c-1");
        let card = ok.card.unwrap();
        assert_eq!(card.pan.expose_digits(), b"4111111111111111");
        assert_eq!(card.expiry.map(|e| (e.month(), e.year())), Some((12, 2030)));
        let cases = [
            (r#"{"ref":"c","pan":"4111111111111112"}"#, "invalid_pan"),
            (
                r#"{"ref":"c","pan":"4111111111111111","exp_month":13,"exp_year":2030}"#,
                "invalid_expiry",
            ),
            (
                r#"{"ref":"c","pan":"4111111111111111","exp_month":1}"#,
                "invalid_expiry",
            ),
            (r#"{"ref":"","pan":"4111111111111111"}"#, "missing_ref"),
            (
                r#"{"ref":"4111111111111111","pan":"4111111111111111"}"#,
                "pan_in_text",
            ),
            (r#"{"ref":"c","pan":4111111111111111}"#, "malformed_line"),
            (r#"{"ref":"c""#, "malformed_line"),
        ];
        for (line, expected) in cases {
            let parsed = parse_line(Format::JsonLines, line);
            assert_eq!(code(&parsed), Some(expected), "{line}");
            if let Some(r) = parsed.reference {
                assert!(!r.as_str().contains("4111"));
            }
        }
    }

    #[test]
    fn csv_lines_give_cards_or_codes() {
        let ok = parse_line(Format::Csv, "c-1,4111111111111111,7,2031");
        assert_eq!(ok.reference.unwrap().as_str(), "c-1");
        assert!(ok.card.unwrap().expiry.is_some());
        let ok = parse_line(Format::Csv, "\"c,\"\"2\"\"\",5555555555554444,,\r");
        assert_eq!(ok.reference.unwrap().as_str(), "c,\"2\"");
        assert!(ok.card.unwrap().expiry.is_none());
        for (line, expected) in [
            ("c,4111111111111112,1,2030", "invalid_pan"),
            ("c,4111111111111111,x,2030", "invalid_expiry"),
            ("c,4111111111111111,1", "malformed_line"),
            ("c,4111111111111111,1,2030,extra", "malformed_line"),
            ("\"c,4111111111111111,1,2030", "malformed_line"),
            (",4111111111111111,1,2030", "missing_ref"),
        ] {
            assert_eq!(
                code(&parse_line(Format::Csv, line)),
                Some(expected),
                "{line}"
            );
        }
    }
}
