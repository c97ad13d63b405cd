//! Audit events and the records they become.

use serde::{Deserialize, Serialize};

/// What the policy decided about a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// A policy permitted it.
    Allow,
    /// No policy permitted it, or one forbade it.
    Deny,
}

impl Decision {
    /// The policy's answer as recorded: `Allow` when it permitted the request.
    pub fn of(allowed: bool) -> Self {
        if allowed {
            Self::Allow
        } else {
            Self::Deny
        }
    }
}

/// One security-relevant event, before it is placed in the chain.
///
/// Field order is the canonical order used for hashing: never reorder fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// RFC 3339 UTC time with milliseconds, set by the service.
    pub time: String,
    /// The request id the caller saw in `x-request-id`.
    pub request_id: String,
    /// The caller's identity from its certificate, or `payhsm` for the daemon itself.
    pub principal: String,
    /// The action name (`tokenize`, `detokenize`, `suspend`, `resume`, `delete`,
    /// `read_metadata`, `data_key_created`, ...).
    pub action: String,
    /// The tokenization domain, when the action has one.
    pub domain: Option<String>,
    /// The token, when one is known (never the PAN).
    pub token: Option<String>,
    /// The last four digits of the PAN, when known.
    pub last4: Option<String>,
    /// The policy decision.
    pub decision: Decision,
    /// The ids of the Cedar policies that decided.
    pub policy_ids: Vec<String>,
    /// The outcome as a stable code: `created`, `existing`, `ok`, or the error code returned.
    pub outcome: String,
    /// Free-form, non-secret detail (`credential=<b64url> aaguid=<hex> format=packed
    /// trust=self`). Absent from records that have none, so records written before this field
    /// existed hash and verify exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An event placed in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: AuditEvent,
    /// Hex SHA-256 of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this record.
    pub hash: String,
}

#[cfg(test)]
impl AuditEvent {
    /// A tokenization event numbered `n`, for unit tests.
    pub(crate) fn sample(n: u64) -> Self {
        Self {
            time: "2026-01-01T00:00:00.000Z".into(),
            request_id: format!("r{n}"),
            principal: "gw".into(),
            action: "tokenize".into(),
            domain: Some("shop".into()),
            token: None,
            last4: None,
            decision: Decision::Allow,
            policy_ids: vec!["p1".into()],
            outcome: "created".into(),
            detail: None,
        }
    }
}
