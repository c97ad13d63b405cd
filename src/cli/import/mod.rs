//! `payhsm tokens import`: the cards of another vault, tokenized over `POST /v1/tokens/batch`.
//!
//! The input is streamed, one batch at a time. Each card's `{"ref","token"}` line is appended
//! to the mapping file once its batch is answered, and the file is flushed after every batch.
//! A rerun after an interruption reads the mapping file first and skips the refs it holds
//! (a torn last line is cut off); a card sent twice is harmless anyway, since tokenization is
//! convergent per PAN and domain. Refused lines go to the error file (rewritten on each run)
//! as `{"line","ref","code"}`: never the PAN, and the ref only when it holds no card number.

mod input;
mod progress;

use super::args::{ConnectArgs, ImportArgs};
use super::output::{describe_api_error, CliError, EXIT_API_ERROR, EXIT_OK};
use super::session::Session;
use crate::text::LoggableText;
use hyper::Method;
use input::{is_csv_header, parse_line, Card, Format, Line};
use progress::Progress;
use serde::Deserialize;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, IsTerminal, Read, Write};
use std::path::Path;
use zeroize::Zeroizing;

/// The longest input line read; a longer one is refused (`line_too_long`), not truncated.
const MAX_LINE: usize = 4096;

/// Why the import stopped before the end.
enum Stop {
    /// Files, arguments or the connection (exit 2).
    Cli(CliError),
    /// The daemon refused a whole batch (exit 1): its description.
    Api(String),
}

impl From<CliError> for Stop {
    fn from(e: CliError) -> Self {
        Self::Cli(e)
    }
}

/// A file error, naming what was done to which file.
fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Stop + 'a {
    move |e| Stop::Cli(CliError::Usage(format!("{what} {}: {e}", path.display())))
}

/// What a run did, for the summary line.
#[derive(Debug, Default)]
struct Summary {
    created: u64,
    existing: u64,
    skipped: u64,
    failed: u64,
}

/// Runs the import; exit 0 when every card is in the mapping, 1 when some line was refused
/// (see the error file) or the daemon refused a batch, 2 on file, usage or connection errors.
pub fn run(connect: &ConnectArgs, args: &ImportArgs) -> i32 {
    match import(connect, args) {
        Ok(s) => {
            eprintln!(
                "payhsm: imported {} cards ({} new tokens, {} existing), {} already in the \
                 mapping, {} refused",
                s.created + s.existing,
                s.created,
                s.existing,
                s.skipped,
                s.failed
            );
            if s.failed == 0 {
                EXIT_OK
            } else {
                EXIT_API_ERROR
            }
        }
        Err(Stop::Cli(e)) => super::output::fail(&e),
        Err(Stop::Api(message)) => {
            eprintln!("payhsm: import stopped: {message}; rerun to resume");
            EXIT_API_ERROR
        }
    }
}

fn import(connect: &ConnectArgs, args: &ImportArgs) -> Result<Summary, Stop> {
    let total = count_lines(&args.file)?;
    let refs = read_mapping(&args.mapping, total)?;
    let mapping = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.mapping)
        .map_err(io("opening", &args.mapping))?;
    let errors = match &args.errors {
        Some(path) => Some(File::create(path).map_err(io("creating", path))?),
        None => None,
    };
    let file = File::open(&args.file).map_err(io("opening", &args.file))?;
    let mut run = Run {
        session: Session::open(connect)?,
        domain: args.domain.clone(),
        mapping: std::io::BufWriter::new(mapping),
        errors: errors.map(std::io::BufWriter::new),
        refs,
        progress: Progress::new(total, std::io::stderr().is_terminal()),
        summary: Summary::default(),
        pending: Vec::with_capacity(usize::from(args.batch)),
        batch: usize::from(args.batch),
    };
    run.lines(BufReader::new(file), &args.file)?;
    run.send()?;
    run.progress.finish();
    run.mapping.flush().map_err(io("writing", &args.mapping))?;
    if let Some(e) = run.errors.as_mut() {
        e.flush()
            .map_err(|e| Stop::Cli(CliError::Usage(format!("writing errors: {e}"))))?;
    }
    Ok(run.summary)
}

/// A card waiting for its batch.
struct Pending {
    line: u64,
    reference: LoggableText,
    card: Card,
}

struct Run {
    session: Session,
    domain: String,
    mapping: std::io::BufWriter<File>,
    errors: Option<std::io::BufWriter<File>>,
    /// Each ref of the mapping file (false) or of this run's input (true): one table, so
    /// a card costs about 20 bytes of memory whatever the size of the run.
    refs: HashMap<RefKey, bool>,
    progress: Progress,
    summary: Summary,
    pending: Vec<Pending>,
    batch: usize,
}

impl Run {
    /// Reads the input line by line, queueing cards and sending each full batch.
    fn lines(&mut self, mut reader: impl BufRead, path: &Path) -> Result<(), Stop> {
        // Sized above the limit so it never reallocates (a PAN would be left behind).
        let mut buf = Zeroizing::new(Vec::with_capacity(MAX_LINE + 2));
        let mut format = None;
        let mut number = 0u64;
        loop {
            buf.clear();
            let n = (&mut reader)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buf)
                .map_err(io("reading", path))?;
            if n == 0 {
                return Ok(());
            }
            number += 1;
            if buf.len() > MAX_LINE && buf.last() != Some(&b'\n') {
                skip_line(&mut reader).map_err(io("reading", path))?;
                self.refuse(number, None, "line_too_long")?;
                continue;
            }
            let Ok(text) = std::str::from_utf8(&buf) else {
                self.refuse(number, None, "malformed_line")?;
                continue;
            };
            let text = text.trim_end_matches(['\n', '\r']);
            if text.trim().is_empty() {
                continue;
            }
            let first = format.is_none();
            let format = *format.get_or_insert_with(|| Format::detect(path, text));
            if first && format == Format::Csv {
                if !is_csv_header(text) {
                    return Err(Stop::Cli(CliError::Usage(format!(
                        "{}: the first line must be the header {}",
                        path.display(),
                        input::CSV_HEADER
                    ))));
                }
                continue;
            }
            self.line(number, parse_line(format, text))?;
        }
    }

    fn line(&mut self, number: u64, line: Line) -> Result<(), Stop> {
        let Line { reference, card } = line;
        let Some(reference) = reference else {
            return self.refuse(number, None, card.err().unwrap_or("missing_ref"));
        };
        let key = ref_key(reference.as_str());
        match self.refs.insert(key, true) {
            Some(true) => return self.refuse(number, Some(&reference), "duplicate_ref"),
            Some(false) => {
                self.summary.skipped += 1;
                self.progress.advance(1);
                return Ok(());
            }
            None => {}
        }
        match card {
            Err(code) => self.refuse(number, Some(&reference), code),
            Ok(card) => {
                self.pending.push(Pending {
                    line: number,
                    reference,
                    card,
                });
                if self.pending.len() >= self.batch {
                    self.send()?;
                }
                Ok(())
            }
        }
    }

    /// Sends the queued cards as one batch and writes each result.
    fn send(&mut self) -> Result<(), Stop> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let body = batch_body(&self.domain, &self.pending)?;
        let response = self
            .session
            .send_bytes(Method::POST, "/v1/tokens/batch", body)?;
        if response.status != 200 {
            self.progress.clear();
            return Err(Stop::Api(describe_api_error(&response)));
        }
        let answer: BatchAnswer = serde_json::from_slice(&response.body)
            .map_err(|e| Stop::Api(format!("an unreadable batch answer: {e}")))?;
        let pending = std::mem::take(&mut self.pending);
        if answer.results.len() != pending.len() {
            return Err(Stop::Api("a batch answer with a result missing".to_owned()));
        }
        for (p, result) in pending.iter().zip(answer.results) {
            match (result.token, result.error) {
                (Some(token), _) => {
                    let line = serde_json::json!({"ref": p.reference.as_str(), "token": token});
                    writeln!(self.mapping, "{line}")
                        .map_err(|e| Stop::Cli(CliError::Usage(format!("writing mapping: {e}"))))?;
                    match result.status.as_deref() {
                        Some("created") => self.summary.created += 1,
                        _ => self.summary.existing += 1,
                    }
                    self.progress.advance(1);
                }
                (None, error) => {
                    let code = error
                        .map(|e| e.code)
                        .unwrap_or_else(|| "no_token".to_owned());
                    self.refuse(p.line, Some(&p.reference), &code)?;
                }
            }
        }
        self.pending = pending;
        self.pending.clear();
        self.mapping
            .flush()
            .map_err(|e| Stop::Cli(CliError::Usage(format!("writing mapping: {e}"))))?;
        Ok(())
    }

    /// Writes a refused line: its number, its ref (screened: never a card number) and the code.
    fn refuse(
        &mut self,
        line: u64,
        reference: Option<&LoggableText>,
        code: &str,
    ) -> Result<(), Stop> {
        self.summary.failed += 1;
        self.progress.advance(1);
        let entry = serde_json::json!({
            "line": line,
            "ref": reference.map(LoggableText::as_str),
            "code": code,
        });
        match self.errors.as_mut() {
            Some(errors) => writeln!(errors, "{entry}")
                .map_err(|e| Stop::Cli(CliError::Usage(format!("writing errors: {e}")))),
            None => {
                self.progress.clear();
                eprintln!("payhsm: refused: {entry}");
                Ok(())
            }
        }
    }
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<BatchResult>,
}

#[derive(Deserialize)]
struct BatchResult {
    token: Option<String>,
    status: Option<String>,
    error: Option<BatchError>,
}

#[derive(Deserialize)]
struct BatchError {
    code: String,
}

/// `{"domain":..,"items":[{"pan":..,"exp_month":..,"exp_year":..},..]}`, written into a buffer
/// sized up front so it never reallocates (it holds the PANs; the client wipes it once sent).
fn batch_body(domain: &str, pending: &[Pending]) -> Result<Vec<u8>, Stop> {
    // The item's JSON around a PAN of at most 19 digits.
    const ITEM: usize = 64 + 19;
    let capacity = 64 + 6 * domain.len() + pending.len() * ITEM;
    let mut out = Vec::with_capacity(capacity);
    let domain = serde_json::to_string(domain)
        .map_err(|e| Stop::Cli(CliError::Usage(format!("encoding the domain: {e}"))))?;
    out.extend_from_slice(b"{\"domain\":");
    out.extend_from_slice(domain.as_bytes());
    out.extend_from_slice(b",\"items\":[");
    for (i, p) in pending.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"pan\":\"");
        out.extend_from_slice(p.card.pan.expose_digits());
        out.push(b'"');
        if let Some(e) = p.card.expiry {
            // Digits only: no escaping, no allocation.
            let _ = write!(
                out,
                ",\"exp_month\":{},\"exp_year\":{}",
                e.month(),
                e.year()
            );
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}");
    debug_assert!(out.len() <= capacity);
    Ok(out)
}

/// Reads and drops the rest of an over-long line.
fn skip_line(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok(());
        }
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            reader.consume(i + 1);
            return Ok(());
        }
        let n = buf.len();
        reader.consume(n);
    }
}

/// The number of non-blank lines of the input (the CSV header included: the bar's total is
/// then one over, which it survives).
fn count_lines(path: &Path) -> Result<u64, Stop> {
    let mut file = File::open(path).map_err(io("opening", path))?;
    let mut buf = Zeroizing::new(vec![0u8; 64 * 1024]);
    let (mut lines, mut blank) = (0u64, true);
    loop {
        let n = file.read(&mut buf).map_err(io("reading", path))?;
        if n == 0 {
            break;
        }
        for b in buf.iter().take(n) {
            match b {
                b'\n' => {
                    lines += u64::from(!blank);
                    blank = true;
                }
                b' ' | b'\t' | b'\r' => {}
                _ => blank = false,
            }
        }
    }
    Ok(lines + u64::from(!blank))
}

#[derive(Deserialize)]
struct MappingLine {
    #[serde(rename = "ref")]
    reference: String,
    #[allow(dead_code)] // read to check the line is whole
    token: String,
}

/// The refs already in the mapping file (none if it does not exist). A last line without its
/// line break (the run was cut while writing it) is cut off the file.
/// The refs of the mapping file, in a table sized for `cards` refs (the input's lines): it
/// then never grows during the run.
fn read_mapping(path: &Path, cards: u64) -> Result<HashMap<RefKey, bool>, Stop> {
    let mut done = HashMap::with_capacity(usize::try_from(cards).unwrap_or(0));
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(e) => return Err(io("opening", path)(e)),
    };
    // Streamed: a mapping of millions of cards is never held whole.
    let mut reader = BufReader::new(&file);
    let (mut line, mut whole, mut number) = (String::new(), 0u64, 0u64);
    loop {
        line.clear();
        let n = reader.read_line(&mut line).map_err(io("reading", path))?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        number += 1;
        let parsed: MappingLine = serde_json::from_str(line.trim_end()).map_err(|_| {
            Stop::Cli(CliError::Usage(format!(
                "{} line {number}: not a {{\"ref\",\"token\"}} line",
                path.display(),
            )))
        })?;
        done.insert(ref_key(&parsed.reference), false);
        whole += n as u64;
    }
    // A torn last line (the run was interrupted while writing it) is cut off.
    let len = file.metadata().map_err(io("reading", path))?.len();
    if whole < len {
        file.set_len(whole).map_err(io("repairing", path))?;
    }
    Ok(done)
}

/// A ref as the import remembers it: 128 bits of its SHA-256, so memory stays about 20 bytes
/// per card whatever the refs' length (two refs of 10 million share a key with probability
/// about 10^-25).
type RefKey = [u8; 16];

fn ref_key(reference: &str) -> RefKey {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(reference.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(digest.get(..16).unwrap_or_default());
    key
}
