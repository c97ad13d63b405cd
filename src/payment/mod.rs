//! Payment values: amounts in minor units, ISO 4217 currencies with their exponents, payee
//! names, and the decimal form SPC displays. Sans-io and pure.

mod currency;

pub use currency::{Currency, CURRENCIES};

/// The largest amount accepted, in minor units (10^15).
pub const MAX_AMOUNT: u64 = 1_000_000_000_000_000;
/// The longest payee name, in characters.
pub const MAX_PAYEE_CHARS: usize = 128;

/// Why a payment value is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PaymentError {
    /// The amount is 0 or above [`MAX_AMOUNT`].
    InvalidAmount,
    /// Not an ISO 4217 code payhsm knows the exponent of.
    InvalidCurrency,
    /// The payee is empty, longer than [`MAX_PAYEE_CHARS`] or has control characters.
    InvalidPayee,
    /// SPC display data is empty, too long, or an origin is not https.
    InvalidSpc,
}

impl PaymentError {
    /// The stable snake_case code.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidAmount => "invalid_amount",
            Self::InvalidCurrency => "invalid_currency",
            Self::InvalidPayee => "invalid_payee",
            Self::InvalidSpc => "invalid_spc",
        }
    }
}

impl std::fmt::Display for PaymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::InvalidAmount => "the amount must be an integer of minor units from 1 to 10^15",
            Self::InvalidCurrency => "the currency is not an ISO 4217 code payhsm knows",
            Self::InvalidPayee => {
                "the payee must be 1 to 128 characters without control characters"
            }
            Self::InvalidSpc => {
                "the SPC display data must be non-empty text, with https payee and top origins"
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

/// A payee name as shown to the user: 1..=128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payee(String);

impl Payee {
    /// Checks the name.
    pub fn parse(name: &str) -> Result<Self, PaymentError> {
        let chars = name.chars().count();
        if chars == 0 || chars > MAX_PAYEE_CHARS || name.chars().any(char::is_control) {
            return Err(PaymentError::InvalidPayee);
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
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
    fn payees_are_bounded_and_printable() {
        assert!(Payee::parse("Café Zürich").is_ok());
        assert!(Payee::parse(&"é".repeat(128)).is_ok());
        for bad in [String::new(), "x".repeat(129), "a\nb".to_owned()] {
            assert_eq!(Payee::parse(&bad), Err(PaymentError::InvalidPayee));
        }
    }
}
