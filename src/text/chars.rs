//! The characters refused in caller text that a person or a relying party reads: those that
//! are invisible, reorder what is shown, break lines, or mean nothing yet.

use unicode_script::{Script, UnicodeScript};

/// Whether `c` may not appear in displayed, signed, stored or logged caller text.
pub(super) fn refused(c: char) -> bool {
    // Unicode General_Category Cc: C0 and C1 controls (tab and newline included).
    c.is_control()
        // UAX #14 / UCD: LINE SEPARATOR and PARAGRAPH SEPARATOR (Zl, Zp).
        || matches!(c, '\u{2028}' | '\u{2029}')
        || default_ignorable(c)
        || other_format(c)
        // UAX #24 Script=Unknown (Zzzz): unassigned, private-use and noncharacter code points.
        || c.script() == Script::Unknown
}

/// DerivedCoreProperties.txt Default_Ignorable_Code_Point: rendered as nothing (UAX #9's
/// bidirectional controls U+061C, U+200E-200F, U+202A-202E and U+2066-2069 among them, and
/// UAX #31 §2.3's zero-width joiners).
fn default_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// UnicodeData.txt General_Category Cf outside Default_Ignorable_Code_Point: prepended
/// concatenation marks and format controls that change how their neighbours are shown.
fn other_format(c: char) -> bool {
    matches!(
        c,
        '\u{0600}'..='\u{0605}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{0890}'..='\u{0891}'
            | '\u{08E2}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{13430}'..='\u{1343F}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_is_refused() {
        for c in [
            // Cc
            '\u{0}',
            '\t',
            '\n',
            '\r',
            '\u{7F}',
            '\u{85}',
            '\u{9F}',
            // Zl, Zp
            '\u{2028}',
            '\u{2029}',
            // bidirectional controls (UAX #9)
            '\u{061C}',
            '\u{200E}',
            '\u{200F}',
            '\u{202A}',
            '\u{202E}',
            '\u{2066}',
            '\u{2069}',
            // zero-width and other default ignorables
            '\u{00AD}',
            '\u{034F}',
            '\u{115F}',
            '\u{17B4}',
            '\u{180E}',
            '\u{200B}',
            '\u{200C}',
            '\u{200D}',
            '\u{2060}',
            '\u{2064}',
            '\u{3164}',
            '\u{FE0F}',
            '\u{FEFF}',
            '\u{FFA0}',
            '\u{1BCA0}',
            '\u{1D173}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E0FFF}',
            // other Cf
            '\u{0600}',
            '\u{06DD}',
            '\u{070F}',
            '\u{0890}',
            '\u{08E2}',
            '\u{110BD}',
            '\u{110CD}',
            '\u{13430}',
            '\u{FFF9}',
            '\u{FFFB}',
            // unassigned, private use, noncharacters
            '\u{0378}',
            '\u{E000}',
            '\u{F8FF}',
            '\u{F0000}',
            '\u{10FFFD}',
            '\u{FDD0}',
            '\u{FFFE}',
            '\u{1FFFF}',
        ] {
            assert!(refused(c), "U+{:04X}", u32::from(c));
        }
    }

    #[test]
    fn visible_text_of_many_scripts_is_kept() {
        for text in [
            "Café Zürich",
            "Visa ••1111",
            "東京ストア",
            "متجر",
            "שלום",
            "Ελληνικά",
            "a b-c.d_e/f@g+h",
            "e\u{301}",
            "€ £ ¥ ₿",
            "\u{a0}\u{2009}",
        ] {
            assert!(!text.chars().any(refused), "{text:?}");
        }
    }
}
