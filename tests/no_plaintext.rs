//! No plaintext PAN anywhere: not in the data directory (SQLite, WAL, SoftHSM2 token), not in
//! the logs, not in the audit export.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use support::ceremony::files_under;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pan_bytes_never_appear_in_the_data_directory_or_logs() {
    let mut d = Daemon::start_with(&["--json-logs"]);
    let mut gw = d.client("gateway").await;
    let mut reader = d.client("vault-reader").await;
    let pans: Vec<String> = (0..40)
        .map(|i| random_pan(["4", "5", "37"][i % 3], 16))
        .collect();
    for pan in &pans {
        let token = token_of(&tokenize(&mut gw, pan, "leak").await);
        detokenize(&mut reader, &token, "leak").await;
        detokenize(&mut gw, &token, "leak").await; // refused, audited
        post(
            &mut gw,
            &format!("/v1/tokens/{token}/suspend?domain=leak"),
            serde_json::json!({}),
        )
        .await;
    }
    // invalid PANs must not be logged either
    tokenize(&mut gw, "4111111111111112", "leak").await;
    let export = audit_export(&d);
    d.terminate();

    let mut files = Vec::new();
    files_under(&d.data_dir, &mut files);
    files.push(d.log_path.clone());
    assert!(files.len() >= 4, "{files:?}");
    let mut haystacks: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| (f.display().to_string(), std::fs::read(f).unwrap()))
        .collect();
    haystacks.push(("audit export".into(), export.into_bytes()));
    for (name, bytes) in &haystacks {
        for pan in pans.iter().map(String::as_str).chain(["4111111111111112"]) {
            // the middle digits never appear next to each other anywhere
            let middle = &pan.as_bytes()[4..12];
            assert!(
                !bytes.windows(middle.len()).any(|w| w == middle),
                "PAN digits found in {name}"
            );
        }
    }
}
