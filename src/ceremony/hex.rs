//! Hex for transcribing secrets: uppercase, in groups of four digits, decoded and encoded
//! without branching on secret digit values.

use zeroize::Zeroizing;

/// Digits per group in a transcription.
const GROUP: usize = 4;

/// 0xFF when `a < b`, else 0x00, without a data-dependent branch.
fn lt_mask(a: u8, b: u8) -> u8 {
    let d = u16::from(a).wrapping_sub(u16::from(b));
    0u8.wrapping_sub(((d >> 8) & 1) as u8)
}

/// One hex digit's value and a 0xFF mask when it is a hex digit (either case).
fn decode_nibble(c: u8) -> (u8, u8) {
    let d = c.wrapping_sub(b'0');
    let l = (c | 0x20).wrapping_sub(b'a');
    let is_d = lt_mask(d, 10);
    let is_l = lt_mask(l, 6);
    ((d & is_d) | (l.wrapping_add(10) & is_l), is_d | is_l)
}

fn encode_nibble(n: u8) -> char {
    // '0'..'9' then 'A'..'F': 'A' - '9' - 1 == 7.
    char::from(b'0' + n + (!lt_mask(n, 10) & 7))
}

/// Decodes hex digits, skipping ASCII spaces (whose positions are not secret). `None` for any
/// other character or an odd digit count.
pub(crate) fn decode(text: &str) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(text.len() / 2));
    let mut valid = 0xFFu8;
    let mut high: Option<u8> = None;
    for c in text.bytes().filter(|c| *c != b' ') {
        let (v, ok) = decode_nibble(c);
        valid &= ok;
        match high.take() {
            None => high = Some(v),
            Some(h) => out.push((h << 4) | v),
        }
    }
    (valid == 0xFF && high.is_none()).then_some(out)
}

/// Number of hex digits in `text`, ignoring ASCII spaces.
pub(crate) fn digit_count(text: &str) -> usize {
    text.bytes().filter(|c| *c != b' ').count()
}

/// Uppercase hex in groups of four digits separated by one space.
pub(crate) fn encode_grouped(bytes: &[u8]) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::with_capacity(bytes.len() * 5 / 2));
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && (i * 2) % GROUP == 0 {
            out.push(' ');
        }
        out.push(encode_nibble(b >> 4));
        out.push(encode_nibble(b & 0x0F));
    }
    out
}

/// Uppercase hex without grouping, for values that are not secret (KCVs, set ids).
pub(crate) fn encode_public(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(encode_nibble(b >> 4));
        out.push(encode_nibble(b & 0x0F));
    }
    out
}
