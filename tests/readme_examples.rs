//! The README's examples, run as written against a dev daemon: the curl calls, the `payhsm`
//! client, the audit export and verify (from the data directory and over the API), the
//! WebAuthn check and the key changes. A README example that fails is a bug.
//!
//! Each command line runs on its own in `sh`, at the repository root, with `payhsm` the built
//! binary, the daemon's address for `https://127.0.0.1:8443` and `PAYHSM_URL`, its data
//! directory for `target/payhsm-dev`, temporary files for `audit.jsonl` and the import's
//! `cards.*` (two sample cards in), and a token made by the same PAN for `<token>`. Blocks that need an operator (ceremonies typing PINs), a
//! PostgreSQL of one's own, a JWS, or that start long-running processes are left out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;

use std::process::Command;
use support::{repo, token_of, tokenize, Daemon};

/// The README's `sh` blocks, each as its lines (a trailing `\` joined with the next).
fn sh_blocks() -> Vec<Vec<String>> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let (mut blocks, mut current, mut in_sh, mut joined) =
        (Vec::new(), Vec::new(), false, String::new());
    for line in readme.lines() {
        if line.starts_with("```") {
            if in_sh {
                blocks.push(std::mem::take(&mut current));
            }
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
            }
            None => {
                joined.push_str(line);
                current.push(std::mem::take(&mut joined));
            }
        }
    }
    blocks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_examples_run_against_a_dev_daemon() {
    let d = Daemon::start();
    let url = format!("https://{}", d.addr);
    let mut gw = d.client("gateway").await;
    // The client example tokenizes 4111111111111111 in `shop`: the same token (convergent).
    let token = token_of(&tokenize(&mut gw, "4111111111111111", "shop").await);
    let tmp = tempfile::tempdir().unwrap();
    let audit = tmp.path().join("audit.jsonl");
    // The import example's input: the file a migrating team would bring.
    let cards = tmp.path().join("cards.csv");
    std::fs::write(
        &cards,
        "ref,pan,exp_month,exp_year\nc-1,4111111111111111,12,2030\nc-2,5555555555554444,,\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_payhsm");
    let left_out = [
        "ceremony",
        "scripts/",
        "cargo install",
        "cargo fuzz",
        "--release --bin payhsmd",
        "payhsm bench",
        "$JWS",
        "seed-from-vectors",
    ];
    let mut ran = 0;
    for block in sh_blocks() {
        if block
            .iter()
            .any(|l| left_out.iter().any(|skip| l.contains(skip)))
        {
            continue;
        }
        // Variables a block sets (`C1="..."`) stay set for its later lines.
        let mut prelude = format!("payhsm() {{ '{bin}' \"$@\"; }}\n");
        for line in &block {
            let code = line.trim();
            if code.is_empty() || code.starts_with('#') || code.starts_with("alias ") {
                continue;
            }
            let code = code
                .replace("https://127.0.0.1:8443", &url)
                .replace("target/payhsm-dev", d.data_dir.to_str().unwrap())
                .replace("audit.jsonl", audit.to_str().unwrap())
                .replace(
                    "report.html",
                    &format!("{}/report.html", tmp.path().display()),
                )
                .replace(
                    "audit-jwks.json",
                    &format!("{}/audit-jwks.json", tmp.path().display()),
                )
                .replace(
                    "proof.json",
                    &format!("{}/proof.json", tmp.path().display()),
                )
                .replace("cards.", &format!("{}/cards.", tmp.path().display()))
                .replace("<token from above>", &token)
                .replace("<token>", &token);
            if code.split(';').all(|part| {
                part.split_whitespace()
                    .next()
                    .is_some_and(|w| w.contains('=') && !w.starts_with('-'))
            }) {
                prelude.push_str(&code);
                prelude.push('\n');
                continue;
            }
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("{prelude}{code}"))
                .current_dir(repo())
                .env("PAYHSM_URL", &url)
                .output()
                .unwrap();
            // 3: a key change approved by one custodian, waiting for the second (documented).
            let code_ok = matches!(out.status.code(), Some(0 | 3));
            assert!(
                code_ok,
                "README: `{code}` exited {:?}\nstdout: {}\nstderr: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 15, "only {ran} README lines ran");
    // The audit export written by the README's lines verifies (the last one is the API's).
    let verified = Command::new(bin)
        .args(["audit", "verify", audit.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(verified.status.success());
}
