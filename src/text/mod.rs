//! Caller text that payhsm shows, signs, stores or logs: screened for card numbers and for
//! characters that hide or reorder what a reader sees, before any of that happens. Sans-io and
//! pure.
//!
//! Two types, each built only by screening:
//! - [`DisplayText`]: text a person or a relying party reads (a payee, a user name, an SPC
//!   instrument's display name and origins): NFC-normalized, then screened.
//! - [`LoggableText`]: a caller's identifier or key that payhsm stores, logs or echoes as it
//!   came (a relying party id, a device id, a credential id, an `Idempotency-Key`, an
//!   `x-request-id`): screened, never rewritten, since it is compared byte for byte.
//!
//! Screening refuses, with a stable code and a message that never quotes the text:
//! - a card number, i.e. a Luhn-valid run of 12 to 19 digits with spaces, dashes and dots
//!   ignored ([`crate::card::contains_pan`]): `pan_in_text` (PCI DSS 3.3/3.5: no PAN in clear
//!   in the audit log, the store or the logs);
//! - C0/C1 controls, line and paragraph separators, bidirectional controls, zero-width and
//!   other default-ignorable or format characters, unassigned, private-use and noncharacter
//!   code points: `unsafe_text` (`Acme\u{202e}moc.live` shows as `Acmeevil.com`).

mod chars;

use crate::card::contains_pan;
use unicode_normalization::{is_nfc, UnicodeNormalization};

/// Why caller text was refused. Each variant has a stable code used by the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TextError {
    /// The text holds a card number (a Luhn-valid run of 12 to 19 digits).
    PanInText,
    /// The text has a control, invisible, bidirectional, format, line-breaking, unassigned or
    /// private-use character.
    UnsafeText,
}

impl TextError {
    /// The stable snake_case code for this error.
    pub fn code(self) -> &'static str {
        match self {
            Self::PanInText => "pan_in_text",
            Self::UnsafeText => "unsafe_text",
        }
    }
}

impl std::fmt::Display for TextError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::PanInText => {
                "a text field holds a card number (a Luhn-valid run of 12 to 19 digits)"
            }
            Self::UnsafeText => {
                "a text field has a control, invisible, bidirectional, line-breaking or unassigned character"
            }
        })
    }
}

impl std::error::Error for TextError {}

/// Refuses what no caller text may hold.
fn screen(text: &str) -> Result<(), TextError> {
    if contains_pan(text) {
        return Err(TextError::PanInText);
    }
    if text.chars().any(chars::refused) {
        return Err(TextError::UnsafeText);
    }
    Ok(())
}

/// Text a person or a relying party reads: NFC-normalized (UAX #15), holding no card number
/// and no character that hides or reorders what is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayText(String);

impl DisplayText {
    /// Normalizes `text` to NFC, then screens what is kept.
    pub fn parse(text: &str) -> Result<Self, TextError> {
        let kept: String = text.nfc().collect();
        screen(&kept)?;
        Ok(Self(kept))
    }

    /// The normalized text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The normalized text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A caller's identifier or key that payhsm stores, logs or echoes exactly as it came:
/// holding no card number and no character that hides or reorders what is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggableText(String);

impl LoggableText {
    /// Screens `text`; it is kept unchanged.
    pub fn parse(text: &str) -> Result<Self, TextError> {
        screen(text)?;
        Ok(Self(text.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The longest input the fuzz entry compares with its quadratic reference scan.
const FUZZ_REFERENCE_MAX_CHARS: usize = 256;

/// Fuzzing entry: screens `data` (UTF-8) both ways and checks what is accepted: no refused
/// character, no card number, NFC and stable under a second parse for [`DisplayText`],
/// unchanged for [`LoggableText`]; and, for short inputs, that the card-number scan agrees
/// with a plain reference (every substring, separators dropped, of 12-19 digits, tested with
/// Luhn). Panics only if one of these is broken.
#[allow(clippy::panic)]
pub(crate) fn fuzz_screen(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(shown) = DisplayText::parse(text) {
        let s = shown.as_str();
        if s.chars().any(chars::refused) || contains_pan(s) || !is_nfc(s) {
            panic!("accepted display text has a refused character, a card number or is not NFC");
        }
        if DisplayText::parse(s).as_ref() != Ok(&shown) {
            panic!("display text changed when parsed again");
        }
    }
    if let Ok(kept) = LoggableText::parse(text) {
        if kept.as_str() != text || kept.as_str().chars().any(chars::refused) {
            panic!("loggable text was rewritten or kept a refused character");
        }
    }
    if text.chars().count() <= FUZZ_REFERENCE_MAX_CHARS && contains_pan(text) != reference_pan(text)
    {
        panic!("the card-number scan disagrees with the reference scan");
    }
}

/// The card-number scan written the slow, obvious way: some substring that starts and ends
/// with a digit, holds only digits and separators, has 12 to 19 digits and passes Luhn.
fn reference_pan(text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    let digit = |c: char| match c {
        '0'..='9' => Some(c),
        '\u{FF10}'..='\u{FF19}' => char::from_u32(u32::from(c) - 0xFF10 + 0x30),
        _ => None,
    };
    let separator = |c: char| {
        c.is_whitespace()
            || matches!(
                c,
                '-' | '.' | '\u{2010}'
                    ..='\u{2015}'
                        | '\u{2212}'
                        | '\u{FE58}'
                        | '\u{FE63}'
                        | '\u{FF0D}'
                        | '\u{FF0E}'
                        | '\u{FE52}'
            )
    };
    for start in 0..chars.len() {
        let mut digits = String::new();
        for c in chars.iter().skip(start) {
            if let Some(d) = digit(*c) {
                digits.push(d);
                if (12..=19).contains(&digits.len()) && crate::card::luhn_valid(digits.as_bytes()) {
                    return true;
                }
            } else if digits.is_empty() || !separator(*c) {
                // A run starts with a digit; anything but a separator ends it.
                break;
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_number_in_text_is_refused_in_every_grouping() {
        for text in [
            "4111111111111111",
            "Shop 4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111.1111.1111.1111",
            "x9-4111111111111111-00",
        ] {
            assert_eq!(
                DisplayText::parse(text),
                Err(TextError::PanInText),
                "{text}"
            );
            assert_eq!(
                LoggableText::parse(text),
                Err(TextError::PanInText),
                "{text}"
            );
        }
    }

    #[test]
    fn luhn_invalid_digit_runs_are_kept() {
        for text in [
            // A token: Luhn-invalid, and so is every run of 12 or more digits inside it.
            "order 4111119876541111",
            "429141777631",
            "4706690743915",
            "4211693388613682940",
            "ref 12345678901",
        ] {
            assert_eq!(DisplayText::parse(text).unwrap().as_str(), text);
            assert_eq!(LoggableText::parse(text).unwrap().as_str(), text);
        }
    }

    #[test]
    fn spoofing_characters_are_refused() {
        for text in [
            "Acme\u{202e}moc.live",
            "ali\u{200d}ce",
            "alice\u{2028}admin",
            "bob\u{200b}",
            "a\tb",
            "\u{feff}shop",
            "shop\u{e000}",
            "shop\u{0378}",
        ] {
            assert_eq!(
                DisplayText::parse(text),
                Err(TextError::UnsafeText),
                "{text:?}"
            );
            assert_eq!(
                LoggableText::parse(text),
                Err(TextError::UnsafeText),
                "{text:?}"
            );
        }
    }

    #[test]
    fn display_text_is_nfc_and_loggable_text_is_kept_as_sent() {
        let shown = DisplayText::parse("Cafe\u{301}").unwrap();
        assert_eq!(shown.as_str(), "Caf\u{e9}");
        assert_eq!(shown.into_string(), "Café");
        assert_eq!(
            LoggableText::parse("Cafe\u{301}").unwrap().as_str(),
            "Cafe\u{301}"
        );
    }

    #[test]
    fn messages_never_quote_the_text() {
        for e in [TextError::PanInText, TextError::UnsafeText] {
            assert!(!e.to_string().contains("4111"));
        }
        assert_eq!(TextError::PanInText.code(), "pan_in_text");
        assert_eq!(TextError::UnsafeText.code(), "unsafe_text");
    }

    #[test]
    fn fuzz_entry_point_holds_its_invariants() {
        for text in [
            "",
            "Café",
            "Cafe\u{301}",
            "4111 1111 1111 1111",
            "9 4111-1111-1111-1111 0",
            "Acme\u{202e}moc.live",
            "\u{FF14}111111111111111",
            "4111119876541111",
            "1 2 3 4 5 6 7 8 9 0 1 2 3",
        ] {
            fuzz_screen(text.as_bytes());
        }
        fuzz_screen(b"\xff\xfe");
    }
}
