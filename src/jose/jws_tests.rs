use super::*;
use crate::jose::jwk::{thumbprint, Jwk};
use ring::signature::{
    EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde_json::json;

const NOW: i64 = 1_800_000_000;

struct TestKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    jwk: Jwk,
}

impl TestKey {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .unwrap()
            .as_ref()
            .to_vec();
        let pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng).unwrap();
        let public = EcPublicKey(pair.public_key().as_ref().try_into().unwrap());
        Self {
            pair,
            pkcs8,
            jwk: Jwk::from_public_key(public),
        }
    }

    fn jwks(&self) -> Jwks {
        Jwks::new(vec![self.jwk.clone()]).unwrap()
    }

    fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "JWT", "kid": self.jwk.kid()})
    }

    fn sign_raw(&self, message: &[u8]) -> Vec<u8> {
        let rng = ring::rand::SystemRandom::new();
        self.pair.sign(&rng, message).unwrap().as_ref().to_vec()
    }

    /// A JWS over arbitrary header and payload bytes (for payloads `encode` refuses).
    fn sign_bytes(&self, header: &[u8], payload: &[u8]) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(payload)
        );
        let sig = self.sign_raw(input.as_bytes());
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn sign_with(&self, header: &Value, claims: &Value) -> String {
        let input = encode(header, claims).unwrap();
        let sig: [u8; 64] = self.sign_raw(input.as_bytes()).try_into().unwrap();
        input.into_compact(&sig)
    }

    fn sign(&self, claims: &Value) -> String {
        self.sign_with(&self.header(), claims)
    }
}

fn code(r: Result<Value, JoseError>) -> &'static str {
    r.unwrap_err().code()
}

#[test]
fn signed_claims_verify_and_come_back_unchanged() {
    let k = TestKey::new();
    let claims = json!({"authorization_id": "a1", "amount": 1250, "currency": "EUR",
                        "iat": NOW, "exp": NOW + 300});
    let jws = k.sign(&claims);
    assert_eq!(jws.split('.').count(), 3);
    assert_eq!(verify_compact(&jws, &k.jwks(), NOW).unwrap(), claims);
    // The header is the exact JSON we wrote.
    let header = URL_SAFE_NO_PAD
        .decode(jws.split('.').next().unwrap())
        .unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    assert_eq!(header, k.header());
    assert_eq!(k.jwk.kid(), thumbprint(k.jwk.public_key()));
}

#[test]
fn rfc7515_a3_signature_is_raw_r_and_s_over_the_ascii_signing_input() {
    // RFC 7515 Appendix A.3: the ES256 example key and JWS.
    let key = {
        let mut p = vec![4u8];
        p.extend(
            URL_SAFE_NO_PAD
                .decode("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU")
                .unwrap(),
        );
        p.extend(
            URL_SAFE_NO_PAD
                .decode("x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")
                .unwrap(),
        );
        EcPublicKey(p.try_into().unwrap())
    };
    let jws = "eyJhbGciOiJFUzI1NiJ9.\
        eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.\
        DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    assert_eq!(sig.len(), 64);
    verify_signature(&key, input.as_bytes(), &sig).unwrap();
    // The example header has no kid: payhsm's verifier insists on one.
    let jwks = Jwks::new(vec![Jwk::from_public_key(key)]).unwrap();
    assert_eq!(
        code(verify_compact(jws, &jwks, 1_300_819_000)),
        "missing_kid"
    );
}

#[test]
fn alg_none_and_hmac_and_others_are_refused() {
    let k = TestKey::new();
    let claims = json!({"sub": "x"});
    let kid = k.jwk.kid();
    for alg in [
        "none", "None", "HS256", "HS512", "RS256", "PS256", "ES384", "ES256K", "EdDSA", "es256",
    ] {
        let header = json!({"alg": alg, "kid": kid});
        // Signed or not, the algorithm is refused before anything else is looked at.
        let signed = k.sign_with(&header, &claims);
        assert_eq!(
            code(verify_compact(&signed, &k.jwks(), NOW)),
            "unsupported_alg",
            "{alg}"
        );
        let input = encode(&header, &claims).unwrap();
        let unsigned = format!("{}.", String::from_utf8(input.as_bytes().to_vec()).unwrap());
        assert_eq!(
            code(verify_compact(&unsigned, &k.jwks(), NOW)),
            "unsupported_alg",
            "{alg}"
        );
    }
    for header in [
        json!({"kid": kid}),
        json!({"alg": null, "kid": kid}),
        json!({"alg": ["ES256"], "kid": kid}),
    ] {
        assert_eq!(
            code(verify_compact(
                &k.sign_with(&header, &claims),
                &k.jwks(),
                NOW
            )),
            "bad_header"
        );
    }
}

#[test]
fn unknown_or_missing_kid_is_refused() {
    let k = TestKey::new();
    let other = TestKey::new();
    let jws = k.sign(&json!({}));
    assert_eq!(
        code(verify_compact(&jws, &other.jwks(), NOW)),
        "unknown_kid"
    );
    for header in [json!({"alg": "ES256"}), json!({"alg": "ES256", "kid": ""})] {
        assert_eq!(
            code(verify_compact(
                &k.sign_with(&header, &json!({})),
                &k.jwks(),
                NOW
            )),
            "missing_kid"
        );
    }
    let header = json!({"alg": "ES256", "kid": 1});
    assert_eq!(
        code(verify_compact(
            &k.sign_with(&header, &json!({})),
            &k.jwks(),
            NOW
        )),
        "bad_header"
    );
    // A signature by another key under our kid does not verify.
    let forged = other.sign_with(&k.header(), &json!({}));
    assert_eq!(
        code(verify_compact(&forged, &k.jwks(), NOW)),
        "bad_signature"
    );
}

#[test]
fn anything_but_three_parts_is_refused() {
    let k = TestKey::new();
    let jws = k.sign(&json!({"a": 1}));
    let (input, _) = jws.rsplit_once('.').unwrap();
    for bad in [
        String::new(),
        ".".to_owned(),
        input.to_owned(),
        format!("{jws}."),
        format!("{jws}.{}", jws.rsplit('.').next().unwrap()),
        format!(".{jws}"),
    ] {
        assert_eq!(
            code(verify_compact(&bad, &k.jwks(), NOW)),
            "wrong_part_count",
            "{bad}"
        );
    }
}

#[test]
fn bad_base64_is_refused_in_every_part() {
    let k = TestKey::new();
    let jws = k.sign(&json!({"a": 1}));
    let parts: Vec<&str> = jws.split('.').collect();
    let variants = [
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}+.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}=", parts[0], parts[1], parts[2]),
        format!("{}.{}./{}", parts[0], parts[1], &parts[2][1..]),
        format!("{} .{}.{}", parts[0], parts[1], parts[2]),
    ];
    for bad in variants {
        let got = code(verify_compact(&bad, &k.jwks(), NOW));
        assert!(matches!(got, "bad_base64"), "{bad}: {got}");
    }
    // A payload that is not base64url cannot carry a valid signature over it, but if it were
    // signed as such it is still refused when decoded.
    let input = format!("{}.{}", parts[0], "e30=");
    let sig = URL_SAFE_NO_PAD.encode(k.sign_raw(input.as_bytes()));
    assert_eq!(
        code(verify_compact(&format!("{input}.{sig}"), &k.jwks(), NOW)),
        "bad_base64"
    );
}

#[test]
fn a_der_signature_is_refused_for_its_length() {
    let k = TestKey::new();
    let jws = k.sign(&json!({"a": 1}));
    let (input, _) = jws.rsplit_once('.').unwrap();
    let rng = ring::rand::SystemRandom::new();
    let der_pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &k.pkcs8, &rng).unwrap();
    let der = der_pair.sign(&rng, input.as_bytes()).unwrap();
    assert_eq!(der.as_ref()[0], 0x30);
    let bad = format!("{input}.{}", URL_SAFE_NO_PAD.encode(der.as_ref()));
    assert_eq!(
        code(verify_compact(&bad, &k.jwks(), NOW)),
        "bad_signature_length"
    );
    for len in [0, 63, 65, 128] {
        let bad = format!("{input}.{}", URL_SAFE_NO_PAD.encode(vec![1u8; len]));
        assert_eq!(
            code(verify_compact(&bad, &k.jwks(), NOW)),
            "bad_signature_length"
        );
    }
}

#[test]
fn any_flipped_byte_breaks_the_signature() {
    let k = TestKey::new();
    let jws = k.sign(&json!({"amount": 1000, "currency": "EUR"}));
    let (input, sig) = jws.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    for i in [0, 31, 32, 63] {
        sig[i] ^= 1;
        let bad = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(code(verify_compact(&bad, &k.jwks(), NOW)), "bad_signature");
        sig[i] ^= 1;
    }
    // A changed claim (the amount) under the original signature.
    let (header, payload) = input.split_once('.').unwrap();
    let mut claims = URL_SAFE_NO_PAD.decode(payload).unwrap();
    let pos = claims.iter().position(|b| *b == b'1').unwrap();
    claims[pos] = b'9';
    let bad = format!(
        "{header}.{}.{}",
        URL_SAFE_NO_PAD.encode(&claims),
        URL_SAFE_NO_PAD.encode(&sig)
    );
    assert_eq!(code(verify_compact(&bad, &k.jwks(), NOW)), "bad_signature");
    // All zeros (r = s = 0) is refused too.
    let zeros = format!("{input}.{}", URL_SAFE_NO_PAD.encode([0u8; 64]));
    assert_eq!(
        code(verify_compact(&zeros, &k.jwks(), NOW)),
        "bad_signature"
    );
}

#[test]
fn expiry_is_strict_and_iat_nbf_allow_sixty_seconds_of_skew() {
    let k = TestKey::new();
    let jwks = k.jwks();
    let at = |claims: Value| verify_compact(&k.sign(&claims), &jwks, NOW);
    assert!(at(json!({"exp": NOW + 1})).is_ok());
    assert_eq!(code(at(json!({"exp": NOW}))), "expired");
    assert_eq!(code(at(json!({"exp": NOW - 3600}))), "expired");
    assert!(at(json!({"iat": NOW + 60})).is_ok());
    assert_eq!(code(at(json!({"iat": NOW + 61}))), "iat_in_future");
    assert!(at(json!({"nbf": NOW + 60})).is_ok());
    assert_eq!(code(at(json!({"nbf": NOW + 61}))), "not_yet_valid");
    for bad in [
        json!({"exp": "tomorrow"}),
        json!({"exp": 1.8e9}),
        json!({"iat": null}),
        json!({"nbf": u64::MAX}),
    ] {
        assert_eq!(code(at(bad.clone())), "bad_time_claim", "{bad}");
    }
    // Far-future verification times do not overflow.
    assert_eq!(
        code(verify_compact(&k.sign(&json!({"exp": 1})), &jwks, i64::MAX)),
        "expired"
    );
}

#[test]
fn a_leeway_tolerates_skew_both_ways_and_zero_is_strict() {
    let k = TestKey::new();
    let jwks = k.jwks();
    let at = |claims: Value, leeway: i64| {
        verify_compact_with_leeway(&k.sign(&claims), &jwks, NOW, leeway)
    };
    assert!(at(json!({"exp": NOW - 59}), 60).is_ok());
    assert_eq!(code(at(json!({"exp": NOW - 60}), 60)), "expired");
    assert_eq!(code(at(json!({"exp": NOW}), 0)), "expired");
    assert!(at(json!({"exp": NOW + 1}), 0).is_ok());
    assert!(at(json!({"iat": NOW + 10}), 10).is_ok());
    assert_eq!(code(at(json!({"iat": NOW + 11}), 10)), "iat_in_future");
    assert_eq!(code(at(json!({"iat": NOW + 1}), 0)), "iat_in_future");
    assert_eq!(code(at(json!({"nbf": NOW + 1}), 0)), "not_yet_valid");
    // A negative leeway is no leeway, never a stricter-than-now check that overflows.
    assert!(at(json!({"exp": NOW + 1, "iat": NOW}), -5).is_ok());
    assert_eq!(
        code(verify_compact_with_leeway(
            &k.sign(&json!({"exp": i64::MAX})),
            &jwks,
            i64::MAX,
            300
        )),
        "expired"
    );
}

#[test]
fn claims_must_be_one_json_object_with_unique_members() {
    let k = TestKey::new();
    let header = serde_json::to_vec(&k.header()).unwrap();
    for payload in [
        &b"[1,2]"[..],
        b"\"text\"",
        b"42",
        b"null",
        b"not json",
        b"{\"a\":1} x",
        b"",
    ] {
        let jws = k.sign_bytes(&header, payload);
        assert_eq!(
            code(verify_compact(&jws, &k.jwks(), NOW)),
            "claims_not_object"
        );
    }
    let jws = k.sign_bytes(&header, br#"{"amount":1,"amount":100000}"#);
    assert_eq!(
        code(verify_compact(&jws, &k.jwks(), NOW)),
        "duplicate_member"
    );
    let dup_header = format!(r#"{{"alg":"ES256","kid":"{}","kid":"x"}}"#, k.jwk.kid());
    let jws = k.sign_bytes(dup_header.as_bytes(), b"{}");
    assert_eq!(
        code(verify_compact(&jws, &k.jwks(), NOW)),
        "duplicate_member"
    );
    // Nested duplicates are the application's business; top-level ones are ours.
    let jws = k.sign_bytes(&header, br#"{"a":{"b":1}}"#);
    assert!(verify_compact(&jws, &k.jwks(), NOW).is_ok());
}

#[test]
fn header_must_be_an_object_without_crit_and_with_a_jwt_typ() {
    let k = TestKey::new();
    for header in [&b"[]"[..], b"\"ES256\"", b"{"] {
        let jws = k.sign_bytes(header, b"{}");
        assert_eq!(code(verify_compact(&jws, &k.jwks(), NOW)), "bad_header");
    }
    let kid = k.jwk.kid();
    let crit = json!({"alg": "ES256", "kid": kid, "crit": ["b64"], "b64": false});
    assert_eq!(
        code(verify_compact(
            &k.sign_with(&crit, &json!({})),
            &k.jwks(),
            NOW
        )),
        "unsupported_crit"
    );
    let typ = json!({"alg": "ES256", "kid": kid, "typ": "at+jwt"});
    assert_eq!(
        code(verify_compact(
            &k.sign_with(&typ, &json!({})),
            &k.jwks(),
            NOW
        )),
        "bad_typ"
    );
    for ok in [
        json!({"alg": "ES256", "kid": kid}),
        json!({"alg": "ES256", "kid": kid, "typ": "jwt"}),
    ] {
        assert!(verify_compact(&k.sign_with(&ok, &json!({})), &k.jwks(), NOW).is_ok());
    }
}

#[test]
fn oversized_input_is_refused_before_parsing() {
    let k = TestKey::new();
    let big = "a".repeat(MAX_JWS_LEN + 1);
    assert_eq!(code(verify_compact(&big, &k.jwks(), NOW)), "too_long");
}

#[test]
fn encode_needs_objects() {
    assert_eq!(
        encode(&json!([]), &json!({})).unwrap_err().code(),
        "bad_header"
    );
    assert_eq!(
        encode(&json!({}), &json!([1])).unwrap_err().code(),
        "claims_not_object"
    );
    let input = encode(&json!({"alg": "ES256"}), &json!({"a": "é"})).unwrap();
    assert_eq!(input.as_bytes(), b"eyJhbGciOiJFUzI1NiJ9.eyJhIjoiw6kifQ");
}
