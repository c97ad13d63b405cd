//! A small strict DER reader for the extensions x509-parser does not model (Android
//! KeyDescription, Apple nonce, TCG SAN attributes). Definite lengths only, high tag numbers
//! supported (Android uses context tags up to 719).

/// One DER element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Tlv<'a> {
    /// 0 universal, 1 application, 2 context, 3 private.
    pub class: u8,
    /// Constructed bit.
    pub constructed: bool,
    /// Tag number.
    pub tag: u32,
    /// Contents octets.
    pub value: &'a [u8],
}

pub(super) const SEQUENCE: u32 = 0x10;
pub(super) const SET: u32 = 0x11;
pub(super) const INTEGER: u32 = 0x02;
pub(super) const ENUMERATED: u32 = 0x0a;
pub(super) const OCTET_STRING: u32 = 0x04;
pub(super) const CONTEXT: u8 = 2;

/// Reads one element; returns it and the rest.
pub(super) fn read(input: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&first, mut rest) = input.split_first()?;
    let class = first >> 6;
    let constructed = first & 0x20 != 0;
    let mut tag = u32::from(first & 0x1f);
    if tag == 0x1f {
        tag = 0;
        loop {
            let (&b, r) = rest.split_first()?;
            rest = r;
            tag = tag.checked_mul(128)?.checked_add(u32::from(b & 0x7f))?;
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    let (&l0, r) = rest.split_first()?;
    rest = r;
    let len = if l0 < 0x80 {
        usize::from(l0)
    } else {
        let n = usize::from(l0 & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (lb, r) = rest.split_at_checked(n)?;
        rest = r;
        lb.iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
    };
    let (value, rest) = rest.split_at_checked(len)?;
    Some((
        Tlv {
            class,
            constructed,
            tag,
            value,
        },
        rest,
    ))
}

/// Reads all elements of a constructed value's contents.
pub(super) fn read_all(mut input: &[u8]) -> Option<Vec<Tlv<'_>>> {
    let mut out = Vec::new();
    while !input.is_empty() {
        let (t, rest) = read(input)?;
        out.push(t);
        input = rest;
    }
    Some(out)
}

/// Reads exactly one element filling `input`.
pub(super) fn read_one(input: &[u8]) -> Option<Tlv<'_>> {
    match read(input)? {
        (t, []) => Some(t),
        _ => None,
    }
}

impl<'a> Tlv<'a> {
    /// A universal element with this tag.
    pub(super) fn is(&self, tag: u32) -> bool {
        self.class == 0 && self.tag == tag
    }

    /// A non-negative INTEGER or ENUMERATED that fits u64.
    pub(super) fn uint(&self) -> Option<u64> {
        if !(self.is(INTEGER) || self.is(ENUMERATED)) || self.value.is_empty() {
            return None;
        }
        let (&first, _) = self.value.split_first()?;
        if first & 0x80 != 0 {
            return None;
        }
        let digits = match self.value {
            [0, rest @ ..] => rest,
            all => all,
        };
        if digits.len() > 8 {
            return None;
        }
        Some(
            digits
                .iter()
                .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        )
    }

    /// Children of a constructed element.
    pub(super) fn children(&self) -> Option<Vec<Tlv<'a>>> {
        if self.constructed {
            read_all(self.value)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn high_tag_numbers_are_read() {
        // [600] EXPLICIT NULL as Android encodes allApplications.
        let t = read_one(&[0xbf, 0x84, 0x58, 0x02, 0x05, 0x00]).unwrap();
        assert_eq!((t.class, t.tag, t.constructed), (CONTEXT, 600, true));
    }

    #[test]
    fn truncated_and_indefinite_lengths_are_refused() {
        assert!(read(&[0x04, 0x05, 0x00]).is_none());
        assert!(read(&[0x30, 0x80, 0x00, 0x00]).is_none());
        assert!(read_one(&[0x05, 0x00, 0x00]).is_none());
    }
}
