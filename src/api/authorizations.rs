//! Request and response bodies of the authorization routes (`/v1/authorizations...`), and the
//! `Idempotency-Key` header. Binary fields are base64url without padding.

use super::error::ApiError;
use super::types::base64url;
use crate::card::{Domain, Token};
use crate::payment::{Audience, SpcDisplay, SpcIcon};
use crate::service::{
    AuthorizeInput, IdempotencyKey, IssuedPaymentChallenge, PaymentChallengeInput,
    SignedAuthorization,
};
use crate::store::AuthorizationRecord;
use crate::text::{DisplayText, LoggableText};
use hyper::HeaderMap;
use serde::{Deserialize, Serialize};

/// The header a client sets to make a POST safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header, if present; 400 if it is not 1 to 128 visible ASCII
/// characters or given twice (`malformed_request`), or holds a card number (`pan_in_text`: the
/// key is stored as it came).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    const BAD: &str = "`Idempotency-Key` must be one header of 1 to 128 visible ASCII characters";
    if values.next().is_some() {
        return Err(ApiError::Malformed(BAD));
    }
    // Not screened for card numbers: it is kept only as a keyed tag (see `IdempotencyKey`),
    // and refusing the UUIDs whose digits happen to pass Luhn would fail real payments.
    let text = value.to_str().map_err(|_| ApiError::Malformed(BAD))?;
    IdempotencyKey::parse(text)
        .map(Some)
        .ok_or(ApiError::Malformed(BAD))
}

/// `instrument` of the SPC display data.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcInstrument {
    /// payment.instrument.displayName.
    pub display_name: String,
    /// payment.instrument.icon.
    pub icon: String,
    /// payment.instrument.details.
    #[serde(default)]
    pub details: Option<String>,
}

/// One of `payment_entities_logos`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcLogoRequest {
    /// An `https:` or `data:image/` URL.
    pub url: String,
    /// What the logo stands for.
    pub label: String,
}

/// `spc`: what the Secure Payment Confirmation dialog shows beyond amount and payee.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcRequest {
    /// payment.payeeOrigin (optional: the payee's name is always shown).
    #[serde(default)]
    pub payee_origin: Option<String>,
    /// payment.topOrigin.
    pub top_origin: String,
    /// payment.instrument.
    pub instrument: SpcInstrument,
    /// payment.paymentEntitiesLogos, in the order shown.
    #[serde(default)]
    pub payment_entities_logos: Vec<SpcLogoRequest>,
}

impl SpcRequest {
    /// Screens what the dialog shows (422 `pan_in_text`, `unsafe_text`; the origins and the
    /// display name NFC-normalized) and checks the icon's scheme (422 `invalid_icon`).
    fn screen(self) -> Result<SpcDisplay, ApiError> {
        Ok(SpcDisplay {
            payee_origin: self
                .payee_origin
                .as_deref()
                .map(|o| DisplayText::parse(o).map(DisplayText::into_string))
                .transpose()?,
            top_origin: DisplayText::parse(&self.top_origin)?.into_string(),
            instrument_display_name: DisplayText::parse(&self.instrument.display_name)?
                .into_string(),
            instrument_icon: SpcIcon::parse(LoggableText::parse(&self.instrument.icon)?)?
                .into_string(),
            instrument_details: self
                .instrument
                .details
                .as_deref()
                .map(|d| DisplayText::parse(d).map(DisplayText::into_string))
                .transpose()?,
            entity_logos: self
                .payment_entities_logos
                .iter()
                .map(|l| {
                    Ok(crate::payment::SpcLogo {
                        url: SpcIcon::parse(LoggableText::parse(&l.url)?)?.into_string(),
                        label: DisplayText::parse(&l.label)?.into_string(),
                    })
                })
                .collect::<Result<_, ApiError>>()?,
        })
    }
}

/// `POST /v1/authorizations/challenges`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentChallengeRequest {
    /// The token paid with.
    pub token: String,
    /// Its domain.
    pub domain: String,
    /// The enrolled device that must confirm.
    pub device_id: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payee name.
    pub payee: String,
    /// SPC display data (the payment then runs as `payment.get`).
    #[serde(default)]
    pub spc: Option<SpcRequest>,
    /// Who the authorization is for: signed as its `aud`.
    #[serde(default)]
    pub audience: Option<String>,
}

impl PaymentChallengeRequest {
    /// Parses token and domain, screens the text that is shown, signed, stored or audited
    /// (payee, device id, SPC display data), and builds the service input (amount, currency
    /// and the lengths are checked there, after the policy).
    pub fn into_input(self) -> Result<PaymentChallengeInput, ApiError> {
        Ok(PaymentChallengeInput {
            token: Token::parse(&self.token)?,
            domain: Domain::parse(&self.domain)?,
            device_id: device_id(&self.device_id)?,
            amount: self.amount,
            currency: self.currency,
            payee: DisplayText::parse(&self.payee)?,
            spc: self.spc.map(SpcRequest::screen).transpose()?,
            audience: self.audience.as_deref().map(audience).transpose()?,
        })
    }
}

/// An audience, screened like all caller text (422 `pan_in_text`), then checked (422
/// `invalid_audience`).
fn audience(text: &str) -> Result<Audience, ApiError> {
    Ok(Audience::parse(LoggableText::parse(text)?)?)
}

/// A device id as payhsm makes them (16 random bytes in base64url, 22 characters), screened
/// like all caller text; anything else is a malformed request (400), not an unknown device.
fn device_id(text: &str) -> Result<String, ApiError> {
    let text = LoggableText::parse(text)?;
    let bytes = super::types::base64url(
        text.as_str(),
        "`device_id` is not a device id (22 base64url characters)",
    )?;
    if bytes.len() != DEVICE_ID_BYTES {
        return Err(ApiError::Malformed(
            "`device_id` is not a device id (22 base64url characters)",
        ));
    }
    Ok(text.into_string())
}

/// The length of a device id before base64url.
const DEVICE_ID_BYTES: usize = 16;

/// The answer to a payment challenge request.
#[derive(Debug, Serialize)]
pub struct PaymentChallengeResponse<'a> {
    /// Quote it back with the assertion.
    pub challenge_id: &'a str,
    /// base64url, no padding.
    pub challenge: &'a str,
    /// RFC 3339 UTC.
    pub expires_at: &'a str,
}

impl<'a> From<&'a IssuedPaymentChallenge> for PaymentChallengeResponse<'a> {
    fn from(c: &'a IssuedPaymentChallenge) -> Self {
        Self {
            challenge_id: &c.challenge_id,
            challenge: &c.challenge,
            expires_at: &c.expires_at,
        }
    }
}

/// `POST /v1/authorizations`: an assertion answering a payment challenge.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeRequest {
    /// The challenge answered.
    pub challenge_id: String,
    /// base64url credential id.
    pub credential_id: String,
    /// base64url authenticatorData.
    pub authenticator_data: String,
    /// base64url clientDataJSON.
    pub client_data_json: String,
    /// base64url signature.
    pub signature: String,
    /// base64url SPC browser-bound signature over clientDataJSON (the `payment` extension
    /// output), when clientDataJSON carries `payment.browserBoundPublicKey`.
    #[serde(default)]
    pub browser_bound_signature: Option<String>,
}

impl AuthorizeRequest {
    /// Decodes the binary fields. The credential id is audited in base64url, as it came:
    /// screened first (422 `pan_in_text`).
    pub fn into_input(self) -> Result<AuthorizeInput, ApiError> {
        Ok(AuthorizeInput {
            credential_id: base64url(
                LoggableText::parse(&self.credential_id)?.as_str(),
                "`credential_id` is not base64url without padding",
            )?,
            authenticator_data: base64url(
                &self.authenticator_data,
                "`authenticator_data` is not base64url without padding",
            )?,
            client_data_json: base64url(
                &self.client_data_json,
                "`client_data_json` is not base64url without padding",
            )?,
            signature: base64url(
                &self.signature,
                "`signature` is not base64url without padding",
            )?,
            browser_bound_signature: self
                .browser_bound_signature
                .map(|s| {
                    base64url(
                        &s,
                        "`browser_bound_signature` is not base64url without padding",
                    )
                })
                .transpose()?,
            challenge_id: self.challenge_id,
        })
    }
}

/// The answer to an approved authorization.
#[derive(Debug, Serialize)]
pub struct AuthorizeResponse<'a> {
    /// The compact JWS.
    pub authorization: &'a str,
    /// `approved`.
    pub decision: &'a str,
    /// payhsm's id for it.
    pub authorization_id: &'a str,
}

impl<'a> From<&'a SignedAuthorization> for AuthorizeResponse<'a> {
    fn from(a: &'a SignedAuthorization) -> Self {
        Self {
            authorization: &a.authorization,
            decision: &a.decision,
            authorization_id: &a.authorization_id,
        }
    }
}

/// `GET /v1/authorizations/{id}`: a signed authorization as it was committed.
#[derive(Debug, Serialize)]
pub struct AuthorizationResponse<'a> {
    /// payhsm's id for it (the JWS's `jti`).
    pub authorization_id: &'a str,
    /// `approved`.
    pub decision: &'a str,
    /// RFC 3339 UTC: the JWS's `iat`.
    pub issued_at: String,
    /// RFC 3339 UTC: the JWS's `exp`.
    pub expires_at: String,
    /// The policies that decided.
    pub policy_ids: &'a [String],
    /// The token paid with.
    pub token: &'a str,
    /// Its domain.
    pub domain: &'a str,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: &'a str,
    /// Payee name.
    pub payee: &'a str,
    /// The device that confirmed.
    pub device_id: &'a str,
    /// The compact JWS, as issued.
    pub authorization: &'a str,
}

/// A NumericDate as RFC 3339 UTC (the Unix epoch for one out of range, which the signer never
/// writes).
fn rfc3339(unix: i64) -> String {
    crate::clock::format_rfc3339(
        time::OffsetDateTime::from_unix_timestamp(unix).unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

impl<'a> From<&'a AuthorizationRecord> for AuthorizationResponse<'a> {
    fn from(a: &'a AuthorizationRecord) -> Self {
        Self {
            authorization_id: &a.authorization_id,
            decision: &a.decision,
            issued_at: rfc3339(a.iat),
            expires_at: rfc3339(a.exp),
            policy_ids: &a.policy_ids,
            token: a.token.as_str(),
            domain: a.domain.as_str(),
            amount: a.amount,
            currency: &a.currency,
            payee: &a.payee,
            device_id: &a.device_id,
            authorization: &a.jws,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn idempotency_keys_are_checked() {
        let mut h = HeaderMap::new();
        assert!(idempotency_key(&h).unwrap().is_none());
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("order-1"));
        assert_eq!(idempotency_key(&h).unwrap().unwrap().as_str(), "order-1");
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("a b"));
        assert_eq!(idempotency_key(&h).unwrap_err().code(), "malformed_request");
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("a"));
        h.append(IDEMPOTENCY_KEY, HeaderValue::from_static("b"));
        assert_eq!(idempotency_key(&h).unwrap_err().code(), "malformed_request");
        h.insert(IDEMPOTENCY_KEY, HeaderValue::from_static("a\tb"));
        assert_eq!(idempotency_key(&h).unwrap_err().code(), "malformed_request");
    }

    #[test]
    fn an_idempotency_key_is_any_visible_ascii_and_never_printed() {
        let mut h = HeaderMap::new();
        // Digits that pass Luhn are a key like any other: it is kept only as a keyed tag.
        for key in [
            "4111111111111111",
            "550e8400-e29b-41d4-a716-446655440000",
            "order-4111-1111-1111-1111",
        ] {
            h.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
            let parsed = idempotency_key(&h).unwrap().unwrap();
            assert_eq!(parsed.as_str(), key);
            assert!(!format!("{parsed:?}").contains("4111"));
        }
    }

    fn challenge_request(
        edit: impl FnOnce(&mut serde_json::Value),
    ) -> Result<PaymentChallengeInput, ApiError> {
        let mut body = serde_json::json!({
            "token": "4111119876541111", "domain": "shop", "device_id": "AAAAAAAAAAAAAAAAAAAAAA", "amount": 1234,
            "currency": "EUR", "payee": "Shop",
            "spc": {"payee_origin": "https://shop.example", "top_origin": "https://shop.example",
                "instrument": {"display_name": "Visa", "icon": "https://bank.example/v.png"}},
        });
        edit(&mut body);
        serde_json::from_value::<PaymentChallengeRequest>(body)
            .unwrap()
            .into_input()
    }

    #[test]
    fn payment_challenge_text_is_screened_when_decoded() {
        let code = |r: Result<PaymentChallengeInput, ApiError>| {
            let e = r.unwrap_err();
            (e.status().as_u16(), e.code())
        };
        let pan = "4111 1111 1111 1111";
        for (pointer, value, expected) in [
            ("/token", "4111111111111111", "pan_as_token"),
            ("/domain", "4111-1111-1111-1111", "pan_in_text"),
            ("/device_id", pan, "pan_in_text"),
            ("/payee", pan, "pan_in_text"),
            ("/payee", "Acme\u{202e}moc.live", "unsafe_text"),
            (
                "/spc/payee_origin",
                "https://x\u{200b}.example",
                "unsafe_text",
            ),
            (
                "/spc/top_origin",
                "https://4111111111111111.example",
                "pan_in_text",
            ),
            (
                "/spc/instrument/display_name",
                "Visa\u{2028}",
                "unsafe_text",
            ),
            (
                "/spc/instrument/icon",
                "javascript:alert(1)",
                "invalid_icon",
            ),
            (
                "/spc/instrument/icon",
                "https://b.example/4111111111111111.png",
                "pan_in_text",
            ),
        ] {
            let r = challenge_request(|b| *b.pointer_mut(pointer).unwrap() = value.into());
            assert_eq!(code(r), (422, expected), "{pointer} {value:?}");
        }
        let kept = challenge_request(|b| {
            b["payee"] = "Cafe\u{301}".into();
            b["spc"]["instrument"]["display_name"] = "Cafe\u{301}".into();
        })
        .unwrap();
        assert_eq!(kept.payee.as_str(), "Caf\u{e9}");
        assert_eq!(kept.spc.unwrap().instrument_display_name, "Caf\u{e9}");
    }

    #[test]
    fn an_audience_is_optional_screened_and_checked() {
        assert!(challenge_request(|_| {}).unwrap().audience.is_none());
        let kept = challenge_request(|b| b["audience"] = "https://acquirer.example".into());
        assert_eq!(
            kept.unwrap().audience.unwrap().as_str(),
            "https://acquirer.example"
        );
        for (value, expected) in [
            ("", "invalid_audience"),
            ("two words", "invalid_audience"),
            ("aud-4111111111111111", "pan_in_text"),
        ] {
            let e = challenge_request(|b| b["audience"] = value.into()).unwrap_err();
            assert_eq!(
                (e.status().as_u16(), e.code()),
                (422, expected),
                "{value:?}"
            );
        }
    }

    #[test]
    fn a_credential_id_holding_a_card_number_is_refused() {
        let body = serde_json::json!({
            "challenge_id": "c1", "credential_id": "4111111111111111",
            "authenticator_data": "AA", "client_data_json": "AA", "signature": "AA",
        });
        let e = serde_json::from_value::<AuthorizeRequest>(body)
            .unwrap()
            .into_input()
            .unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (422, "pan_in_text"));
    }

    #[test]
    fn amounts_must_be_non_negative_integers() {
        for bad in [r#"-1"#, r#"1.5"#, r#""100""#] {
            let body = format!(
                r#"{{"token":"4111119876541111","domain":"shop","device_id":"d","amount":{bad},"currency":"EUR","payee":"p"}}"#
            );
            assert!(
                serde_json::from_str::<PaymentChallengeRequest>(&body).is_err(),
                "{bad}"
            );
        }
    }
}
