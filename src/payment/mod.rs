//! Payment values: amounts in minor units, ISO 4217 currencies with their exponents, payee
//! names, SPC instrument icons, and the decimal form SPC displays. Sans-io and pure.

mod currency;
mod spc;

pub use currency::{Currency, CURRENCIES};
pub use spc::{SpcDisplay, SpcLogo, MAX_SPC_LOGOS};

use crate::text::{DisplayText, LoggableText};

/// The largest amount accepted, in minor units (10^15).
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;
/// The longest payee name, in characters.
pub const MAX_PAYEE_CHARS: usize = 128;
/// The longest audience, in characters.
pub const MAX_AUDIENCE_CHARS: usize = 128;

/// Why a payment value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentError {
    /// The amount is 0 or above [`MAX_AMOUNT`].
    InvalidAmount,
    /// Not an ISO 4217 code payhsm knows the exponent of.
    InvalidCurrency,
    /// The payee is empty or longer than [`MAX_PAYEE_CHARS`] (its characters are screened by
    /// [`DisplayText`]).
    InvalidPayee,
    /// SPC display data is empty, too long, or an origin is not https.
    InvalidSpc,
    /// The SPC instrument icon is not an `https:` or `data:image/` URL.
    InvalidIcon,
    /// The audience is empty, longer than [`MAX_AUDIENCE_CHARS`], or not visible ASCII.
    InvalidAudience,
}

impl PaymentError {
    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidAmount => "invalid_amount",
            Self::InvalidCurrency => "invalid_currency",
            Self::InvalidPayee => "invalid_payee",
            Self::InvalidSpc => "invalid_spc",
            Self::InvalidIcon => "invalid_icon",
            Self::InvalidAudience => "invalid_audience",
        }
    }
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InvalidAmount => "the amount must be an integer of minor units from 1 to 10^15",
            Self::InvalidCurrency => "the currency is not an ISO 4217 code payhsm knows",
            Self::InvalidPayee => "the payee must be 1 to 128 characters",
            Self::InvalidSpc => {
                "the SPC display data must be non-empty text, with https payee and top origins"
            }
            Self::InvalidIcon => {
                "the SPC instrument icon must be an https: URL or a data:image/ URL"
            }
            Self::InvalidAudience => {
                "the audience must be 1 to 128 visible ASCII characters (no spaces)"
            }
        })
    }
}

impl std::error::Error for PaymentError {}

/// An amount in minor units of its currency, 1..=10^15.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Amount(u64);

impl Amount {
    /// Checks the range.
    pub fn new(minor_units: u64) -> Result<Self, PaymentError> {
        if minor_units == 0 || minor_units > MAX_AMOUNT {
            return Err(PaymentError::InvalidAmount);
        }
        Ok(Self(minor_units))
    }

    /// Minor units.
    pub fn minor_units(self) -> u64 {
        self.0
    }

    /// The decimal string with the currency's exponent, as SPC's `total.value` carries it:
    /// 1234 EUR is "12.34", 1234 JPY is "1234", 1234 BHD is "1.234", 5 EUR is "0.05".
    pub fn to_decimal(self, currency: Currency) -> String {
        let digits = self.0.to_string();
        let exp = usize::from(currency.exponent());
        if exp == 0 {
            return digits;
        }
        let padded = format!("{digits:0>width$}", width = exp + 1);
        let (int, frac) = padded.split_at(padded.len() - exp);
        format!("{int}.{frac}")
    }
}

/// A payee name as shown to the user and signed: 1..=128 characters of screened, NFC text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee(String);

impl Payee {
    /// Checks the length of the screened name.
    pub fn parse(name: &DisplayText) -> Result<Self, PaymentError> {
        let chars = name.as_str().chars().count();
        if chars == 0 || chars > MAX_PAYEE_CHARS {
            return Err(PaymentError::InvalidPayee);
        }
        Ok(Self(name.as_str().to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Who the authorization is for, as the payment challenge named it: signed as the JWS's
/// `aud` (RFC 7519 §4.1.3), so a recipient that checks it refuses an authorization meant for
/// another. 1 to [`MAX_AUDIENCE_CHARS`] visible ASCII characters (`!` to `~`): a URI or a
/// name, never text a reader could misread.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience(String);

impl Audience {
    /// Checks the length and the characters of the screened text.
    pub fn parse(text: LoggableText) -> Result<Self, PaymentError> {
        let s = text.as_str();
        if s.is_empty() || s.len() > MAX_AUDIENCE_CHARS || !s.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(PaymentError::InvalidAudience);
        }
        Ok(Self(text.into_string()))
    }

    /// The audience.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The audience, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The icon of an SPC payment instrument, which the browser fetches and shows in the
/// payment dialog next to the amount and payee: an `https:` URL or an inline `data:image/` URL
/// (scheme case-insensitive), never `javascript:`, `http:` or another scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpcIcon(String);

impl SpcIcon {
    /// Checks the scheme of the screened URL.
    pub fn parse(url: LoggableText) -> Result<Self, PaymentError> {
        let text = url.as_str();
        let after = |prefix: &str| {
            text.get(..prefix.len())
                .filter(|head| head.eq_ignore_ascii_case(prefix))
                .and_then(|_| text.get(prefix.len()..))
                .is_some_and(|rest| !rest.is_empty())
        };
        // SPC: payment.instrument.icon is fetched and drawn by the browser; only a secure
        // origin's image or an inline image may be.
        if after("https://") || after("data:image/") {
            Ok(Self(url.into_string()))
        } else {
            Err(PaymentError::InvalidIcon)
        }
    }

    /// The URL.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The URL, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cur(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    #[test]
    fn amounts_format_with_the_currency_exponent() {
        let a = Amount::new(1234).unwrap();
        assert_eq!(a.to_decimal(cur("EUR")), "12.34");
        assert_eq!(a.to_decimal(cur("JPY")), "1234");
        assert_eq!(a.to_decimal(cur("BHD")), "1.234");
        assert_eq!(Amount::new(5).unwrap().to_decimal(cur("EUR")), "0.05");
        assert_eq!(Amount::new(5).unwrap().to_decimal(cur("KWD")), "0.005");
        assert_eq!(Amount::new(100).unwrap().to_decimal(cur("USD")), "1.00");
        assert_eq!(
            Amount::new(MAX_AMOUNT).unwrap().to_decimal(cur("USD")),
            "10000000000000.00"
        );
    }

    #[test]
    fn amounts_are_one_to_ten_to_the_fifteen() {
        assert_eq!(Amount::new(0), Err(PaymentError::InvalidAmount));
        assert_eq!(
            Amount::new(MAX_AMOUNT + 1),
            Err(PaymentError::InvalidAmount)
        );
        assert!(Amount::new(1).is_ok());
    }

    #[test]
    fn an_audience_is_short_visible_ascii() {
        let audience = |s: &str| {
            LoggableText::parse(s)
                .map_err(drop)
                .and_then(|t| Audience::parse(t).map_err(drop))
        };
        for ok in [
            "https://acquirer.example",
            "gw-1",
            &"a".repeat(MAX_AUDIENCE_CHARS),
        ] {
            assert_eq!(audience(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "two words",
            "caf\u{e9}",
            "tab\there",
            &"a".repeat(MAX_AUDIENCE_CHARS + 1),
        ] {
            assert!(audience(bad).is_err(), "{bad:?}");
        }
    }

    fn payee(name: &str) -> Result<Payee, PaymentError> {
        Payee::parse(&DisplayText::parse(name).unwrap())
    }

    #[test]
    fn payees_are_one_to_128_characters_after_nfc() {
        assert!(payee("Café Zürich").is_ok());
        assert!(payee(&"é".repeat(128)).is_ok());
        // 128 decomposed "é" are 256 code points, 128 once composed.
        assert!(payee(&"e\u{301}".repeat(128)).is_ok());
        for bad in [String::new(), "x".repeat(129)] {
            assert_eq!(payee(&bad), Err(PaymentError::InvalidPayee));
        }
    }

    #[test]
    fn spc_icons_are_https_or_inline_images() {
        let icon = |url: &str| SpcIcon::parse(LoggableText::parse(url).unwrap());
        for ok in [
            "https://bank.example/visa.png",
            "HTTPS://bank.example/visa.png",
            "data:image/png;base64,iVBORw0KGgo",
            "Data:Image/svg+xml;base64,PHN2Zz4",
        ] {
            assert_eq!(icon(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            " https://bank.example/visa.png",
            "http://bank.example/visa.png",
            "https://",
            "https:bank.example",
            "data:text/html,<script>",
            "data:image/",
            "//bank.example/visa.png",
            "",
            "é",
        ] {
            assert_eq!(icon(bad), Err(PaymentError::InvalidIcon), "{bad:?}");
        }
    }
}
