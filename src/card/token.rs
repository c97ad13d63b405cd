//! Tokens and the domains that scope them.

use super::pan::{luhn_sum, luhn_valid, Pan, MAX_PAN_LEN, MIN_PAN_LEN};
use super::scan::contains_pan;
use super::CardError;

/// A card token: digits, the same length as the PAN it stands for. Not secret.
///
/// Never Luhn-valid, by construction: [`TokenFormat::generate`] draws again until the candidate
/// fails Luhn (whatever the format keeps), and [`Token::parse`] refuses a Luhn-valid value. So
/// a value that passes Luhn is never a token, and may be a card number: it is refused before
/// anything is looked up, stored, logged or audited.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(String);

impl Token {
    /// Parses 13 to 19 ASCII digits that fail the Luhn check ([`CardError::PanAsToken`] if
    /// they pass it).
    pub fn parse(s: &str) -> Result<Self, CardError> {
        if !(MIN_PAN_LEN..=MAX_PAN_LEN).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(CardError::InvalidToken);
        }
        // PCI DSS 3.3/3.5: a card number in a token field would land in clear in the audit log.
        if luhn_valid(s.as_bytes()) {
            return Err(CardError::PanAsToken);
        }
        Ok(Self(s.to_owned()))
    }

    /// The token's digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The token as an audit record may keep it before it is known to name a stored token:
    /// first six and last four digits, the middle starred (PCI DSS 3.4.1's most). A value in a
    /// token field that names nothing may be a card number with padding digits (it fails
    /// Luhn as a whole); it is never written in full.
    pub fn masked(&self) -> String {
        let len = self.0.len();
        self.0
            .char_indices()
            .map(|(i, c)| if i < 6 || i + 4 >= len { c } else { '*' })
            .collect()
    }

    /// The last four digits (shared with the PAN under the default format).
    pub fn last4(&self) -> &str {
        self.0
            .get(self.0.len().saturating_sub(4)..)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod masked_tests {
    use super::Token;

    #[test]
    fn a_masked_token_keeps_six_and_four() {
        let t = Token::parse("4111111111111111000").unwrap();
        assert_eq!(t.masked(), "411111*********1000");
        let t = Token::parse("4111119876541112").unwrap();
        assert_eq!(t.masked(), "411111******1112");
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", self.0)
    }
}

/// A tokenization domain (merchant, channel, environment): tokens converge within a domain
/// and differ across domains.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// The longest domain name accepted.
    pub const MAX_LEN: usize = 64;

    /// Parses 1 to 64 characters of `[a-z0-9._-]` that hold no card number
    /// ([`CardError::PanInText`] if they do: the domain is stored and audited as it is).
    pub fn parse(s: &str) -> Result<Self, CardError> {
        let ok = !s.is_empty()
            && s.len() <= Self::MAX_LEN
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            });
        if !ok {
            return Err(CardError::InvalidDomain);
        }
        if contains_pan(s) {
            return Err(CardError::PanInText);
        }
        Ok(Self(s.to_owned()))
    }

    /// The domain name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Domain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// How tokens are formed from a PAN: how many leading and trailing digits are kept, the middle
/// drawn at random; Luhn-invalid so a token is never mistaken for (or equal to) a PAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenFormat {
    keep_first: u8,
    keep_last: u8,
}

/// The fewest random digits a token may have (a 13-digit PAN keeps 6 + 4, draws 3).
const MIN_RANDOM_DIGITS: usize = 3;

impl Default for TokenFormat {
    /// Keep the BIN (first 6) and the last 4.
    fn default() -> Self {
        Self {
            keep_first: 6,
            keep_last: 4,
        }
    }
}

impl TokenFormat {
    /// A format keeping `keep_first` and `keep_last` digits; at least three digits of even
    /// the shortest PAN must stay random.
    pub fn new(keep_first: u8, keep_last: u8) -> Option<Self> {
        let kept = usize::from(keep_first) + usize::from(keep_last);
        (kept + MIN_RANDOM_DIGITS <= MIN_PAN_LEN).then_some(Self {
            keep_first,
            keep_last,
        })
    }

    /// Digits kept from the start of the PAN.
    pub fn keep_first(&self) -> u8 {
        self.keep_first
    }

    /// Digits kept from the end of the PAN.
    pub fn keep_last(&self) -> u8 {
        self.keep_last
    }

    /// Number of random digits a token of this PAN gets.
    pub fn random_digits(&self, pan: &Pan) -> usize {
        pan.len() - usize::from(self.keep_first) - usize::from(self.keep_last)
    }

    /// Forms a candidate token from the PAN and a source of random bytes. Each middle digit is
    /// drawn uniformly by rejection sampling; a candidate that passes Luhn is drawn again, so
    /// the result is uniform over the Luhn-invalid tokens with the kept digits.
    pub fn generate(&self, pan: &Pan, mut random: impl FnMut(&mut [u8])) -> Token {
        let digits = pan.expose_digits();
        let first = usize::from(self.keep_first);
        let last_start = digits.len() - usize::from(self.keep_last);
        let mut out = [0u8; MAX_PAN_LEN];
        let out = out.get_mut(..digits.len()).unwrap_or_default();
        out.copy_from_slice(digits);
        loop {
            let mut buf = [0u8; 32];
            let mut pos = first;
            while pos < last_start {
                random(&mut buf);
                for b in buf {
                    // 250 = 25 * 10: bytes at or above it would bias the digits.
                    if b < 250 && pos < last_start {
                        if let Some(slot) = out.get_mut(pos) {
                            *slot = b'0' + b % 10;
                        }
                        pos += 1;
                    }
                }
            }
            if luhn_sum(out).is_some_and(|s| s % 10 != 0) {
                let token = String::from_utf8_lossy(out).into_owned();
                return Token(token);
            }
        }
    }

    /// The token a PAN is offered first: [`generate`](Self::generate) with its random bytes
    /// replaced by HMAC-SHA-256 keyed with `seed` (the PAN's fingerprint in the domain), so
    /// the same PAN under the same fingerprint key always derives the same token. The store
    /// finds a PAN's live token by reading that one row instead of keeping a second index
    /// with random keys (`docs/decisions.md`). The token reveals no more than a random one:
    /// without the fingerprint key the seed is unknown, and the digits are pseudorandom.
    pub fn derive(&self, pan: &Pan, seed: &[u8; 32]) -> Token {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, seed);
        let mut block = 0u32;
        self.generate(pan, |buf| {
            for chunk in buf.chunks_mut(32) {
                let mut mac = ring::hmac::Context::with_key(&key);
                mac.update(DERIVE_LABEL);
                mac.update(&block.to_be_bytes());
                let out = mac.sign();
                for (dst, src) in chunk.iter_mut().zip(out.as_ref()) {
                    *dst = *src;
                }
                block = block.wrapping_add(1);
            }
        })
    }
}

/// Domain separation for [`TokenFormat::derive`]'s stream.
const DERIVE_LABEL: &[u8] = b"payhsm/derived-token/v1";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::luhn_valid;

    fn os_random(buf: &mut [u8]) {
        getrandom::getrandom(buf).unwrap();
    }

    #[test]
    fn token_keeps_bin_and_last4_and_is_luhn_invalid() {
        let pan = Pan::parse("4111111111111111").unwrap();
        let fmt = TokenFormat::default();
        for _ in 0..1000 {
            let t = fmt.generate(&pan, os_random);
            assert_eq!(t.as_str().len(), 16);
            assert!(t.as_str().starts_with("411111"));
            assert!(t.as_str().ends_with("1111"));
            assert!(!luhn_valid(t.as_str().as_bytes()));
            assert_ne!(t.as_str().as_bytes(), pan.expose_digits());
        }
    }

    #[test]
    fn middle_digits_cover_all_values() {
        let pan = Pan::parse("4222222222222").unwrap();
        let fmt = TokenFormat::default();
        let mut seen = [false; 10];
        for _ in 0..500 {
            let t = fmt.generate(&pan, os_random);
            for b in t.as_str().as_bytes().get(6..9).unwrap() {
                seen[usize::from(b - b'0')] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn derived_token_is_stable_per_seed_and_differs_across_seeds() {
        let pan = Pan::parse("4111111111111111").unwrap();
        let fmt = TokenFormat::default();
        let a = fmt.derive(&pan, &[1; 32]);
        assert_eq!(a, fmt.derive(&pan, &[1; 32]));
        assert!(a.as_str().starts_with("411111") && a.as_str().ends_with("1111"));
        assert!(!luhn_valid(a.as_str().as_bytes()));
        let mut distinct = std::collections::HashSet::new();
        for i in 0..200u8 {
            distinct.insert(fmt.derive(&pan, &[i; 32]));
        }
        // 200 draws from about 900,000 Luhn-invalid middles: a repeat is a 2 % event, many
        // would mean the seed is not used.
        assert!(distinct.len() >= 198, "{}", distinct.len());
    }

    #[test]
    fn derived_middle_digits_cover_all_values() {
        let pan = Pan::parse("4222222222222").unwrap();
        let fmt = TokenFormat::default();
        let mut seen = [false; 10];
        for i in 0..500u16 {
            let mut seed = [0u8; 32];
            seed[..2].copy_from_slice(&i.to_be_bytes());
            let t = fmt.derive(&pan, &seed);
            for b in t.as_str().as_bytes().get(6..9).unwrap() {
                seen[usize::from(b - b'0')] = true;
            }
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    fn format_must_leave_three_random_digits() {
        assert!(TokenFormat::new(6, 4).is_some());
        assert!(TokenFormat::new(6, 5).is_none());
        assert!(TokenFormat::new(0, 0).is_some());
    }

    #[test]
    fn domain_and_token_are_validated() {
        assert!(Domain::parse("shop-1.eu_web").is_ok());
        for bad in ["", "Shop", "a b", "x/y", &"a".repeat(65)] {
            assert_eq!(Domain::parse(bad), Err(CardError::InvalidDomain), "{bad:?}");
        }
        assert!(Token::parse("4111119999991111").is_ok());
        assert_eq!(
            Token::parse("41111x9999991111"),
            Err(CardError::InvalidToken)
        );
        assert_eq!(Token::parse("123"), Err(CardError::InvalidToken));
    }

    #[test]
    fn a_luhn_valid_token_is_refused_as_a_card_number() {
        for pan in ["4111111111111111", "4222222222222", "6011000000000000001"] {
            assert!(luhn_valid(pan.as_bytes()));
            assert_eq!(Token::parse(pan), Err(CardError::PanAsToken), "{pan}");
        }
        // Only the token's own digits count: a Luhn-invalid token is one, whatever runs
        // inside it pass Luhn.
        assert!(Token::parse("4111111111111112").is_ok());
    }

    #[test]
    fn every_format_forms_tokens_that_parse_back() {
        let pan = Pan::parse("4111111111111111").unwrap();
        for first in 0..=6 {
            for last in 0..=4 {
                let Some(format) = TokenFormat::new(first, last) else {
                    continue;
                };
                for _ in 0..50 {
                    let t = format.generate(&pan, os_random);
                    assert_eq!(Token::parse(t.as_str()), Ok(t));
                }
            }
        }
    }

    #[test]
    fn a_domain_holding_a_card_number_is_refused() {
        for bad in [
            "4111111111111111",
            "4111-1111-1111-1111",
            "shop.4111.1111.1111.1111",
        ] {
            assert_eq!(Domain::parse(bad), Err(CardError::PanInText), "{bad}");
        }
        assert!(Domain::parse("shop-2024-06").is_ok());
    }
}
