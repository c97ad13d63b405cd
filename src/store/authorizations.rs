//! Payment authorization records: challenges bound to one transaction and signed
//! authorizations.

use super::{IdempotencyRecord, Idempotent, StoreFuture};
use crate::audit::AuditEvent;
use crate::card::{Domain, Token, TokenStatus};
use crate::payment::SpcDisplay;

/// A challenge issued for one payment, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationChallengeRecord {
    /// The challenge id the caller quotes back.
    pub id: String,
    /// The random challenge bytes.
    pub challenge: Vec<u8>,
    /// Who asked for it; only they may answer it.
    pub principal: String,
    /// The token paid with.
    pub token: Token,
    /// Its domain.
    pub domain: Domain,
    /// The device that must sign.
    pub device_id: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payee name.
    pub payee: String,
    /// SPC display data, when the payment runs as `payment.get`.
    pub spc: Option<SpcDisplay>,
    /// RFC 3339 UTC with milliseconds.
    pub created_at: String,
    /// RFC 3339 UTC with milliseconds; refused from this instant on.
    pub expires_at: String,
    /// When it was consumed; `None` while unused.
    pub used_at: Option<String>,
    /// The recipient the caller named (signed as the authorization's `aud`), if any.
    pub audience: Option<String>,
}

/// A signed authorization, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRecord {
    /// payhsm's id for it (also a JWS claim).
    pub authorization_id: String,
    /// The challenge it answered (unique: one authorization per challenge).
    pub challenge_id: String,
    /// The token paid with.
    pub token: Token,
    /// Its domain.
    pub domain: Domain,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// Payee name.
    pub payee: String,
    /// The device that signed the assertion.
    pub device_id: String,
    /// Its credential id.
    pub credential_id: Vec<u8>,
    /// `approved`.
    pub decision: String,
    /// The policies that decided.
    pub policy_ids: Vec<String>,
    /// The signing key's `kid`.
    pub kid: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// The compact JWS.
    pub jws: String,
}

/// Why an authorization challenge could not be consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeState {
    /// No such challenge.
    NotFound,
    /// Consumed before.
    AlreadyUsed,
    /// Expired unused.
    Expired,
}

/// A signature counter compare-and-set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CounterUpdate {
    /// The device.
    pub device_id: String,
    /// The counter read before verification.
    pub expected_old: u32,
    /// The counter of the verified assertion.
    pub new: u32,
}

/// The end of one authorization attempt, committed as one transaction: consume the challenge,
/// move the counter, store the authorization and the idempotency key, write the audit record.
#[derive(Debug)]
pub struct AuthorizationCommit {
    /// The challenge answered.
    pub challenge_id: String,
    /// Now (RFC 3339 UTC with milliseconds), for the expiry check.
    pub now: String,
    /// For a verified assertion: the counter to move (approved or refused by policy).
    pub counter: Option<CounterUpdate>,
    /// For an approval: the signed authorization.
    pub authorization: Option<AuthorizationRecord>,
    /// The outcome's audit record.
    pub audit: AuditEvent,
    /// For an approval with an `Idempotency-Key`: the key and the answer.
    pub idempotency: Option<IdempotencyRecord>,
}

/// What [`AuthorizationStore::commit_authorization`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Everything was written.
    Committed,
    /// The challenge could not be consumed: nothing was written, not even the audit record.
    Challenge(ChallengeState),
    /// The challenge was consumed but the counter moved in between: nothing else was written
    /// (the caller audits the refusal).
    CounterConflict,
    /// An approval whose token is no longer active (suspended, or deleted: `Deleted` also
    /// when its row is gone), read in the commit's transaction: nothing was written, not even
    /// the consumption (the caller ends the attempt as a refusal).
    TokenNotActive(TokenStatus),
    /// An approval whose device is revoked (or gone), read in the commit's transaction:
    /// nothing was written, not even the consumption (the caller ends the attempt as a
    /// refusal).
    DeviceRevoked,
}

/// What [`AuthorizationStore::create_authorization_challenge`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeIssue {
    /// The challenge, its idempotency key and its audit record were written.
    Issued,
    /// The payment's token is no longer active (suspended, or deleted: `Deleted` also when its
    /// row is gone), read in the transaction: nothing was written.
    TokenNotActive(TokenStatus),
    /// The device that must sign is revoked (or gone), read in the transaction: nothing was
    /// written.
    DeviceRevoked,
}

/// Payment challenges and the authorizations that end them.
pub trait AuthorizationStore: Send + Sync {
    /// Stores a payment challenge and writes `audit` in the same transaction. With an
    /// idempotency record, first looks its key up: the same request gets the stored answer
    /// and writes nothing, another request with the key gets [`Idempotent::KeyReused`];
    /// otherwise the record is stored with the challenge. The token's and the device's states
    /// are read in the same transaction: unless both are active, nothing is written
    /// ([`ChallengeIssue::TokenNotActive`], [`ChallengeIssue::DeviceRevoked`]).
    fn create_authorization_challenge(
        &self,
        challenge: AuthorizationChallengeRecord,
        audit: AuditEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreFuture<'_, Idempotent<ChallengeIssue>>;

    /// Reads a payment challenge by id (used or not) without writing.
    fn authorization_challenge(
        &self,
        id: &str,
    ) -> StoreFuture<'_, Option<AuthorizationChallengeRecord>>;

    /// Reads a signed authorization by id, exactly as it was committed (its JWS as issued).
    fn authorization(&self, id: &str) -> StoreFuture<'_, Option<AuthorizationRecord>>;

    /// Ends an authorization attempt in one transaction (see [`AuthorizationCommit`]). The
    /// idempotency key is looked up first, as for [`AuthorizationStore::create_authorization_challenge`].
    /// The challenge is consumed by a conditional update, so of concurrent attempts exactly
    /// one consumes it; the counter moves by compare-and-set. An approval is committed only if
    /// its token and its device are still active, read in the same transaction
    /// ([`CommitOutcome::TokenNotActive`], [`CommitOutcome::DeviceRevoked`] otherwise, with
    /// nothing written); it sets the device's `last_used_at`.
    fn commit_authorization(
        &self,
        commit: AuthorizationCommit,
    ) -> StoreFuture<'_, Idempotent<CommitOutcome>>;
}

#[derive(serde::Serialize, serde::Deserialize)]
struct SpcExtra {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    instrument_details: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entity_logos: Vec<crate::payment::SpcLogo>,
}

/// The SPC members added in 2025 (instrument details, payment entities' logos), stored as one
/// JSON column, `spc_extra`: `None` when the challenge asked for neither.
pub(crate) fn spc_extra_column(spc: &SpcDisplay) -> Option<String> {
    if spc.instrument_details.is_none() && spc.entity_logos.is_empty() {
        return None;
    }
    serde_json::to_string(&SpcExtra {
        instrument_details: spc.instrument_details.clone(),
        entity_logos: spc.entity_logos.clone(),
    })
    .ok()
}

/// A challenge's SPC display data from its columns: the three required base members or none
/// (the payee origin is optional), and the extra ones only with them.
pub(crate) fn spc_from_columns(
    base: [Option<String>; 4],
    extra: Option<&str>,
) -> Result<Option<SpcDisplay>, &'static str> {
    match (base, extra) {
        ([None, None, None, None], None) => Ok(None),
        (
            [payee_origin, Some(top_origin), Some(instrument_display_name), Some(instrument_icon)],
            extra,
        ) => {
            let extra: SpcExtra = match extra {
                None => SpcExtra {
                    instrument_details: None,
                    entity_logos: Vec::new(),
                },
                Some(json) => serde_json::from_str(json).map_err(|_| "spc_extra")?,
            };
            Ok(Some(SpcDisplay {
                payee_origin,
                top_origin,
                instrument_display_name,
                instrument_icon,
                instrument_details: extra.instrument_details,
                entity_logos: extra.entity_logos,
            }))
        }
        _ => Err("spc"),
    }
}
