//! API v1 request and response bodies, and their decoding.
//!
//! Requests refuse unknown fields. The PAN is deserialized straight into [`Pan`] from the
//! request buffer (never into a `String`); a PAN that is a string but not a valid PAN is kept
//! as its [`CardError`] so it answers 422, while a PAN of any other JSON type answers 400.

use super::error::ApiError;
use crate::audit::{to_hex, AuditRecord, Checkpoint, Receipt};
use crate::card::{CardError, Domain, Expiry, Pan, Token};
use crate::service::{
    AuditPage, ConsistencyProof, InclusionProof, SignedTreeHead, TokenView, TokenizeInput,
    MAX_AUDIT_PAGE,
};
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// The `pan` field: a parsed PAN, or why the string was not one.
#[derive(Debug)]
pub struct PanField(pub Result<Pan, CardError>);

impl<'de> Deserialize<'de> for PanField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(PanVisitor)
    }
}

/// Parses the PAN from the string serde hands over (borrowed from the request buffer when it
/// has no escapes), without an owned copy.
struct PanVisitor;

impl Visitor<'_> for PanVisitor {
    type Value = PanField;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a PAN as a string of digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<PanField, E> {
        Ok(PanField(Pan::parse(v)))
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenizeRequest {
    /// The card number.
    pub pan: PanField,
    /// Expiry month 1-12; with `exp_year` or not at all.
    #[serde(default)]
    pub exp_month: Option<u64>,
    /// Four-digit expiry year; with `exp_month` or not at all.
    #[serde(default)]
    pub exp_year: Option<u64>,
    /// The token domain.
    pub domain: String,
}

impl TokenizeRequest {
    /// Checks the values and builds the service input.
    pub fn into_input(self) -> Result<TokenizeInput, ApiError> {
        let pan = self.pan.0?;
        let expiry = expiry(self.exp_month, self.exp_year)?;
        let domain = Domain::parse(&self.domain)?;
        Ok(TokenizeInput {
            pan,
            expiry,
            domain,
        })
    }
}

/// The expiry of `exp_month` and `exp_year`: both or neither.
pub(crate) fn expiry(month: Option<u64>, year: Option<u64>) -> Result<Option<Expiry>, CardError> {
    match (month, year) {
        (None, None) => Ok(None),
        (Some(m), Some(y)) => {
            let m = u8::try_from(m).map_err(|_| CardError::InvalidExpiry)?;
            let y = u16::try_from(y).map_err(|_| CardError::InvalidExpiry)?;
            Ok(Some(Expiry::new(m, y)?))
        }
        _ => Err(CardError::InvalidExpiry),
    }
}

/// `POST /v1/tokens/detokenize`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetokenizeRequest {
    /// The token.
    pub token: String,
    /// Its domain.
    pub domain: String,
}

impl DetokenizeRequest {
    /// Parses the token and domain.
    pub fn parse(&self) -> Result<(Token, Domain), ApiError> {
        Ok((Token::parse(&self.token)?, Domain::parse(&self.domain)?))
    }
}

/// The optional JSON body of suspend, resume and delete: `{"domain": ".."}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainBody {
    /// The token's domain.
    pub domain: String,
}

/// The answer to a tokenization.
#[derive(Debug, Serialize)]
pub struct TokenizeResponse<'a> {
    /// The token.
    pub token: &'a str,
    /// Its domain.
    pub domain: &'a str,
    /// Lifecycle state.
    pub status: &'static str,
    /// The PAN's last four digits.
    pub last4: &'a str,
    /// RFC 3339 UTC.
    pub created_at: &'a str,
}

impl<'a> From<&'a TokenView> for TokenizeResponse<'a> {
    fn from(v: &'a TokenView) -> Self {
        Self {
            token: v.token.as_str(),
            domain: v.domain.as_str(),
            status: v.status.as_str(),
            last4: &v.last4,
            created_at: &v.created_at,
        }
    }
}

/// A token's metadata (read, suspend, resume, delete).
#[derive(Debug, Serialize)]
pub struct MetadataResponse<'a> {
    /// The token.
    pub token: &'a str,
    /// Its domain.
    pub domain: &'a str,
    /// Lifecycle state.
    pub status: &'static str,
    /// The PAN's last four digits.
    pub last4: &'a str,
    /// RFC 3339 UTC.
    pub created_at: &'a str,
    /// RFC 3339 UTC.
    pub updated_at: &'a str,
}

impl<'a> From<&'a TokenView> for MetadataResponse<'a> {
    fn from(v: &'a TokenView) -> Self {
        Self {
            token: v.token.as_str(),
            domain: v.domain.as_str(),
            status: v.status.as_str(),
            last4: &v.last4,
            created_at: &v.created_at,
            updated_at: &v.updated_at,
        }
    }
}

/// The answer to a detokenization. `pan` borrows the PAN's digits; it is written straight
/// into a zeroized response buffer.
#[derive(Serialize)]
pub struct DetokenizeResponse<'a> {
    /// The card number's digits.
    pub pan: &'a str,
    /// Expiry month, or null.
    pub exp_month: Option<u8>,
    /// Expiry year, or null.
    pub exp_year: Option<u16>,
    /// The release's audit record: its `seq` and `record_hash`.
    pub receipt: &'a Receipt,
}

/// The error body: `{"error":{"code":"..","message":".."}}`.
#[derive(Debug, Serialize)]
pub struct ErrorResponse<'a> {
    /// The error.
    pub error: ErrorDetail<'a>,
}

/// The inside of [`ErrorResponse`].
#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    /// Stable snake_case code.
    pub code: &'a str,
    /// Human-readable text.
    pub message: &'a str,
    /// The request's id (also in the `x-request-id` header), to find its log lines and audit
    /// record.
    pub request_id: &'a str,
}

/// Decodes a JSON request body. The error says what kind of problem and where, never what
/// the body contained (serde's messages can quote values, such as a PAN sent as a number).
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    serde_json::from_slice(body).map_err(|e| {
        ApiError::Malformed(match e.classify() {
            Category::Data => "the body has a missing, unknown or wrongly typed field",
            Category::Eof => "the body is empty or truncated JSON",
            Category::Syntax | Category::Io => "the body is not valid JSON",
        })
    })
}

/// A binary field of a request body: base64url without padding, else 400 with `what`.
pub(crate) fn base64url(value: &str, what: &'static str) -> Result<Vec<u8>, ApiError> {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(value)
        .map_err(|_| ApiError::Malformed(what))
}

/// The `domain` query parameter: `None` when the query is absent or empty. Any other
/// parameter, or `domain` twice, is malformed.
pub fn domain_from_query(query: Option<&str>) -> Result<Option<&str>, ApiError> {
    let mut domain = None;
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        match pair.split_once('=') {
            Some(("domain", value)) if domain.is_none() => domain = Some(value),
            Some(("domain", _)) => return Err(ApiError::Malformed("`domain` is given twice")),
            _ => return Err(ApiError::Malformed("unknown query parameter")),
        }
    }
    Ok(domain)
}

/// `after` (default 0) and `limit` (default and most [`MAX_AUDIT_PAGE`]) of `GET /v1/audit`.
pub fn audit_query(query: Option<&str>) -> Result<(u64, usize), ApiError> {
    let [after, limit] = numeric_query(query, ["after", "limit"])?;
    let limit = match limit {
        None => MAX_AUDIT_PAGE,
        Some(n) if (1..=MAX_AUDIT_PAGE as u64).contains(&n) => n as usize,
        Some(_) => return Err(ApiError::Malformed("`limit` is from 1 to 1000")),
    };
    Ok((after.unwrap_or(0), limit))
}

/// `GET /v1/audit/proof?seq=N[&tree_size=M]`: the record and, if given, the tree size.
pub fn proof_query(query: Option<&str>) -> Result<(u64, Option<u64>), ApiError> {
    match numeric_query(query, ["seq", "tree_size"])? {
        [Some(seq), tree_size] => Ok((seq, tree_size)),
        [None, _] => Err(ApiError::Malformed("`seq` is required")),
    }
}

/// `GET /v1/audit/consistency?from=N&to=M`: both tree sizes.
pub fn consistency_query(query: Option<&str>) -> Result<(u64, u64), ApiError> {
    match numeric_query(query, ["from", "to"])? {
        [Some(from), Some(to)] => Ok((from, to)),
        _ => Err(ApiError::Malformed("`from` and `to` are required")),
    }
}

/// A query string of the named parameters only, each at most once, each a decimal integer
/// (digits only: `u64::from_str` would also take a leading `+`). Sans-io.
pub fn numeric_query<const N: usize>(
    query: Option<&str>,
    names: [&str; N],
) -> Result<[Option<u64>; N], ApiError> {
    let mut values = [None; N];
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = names
            .iter()
            .position(|n| *n == name)
            .and_then(|i| values.get_mut(i))
            .ok_or(ApiError::Malformed("unknown query parameter"))?;
        if slot.is_some() {
            return Err(ApiError::Malformed("a query parameter is given twice"));
        }
        if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ApiError::Malformed("query parameters are decimal integers"));
        }
        *slot = Some(
            value
                .parse::<u64>()
                .map_err(|_| ApiError::Malformed("query parameters are decimal integers"))?,
        );
    }
    Ok(values)
}

/// The query of `GET /v1/audit/report`: `since` and `until` (`YYYY-MM-DD`), each exactly
/// once, nothing else.
pub fn report_query(query: Option<&str>) -> Result<crate::audit::report::Period, ApiError> {
    let (mut since, mut until) = (None, None);
    for pair in query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (slot, value) = match pair.split_once('=') {
            Some(("since", v)) => (&mut since, v),
            Some(("until", v)) => (&mut until, v),
            _ => return Err(ApiError::Malformed("unknown query parameter")),
        };
        if slot.replace(value).is_some() {
            return Err(ApiError::Malformed("a query parameter is given twice"));
        }
    }
    let (Some(since), Some(until)) = (since, until) else {
        return Err(ApiError::Malformed("`since` and `until` are required"));
    };
    crate::audit::report::Period::parse(since, until).map_err(ApiError::Malformed)
}

/// `GET /v1/audit`: records after `after`, in order, and the latest signed checkpoint (the
/// log's head when read, which may be past the last record of the page). Records are the
/// lines of `payhsm audit export`.
#[derive(Debug, Serialize)]
pub struct AuditPageResponse<'a> {
    /// The records, in order.
    pub records: &'a [AuditRecord],
    /// The log's head, signed by the HSM audit key.
    pub checkpoint: &'a Checkpoint,
}

impl<'a> From<&'a AuditPage> for AuditPageResponse<'a> {
    fn from(page: &'a AuditPage) -> Self {
        Self {
            records: &page.records,
            checkpoint: &page.checkpoint,
        }
    }
}

/// `GET /v1/audit/sth`: the latest signed tree head.
#[derive(Debug, Serialize)]
pub struct TreeHeadResponse<'a> {
    /// Records covered.
    pub tree_size: u64,
    /// Hex RFC 9162 root hash.
    pub root_hash: String,
    /// When it was signed, ms since the Unix epoch.
    pub timestamp: u64,
    /// The compact JWS (ES256, audit key).
    pub signed_tree_head: &'a str,
}

impl<'a> From<&'a SignedTreeHead> for TreeHeadResponse<'a> {
    fn from(h: &'a SignedTreeHead) -> Self {
        Self {
            tree_size: h.tree_size,
            root_hash: to_hex(&h.root_hash),
            timestamp: h.timestamp,
            signed_tree_head: &h.jws,
        }
    }
}

/// `GET /v1/audit/proof`: what `payhsm audit prove` prints and `verify-proof` checks.
#[derive(Debug, Serialize)]
pub struct InclusionProofResponse<'a> {
    /// The record's leaf index (`seq` - 1).
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The record's export line, without the newline.
    pub leaf: &'a str,
    /// Hex hashes, from the leaf's sibling up.
    pub audit_path: Vec<String>,
    /// Hex root of the tree of `tree_size` leaves.
    pub root_hash: String,
    /// The signed head of that size (null when none was signed of exactly that size).
    pub signed_tree_head: Option<&'a str>,
}

impl<'a> From<&'a InclusionProof> for InclusionProofResponse<'a> {
    fn from(p: &'a InclusionProof) -> Self {
        Self {
            leaf_index: p.leaf_index,
            tree_size: p.tree_size,
            leaf: &p.leaf,
            audit_path: p.audit_path.iter().map(|h| to_hex(h)).collect(),
            root_hash: to_hex(&p.root_hash),
            signed_tree_head: p.signed_tree_head.as_ref().map(|h| h.jws.as_str()),
        }
    }
}

/// `GET /v1/audit/consistency`: what `payhsm audit consistency` prints.
#[derive(Debug, Serialize)]
pub struct ConsistencyProofResponse<'a> {
    /// The smaller tree size.
    pub first: u64,
    /// The larger tree size.
    pub second: u64,
    /// Hex root of the first tree.
    pub first_root_hash: String,
    /// Hex root of the second tree.
    pub second_root_hash: String,
    /// Hex hashes of the RFC 9162 §2.1.4 proof.
    pub consistency_path: Vec<String>,
    /// The signed head of the first size, if one was signed.
    pub first_signed_tree_head: Option<&'a str>,
    /// The signed head of the second size, if one was signed.
    pub second_signed_tree_head: Option<&'a str>,
}

impl<'a> From<&'a ConsistencyProof> for ConsistencyProofResponse<'a> {
    fn from(p: &'a ConsistencyProof) -> Self {
        Self {
            first: p.first,
            second: p.second,
            first_root_hash: to_hex(&p.first_root_hash),
            second_root_hash: to_hex(&p.second_root_hash),
            consistency_path: p.consistency_path.iter().map(|h| to_hex(h)).collect(),
            first_signed_tree_head: p.first_signed_tree_head.as_ref().map(|h| h.jws.as_str()),
            second_signed_tree_head: p.second_signed_tree_head.as_ref().map(|h| h.jws.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokenize(body: &str) -> Result<TokenizeInput, ApiError> {
        decode::<TokenizeRequest>(body.as_bytes())?.into_input()
    }

    fn code(r: Result<TokenizeInput, ApiError>) -> (u16, &'static str) {
        let e = r.unwrap_err();
        (e.status().as_u16(), e.code())
    }

    #[test]
    fn valid_tokenize_request_decodes_with_and_without_expiry() {
        let i = tokenize(r#"{"pan":"4111111111111111","domain":"shop-1"}"#).unwrap();
        assert_eq!(i.pan.last4().as_str(), "1111");
        assert_eq!(i.expiry, None);
        assert_eq!(i.domain.as_str(), "shop-1");
        let i =
            tokenize(r#"{"pan":"4111111111111111","exp_month":12,"exp_year":2030,"domain":"d"}"#)
                .unwrap();
        assert_eq!(i.expiry, Some(Expiry::new(12, 2030).unwrap()));
    }

    #[test]
    fn pan_as_a_number_is_malformed_and_not_echoed() {
        let e = tokenize(r#"{"pan":4111111111111111,"domain":"d"}"#).unwrap_err();
        assert_eq!((e.status().as_u16(), e.code()), (400, "malformed_request"));
        assert!(!e.to_string().contains("4111"));
    }

    #[test]
    fn pan_of_other_types_is_malformed() {
        for pan in ["null", "true", "[]", "{}", "4.5"] {
            let body = format!(r#"{{"pan":{pan},"domain":"d"}}"#);
            assert_eq!(code(tokenize(&body)), (400, "malformed_request"), "{pan}");
        }
    }

    #[test]
    fn pan_string_failing_luhn_is_invalid_pan() {
        assert_eq!(
            code(tokenize(r#"{"pan":"4111111111111112","domain":"d"}"#)),
            (422, "invalid_pan")
        );
        assert_eq!(
            code(tokenize(r#"{"pan":"4111-1111","domain":"d"}"#)),
            (422, "invalid_pan")
        );
    }

    #[test]
    fn escaped_pan_string_still_parses() {
        let i = tokenize(r#"{"pan":"\u0034111111111111111","domain":"d"}"#).unwrap();
        assert_eq!(i.pan.len(), 16);
    }

    #[test]
    fn unknown_or_missing_fields_are_malformed() {
        assert_eq!(
            code(tokenize(
                r#"{"pan":"4111111111111111","domain":"d","cvv":"123"}"#
            )),
            (400, "malformed_request")
        );
        assert_eq!(
            code(tokenize(r#"{"pan":"4111111111111111"}"#)),
            (400, "malformed_request")
        );
        assert_eq!(code(tokenize("")), (400, "malformed_request"));
        assert_eq!(code(tokenize("{")), (400, "malformed_request"));
        assert_eq!(code(tokenize("[1]")), (400, "malformed_request"));
    }

    #[test]
    fn expiry_needs_both_month_and_year_in_range() {
        assert_eq!(
            code(tokenize(
                r#"{"pan":"4111111111111111","exp_month":12,"domain":"d"}"#
            )),
            (422, "invalid_expiry")
        );
        assert_eq!(
            code(tokenize(
                r#"{"pan":"4111111111111111","exp_year":2030,"domain":"d"}"#
            )),
            (422, "invalid_expiry")
        );
        assert_eq!(
            code(tokenize(
                r#"{"pan":"4111111111111111","exp_month":13,"exp_year":2030,"domain":"d"}"#
            )),
            (422, "invalid_expiry")
        );
        assert_eq!(
            code(tokenize(
                r#"{"pan":"4111111111111111","exp_month":300,"exp_year":2030,"domain":"d"}"#
            )),
            (422, "invalid_expiry")
        );
        assert_eq!(
            code(tokenize(
                r#"{"pan":"4111111111111111","exp_month":"12","exp_year":2030,"domain":"d"}"#
            )),
            (400, "malformed_request")
        );
    }

    #[test]
    fn bad_domain_is_invalid_domain() {
        assert_eq!(
            code(tokenize(r#"{"pan":"4111111111111111","domain":"Shop 1"}"#)),
            (422, "invalid_domain")
        );
    }

    #[test]
    fn detokenize_request_checks_token_and_domain() {
        let r: DetokenizeRequest = decode(br#"{"token":"4111119876541111","domain":"d"}"#).unwrap();
        assert!(r.parse().is_ok());
        let r: DetokenizeRequest = decode(br#"{"token":"abc","domain":"d"}"#).unwrap();
        assert_eq!(r.parse().unwrap_err().code(), "invalid_token");
        assert!(decode::<DetokenizeRequest>(br#"{"token":"4111119876541111"}"#).is_err());
    }

    #[test]
    fn domain_query_parameter_is_parsed_strictly() {
        assert_eq!(domain_from_query(None).unwrap(), None);
        assert_eq!(domain_from_query(Some("")).unwrap(), None);
        assert_eq!(
            domain_from_query(Some("domain=shop")).unwrap(),
            Some("shop")
        );
        assert_eq!(
            domain_from_query(Some("domain=a&domain=b"))
                .unwrap_err()
                .code(),
            "malformed_request"
        );
        assert_eq!(
            domain_from_query(Some("domain=a&x=1")).unwrap_err().code(),
            "malformed_request"
        );
    }
}
