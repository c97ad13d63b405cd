//! Compact JWS with ES256 (RFC 7515 §7.1, RFC 7518 §3.4): encoding and a strict verifier.
//! Sans-io: the signature comes from the caller (the HSM), the time from the caller too.

use super::error::{FormatError, JoseError, TimeError};
use super::jwk::Jwks;
use crate::keys::EcPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// The only algorithm produced and accepted.
pub const ES256: &str = "ES256";
/// The longest compact JWS accepted, in bytes.
pub const MAX_JWS_LEN: usize = 16 * 1024;
/// How far `iat` and `nbf` may lie after the verification time, in seconds.
pub const MAX_CLOCK_SKEW_SECS: i64 = 60;
/// RFC 7518 §3.4: an ES256 signature is R || S, 32 bytes each.
pub const SIGNATURE_LEN: usize = 64;

/// `BASE64URL(header) '.' BASE64URL(payload)`, waiting for its signature.
///
/// ES256 signs SHA-256 of exactly these ASCII bytes (RFC 7515 §5.1 step 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigningInput(String);

impl SigningInput {
    /// The bytes to sign.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// The compact serialization: the signing input, `.`, BASE64URL(R || S).
    pub fn into_compact(self, signature: &[u8; SIGNATURE_LEN]) -> String {
        let mut jws = self.0;
        jws.push('.');
        jws.push_str(&URL_SAFE_NO_PAD.encode(signature));
        jws
    }
}

/// Encodes `header` and `claims` (JSON objects) into the signing input: base64url without
/// padding of the exact JSON bytes serde_json writes.
pub fn encode(header: &Value, claims: &Value) -> Result<SigningInput, JoseError> {
    if !header.is_object() {
        return Err(FormatError::Header.into());
    }
    if !claims.is_object() {
        return Err(FormatError::ClaimsNotObject.into());
    }
    let header = serde_json::to_vec(header).map_err(|_| FormatError::Header)?;
    let claims = serde_json::to_vec(claims).map_err(|_| FormatError::ClaimsNotObject)?;
    Ok(SigningInput(format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    )))
}

/// Verifies an ES256 signature (R || S) of `message` under `key`.
pub fn verify_signature(
    key: &EcPublicKey,
    message: &[u8],
    signature: &[u8],
) -> Result<(), JoseError> {
    if signature.len() != SIGNATURE_LEN {
        return Err(FormatError::SignatureLength.into());
    }
    // RFC 7518 §3.4: ECDSA P-256 over SHA-256 of the signing input, fixed-width R || S.
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key.0)
        .verify(message, signature)
        .map_err(|_| JoseError::BadSignature)
}

/// Verifies a compact JWS against `jwks` at `now_unix` and returns its claims.
///
/// Accepts only `alg` ES256 with a `kid` found in `jwks`, no `crit`, `typ` absent or `JWT`, a
/// 64-byte R || S signature, and a JSON object payload whose `exp` (if any) is after `now_unix`
/// and whose `iat` and `nbf` (if any) are at most [`MAX_CLOCK_SKEW_SECS`] after it. Header and
/// claims with a duplicated member name are refused.
pub fn verify_compact(jws: &str, jwks: &Jwks, now_unix: i64) -> Result<Value, JoseError> {
    verify_with(
        jws,
        jwks,
        now_unix,
        Leeway {
            after_exp: 0,
            before_iat: MAX_CLOCK_SKEW_SECS,
        },
    )
}

/// As [`verify_compact`], with `leeway_secs` of clock skew tolerated both ways (RFC 7519
/// §4.1.4 allows "some small leeway"): refused as expired from `exp + leeway_secs` on, and as
/// issued in the future or not yet valid when `iat` or `nbf` is more than `leeway_secs` after
/// `now_unix`. A negative leeway counts as 0.
pub fn verify_compact_with_leeway(
    jws: &str,
    jwks: &Jwks,
    now_unix: i64,
    leeway_secs: i64,
) -> Result<Value, JoseError> {
    let leeway = leeway_secs.max(0);
    verify_with(
        jws,
        jwks,
        now_unix,
        Leeway {
            after_exp: leeway,
            before_iat: leeway,
        },
    )
}

/// The clock skew tolerated on each side, in seconds.
#[derive(Debug, Clone, Copy)]
struct Leeway {
    /// How long after `exp` the JWS is still accepted.
    after_exp: i64,
    /// How far after now `iat` and `nbf` may lie.
    before_iat: i64,
}

fn verify_with(jws: &str, jwks: &Jwks, now_unix: i64, leeway: Leeway) -> Result<Value, JoseError> {
    if jws.len() > MAX_JWS_LEN {
        return Err(FormatError::TooLong.into());
    }
    // RFC 7515 §7.1: header '.' payload '.' signature.
    let mut parts = jws.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(FormatError::PartCount.into());
    };
    let header = unique_object(&decode(header_b64)?).ok_or(FormatError::Header)??;
    // RFC 7515 §4.1.1 / RFC 8725 §3.1: the algorithm is fixed by us, never chosen by the token.
    match header.get("alg") {
        Some(Value::String(alg)) if alg == ES256 => {}
        Some(Value::String(_)) => return Err(JoseError::UnsupportedAlgorithm),
        _ => return Err(FormatError::Header.into()),
    }
    // RFC 7515 §4.1.11: a recipient that does not understand a listed extension must reject.
    if header.contains_key("crit") {
        return Err(FormatError::Critical.into());
    }
    // RFC 7519 §5.1 / RFC 8725 §3.11: typ, when present, names a JWT.
    if let Some(typ) = header.get("typ") {
        if !typ.as_str().is_some_and(|t| t.eq_ignore_ascii_case("JWT")) {
            return Err(FormatError::Type.into());
        }
    }
    let kid = match header.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid,
        Some(Value::String(_)) | None => return Err(JoseError::MissingKid),
        Some(_) => return Err(FormatError::Header.into()),
    };
    let key = jwks.find(kid).ok_or(JoseError::UnknownKid)?;
    let signature = decode(signature_b64)?;
    // RFC 7518 §3.4: R || S, not DER; anything but 64 bytes is refused before ring sees it.
    if signature.len() != SIGNATURE_LEN {
        return Err(FormatError::SignatureLength.into());
    }
    let signing_input = jws
        .get(..header_b64.len() + 1 + payload_b64.len())
        .ok_or(FormatError::PartCount)?;
    // RFC 7515 §5.2 step 8: validate the signature over ASCII(header '.' payload).
    verify_signature(key.public_key(), signing_input.as_bytes(), &signature)?;
    let claims = unique_object(&decode(payload_b64)?).ok_or(FormatError::ClaimsNotObject)??;
    check_times(&claims, now_unix, leeway)?;
    Ok(Value::Object(claims))
}

/// RFC 7519 §4.1.4-4.1.6: exp, nbf and iat, integers when present.
fn check_times(claims: &Map<String, Value>, now: i64, leeway: Leeway) -> Result<(), JoseError> {
    let time = |name: &str| -> Result<Option<i64>, JoseError> {
        claims
            .get(name)
            .map(|v| v.as_i64().ok_or(FormatError::ClaimType.into()))
            .transpose()
    };
    // RFC 7519 §4.1.4: the current time MUST be before exp (with the leeway, if any).
    if time("exp")?.is_some_and(|exp| now >= exp.saturating_add(leeway.after_exp)) {
        return Err(TimeError::Expired.into());
    }
    let latest = now.saturating_add(leeway.before_iat);
    // RFC 7519 §4.1.5: not before nbf (with the clock skew allowance).
    if time("nbf")?.is_some_and(|nbf| nbf > latest) {
        return Err(TimeError::NotYetValid.into());
    }
    if time("iat")?.is_some_and(|iat| iat > latest) {
        return Err(TimeError::IssuedInFuture.into());
    }
    Ok(())
}

/// base64url without padding, canonical (RFC 7515 §2, §3).
fn decode(part: &str) -> Result<Vec<u8>, JoseError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| FormatError::Base64.into())
}

/// The JSON object in `bytes`: `None` if it is not one, `Some(Err)` if a member name repeats
/// (RFC 7515 §4 allows last-wins parsing; we refuse, so no two parsers can disagree).
fn unique_object(bytes: &[u8]) -> Option<Result<Map<String, Value>, JoseError>> {
    if !serde_json::from_slice::<Value>(bytes).is_ok_and(|v| v.is_object()) {
        return None;
    }
    Some(
        serde_json::from_slice::<UniqueObject>(bytes)
            .map(|o| o.0)
            .map_err(|_| FormatError::DuplicateMember.into()),
    )
}

/// A JSON object whose top-level member names are unique.
struct UniqueObject(Map<String, Value>);

impl<'de> Deserialize<'de> for UniqueObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;
        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = UniqueObject;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object with unique member names")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<UniqueObject, A::Error> {
                let mut map = Map::new();
                while let Some(name) = access.next_key::<String>()? {
                    if map.contains_key(&name) {
                        return Err(de::Error::custom("duplicate member name"));
                    }
                    let value = access.next_value::<Value>()?;
                    map.insert(name, value);
                }
                Ok(UniqueObject(map))
            }
        }
        deserializer.deserialize_map(ObjectVisitor)
    }
}

#[cfg(test)]
#[path = "jws_tests.rs"]
mod tests;
