//! Request and response bodies of the batch routes: `POST /v1/tokens/batch` and
//! `POST /v1/tokens/detokenize/batch`.
//!
//! A batch answers 200 with one result per item, in the items' order and carrying its
//! `index`: the token or PAN, or the item's own `error` with the same code the single route
//! would answer. Only a request that cannot be read at all (malformed, a bad domain, over the
//! item or size limit) or that the policy refuses fails as a whole.

use super::error::{service_status, ApiError};
use super::types::expiry;
use crate::audit::Receipt;
use crate::card::{CardError, Domain, Pan, Token};
use crate::service::{self, BatchCard, Detokenized, Tokenized};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A batch item's `pan`: parsed straight from the request buffer into a boxed [`Pan`], or
/// why the string was not one.
#[derive(Debug)]
pub struct BatchPan(Result<Box<Pan>, CardError>);

impl<'de> Deserialize<'de> for BatchPan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(BatchPanVisitor)
    }
}

struct BatchPanVisitor;

impl Visitor<'_> for BatchPanVisitor {
    type Value = BatchPan;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a PAN as a string of digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<BatchPan, E> {
        Ok(BatchPan(Pan::parse(v).map(Box::new)))
    }
}

/// `POST /v1/tokens/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeBatchRequest {
    /// The token domain of every item.
    pub domain: String,
    /// The cards.
    pub items: Vec<TokenizeBatchItem>,
}

/// One card of a tokenize batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeBatchItem {
    /// The card number.
    pub pan: BatchPan,
    /// Expiry month 1-12; with `exp_year` or not at all.
    #[serde(default)]
    pub exp_month: Option<u64>,
    /// Four-digit expiry year; with `exp_month` or not at all.
    #[serde(default)]
    pub exp_year: Option<u64>,
}

impl TokenizeBatchRequest {
    /// The domain, and each item as a card or the reason it is not one.
    pub fn into_input(self) -> Result<(Domain, Vec<Result<BatchCard, CardError>>), ApiError> {
        let domain = Domain::parse(&self.domain)?;
        let items = self
            .items
            .into_iter()
            .map(|item| {
                let expiry = expiry(item.exp_month, item.exp_year)?;
                Ok(BatchCard {
                    pan: item.pan.0?,
                    expiry,
                })
            })
            .collect();
        Ok((domain, items))
    }
}

/// `POST /v1/tokens/detokenize/batch`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeBatchRequest {
    /// The domain of every token.
    pub domain: String,
    /// The tokens.
    pub tokens: Vec<String>,
}

impl DetokenizeBatchRequest {
    /// The domain, and each token parsed or the reason it is not one.
    pub fn parse(&self) -> Result<(Domain, Vec<Result<Token, CardError>>), ApiError> {
        let domain = Domain::parse(&self.domain)?;
        Ok((
            domain,
            self.tokens.iter().map(|t| Token::parse(t)).collect(),
        ))
    }
}

/// An item's error: the code and message the single route would answer.
#[derive(Debug, Serialize)]
pub struct ItemError {
    /// Stable snake_case code.
    pub code: &'static str,
    /// Human-readable text, written by payhsm.
    pub message: String,
}

impl From<&service::Error> for ItemError {
    fn from(e: &service::Error) -> Self {
        Self {
            code: e.code(),
            message: e.to_string(),
        }
    }
}

/// The answer to a tokenize batch.
#[derive(Debug, Serialize)]
pub struct TokenizeBatchResponse<'a> {
    /// One per item, in order.
    pub results: Vec<TokenizeBatchResult<'a>>,
}

/// One item's result: `token` and `status` (`created` or `existing`), or `error`.
#[derive(Debug, Serialize)]
pub struct TokenizeBatchResult<'a> {
    /// The item's position in the request, from 0.
    pub index: usize,
    /// The token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<&'a str>,
    /// `created` (201 on the single route) or `existing` (200).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
    /// Why the item has no token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

impl<'a> From<&'a [Result<Tokenized, service::Error>]> for TokenizeBatchResponse<'a> {
    fn from(results: &'a [Result<Tokenized, service::Error>]) -> Self {
        let results = results
            .iter()
            .enumerate()
            .map(|(index, r)| {
                let (view, status) = match r {
                    Ok(Tokenized::Created(v)) => (v, "created"),
                    Ok(Tokenized::Existing(v)) => (v, "existing"),
                    Err(e) => {
                        return TokenizeBatchResult {
                            index,
                            token: None,
                            status: None,
                            error: Some(e.into()),
                        }
                    }
                };
                TokenizeBatchResult {
                    index,
                    token: Some(view.token.as_str()),
                    status: Some(status),
                    error: None,
                }
            })
            .collect();
        Self { results }
    }
}

/// The answer to a detokenize batch. The PANs are borrowed from the service's results and
/// written straight into a zeroized response buffer.
#[derive(Serialize)]
pub struct DetokenizeBatchResponse<'a> {
    /// One per token, in order.
    pub results: Vec<DetokenizeBatchResult<'a>>,
}

/// One token's result: `pan`, `exp_month`, `exp_year` (null when not given at
/// tokenization), or `error`.
#[derive(Serialize)]
pub struct DetokenizeBatchResult<'a> {
    /// The token's position in the request, from 0.
    pub index: usize,
    /// The card, when released.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub card: Option<ReleasedCard<'a>>,
    /// Why the token's PAN was not released.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
}

/// A released PAN and its expiry.
#[derive(Serialize)]
pub struct ReleasedCard<'a> {
    /// The card number's digits.
    pub pan: &'a str,
    /// Expiry month, or null.
    pub exp_month: Option<u8>,
    /// Expiry year, or null.
    pub exp_year: Option<u16>,
    /// The release's audit record: its `seq` and `record_hash`.
    pub receipt: &'a Receipt,
}

impl<'a> DetokenizeBatchResponse<'a> {
    /// Borrows each released PAN's digits.
    pub fn new(results: &'a [Result<Detokenized, service::Error>]) -> Result<Self, ApiError> {
        let results = results
            .iter()
            .enumerate()
            .map(|(index, r)| match r {
                Ok(out) => Ok(DetokenizeBatchResult {
                    index,
                    card: Some(ReleasedCard {
                        pan: std::str::from_utf8(out.pan.expose_digits()).map_err(|e| {
                            ApiError::Internal(crate::fault::Fault::caused_by(
                                "a detokenized card is not ASCII digits",
                                e,
                            ))
                        })?,
                        exp_month: out.expiry.map(|e| e.month()),
                        exp_year: out.expiry.map(|e| e.year()),
                        receipt: &out.receipt,
                    }),
                    error: None,
                }),
                Err(e) => Ok(DetokenizeBatchResult {
                    index,
                    card: None,
                    error: Some(e.into()),
                }),
            })
            .collect::<Result<_, ApiError>>()?;
        Ok(Self { results })
    }
}

/// The items whose error is a server fault (5xx class): index, error.
pub fn failed_items<T>(
    results: &[Result<T, service::Error>],
) -> impl Iterator<Item = (usize, &service::Error)> {
    results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| (i, e)))
        .filter(|(_, e)| service_status(e).is_server_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::decode;

    #[test]
    fn a_bad_item_keeps_its_error_and_the_others_parse() {
        let body = br#"{"domain":"shop","items":[
            {"pan":"4111111111111111","exp_month":12,"exp_year":2030},
            {"pan":"4111111111111112"},
            {"pan":"4111111111111111","exp_month":13,"exp_year":2030},
            {"pan":"5555555555554444"}]}"#;
        let (domain, items) = decode::<TokenizeBatchRequest>(body)
            .unwrap()
            .into_input()
            .unwrap();
        assert_eq!(domain.as_str(), "shop");
        let codes: Vec<_> = items
            .iter()
            .map(|i| i.as_ref().err().map(|e| e.code()))
            .collect();
        assert_eq!(
            codes,
            [None, Some("invalid_pan"), Some("invalid_expiry"), None]
        );
    }

    #[test]
    fn a_pan_of_another_json_type_is_malformed() {
        let body = br#"{"domain":"shop","items":[{"pan":4111111111111111}]}"#;
        let e = decode::<TokenizeBatchRequest>(body).unwrap_err();
        assert_eq!(e.code(), "malformed_request");
        assert!(!e.to_string().contains("4111"));
    }

    #[test]
    fn detokenize_items_are_parsed_one_by_one() {
        let body = br#"{"domain":"shop","tokens":["4111119876541111","4111111111111111","x"]}"#;
        let req = decode::<DetokenizeBatchRequest>(body).unwrap();
        let (_, tokens) = req.parse().unwrap();
        assert!(tokens[0].is_ok());
        assert_eq!(tokens[1].as_ref().unwrap_err().code(), "pan_as_token");
        assert_eq!(tokens[2].as_ref().unwrap_err().code(), "invalid_token");
    }

    #[test]
    fn results_carry_index_and_either_value_or_error() {
        let results: Vec<Result<Detokenized, service::Error>> = vec![
            Ok(Detokenized {
                pan: Pan::parse("4111111111111111").unwrap(),
                expiry: None,
                receipt: crate::audit::Receipt {
                    seq: 7,
                    record_hash: "ab".repeat(32),
                },
            }),
            Err(service::Error::TokenSuspended),
        ];
        let v = serde_json::to_value(DetokenizeBatchResponse::new(&results).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"results": [
                {"index": 0, "pan": "4111111111111111", "exp_month": null, "exp_year": null,
                    "receipt": {"seq": 7, "record_hash": "ab".repeat(32)}},
                {"index": 1, "error": {"code": "token_suspended",
                    "message": service::Error::TokenSuspended.to_string()}}
            ]})
        );
    }
}
