//! Card numbers written inside text: a run of 12 to 19 digits that passes Luhn, the digits
//! possibly grouped by spaces, dashes or dots (`4111 1111 1111 1111`, `4111-1111-1111-1111`).
//!
//! Every run is tested at every offset and length, so digits added before or after a card
//! number (`94111111111111111`) do not hide it. Digits are ASCII and fullwidth (U+FF10-FF19,
//! which NFKC folds to ASCII and a reader takes for digits).

use super::pan::{luhn_valid, MAX_PAN_LEN};

/// The shortest digit run treated as a card number: ISO/IEC 7812-1 issues PANs of 12 to 19
/// digits (payhsm tokenizes 13 and up, but a 12-digit card number is still one).
const MIN_PAN_IN_TEXT: usize = 12;

/// Whether `text` holds a Luhn-valid run of 12 to 19 digits, ignoring spaces, dashes and dots
/// between them.
pub fn contains_pan(text: &str) -> bool {
    // The last 19 digits of the current run, oldest first; separators do not end a run.
    let mut window = [0u8; MAX_PAN_LEN];
    let mut len = 0usize;
    for c in text.chars() {
        if let Some(digit) = ascii_digit(c) {
            if len == MAX_PAN_LEN {
                window.copy_within(1.., 0);
            } else {
                len += 1;
            }
            if let Some(last) = window.get_mut(len - 1) {
                *last = digit;
            }
            // Every run of 12..=19 digits ending with this one.
            let run = window.get(..len).unwrap_or_default();
            for take in MIN_PAN_IN_TEXT..=len {
                if luhn_valid(run.get(len - take..).unwrap_or_default()) {
                    return true;
                }
            }
        } else if !is_separator(c) {
            len = 0;
        }
    }
    false
}

/// The ASCII digit a character reads as, if it reads as one.
fn ascii_digit(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8),
        // FULLWIDTH DIGIT ZERO..NINE.
        '\u{FF10}'..='\u{FF19}' => u8::try_from(u32::from(c) - 0xFF10 + 0x30).ok(),
        _ => None,
    }
}

/// Characters that group the digits of a written card number: white space (Unicode
/// White_Space, so NBSP and the thin spaces too), dashes, dots.
fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '\u{2010}'
                ..='\u{2015}' // hyphen .. horizontal bar
                | '\u{2212}' // minus sign
                | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' // small and fullwidth dashes
                | '\u{FF0E}' | '\u{FE52}' // fullwidth and small full stops
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAN: &str = "4111111111111111";

    #[test]
    fn a_card_number_is_found_plain_spaced_dashed_and_dotted() {
        for text in [
            PAN,
            "4111 1111 1111 1111",
            "4111-1111-1111-1111",
            "4111.1111.1111.1111",
            "card 4111 1111 1111 1111 exp 12/30",
            "4111\u{a0}1111\u{2009}1111\u{2013}1111",
            "4111 - 1111 - 1111 - 1111",
            "\u{FF14}\u{FF11}\u{FF11}\u{FF11}111111111111",
        ] {
            assert!(contains_pan(text), "{text:?}");
        }
    }

    #[test]
    fn a_luhn_invalid_number_holding_a_luhn_valid_run_is_refused() {
        assert!(!luhn_valid(PAN_PLUS_ONE.as_bytes()));
        assert!(contains_pan(PAN_PLUS_ONE));
    }

    /// Luhn-invalid as a whole; its last 13 digits pass Luhn, and are refused like any
    /// 13-digit card number would be.
    const PAN_PLUS_ONE: &str = "4111111111111112";

    #[test]
    fn digits_around_a_card_number_do_not_hide_it() {
        assert!(contains_pan(&format!("9{PAN}")));
        assert!(contains_pan(&format!("{PAN}000")));
        assert!(contains_pan(&format!("12-{PAN}-34")));
    }

    #[test]
    fn twelve_and_nineteen_digit_card_numbers_are_found() {
        assert!(luhn_valid(b"411111111117"));
        assert!(contains_pan("4111 1111 1117"));
        assert!(luhn_valid(b"6011000000000000001"));
        assert!(contains_pan("x6011000000000000001x"));
    }

    #[test]
    fn luhn_invalid_or_short_runs_are_not_card_numbers() {
        // 16 digits none of whose runs of 12 or more passes Luhn (most 16-digit numbers hold
        // one: 15 runs, each passing one time in ten).
        for text in [
            "4224824475771046",
            "4224 8244 7577 1046",
            "4224-8244-7577-1046",
            "429141777631",
            "4211693388613682940",
            // 11 digits, Luhn-valid.
            "41111111112",
            "",
            "Café Zürich",
            "order-2024-06-01",
            // A letter ends a run.
            "4111a111111111111",
            "41111111x11111111",
        ] {
            assert!(!contains_pan(text), "{text:?}");
        }
        assert!(luhn_valid(b"41111111112"));
    }
}
