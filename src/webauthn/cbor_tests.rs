use super::*;

fn code(bytes: &[u8]) -> &'static str {
    decode(bytes).unwrap_err().code()
}

#[test]
fn decodes_the_webauthn_subset() {
    // {1: 2, 3: -7, "a": h'0102', "t": [true, false, null]}
    let bytes = [
        0xa4, 0x01, 0x02, 0x03, 0x26, 0x61, b'a', 0x42, 1, 2, 0x61, b't', 0x83, 0xf5, 0xf4, 0xf6,
    ];
    let v = decode(&bytes).unwrap();
    assert_eq!(v.get_int(1).and_then(Value::as_int), Some(2));
    assert_eq!(v.get_int(3).and_then(Value::as_int), Some(-7));
    assert_eq!(
        v.get_text("a").and_then(Value::as_bytes),
        Some(&[1u8, 2][..])
    );
    assert_eq!(
        v.get_text("t").and_then(Value::as_array),
        Some(&[Value::Bool(true), Value::Bool(false), Value::Null][..])
    );
    assert_eq!(v.as_map().map(<[_]>::len), Some(4));
}

#[test]
fn largest_negative_is_held_exactly() {
    let v = decode(&[0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]).unwrap();
    assert_eq!(v.as_int(), Some(-1 - i128::from(u64::MAX)));
}

#[test]
fn decode_prefix_reports_bytes_used() {
    let (v, used) = decode_prefix(&[0x18, 0x64, 0xff, 0xff]).unwrap();
    assert_eq!((v, used), (Value::Unsigned(100), 2));
}

#[test]
fn trailing_bytes_are_refused() {
    assert_eq!(code(&[0x01, 0x00]), "cbor_trailing_bytes");
}

#[test]
fn truncated_input_is_refused() {
    assert_eq!(code(&[]), "cbor_truncated");
    assert_eq!(code(&[0x19, 0x01]), "cbor_truncated");
    assert_eq!(code(&[0x82, 0x19, 0x01]), "cbor_truncated");
}

#[test]
fn indefinite_lengths_are_refused() {
    assert_eq!(code(&[0x5f, 0x41, 0x00, 0xff]), "cbor_indefinite_length");
    assert_eq!(code(&[0x9f, 0xff]), "cbor_indefinite_length");
    assert_eq!(code(&[0xbf, 0xff]), "cbor_indefinite_length");
    assert_eq!(code(&[0xff]), "cbor_indefinite_length");
}

#[test]
fn non_shortest_integers_and_lengths_are_refused() {
    assert_eq!(code(&[0x18, 0x17]), "cbor_non_canonical");
    assert_eq!(code(&[0x19, 0x00, 0xff]), "cbor_non_canonical");
    assert_eq!(code(&[0x1a, 0x00, 0x00, 0xff, 0xff]), "cbor_non_canonical");
    assert_eq!(
        code(&[0x1b, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]),
        "cbor_non_canonical"
    );
    assert_eq!(code(&[0x38, 0x00]), "cbor_non_canonical");
    assert_eq!(code(&[0x58, 0x01, 0xaa]), "cbor_non_canonical");
}

#[test]
fn reserved_additional_info_is_refused() {
    assert_eq!(code(&[0x1c]), "cbor_reserved_additional_info");
    assert_eq!(code(&[0xfd]), "cbor_reserved_additional_info");
}

#[test]
fn floats_undefined_simple_values_and_tags_are_refused() {
    assert_eq!(code(&[0xf9, 0x3c, 0x00]), "cbor_float");
    assert_eq!(code(&[0xfb, 0, 0, 0, 0, 0, 0, 0, 0]), "cbor_float");
    assert_eq!(code(&[0xf7]), "cbor_simple_value");
    assert_eq!(code(&[0xf8, 0x20]), "cbor_simple_value");
    assert_eq!(code(&[0xe0]), "cbor_simple_value");
    assert_eq!(code(&[0xc2, 0x41, 0x01]), "cbor_tag");
}

#[test]
fn duplicate_map_keys_are_refused() {
    assert_eq!(
        code(&[0xa2, 0x01, 0x00, 0x01, 0x00]),
        "cbor_duplicate_map_key"
    );
    assert_eq!(
        code(&[0xa2, 0x61, b'k', 0x00, 0x61, b'k', 0x01]),
        "cbor_duplicate_map_key"
    );
    // Same value, different types: not duplicates.
    assert!(decode(&[0xa2, 0x01, 0x00, 0x61, b'1', 0x00]).is_ok());
}

#[test]
fn depth_bomb_is_refused() {
    let ok = [vec![0x81u8; MAX_DEPTH - 1], vec![0x00]].concat();
    assert!(decode(&ok).is_ok());
    let bomb = [vec![0x81u8; 10_000], vec![0x00]].concat();
    assert_eq!(code(&bomb), "cbor_too_deep");
}

#[test]
fn length_bombs_are_refused_before_allocation() {
    // A byte string, an array and a map each announcing 2^64-1 entries in nine bytes.
    assert_eq!(
        code(&[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        "cbor_length_exceeds_input"
    );
    assert_eq!(
        code(&[0x9b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        "cbor_length_exceeds_input"
    );
    assert_eq!(
        code(&[0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        "cbor_length_exceeds_input"
    );
    assert_eq!(code(&[0x42, 0x00]), "cbor_length_exceeds_input");
    // A map of 2 entries needs at least 4 bytes.
    assert_eq!(code(&[0xa2, 0x01, 0x02, 0x03]), "cbor_length_exceeds_input");
}

#[test]
fn text_must_be_utf8() {
    assert_eq!(code(&[0x62, 0xc3, 0x28]), "cbor_invalid_utf8");
}
