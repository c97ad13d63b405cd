//! clientDataJSON (WebAuthn L3 §5.8.1) and Secure Payment Confirmation's `payment` member
//! (CollectedClientPaymentData, CollectedClientAdditionalPaymentData).
//!
//! The whole JSON text is parsed (not the limited-verification algorithm of §5.8.1.2), duplicate
//! member names are refused at every level, unknown members are allowed because the spec lets
//! clientDataJSON be extended.

use super::registration::RelyingParty;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// SPC `payment` member of clientDataJSON (CollectedClientPaymentData).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PaymentData {
    /// payment.rpId
    pub rp_id: Option<String>,
    /// payment.topOrigin
    pub top_origin: Option<String>,
    /// payment.payeeName
    pub payee_name: Option<String>,
    /// payment.payeeOrigin
    pub payee_origin: Option<String>,
    /// payment.total.currency
    pub total_currency: Option<String>,
    /// payment.total.value (a decimal string, as the browser sends it)
    pub total_value: Option<String>,
    /// payment.instrument.displayName
    pub instrument_display_name: Option<String>,
    /// payment.browserBoundPublicKey: the browser-bound key (base64url of a COSE_Key)
    pub browser_bound_public_key: Option<String>,
    /// payment.instrument.details (SPC 2025)
    pub instrument_details: Option<String>,
    /// payment.paymentEntitiesLogos (SPC 2025): (url, label) in the order shown
    pub entity_logos: Option<Vec<(String, String)>>,
    /// payment.instrument.icon
    pub instrument_icon: Option<String>,
}

/// Parsed clientDataJSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientData {
    /// `type`
    pub kind: String,
    /// `challenge`, as the base64url string sent.
    pub challenge: String,
    /// `origin`
    pub origin: String,
    /// `crossOrigin` (absent = false)
    pub cross_origin: bool,
    /// `topOrigin`
    pub top_origin: Option<String>,
    /// `payment` (SPC)
    pub payment: Option<PaymentData>,
}

/// clientDataJSON problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientDataError {
    /// Not JSON or missing members.
    Malformed,
    /// Not a JSON text (or not UTF-8).
    NotJson,
    /// The JSON text is not an object.
    NotObject,
    /// A member name appears twice in one object.
    DuplicateKey,
    /// A required member is absent (its path).
    MissingMember(&'static str),
    /// A member has the wrong JSON type (its path).
    WrongMemberType(&'static str),
    /// `tokenBinding.status` is `present`: token binding is not supported.
    TokenBindingUnsupported,
    /// `tokenBinding.status` is not one of `present` / `supported`.
    TokenBindingMalformed,
    /// `type` is not the one the ceremony expects.
    TypeMismatch,
    /// `challenge` is not the one issued.
    ChallengeMismatch,
    /// `origin` is not one of the relying party's origins.
    OriginMismatch,
    /// `crossOrigin` is true but the relying party allows no such top origin.
    CrossOriginRefused,
    /// `topOrigin` is not one of the relying party's top origins.
    TopOriginMismatch,
}

impl ClientDataError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed => "client_data_malformed",
            Self::NotJson => "client_data_not_json",
            Self::NotObject => "client_data_not_object",
            Self::DuplicateKey => "client_data_duplicate_key",
            Self::MissingMember(_) => "client_data_missing_member",
            Self::WrongMemberType(_) => "client_data_wrong_member_type",
            Self::TokenBindingUnsupported => "token_binding_unsupported",
            Self::TokenBindingMalformed => "token_binding_malformed",
            Self::TypeMismatch => "type_mismatch",
            Self::ChallengeMismatch => "challenge_mismatch",
            Self::OriginMismatch => "origin_mismatch",
            Self::CrossOriginRefused => "cross_origin_refused",
            Self::TopOriginMismatch => "top_origin_mismatch",
        }
    }
}

impl std::fmt::Display for ClientDataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed => f.write_str("malformed"),
            Self::NotJson => f.write_str("not JSON"),
            Self::NotObject => f.write_str("not a JSON object"),
            Self::DuplicateKey => f.write_str("duplicate member name"),
            Self::MissingMember(m) => write!(f, "{m} missing"),
            Self::WrongMemberType(m) => write!(f, "{m} has the wrong type"),
            Self::TokenBindingUnsupported => f.write_str("token binding present (unsupported)"),
            Self::TokenBindingMalformed => f.write_str("tokenBinding.status unknown"),
            Self::TypeMismatch => f.write_str("type not expected"),
            Self::ChallengeMismatch => f.write_str("challenge differs"),
            Self::OriginMismatch => f.write_str("origin not allowed"),
            Self::CrossOriginRefused => f.write_str("crossOrigin not allowed"),
            Self::TopOriginMismatch => f.write_str("topOrigin not allowed"),
        }
    }
}

impl ClientData {
    /// Parses the exact bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, ClientDataError> {
        let value = strict_json(bytes)?;
        let obj = value.as_object().ok_or(ClientDataError::NotObject)?;
        let kind = required_str(obj, "type", "type")?;
        let challenge = required_str(obj, "challenge", "challenge")?;
        let origin = required_str(obj, "origin", "origin")?;
        let cross_origin = match obj.get("crossOrigin") {
            None => false,
            Some(v) => v
                .as_bool()
                .ok_or(ClientDataError::WrongMemberType("crossOrigin"))?,
        };
        let top_origin = optional_str(obj, "topOrigin", "topOrigin")?;
        check_token_binding(obj.get("tokenBinding"))?;
        let payment = match obj.get("payment") {
            None => None,
            Some(v) => Some(PaymentData::from_json(v)?),
        };
        Ok(Self {
            kind,
            challenge,
            origin,
            cross_origin,
            top_origin,
            payment,
        })
    }

    /// `challenge` equals the issued one (compared in constant time).
    pub fn check_challenge(&self, expected: &str) -> Result<(), ClientDataError> {
        if constant_time_eq(self.challenge.as_bytes(), expected.as_bytes()) {
            Ok(())
        } else {
            Err(ClientDataError::ChallengeMismatch)
        }
    }

    /// `origin` is one of the RP's origins; `crossOrigin` and `topOrigin` only as the RP allows.
    pub fn check_origins(&self, rp: &RelyingParty) -> Result<(), ClientDataError> {
        if !rp.origins.contains(&self.origin) {
            return Err(ClientDataError::OriginMismatch);
        }
        if self.cross_origin && (rp.top_origins.is_empty() || self.top_origin.is_none()) {
            return Err(ClientDataError::CrossOriginRefused);
        }
        if let Some(top) = &self.top_origin {
            if !rp.top_origins.iter().any(|o| o == top) {
                return Err(ClientDataError::TopOriginMismatch);
            }
        }
        Ok(())
    }
}

impl PaymentData {
    fn from_json(value: &Value) -> Result<Self, ClientDataError> {
        let obj = value
            .as_object()
            .ok_or(ClientDataError::WrongMemberType("payment"))?;
        let total = nested(obj, "total", "payment.total")?;
        let instrument = nested(obj, "instrument", "payment.instrument")?;
        Ok(Self {
            rp_id: optional_str(obj, "rpId", "payment.rpId")?,
            top_origin: optional_str(obj, "topOrigin", "payment.topOrigin")?,
            payee_name: optional_str(obj, "payeeName", "payment.payeeName")?,
            payee_origin: optional_str(obj, "payeeOrigin", "payment.payeeOrigin")?,
            total_currency: match total {
                Some(t) => optional_str(t, "currency", "payment.total.currency")?,
                None => None,
            },
            total_value: match total {
                Some(t) => optional_str(t, "value", "payment.total.value")?,
                None => None,
            },
            instrument_display_name: match instrument {
                Some(i) => optional_str(i, "displayName", "payment.instrument.displayName")?,
                None => None,
            },
            instrument_icon: match instrument {
                Some(i) => optional_str(i, "icon", "payment.instrument.icon")?,
                None => None,
            },
            browser_bound_public_key: optional_str(
                obj,
                "browserBoundPublicKey",
                "payment.browserBoundPublicKey",
            )?,
            instrument_details: match instrument {
                Some(i) => optional_str(i, "details", "payment.instrument.details")?,
                None => None,
            },
            entity_logos: match obj.get("paymentEntitiesLogos") {
                None => None,
                Some(Value::Array(items)) => Some(
                    items
                        .iter()
                        .map(|item| {
                            let logo = item.as_object().ok_or(ClientDataError::WrongMemberType(
                                "payment.paymentEntitiesLogos",
                            ))?;
                            let field = |k: &str| {
                                logo.get(k)
                                    .and_then(Value::as_str)
                                    .map(str::to_owned)
                                    .ok_or(ClientDataError::WrongMemberType(
                                        "payment.paymentEntitiesLogos",
                                    ))
                            };
                            Ok((field("url")?, field("label")?))
                        })
                        .collect::<Result<_, ClientDataError>>()?,
                ),
                Some(_) => {
                    return Err(ClientDataError::WrongMemberType(
                        "payment.paymentEntitiesLogos",
                    ))
                }
            },
        })
    }
}

fn required_str(
    obj: &Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<String, ClientDataError> {
    optional_str(obj, key, path)?.ok_or(ClientDataError::MissingMember(path))
}

fn optional_str(
    obj: &Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<String>, ClientDataError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ClientDataError::WrongMemberType(path)),
    }
}

fn nested<'a>(
    obj: &'a Map<String, Value>,
    key: &str,
    path: &'static str,
) -> Result<Option<&'a Map<String, Value>>, ClientDataError> {
    match obj.get(key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(_) => Err(ClientDataError::WrongMemberType(path)),
    }
}

/// WebAuthn L2 §5.8.1 TokenBinding: `present` means the RP must check a binding payhsm does not
/// support; `supported` is fine; any other status is malformed. A non-object value (old Firefox
/// sent a string) carries no binding and is ignored, as the captured vectors expect.
fn check_token_binding(value: Option<&Value>) -> Result<(), ClientDataError> {
    let Some(Value::Object(tb)) = value else {
        return Ok(());
    };
    match tb.get("status").and_then(Value::as_str) {
        Some("supported") => Ok(()),
        Some("present") => Err(ClientDataError::TokenBindingUnsupported),
        _ => Err(ClientDataError::TokenBindingMalformed),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Parses JSON text into a value, refusing duplicate member names at any depth.
fn strict_json(bytes: &[u8]) -> Result<Value, ClientDataError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = match de::Deserialize::deserialize(&mut de) {
        Ok(StrictValue(v)) => v,
        Err(e) if e.to_string().starts_with(DUPLICATE) => {
            return Err(ClientDataError::DuplicateKey)
        }
        Err(_) => return Err(ClientDataError::NotJson),
    };
    de.end().map_err(|_| ClientDataError::NotJson)?;
    Ok(value)
}

const DUPLICATE: &str = "duplicate member";

struct StrictValue(Value);

impl<'de> de::Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = StrictValue;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Bool(v)))
    }
    fn visit_i64<E>(self, v: i64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_f64<E>(self, v: f64) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::from(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::String(v)))
    }
    fn visit_unit<E>(self) -> Result<StrictValue, E> {
        Ok(StrictValue(Value::Null))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<StrictValue, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(StrictValue(Value::Array(items)))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<StrictValue, A::Error> {
        let mut obj = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if obj.insert(key, v).is_some() {
                return Err(de::Error::custom(DUPLICATE));
            }
        }
        Ok(StrictValue(Value::Object(obj)))
    }
}

#[cfg(test)]
#[path = "client_data_tests.rs"]
mod tests;
