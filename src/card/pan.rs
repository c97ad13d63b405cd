//! The primary account number, kept in a fixed, zeroized buffer.

use super::CardError;
use zeroize::Zeroize;

/// The longest PAN ISO/IEC 7812 allows.
pub const MAX_PAN_LEN: usize = 19;
/// The shortest PAN payhsm accepts.
pub const MIN_PAN_LEN: usize = 13;

/// A Luhn-valid PAN of 13 to 19 digits.
///
/// No `Clone`, no `Display`; `Debug` shows only the last four digits; the digits are zeroized
/// on drop and exposed only through [`Pan::expose_digits`] at the line that uses them.
pub struct Pan {
    digits: [u8; MAX_PAN_LEN],
    len: u8,
}

impl Pan {
    /// Parses ASCII digits; spaces and separators are not accepted.
    pub fn parse(s: &str) -> Result<Self, CardError> {
        Self::from_ascii(s.as_bytes())
    }

    /// Parses ASCII digit bytes.
    pub fn from_ascii(bytes: &[u8]) -> Result<Self, CardError> {
        if !(MIN_PAN_LEN..=MAX_PAN_LEN).contains(&bytes.len())
            || !bytes.iter().all(u8::is_ascii_digit)
            || !luhn_valid(bytes)
        {
            return Err(CardError::InvalidPan);
        }
        let mut digits = [0u8; MAX_PAN_LEN];
        for (d, b) in digits.iter_mut().zip(bytes) {
            *d = *b;
        }
        Ok(Self {
            digits,
            len: bytes.len() as u8,
        })
    }

    /// The PAN's ASCII digits. Use at the line that needs them; never format or log them.
    pub fn expose_digits(&self) -> &[u8] {
        self.digits.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Number of digits (13 to 19).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// Always false: a PAN has at least 13 digits. Present for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The last four digits, which may be shown and stored.
    pub fn last4(&self) -> Last4 {
        let d = self.expose_digits();
        let mut out = [b'0'; 4];
        for (o, b) in out.iter_mut().zip(d.iter().skip(d.len().saturating_sub(4))) {
            *o = *b;
        }
        Last4(out)
    }
}

impl Drop for Pan {
    fn drop(&mut self) {
        self.digits.zeroize();
        self.len.zeroize();
    }
}

impl zeroize::ZeroizeOnDrop for Pan {}

impl std::fmt::Debug for Pan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pan(****{})", self.last4())
    }
}

impl PartialEq for Pan {
    fn eq(&self, other: &Self) -> bool {
        use subtle_eq::ct_eq;
        ct_eq(self.expose_digits(), other.expose_digits())
    }
}

mod subtle_eq {
    /// Constant-time in the contents for equal lengths.
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

/// The Luhn (mod 10) check over ASCII digits. Non-digits make it false.
pub fn luhn_valid(digits: &[u8]) -> bool {
    luhn_sum(digits).is_some_and(|s| s % 10 == 0)
}

/// The Luhn sum of ASCII digits, or `None` if any byte is not a digit.
pub(crate) fn luhn_sum(digits: &[u8]) -> Option<u32> {
    let mut sum = 0u32;
    for (i, b) in digits.iter().rev().enumerate() {
        if !b.is_ascii_digit() {
            return None;
        }
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    Some(sum)
}

/// The last four digits of a PAN: the most of it that may be shown, logged or stored.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Last4([u8; 4]);

impl Last4 {
    /// Parses four ASCII digits.
    pub fn parse(s: &str) -> Option<Self> {
        let b: [u8; 4] = s.as_bytes().try_into().ok()?;
        b.iter().all(u8::is_ascii_digit).then_some(Self(b))
    }

    /// The four digits as a string slice.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("????")
    }
}

impl std::fmt::Display for Last4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Last4 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Last4({})", self.as_str())
    }
}

/// A card's expiry month and year. Not secret on its own, but stored only inside the
/// encrypted PAN record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    month: u8,
    year: u16,
}

impl Expiry {
    /// Month 1-12 and a four-digit year 2000-2099.
    pub fn new(month: u8, year: u16) -> Result<Self, CardError> {
        if (1..=12).contains(&month) && (2000..=2099).contains(&year) {
            Ok(Self { month, year })
        } else {
            Err(CardError::InvalidExpiry)
        }
    }

    /// Month 1-12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// Four-digit year.
    pub fn year(&self) -> u16 {
        self.year
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_luhn_valid_pans_of_13_to_19_digits() {
        for pan in [
            "4111111111111111",
            "4222222222222",
            "6011000990139424",
            "3530111333300000",
        ] {
            assert!(Pan::parse(pan).is_ok(), "{}", pan.len());
        }
        assert!(Pan::parse("4000000000000000006").is_ok());
    }

    #[test]
    fn refuses_bad_length_non_digits_and_luhn_failures() {
        for bad in [
            "",
            "411111111111",
            "41111111111111111111",
            "4111111111111112",
            "4111 1111 1111 1111",
            "411111111111111a",
            "٤١١١١١١١١١١١١١١١",
        ] {
            assert_eq!(
                Pan::parse(bad).err(),
                Some(CardError::InvalidPan),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_shows_only_last_four() {
        let pan = Pan::parse("4111111111111111").unwrap();
        assert_eq!(format!("{pan:?}"), "Pan(****1111)");
        assert_eq!(pan.last4().as_str(), "1111");
    }

    #[test]
    fn expiry_is_range_checked() {
        assert!(Expiry::new(12, 2030).is_ok());
        assert_eq!(Expiry::new(0, 2030), Err(CardError::InvalidExpiry));
        assert_eq!(Expiry::new(13, 2030), Err(CardError::InvalidExpiry));
        assert_eq!(Expiry::new(1, 1999), Err(CardError::InvalidExpiry));
    }
}
