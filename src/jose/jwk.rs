//! EC P-256 JWKs (RFC 7517, RFC 7518 §6.2), JWK Sets and RFC 7638 thumbprints. Sans-io.
//!
//! [`Jwks::parse`] is strict: every key must be a public EC P-256 key usable for ES256
//! signatures, with a unique `kid`, or the whole set is refused. payhsm publishes only such
//! keys, so anything else means a wrong URL or a broken document, and ignoring it silently
//! would hide that. Unknown members of a key are ignored (RFC 7517 §4).

use super::error::{JoseError, JwksError};
use crate::keys::EcPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The largest JWKS document accepted, in bytes.
pub const MAX_JWKS_LEN: usize = 64 * 1024;
/// The most keys a JWKS may hold.
pub const MAX_JWKS_KEYS: usize = 64;
/// Length of a P-256 field element.
const COORDINATE_LEN: usize = 32;
/// SEC1 tag of an uncompressed point.
const UNCOMPRESSED: u8 = 0x04;

/// The RFC 7638 thumbprint of a P-256 public key: base64url(SHA-256) of the canonical JWK.
pub fn thumbprint(key: &EcPublicKey) -> String {
    let (x, y) = coordinates(key);
    // RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(x),
        URL_SAFE_NO_PAD.encode(y)
    );
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// x and y of an uncompressed SEC1 point (the tag byte skipped).
fn coordinates(key: &EcPublicKey) -> (&[u8], &[u8]) {
    let (_tag, xy) = key.0.split_at(1);
    xy.split_at(COORDINATE_LEN)
}

/// A public EC P-256 key for ES256 signatures, with its `kid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    kid: String,
    key: EcPublicKey,
}

impl Jwk {
    /// The JWK of `key` with `kid` = its RFC 7638 thumbprint.
    pub fn from_public_key(key: EcPublicKey) -> Jwk {
        Jwk {
            kid: thumbprint(&key),
            key,
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as an uncompressed SEC1 point.
    pub fn public_key(&self) -> &EcPublicKey {
        &self.key
    }

    /// The JWK document: `{kty, crv, x, y, kid, alg: "ES256", use: "sig"}`.
    pub fn to_json(&self) -> Value {
        let (x, y) = coordinates(&self.key);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
            "kid": self.kid,
            "alg": "ES256",
            "use": "sig",
        })
    }

    /// One key of a JWKS, checked member by member.
    fn parse(value: &Value) -> Result<Jwk, JwksError> {
        let obj = value.as_object().ok_or(JwksError::NotJwks)?;
        // RFC 7518 §6.2.2.1: `d` is the private key; a published set must never hold one.
        if obj.contains_key("d") {
            return Err(JwksError::PrivateKey);
        }
        // RFC 7518 §6.2.1.1: crv "P-256" with kty "EC".
        if str_member(obj, "kty") != Some("EC") || str_member(obj, "crv") != Some("P-256") {
            return Err(JwksError::UnsupportedKey);
        }
        // RFC 7517 §4.2-4.4: when present, use/key_ops/alg must allow ES256 verification.
        let optional_is = |name: &str, want: &str| {
            obj.get(name)
                .is_none_or(|v| v.as_str().is_some_and(|s| s == want))
        };
        if !optional_is("alg", "ES256") || !optional_is("use", "sig") {
            return Err(JwksError::UnsupportedKey);
        }
        if let Some(ops) = obj.get("key_ops") {
            let verifies = ops
                .as_array()
                .is_some_and(|ops| ops.iter().any(|op| op.as_str() == Some("verify")));
            if !verifies {
                return Err(JwksError::UnsupportedKey);
            }
        }
        let kid = str_member(obj, "kid")
            .filter(|k| !k.is_empty())
            .ok_or(JwksError::MissingKid)?;
        let x = coordinate(obj, "x")?;
        let y = coordinate(obj, "y")?;
        let point = [&[UNCOMPRESSED][..], &x, &y].concat();
        let point = <[u8; 65]>::try_from(point.as_slice()).map_err(|_| JwksError::Coordinate)?;
        // Whether the point is on the curve is checked by ring at verification: an invalid
        // point verifies nothing.
        Ok(Jwk {
            kid: kid.to_owned(),
            key: EcPublicKey(point),
        })
    }
}

fn str_member<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    obj.get(name).and_then(Value::as_str)
}

/// RFC 7518 §6.2.1.2: x and y are the base64url of the full-length coordinate.
fn coordinate(obj: &Map<String, Value>, name: &str) -> Result<[u8; COORDINATE_LEN], JwksError> {
    let text = str_member(obj, name).ok_or(JwksError::Coordinate)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| JwksError::Coordinate)?;
    <[u8; COORDINATE_LEN]>::try_from(bytes.as_slice()).map_err(|_| JwksError::Coordinate)
}

/// A JWK Set of ES256 verification keys: non-empty, every `kid` unique.
///
/// The signer publishes its current key first; keys retired from signing but whose
/// authorizations have not expired yet follow it, so verifiers keep accepting them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// A set of these keys; refused if empty, too large or if two share a `kid`.
    pub fn new(keys: Vec<Jwk>) -> Result<Jwks, JoseError> {
        if keys.is_empty() {
            return Err(JwksError::Empty.into());
        }
        if keys.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooLarge.into());
        }
        for (i, key) in keys.iter().enumerate() {
            if keys.iter().skip(i + 1).any(|other| other.kid == key.kid) {
                return Err(JwksError::DuplicateKid.into());
            }
        }
        Ok(Jwks { keys })
    }

    /// Parses a JWKS document `{"keys": [..]}` (RFC 7517 §5), strictly: see the module doc.
    pub fn parse(bytes: &[u8]) -> Result<Jwks, JoseError> {
        if bytes.len() > MAX_JWKS_LEN {
            return Err(JwksError::TooLarge.into());
        }
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotJwks)?;
        let keys = doc
            .as_object()
            .and_then(|o| o.get("keys"))
            .and_then(Value::as_array)
            .ok_or(JwksError::NotJwks)?;
        if keys.len() > MAX_JWKS_KEYS {
            return Err(JwksError::TooLarge.into());
        }
        let keys = keys.iter().map(Jwk::parse).collect::<Result<Vec<_>, _>>()?;
        Jwks::new(keys)
    }

    /// The key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&Jwk> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// Every key, current first.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The JWKS document `{"keys": [..]}`.
    pub fn to_json(&self) -> Value {
        json!({ "keys": self.keys.iter().map(Jwk::to_json).collect::<Vec<_>>() })
    }
}

#[cfg(test)]
#[path = "jwk_tests.rs"]
mod tests;
