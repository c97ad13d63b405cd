//! `android-safetynet` (WebAuthn L3 §8.5): verified as far as possible and reported, never
//! trusted (the API is retired and its verdict is about the device, not the key).
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD_INDIFFERENT};
use base64::Engine;
use ring::digest;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::{chain, chain_trust, keys, stmt};
use super::{
    AttestationError, AttestationPolicy, AttestationVerdict, Format, SafetyNetCts, SafetyNetInfo,
    StatementInput, Trust, TrustAnchors,
};

const ATTEST_HOSTNAME: &str = "attest.android.com";

fn err(what: &'static str) -> AttestationError {
    AttestationError::SafetyNet(what)
}

fn b64url(s: &str) -> Result<Vec<u8>, AttestationError> {
    URL_SAFE_NO_PAD_INDIFFERENT
        .decode(s)
        .map_err(|_| err("JWS segment not base64url"))
}

fn json(bytes: &[u8]) -> Result<serde_json::Value, AttestationError> {
    serde_json::from_slice(bytes).map_err(|_| err("JWS segment not JSON"))
}

/// The JWS signature by the leaf key: RS256 (PKCS#1) or ES256 (raw r||s).
fn verify_jws(
    leaf: &X509Certificate<'_>,
    alg: &str,
    message: &[u8],
    sig: &[u8],
) -> Result<(), AttestationError> {
    let ring_alg: &'static dyn VerificationAlgorithm = match (alg, keys::kind(leaf.public_key())?) {
        ("RS256", keys::KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("ES256", keys::KeyKind::P256) => &signature::ECDSA_P256_SHA256_FIXED,
        _ => return Err(err("JWS alg unsupported or not the leaf key's")),
    };
    UnparsedPublicKey::new(ring_alg, &leaf.public_key().subject_public_key.data)
        .verify(message, sig)
        .map_err(|_| AttestationError::BadSignature)
}

/// The leaf is issued to attest.android.com (SAN dNSName, else subject CN).
fn issued_to_attest_host(leaf: &X509Certificate<'_>) -> bool {
    if let Ok(Some(san)) = leaf.subject_alternative_name() {
        if san
            .value
            .general_names
            .iter()
            .any(|n| matches!(n, GeneralName::DNSName(d) if *d == ATTEST_HOSTNAME))
        {
            return true;
        }
    }
    leaf.subject()
        .iter_common_name()
        .any(|a| a.as_str() == Ok(ATTEST_HOSTNAME))
}

pub(super) fn verify(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, AttestationError> {
    let s = input.att_stmt;
    stmt::only_keys(
        s,
        &["ver", "response"],
        "android-safetynet: unknown attStmt member",
    )?;
    // §8.5 step 1: ver is the version of Google Play Services; it must be present.
    if stmt::text(s, "ver")?.is_empty() {
        return Err(err("ver empty"));
    }
    let response =
        std::str::from_utf8(stmt::bytes(s, "response")?).map_err(|_| err("response not ASCII"))?;
    let mut parts = response.split('.');
    let (Some(h), Some(p), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(err("response is not a compact JWS"));
    };
    let header = json(&b64url(h)?)?;
    let payload = json(&b64url(p)?)?;
    let sig = b64url(sig)?;
    let alg = header
        .get("alg")
        .and_then(|a| a.as_str())
        .ok_or(err("JWS alg missing"))?;
    let x5c_der = header
        .get("x5c")
        .and_then(|x| x.as_array())
        .filter(|x| !x.is_empty())
        .ok_or(err("JWS x5c missing"))?
        .iter()
        .map(|c| {
            c.as_str()
                .and_then(|c| STANDARD.decode(c).ok())
                .ok_or(err("JWS x5c entry malformed"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let x5c: Vec<&[u8]> = x5c_der.iter().map(Vec::as_slice).collect();
    let certs = chain::parse_x5c(&x5c)?;
    let leaf = certs.first().ok_or(err("JWS x5c missing"))?;
    // §8.5 step 3: the response comes from the SafetyNet service: the JWS verifies with the
    // leaf, issued to attest.android.com, whose chain verifies.
    let signing_input = response
        .get(..h.len() + 1 + p.len())
        .ok_or(err("response is not a compact JWS"))?;
    verify_jws(leaf, alg, signing_input.as_bytes(), &sig)?;
    if !issued_to_attest_host(leaf) {
        return Err(AttestationError::CertificateRequirement(
            "SafetyNet leaf not issued to attest.android.com",
        ));
    }
    let reached = chain::verify(&certs, anchors, None, now)?;
    let (_, anchor) = chain_trust(reached, policy)?;
    // §8.5 step 2: nonce is base64(SHA-256(authenticatorData || clientDataHash)).
    let expected = STANDARD.encode(digest::digest(&digest::SHA256, &input.to_be_signed()));
    if payload.get("nonce").and_then(|n| n.as_str()) != Some(expected.as_str()) {
        return Err(AttestationError::NonceMismatch);
    }
    let cts = payload
        .get("ctsProfileMatch")
        .and_then(|c| c.as_bool())
        .ok_or(err("ctsProfileMatch missing"))?;
    if !cts && policy.safetynet_cts == SafetyNetCts::Require {
        return Err(err("ctsProfileMatch false"));
    }
    let timestamp_ms = payload
        .get("timestampMs")
        .and_then(|t| t.as_i64())
        .ok_or(err("timestampMs missing"))?;
    // timestampMs is reported, not judged: the verdict is never trust, and the captured
    // responses' clocks are not the verifier's.
    let mut verdict = AttestationVerdict::new(Format::AndroidSafetyNet, Trust::None, anchor);
    verdict.safetynet = Some(SafetyNetInfo {
        cts_profile_match: cts,
        basic_integrity: payload
            .get("basicIntegrity")
            .and_then(|b| b.as_bool())
            .unwrap_or(false),
        timestamp_ms,
    });
    Ok(verdict)
}
