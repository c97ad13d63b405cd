//! `payhsm keys ...`: the key lifecycle API, for custodians.

use super::args::{ConnectArgs, KeyPurposeArg, KeysArgs, KeysCommand};
use super::output::{self, describe_api_error, CliError, EXIT_API_ERROR, EXIT_OK};
use super::session::Session;
use hyper::Method;
use serde_json::{json, Value};
use std::io::{IsTerminal, Write};

/// Exit code when an approval was recorded and waits for a second custodian.
pub const EXIT_PENDING: i32 = 3;

/// Runs a `payhsm keys` subcommand.
pub fn run(args: &KeysArgs, connect: &ConnectArgs) -> i32 {
    let result = Session::open(connect).and_then(|mut session| match &args.command {
        KeysCommand::List { json } => session.list(*json),
        KeysCommand::Rotate { purpose } => session.change("rotate", *purpose, None),
        KeysCommand::Activate {
            purpose,
            key_version,
        } => session.change("activate", *purpose, Some(*key_version)),
        KeysCommand::Retire {
            purpose,
            key_version,
        } => session.change("retire", *purpose, Some(*key_version)),
        KeysCommand::Destroy {
            purpose,
            key_version,
        } => session.change("destroy", *purpose, Some(*key_version)),
        KeysCommand::Jwks => session.jwks(),
        KeysCommand::Rewrap { batch } => session.rewrap(*batch),
    });
    result.unwrap_or_else(|e| output::fail(&e))
}

impl Session {
    fn list(&mut self, as_json: bool) -> Result<i32, CliError> {
        let response = self.send(Method::GET, "/v1/keys", None)?;
        if response.status != 200 {
            eprintln!("payhsm: {}", describe_api_error(&response));
            return Ok(EXIT_API_ERROR);
        }
        if as_json {
            return Ok(output::report(response));
        }
        let listing = response.json()?;
        print_table(&listing).map_err(|e| CliError::Usage(format!("writing to stdout: {e}")))?;
        for warning in field(&listing, "warnings").as_array().into_iter().flatten() {
            eprintln!("payhsm: warning: {}", warning.as_str().unwrap_or_default());
        }
        Ok(EXIT_OK)
    }

    fn jwks(&mut self) -> Result<i32, CliError> {
        Ok(output::report(self.send(
            Method::GET,
            "/v1/keys/jwks",
            None,
        )?))
    }

    fn change(
        &mut self,
        change: &str,
        purpose: KeyPurposeArg,
        version: Option<u32>,
    ) -> Result<i32, CliError> {
        let body = json!({ "change": change, "purpose": purpose.as_str(), "version": version });
        let response = self.send(Method::POST, "/v1/keys/changes", Some(body))?;
        match response.status {
            200 => {
                let v = response.json()?;
                eprintln!(
                    "payhsm: {} applied, approved by {}",
                    field(&v, "change").as_str().unwrap_or_default(),
                    join(field(&v, "approved_by"))
                );
                Ok(output::report(response))
            }
            202 => {
                let v = response.json()?;
                eprintln!(
                    "payhsm: approval of `{}` recorded; a second custodian must run the same \
                     command before {}",
                    field(&v, "change").as_str().unwrap_or_default(),
                    field(&v, "expires_at").as_str().unwrap_or_default()
                );
                let code = output::report(response);
                Ok(if code == EXIT_OK { EXIT_PENDING } else { code })
            }
            _ => {
                eprintln!("payhsm: {}", describe_api_error(&response));
                Ok(EXIT_API_ERROR)
            }
        }
    }

    /// Calls rewrap until nothing remains, showing progress. Stops when a batch moves nothing
    /// three times in a row (another process is changing the same records).
    fn rewrap(&mut self, batch: u64) -> Result<i32, CliError> {
        let mut done = 0u64;
        let mut stalled = 0;
        let tty = std::io::stderr().is_terminal();
        loop {
            let response = self.send(
                Method::POST,
                "/v1/keys/rewrap",
                Some(json!({ "batch": batch })),
            )?;
            if response.status != 200 {
                if tty {
                    eprintln!();
                }
                eprintln!("payhsm: {}", describe_api_error(&response));
                eprintln!("payhsm: {done} records rewrapped before the error; run again to resume");
                return Ok(EXIT_API_ERROR);
            }
            let v = response.json()?;
            let moved = field(&v, "rewrapped").as_u64().unwrap_or(0);
            let remaining = field(&v, "remaining").as_u64().unwrap_or(0);
            let version = field(&v, "active_version").as_u64().unwrap_or(0);
            done += moved;
            progress(tty, done, remaining, version);
            if remaining == 0 {
                if tty {
                    eprintln!();
                }
                println!(
                    "{}",
                    json!({ "rewrapped": done, "remaining": 0, "active_version": version })
                );
                return Ok(EXIT_OK);
            }
            stalled = if moved == 0 { stalled + 1 } else { 0 };
            if stalled >= 3 {
                eprintln!(
                    "payhsm: {remaining} records remain but none moved in 3 batches; run again"
                );
                return Ok(EXIT_API_ERROR);
            }
        }
    }
}

/// A progress bar on a terminal, one line per batch otherwise.
fn progress(tty: bool, done: u64, remaining: u64, version: u64) {
    let total = done + remaining;
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let width = 30u64;
    let filled = usize::try_from(percent * width / 100).unwrap_or(0);
    let bar = format!(
        "[{}{}]",
        "#".repeat(filled),
        ".".repeat(usize::try_from(width).unwrap_or(0).saturating_sub(filled))
    );
    let mut err = std::io::stderr().lock();
    let line = format!("{bar} {percent:>3}% {done}/{total} records on data key version {version}");
    let _ = if tty {
        write!(err, "\r{line}")
    } else {
        writeln!(err, "{line}")
    };
    let _ = err.flush();
}

/// A member of a JSON object, `null` when absent.
fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    v.get(name).unwrap_or(&Value::Null)
}

fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" and ")
        })
        .unwrap_or_default()
}

/// The key listing as an aligned table.
fn print_table(listing: &Value) -> std::io::Result<()> {
    let text = |v: &Value| match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.chars().filter(|c| !c.is_control()).collect(),
        other => other.to_string(),
    };
    let header = [
        "PURPOSE",
        "VER",
        "LABEL",
        "ALGORITHM",
        "KCV/THUMBPRINT",
        "STATE",
        "CREATED",
        "ACTIVATED",
        "CRYPTOPERIOD END",
        "RECORDS",
    ];
    let mut rows = vec![header.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()];
    for k in field(listing, "keys").as_array().into_iter().flatten() {
        let check = if field(k, "kcv").is_null() {
            text(field(k, "thumbprint"))
        } else {
            text(field(k, "kcv"))
        };
        let mut end = text(field(k, "cryptoperiod_end"));
        if *field(k, "cryptoperiod_exceeded") == Value::Bool(true) {
            end.push_str(" EXCEEDED");
        }
        rows.push(vec![
            text(field(k, "purpose")),
            text(field(k, "version")),
            text(field(k, "label")),
            text(field(k, "algorithm")),
            check,
            text(field(k, "state")),
            text(field(k, "created_at")),
            text(field(k, "activated_at")),
            end,
            text(field(k, "records")),
        ]);
    }
    let columns = header.len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = std::io::stdout().lock();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        writeln!(out, "{}", line.join("  ").trim_end())?;
    }
    out.flush()
}
