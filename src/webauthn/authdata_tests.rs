use super::*;
use crate::webauthn::test_authenticator::*;

fn err(bytes: &[u8]) -> &'static str {
    AuthenticatorData::parse(bytes).unwrap_err().code()
}

#[test]
fn assertion_auth_data_parses() {
    let auth = SoftAuthenticator::new();
    let ad = AuthenticatorData::parse(&auth.auth_data("example.com", UP | UV, 7)).unwrap();
    assert_eq!(ad.sign_count, 7);
    assert!(ad.flags.up() && ad.flags.uv() && ad.attested.is_none());
    ad.check_rp_id(&["example.com".into()]).unwrap();
    assert_eq!(
        ad.check_rp_id(&["example.org".into()]).unwrap_err().code(),
        "rp_id_hash_mismatch"
    );
}

#[test]
fn attested_credential_data_keeps_the_exact_key_bytes() {
    let auth = SoftAuthenticator::new();
    let ad = AuthenticatorData::parse(&auth.auth_data("example.com", UP | AT, 0)).unwrap();
    let cred = ad.attested.unwrap();
    assert_eq!(cred.credential_id, auth.credential_id);
    assert_eq!(cred.public_key_cbor, auth.cose_key_bytes());
    assert_eq!(cred.aaguid, [0xAA; 16]);
}

#[test]
fn truncated_auth_data_is_refused() {
    let auth = SoftAuthenticator::new();
    let full = auth.auth_data("example.com", UP | AT, 0);
    assert_eq!(err(&full[..36]), "authdata_truncated");
    assert_eq!(err(&full[..37]), "authdata_truncated");
    assert_eq!(err(&full[..60]), "authdata_truncated");
    assert_eq!(err(&full[..full.len() - 1]), "cbor_length_exceeds_input");
}

#[test]
fn trailing_bytes_are_refused() {
    let auth = SoftAuthenticator::new();
    let mut ad = auth.auth_data("example.com", UP, 0);
    ad.push(0xa0);
    assert_eq!(err(&ad), "authdata_trailing_bytes");
    let mut ad = auth.auth_data("example.com", UP | AT, 0);
    ad.push(0x00);
    assert_eq!(err(&ad), "authdata_trailing_bytes");
}

#[test]
fn credential_id_of_1024_bytes_is_refused() {
    let mut auth = SoftAuthenticator::new();
    auth.credential_id = vec![7; 1023];
    assert!(AuthenticatorData::parse(&auth.auth_data("e.com", UP | AT, 0)).is_ok());
    auth.credential_id = vec![7; 1024];
    assert_eq!(
        err(&auth.auth_data("e.com", UP | AT, 0)),
        "credential_id_length"
    );
    auth.credential_id = vec![];
    assert_eq!(
        err(&auth.auth_data("e.com", UP | AT, 0)),
        "credential_id_length"
    );
}

#[test]
fn backup_state_without_eligibility_is_refused() {
    let auth = SoftAuthenticator::new();
    assert!(AuthenticatorData::parse(&auth.auth_data("e.com", UP | BE | BS, 0)).is_ok());
    assert_eq!(
        err(&auth.auth_data("e.com", UP | BS, 0)),
        "backup_state_without_eligibility"
    );
}

#[test]
fn extensions_flag_needs_a_map() {
    let auth = SoftAuthenticator::new();
    let ad = auth.auth_data("e.com", UP | ED, 0);
    assert_eq!(err(&ad), "extensions_missing");
    assert_eq!(
        err(&[ad.clone(), vec![0x01]].concat()),
        "extensions_not_map"
    );
    let ext = encode(&Value::Map(vec![(text("credProtect"), int(2))]));
    let parsed = AuthenticatorData::parse(&[ad, ext].concat()).unwrap();
    assert!(parsed.extensions.unwrap().get_text("credProtect").is_some());
}

#[test]
fn user_presence_and_verification() {
    let auth = SoftAuthenticator::new();
    let ad = AuthenticatorData::parse(&auth.auth_data("e.com", 0, 0)).unwrap();
    assert_eq!(ad.check_user(false).unwrap_err().code(), "user_not_present");
    let ad = AuthenticatorData::parse(&auth.auth_data("e.com", UP, 0)).unwrap();
    assert!(ad.check_user(false).is_ok());
    assert_eq!(ad.check_user(true).unwrap_err().code(), "user_not_verified");
}
