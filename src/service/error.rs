//! The service boundary's error. The API maps it to HTTP in exactly one place
//! (`api::error`).

use crate::card::{CardError, TokenStatus};
use crate::jose::SignError;
use crate::keys::KeyError;
use crate::payment::PaymentError;
use crate::store::StoreError;
use crate::webauthn::WebauthnError;

/// Why a use case did not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An input value is invalid (422).
    Invalid(CardError),
    /// The policy does not allow this caller to do this (403); the refusal was audited.
    Forbidden,
    /// No live token with that value in that domain (404).
    TokenNotFound,
    /// The token is suspended and does not detokenize (409).
    TokenSuspended,
    /// The lifecycle change does not apply to the token's current state (409).
    TokenStateConflict(TokenStatus),
    /// No free token could be drawn for this PAN in this domain (409).
    TokenSpaceExhausted,
    /// The store failed; nothing was done (503).
    Store(StoreError),
    /// The stored keys changed during the request twice, or could not be reloaded; nothing
    /// was done (503, retry).
    KeysChanged,
    /// A data key operation failed.
    Keys(KeyError),
    /// The relying party is not configured (422).
    UnknownRelyingParty,
    /// The user name is empty or longer than 64 characters (422).
    InvalidUser,
    /// No challenge with that id for this purpose (404).
    ChallengeNotFound,
    /// No authorization with that id (404).
    AuthorizationNotFound,
    /// The challenge was used before, by a successful or a failed attempt (409).
    ChallengeUsed,
    /// The challenge expired unused (410).
    ChallengeExpired,
    /// The WebAuthn response failed verification (422, code: the verifier's reason code).
    Webauthn(WebauthnError),
    /// The credential id in the request is not the one the authenticator attested (422).
    CredentialIdMismatch,
    /// A device with this credential id is already enrolled (409).
    CredentialExists,
    /// An amount, currency or payee is invalid (422, code: the payment error's).
    Payment(PaymentError),
    /// No device with that id (404).
    DeviceNotFound,
    /// The device is revoked: it is challenged for nothing and authorizes nothing, and a
    /// revocation is final (409).
    DeviceRevoked,
    /// The revocation reason is not one of the documented set (422).
    InvalidRevocationReason,
    /// The device is not bound to the token and domain of the payment (422).
    DeviceNotEnrolledForToken,
    /// The credential is unknown or is not the one of the challenge's device (422).
    CredentialMismatch,
    /// The device's signature counter changed while the assertion was verified (409).
    CounterConflict,
    /// The policy refuses the payment (403, code `forbidden`); the ids of the policies that
    /// decided (the forbids, or none for a deny by default). No authorization is signed.
    PaymentRefused(Vec<String>),
    /// The idempotency key was used before for a different request (422).
    IdempotencyKeyReused,
    /// The authorization could not be signed (503).
    Signer(SignError),
    /// The key change is not one payhsm makes (422).
    UnsupportedKeyChange(&'static str),
    /// No key of that purpose and version (404).
    KeyNotFound,
    /// The key change does not apply to the key's current state (409).
    KeyStateConflict(String),
    /// Records still use the key: rewrap them, or wait until `until` (409).
    KeyInUse {
        /// How many.
        records: u64,
        /// When the last of them stops needing the key, when known.
        until: Option<String>,
    },
    /// The signing key has not been published long enough to sign (409).
    KeyNotPublishedLongEnough {
        /// RFC 3339: the earliest activation.
        not_before: String,
    },
    /// This custodian already approved this change: a second, distinct custodian must (409).
    SameCustodian {
        /// When the pending approval lapses.
        expires_at: String,
    },
    /// The HSM failed during a key change; nothing was recorded (503).
    Hsm(crate::keys::HsmError),
    /// A batch holds more than [`MAX_TOKEN_BATCH`](crate::service::MAX_TOKEN_BATCH) items;
    /// none was looked at (413).
    BatchTooLarge,
    /// The FIDO Metadata Service's latest status report for the authenticator model forbids
    /// it (compromise, UV bypass, revoked): the code names the status (422).
    AuthenticatorStatus(&'static str),
    /// The Metadata Service BLOB in force is past its `nextUpdate` and stale BLOBs are
    /// refused (503).
    MetadataStale,
    /// The relying party lists the Android apps that may enrol, and the key attestation names
    /// none of them (422).
    AndroidAppNotAllowed,
    /// No audit record with that sequence number (404).
    AuditRecordNotFound,
    /// The tree size is not one the proof can be made for: past the log, before the record,
    /// or a consistency proof's `from` is 0 or past its `to` (422).
    InvalidTreeSize,
}

impl Error {
    /// The stable snake_case code: the API's `error.code` and the audit outcome. The HTTP
    /// status is chosen in `api::error`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(c) => c.code(),
            Self::Forbidden => "forbidden",
            Self::TokenNotFound => "token_not_found",
            Self::TokenSuspended => "token_suspended",
            Self::TokenStateConflict(_) => "token_state_conflict",
            Self::TokenSpaceExhausted => "token_space_exhausted",
            Self::Store(_) => "store_unavailable",
            Self::KeysChanged => "keys_changed",
            Self::Keys(KeyError::Integrity) => "record_integrity_failure",
            Self::Keys(_) => "keys_unavailable",
            Self::UnknownRelyingParty => "unknown_relying_party",
            Self::InvalidUser => "invalid_user",
            Self::ChallengeNotFound => "challenge_not_found",
            Self::AuthorizationNotFound => "authorization_not_found",
            Self::ChallengeUsed => "challenge_used",
            Self::ChallengeExpired => "challenge_expired",
            Self::Webauthn(e) => e.code(),
            Self::CredentialIdMismatch => "credential_id_mismatch",
            Self::CredentialExists => "credential_exists",
            Self::Payment(e) => e.code(),
            Self::DeviceNotFound => "device_not_found",
            Self::DeviceRevoked => "device_revoked",
            Self::InvalidRevocationReason => "invalid_revocation_reason",
            Self::DeviceNotEnrolledForToken => "device_not_enrolled_for_token",
            Self::CredentialMismatch => "credential_mismatch",
            Self::CounterConflict => "counter_conflict",
            Self::PaymentRefused(_) => "forbidden",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::Signer(_) => "signer_unavailable",
            Self::UnsupportedKeyChange(_) => "unsupported_key_change",
            Self::KeyNotFound => "key_not_found",
            Self::KeyStateConflict(_) => "key_state_conflict",
            Self::KeyInUse { .. } => "key_in_use",
            Self::KeyNotPublishedLongEnough { .. } => "key_not_published_long_enough",
            Self::SameCustodian { .. } => "same_custodian",
            Self::Hsm(_) => "hsm_unavailable",
            Self::BatchTooLarge => "batch_too_large",
            Self::AuthenticatorStatus(code) => code,
            Self::MetadataStale => "mds_stale",
            Self::AndroidAppNotAllowed => "android_app_not_allowed",
            Self::AuditRecordNotFound => "audit_record_not_found",
            Self::InvalidTreeSize => "invalid_tree_size",
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(e) => e.fmt(f),
            Self::Forbidden => f.write_str("the policy does not allow this request"),
            Self::TokenNotFound => f.write_str("no such token in this domain"),
            Self::TokenSuspended => f.write_str("the token is suspended"),
            Self::TokenStateConflict(s) => {
                write!(
                    f,
                    "the change does not apply to a token that is {}",
                    s.as_str()
                )
            }
            Self::TokenSpaceExhausted => {
                f.write_str("no free token could be drawn for this card in this domain")
            }
            Self::Store(_) => f.write_str("the vault store is unavailable"),
            Self::KeysChanged => {
                f.write_str("the data keys changed during the request; nothing was done, retry")
            }
            Self::Keys(KeyError::Integrity) => {
                f.write_str("the stored record failed its integrity check")
            }
            Self::Keys(_) => f.write_str("the data keys are unavailable"),
            Self::UnknownRelyingParty => f.write_str("the relying party is not configured"),
            Self::InvalidUser => {
                f.write_str("the user name must be 1 to 64 characters without control characters")
            }
            Self::ChallengeNotFound => f.write_str("no such challenge"),
            Self::AuthorizationNotFound => f.write_str("no such authorization"),
            Self::ChallengeUsed => f.write_str("the challenge was already used"),
            Self::ChallengeExpired => f.write_str("the challenge has expired"),
            Self::Webauthn(e) => write!(f, "the WebAuthn response was rejected: {e}"),
            Self::CredentialIdMismatch => {
                f.write_str("the credential id is not the one the authenticator attested")
            }
            Self::CredentialExists => f.write_str("this credential is already enrolled"),
            Self::Payment(e) => e.fmt(f),
            Self::DeviceNotFound => f.write_str("no such device"),
            Self::DeviceRevoked => f.write_str("the device is revoked"),
            Self::InvalidRevocationReason => f.write_str(
                "the reason is not one of lost, stolen, compromised, user_request, replaced",
            ),
            Self::DeviceNotEnrolledForToken => {
                f.write_str("the device is not enrolled for this token in this domain")
            }
            Self::CredentialMismatch => {
                f.write_str("the credential is not the one of the challenge's device")
            }
            Self::CounterConflict => {
                f.write_str("the device's signature counter changed during verification")
            }
            Self::PaymentRefused(ids) if ids.is_empty() => {
                f.write_str("the policy refuses this payment: no policy permits it")
            }
            Self::PaymentRefused(ids) => {
                write!(f, "the policy refuses this payment: {}", ids.join(", "))
            }
            Self::IdempotencyKeyReused => {
                f.write_str("the idempotency key was used before for a different request")
            }
            Self::Signer(_) => f.write_str("the authorization signer is unavailable"),
            Self::UnsupportedKeyChange(m) => f.write_str(m),
            Self::KeyNotFound => f.write_str("no such key version"),
            Self::KeyStateConflict(state) => {
                write!(f, "the change does not apply to a key that is {state}")
            }
            Self::KeyInUse {
                records,
                until: None,
            } => write!(
                f,
                "{records} records still use the key: run `payhsm keys rewrap` first"
            ),
            Self::KeyInUse {
                records,
                until: Some(t),
            } => write!(
                f,
                "{records} unexpired authorizations were signed by the key; retry after {t}"
            ),
            Self::KeyNotPublishedLongEnough { not_before } => write!(
                f,
                "the key must be published longer before it signs; activate it after {not_before}"
            ),
            Self::SameCustodian { expires_at } => write!(
                f,
                "you already approved this change; a second custodian must approve it before \
                 {expires_at}"
            ),
            Self::Hsm(_) => f.write_str("the HSM is unavailable; nothing was changed"),
            Self::BatchTooLarge => write!(
                f,
                "a batch holds at most {} items",
                crate::service::MAX_TOKEN_BATCH
            ),
            Self::AuthenticatorStatus(code) => write!(
                f,
                "the FIDO Metadata Service's latest status for this authenticator model \
                 forbids it ({code})"
            ),
            Self::AndroidAppNotAllowed => f.write_str(
                "the Android app the key attestation names is not one this relying party allows",
            ),
            Self::AuditRecordNotFound => f.write_str("no audit record with that sequence number"),
            Self::InvalidTreeSize => f.write_str(
                "no proof for these tree sizes: a tree size must cover the record, not pass \
                 the log, and a consistency proof goes from 1 <= from <= to",
            ),
            Self::MetadataStale => f.write_str(
                "the FIDO Metadata Service BLOB is past its nextUpdate; enrolments and \
                 payments that need it are refused until a fresh one is loaded",
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            Self::Keys(e) => Some(e),
            Self::Signer(e) => Some(e),
            Self::Hsm(e) => Some(e),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Self::Keys(e)
    }
}

impl From<CardError> for Error {
    fn from(e: CardError) -> Self {
        Self::Invalid(e)
    }
}

impl From<PaymentError> for Error {
    fn from(e: PaymentError) -> Self {
        Self::Payment(e)
    }
}
