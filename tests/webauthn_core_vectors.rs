//! The captured WebAuthn vectors (`../shared/vectors/webauthn/`) through payhsm's core: every
//! attestationObject through the CBOR and authenticator-data parsers, every authentication case
//! through `verify_assertion`, each against its expected verdict. Where payhsm is deliberately
//! stricter than the library the vector came from, the case is listed with the reason.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use base64::Engine;
use payhsm::webauthn::assertion::{
    verify_assertion, AssertionExpectations, AssertionInput, AssertionType, StoredCredential,
};
use payhsm::webauthn::authdata::AuthenticatorData;
use payhsm::webauthn::cbor;
use payhsm::webauthn::registration::RelyingParty;
use serde_json::Value;
use std::path::{Path, PathBuf};

const VECTORS: &str = "../../shared/vectors/webauthn";

/// Cases whose upstream verdict payhsm deliberately does not share, and why.
const STRICTER: &[(&str, &str)] = &[(
    "w3cspec__none-es256-crossOrigin__authentication",
    "crossOrigin true without a topOrigin: payhsm only accepts iframes whose top origin is listed",
)];

fn vectors_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(VECTORS);
    let alt = Path::new("/work/shared/vectors/webauthn").to_path_buf();
    [dir, alt].into_iter().find(|d| d.is_dir())
}

fn cases() -> Vec<Value> {
    let Some(root) = vectors_dir() else {
        eprintln!("vectors not found; skipping");
        return vec![];
    };
    let mut out = vec![];
    for folder in std::fs::read_dir(&root).unwrap() {
        let folder = folder.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&folder).unwrap() {
            let file = file.unwrap().path();
            if file.extension().is_some_and(|e| e == "json") {
                out.push(serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap());
            }
        }
    }
    out
}

fn b64(s: &str) -> Vec<u8> {
    let cleaned: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cleaned)
        .unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(String::from))
            .collect(),
        _ => vec![],
    }
}

#[test]
fn every_accepted_attestation_object_parses() {
    let mut parsed = 0;
    for case in cases() {
        if case["kind"] != "registration" {
            continue;
        }
        let Some(object) = case["attestationObject"].as_str() else {
            continue;
        };
        let name = case["name"].as_str().unwrap();
        let result = cbor::decode(&b64(object))
            .map_err(|e| e.code())
            .and_then(|v| {
                let ad = v.get_text("authData").and_then(|a| a.as_bytes()).unwrap();
                AuthenticatorData::parse(ad).map_err(|e| e.code())
            });
        if case["expected"] == "accept" {
            let ad = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(ad.attested.is_some(), "{name}: no attested credential");
            parsed += 1;
        } else if let Err(e) = result {
            eprintln!("{name}: refused at parse ({e})");
        }
    }
    if vectors_dir().is_some() {
        assert!(parsed >= 80, "only {parsed} attestation objects parsed");
    }
}

#[test]
fn every_authentication_case_gets_its_expected_verdict() {
    let mut checked = 0;
    let mut disagreements = vec![];
    for case in cases() {
        if case["kind"] != "authentication" {
            continue;
        }
        let name = case["name"].as_str().unwrap().to_owned();
        let params = &case["verifier_params"];
        let rp = RelyingParty {
            ids: strings(&case["rp_id"]),
            origins: strings(&case["origin"]),
            top_origins: strings(&params["expected_top_origins"]),
        };
        let types: Vec<AssertionType> = match strings(&params["expectedType"]) {
            t if t.is_empty() => vec![AssertionType::Get],
            t => t
                .iter()
                .filter_map(|t| match t.as_str() {
                    "webauthn.get" => Some(AssertionType::Get),
                    "payment.get" => Some(AssertionType::PaymentGet),
                    _ => None,
                })
                .collect(),
        };
        let require_uv = params["require_user_verification"]
            .as_bool()
            .unwrap_or(false)
            || params["requireUserVerification"].as_bool().unwrap_or(false);
        let auth_data = b64(case["authenticatorData"].as_str().unwrap());
        let backup_eligible = case["stored_backup_eligible"]
            .as_bool()
            .unwrap_or(auth_data.get(32).is_some_and(|f| f & 0x08 != 0));
        let credential_id = b64(case["credential_id"].as_str().unwrap());
        let stored = StoredCredential {
            credential_id: credential_id.clone(),
            public_key_cbor: b64(case["credential_public_key_cose"].as_str().unwrap()),
            sign_count: case["stored_sign_count"].as_u64().unwrap_or(0) as u32,
            backup_eligible,
        };
        let client_data_json = b64(case["clientDataJSON"].as_str().unwrap());
        let signature = b64(case["signature"].as_str().unwrap());
        let input = AssertionInput {
            credential_id: &credential_id,
            client_data_json: &client_data_json,
            authenticator_data: &auth_data,
            signature: &signature,
        };
        let expect = AssertionExpectations {
            rp: &rp,
            challenge: case["challenge"].as_str().unwrap(),
            types: &types,
            require_user_verification: require_uv,
            payment: None,
        };
        let result = verify_assertion(input, &expect, &stored);
        let accepted = result.is_ok();
        if accepted != (case["expected"] == "accept") {
            disagreements.push((name, result.err().map(|e| e.code())));
        }
        checked += 1;
    }
    let unexplained: Vec<_> = disagreements
        .iter()
        .filter(|(n, _)| !STRICTER.iter().any(|(s, _)| s == n))
        .collect();
    assert!(
        unexplained.is_empty(),
        "unexpected verdicts: {unexplained:#?}"
    );
    if vectors_dir().is_some() {
        assert!(checked >= 30, "only {checked} authentication cases");
    }
}
