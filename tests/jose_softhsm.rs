//! The authorization signer against a real SoftHSM2 token, checked by payhsm's own verifier and
//! by an independent JOSE library (jsonwebtoken).
//!
//! One token per test process: SOFTHSM2_CONF must be set before the first PKCS#11 call and
//! C_Initialize runs once, so every test shares one setup behind a `OnceLock`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use cryptoki::object::{Attribute, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use payhsm::jose::{verify_compact, AuthorizationSigner, Jwks};
use payhsm::keys::{Hsm, HsmConfig, Pin};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

use support::softhsm::{fixture, module_path, serial, TOKEN, USER_PIN};

fn open() -> Hsm {
    let cfg = HsmConfig {
        token_label: TOKEN.to_owned(),
        pin: Pin::new(USER_PIN.to_owned()),
        sessions: 2,
    };
    Hsm::open(&fixture().module, cfg).unwrap()
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn authorization_claims() -> Value {
    json!({
        "authorization_id": "az_01J9",
        "token": "4111119876541111",
        "amount": 12_500,
        "currency": "EUR",
        "payee": "shop-a",
        "user_verified": true,
        "iat": now(),
        "exp": now() + 300,
    })
}

/// RFC 7638 §3.2 by hand: the canonical JSON of the required members, SHA-256, base64url.
fn hand_thumbprint(x: &str, y: &str) -> String {
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

#[tokio::test]
async fn hsm_signed_authorization_verifies_with_jsonwebtoken_and_payhsm() {
    let _serial = serial().await;
    let signer = AuthorizationSigner::open(open(), "authz-interop")
        .await
        .unwrap();
    let claims = authorization_claims();
    let jws = signer.sign(&claims).await.unwrap().compact;

    let jwks = signer.jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let jwk = &keys[0];
    let (x, y) = (jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap());
    assert_eq!(signer.kid(), hand_thumbprint(x, y));
    assert_eq!(jwk["kid"], signer.kid());

    // jsonwebtoken, from the bare coordinates.
    let header = jsonwebtoken::decode_header(&jws).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some(signer.kid().as_str()));
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let validation = Validation::new(Algorithm::ES256);
    let key = DecodingKey::from_ec_components(x, y).unwrap();
    let decoded = jsonwebtoken::decode::<Value>(&jws, &key, &validation).unwrap();
    assert_eq!(decoded.claims, claims);

    // jsonwebtoken, from our JWKS document parsed as its JwkSet.
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let found = set.find(&signer.kid()).unwrap();
    let key = DecodingKey::from_jwk(found).unwrap();
    assert_eq!(
        jsonwebtoken::decode::<Value>(&jws, &key, &validation)
            .unwrap()
            .claims,
        claims
    );

    // payhsm's own verifier, from the served bytes.
    let ours = Jwks::parse(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(verify_compact(&jws, &ours, now()).unwrap(), claims);

    // A tampered token fails in jsonwebtoken too.
    let mut parts: Vec<String> = jws.split('.').map(str::to_owned).collect();
    let mut payload = URL_SAFE_NO_PAD.decode(&parts[1]).unwrap();
    let at = payload.windows(5).position(|w| w == b"12500").unwrap();
    payload[at] = b'9';
    parts[1] = URL_SAFE_NO_PAD.encode(payload);
    let tampered = parts.join(".");
    assert!(jsonwebtoken::decode::<Value>(&tampered, &key, &validation).is_err());
    assert_eq!(
        verify_compact(&tampered, &ours, now()).unwrap_err().code(),
        "bad_signature"
    );
}

#[tokio::test]
async fn jsonwebtoken_signed_es256_verifies_with_payhsm() {
    let _serial = serial().await;
    // The other direction: a token signed by jsonwebtoken with a ring key.
    use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = payhsm::keys::EcPublicKey(pair.public_key().as_ref().try_into().unwrap());
    let jwk = payhsm::jose::Jwk::from_public_key(public);
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.kid = Some(jwk.kid().to_owned());
    let claims = authorization_claims();
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let jws = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let jwks = Jwks::new(vec![jwk]).unwrap();
    assert_eq!(verify_compact(&jws, &jwks, now()).unwrap(), claims);
}

#[tokio::test]
async fn reopening_a_label_keeps_its_kid_and_labels_do_not_share_keys() {
    let _serial = serial().await;
    let first = AuthorizationSigner::open(open(), "authz-stable")
        .await
        .unwrap();
    let again = AuthorizationSigner::open(open(), "authz-stable")
        .await
        .unwrap();
    assert_eq!(first.kid(), again.kid());
    assert_eq!(first.jwks(), again.jwks());
    let other = AuthorizationSigner::open(open(), "authz-other")
        .await
        .unwrap();
    assert_ne!(first.kid(), other.kid());
    // Each signature is fresh (ECDSA with a random nonce) and verifies under the same key.
    let claims = json!({"exp": now() + 60});
    let (a, b) = (
        first.sign(&claims).await.unwrap().compact,
        again.sign(&claims).await.unwrap().compact,
    );
    assert_ne!(a, b);
    let jwks = Jwks::parse(first.jwks().to_string().as_bytes()).unwrap();
    for jws in [a, b] {
        assert!(verify_compact(&jws, &jwks, now()).is_ok());
    }
}

#[tokio::test]
async fn claims_that_are_not_an_object_are_not_signed() {
    let _serial = serial().await;
    let signer = AuthorizationSigner::open(open(), "authz-claims")
        .await
        .unwrap();
    for claims in [json!([1, 2]), json!("text"), json!(null)] {
        assert!(signer.sign(&claims).await.is_err(), "{claims}");
    }
}

#[tokio::test]
async fn a_token_whose_key_halves_do_not_match_fails_the_startup_check() {
    let _serial = serial().await;
    let hsm = open();
    hsm.ensure_signing_key("authz-mismatch").await.unwrap();
    hsm.ensure_signing_key("authz-donor").await.unwrap();
    // Swap in another pair's private key under the label: the public key no longer matches.
    let s = raw_session();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .or_else(|e| match e {
            cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _) => {
                Ok(())
            }
            e => Err(e),
        })
        .unwrap();
    let private = |label: &str| {
        let found = s
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::KeyType(KeyType::EC),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap();
        assert_eq!(found.len(), 1);
        found[0]
    };
    s.destroy_object(private("authz-mismatch")).unwrap();
    s.update_attributes(
        private("authz-donor"),
        &[Attribute::Label(b"authz-mismatch".to_vec())],
    )
    .unwrap();
    let err = AuthorizationSigner::open(hsm, "authz-mismatch")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not verify"), "{err}");
}

#[tokio::test]
async fn a_missing_private_half_is_refused() {
    let _serial = serial().await;
    let hsm = open();
    hsm.ensure_signing_key("authz-half").await.unwrap();
    let s = raw_session();
    let _ = s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())));
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(b"authz-half".to_vec()),
        ])
        .unwrap();
    s.destroy_object(found[0]).unwrap();
    assert!(AuthorizationSigner::open(hsm, "authz-half").await.is_err());
}

/// A second cryptoki handle on the same library, for what the payhsm API does not offer.
/// Kept for the whole process: dropping a cryptoki context calls C_Finalize for everyone.
fn raw_session() -> cryptoki::session::Session {
    static RAW: OnceLock<cryptoki::context::Pkcs11> = OnceLock::new();
    let p = RAW.get_or_init(|| {
        fixture();
        cryptoki::context::Pkcs11::new(module_path()).unwrap()
    });
    let slot = p
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| p.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    p.open_rw_session(slot).unwrap()
}
