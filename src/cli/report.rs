//! `payhsm audit report` and `payhsm audit verify-report`: the PCI DSS evidence report, made
//! over the API (`GET /v1/audit/report`) or from a dev data directory, written as JSON,
//! Markdown or HTML; and its verification (signature, visible text, figures against a log).

use super::args::ConnectArgs;
use super::audit::{read_bounded, read_jwks};
use super::output::{describe_api_error, fail, CliError};
use super::session::Session;
use super::{EXIT_API_ERROR, EXIT_OK};
use crate::audit::report::{
    parse_report_file, verify_against_log, verify_signature, Period, ReportFormat, SignedReport,
    MAX_REPORT_FILE,
};
use crate::jose::Jwks;
use hyper::Method;
use std::path::Path;

/// What `payhsm audit report` was asked.
pub(super) struct ReportRequest<'a> {
    /// First day.
    pub(super) since: &'a str,
    /// Last day.
    pub(super) until: &'a str,
    /// `json`, `md` or `html`.
    pub(super) format: &'a str,
    /// Output file, stdout when absent.
    pub(super) out: Option<&'a Path>,
    /// A data directory, or over the API.
    pub(super) data_dir: Option<&'a Path>,
    /// For a directory bound to a token: the user PIN's file descriptor.
    pub(super) user_pin_fd: Option<i32>,
}

/// Runs `payhsm audit report`.
pub(super) fn report(req: &ReportRequest<'_>, connect: &ConnectArgs) -> i32 {
    let Some(format) = ReportFormat::parse(req.format) else {
        return fail(&CliError::Usage("--format is json, md or html".into()));
    };
    let period = match Period::parse(req.since, req.until) {
        Ok(p) => p,
        Err(why) => return fail(&CliError::Usage(why.into())),
    };
    let made = match req.data_dir {
        Some(dir) => from_data_dir(dir, req.user_pin_fd, period),
        None if req.user_pin_fd.is_some() => {
            return fail(&CliError::Usage(
                "--user-pin-fd is for --data-dir; over the API the daemon signs".into(),
            ))
        }
        None => over_api(connect, period),
    };
    match made {
        Ok(signed) => super::audit::write_export(&format.render(&signed), req.out),
        Err(code) => code,
    }
}

/// The daemon's report, read as a signed report (its JSON rendering is the daemon's answer).
fn over_api(connect: &ConnectArgs, period: Period) -> Result<SignedReport, i32> {
    let mut session = Session::open(connect).map_err(|e| fail(&e))?;
    let path = format!(
        "/v1/audit/report?since={}&until={}",
        period.since(),
        period.until()
    );
    let response = session
        .send(Method::GET, &path, None)
        .map_err(|e| fail(&e))?;
    if response.status != 200 {
        eprintln!("payhsm: {}", describe_api_error(&response));
        return Err(EXIT_API_ERROR);
    }
    serde_json::from_slice::<SignedReport>(&response.body).map_err(|e| {
        fail(&CliError::Usage(format!(
            "the daemon's report is not a signed report: {:?} error at line {}, column {}",
            e.classify(),
            e.line(),
            e.column()
        )))
    })
}

fn from_data_dir(
    data_dir: &Path,
    user_pin_fd: Option<i32>,
    period: Period,
) -> Result<SignedReport, i32> {
    if let Some(made) = super::ceremony::report_token_audit(data_dir, user_pin_fd, period) {
        return made.map_err(|(code, message)| {
            eprintln!("payhsm: {message}");
            code
        });
    }
    // Before the runtime starts any thread: SoftHSM2 reads its configuration when the
    // module loads.
    let config = super::audit::dev_data_dir(data_dir, user_pin_fd).map_err(|e| fail(&e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| fail(&CliError::Usage(format!("starting the runtime: {e}"))))?;
    runtime
        .block_on(crate::daemon::audit_report(&config, period))
        .map_err(|e| {
            fail(&CliError::Usage(format!(
                "audit report: {}",
                crate::fault::Chain(&e)
            )))
        })
}

/// Runs `payhsm audit verify-report`: 0 when everything checked holds, 1 naming the first
/// difference, 2 for a usage problem (a file that cannot be read).
pub(super) fn verify_report(
    file: &Path,
    jwks: Option<&Path>,
    log: Option<&Path>,
    connect: &ConnectArgs,
) -> i32 {
    let bytes = match read_bounded(file, MAX_REPORT_FILE) {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    let keys = match jwks {
        Some(path) => read_jwks(path),
        None => fetch_jwks(connect),
    };
    let keys = match keys {
        Ok(k) => k,
        Err(e) => return fail(&e),
    };
    let not_verified = |e: &dyn std::fmt::Display| {
        eprintln!("payhsm: report is NOT verified: {e}");
        EXIT_API_ERROR
    };
    let parsed = match parse_report_file(&bytes) {
        Ok(p) => p,
        Err(e) => return not_verified(&e),
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let kid = match verify_signature(&parsed.signed, &keys, now) {
        Ok(kid) => kid,
        Err(e) => return not_verified(&e),
    };
    let report = &parsed.signed.report;
    let mut derived = String::from("figures not derived again (no --log)");
    if let Some(path) = log {
        let export = match read_bounded(path, MAX_EXPORT_FILE).and_then(|b| {
            String::from_utf8(b)
                .map_err(|_| CliError::Usage(format!("{}: not UTF-8", path.display())))
        }) {
            Ok(t) => t,
            Err(e) => return fail(&e),
        };
        let key = keys.find(&kid).map(|k| k.public_key().0);
        if let Err(e) = verify_against_log(report, &export, key.as_ref().map(|k| &k[..])) {
            return not_verified(&e);
        }
        derived = format!(
            "every figure derived again from {} equals the report's",
            path.display()
        );
    }
    println!(
        "verified: {:?} report of {} to {} over audit records 1 to {} (head {}), signed by \
         audit key {kid}; {derived}",
        parsed.format, report.since, report.until, report.log.records, report.log.head
    );
    EXIT_OK
}

fn fetch_jwks(connect: &ConnectArgs) -> Result<Jwks, CliError> {
    let mut session = Session::open(connect)?;
    let response = session.send(Method::GET, "/v1/audit/jwks", None)?;
    if response.status != 200 {
        return Err(CliError::Usage(format!(
            "reading the audit key set: {}",
            describe_api_error(&response)
        )));
    }
    Jwks::parse(&response.body)
        .map_err(|e| CliError::Usage(format!("the daemon's audit key set: {e}")))
}

/// The largest audit export `verify-report --log` reads (parsed whole in memory).
const MAX_EXPORT_FILE: usize = 1024 * 1024 * 1024;
