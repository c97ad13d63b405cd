//! Unit tests of the pure report: figures, escaping, deterministic rendering, verification.

use super::render::{html, markdown};
use super::*;
use crate::audit::{export_jsonl, link, AuditHash, AuditRecord, Checkpoint, LoggedEvent, GENESIS};
use crate::jose::{encode, Jwk, Jwks};
use crate::keys::EcPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};

/// A record's event: `who` did `action` on `day` (`2026-03-DD`) with `outcome`.
fn event(day: u8, who: &str, action: &str, outcome: &str) -> LoggedEvent {
    let mut e = LoggedEvent::sample(1);
    e.time = format!("2026-03-{day:02}T10:00:00.000Z");
    e.principal = who.into();
    e.action = action.into();
    e.outcome = outcome.into();
    e.decision = if outcome == "forbidden" {
        Decision::Deny
    } else {
        Decision::Allow
    };
    e
}

use crate::audit::Decision;

fn chain(events: Vec<LoggedEvent>) -> Vec<AuditRecord> {
    let mut prev: AuditHash = GENESIS;
    let mut out = Vec::new();
    for (i, e) in events.into_iter().enumerate() {
        let (r, h) = link(&prev, i as u64 + 1, e);
        prev = h;
        out.push(r);
    }
    out
}

fn facts() -> SystemFacts {
    SystemFacts {
        source: "tests".into(),
        pan_encryption: "AES-256-GCM".into(),
        pan_aad: "token, domain, version".into(),
        pan_fingerprint: "HMAC-SHA256".into(),
        tokens: TokenFacts {
            keep_first: 6,
            keep_last: 4,
            format_preserving: true,
            luhn_invalid: true,
        },
        tls: crate::transport::tls::tls_facts(Some(0)),
    }
}

fn data_key(version: u32, state: &str, records: u64, end: Option<&str>) -> InventoryKey {
    InventoryKey {
        purpose: "data".into(),
        version: Some(version),
        label: None,
        algorithm: "AES-256-GCM".into(),
        kcv: Some(format!("0a0b0c0d0{version}")),
        thumbprint: None,
        state: state.into(),
        created_at: None,
        activated_at: None,
        ended_at: None,
        cryptoperiod_end: end.map(str::to_owned),
        records: Some(records),
    }
}

fn inputs(since: &str, until: &str) -> ReportInputs {
    ReportInputs {
        period: Period::parse(since, until).unwrap(),
        generated_at: "2026-03-10T00:00:00.000Z".into(),
        inventory: vec![
            data_key(1, "retired", 0, None),
            data_key(2, "active", 7, Some("2026-04-09T12:00:00.000Z")),
        ],
        facts: facts(),
    }
}

const VAULT: &str = "spiffe://payhsm.dev/vault-reader";
const GW: &str = "spiffe://payhsm.dev/gateway";

fn sample_log() -> Vec<AuditRecord> {
    let mut rotate = event(3, "c2", "key_rotate", "done");
    rotate.detail = Some("rotate data: version 2; approved by c1 and c2".into());
    let mut same = event(3, "c1", "approve_key_change", "same_custodian");
    same.detail = Some("rotate data".into());
    chain(vec![
        event(1, GW, "tokenize", "created"),
        event(1, GW, "tokenize", "existing"),
        event(2, VAULT, "detokenize", "ok"),
        event(2, VAULT, "detokenize", "ok"),
        event(3, VAULT, "detokenize", "ok"),
        event(3, GW, "detokenize", "forbidden"),
        event(3, VAULT, "detokenize", "token_not_found"),
        event(3, "c1", "approve_key_change", "pending"),
        same,
        rotate,
        event(4, GW, "tokenize", "store_unavailable"),
        // Outside the period.
        event(9, VAULT, "detokenize", "ok"),
    ])
}

#[test]
fn detokenizations_are_counted_per_principal_per_day() {
    let r = derive(&inputs("2026-03-01", "2026-03-05"), &sample_log());
    let a = &r.pci_dss_10_2_10_3;
    assert_eq!(a.days.len(), 5);
    assert_eq!(a.detokenized, 3);
    let vault = a
        .detokenize_by_principal
        .iter()
        .find(|p| p.principal == VAULT)
        .unwrap();
    assert_eq!((vault.released, vault.refused), (3, 1));
    assert_eq!(vault.per_day.get("2026-03-02"), Some(&2));
    assert_eq!(vault.per_day.get("2026-03-03"), Some(&1));
    let gw = a
        .detokenize_by_principal
        .iter()
        .find(|p| p.principal == GW)
        .unwrap();
    assert_eq!((gw.released, gw.refused), (0, 1));
    assert_eq!(r.log.records_in_period, 11);
    assert_eq!(r.log.records, 12);
    assert_eq!(
        (r.log.first_seq_in_period, r.log.last_seq_in_period),
        (Some(1), Some(11))
    );
}

#[test]
fn refusals_are_grouped_by_outcome_code_with_their_records() {
    let r = derive(&inputs("2026-03-01", "2026-03-05"), &sample_log());
    let a = &r.pci_dss_10_2_10_3;
    let codes: Vec<(&str, u64, &[u64])> = a
        .refusals
        .iter()
        .map(|f| (f.outcome.as_str(), f.count, f.seqs.as_slice()))
        .collect();
    assert_eq!(
        codes,
        vec![
            ("forbidden", 1, &[6][..]),
            ("same_custodian", 1, &[9][..]),
            ("token_not_found", 1, &[7][..]),
        ]
    );
    assert_eq!(a.policy_denials, 1);
    assert_eq!(a.dependency_failures.len(), 1);
    assert_eq!(a.dependency_failures[0].outcome, "store_unavailable");
    assert!(a.integrity.chain_verified);
    assert!(a.integrity.gaps.is_empty());
    assert_eq!(a.integrity.latest_signed_tree_head, None);
    assert_eq!(a.integrity.tree_head_matches_log, None);
}

#[test]
fn key_changes_name_their_two_custodians() {
    let r = derive(&inputs("2026-03-01", "2026-03-05"), &sample_log());
    let k = &r.pci_dss_3_6_3_7;
    assert_eq!(k.changes_applied, 1);
    assert_eq!(k.changes_with_two_custodians, 1);
    assert_eq!(k.same_custodian_refusals, 1);
    assert_eq!(k.rotations, vec![10]);
    let change = k.events.iter().find(|e| e.kind == "change").unwrap();
    assert_eq!(change.custodians, vec!["c1".to_owned(), "c2".to_owned()]);
    assert_eq!(k.events.len(), 3);
    // From 2026-03-10T00:00 to 2026-04-09T12:00: 30 whole days.
    let active = k.keys.iter().find(|k| k.state == "active").unwrap();
    assert_eq!(active.days_remaining, Some(30));
    assert_eq!(active.check.as_deref(), Some("KCV 0a0b0c0d02"));
    assert_eq!(k.retired_or_destroyed.len(), 1);
    let p = &r.pci_dss_3_5;
    assert_eq!(
        (p.tokens_created, p.tokens_existing, p.sealed_records),
        (1, 1, 7)
    );
}

#[test]
fn ceremonies_list_every_custodian_of_the_principal() {
    let log = chain(vec![event(
        2,
        "cust-a,cust-b",
        "ceremony_kek_formed",
        "created",
    )]);
    let r = derive(&inputs("2026-03-01", "2026-03-05"), &log);
    let e = &r.pci_dss_3_6_3_7.events[0];
    assert_eq!(
        (e.kind.as_str(), e.custodians.clone()),
        ("ceremony", vec!["cust-a".to_owned(), "cust-b".to_owned()])
    );
}

#[test]
fn a_missing_or_edited_record_is_reported() {
    let mut log = sample_log();
    log.remove(3);
    let r = derive(&inputs("2026-03-01", "2026-03-05"), &log);
    let i = &r.pci_dss_10_2_10_3.integrity;
    assert!(!i.chain_verified);
    assert_eq!(i.gaps, vec![Gap { from: 4, to: 4 }]);
    assert_eq!(i.broken, vec![5]);

    let mut log = sample_log();
    log[6].event.outcome = "ok".into();
    let i = derive(&inputs("2026-03-01", "2026-03-05"), &log)
        .pci_dss_10_2_10_3
        .integrity;
    assert_eq!((i.chain_verified, i.broken.clone()), (false, vec![7]));
}

#[test]
fn periods_are_whole_days_in_order_and_bounded() {
    assert!(Period::parse("2026-03-01", "2026-03-01").is_ok());
    for (since, until) in [
        ("2026-03-02", "2026-03-01"),
        ("2026-3-01", "2026-03-02"),
        ("+2026-03-01", "2026-03-02"),
        ("2026-02-30", "2026-03-02"),
        ("2025-01-01", "2026-03-02"),
        ("", "2026-03-02"),
    ] {
        assert!(Period::parse(since, until).is_err(), "{since} {until}");
    }
    assert!(Period::parse("2024-01-01", "2024-12-31").is_ok());
}

#[test]
fn text_is_escaped_for_html_and_markdown() {
    assert_eq!(
        html("<script>alert('x')</script>&\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;&quot;"
    );
    assert_eq!(markdown("a|b*c_[d](e)"), "a\\|b\\*c\\_\\[d\\]\\(e\\)");
    assert_eq!(html("a\nb"), "a\u{fffd}b");
}

/// A throwaway P-256 key standing in for the HSM audit key.
struct TestKey {
    pair: EcdsaKeyPair,
    jwk: Jwk,
}

impl TestKey {
    fn new() -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        let point: [u8; 65] = pair.public_key().as_ref().try_into().unwrap();
        Self {
            jwk: Jwk::from_public_key(EcPublicKey(point)),
            pair,
        }
    }

    fn sign(&self, msg: &[u8]) -> [u8; 64] {
        let sig = self.pair.sign(&SystemRandom::new(), msg).unwrap();
        sig.as_ref().try_into().unwrap()
    }

    fn signed(&self, report: Report) -> SignedReport {
        let header = serde_json::json!({"alg": "ES256", "kid": self.jwk.kid()});
        let input = encode(&header, &claims(&report)).unwrap();
        let sig = self.sign(input.as_bytes());
        SignedReport {
            report,
            jws: input.into_compact(&sig),
        }
    }

    fn jwks(&self) -> Jwks {
        Jwks::new(vec![self.jwk.clone()]).unwrap()
    }

    fn export(&self, log: &[AuditRecord]) -> String {
        let head = log.last().unwrap().hash.clone();
        let n = log.len() as u64;
        let checkpoint = Checkpoint {
            records: n,
            public_key: URL_SAFE_NO_PAD.encode(self.jwk.public_key().0),
            signature: URL_SAFE_NO_PAD.encode(self.sign(&Checkpoint::message(n, &head))),
            head,
        };
        export_jsonl(log, &checkpoint)
    }
}

fn signed_sample(key: &TestKey) -> SignedReport {
    let mut log = sample_log();
    let mut evil = event(2, "<img src=x onerror=alert(1)>|*", "detokenize", "ok");
    evil.detail = Some("--> <script>".into());
    let next = chain(
        log.iter()
            .map(|r| r.event.clone())
            .chain(std::iter::once(evil))
            .collect(),
    );
    log = next;
    key.signed(derive(&inputs("2026-03-01", "2026-03-05"), &log))
}

#[test]
fn renderings_are_deterministic_and_read_back() {
    let key = TestKey::new();
    let signed = signed_sample(&key);
    for format in [
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Html,
    ] {
        let text = format.render(&signed);
        assert_eq!(text, format.render(&signed.clone()));
        let back = parse_report_file(text.as_bytes()).unwrap();
        assert_eq!((back.format, &back.signed), (format, &signed));
        assert_eq!(
            verify_signature(&back.signed, &key.jwks(), 0).unwrap(),
            key.jwk.kid()
        );
    }
    let page = ReportFormat::Html.render(&signed);
    assert!(!page.to_lowercase().contains("<script"), "no script");
    assert!(!page.contains("<img"), "principals are escaped");
    assert!(page.contains("id=\"chart-detokenize\""));
    assert!(page.contains("id=\"chart-key-records\""));
    assert!(page.contains("class=\"bar\""));
    // No attribute loads anything (the SVG namespace is a name, not a fetch).
    assert!(!page.contains("src=\"") && !page.contains("href=\""));
    let urls = page.matches("http://").count() + page.matches("https://").count();
    assert_eq!(urls, 2, "the two SVG namespaces only");
}

#[test]
fn an_edited_visible_figure_fails() {
    let key = TestKey::new();
    let signed = signed_sample(&key);
    let figure = format!(
        "PANs released by detokenization in the period: {}.",
        signed.report.pci_dss_10_2_10_3.detokenized
    );
    for format in [ReportFormat::Markdown, ReportFormat::Html] {
        let text = format.render(&signed);
        assert!(text.contains(&figure), "{format:?}");
        let edited = text.replace(&figure, "PANs released by detokenization in the period: 0.");
        match parse_report_file(edited.as_bytes()) {
            Err(ReportFileError::BodyEdited { found, .. }) => {
                assert!(found.contains("period: 0."), "{found}")
            }
            other => panic!("{format:?}: {other:?}"),
        }
    }
}

#[test]
fn an_edited_signed_report_or_another_key_fails_the_signature() {
    let key = TestKey::new();
    let mut signed = signed_sample(&key);
    assert!(verify_signature(&signed, &TestKey::new().jwks(), 0).is_err());
    signed.report.pci_dss_10_2_10_3.detokenized += 1;
    assert!(matches!(
        verify_signature(&signed, &key.jwks(), 0),
        Err(ReportFileError::NotTheSignedReport)
    ));
    // Re-embedded in a page, the edit renders consistently but still fails the signature.
    let page = ReportFormat::Html.render(&signed);
    let back = parse_report_file(page.as_bytes()).unwrap();
    assert!(verify_signature(&back.signed, &key.jwks(), 0).is_err());
}

#[test]
fn figures_are_derived_again_from_the_log() {
    let key = TestKey::new();
    let log = sample_log();
    let report = derive(&inputs("2026-03-01", "2026-03-05"), &log);
    let export = key.export(&log);
    verify_against_log(&report, &export, Some(&key.jwk.public_key().0)).unwrap();

    let mut edited = report.clone();
    edited.pci_dss_10_2_10_3.detokenized = 2;
    match verify_against_log(&edited, &export, None) {
        Err(ReportFileError::FigureDiffers { path, .. }) => {
            assert_eq!(path, "pci_dss_10_2_10_3.detokenized")
        }
        other => panic!("{other:?}"),
    }
    // A log with more records after the report's head still verifies the report.
    let mut longer = log.clone();
    let more = chain(
        longer
            .iter()
            .map(|r| r.event.clone())
            .chain(std::iter::once(event(5, VAULT, "detokenize", "ok")))
            .collect(),
    );
    longer = more;
    verify_against_log(&report, &key.export(&longer), None).unwrap();
    // A shorter one does not.
    let shorter = chain(log.iter().take(5).map(|r| r.event.clone()).collect());
    assert!(matches!(
        verify_against_log(&report, &key.export(&shorter), None),
        Err(ReportFileError::LogTooShort { .. })
    ));
    // Nor one signed by another key than the expected.
    assert!(matches!(
        verify_against_log(&report, &export, Some(&TestKey::new().jwk.public_key().0)),
        Err(ReportFileError::LogNotIntact(_))
    ));
}

#[test]
fn a_card_number_in_an_edited_file_is_not_echoed() {
    let key = TestKey::new();
    let page = ReportFormat::Markdown.render(&signed_sample(&key));
    let edited = page.replacen(
        "PANs released by detokenization",
        "PAN 4111 1111 1111 1111 released by detokenization",
        1,
    );
    let err = parse_report_file(edited.as_bytes())
        .unwrap_err()
        .to_string();
    assert!(!err.contains("4111 1111"), "{err}");
    assert!(err.contains("not shown"), "{err}");
}

#[test]
fn json_paths_name_the_first_difference() {
    let a = serde_json::json!({"x": {"y": [1, 2]}, "z": 1});
    let b = serde_json::json!({"x": {"y": [1, 3]}, "z": 1});
    assert_eq!(
        file::first_diff_for_tests(&a, &b).unwrap(),
        ("x.y[1]".to_owned(), "2".to_owned(), "3".to_owned())
    );
    assert_eq!(file::first_diff_for_tests(&a, &a), None);
}

#[test]
fn a_malformed_report_file_never_echoes_its_values() {
    // serde_json quotes the value it did not expect; the error must say where, not what.
    for text in [
        r#"{"report": "4111111111111111"}"#,
        r#"{"4111111111111111": 1}"#,
        "{\"x\": 4111111111111111",
    ] {
        let e = parse_report_file(text.as_bytes()).unwrap_err().to_string();
        assert!(!e.contains("4111111111111111"), "{e}");
        assert!(e.contains("line 1"), "{e}");
    }
    // Markdown whose first differing line holds a card number past the 200th character is
    // not shown either (the check is on the whole line, not the clipped one).
    let rendered = ReportFormat::Markdown.render(&signed_sample(&TestKey::new()));
    let line = format!("{}4111111111111111", "x".repeat(195));
    let edited = rendered.replacen('\n', &format!("\n{line}\n"), 1);
    match parse_report_file(edited.as_bytes()) {
        Err(e @ ReportFileError::BodyEdited { .. }) => {
            let e = e.to_string();
            assert!(!e.contains("4111111111"), "{e}");
        }
        other => panic!("{other:?}"),
    }
}
