//! Verification of exported audit logs: an intact log verifies; every kind of tampering is
//! reported at the first bad line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use payhsm::audit::{
    export_jsonl, link, verify_export, AuditRecord, Checkpoint, Decision, LoggedEvent,
    VerifyErrorKind, GENESIS,
};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

/// Record `n`: every third one is about a request the policy was not asked about.
fn event(n: u64) -> LoggedEvent {
    let (decision, policy_ids) = if n.is_multiple_of(3) {
        (Decision::NotAsked, vec![])
    } else {
        (Decision::Allow, vec!["gw-tokenize".into()])
    };
    LoggedEvent {
        time: format!("2026-01-01T00:00:{:02}.000Z", n % 60),
        request_id: format!("req-{n}"),
        principal: "spiffe://gw".into(),
        action: "tokenize".into(),
        domain: Some("shop".into()),
        token: Some("4111119999991111".into()),
        last4: Some("1111".into()),
        decision,
        policy_ids,
        outcome: "created".into(),
        detail: None,
    }
}

fn key() -> EcdsaKeyPair {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

fn sign(key: &EcdsaKeyPair, records: u64, head: &str) -> Checkpoint {
    let sig = key
        .sign(&SystemRandom::new(), &Checkpoint::message(records, head))
        .unwrap();
    Checkpoint {
        records,
        head: head.to_owned(),
        public_key: URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        signature: URL_SAFE_NO_PAD.encode(sig.as_ref()),
    }
}

fn records(n: u64) -> Vec<AuditRecord> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let (r, h) = link(&prev, seq, event(seq));
            prev = h;
            r
        })
        .collect()
}

/// An export of `n` records signed by `key`, as lines (without their `\n`).
fn export_lines(key: &EcdsaKeyPair, n: u64) -> Vec<String> {
    let recs = records(n);
    let head = recs.last().unwrap().hash.clone();
    let text = export_jsonl(&recs, &sign(key, n, &head));
    text.lines().map(str::to_owned).collect()
}

fn join(lines: &[String]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

fn fails(text: &str, key: Option<&[u8]>) -> (usize, Option<u64>, VerifyErrorKind) {
    let e = verify_export(text, key).unwrap_err();
    (e.line, e.seq, e.kind)
}

#[test]
fn intact_log_verifies_with_its_key() {
    let k = key();
    let lines = export_lines(&k, 10);
    assert_eq!(lines.len(), 11);
    let s = verify_export(&join(&lines), Some(k.public_key().as_ref())).unwrap();
    assert_eq!(s.records, 10);
    assert_eq!(s.head, records(10).last().unwrap().hash);
    assert_eq!(
        s.public_key,
        URL_SAFE_NO_PAD.encode(k.public_key().as_ref())
    );
}

#[test]
fn empty_log_with_genesis_checkpoint_verifies() {
    let k = key();
    let text = export_jsonl(&[], &sign(&k, 0, &"0".repeat(64)));
    assert_eq!(verify_export(&text, None).unwrap().records, 0);
}

#[test]
fn edited_field_is_reported_at_its_line() {
    let k = key();
    let mut lines = export_lines(&k, 10);
    lines[6] = lines[6].replace("\"outcome\":\"created\"", "\"outcome\":\"denied\"");
    let e = verify_export(&join(&lines), None).unwrap_err();
    assert_eq!(
        (e.line, e.seq, &e.kind),
        (7, Some(7), &VerifyErrorKind::Edited)
    );
    assert_eq!(
        e.to_string(),
        "line 7 (seq 7): record was edited: hash does not match"
    );
}

#[test]
fn edited_record_with_recomputed_hash_breaks_the_next_link() {
    let k = key();
    let mut recs = records(5);
    let mut ev = recs[2].event.clone();
    ev.principal = "mallory".into();
    let prev = payhsm_prev(&recs[2].prev_hash);
    recs[2] = link(&prev, 3, ev).0;
    let head = recs[4].hash.clone();
    let text = export_jsonl(&recs, &sign(&k, 5, &head));
    assert_eq!(
        fails(&text, None),
        (4, Some(4), VerifyErrorKind::BrokenLink)
    );
}

fn payhsm_prev(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

#[test]
fn removed_line_is_reported_where_the_gap_is() {
    let k = key();
    let mut lines = export_lines(&k, 10);
    lines.remove(3);
    assert_eq!(
        fails(&join(&lines), None),
        (
            4,
            Some(5),
            VerifyErrorKind::OutOfSequence {
                expected: 4,
                found: 5
            }
        )
    );
}

#[test]
fn swapped_lines_are_reported() {
    let k = key();
    let mut lines = export_lines(&k, 10);
    lines.swap(4, 5);
    assert_eq!(
        fails(&join(&lines), None),
        (
            5,
            Some(6),
            VerifyErrorKind::OutOfSequence {
                expected: 5,
                found: 6
            }
        )
    );
}

#[test]
fn truncated_tail_without_checkpoint_is_reported() {
    let k = key();
    let lines = export_lines(&k, 10);
    assert_eq!(
        fails(&join(&lines[..8]), None),
        (9, None, VerifyErrorKind::MissingCheckpoint)
    );
    assert_eq!(
        fails("", None),
        (1, None, VerifyErrorKind::MissingCheckpoint)
    );
}

#[test]
fn truncated_tail_keeping_the_checkpoint_is_reported() {
    let k = key();
    let mut lines = export_lines(&k, 10);
    lines.drain(7..10);
    assert_eq!(
        fails(&join(&lines), None),
        (8, None, VerifyErrorKind::CheckpointMismatch)
    );
}

#[test]
fn forged_checkpoint_count_is_reported() {
    let k = key();
    let mut lines = export_lines(&k, 10);
    lines[10] = lines[10].replace("\"records\":10", "\"records\":11");
    assert_eq!(
        fails(&join(&lines), None),
        (11, None, VerifyErrorKind::CheckpointMismatch)
    );
}

#[test]
fn truncation_with_a_matching_but_unsigned_checkpoint_fails_the_signature() {
    let k = key();
    let lines = export_lines(&k, 10);
    let recs = records(7);
    let good = sign(&k, 10, &records(10).last().unwrap().hash);
    // Count and head rewritten to match the shortened log; the signature is the old one.
    let forged = Checkpoint {
        records: 7,
        head: recs.last().unwrap().hash.clone(),
        ..good
    };
    let text = export_jsonl(&recs, &forged);
    assert_eq!(lines.len(), 11);
    assert_eq!(fails(&text, None), (8, None, VerifyErrorKind::BadSignature));
}

#[test]
fn checkpoint_signed_by_another_key_is_refused_when_a_key_is_expected() {
    let k = key();
    let other = key();
    let text = join(&export_lines(&other, 4));
    assert!(verify_export(&text, None).is_ok());
    assert_eq!(
        fails(&text, Some(k.public_key().as_ref())),
        (5, None, VerifyErrorKind::KeyMismatch)
    );
}

#[test]
fn trailing_junk_after_the_checkpoint_is_reported() {
    let k = key();
    let mut lines = export_lines(&k, 3);
    lines.push("{\"seq\":4}".into());
    assert_eq!(
        fails(&join(&lines), None),
        (5, None, VerifyErrorKind::TrailingData)
    );
    let mut lines = export_lines(&k, 3);
    lines.push(String::new());
    assert_eq!(fails(&join(&lines), None).2, VerifyErrorKind::TrailingData);
}

#[test]
fn malformed_json_and_unknown_fields_are_reported() {
    let k = key();
    let mut lines = export_lines(&k, 3);
    lines[1] = "{not json".into();
    assert!(matches!(
        fails(&join(&lines), None),
        (2, None, VerifyErrorKind::Malformed(_))
    ));
    // A field outside the hash (here a smuggled PAN) must not pass unnoticed.
    let mut lines = export_lines(&k, 3);
    lines[0] = lines[0].replacen('{', "{\"pan\":\"4111111111111111\",", 1);
    assert!(matches!(
        fails(&join(&lines), None),
        (1, None, VerifyErrorKind::Malformed(_))
    ));
}

#[test]
fn a_changed_decision_is_an_edit_and_an_unknown_one_is_malformed() {
    let k = key();
    let lines = export_lines(&k, 3);
    assert!(lines[2].contains("\"decision\":\"none\",\"policy_ids\":[]"));
    for (from, to) in [("none", "allow"), ("none", "deny")] {
        let mut edited = lines.clone();
        edited[2] = edited[2].replace(
            &format!("\"decision\":\"{from}\""),
            &format!("\"decision\":\"{to}\""),
        );
        assert_eq!(
            fails(&join(&edited), None),
            (3, Some(3), VerifyErrorKind::Edited)
        );
    }
    let mut edited = lines.clone();
    edited[0] = edited[0].replace("\"decision\":\"allow\"", "\"decision\":\"deny\"");
    assert_eq!(
        fails(&join(&edited), None),
        (1, Some(1), VerifyErrorKind::Edited)
    );
    let mut unknown = lines;
    unknown[0] = unknown[0].replace("\"decision\":\"allow\"", "\"decision\":\"maybe\"");
    assert!(matches!(
        fails(&join(&unknown), None),
        (1, None, VerifyErrorKind::Malformed(_))
    ));
}

#[test]
fn a_malformed_line_is_reported_without_its_values() {
    let key = key();
    let mut lines = export_lines(&key, 3);
    lines[1] = r#"{"seq":"4111111111111111","x":"5555555555554444"}"#.to_owned();
    let (line, _, kind) = fails(&join(&lines), None);
    assert_eq!(line, 2);
    let shown = kind.to_string();
    assert!(matches!(kind, VerifyErrorKind::Malformed(_)), "{shown}");
    assert!(!shown.contains("4111111111111111"), "{shown}");
    assert!(!shown.contains("5555555555554444"), "{shown}");
}
