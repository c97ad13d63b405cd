//! The fuzz targets' entry points: `fuzz/fuzz_targets/<name>.rs` calls `fuzzing::<name>` and
//! nothing else. Every test build therefore compiles what the fuzzers run, and the tests here
//! run each target on its seeds and on bounded, deterministic mutations of them (a short fuzz
//! in CI; the long runs are `cargo fuzz`, see the README).
//!
//! Each function takes outside bytes as they arrive, returns nothing, and panics only when an
//! invariant of what it accepted is broken.

use crate::api::authorizations::{
    idempotency_key, AuthorizeRequest, PaymentChallengeRequest, IDEMPOTENCY_KEY,
};
use crate::api::body::{request_id, require_json, MAX_REQUEST_ID_LEN};
use crate::api::devices::{ChallengeRequest, EnrolRequest};
use crate::api::keys::{KeyChangeRequest, RewrapRequest};
use crate::api::types::{
    decode, domain_from_query, DetokenizeRequest, DomainBody, TokenizeRequest,
};
use crate::card::{contains_pan, Domain};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use std::str::from_utf8;

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every target: its name (the file under `fuzz/fuzz_targets/` and the `[[bin]]` in
/// `fuzz/Cargo.toml`) and its entry point.
pub const TARGETS: &[(&str, Target)] = &[
    ("api_route", api_route),
    ("audit_proof", audit_proof),
    ("audit_report", audit_report),
    ("audit_verify", audit_verify),
    ("authorization_requests", authorization_requests),
    ("card_parse", card_parse),
    ("ceremony_share", ceremony_share),
    ("certificate_identity", certificate_identity),
    ("config_toml", config_toml),
    ("detokenize_request", detokenize_request),
    ("device_requests", device_requests),
    ("http_bare_errors", http_bare_errors),
    ("jose_jwks", jose_jwks),
    ("jose_verify", jose_verify),
    ("key_change_request", key_change_request),
    ("request_headers", request_headers),
    ("text_screen", text_screen),
    ("tokenize_request", tokenize_request),
    ("webauthn_assertion", webauthn_assertion),
    ("webauthn_attestation_object", webauthn_attestation_object),
    ("webauthn_authdata", webauthn_authdata),
    ("webauthn_cbor", webauthn_cbor),
    ("webauthn_client_data", webauthn_client_data),
    ("webauthn_cose_key", webauthn_cose_key),
    ("webauthn_mds_blob", webauthn_mds_blob),
    ("webauthn_registration", webauthn_registration),
    ("webauthn_x5c_chain", webauthn_x5c_chain),
];

/// The request line's method (the first byte picks it) and path, matched to a route.
pub fn api_route(data: &[u8]) {
    crate::api::fuzz_resolve(data);
}

/// A proof file, outside input to `payhsm audit verify-proof` (against a fixed key set, the
/// RFC 7515 A.3 key), and the query strings of `GET /v1/audit/proof` and `/consistency`.
pub fn audit_proof(data: &[u8]) {
    if let Ok(jwks) = crate::jose::Jwks::parse(RFC7515_A3_JWKS) {
        let _ = crate::audit::proof::verify_proof(data, &jwks, 1_300_819_000);
    }
    let _ = crate::audit::proof::parse_receipt(data);
    if let Ok(q) = from_utf8(data) {
        crate::api::fuzz_audit_queries(q);
    }
}

/// An evidence report file (JSON, Markdown or HTML), outside input to `payhsm audit
/// verify-report`; and the query of `GET /v1/audit/report`. A Markdown or HTML file accepted
/// is exactly the rendering of the signed report it embeds.
#[allow(clippy::panic)]
pub fn audit_report(data: &[u8]) {
    use crate::audit::report::{parse_report_file, ReportFormat};
    if let Ok(file) = parse_report_file(data) {
        if file.format != ReportFormat::Json && file.format.render(&file.signed).as_bytes() != data
        {
            panic!("a report file was accepted whose text is not its signed report's");
        }
    }
    let _ = crate::api::types::report_query(from_utf8(data).ok());
}

/// An exported audit log (JSON lines), outside input to the auditor's verifier.
pub fn audit_verify(data: &[u8]) {
    if let Ok(text) = from_utf8(data) {
        let _ = crate::audit::verify_export(text, None);
    }
}

/// The bodies of `POST /v1/authorizations/challenges` (with the checks of amount, currency,
/// payee and SPC display data) and `POST /v1/authorizations`.
pub fn authorization_requests(data: &[u8]) {
    if let Ok(input) = decode::<PaymentChallengeRequest>(data).and_then(|r| r.into_input()) {
        let _ = input.check_values();
    }
    let _ = decode::<AuthorizeRequest>(data).and_then(AuthorizeRequest::into_input);
}

/// PAN, token and domain parsing, and tokens formed for what parses as a PAN.
pub fn card_parse(data: &[u8]) {
    crate::card::fuzz_parse(data);
}

/// A typed-in share transcript: refused or parsed; a parsed share round-trips.
pub fn ceremony_share(data: &[u8]) {
    crate::ceremony::fuzz_share_transcript(data);
}

/// The client certificate's DER, as the TLS layer hands it over.
pub fn certificate_identity(data: &[u8]) {
    let _ = crate::transport::principal_from_certificate(data);
}

/// The daemon's TOML configuration.
pub fn config_toml(data: &[u8]) {
    if let Ok(text) = from_utf8(data) {
        let _ = crate::config::Config::from_toml(text, std::path::Path::new("/etc/payhsm"));
    }
}

/// The body of `POST /v1/tokens/detokenize`, the `?domain=` query string, and the
/// `{"domain"}` body of suspend, resume and delete.
pub fn detokenize_request(data: &[u8]) {
    let _ = decode::<DetokenizeRequest>(data).and_then(|r| r.parse());
    let _ = from_utf8(data).map(|q| domain_from_query(Some(q)));
    let _ = decode::<DomainBody>(data).map(|b| Domain::parse(&b.domain));
}

/// The bodies of `POST /v1/devices/challenges` and `POST /v1/devices`.
pub fn device_requests(data: &[u8]) {
    let _ = decode::<ChallengeRequest>(data);
    let _ = decode::<EnrolRequest>(data).and_then(EnrolRequest::into_input);
}

/// The RFC 7515 A.3 key as a JWKS (kid `a3`): the fixed key of `jose_verify`.
const RFC7515_A3_JWKS: &[u8] = br#"{"keys":[{"kty":"EC","crv":"P-256","kid":"a3","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#;

/// A JWKS fetched from a URL, outside input to `payhsm authz verify`.
pub fn jose_jwks(data: &[u8]) {
    let _ = crate::jose::Jwks::parse(data);
}

/// A JWS, outside input to a gateway's verifier, against a fixed JWKS (the RFC 7515 A.3 key).
pub fn jose_verify(data: &[u8]) {
    if let (Ok(text), Ok(jwks)) = (from_utf8(data), crate::jose::Jwks::parse(RFC7515_A3_JWKS)) {
        let _ = crate::jose::verify_compact(text, &jwks, 1_300_819_000);
    }
}

/// The bodies of `POST /v1/keys/changes` and `POST /v1/keys/rewrap` (custodians' requests).
#[allow(clippy::panic)]
pub fn key_change_request(data: &[u8]) {
    if let Ok(change) = decode::<KeyChangeRequest>(data).and_then(|r| r.into_change()) {
        if change.canonical() != change.canonical() {
            panic!("an accepted key change has two canonical texts");
        }
    }
    let _ = decode::<RewrapRequest>(data).and_then(|r| r.batch());
}

/// The request headers the API reads itself: `content-type`, `Idempotency-Key` and
/// `x-request-id`, which is echoed back and audited and so must come out as 1 to 64 characters
/// of `[A-Za-z0-9_-]` holding no card number whatever came in.
#[allow(clippy::panic)]
pub fn request_headers(data: &[u8]) {
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, value.clone());
    headers.insert(IDEMPOTENCY_KEY, value.clone());
    headers.insert("x-request-id", value);
    let _ = require_json(&headers);
    let _ = idempotency_key(&headers);
    let id = request_id(&headers);
    let safe = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
    if id.is_empty() || id.len() > MAX_REQUEST_ID_LEN || !id.bytes().all(safe) {
        panic!("a request id to echo back is empty, too long or has other characters");
    }
    if contains_pan(&id) {
        panic!("a request id to echo back holds a card number");
    }
}

/// Caller text screened for display and for logs: what is accepted holds no refused
/// character and no card number, display text is NFC, and the card-number scan agrees with a
/// plain reference scan.
pub fn text_screen(data: &[u8]) {
    crate::text::fuzz_screen(data);
}

/// The body of `POST /v1/tokens`, decoded and validated as the API does.
pub fn tokenize_request(data: &[u8]) {
    let _ = decode::<TokenizeRequest>(data).and_then(TokenizeRequest::into_input);
}

/// A whole assertion against a fixed stored credential (a P-256 COSE key).
pub fn webauthn_assertion(data: &[u8]) {
    crate::webauthn::assertion::fuzz_verify(data);
}

/// An attestation object through every statement format.
pub fn webauthn_attestation_object(data: &[u8]) {
    crate::webauthn::attestation::fuzz_attestation_object(data);
}

/// What hyper writes on a connection: its own bare error answers get the JSON body; nothing
/// else is touched.
pub fn http_bare_errors(data: &[u8]) {
    crate::transport::bare_errors::fuzz_rewrite(data);
}

/// authenticatorData as the client sends it.
pub fn webauthn_authdata(data: &[u8]) {
    let _ = crate::webauthn::authdata::AuthenticatorData::parse(data);
}

/// Any CBOR a client sends (attestationObject, COSE keys, extensions).
pub fn webauthn_cbor(data: &[u8]) {
    let _ = crate::webauthn::cbor::decode(data);
}

/// clientDataJSON as the client sends it.
pub fn webauthn_client_data(data: &[u8]) {
    let parsed = crate::webauthn::client_data::ClientData::parse(data);
    // SPC's browser-bound key inside it, with the input's tail as the signature.
    let key = parsed
        .ok()
        .and_then(|c| c.payment)
        .and_then(|p| p.browser_bound_public_key);
    let signature = data.get(data.len() / 2..);
    let _ = crate::webauthn::browser_bound::verify(
        key.as_deref(),
        data,
        signature,
        &[crate::webauthn::cose::CoseAlgorithm::Es256],
    );
}

/// A stored or attested COSE_Key.
pub fn webauthn_cose_key(data: &[u8]) {
    let _ = crate::webauthn::cose::CoseKey::from_cbor_bytes(data);
}

/// The whole registration ceremony (WebAuthn L3 §7.1) over outside bytes.
pub fn webauthn_registration(data: &[u8]) {
    crate::webauthn::registration::fuzz_verify(data);
}

/// The trust files an operator fetches: a FIDO Metadata Service BLOB (the compact JWS, its
/// header, its payload's entries) and Google's Android attestation revocation list.
pub fn webauthn_mds_blob(data: &[u8]) {
    crate::webauthn::attestation::mds::fuzz_blob(data);
    let _ = crate::webauthn::attestation::android_key::RevocationList::parse(data);
}

/// x5c chain building, certificate signatures and the Android and Apple extensions.
pub fn webauthn_x5c_chain(data: &[u8]) {
    crate::webauthn::attestation::fuzz_x5c_chain(data);
}

#[cfg(test)]
#[path = "fuzzing_tests.rs"]
mod tests;
