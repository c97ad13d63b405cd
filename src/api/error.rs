//! The one mapping from errors to what the caller sees: HTTP status, stable `code`, and the
//! body `{"error":{"code":"..","message":".."}}`. Messages are written by payhsm and never
//! contain request content, a PAN or key material.

use crate::card::CardError;
use crate::keys::KeyError;
use crate::service;
use crate::text::TextError;
use hyper::StatusCode;

/// Why a request was not answered with success.
#[derive(Debug)]
#[non_exhaustive]
pub enum ApiError {
    /// The use case refused or failed.
    Service(service::Error),
    /// The body or query does not decode: bad JSON, a missing, unknown or mistyped field, a
    /// bad query (400). The text is written by payhsm, never copied from the request.
    Malformed(&'static str),
    /// Text in the body holds a card number or a refused character (422). Decided while the
    /// request is decoded: before the policy, the store, the audit log or the signer see it.
    Text(TextError),
    /// A header's text (`Idempotency-Key`) holds a card number (400).
    HeaderText(TextError),
    /// The body is larger than the limit (413).
    PayloadTooLarge,
    /// No such route (404).
    NotFound,
    /// The route exists but not for this method (405); `allow` lists the methods that do.
    MethodNotAllowed {
        /// The value of the `allow` header.
        allow: &'static str,
    },
    /// A request body that is not `application/json` in UTF-8 (415).
    UnsupportedMediaType,
    /// A request body with a content coding (gzip, ...): refused, never decoded (415).
    UnsupportedContentEncoding,
    /// The request body did not arrive within the body timeout (408).
    RequestTimeout,
    /// The connection got no slot: the caller's own cap (its identity or address, 429
    /// `too_many_connections`) or the daemon's (503 `server_busy`). The connection closes.
    ConnectionRefused {
        /// Whether the cap is the caller's own.
        per_caller: bool,
    },
    /// The request could not be read as HTTP at all, so no route was reached: a bad request
    /// line or header (400), headers that did not arrive in time (408), a request target too
    /// long (414), headers too large (431). Written by the transport (`transport::bare_errors`).
    HttpLayer(StatusCode),
    /// A bug: an invariant did not hold while encoding the answer (500); what, and why. The
    /// answer says only `internal error`; the edge log has the cause.
    Internal(crate::fault::Fault),
}

impl ApiError {
    /// The HTTP status and the stable code. The only place errors are mapped.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            // The code is the service error's own (also the audit outcome); the status is
            // chosen here.
            Self::Service(e) => (service_status(e), e.code()),
            Self::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_request"),
            Self::Text(e) => (StatusCode::UNPROCESSABLE_ENTITY, e.code()),
            Self::HeaderText(e) => (StatusCode::BAD_REQUEST, e.code()),
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::UnsupportedContentEncoding => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_content_encoding",
            ),
            Self::RequestTimeout => (StatusCode::REQUEST_TIMEOUT, "request_timeout"),
            Self::ConnectionRefused { per_caller: true } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_connections")
            }
            Self::ConnectionRefused { per_caller: false } => {
                (StatusCode::SERVICE_UNAVAILABLE, "server_busy")
            }
            Self::HttpLayer(status) => {
                let code = match *status {
                    StatusCode::REQUEST_TIMEOUT => "request_timeout",
                    StatusCode::URI_TOO_LONG => "uri_too_long",
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "headers_too_large",
                    StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                    _ => "malformed_request",
                };
                (*status, code)
            }
            Self::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status_and_code().0
    }

    /// The stable snake_case code.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

/// The HTTP status of a service error (its code is the error's own, also the audit outcome).
/// Also the status class of a batch item's error.
pub fn service_status(e: &service::Error) -> StatusCode {
    use service::Error as S;
    match e {
        S::Invalid(_)
        | S::UnknownRelyingParty
        | S::InvalidUser
        | S::Webauthn(_)
        | S::CredentialIdMismatch
        | S::Payment(_)
        | S::DeviceNotEnrolledForToken
        | S::InvalidRevocationReason
        | S::CredentialMismatch
        | S::IdempotencyKeyReused
        | S::UnsupportedKeyChange(_)
        | S::AuthenticatorStatus(_)
        | S::AndroidAppNotAllowed
        | S::InvalidTreeSize => StatusCode::UNPROCESSABLE_ENTITY,
        S::Forbidden | S::PaymentRefused(_) => StatusCode::FORBIDDEN,
        S::TokenNotFound
        | S::ChallengeNotFound
        | S::AuthorizationNotFound
        | S::DeviceNotFound
        | S::KeyNotFound
        | S::AuditRecordNotFound => StatusCode::NOT_FOUND,
        S::TokenSuspended
        | S::TokenStateConflict(_)
        | S::TokenSpaceExhausted
        | S::ChallengeUsed
        | S::CredentialExists
        | S::DeviceRevoked
        | S::CounterConflict
        | S::KeyStateConflict(_)
        | S::KeyInUse { .. }
        | S::KeyNotPublishedLongEnough { .. }
        | S::SameCustodian { .. } => StatusCode::CONFLICT,
        S::ChallengeExpired => StatusCode::GONE,
        S::BatchTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        // An integrity failure is not an outage: retrying will not help.
        S::Keys(KeyError::Integrity) => StatusCode::INTERNAL_SERVER_ERROR,
        S::Store(_) | S::KeysChanged | S::Keys(_) | S::Signer(_) | S::Hsm(_) | S::MetadataStale => {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Service(e) => e.fmt(f),
            Self::Malformed(m) => f.write_str(m),
            Self::Text(e) | Self::HeaderText(e) => e.fmt(f),
            Self::PayloadTooLarge => f.write_str("the request body is too large"),
            Self::NotFound => f.write_str("no such route"),
            Self::MethodNotAllowed { allow } => {
                write!(f, "method not allowed on this route; allowed: {allow}")
            }
            Self::UnsupportedMediaType => {
                f.write_str("the request body must be application/json, in UTF-8")
            }
            Self::UnsupportedContentEncoding => {
                f.write_str("the request body must not have a content coding")
            }
            Self::RequestTimeout => f.write_str("the request body did not arrive in time"),
            Self::ConnectionRefused { per_caller: true } => {
                f.write_str("this client holds as many connections as it may; reuse one of them")
            }
            Self::ConnectionRefused { per_caller: false } => {
                f.write_str("the server holds as many connections as it may; retry later")
            }
            Self::HttpLayer(status) => f.write_str(match *status {
                StatusCode::REQUEST_TIMEOUT => "the request headers did not arrive in time",
                StatusCode::URI_TOO_LONG => "the request target is too long",
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "the request headers are too large",
                StatusCode::PAYLOAD_TOO_LARGE => "the request body is too large",
                _ => "the request is not valid HTTP/1.1",
            }),
            Self::Internal(_) => f.write_str("internal error"),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Displayed as the service error itself: its source is the next cause.
            Self::Service(e) => std::error::Error::source(e),
            Self::Internal(fault) => Some(fault),
            _ => None,
        }
    }
}

impl From<service::Error> for ApiError {
    fn from(e: service::Error) -> Self {
        Self::Service(e)
    }
}

impl From<CardError> for ApiError {
    fn from(e: CardError) -> Self {
        Self::Service(service::Error::Invalid(e))
    }
}

impl From<TextError> for ApiError {
    fn from(e: TextError) -> Self {
        Self::Text(e)
    }
}

impl From<crate::payment::PaymentError> for ApiError {
    fn from(e: crate::payment::PaymentError) -> Self {
        Self::Service(service::Error::Payment(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::TokenStatus;
    use crate::store::StoreError;

    #[test]
    fn every_error_maps_to_its_status_and_code() {
        let table: Vec<(ApiError, u16, &str)> = vec![
            (CardError::InvalidPan.into(), 422, "invalid_pan"),
            (CardError::InvalidExpiry.into(), 422, "invalid_expiry"),
            (CardError::InvalidToken.into(), 422, "invalid_token"),
            (CardError::InvalidDomain.into(), 422, "invalid_domain"),
            (CardError::PanAsToken.into(), 422, "pan_as_token"),
            (CardError::PanInText.into(), 422, "pan_in_text"),
            (TextError::PanInText.into(), 422, "pan_in_text"),
            (TextError::UnsafeText.into(), 422, "unsafe_text"),
            (
                ApiError::HeaderText(TextError::PanInText),
                400,
                "pan_in_text",
            ),
            (service::Error::Forbidden.into(), 403, "forbidden"),
            (service::Error::TokenNotFound.into(), 404, "token_not_found"),
            (
                service::Error::TokenSuspended.into(),
                409,
                "token_suspended",
            ),
            (
                service::Error::TokenStateConflict(TokenStatus::Deleted).into(),
                409,
                "token_state_conflict",
            ),
            (
                service::Error::TokenSpaceExhausted.into(),
                409,
                "token_space_exhausted",
            ),
            (service::Error::BatchTooLarge.into(), 413, "batch_too_large"),
            (
                service::Error::Store(StoreError::Closed).into(),
                503,
                "store_unavailable",
            ),
            (
                service::Error::Keys(KeyError::Integrity).into(),
                500,
                "record_integrity_failure",
            ),
            (
                service::Error::Keys(KeyError::NoActiveKey).into(),
                503,
                "keys_unavailable",
            ),
            (
                service::Error::Keys(KeyError::Random).into(),
                503,
                "keys_unavailable",
            ),
            (
                service::Error::UnknownRelyingParty.into(),
                422,
                "unknown_relying_party",
            ),
            (service::Error::InvalidUser.into(), 422, "invalid_user"),
            (
                ApiError::HttpLayer(StatusCode::BAD_REQUEST),
                400,
                "malformed_request",
            ),
            (
                ApiError::HttpLayer(StatusCode::REQUEST_TIMEOUT),
                408,
                "request_timeout",
            ),
            (
                ApiError::HttpLayer(StatusCode::URI_TOO_LONG),
                414,
                "uri_too_long",
            ),
            (
                ApiError::HttpLayer(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE),
                431,
                "headers_too_large",
            ),
            (
                ApiError::UnsupportedContentEncoding,
                415,
                "unsupported_content_encoding",
            ),
            (
                ApiError::ConnectionRefused { per_caller: true },
                429,
                "too_many_connections",
            ),
            (
                ApiError::ConnectionRefused { per_caller: false },
                503,
                "server_busy",
            ),
            (
                service::Error::ChallengeNotFound.into(),
                404,
                "challenge_not_found",
            ),
            (
                service::Error::AuthorizationNotFound.into(),
                404,
                "authorization_not_found",
            ),
            (service::Error::ChallengeUsed.into(), 409, "challenge_used"),
            (
                service::Error::ChallengeExpired.into(),
                410,
                "challenge_expired",
            ),
            (
                service::Error::CredentialIdMismatch.into(),
                422,
                "credential_id_mismatch",
            ),
            (
                service::Error::CredentialExists.into(),
                409,
                "credential_exists",
            ),
            (
                service::Error::Webauthn(crate::webauthn::WebauthnError::Attestation(
                    crate::webauthn::attestation::AttestationError::UnsupportedFormat,
                ))
                .into(),
                422,
                "unsupported_format",
            ),
            (
                service::Error::Payment(crate::payment::PaymentError::InvalidCurrency).into(),
                422,
                "invalid_currency",
            ),
            (
                service::Error::Payment(crate::payment::PaymentError::InvalidAmount).into(),
                422,
                "invalid_amount",
            ),
            (
                service::Error::Payment(crate::payment::PaymentError::InvalidPayee).into(),
                422,
                "invalid_payee",
            ),
            (
                crate::payment::PaymentError::InvalidIcon.into(),
                422,
                "invalid_icon",
            ),
            (
                service::Error::DeviceNotFound.into(),
                404,
                "device_not_found",
            ),
            (service::Error::DeviceRevoked.into(), 409, "device_revoked"),
            (
                service::Error::InvalidRevocationReason.into(),
                422,
                "invalid_revocation_reason",
            ),
            (
                service::Error::DeviceNotEnrolledForToken.into(),
                422,
                "device_not_enrolled_for_token",
            ),
            (
                service::Error::CredentialMismatch.into(),
                422,
                "credential_mismatch",
            ),
            (
                service::Error::CounterConflict.into(),
                409,
                "counter_conflict",
            ),
            (
                service::Error::PaymentRefused(vec!["p".into()]).into(),
                403,
                "forbidden",
            ),
            (
                service::Error::IdempotencyKeyReused.into(),
                422,
                "idempotency_key_reused",
            ),
            (
                service::Error::Signer(crate::jose::SignError::SignatureDoesNotVerify {
                    label: "x".into(),
                })
                .into(),
                503,
                "signer_unavailable",
            ),
            (ApiError::Malformed("x"), 400, "malformed_request"),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (ApiError::NotFound, 404, "not_found"),
            (
                ApiError::MethodNotAllowed { allow: "GET" },
                405,
                "method_not_allowed",
            ),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported_media_type",
            ),
            (ApiError::RequestTimeout, 408, "request_timeout"),
            (
                ApiError::Internal(crate::fault::Fault::new("test")),
                500,
                "internal_error",
            ),
            (service::Error::KeysChanged.into(), 503, "keys_changed"),
            (
                service::Error::UnsupportedKeyChange("x").into(),
                422,
                "unsupported_key_change",
            ),
            (service::Error::KeyNotFound.into(), 404, "key_not_found"),
            (
                service::Error::KeyStateConflict("retired".into()).into(),
                409,
                "key_state_conflict",
            ),
            (
                service::Error::KeyInUse {
                    records: 1,
                    until: None,
                }
                .into(),
                409,
                "key_in_use",
            ),
            (
                service::Error::KeyNotPublishedLongEnough {
                    not_before: "t".into(),
                }
                .into(),
                409,
                "key_not_published_long_enough",
            ),
            (
                service::Error::SameCustodian {
                    expires_at: "t".into(),
                }
                .into(),
                409,
                "same_custodian",
            ),
            (
                service::Error::Hsm(crate::keys::HsmError::WorkerGone).into(),
                503,
                "hsm_unavailable",
            ),
            (service::Error::MetadataStale.into(), 503, "mds_stale"),
            (
                service::Error::AndroidAppNotAllowed.into(),
                422,
                "android_app_not_allowed",
            ),
            (
                service::Error::AuditRecordNotFound.into(),
                404,
                "audit_record_not_found",
            ),
            (
                service::Error::InvalidTreeSize.into(),
                422,
                "invalid_tree_size",
            ),
        ];
        // Each refusal code of a Metadata Service status, with its status.
        let table: Vec<(ApiError, u16, &str)> = table
            .into_iter()
            .chain(
                [
                    "mds_revoked",
                    "mds_attestation_key_compromise",
                    "mds_user_verification_bypass",
                    "mds_user_key_remote_compromise",
                    "mds_user_key_physical_compromise",
                ]
                .map(|c| (service::Error::AuthenticatorStatus(c).into(), 422, c)),
            )
            .collect();
        // The table holds every service error: a new variant fails to compile below until
        // it is numbered, and then this test until the table has it.
        let covered: std::collections::BTreeSet<usize> = table
            .iter()
            .filter_map(|(e, _, _)| match e {
                ApiError::Service(e) => Some(service_variant(e)),
                _ => None,
            })
            .collect();
        let all: std::collections::BTreeSet<usize> = (0..SERVICE_VARIANTS).collect();
        assert_eq!(covered, all, "service errors missing from the table");
        let documented = documented_codes();
        let mut missing = Vec::new();
        for (err, status, code) in table {
            assert_eq!(err.status().as_u16(), status, "{err:?}");
            assert_eq!(err.code(), code, "{err:?}");
            // And the contract says so: docs/api.md's table (equal to the OpenAPI document's
            // `x-error-codes`, see `api::routes`), the verifier's codes under their one row.
            let row = match &err {
                ApiError::Service(service::Error::Webauthn(_)) => {
                    (status, "*the verifier's reason code*".to_owned())
                }
                _ => (status, code.to_owned()),
            };
            if !documented.contains(&row) {
                missing.push(row);
            }
        }
        assert!(
            missing.is_empty(),
            "not in docs/api.md's table: {missing:?}"
        );
    }

    const SERVICE_VARIANTS: usize = 41;

    /// The variant's number: exhaustive, so a new variant must be numbered here.
    fn service_variant(e: &service::Error) -> usize {
        use service::Error as S;
        match e {
            S::Invalid(_) => 0,
            S::Forbidden => 1,
            S::TokenNotFound => 2,
            S::TokenSuspended => 3,
            S::TokenStateConflict(_) => 4,
            S::TokenSpaceExhausted => 5,
            S::Store(_) => 6,
            S::KeysChanged => 7,
            S::Keys(_) => 8,
            S::UnknownRelyingParty => 9,
            S::InvalidUser => 10,
            S::ChallengeNotFound => 11,
            S::AuthorizationNotFound => 12,
            S::ChallengeUsed => 13,
            S::ChallengeExpired => 14,
            S::Webauthn(_) => 15,
            S::CredentialIdMismatch => 16,
            S::CredentialExists => 17,
            S::Payment(_) => 18,
            S::DeviceNotFound => 19,
            S::DeviceRevoked => 20,
            S::InvalidRevocationReason => 21,
            S::DeviceNotEnrolledForToken => 22,
            S::CredentialMismatch => 23,
            S::CounterConflict => 24,
            S::PaymentRefused(_) => 25,
            S::IdempotencyKeyReused => 26,
            S::Signer(_) => 27,
            S::UnsupportedKeyChange(_) => 28,
            S::KeyNotFound => 29,
            S::KeyStateConflict(_) => 30,
            S::KeyInUse { .. } => 31,
            S::KeyNotPublishedLongEnough { .. } => 32,
            S::SameCustodian { .. } => 33,
            S::Hsm(_) => 34,
            S::BatchTooLarge => 35,
            S::AuthenticatorStatus(_) => 36,
            S::MetadataStale => 37,
            S::AndroidAppNotAllowed => 38,
            S::AuditRecordNotFound => 39,
            S::InvalidTreeSize => 40,
        }
    }

    /// The (status, code) rows of docs/api.md's table of codes.
    fn documented_codes() -> std::collections::BTreeSet<(u16, String)> {
        include_str!("../../docs/api.md")
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.strip_prefix("| ")?.split(" | ").collect();
                let status = cells.first()?.parse().ok()?;
                Some((status, cells.get(1)?.trim_matches('`').to_owned()))
            })
            .collect()
    }

    #[test]
    fn an_internal_error_answers_generically_and_keeps_its_cause_for_the_log() {
        let bytes = vec![0xff_u8];
        let utf8 = std::str::from_utf8(&bytes).unwrap_err();
        let e = ApiError::Internal(crate::fault::Fault::caused_by("decoding", utf8));
        assert_eq!(e.to_string(), "internal error");
        let chain = crate::fault::Chain(&e).to_string();
        assert!(
            chain.starts_with("internal error: decoding: invalid utf-8"),
            "{chain}"
        );
    }

    #[test]
    fn a_payment_refusal_names_the_deciding_policies() {
        let e = ApiError::from(service::Error::PaymentRefused(vec![
            "payments-above-100-need-hardware-trust".to_owned(),
        ]));
        assert!(e
            .to_string()
            .contains("payments-above-100-need-hardware-trust"));
    }

    #[test]
    fn store_error_details_stay_out_of_the_message() {
        let e = ApiError::from(service::Error::Store(StoreError::unavailable(
            "/var/lib/payhsm/vault.db: disk I/O error".to_owned(),
        )));
        assert_eq!(e.to_string(), "the vault store is unavailable");
    }
}
