//! `payhsm webauthn verify CASE.json`: runs one captured case through the verifier.

use super::args::{MdsCommand, WebauthnArgs, WebauthnCommand};
use super::{EXIT_API_ERROR, EXIT_OK, EXIT_USAGE};
use crate::webauthn::case::{run_case_with_revocations, Case, CaseVerdict, Roots};
use std::path::Path;

/// Runs a webauthn subcommand and returns the exit code.
pub fn run(args: &WebauthnArgs) -> i32 {
    match &args.command {
        WebauthnCommand::Verify {
            case,
            anchors,
            verbose,
            android_revocations,
        } => verify(
            case,
            anchors.as_deref(),
            *verbose,
            android_revocations.as_deref(),
        ),
        WebauthnCommand::Mds(MdsCommand::Inspect {
            blob,
            anchor,
            aaguid,
        }) => inspect(blob, anchor.clone(), aaguid.as_deref()),
    }
}

/// `payhsm webauthn mds inspect`.
fn inspect(blob: &Path, anchor: Option<std::path::PathBuf>, aaguid: Option<&str>) -> i32 {
    use crate::webauthn::attestation::mds;
    let wanted = match aaguid.map(|g| mds::parse_aaguid(g).ok_or(g)).transpose() {
        Ok(w) => w,
        Err(g) => {
            eprintln!("payhsm: --aaguid {g:?} is not an AAGUID (8-4-4-4-12 hex)");
            return EXIT_USAGE;
        }
    };
    let config = crate::config::MdsConfig::dev(blob.to_path_buf(), anchor);
    let root = match crate::daemon::mds::read_anchor(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("payhsm: {}", crate::fault::Chain(&e));
            return EXIT_USAGE;
        }
    };
    let bytes = match std::fs::read(blob) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("payhsm: {}: {e}", blob.display());
            return EXIT_USAGE;
        }
    };
    let now = time::OffsetDateTime::now_utc();
    let verified = match mds::verify_blob(&bytes, &root, now) {
        Ok(b) => b,
        Err(e) => {
            let out =
                serde_json::json!({"verified": false, "code": e.code(), "message": e.to_string()});
            println!("{out}");
            return EXIT_API_ERROR;
        }
    };
    let entry = wanted.map(|g| match verified.by_aaguid(&g) {
        None => serde_json::json!({"aaguid": mds::format_aaguid(&g), "listed": false}),
        Some(e) => serde_json::json!({
            "aaguid": mds::format_aaguid(&g),
            "listed": true,
            "description": e.description,
            "certification": e.certification().map(|s| s.as_str()),
            "status": e.latest_status().map(|r| r.status.as_str()),
            "refusal": e.refusal(),
            "attestation_roots": e.roots.len(),
            "status_reports": e.status_reports.iter().map(|r| serde_json::json!({
                "status": r.status.as_str(),
                "effective_date": r.effective_date.map(|d| d.to_string()),
            })).collect::<Vec<_>>(),
        }),
    });
    let mut out = serde_json::json!({
        "verified": true,
        "signer": verified.signer,
        "no": verified.no,
        "next_update": verified.next_update.to_string(),
        "stale": verified.is_stale(now.date()),
        "entries": verified.entries.len(),
    });
    if let (Some(obj), Some(entry)) = (out.as_object_mut(), entry) {
        obj.insert("entry".to_owned(), entry);
    }
    println!("{out}");
    EXIT_OK
}

fn verify(path: &Path, anchors: Option<&Path>, verbose: bool, revocations: Option<&Path>) -> i32 {
    let unreadable = |msg: String| {
        eprintln!("payhsm: {}: {msg}", path.display());
        EXIT_USAGE
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => return unreadable(e.to_string()),
    };
    let case = match Case::parse(&text) {
        Ok(c) => c,
        Err(e) => return unreadable(e.to_string()),
    };
    let default_dir = path
        .parent()
        .and_then(Path::parent)
        .map(|p| p.join("roots"));
    let dir = anchors.map(Path::to_path_buf).or(default_dir);
    let roots = match dir.as_deref().map(read_roots).transpose() {
        Ok(r) => r.unwrap_or_default(),
        Err(e) => return unreadable(e),
    };
    let revocations = match revocations.map(read_revocations).transpose() {
        Ok(r) => r,
        Err(e) => return unreadable(e),
    };
    match run_case_with_revocations(&case, &roots, time::OffsetDateTime::now_utc(), revocations) {
        Ok(CaseVerdict::Accept(summary)) => {
            println!("accept");
            if verbose {
                println!("  {summary}");
            }
            EXIT_OK
        }
        Ok(CaseVerdict::Reject { code, message }) => {
            println!("reject: {code}");
            if verbose {
                println!("  {message}");
            }
            EXIT_API_ERROR
        }
        Err(e) => unreadable(e.to_string()),
    }
}

/// Google's Android attestation revocation list from a file.
pub(crate) fn read_revocations(
    path: &Path,
) -> Result<std::sync::Arc<crate::webauthn::attestation::android_key::RevocationList>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::webauthn::attestation::android_key::RevocationList::parse(&bytes)
        .map(std::sync::Arc::new)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Every file in `dir`, keyed `roots/<file name>` as cases name them.
fn read_roots(dir: &Path) -> Result<Roots, String> {
    let mut roots = Roots::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if !path.is_file() {
            continue;
        }
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        roots.insert(format!("roots/{name}"), bytes);
    }
    Ok(roots)
}
