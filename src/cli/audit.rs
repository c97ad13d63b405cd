//! `payhsm audit export|verify|jwks|sth|prove|consistency|verify-proof|verify-receipt` (the
//! evidence report: [`super::report`]).

use super::args::{AuditArgs, AuditCommand, ConnectArgs};
use super::output::{describe_api_error, fail, CliError};
use super::session::Session;
use super::{EXIT_API_ERROR, EXIT_OK};
use crate::audit::proof::{
    parse_receipt, proves_receipt, verify_proof as verify_proof_file, Proven, MAX_PROOF_FILE,
    MAX_RECEIPT_FILE,
};
use crate::audit::{export_jsonl, to_hex, AuditRecord, Checkpoint};
use crate::config::Config;
use crate::jose::Jwks;
use crate::service::MAX_AUDIT_PAGE;
use base64::Engine as _;
use hyper::Method;
use std::io::Write as _;
use std::path::Path;

/// Runs an audit subcommand and returns the exit code.
pub fn run(args: &AuditArgs, connect: &ConnectArgs) -> i32 {
    match &args.command {
        AuditCommand::Export {
            data_dir: Some(data_dir),
            out,
            user_pin_fd,
        } => export(data_dir, out.as_deref(), *user_pin_fd),
        AuditCommand::Export {
            data_dir: None,
            out,
            user_pin_fd,
        } => {
            if user_pin_fd.is_some() {
                return fail(&CliError::Usage(
                    "--user-pin-fd is for --data-dir; over the API the daemon signs".into(),
                ));
            }
            export_api(connect, out.as_deref()).unwrap_or_else(|e| fail(&e))
        }
        AuditCommand::Verify { file, public_key } => verify(file, public_key.as_deref()),
        AuditCommand::Jwks => get(connect, "/v1/audit/jwks".to_owned()),
        AuditCommand::Sth => get(connect, "/v1/audit/sth".to_owned()),
        AuditCommand::Prove { seq, tree_size } => {
            let size = tree_size.map_or_else(String::new, |m| format!("&tree_size={m}"));
            get(connect, format!("/v1/audit/proof?seq={seq}{size}"))
        }
        AuditCommand::Consistency { from, to } => get(
            connect,
            format!("/v1/audit/consistency?from={from}&to={to}"),
        ),
        AuditCommand::VerifyProof { file, jwks } => verify_proof(file, jwks),
        AuditCommand::VerifyReceipt {
            file,
            jwks,
            tree_size,
            proof_out,
        } => verify_receipt(connect, (file, jwks, *tree_size, proof_out.as_deref()))
            .unwrap_or_else(|e| fail(&e)),
        AuditCommand::Report {
            since,
            until,
            format,
            out,
            data_dir,
            user_pin_fd,
        } => super::report::report(
            &super::report::ReportRequest {
                since,
                until,
                format,
                out: out.as_deref(),
                data_dir: data_dir.as_deref(),
                user_pin_fd: *user_pin_fd,
            },
            connect,
        ),
        AuditCommand::VerifyReport { file, jwks, log } => {
            super::report::verify_report(file, jwks.as_deref(), log.as_deref(), connect)
        }
    }
}

/// One GET, its answer printed as `output::report` does (JSON on stdout, exit 0 for 2xx).
fn get(connect: &ConnectArgs, path: String) -> i32 {
    Session::open(connect)
        .and_then(|mut s| s.send(Method::GET, &path, None))
        .map(super::output::report)
        .unwrap_or_else(|e| fail(&e))
}

/// The most a key set file may hold (a few keys; far more than any real one).
const MAX_JWKS_FILE: usize = 1024 * 1024;

/// A file's bytes, refused past `max` bytes without reading more than one byte past it: the
/// files these commands read are outside input, parsed whole.
pub(super) fn read_bounded(path: &Path, max: usize) -> Result<Vec<u8>, CliError> {
    let what = |e: &dyn std::fmt::Display| CliError::Usage(format!("{}: {e}", path.display()));
    let file = std::fs::File::open(path).map_err(|e| what(&e))?;
    let mut bytes = Vec::new();
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    std::io::Read::read_to_end(&mut std::io::Read::take(file, limit), &mut bytes)
        .map_err(|e| what(&e))?;
    if bytes.len() > max {
        return Err(what(&format!("larger than {max} bytes")));
    }
    Ok(bytes)
}

/// The audit key set in `path` (`payhsm audit jwks` writes it).
pub(super) fn read_jwks(path: &Path) -> Result<Jwks, CliError> {
    Jwks::parse(&read_bounded(path, MAX_JWKS_FILE)?)
        .map_err(|e| CliError::Usage(format!("the audit key set {}: {e}", path.display())))
}

/// What a verified proof proved, as `verify-proof` prints it.
fn describe(proven: &Proven) -> String {
    match proven {
        Proven::Inclusion { record, head } => format!(
            "ok: record {} ({} by {}, outcome {}) is in the log of {} records, root {}, signed \
             at {} ms",
            record.seq,
            record.event.action,
            record.event.principal,
            record.event.outcome,
            head.tree_size,
            to_hex(&head.root_hash),
            head.timestamp
        ),
        Proven::Consistency { first, second } => format!(
            "ok: the log of {} records (root {}) extends the log of {} records (root {})",
            second.tree_size,
            to_hex(&second.root_hash),
            first.tree_size,
            to_hex(&first.root_hash)
        ),
    }
}

fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// `payhsm audit verify-proof FILE --jwks FILE`.
fn verify_proof(file: &Path, jwks: &Path) -> i32 {
    let (proof, jwks) = match (read_bounded(file, MAX_PROOF_FILE), read_jwks(jwks)) {
        (Ok(p), Ok(j)) => (p, j),
        (Err(e), _) | (_, Err(e)) => return fail(&e),
    };
    match verify_proof_file(&proof, &jwks, now_unix()) {
        Ok(proven) => {
            println!("{}", describe(&proven));
            EXIT_OK
        }
        Err(e) => {
            println!("invalid: {}: {e}", e.code());
            EXIT_API_ERROR
        }
    }
}

/// `payhsm audit verify-receipt FILE --jwks FILE [--tree-size M] [--proof-out FILE]`.
fn verify_receipt(
    connect: &ConnectArgs,
    args: (&Path, &Path, Option<u64>, Option<&Path>),
) -> Result<i32, CliError> {
    let (file, jwks, tree_size, proof_out) = args;
    let receipt = parse_receipt(&read_bounded(file, MAX_RECEIPT_FILE)?)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    let jwks = read_jwks(jwks)?;
    let size = tree_size.map_or_else(String::new, |m| format!("&tree_size={m}"));
    let path = format!("/v1/audit/proof?seq={}{size}", receipt.seq);
    let response = Session::open(connect)?.send(Method::GET, &path, None)?;
    if response.status != 200 {
        eprintln!("payhsm: {}", describe_api_error(&response));
        return Ok(EXIT_API_ERROR);
    }
    if let Some(out) = proof_out {
        std::fs::write(out, &response.body)
            .map_err(|e| CliError::Usage(format!("{}: {e}", out.display())))?;
    }
    match verify_proof_file(&response.body, &jwks, now_unix()) {
        Ok(proven) if proves_receipt(&proven, &receipt) => {
            println!("{}", describe(&proven));
            Ok(EXIT_OK)
        }
        Ok(_) => {
            println!(
                "invalid: receipt_mismatch: the record proven is not the receipt's (seq {}, \
                 hash {})",
                receipt.seq, receipt.record_hash
            );
            Ok(EXIT_API_ERROR)
        }
        Err(e) => {
            println!("invalid: {}: {e}", e.code());
            Ok(EXIT_API_ERROR)
        }
    }
}

/// The configuration of a `payhsmd dev` data directory given to `--data-dir` (one not bound
/// to a token), with SoftHSM2's configuration set: refuses `--user-pin-fd` (a dev directory
/// uses the public dev PIN) and a directory holding no store. Call before any thread starts.
pub(super) fn dev_data_dir(data_dir: &Path, user_pin_fd: Option<i32>) -> Result<Config, CliError> {
    if user_pin_fd.is_some() {
        return Err(CliError::Usage(format!(
            "{} is not bound to a token by `payhsm ceremony init`: --user-pin-fd is for such \
             a directory (a dev one uses the public dev PIN)",
            data_dir.display()
        )));
    }
    if !data_dir.join("payhsm.db").exists() {
        return Err(CliError::Usage(format!(
            "{} holds no payhsm.db: is it a payhsmd dev data directory?",
            data_dir.display()
        )));
    }
    Ok(crate::daemon::dev_tool_config(data_dir))
}

fn export(data_dir: &Path, out: Option<&Path>, user_pin_fd: Option<i32>) -> i32 {
    if let Some(exported) = super::ceremony::export_token_audit(data_dir, user_pin_fd) {
        return match exported {
            Ok(text) => write_export(&text, out),
            Err((code, message)) => {
                eprintln!("payhsm: {message}");
                code
            }
        };
    }
    // Before the runtime starts any thread: SoftHSM2 reads its configuration when the
    // module loads.
    let config = match dev_data_dir(data_dir, user_pin_fd) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return fail(&CliError::Usage(format!("starting the runtime: {e}"))),
    };
    let text = match runtime.block_on(crate::daemon::export_audit(&config)) {
        Ok(text) => text,
        Err(e) => {
            return fail(&CliError::Usage(format!(
                "audit export: {}",
                crate::fault::Chain(&e)
            )))
        }
    };
    write_export(&text, out)
}

/// Reads the whole log over the API, page by page, until it holds every record the latest
/// checkpoint covers (the log may grow meanwhile: each page brings a newer checkpoint), and
/// writes it as `--data-dir` would.
fn export_api(connect: &ConnectArgs, out: Option<&Path>) -> Result<i32, CliError> {
    let mut session = Session::open(connect)?;
    let mut records: Vec<AuditRecord> = Vec::new();
    loop {
        let after = records.last().map_or(0, |r| r.seq);
        let path = format!("/v1/audit?after={after}&limit={MAX_AUDIT_PAGE}");
        let response = session.send(Method::GET, &path, None)?;
        if response.status != 200 {
            eprintln!("payhsm: {}", describe_api_error(&response));
            return Ok(EXIT_API_ERROR);
        }
        let page: Page = serde_json::from_slice(&response.body)
            .map_err(|e| CliError::Usage(format!("the daemon's audit page: {e}")))?;
        let got = page.records.len();
        records.extend(page.records);
        let last = records.last().map_or(0, |r| r.seq);
        if last >= page.checkpoint.records {
            // A page may end past the checkpoint (records written between the read and the
            // head): keep what the checkpoint covers, so the export ends at its head.
            records.retain(|r| r.seq <= page.checkpoint.records);
            return Ok(write_export(&export_jsonl(&records, &page.checkpoint), out));
        }
        if got == 0 {
            return Err(CliError::Usage(format!(
                "the daemon's checkpoint covers {} records but it sent none after {last}",
                page.checkpoint.records
            )));
        }
    }
}

/// `GET /v1/audit`'s answer.
#[derive(serde::Deserialize)]
struct Page {
    records: Vec<AuditRecord>,
    checkpoint: Checkpoint,
}

pub(super) fn write_export(text: &str, out: Option<&Path>) -> i32 {
    let written = match out {
        Some(path) => std::fs::write(path, text.as_bytes()),
        None => std::io::stdout().lock().write_all(text.as_bytes()),
    };
    match written {
        Ok(()) => EXIT_OK,
        Err(e) => fail(&CliError::Usage(format!("writing the export: {e}"))),
    }
}

fn verify(file: &Path, public_key: Option<&Path>) -> i32 {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return fail(&CliError::Usage(format!("{}: {e}", file.display()))),
    };
    let expected = match public_key.map(read_public_key).transpose() {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    match crate::audit::verify_export(&text, expected.as_deref()) {
        Ok(summary) => {
            println!(
                "intact: {} records, head {}, checkpoint signed by {}",
                summary.records, summary.head, summary.public_key
            );
            EXIT_OK
        }
        Err(e) => {
            eprintln!("payhsm: audit log is NOT intact: {e}");
            EXIT_API_ERROR
        }
    }
}

fn read_public_key(path: &Path) -> Result<Vec<u8>, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| {
            CliError::Usage(format!(
                "{}: expected the base64url (no padding) P-256 public key",
                path.display()
            ))
        })
}
