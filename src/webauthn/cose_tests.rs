use super::*;
use crate::webauthn::test_authenticator::{encode, int, SoftAuthenticator};

fn ec2(crv: i64, alg: i64, len: usize) -> Value {
    Value::Map(vec![
        (int(1), int(2)),
        (int(3), int(alg)),
        (int(-1), int(crv)),
        (int(-2), Value::Bytes(vec![1; len])),
        (int(-3), Value::Bytes(vec![2; len])),
    ])
}

fn rsa(n_len: usize, alg: i64) -> Value {
    let mut n = vec![0xc5; n_len];
    n[n_len - 1] = 0x01;
    Value::Map(vec![
        (int(1), int(3)),
        (int(3), int(alg)),
        (int(-1), Value::Bytes(n)),
        (int(-2), Value::Bytes(vec![1, 0, 1])),
    ])
}

fn err(v: &Value) -> &'static str {
    CoseKey::from_cbor(v).unwrap_err().code()
}

#[test]
fn ec2_keys_of_each_curve_parse() {
    for (crv, alg, len, want) in [
        (1, -7, 32, CoseAlgorithm::Es256),
        (2, -35, 48, CoseAlgorithm::Es384),
        (3, -36, 66, CoseAlgorithm::Es512),
    ] {
        assert_eq!(CoseKey::from_cbor(&ec2(crv, alg, len)).unwrap().alg, want);
    }
}

#[test]
fn wrong_coordinate_length_is_refused() {
    assert_eq!(err(&ec2(1, -7, 31)), "cose_coordinate_length");
    assert_eq!(err(&ec2(3, -36, 65)), "cose_coordinate_length");
}

#[test]
fn alg_that_does_not_match_the_curve_is_refused() {
    assert_eq!(err(&ec2(1, -35, 32)), "cose_alg_key_mismatch");
    assert_eq!(err(&ec2(2, -257, 48)), "cose_alg_key_mismatch");
    assert_eq!(err(&rsa(256, -7)), "cose_alg_key_mismatch");
}

#[test]
fn missing_alg_is_refused() {
    let Value::Map(mut m) = ec2(1, -7, 32) else {
        unreachable!()
    };
    m.retain(|(k, _)| k.as_int() != Some(3));
    assert_eq!(err(&Value::Map(m)), "cose_missing_label");
}

#[test]
fn unknown_label_and_unknown_alg_are_refused() {
    let Value::Map(mut m) = ec2(1, -7, 32) else {
        unreachable!()
    };
    m.push((int(2), Value::Bytes(vec![1])));
    assert_eq!(err(&Value::Map(m)), "cose_unknown_label");
    assert_eq!(err(&ec2(1, -47, 32)), "unsupported_algorithm");
    assert_eq!(err(&ec2(4, -7, 32)), "cose_unsupported_curve");
}

#[test]
fn rsa_below_2048_bits_is_refused() {
    assert!(CoseKey::from_cbor(&rsa(256, -257)).is_ok());
    assert_eq!(err(&rsa(255, -257)), "rsa_key_size");
    let Value::Map(mut m) = rsa(256, -257) else {
        unreachable!()
    };
    m[2].1 = Value::Bytes([vec![0], vec![0xc5; 256]].concat());
    assert_eq!(err(&Value::Map(m)), "rsa_key_malformed");
}

#[test]
fn okp_keys_need_eddsa_and_exact_length() {
    let okp = |crv, alg, len| {
        Value::Map(vec![
            (int(1), int(1)),
            (int(3), int(alg)),
            (int(-1), int(crv)),
            (int(-2), Value::Bytes(vec![9; len])),
        ])
    };
    assert!(CoseKey::from_cbor(&okp(6, -8, 32)).is_ok());
    assert!(CoseKey::from_cbor(&okp(7, -8, 57)).is_ok());
    assert_eq!(err(&okp(6, -8, 57)), "cose_coordinate_length");
    assert_eq!(err(&okp(6, -7, 32)), "cose_alg_key_mismatch");
    // RFC 9864 fully-specified algorithms: only with their own curve.
    assert_eq!(
        CoseKey::from_cbor(&okp(7, -53, 57)).unwrap().alg,
        CoseAlgorithm::EdDsa
    );
    assert_eq!(
        CoseKey::from_cbor(&okp(6, -19, 32)).unwrap().alg,
        CoseAlgorithm::EdDsa
    );
    assert_eq!(err(&okp(6, -53, 32)), "cose_alg_key_mismatch");
    assert_eq!(err(&ec2(1, -19, 32)), "cose_alg_key_mismatch");
}

#[test]
fn p256_signature_verifies_and_a_flipped_bit_does_not() {
    let auth = SoftAuthenticator::new();
    let key = CoseKey::from_cbor_bytes(&auth.cose_key_bytes()).unwrap();
    let sig = auth.sign_assertion(b"authdata", b"{}");
    let mut msg = b"authdata".to_vec();
    msg.extend_from_slice(ring::digest::digest(&ring::digest::SHA256, b"{}").as_ref());
    key.verify(&msg, &sig).unwrap();
    msg[0] ^= 1;
    assert_eq!(key.verify(&msg, &sig).unwrap_err().code(), "bad_signature");
    assert_eq!(key.ec_uncompressed_point().unwrap().len(), 65);
    assert!(key.rsa_modulus_exponent().is_none());
}

#[test]
fn from_cbor_bytes_refuses_trailing_bytes() {
    let auth = SoftAuthenticator::new();
    let mut bytes = encode(&auth.cose_key());
    bytes.push(0);
    assert_eq!(
        CoseKey::from_cbor_bytes(&bytes).unwrap_err().code(),
        "cbor_trailing_bytes"
    );
}
