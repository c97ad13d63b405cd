//! `payhsm tokens import` against a real daemon: JSON lines and CSV, refused lines in the
//! error file, resumption without duplicates, and never a PAN echoed.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use support::*;

/// Runs `payhsm tokens import` against `d` as the gateway: exit code, stdout + stderr.
fn import(d: &Daemon, file: &Path, mapping: &Path, errors: &Path, extra: &[&str]) -> (i32, String) {
    let url = format!("https://{}", d.addr);
    let mut args = vec![
        "tokens",
        "import",
        file.to_str().unwrap(),
        "--domain",
        "shop",
        "--mapping",
        mapping.to_str().unwrap(),
        "--errors",
        errors.to_str().unwrap(),
        "--url",
        &url,
    ];
    args.extend_from_slice(extra);
    let out = payhsm(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap(), text)
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// ref -> token, refusing a ref mapped twice.
fn mapping_of(path: &Path) -> HashMap<String, String> {
    let mut map = HashMap::new();
    for line in json_lines(path) {
        let r = line["ref"].as_str().unwrap().to_owned();
        let t = line["token"].as_str().unwrap().to_owned();
        assert!(map.insert(r.clone(), t).is_none(), "{r} mapped twice");
    }
    map
}

struct Cards {
    pans: Vec<String>,
}

fn cards(n: usize) -> Cards {
    Cards {
        pans: (0..n)
            .map(|i| random_pan(["4", "51", "37"][i % 3], 16))
            .collect(),
    }
}

fn assert_no_pan(cards: &Cards, texts: &[&str]) {
    for pan in &cards.pans {
        for text in texts {
            assert!(!text.contains(pan.as_str()), "a PAN was echoed");
            assert!(!text.contains(&pan[..12]), "part of a PAN was echoed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_import_maps_each_card_and_lists_each_refused_line() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let c = cards(30);
    let mut bad_luhn = c.pans[0].clone();
    bad_luhn.replace_range(15.., if bad_luhn.ends_with('0') { "1" } else { "0" });
    let mut text = String::new();
    for (i, pan) in c.pans.iter().enumerate() {
        text += &format!(
            "{{\"ref\":\"card-{i}\",\"pan\":\"{pan}\",\"exp_month\":{},\"exp_year\":2031}}\n",
            1 + i % 12
        );
        if i == 10 {
            text += &format!("{{\"ref\":\"bad-luhn\",\"pan\":\"{bad_luhn}\"}}\n");
            text += "\n";
            text += &format!("{{\"ref\":\"{}\",\"pan\":\"{}\"}}\n", c.pans[1], c.pans[1]);
            text += &format!("{{\"ref\":\"card-3\",\"pan\":\"{}\"}}\n", c.pans[4]);
            text += &format!("{{\"ref\":\"no-pan-type\",\"pan\":{}}}\n", c.pans[2]);
            text += &format!(
                "{{\"ref\":\"bad-exp\",\"pan\":\"{}\",\"exp_month\":13,\"exp_year\":2031}}\n",
                c.pans[5]
            );
        }
    }
    let file = dir.path().join("cards.jsonl");
    std::fs::write(&file, &text).unwrap();
    let (mapping, errors) = (dir.path().join("map.jsonl"), dir.path().join("err.jsonl"));
    let (code, out) = import(&d, &file, &mapping, &errors, &["--batch", "7"]);
    assert_eq!(code, 1, "{out}");
    let map = mapping_of(&mapping);
    assert_eq!(map.len(), 30);
    // Each token is the card's token in the domain: the single route converges on it.
    let mut gw = d.client("gateway").await;
    for i in [0, 13, 29] {
        let r = tokenize(&mut gw, &c.pans[i], "shop").await;
        assert_eq!(
            (r.status, token_of(&r)),
            (200, map[&format!("card-{i}")].clone())
        );
    }
    let errs: Vec<(u64, Value, String)> = json_lines(&errors)
        .into_iter()
        .map(|e| {
            (
                e["line"].as_u64().unwrap(),
                e["ref"].clone(),
                e["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        errs,
        vec![
            (12, Value::from("bad-luhn"), "invalid_pan".to_owned()),
            (14, Value::Null, "pan_in_text".to_owned()),
            (15, Value::from("card-3"), "duplicate_ref".to_owned()),
            (16, Value::Null, "malformed_line".to_owned()),
            (17, Value::from("bad-exp"), "invalid_expiry".to_owned()),
        ]
    );
    let mapping_text = std::fs::read_to_string(&mapping).unwrap();
    let errors_text = std::fs::read_to_string(&errors).unwrap();
    assert_no_pan(&c, &[&out, &mapping_text, &errors_text, &d.logs()]);
    assert!(!out.contains(&bad_luhn));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_import_with_a_bad_line_and_no_pan_on_stdout_or_stderr() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let c = cards(12);
    let mut text = String::from("ref,pan,exp_month,exp_year\r\n");
    for (i, pan) in c.pans.iter().enumerate() {
        text += &format!("\"c,{i}\",{pan},{},2030\r\n", 1 + i % 12);
        if i == 5 {
            text += &format!("short,{}\r\n", c.pans[6]);
        }
    }
    text += &format!("last,{},,", "1234");
    let file = dir.path().join("cards.csv");
    std::fs::write(&file, &text).unwrap();
    let (mapping, errors) = (dir.path().join("map.jsonl"), dir.path().join("err.jsonl"));
    let (code, out) = import(&d, &file, &mapping, &errors, &[]);
    assert_eq!(code, 1, "{out}");
    let map = mapping_of(&mapping);
    assert_eq!(map.len(), 12);
    assert!(map.contains_key("c,7"));
    let errs = json_lines(&errors);
    assert_eq!(errs.len(), 2);
    assert_eq!(
        (errs[0]["line"].as_u64(), errs[0]["code"].as_str()),
        (Some(8), Some("malformed_line"))
    );
    assert_eq!(
        (
            errs[1]["line"].as_u64(),
            errs[1]["ref"].as_str(),
            errs[1]["code"].as_str()
        ),
        (Some(15), Some("last"), Some("invalid_pan"))
    );
    assert!(out.contains("12 cards"), "{out}");
    let mapping_text = std::fs::read_to_string(&mapping).unwrap();
    let errors_text = std::fs::read_to_string(&errors).unwrap();
    assert_no_pan(&c, &[&out, &mapping_text, &errors_text, &d.logs()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_resumes_without_duplicates() {
    let d = Daemon::start();
    let dir = tempfile::tempdir().unwrap();
    let c = cards(120);
    let lines: Vec<String> = c
        .pans
        .iter()
        .enumerate()
        .map(|(i, pan)| format!("{{\"ref\":\"r{i}\",\"pan\":\"{pan}\"}}\n"))
        .collect();
    let (mapping, errors) = (dir.path().join("map.jsonl"), dir.path().join("err.jsonl"));
    // The first run sees the first half only, as if cut there.
    let half = dir.path().join("half.jsonl");
    std::fs::write(&half, lines[..60].concat()).unwrap();
    let (code, out) = import(&d, &half, &mapping, &errors, &["--batch", "25"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mapping_of(&mapping).len(), 60);
    // A torn last line, as a kill in the middle of a write leaves.
    let mut torn = std::fs::read_to_string(&mapping).unwrap();
    torn += "{\"ref\":\"r60\",\"tok";
    std::fs::write(&mapping, torn).unwrap();

    let whole = dir.path().join("whole.jsonl");
    std::fs::write(&whole, lines.concat()).unwrap();
    let (code, out) = import(&d, &whole, &mapping, &errors, &["--batch", "25"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("60 already in the mapping"), "{out}");
    let map = mapping_of(&mapping);
    assert_eq!(map.len(), 120);
    let expected: HashSet<String> = (0..120).map(|i| format!("r{i}")).collect();
    assert_eq!(map.keys().cloned().collect::<HashSet<_>>(), expected);
    // One token per card: 120 created, no card tokenized twice.
    let created = audit_export(&d)
        .lines()
        .filter(|l| l.contains("\"action\":\"tokenize\"") && l.contains("\"outcome\":\"created\""))
        .count();
    assert_eq!(created, 120);
    assert_eq!(std::fs::read_to_string(&errors).unwrap(), "");
    // A third run has nothing left to do.
    let (code, out) = import(&d, &whole, &mapping, &errors, &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(mapping_of(&mapping).len(), 120);
    assert!(out.contains("imported 0 cards"), "{out}");
}
