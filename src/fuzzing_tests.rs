use super::*;
use crate::webauthn::cbor::Value;
use crate::webauthn::test_authenticator::{client_data, encode, text, SoftAuthenticator, AT};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::collections::BTreeSet;
use std::path::Path;

const MUTATIONS_PER_SEED: usize = 3000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_file(repo().join(pem))
        .unwrap()
        .to_vec()
}

/// One length byte, then the part (the split `fuzz_verify` entries expect).
fn prefixed(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.push(u8::try_from(p.len()).unwrap());
        out.extend_from_slice(p);
    }
    out
}

/// A report in each format (its JWS a placeholder: the parser does not check signatures), and
/// a report query.
fn report_files() -> Vec<Vec<u8>> {
    use crate::audit::report::{derive, Period, ReportFormat, ReportInputs, SignedReport};
    use crate::audit::{link, LoggedEvent, GENESIS};
    let mut prev = GENESIS;
    let mut log = Vec::new();
    for seq in 1..=4 {
        let mut event = LoggedEvent::sample(seq);
        event.time = "2026-03-02T10:00:00.000Z".into();
        let (record, hash) = link(&prev, seq, event);
        prev = hash;
        log.push(record);
    }
    let inputs = ReportInputs {
        period: Period::parse("2026-03-01", "2026-03-03").unwrap(),
        generated_at: "2026-03-04T00:00:00.000Z".into(),
        inventory: Vec::new(),
        facts: crate::service::system_facts(
            "seed",
            crate::card::TokenFormat::default(),
            crate::transport::tls::tls_facts(Some(1)),
        ),
    };
    let signed = SignedReport {
        report: derive(&inputs, &log),
        jws: "e30.e30.AA".into(),
    };
    let mut out: Vec<Vec<u8>> = [
        ReportFormat::Json,
        ReportFormat::Markdown,
        ReportFormat::Html,
    ]
    .iter()
    .map(|f| f.render(&signed).into_bytes())
    .collect();
    out.push(b"since=2026-03-01&until=2026-03-31".to_vec());
    out
}

/// An inclusion and a consistency proof over three sample records (their heads signed by no
/// key the target knows), and the audit routes' query strings.
fn audit_proofs() -> Vec<Vec<u8>> {
    use crate::audit::merkle::{consistency_proof, inclusion_proof, leaf_hash, root};
    use crate::audit::{link, to_hex, LoggedEvent, GENESIS};
    let mut prev = GENESIS;
    let mut lines = Vec::new();
    for seq in 1..=3 {
        let (record, hash) = link(&prev, seq, LoggedEvent::sample(seq));
        prev = hash;
        lines.push(serde_json::to_string(&record).unwrap());
    }
    let leaves: Vec<_> = lines.iter().map(|l| leaf_hash(l.as_bytes())).collect();
    let hex =
        |hs: Vec<crate::audit::merkle::Hash>| hs.iter().map(|h| to_hex(h)).collect::<Vec<_>>();
    let head =
        "eyJhbGciOiJFUzI1NiIsImtpZCI6ImEzIn0.eyJzdWIiOiJwYXloc20tYXVkaXQtdHJlZS1oZWFkIn0.AAAA";
    let inclusion = serde_json::json!({
        "leaf_index": 1, "tree_size": 3, "leaf": lines[1],
        "audit_path": hex(inclusion_proof(&leaves, 1).unwrap()),
        "root_hash": to_hex(&root(&leaves)), "signed_tree_head": head,
    });
    let consistency = serde_json::json!({
        "first": 2, "second": 3,
        "first_root_hash": to_hex(&root(&leaves[..2])), "second_root_hash": to_hex(&root(&leaves)),
        "consistency_path": hex(consistency_proof(&leaves, 2).unwrap()),
        "first_signed_tree_head": head, "second_signed_tree_head": null,
    });
    vec![
        inclusion.to_string().into_bytes(),
        consistency.to_string().into_bytes(),
        b"seq=3&tree_size=7".to_vec(),
        b"from=1&to=2".to_vec(),
        b"after=2&limit=10".to_vec(),
        format!(r#"{{"seq":2,"record_hash":"{}"}}"#, "ab".repeat(32)).into_bytes(),
    ]
}

/// A signed export of `n` records, as `payhsm audit export` writes it.
fn audit_export(n: u64) -> Vec<u8> {
    use crate::audit::{export_jsonl, link, Checkpoint, LoggedEvent, GENESIS};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let mut prev = GENESIS;
    let mut records = Vec::new();
    for seq in 1..=n {
        let event = LoggedEvent::sample(seq);
        let (record, hash) = link(&prev, seq, event);
        prev = hash;
        records.push(record);
    }
    let head = records.last().unwrap().hash.clone();
    let signature = key.sign(&rng, &Checkpoint::message(n, &head)).unwrap();
    let checkpoint = Checkpoint {
        records: n,
        head,
        public_key: URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
        signature: URL_SAFE_NO_PAD.encode(signature.as_ref()),
    };
    let text = export_jsonl(&records, &checkpoint);
    assert!(crate::audit::verify_export(&text, None).is_ok());
    text.into_bytes()
}

/// Inputs that each target accepts/// Inputs that each target accepts, or nearly: mutations of them reach past the first check.
fn seeds(name: &str) -> Vec<Vec<u8>> {
    let auth = SoftAuthenticator::new();
    let reg_data = auth.auth_data("example.org", 0x45 | AT, 0);
    let get_data = auth.auth_data("example.org", 0x05, 8);
    let reg_client = client_data("webauthn.create", "Y2hhbGxlbmdl", "https://example.org")
        .to_string()
        .into_bytes();
    let get_client = client_data("payment.get", "Y2hhbGxlbmdl", "https://example.org")
        .to_string()
        .into_bytes();
    let attestation = encode(&Value::Map(vec![
        (text("fmt"), text("none")),
        (text("attStmt"), Value::Map(vec![])),
        (text("authData"), Value::Bytes(reg_data.clone())),
    ]));
    let (gateway, ca) = (
        der("keys-sample/clients/gateway.pem"),
        der("keys-sample/ca.pem"),
    );
    match name {
        "api_route" => vec![
            b"\x00/v1/tokens/4111119876541111".to_vec(),
            b"\x01/v1/tokens/4111119876541111/suspend".to_vec(),
            b"\x01/v1/authorizations/challenges".to_vec(),
        ],
        "audit_proof" => audit_proofs(),
        "audit_report" => report_files(),
        "audit_verify" => vec![audit_export(3)],
        "authorization_requests" => vec![
            br#"{"token":"4111119876541111","domain":"shop","device_id":"AAAAAAAAAAAAAAAAAAAAAA","amount":1234,"currency":"EUR","payee":"Shop","spc":{"payee_origin":"https://shop.example","top_origin":"https://shop.example","instrument":{"display_name":"Card","icon":"https://shop.example/i.png"}}}"#.to_vec(),
            br#"{"challenge_id":"c1","credential_id":"AAEC","authenticator_data":"AAEC","client_data_json":"eyJ9","signature":"MEUC"}"#.to_vec(),
        ],
        "card_parse" => vec![
            b"4111111111111111".to_vec(),
            b"4111119876541112".to_vec(),
            b"shop".to_vec(),
        ],
        "ceremony_share" => crate::ceremony::split(&[7; 32], 2, 3)
            .unwrap()
            .iter()
            .map(|s| s.to_transcript().as_bytes().to_vec())
            .collect(),
        "certificate_identity" => vec![gateway, ca],
        "config_toml" => vec![std::fs::read(repo().join("docs/payhsmd.example.toml")).unwrap()],
        "detokenize_request" => vec![
            br#"{"token":"4111119876541111","domain":"shop"}"#.to_vec(),
            b"domain=shop".to_vec(),
            br#"{"domain":"shop"}"#.to_vec(),
        ],
        "device_requests" => vec![
            br#"{"user":"alice","rp_id":"shop.example"}"#.to_vec(),
            br#"{"challenge_id":"c1","credential_id":"AAEC","attestation_object":"o2Nm","client_data_json":"eyJ9","token":"4111119876541111","domain":"shop"}"#.to_vec(),
        ],
        "jose_jwks" => vec![RFC7515_A3_JWKS.to_vec()],
        // RFC 7515 A.3 with a kid added to the header.
        "jose_verify" => vec![b"eyJhbGciOiJFUzI1NiIsImtpZCI6ImEzIn0.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q".to_vec()],
        "key_change_request" => vec![
            br#"{"change":"rotate","purpose":"data"}"#.to_vec(),
            br#"{"change":"destroy","purpose":"authorization-signing","version":2}"#.to_vec(),
            br#"{"batch":100}"#.to_vec(),
        ],
        "http_bare_errors" => vec![
            b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\
              date: Sun, 06 Dec 2026 23:59:36 GMT\r\n\r\n"
                .to_vec(),
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n".to_vec(),
        ],
        "request_headers" => vec![
            b"application/json; charset=utf-8".to_vec(),
            b"order-1_A".to_vec(),
        ],
        "text_screen" => vec![
            "Caf\u{e9} Z\u{fc}rich".as_bytes().to_vec(),
            "Cafe\u{301} Visa \u{2022}\u{2022}1111".as_bytes().to_vec(),
            b"order 4111 1111-1111.1111 ref 42".to_vec(),
        ],
        "tokenize_request" => vec![
            br#"{"pan":"4111111111111111","exp_month":12,"exp_year":2030,"domain":"shop"}"#
                .to_vec(),
        ],
        "webauthn_assertion" => {
            let sig = auth.sign_assertion(&get_data, &get_client);
            vec![[prefixed(&[&get_client, &get_data]), sig].concat()]
        }
        "webauthn_attestation_object" => vec![attestation],
        "webauthn_authdata" => vec![reg_data, get_data],
        "webauthn_cbor" => vec![attestation, auth.cose_key_bytes()],
        "webauthn_client_data" => vec![reg_client, get_client],
        "webauthn_cose_key" => vec![auth.cose_key_bytes()],
        "webauthn_mds_blob" => vec![
            br#"{"no":7,"nextUpdate":"2030-01-01","entries":[{"aaguid":"a14eb40d-3b89-4f3b-8d46-13cdf3de625c","metadataStatement":{"description":"x","attestationRootCertificates":[]},"statusReports":[{"status":"FIDO_CERTIFIED_L2","effectiveDate":"2024-01-02"},{"status":"REVOKED","effectiveDate":"2025-03-04"}]}]}"#.to_vec(),
            b"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsIng1YyI6WyJBQT09Il19.eyJubyI6MX0.AAAA".to_vec(),
            br#"{"entries":{"2c8cdddfd5e03bfc":{"status":"REVOKED","reason":"KEY_COMPROMISE"}}}"#.to_vec(),
        ],
        "webauthn_registration" => vec![[prefixed(&[&reg_client]), attestation].concat()],
        "webauthn_x5c_chain" => {
            let mut chain = Vec::new();
            for c in [&gateway, &ca] {
                chain.extend_from_slice(&u16::try_from(c.len()).unwrap().to_be_bytes());
                chain.extend_from_slice(c);
            }
            vec![chain]
        }
        other => panic!("no seeds for fuzz target {other}"),
    }
}

/// xorshift64*: a fixed sequence, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One of libFuzzer's simple mutations: flip a bit, set a byte to an edge value, insert,
/// delete or duplicate a run, or cut the input short.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    let at = rng.below(out.len() + 1);
    let last = out.len().saturating_sub(1);
    match rng.below(6) {
        0 if !out.is_empty() => out[at.min(last)] ^= 1 << rng.below(8),
        1 if !out.is_empty() => {
            out[at.min(last)] = [0x00, 0xff, 0x7f, 0x80, b'"', b'{'][rng.below(6)];
        }
        2 => out.insert(at, rng.next() as u8),
        3 => {
            let end = (at + 1 + rng.below(16)).min(out.len());
            out.drain(at.min(end)..end);
        }
        4 => {
            let end = (at + 1 + rng.below(32)).min(out.len());
            let run = out[at.min(end)..end].to_vec();
            out.splice(at..at, run);
        }
        _ => out.truncate(at),
    }
    out
}

/// Runs one input; a panic fails with the target's name and the input, to reproduce it with
/// `cargo fuzz run <name> <file>`.
fn run(name: &str, target: Target, input: &[u8]) {
    if std::panic::catch_unwind(|| target(input)).is_err() {
        let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
        panic!("fuzz target {name} panicked on (hex) {hex}");
    }
}

#[test]
fn every_fuzz_target_file_and_bin_calls_its_entry_point() {
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let sorted: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        names,
        sorted.iter().copied().collect::<Vec<_>>(),
        "sorted, no twice"
    );

    let dir = repo().join("fuzz/fuzz_targets");
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let source = std::fs::read_to_string(&path).unwrap();
        assert!(
            source.contains(&format!("payhsm::fuzzing::{name}(")),
            "{name}.rs must call payhsm::fuzzing::{name}"
        );
        files.insert(name);
    }
    assert_eq!(
        files.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        sorted
    );

    let manifest = std::fs::read_to_string(repo().join("fuzz/Cargo.toml")).unwrap();
    let bins: BTreeSet<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "payhsm-fuzz")
        .collect();
    assert_eq!(bins, sorted, "one [[bin]] per target in fuzz/Cargo.toml");
}

/// A short, bounded fuzz run in every test build: each target on its seeds, on edge inputs,
/// and on a fixed sequence of mutations of each seed. A target that panics fails the test.
#[test]
fn every_target_survives_its_seeds_and_their_mutations() {
    let edges: [&[u8]; 5] = [b"", b"\x00", b"\xff\xff\xff\xff", b"{}", &[0x5b; 300]];
    let mut runs = 0;
    for (name, target) in TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name}");
        for edge in edges {
            run(name, *target, edge);
            runs += 1;
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        for seed in &seeds {
            run(name, *target, seed);
            let mut current = seed.clone();
            for i in 0..MUTATIONS_PER_SEED {
                // Mostly stack mutations; go back to the seed now and then.
                if i % 8 == 0 {
                    current = seed.clone();
                }
                current = mutate(&mut rng, &current);
                run(name, *target, &current);
                runs += 1;
            }
        }
    }
    assert!(runs >= TARGETS.len() * (edges.len() + MUTATIONS_PER_SEED));
}

/// The seeds are inputs the parsers accept, so the mutations start from the valid side of
/// every check; a renamed field or a stricter rule that would quietly turn a seed into an
/// early rejection fails here instead.
#[test]
fn the_seeds_are_accepted_by_their_parsers() {
    let one = |name: &str, i: usize| seeds(name).swap_remove(i);
    decode::<TokenizeRequest>(&one("tokenize_request", 0))
        .and_then(TokenizeRequest::into_input)
        .unwrap();
    decode::<DetokenizeRequest>(&one("detokenize_request", 0))
        .and_then(|r| r.parse())
        .unwrap();
    let query = String::from_utf8(one("detokenize_request", 1)).unwrap();
    assert_eq!(domain_from_query(Some(&query)).unwrap(), Some("shop"));
    Domain::parse(
        &decode::<DomainBody>(&one("detokenize_request", 2))
            .unwrap()
            .domain,
    )
    .unwrap();
    decode::<ChallengeRequest>(&one("device_requests", 0)).unwrap();
    decode::<EnrolRequest>(&one("device_requests", 1))
        .and_then(EnrolRequest::into_input)
        .unwrap();
    decode::<PaymentChallengeRequest>(&one("authorization_requests", 0))
        .and_then(|r| r.into_input())
        .unwrap()
        .check_values()
        .unwrap();
    decode::<AuthorizeRequest>(&one("authorization_requests", 1))
        .and_then(AuthorizeRequest::into_input)
        .unwrap();
    for i in 0..2 {
        decode::<KeyChangeRequest>(&one("key_change_request", i))
            .and_then(|r| r.into_change())
            .unwrap();
    }
    decode::<RewrapRequest>(&one("key_change_request", 2))
        .unwrap()
        .batch()
        .unwrap();
    let config = String::from_utf8(one("config_toml", 0)).unwrap();
    crate::config::Config::from_toml(&config, Path::new("/etc/payhsm")).unwrap();
    crate::transport::principal_from_certificate(&one("certificate_identity", 0)).unwrap();
    crate::jose::Jwks::parse(&one("jose_jwks", 0)).unwrap();
    for answer in seeds("http_bare_errors") {
        assert!(crate::transport::bare_errors::rewrite(&answer).is_some());
    }
    for share in seeds("ceremony_share") {
        crate::ceremony::Share::from_transcript(std::str::from_utf8(&share).unwrap()).unwrap();
    }
    for data in seeds("webauthn_authdata") {
        crate::webauthn::authdata::AuthenticatorData::parse(&data).unwrap();
    }
    for data in seeds("webauthn_client_data") {
        crate::webauthn::client_data::ClientData::parse(&data).unwrap();
    }
    crate::webauthn::cose::CoseKey::from_cbor_bytes(&one("webauthn_cose_key", 0)).unwrap();
    for data in seeds("webauthn_cbor") {
        crate::webauthn::cbor::decode(&data).unwrap();
    }
    for (i, seed) in seeds("audit_report").iter().enumerate().take(3) {
        crate::audit::report::parse_report_file(seed).unwrap_or_else(|e| panic!("{i}: {e}"));
    }
    let query = String::from_utf8(one("audit_report", 3)).unwrap();
    crate::api::types::report_query(Some(&query)).unwrap();
    let mut headers = hyper::HeaderMap::new();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_bytes(&one("request_headers", 0)).unwrap(),
    );
    require_json(&headers).unwrap();
    for i in 0..2 {
        let text = String::from_utf8(one("text_screen", i)).unwrap();
        crate::text::DisplayText::parse(&text).unwrap();
    }
}
