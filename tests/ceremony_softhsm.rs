//! Ceremony keys in a real SoftHSM2 token: import a formed KEK, its CMAC KCV from the HSM.
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
use payhsm::ceremony::{combine, Component, KeyMaterial};
use payhsm::keys::{Hsm, HsmConfig, HsmError, Pin};
use std::sync::OnceLock;

use support::softhsm::{fixture, module_path, serial, TOKEN, USER_PIN};

fn open() -> Hsm {
    Hsm::open(
        &fixture().module,
        HsmConfig {
            token_label: TOKEN.to_owned(),
            pin: Pin::new(USER_PIN.to_owned()),
            sessions: 1,
        },
    )
    .unwrap()
}

/// A second cryptoki handle, for attribute checks; kept for the process (no C_Finalize).
fn raw_pkcs11() -> &'static cryptoki::context::Pkcs11 {
    static RAW: OnceLock<cryptoki::context::Pkcs11> = OnceLock::new();
    RAW.get_or_init(|| {
        fixture();
        cryptoki::context::Pkcs11::new(module_path()).unwrap()
    })
}

fn known_key() -> KeyMaterial {
    let a = Component::from_hex(&"0123456789ABCDEF".repeat(4)).unwrap();
    let b = Component::from_hex(&"F0E1D2C3B4A59687".repeat(4)).unwrap();
    combine(&[a, b]).unwrap()
}

#[tokio::test]
async fn imported_kek_has_the_software_kcv_and_is_sensitive_and_not_extractable() {
    let _serial = serial().await;
    let hsm = open();
    let key = known_key();
    let label = "ceremony-import";
    hsm.import_kek(label, &key).await.unwrap();
    assert!(hsm.kek_exists(label).await.unwrap());
    assert_eq!(hsm.kek_kcv(label).await.unwrap(), key.kcv_cmac());

    let pkcs11 = raw_pkcs11();
    let slot = pkcs11
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| pkcs11.get_token_info(*s).unwrap().label() == TOKEN)
        .unwrap();
    let session = pkcs11.open_ro_session(slot).unwrap();
    // Already logged in through the payhsm handle (login state is per application).
    let _ = session.login(UserType::User, Some(&AuthPin::new(USER_PIN.to_owned())));
    let found = session
        .find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(found.len(), 1);
    let attrs = session
        .get_attributes(
            found[0],
            &[
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Token,
                AttributeType::Private,
                AttributeType::ValueLen,
            ],
        )
        .unwrap();
    let mut checked = 0;
    for a in attrs {
        match a {
            Attribute::Sensitive(v) | Attribute::Token(v) | Attribute::Private(v) => {
                assert!(v);
                checked += 1;
            }
            Attribute::Extractable(v) => {
                assert!(!v);
                checked += 1;
            }
            Attribute::ValueLen(n) => {
                assert_eq!(u64::from(n), 32);
                checked += 1;
            }
            _ => {}
        }
    }
    assert_eq!(checked, 5);
    // CKA_VALUE cannot be read.
    assert!(session
        .get_attributes(found[0], &[AttributeType::Value])
        .map(|v| v.iter().all(|a| !matches!(a, Attribute::Value(_))))
        .unwrap_or(true));
}

#[tokio::test]
async fn a_second_import_with_the_same_label_is_refused() {
    let _serial = serial().await;
    let hsm = open();
    let label = "ceremony-twice";
    hsm.import_kek(label, &known_key()).await.unwrap();
    let other = KeyMaterial::random().unwrap();
    match hsm.import_kek(label, &other).await {
        Err(HsmError::AlreadyExists(l)) => assert_eq!(l, label),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(hsm.kek_kcv(label).await.unwrap(), known_key().kcv_cmac());
}

#[tokio::test]
async fn a_generated_kek_has_a_kcv_from_the_hsm() {
    let _serial = serial().await;
    let hsm = open();
    hsm.generate_kek("ceremony-generated").await.unwrap();
    let a = hsm.kek_kcv("ceremony-generated").await.unwrap();
    assert_eq!(a, hsm.kek_kcv("ceremony-generated").await.unwrap());
    assert_ne!(a, known_key().kcv_cmac());
    assert!(matches!(
        hsm.kek_kcv("ceremony-absent").await,
        Err(HsmError::NotFound(_))
    ));
}
