//! Request and response bodies of the authorization routes (`/v1/authorizations...`), and the
//! `Idempotency-Key` header. Binary fields are base64url without padding.

use super::error::ApiError;
use super::types::base64url;
use crate::card::{Domain, Token};
use crate::service::{
    AuthorizeInput, IdempotencyKey, IssuedPaymentChallenge, PaymentChallengeInput,
    SignedAuthorization,
};
use crate::store::SpcDisplay;
use hyper::HeaderMap;
use serde::{Deserialize, Serialize};

/// The header a client sets to make a POST safe to retry.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// The `Idempotency-Key` header, if present; 400 if it is not 1 to 128 visible ASCII
/// characters or given twice.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    const BAD: &str = "`Idempotency-Key` must be one header of 1 to 128 visible ASCII characters";
    if values.next().is_some() {
        return Err(ApiError::Malformed(BAD));
    }
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
}

/// `spc`: what the Secure Payment Confirmation dialog shows beyond amount and payee.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpcRequest {
    /// payment.payeeOrigin.
    pub payee_origin: String,
    /// payment.topOrigin.
    pub top_origin: String,
    /// payment.instrument.
    pub instrument: SpcInstrument,
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
}

impl PaymentChallengeRequest {
    /// Parses token and domain and builds the service input (values are checked there).
    pub fn into_input(self) -> Result<PaymentChallengeInput, ApiError> {
        Ok(PaymentChallengeInput {
            token: Token::parse(&self.token)?,
            domain: Domain::parse(&self.domain)?,
            device_id: self.device_id,
            amount: self.amount,
            currency: self.currency,
            payee: self.payee,
            spc: self.spc.map(|s| SpcDisplay {
                payee_origin: s.payee_origin,
                top_origin: s.top_origin,
                instrument_display_name: s.instrument.display_name,
                instrument_icon: s.instrument.icon,
            }),
        })
    }
}

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
}

impl AuthorizeRequest {
    /// Decodes the binary fields.
    pub fn into_input(self) -> Result<AuthorizeInput, ApiError> {
        Ok(AuthorizeInput {
            credential_id: base64url(
                &self.credential_id,
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
