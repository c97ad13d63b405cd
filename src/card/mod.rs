//! Card data: PANs, tokens, domains and token states. Sans-io and pure: these types parse and
//! check values; they never touch the network, the clock, the store or the HSM.

mod pan;
mod scan;
mod status;
mod token;

pub(crate) use pan::luhn_sum;
pub use pan::{luhn_valid, Expiry, Last4, Pan};
pub use scan::contains_pan;
pub use status::{StatusChange, TokenStatus, TransitionError};
pub use token::{Domain, Token, TokenFormat};

/// Why a card value was refused. Each variant has a stable code used by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CardError {
    /// The PAN is not 13 to 19 ASCII digits, or fails the Luhn check.
    InvalidPan,
    /// The expiry month is not 1-12, or the year is not a four-digit year in range.
    InvalidExpiry,
    /// The token is not 13 to 19 ASCII digits.
    InvalidToken,
    /// The token passes Luhn: it is a card number sent where a token belongs (a token never
    /// passes Luhn), refused before it is stored, logged or audited.
    PanAsToken,
    /// The domain is empty, too long, or has characters outside `[a-z0-9._-]`.
    InvalidDomain,
    /// The text holds a card number: a Luhn-valid run of 12 to 19 digits, spaces, dashes and
    /// dots ignored ([`contains_pan`]).
    PanInText,
}

impl CardError {
    /// The stable snake_case code for this error.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidPan => "invalid_pan",
            Self::InvalidExpiry => "invalid_expiry",
            Self::InvalidToken => "invalid_token",
            Self::PanAsToken => "pan_as_token",
            Self::InvalidDomain => "invalid_domain",
            Self::PanInText => "pan_in_text",
        }
    }
}

impl std::fmt::Display for CardError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InvalidPan => "the PAN must be 13 to 19 digits and pass the Luhn check",
            Self::InvalidExpiry => "the expiry must be a month 1-12 and a year 2000-2099",
            Self::InvalidToken => "the token must be 13 to 19 digits",
            Self::PanAsToken => {
                "the token passes the Luhn check: a card number was sent where a token belongs"
            }
            Self::InvalidDomain => {
                "the domain must be 1 to 64 characters of lowercase letters, digits, '.', '_' or '-'"
            }
            Self::PanInText => "the text holds a card number (a Luhn-valid run of 12 to 19 digits)",
        })
    }
}

impl std::error::Error for CardError {}

/// The invariants of any token formed for `pan`: same length, Luhn-invalid, the format's
/// kept digits unchanged.
#[allow(clippy::panic)]
fn check_token(pan: &Pan, format: TokenFormat, token: &Token) {
    let (p, t) = (pan.expose_digits(), token.as_str().as_bytes());
    if luhn_valid(t) || t.len() != p.len() {
        panic!("a token was Luhn-valid or of another length than its PAN");
    }
    let first = usize::from(format.keep_first());
    let last = p.len() - usize::from(format.keep_last());
    if t.get(..first) != p.get(..first) || t.get(last..) != p.get(last..) {
        panic!("a token changed a digit its format keeps");
    }
}

/// Fuzzing entry: parses `data` as a PAN, a token and a domain and checks the invariants that
/// must hold for whatever parses (a PAN passes Luhn and keeps its digits; a token or domain
/// round-trips; a token never passes Luhn; a domain holds no card number). Panics only if an
/// invariant is broken.
#[allow(clippy::panic)]
pub(crate) fn fuzz_parse(data: &[u8]) {
    if let Ok(pan) = Pan::from_ascii(data) {
        if !luhn_valid(pan.expose_digits()) || pan.expose_digits() != data {
            panic!("a parsed PAN lost its digits or its Luhn validity");
        }
        // A deterministic byte stream stands in for the CSPRNG so runs reproduce.
        let mut next = 0u8;
        let token = TokenFormat::default().generate(&pan, |buf| {
            for b in buf.iter_mut() {
                next = next.wrapping_add(37);
                *b = next;
            }
        });
        check_token(&pan, TokenFormat::default(), &token);
        // The first token of a PAN is derived from its fingerprint; here the input's bytes
        // stand in for it, and the format varies with the input's length.
        let mut seed = [0u8; 32];
        for (s, d) in seed.iter_mut().zip(data.iter().rev()) {
            *s = *d;
        }
        let len = data.len();
        let formats = [
            Some(TokenFormat::default()),
            TokenFormat::new((len % 7) as u8, (len % 5) as u8),
        ];
        for format in formats.into_iter().flatten() {
            let derived = format.derive(&pan, &seed);
            check_token(&pan, format, &derived);
            if format.derive(&pan, &seed) != derived {
                panic!("a derived token differed between two derivations");
            }
        }
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(t) = Token::parse(s) {
            if t.as_str() != s || luhn_valid(t.as_str().as_bytes()) {
                panic!("a token did not round-trip or passed Luhn");
            }
        }
        if let Ok(d) = Domain::parse(s) {
            if d.as_str() != s || contains_pan(d.as_str()) {
                panic!("a domain did not round-trip or holds a card number");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Luhn-valid test PANs of every accepted length, and inputs that only parse as a token or
    /// a domain: the fuzz entry's invariants hold for each (the derived tokens in two formats
    /// included).
    #[test]
    fn fuzz_entry_point_holds_its_invariants_on_valid_cards() {
        let mut pans = 0;
        for len in 13..=19 {
            let mut digits = vec![b'4'];
            digits.resize(len - 1, b'1');
            let check = (0..=9u8)
                .map(|d| b'0' + d)
                .find(|d| luhn_valid(&[digits.as_slice(), &[*d]].concat()))
                .unwrap();
            digits.push(check);
            assert!(Pan::from_ascii(&digits).is_ok(), "{len} digits");
            fuzz_parse(&digits);
            pans += 1;
        }
        assert_eq!(pans, 7);
        for other in [&b"4111119876541112"[..], b"shop", b"", b"\xff"] {
            fuzz_parse(other);
        }
    }
}
