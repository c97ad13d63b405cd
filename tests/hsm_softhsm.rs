//! The key hierarchy against a real token: SoftHSM2, or the module `PAYHSM_TEST_PKCS11_MODULE`
//! names (support::softhsm).
//!
//! One token per test process: the module's configuration variable must be set before the
//! first PKCS#11 call and C_Initialize runs once, so every test shares one setup behind a
//! `OnceLock`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use payhsm::card::{Domain, Pan, Token};
use payhsm::keys::{
    DataKeyRing, DataKeyState, Hsm, HsmConfig, HsmError, KeyError, KeyVersion, Module, Pin,
};
use std::sync::OnceLock;

use support::softhsm::{fixture, kind, module_path, serial, Kind, SO_PIN, TOKEN, USER_PIN};

fn pin(s: &str) -> Pin {
    Pin::new(s.to_owned())
}

fn open(sessions: usize) -> Hsm {
    let cfg = HsmConfig {
        token_label: TOKEN.to_owned(),
        pin: pin(USER_PIN),
        sessions,
    };
    Hsm::open(&fixture().module, cfg).unwrap()
}

/// A second cryptoki handle on the same library, for checks the payhsm API does not offer.
/// Kept for the whole process: dropping a cryptoki context calls C_Finalize for everyone.
fn raw_pkcs11() -> &'static cryptoki::context::Pkcs11 {
    static RAW: OnceLock<cryptoki::context::Pkcs11> = OnceLock::new();
    RAW.get_or_init(|| {
        fixture();
        cryptoki::context::Pkcs11::new(module_path()).unwrap()
    })
}

fn raw_session() -> cryptoki::session::Session {
    let p = raw_pkcs11();
    let slot = p
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|s| p.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    p.open_rw_session(slot).unwrap()
}

#[test]
fn init_token_if_absent_creates_the_token_once() {
    let f = fixture();
    let again = f
        .module
        .init_token_if_absent(TOKEN, &pin(SO_PIN), &pin(USER_PIN))
        .unwrap();
    assert!(!again);
    // Loading the same module again reuses the initialized library.
    assert!(Module::load(&module_path()).is_ok());
}

#[test]
fn the_token_is_in_the_module_under_test() {
    let id = fixture().module.token_identity(TOKEN).unwrap().unwrap();
    let maker = match kind() {
        Kind::SoftHsm2 => "SoftHSM project",
        Kind::Kryoptic => "Kryoptic Project",
    };
    assert_eq!(id.manufacturer, maker, "{id:?}");
}

/// The PIN bounds `payhsm ceremony init` checks PINs against, from the token's own
/// ulMinPinLen and ulMaxPinLen: kryoptic's 0 (CK_EFFECTIVELY_INFINITE) was once read as a bound
/// of 0 bytes, refusing every PIN.
#[test]
fn a_free_slot_takes_pins_of_usual_lengths() {
    let free = fixture().module.free_slot("payhsm-spare", None).unwrap();
    assert!(free.min_pin_len <= 8, "{free:?}");
    assert!(free.max_pin_len >= 64, "{free:?}");
}

// A wrong PIN is not tested here: PKCS#11 login is per application, so while other tests in
// this process hold logged-in sessions C_Login answers USER_ALREADY_LOGGED_IN before it looks
// at the PIN.
#[test]
fn open_fails_for_an_unknown_token() {
    let unknown = HsmConfig {
        token_label: "no-such-token".to_owned(),
        pin: pin(USER_PIN),
        sessions: 1,
    };
    assert!(matches!(
        Hsm::open(&fixture().module, unknown),
        Err(HsmError::NotFound(_))
    ));
    let no_workers = HsmConfig {
        token_label: TOKEN.to_owned(),
        pin: pin(USER_PIN),
        sessions: 0,
    };
    assert!(matches!(
        Hsm::open(&fixture().module, no_workers),
        Err(HsmError::InvalidConfig(_))
    ));
}

#[tokio::test]
async fn kek_is_generated_sensitive_and_never_extractable() {
    let _serial = serial().await;
    let hsm = open(2);
    assert!(!hsm.kek_exists("kek-attrs").await.unwrap());
    hsm.generate_kek("kek-attrs").await.unwrap();
    assert!(hsm.kek_exists("kek-attrs").await.unwrap());
    assert!(matches!(
        hsm.generate_kek("kek-attrs").await,
        Err(HsmError::AlreadyExists(_))
    ));

    let s = raw_session();
    s.login(UserType::User, Some(&AuthPin::new(USER_PIN.into())))
        .or_else(|e| match e {
            cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _) => {
                Ok(())
            }
            e => Err(e),
        })
        .unwrap();
    let found = s
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(b"kek-attrs".to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    let attrs = s
        .get_attributes(
            found[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Token,
                AttributeType::ValueLen,
            ],
        )
        .unwrap();
    assert!(attrs.contains(&Attribute::Sensitive(true)));
    assert!(attrs.contains(&Attribute::Extractable(false)));
    assert!(attrs.contains(&Attribute::Token(true)));
    assert!(attrs.contains(&Attribute::ValueLen(32.into())));
    // The secret value itself is not readable.
    assert!(s
        .get_attributes(found[0], &[AttributeType::Value])
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn wrapped_data_key_unwraps_to_the_same_material() {
    let _serial = serial().await;
    let hsm = open(2);
    hsm.generate_kek("kek-wrap").await.unwrap();
    let (wrapped, material) = hsm.new_data_key("kek-wrap", KeyVersion(3)).await.unwrap();
    assert_eq!(wrapped.version, KeyVersion(3));
    assert_eq!(wrapped.kek_label, "kek-wrap");
    assert_eq!(wrapped.state, DataKeyState::Active);
    assert_eq!(wrapped.wrapped.len(), 48);
    assert!(wrapped.created_at.ends_with('Z'));
    let unwrapped = hsm.unwrap_data_key(&wrapped).await.unwrap();

    // Same material: what one ring seals, the other opens.
    let a = DataKeyRing::new(vec![(KeyVersion(3), material)], KeyVersion(3)).unwrap();
    let b = DataKeyRing::new(vec![(KeyVersion(3), unwrapped)], KeyVersion(3)).unwrap();
    let pan = Pan::parse("4111111111111111").unwrap();
    let (token, domain) = (
        Token::parse("4111119999991111").unwrap(),
        Domain::parse("shop").unwrap(),
    );
    let sealed = a.seal(&pan, None, &token, &domain).unwrap();
    let (opened, _) = b.open(&sealed, &token, &domain).unwrap();
    assert!(opened == pan);
    assert_eq!(a.fingerprints(&pan, &domain), b.fingerprints(&pan, &domain));

    // Two data keys differ.
    let (_, other) = hsm.new_data_key("kek-wrap", KeyVersion(4)).await.unwrap();
    let c = DataKeyRing::new(vec![(KeyVersion(3), other)], KeyVersion(3)).unwrap();
    assert_eq!(
        c.open(&sealed, &token, &domain).err(),
        Some(KeyError::Integrity)
    );
}

/// A GCM tag failure: PKCS#11 says CKR_ENCRYPTED_DATA_INVALID (mapped to `Integrity`), which
/// kryoptic answers; SoftHSM2 2.6 answers CKR_GENERAL_ERROR from C_Decrypt, which payhsm does
/// not reinterpret (docs/hsm.md).
fn is_refused_by_decrypt(result: Result<payhsm::keys::DataKeyMaterial, HsmError>) -> bool {
    match (kind(), result) {
        (Kind::Kryoptic, Err(HsmError::Integrity)) => true,
        (Kind::SoftHsm2, Err(HsmError::Pkcs11 { function, .. })) => function == "C_Decrypt",
        _ => false,
    }
}

#[tokio::test]
async fn tampered_wrapped_data_key_is_refused() {
    let _serial = serial().await;
    let hsm = open(1);
    hsm.generate_kek("kek-tamper").await.unwrap();
    let (wrapped, _) = hsm.new_data_key("kek-tamper", KeyVersion(1)).await.unwrap();

    let mut flipped = wrapped.clone();
    flipped.wrapped[5] ^= 0x01;
    assert!(is_refused_by_decrypt(hsm.unwrap_data_key(&flipped).await));
    let mut other_version = wrapped.clone();
    other_version.version = KeyVersion(2);
    assert!(is_refused_by_decrypt(
        hsm.unwrap_data_key(&other_version).await
    ));
    let mut other_iv = wrapped.clone();
    other_iv.iv[0] ^= 0x01;
    assert!(is_refused_by_decrypt(hsm.unwrap_data_key(&other_iv).await));
    let mut truncated = wrapped.clone();
    truncated.wrapped.pop();
    assert!(matches!(
        hsm.unwrap_data_key(&truncated).await,
        Err(HsmError::Malformed(_))
    ));
    let mut no_kek = wrapped.clone();
    no_kek.kek_label = "kek-missing".to_owned();
    assert!(matches!(
        hsm.unwrap_data_key(&no_kek).await,
        Err(HsmError::NotFound(_))
    ));
    // The untouched key still unwraps: failures did not break the session.
    assert!(hsm.unwrap_data_key(&wrapped).await.is_ok());
}

#[tokio::test]
async fn signing_key_is_stable_and_signatures_verify() {
    let _serial = serial().await;
    let hsm = open(2);
    let first = hsm.ensure_signing_key("sign-test").await.unwrap();
    let second = hsm.ensure_signing_key("sign-test").await.unwrap();
    assert_eq!(first, second);
    assert_eq!(first.0[0], 0x04);

    let message = b"authorization payload".to_vec();
    let signature = hsm.sign_p256("sign-test", message.clone()).await.unwrap();
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        first.0.as_slice(),
    );
    key.verify(&message, &signature).unwrap();
    assert!(key.verify(b"another payload", &signature).is_err());

    assert!(matches!(
        hsm.sign_p256("sign-missing", message).await,
        Err(HsmError::NotFound(_))
    ));
}

/// Four signatures with "sign-again" at once.
async fn sign_four(hsm: &Hsm, message: &[u8]) -> [Result<[u8; 64], HsmError>; 4] {
    let sign = || hsm.sign_p256("sign-again", message.to_vec());
    let (a, b, c, d) = tokio::join!(sign(), sign(), sign(), sign());
    [a, b, c, d]
}

/// Sessions remember the handle of a signing key: a key destroyed and made again under the same
/// label, by this `Hsm` or by another one (another process), must be what signs next.
#[tokio::test]
async fn a_signing_key_made_again_under_its_label_is_the_one_used() {
    let _serial = serial().await;
    let hsm = open(2);
    let other = open(1);
    let message = b"authorization payload".to_vec();
    let verifies = |public: &payhsm::keys::EcPublicKey, signature: &[u8; 64]| {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            public.0.as_slice(),
        )
        .verify(&message, signature)
        .is_ok()
    };

    let first = hsm.ensure_signing_key("sign-again").await.unwrap();
    // Several signatures at once, so that both sessions find and remember the handle.
    for s in sign_four(&hsm, &message).await {
        assert!(verifies(&first, &s.unwrap()));
    }
    // Destroyed through this Hsm: nothing signs.
    assert_eq!(hsm.destroy_signing_key("sign-again").await.unwrap(), 2);
    for s in sign_four(&hsm, &message).await {
        assert!(matches!(s, Err(HsmError::NotFound(_))), "{s:?}");
    }
    // Made again through this Hsm.
    let second = hsm.ensure_signing_key("sign-again").await.unwrap();
    assert_ne!(first, second);
    for s in sign_four(&hsm, &message).await {
        assert!(verifies(&second, &s.unwrap()));
    }
    // Destroyed and made again behind this Hsm's back.
    assert_eq!(other.destroy_signing_key("sign-again").await.unwrap(), 2);
    let third = other.ensure_signing_key("sign-again").await.unwrap();
    assert_ne!(second, third);
    for s in sign_four(&hsm, &message).await {
        assert!(verifies(&third, &s.unwrap()));
    }
    assert_eq!(hsm.destroy_signing_key("sign-again").await.unwrap(), 2);
    other.shutdown().await;
    hsm.shutdown().await;
}

#[tokio::test]
async fn ping_answers() {
    let _serial = serial().await;
    let hsm = open(1);
    hsm.ping().await.unwrap();
}

#[tokio::test]
async fn service_resumes_after_the_login_is_lost() {
    // Logging out affects every session of the process: `serial` keeps the other tests out.
    let _serial = serial().await;
    let hsm = open(1);
    hsm.generate_kek("kek-relogin").await.unwrap();
    let (wrapped, _) = hsm
        .new_data_key("kek-relogin", KeyVersion(1))
        .await
        .unwrap();

    // PKCS#11 login state is per application: logging out any session logs out all of ours,
    // so private objects such as the KEK disappear from the worker's view.
    let s = raw_session();
    match s.logout() {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserNotLoggedIn, _)) => {}
        Err(e) => panic!("logout: {e}"),
    }
    drop(s);
    // The first call fails (the KEK is invisible without a login); the worker then notices
    // the lost login and logs in again before it replies, so the next call succeeds.
    assert!(matches!(
        hsm.unwrap_data_key(&wrapped).await,
        Err(HsmError::NotFound(_))
    ));
    hsm.unwrap_data_key(&wrapped).await.unwrap();
    hsm.ping().await.unwrap();
}
