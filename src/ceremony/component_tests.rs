use super::{combine, Component, ComponentError, KEY_LEN};

const KEY_HEX: &str = "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4";

fn xor(a: &[u8; KEY_LEN], b: &[u8; KEY_LEN]) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    for i in 0..KEY_LEN {
        out[i] = a[i] ^ b[i];
    }
    out
}

fn component_from(bytes: &[u8; KEY_LEN]) -> Component {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Component::from_hex(&hex).unwrap()
}

#[test]
fn components_xor_back_to_the_key() {
    let key = Component::from_hex(KEY_HEX).unwrap();
    let c1 = Component::random().unwrap();
    let c2 = Component::random().unwrap();
    // c3 = key ^ c1 ^ c2, so c1 ^ c2 ^ c3 = key.
    let c3 = component_from(&xor(
        &xor(key.expose_secret(), c1.expose_secret()),
        c2.expose_secret(),
    ));
    let combined = combine(&[c1, c2, c3]).unwrap();
    assert_eq!(combined.expose_secret(), key.expose_secret());
    assert_eq!(combined.kcv_cmac(), key.kcv_cmac());
}

#[test]
fn combining_in_any_order_gives_the_same_key() {
    let a = Component::random().unwrap();
    let b = Component::random().unwrap();
    let c = Component::random().unwrap();
    let copies = |x: &Component| component_from(x.expose_secret());
    let abc = combine(&[copies(&a), copies(&b), copies(&c)]).unwrap();
    let cab = combine(&[copies(&c), copies(&a), copies(&b)]).unwrap();
    let bca = combine(&[b, c, a]).unwrap();
    assert_eq!(abc.expose_secret(), cab.expose_secret());
    assert_eq!(abc.expose_secret(), bca.expose_secret());
}

#[test]
fn a_single_component_is_refused() {
    let err = combine(&[Component::random().unwrap()]).unwrap_err();
    assert_eq!(err, ComponentError::TooFewComponents { given: 1 });
    assert_eq!(combine(&[]).unwrap_err().code(), "component_too_few");
}

#[test]
fn the_same_component_twice_is_refused_as_a_zero_key() {
    let a = Component::from_hex(KEY_HEX).unwrap();
    let b = Component::from_hex(KEY_HEX).unwrap();
    assert_eq!(combine(&[a, b]).unwrap_err(), ComponentError::ZeroKey);
}

#[test]
fn hex_round_trips_in_uppercase_groups_of_four() {
    let c = Component::random().unwrap();
    let text = c.to_hex();
    let groups: Vec<&str> = text.split(' ').collect();
    assert_eq!(groups.len(), 16);
    assert!(groups.iter().all(|g| g.len() == 4));
    assert!(!text.chars().any(|ch| ch.is_ascii_lowercase()));
    let back = Component::from_hex(&text).unwrap();
    assert_eq!(back.expose_secret(), c.expose_secret());
}

#[test]
fn hex_is_read_in_either_case_grouped_or_not() {
    let plain = Component::from_hex(KEY_HEX).unwrap();
    let upper_grouped = Component::from_hex(
        "603D EB10 15CA 71BE 2B73 AEF0 857D 7781 1F35 2C07 3B61 08D7 2D98 10A3 0914 DFF4\n",
    )
    .unwrap();
    assert_eq!(plain.expose_secret(), upper_grouped.expose_secret());
    assert_eq!(
        plain.to_hex().as_str(),
        "603D EB10 15CA 71BE 2B73 AEF0 857D 7781 1F35 2C07 3B61 08D7 2D98 10A3 0914 DFF4"
    );
}

#[test]
fn bad_hex_is_refused() {
    let mut bad_digit = KEY_HEX.to_string();
    bad_digit.replace_range(10..11, "g");
    assert_eq!(
        Component::from_hex(&bad_digit).unwrap_err(),
        ComponentError::InvalidHexDigit
    );
    assert_eq!(
        Component::from_hex(&KEY_HEX[..62]).unwrap_err(),
        ComponentError::WrongLength { digits: 62 }
    );
    assert_eq!(
        Component::from_hex(&format!("{KEY_HEX}0")).unwrap_err(),
        ComponentError::WrongLength { digits: 65 }
    );
    assert_eq!(
        Component::from_hex(&format!("{KEY_HEX}00")).unwrap_err(),
        ComponentError::WrongLength { digits: 66 }
    );
    assert!(Component::from_hex("").is_err());
    assert!(Component::from_hex(&KEY_HEX.replace('6', "\u{0666}")).is_err());
    assert!(Component::from_hex(&format!("0x{}", &KEY_HEX[2..])).is_err());
}

#[test]
fn debug_and_errors_show_no_key_bytes() {
    let c = Component::from_hex(KEY_HEX).unwrap();
    let debug = format!("{c:?}");
    assert!(!debug.to_ascii_lowercase().contains("603deb"), "{debug}");
    assert!(debug.contains("kcv_cmac"));
    let k = combine(&[c, Component::random().unwrap()]).unwrap();
    let key_hex: String = k
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(!format!("{k:?}").contains(&key_hex[..8]));
    let mut bad = KEY_HEX.to_string();
    bad.replace_range(0..1, "z");
    let err = Component::from_hex(&bad).unwrap_err();
    assert!(!err.to_string().contains("03deb"));
}

#[test]
fn recovered_key_material_must_be_32_bytes() {
    use super::KeyMaterial;
    assert_eq!(
        KeyMaterial::try_from_slice(&[1u8; 16]).unwrap_err(),
        ComponentError::WrongKeyLength { len: 16 }
    );
    let k = KeyMaterial::try_from_slice(&[7u8; 32]).unwrap();
    assert_eq!(k.expose_secret(), &[7u8; 32]);
}
