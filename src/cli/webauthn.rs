//! `payhsm webauthn verify CASE.json`: runs one captured case through the verifier.

use super::args::{WebauthnArgs, WebauthnCommand};
use super::{EXIT_API_ERROR, EXIT_OK, EXIT_USAGE};
use crate::webauthn::case::{run_case, Case, CaseVerdict, Roots};
use std::path::Path;

/// Runs a webauthn subcommand and returns the exit code.
pub fn run(args: &WebauthnArgs) -> i32 {
    match &args.command {
        WebauthnCommand::Verify {
            case,
            anchors,
            verbose,
        } => verify(case, anchors.as_deref(), *verbose),
    }
}

fn verify(path: &Path, anchors: Option<&Path>, verbose: bool) -> i32 {
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
    match run_case(&case, &roots, time::OffsetDateTime::now_utc()) {
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
