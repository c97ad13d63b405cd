//! Every captured registration vector (../shared/vectors/webauthn) run through
//! `verify_statement`, and every App Attest vector through the App Attest verifiers, with the
//! case's anchors at the case's time; disagreements with `expected` are printed as a table.
//!
//! Depends on the wa-core parsers (`cbor::decode`, `AuthenticatorData::parse`): it runs once
//! that branch is merged.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD_INDIFFERENT};
use base64::Engine;
use payhsm::webauthn::attestation::appattest::{
    verify_app_attest_assertion, verify_app_attest_attestation, AppAttestAssertionInput,
    AppAttestAttestationInput, AppAttestEnvironment,
};
use payhsm::webauthn::attestation::{
    verify_statement, AttestationPolicy, SafetyNetCts, StatementInput, Trust, TrustAnchors,
    UntrustedChains,
};
use payhsm::webauthn::authdata::AuthenticatorData;
use payhsm::webauthn::cbor::{self, Value};
use payhsm::webauthn::cose::CoseAlgorithm;
use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const VECTORS: &str = "../../shared/vectors/webauthn";

/// Cases where payhsm's statement verdict is known to differ from `expected`, and why.
const KNOWN: &[(&str, &str)] = &[
    ("w3cspec__packed-es512__registration", "ES512 (P-521) is not in ring"),
    ("go__attestation_packed__packedTestResponseES512__L488", "ES512 (P-521) is not in ring"),
    ("w3cspec__packed-ed448__registration", "Ed448 is not in ring"),
    (
        "w3cspec__android-key-es256__registration",
        "synthetic KeyDescription with empty authorization lists: §8.4 requires origin GENERATED and purpose SIGN",
    ),
    (
        "fido2__tpm_windows_hello_attestation",
        "attStmt lacks ver; §8.3 requires \"2.0\" (python-fido2 does not check)",
    ),
    (
        "fido2__android_safetynet_attestation",
        "no verification time in the case; the GTS chain is expired today",
    ),
];

fn vectors_dir() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    [
        here.join(VECTORS),
        PathBuf::from("/work/shared/vectors/webauthn"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("vectors directory")
}

fn b64url(s: &str) -> Vec<u8> {
    // A few captured fields use the standard alphabet.
    let s = s.trim_end_matches('=').replace('+', "-").replace('/', "_");
    URL_SAFE_NO_PAD_INDIFFERENT.decode(s).unwrap()
}

fn text_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Map(m) => m
            .iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .map(|(_, v)| v),
        _ => None,
    }
}

fn bytes_of(v: &Value, key: &str) -> Vec<u8> {
    match text_of(v, key) {
        Some(Value::Bytes(b)) => b.clone(),
        other => panic!("{key}: {other:?}"),
    }
}

fn time_of(case: &Json) -> OffsetDateTime {
    [
        "verification_time_utc",
        "suggested_verification_time_utc",
        "captured_at_utc",
    ]
    .iter()
    .find_map(|k| case.get(*k).and_then(Json::as_str))
    .map(|s| OffsetDateTime::parse(s, &Rfc3339).unwrap())
    .unwrap_or_else(OffsetDateTime::now_utc)
}

fn load(dir: &Path, rel: &str) -> (String, Vec<u8>) {
    (rel.to_string(), std::fs::read(dir.join(rel)).unwrap())
}

/// The case's anchors and whether they were named explicitly.
fn anchors_of(dir: &Path, case: &Json, format: &str) -> (TrustAnchors, bool) {
    let vp = case.get("verifier_params").cloned().unwrap_or(Json::Null);
    let mut items = Vec::new();
    if let Some(over) = case.get("root_cert_override").and_then(|o| o.get(format)) {
        if over.as_str().is_some_and(|s| s.starts_with("[]")) {
            return (TrustAnchors::default(), false);
        }
    }
    if let Some(list) = vp
        .get("pem_root_certs_bytes_by_fmt")
        .and_then(|m| m.get(format))
        .and_then(Json::as_array)
    {
        items.extend(list.iter().map(|r| load(dir, r.as_str().unwrap())));
    } else if let Some(root) = case.get("trust_root").and_then(Json::as_str) {
        items.push(load(dir, root));
    } else if let Some(list) = vp.get("attestation_ca_list").and_then(Json::as_array) {
        for name in list {
            items.push(load(
                dir,
                &format!("roots/webauthn-rs_{}.pem", name.as_str().unwrap()),
            ));
        }
    }
    if !items.is_empty() {
        return (TrustAnchors::from_certificates(items).unwrap(), true);
    }
    let mut all: Vec<_> = std::fs::read_dir(dir.join("roots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.contains("ANDROID_SOFTWARE"))
        .collect();
    all.sort();
    let items = all
        .iter()
        .map(|n| load(dir, &format!("roots/{n}")))
        .collect();
    (TrustAnchors::from_certificates(items).unwrap(), false)
}

fn policy_of(case: &Json, explicit_anchors: bool) -> AttestationPolicy {
    use CoseAlgorithm as A;
    let vp = case.get("verifier_params").cloned().unwrap_or(Json::Null);
    let all = vec![
        A::Es256,
        A::Es384,
        A::Es512,
        A::EdDsa,
        A::Rs256,
        A::Rs384,
        A::Rs512,
        A::Rs1,
        A::Ps256,
        A::Ps384,
        A::Ps512,
    ];
    let algorithms = match vp.get("allowed_algorithms").and_then(Json::as_array) {
        Some(names) => names
            .iter()
            .filter_map(|n| match n.as_str().unwrap() {
                "ES256" => Some(A::Es256),
                "ES384" => Some(A::Es384),
                "ES512" => Some(A::Es512),
                "EDDSA" | "EdDSA" => Some(A::EdDsa),
                "RS256" => Some(A::Rs256),
                "RS384" => Some(A::Rs384),
                "RS512" => Some(A::Rs512),
                "PS256" => Some(A::Ps256),
                "PS384" => Some(A::Ps384),
                "PS512" => Some(A::Ps512),
                _ => None,
            })
            .collect(),
        None => all,
    };
    let mut p = AttestationPolicy::new(algorithms);
    p.untrusted_chains = if explicit_anchors {
        UntrustedChains::Reject
    } else {
        UntrustedChains::ReportAsNone
    };
    if vp.get("attestationSafetyNetEnforceCTSCheck") == Some(&Json::Bool(false)) {
        p.safetynet_cts = SafetyNetCts::DangerIgnore;
    }
    p
}

/// Rejections that are the ceremony's (clientData, RP ID, flags), not the statement's.
fn ceremony_reject(case: &Json) -> bool {
    let hay = format!(
        "{} {}",
        case["name"].as_str().unwrap_or_default(),
        case.get("expected_error")
            .map(Json::to_string)
            .unwrap_or_default()
    )
    .to_lowercase();
    [
        "challenge",
        "origin",
        "rp_id",
        "rp id",
        "type",
        "token_binding",
        "user_verification",
        "uv_required",
        "ignores_requested_algo",
    ]
    .iter()
    .any(|k| hay.contains(k))
}

/// The statement verdict: Ok(trust) or Err(code).
fn statement_verdict(dir: &Path, case: &Json) -> Result<Trust, String> {
    let att = cbor::decode(&b64url(case["attestationObject"].as_str().unwrap()))
        .map_err(|e| e.to_string())?;
    let format = match text_of(&att, "fmt") {
        Some(Value::Text(t)) => t.clone(),
        _ => return Err("no fmt".into()),
    };
    let auth_raw = bytes_of(&att, "authData");
    let auth = AuthenticatorData::parse(&auth_raw).map_err(|e| e.to_string())?;
    let cdh: [u8; 32] = match case.get("clientDataHash_hex").and_then(Json::as_str) {
        Some(hex) => (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect::<Vec<_>>()
            .try_into()
            .unwrap(),
        None => Sha256::digest(b64url(case["clientDataJSON"].as_str().unwrap())).into(),
    };
    let (anchors, explicit) = anchors_of(dir, case, &format);
    let input = StatementInput {
        format: &format,
        att_stmt: text_of(&att, "attStmt").ok_or("no attStmt")?,
        auth_data: &auth,
        auth_data_raw: &auth_raw,
        client_data_hash: &cdh,
    };
    verify_statement(&input, &anchors, &policy_of(case, explicit), time_of(case))
        .map(|v| v.trust)
        .map_err(|e| e.to_string())
}

fn app_attest_verdict(dir: &Path, case: &Json) -> Result<Trust, String> {
    let client_data = b64url(case["clientData_b64u"].as_str().unwrap());
    let app_id = case["app_id"].as_str().unwrap();
    if case["kind"] == "apple-appattest-assertion" {
        let assertion = cbor::decode(&b64url(case["assertionObject"].as_str().unwrap()))
            .map_err(|e| e.to_string())?;
        let pem = case["credential_public_key_spki_pem"].as_str().unwrap();
        let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let spki = STANDARD.decode(b64).unwrap();
        let input = AppAttestAssertionInput {
            assertion: &assertion,
            client_data: &client_data,
            public_key: &spki[spki.len() - 65..],
            stored_counter: case["stored_counter_for_test"].as_u64().unwrap() as u32,
            app_id,
        };
        return verify_app_attest_assertion(&input)
            .map(|_| Trust::Hardware)
            .map_err(|e| e.to_string());
    }
    let att = cbor::decode(&b64url(case["attestationObject"].as_str().unwrap()))
        .map_err(|e| e.to_string())?;
    let auth_raw = bytes_of(&att, "authData");
    let auth = AuthenticatorData::parse(&auth_raw).map_err(|e| e.to_string())?;
    let format = match text_of(&att, "fmt") {
        Some(Value::Text(t)) => t.clone(),
        _ => return Err("no fmt".into()),
    };
    let key_id = b64url(case["key_id"].as_str().unwrap());
    let (anchors, _) = anchors_of(dir, case, &format);
    let input = AppAttestAttestationInput {
        format: &format,
        att_stmt: text_of(&att, "attStmt").ok_or("no attStmt")?,
        auth_data: &auth,
        auth_data_raw: &auth_raw,
        client_data: &client_data,
        key_id: &key_id,
        app_id,
        environment: if case["environment"] == "production" {
            AppAttestEnvironment::Production
        } else {
            AppAttestEnvironment::Development
        },
    };
    verify_app_attest_attestation(&input, &anchors, time_of(case))
        .map(|_| Trust::Hardware)
        .map_err(|e| e.to_string())
}

#[test]
fn every_registration_and_app_attest_vector_agrees_with_its_expected_verdict() {
    let dir = vectors_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flat_map(|d| {
            let d = d.unwrap().path();
            if d.is_dir() && !d.ends_with("roots") {
                std::fs::read_dir(d)
                    .unwrap()
                    .map(|f| f.unwrap().path())
                    .collect()
            } else {
                vec![]
            }
        })
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut table = Vec::new();
    let mut unexpected = Vec::new();
    let mut ran = 0;
    let mut ceremony = Vec::new();
    let mut trusts = Vec::new();
    for f in &files {
        let case: Json = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
        let kind = case["kind"].as_str().unwrap_or_default();
        let got = match kind {
            "registration" | "attestation-statement-only" => statement_verdict(&dir, &case),
            "apple-appattest-attestation" | "apple-appattest-assertion" => {
                app_attest_verdict(&dir, &case)
            }
            _ => continue,
        };
        ran += 1;
        let name = case["name"].as_str().unwrap();
        let expected_accept = case["expected"] == "accept";
        let agrees = match (&got, expected_accept) {
            (Ok(_), true) | (Err(_), false) => true,
            (Ok(_), false) => ceremony_reject(&case),
            (Err(_), true) => false,
        };
        if got.is_ok() && !expected_accept && agrees {
            ceremony.push(name.to_string());
        }
        trusts.push(format!("{name:<100} {got:?}"));
        if !agrees {
            let why = KNOWN.iter().find(|(n, _)| *n == name).map(|(_, w)| *w);
            table.push(format!(
                "{name:<100} expected={:<6} got={got:?} known={why:?}",
                case["expected"].as_str().unwrap()
            ));
            if why.is_none() {
                unexpected.push(name.to_string());
            }
        }
    }
    println!("{ran} cases run; verdicts:\n{}", trusts.join("\n"));
    println!(
        "statement accepted, rejected by the ceremony:\n{}",
        ceremony.join("\n")
    );
    println!("disagreements:\n{}", table.join("\n"));
    assert!(ran > 100, "only {ran} cases found");
    assert!(
        unexpected.is_empty(),
        "unexplained disagreements: {unexpected:#?}"
    );
}
