use super::*;
use serde_json::json;

/// RFC 9449 §4.1 (Figure 2) example proof key; RFC 9449 §6.1 publishes its `jkt` (an RFC 7638
/// SHA-256 thumbprint) as `0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I`.
const RFC9449_X: &str = "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs";
const RFC9449_Y: &str = "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA";
const RFC9449_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

fn point(x: &str, y: &str) -> EcPublicKey {
    let mut p = vec![4u8];
    p.extend(URL_SAFE_NO_PAD.decode(x).unwrap());
    p.extend(URL_SAFE_NO_PAD.decode(y).unwrap());
    EcPublicKey(p.try_into().unwrap())
}

fn ring_key() -> EcPublicKey {
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    EcPublicKey(pair.public_key().as_ref().try_into().unwrap())
}

fn key_json(overrides: Value) -> Value {
    let mut key = Jwk::from_public_key(point(RFC9449_X, RFC9449_Y)).to_json();
    for (k, v) in overrides.as_object().unwrap() {
        if v.is_null() {
            key.as_object_mut().unwrap().remove(k);
        } else {
            key[k] = v.clone();
        }
    }
    key
}

fn parse_one(key: Value) -> Result<Jwks, JoseError> {
    Jwks::parse(json!({ "keys": [key] }).to_string().as_bytes())
}

#[test]
fn thumbprint_matches_the_rfc9449_published_jkt() {
    assert_eq!(thumbprint(&point(RFC9449_X, RFC9449_Y)), RFC9449_JKT);
}

#[test]
fn thumbprint_is_sha256_of_the_hand_built_canonical_jwk() {
    let key = ring_key();
    let x = URL_SAFE_NO_PAD.encode(key.0.get(1..33).unwrap());
    let y = URL_SAFE_NO_PAD.encode(key.0.get(33..).unwrap());
    let canonical =
        String::from(r#"{"crv":"P-256","kty":"EC","x":""#) + &x + r#"","y":""# + &y + r#""}"#;
    let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    assert_eq!(thumbprint(&key), expected);
    assert_eq!(thumbprint(&key).len(), 43);
}

#[test]
fn jwk_document_has_every_member_and_round_trips() {
    let key = ring_key();
    let jwk = Jwk::from_public_key(key);
    let doc = jwk.to_json();
    assert_eq!(doc["kty"], "EC");
    assert_eq!(doc["crv"], "P-256");
    assert_eq!(doc["alg"], "ES256");
    assert_eq!(doc["use"], "sig");
    assert_eq!(doc["kid"], thumbprint(&key));
    assert_eq!(doc.as_object().unwrap().len(), 7);
    let set = Jwks::new(vec![jwk.clone()]).unwrap();
    let parsed = Jwks::parse(set.to_json().to_string().as_bytes()).unwrap();
    assert_eq!(parsed, set);
    assert_eq!(parsed.find(jwk.kid()), Some(&jwk));
    assert_eq!(parsed.find("other"), None);
}

#[test]
fn minimal_foreign_jwk_with_unknown_members_is_accepted() {
    let set = parse_one(json!({
        "kty": "EC", "crv": "P-256", "x": RFC9449_X, "y": RFC9449_Y, "kid": "k1",
        "x5t#S256": "ignored", "key_ops": ["verify"],
    }))
    .unwrap();
    assert_eq!(set.keys().len(), 1);
    assert_eq!(
        set.find("k1").unwrap().public_key(),
        &point(RFC9449_X, RFC9449_Y)
    );
}

#[test]
fn unusable_keys_refuse_the_whole_set() {
    let cases = [
        (json!({"kty": "RSA"}), "jwks_unsupported_key"),
        (json!({"kty": null}), "jwks_unsupported_key"),
        (json!({"crv": "P-384"}), "jwks_unsupported_key"),
        (json!({"crv": "secp256k1"}), "jwks_unsupported_key"),
        (json!({"alg": "ES384"}), "jwks_unsupported_key"),
        (json!({"alg": "HS256"}), "jwks_unsupported_key"),
        (json!({"use": "enc"}), "jwks_unsupported_key"),
        (json!({"key_ops": ["sign"]}), "jwks_unsupported_key"),
        (json!({"key_ops": "verify"}), "jwks_unsupported_key"),
        (
            json!({"d": "jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}),
            "jwks_private_key",
        ),
        (json!({"kid": null}), "jwks_missing_kid"),
        (json!({"kid": ""}), "jwks_missing_kid"),
        (json!({"kid": 7}), "jwks_missing_kid"),
        (json!({"x": null}), "jwks_bad_coordinate"),
        (json!({"x": "AAAA"}), "jwks_bad_coordinate"),
        (json!({"y": format!("{RFC9449_Y}=")}), "jwks_bad_coordinate"),
        (
            json!({"y": RFC9449_Y.replace('_', "/")}),
            "jwks_bad_coordinate",
        ),
        (
            json!({"x": URL_SAFE_NO_PAD.encode([1u8; 33])}),
            "jwks_bad_coordinate",
        ),
    ];
    for (overrides, code) in cases {
        let err = parse_one(key_json(overrides.clone())).unwrap_err();
        assert_eq!(err.code(), code, "{overrides}");
    }
}

#[test]
fn malformed_sets_are_refused() {
    let good = key_json(json!({}));
    let cases: [(Vec<u8>, &str); 8] = [
        (b"".to_vec(), "jwks_malformed"),
        (b"[]".to_vec(), "jwks_malformed"),
        (br#"{"keys": {}}"#.to_vec(), "jwks_malformed"),
        (br#"{"keys": [1]}"#.to_vec(), "jwks_malformed"),
        (br#"{"keys": []}"#.to_vec(), "jwks_empty"),
        (
            json!({"keys": [good, good]}).to_string().into_bytes(),
            "jwks_duplicate_kid",
        ),
        (
            json!({"keys": vec![json!(1); MAX_JWKS_KEYS + 1]})
                .to_string()
                .into_bytes(),
            "jwks_too_large",
        ),
        (vec![b' '; MAX_JWKS_LEN + 1], "jwks_too_large"),
    ];
    for (bytes, code) in cases {
        let err = Jwks::parse(&bytes).unwrap_err();
        assert_eq!(err.code(), code, "{}", String::from_utf8_lossy(&bytes));
    }
}

#[test]
fn a_set_built_in_code_needs_keys_with_distinct_kids() {
    assert_eq!(Jwks::new(vec![]).unwrap_err().code(), "jwks_empty");
    let jwk = Jwk::from_public_key(ring_key());
    assert_eq!(
        Jwks::new(vec![jwk.clone(), jwk]).unwrap_err().code(),
        "jwks_duplicate_kid"
    );
}
