//! Audit events as the daemon writes them, and records as the log holds them.
//!
//! An [`AuditEvent`] states the policy's part only through a [`PolicyVerdict`]: the engine's
//! answer to the request ([`PolicyDecision`], which only the engine makes), or that the policy
//! was not asked. No code writes `allow` or `deny` itself. What the log holds and verification
//! reads back is a [`LoggedEvent`], plain data.

use crate::policy::PolicyDecision;
use serde::{Deserialize, Serialize};

/// What a record says the policy decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// The engine permitted the request.
    Allow,
    /// The engine did not permit it: no policy permitted it, or one forbade it.
    Deny,
    /// The policy was not asked: the request failed before it could be (an unknown or used
    /// challenge, an assertion that did not verify), or the event is the daemon's or a key
    /// ceremony's own, which no Cedar policy governs. Written `none`.
    #[serde(rename = "none")]
    NotAsked,
}

/// The policy's part in an event being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PolicyVerdict {
    /// The engine's answer to this request.
    Decided(PolicyDecision),
    /// The policy was not asked (see [`Decision::NotAsked`]).
    NotAsked,
}

impl PolicyVerdict {
    /// What the record says: `allow` or `deny` as the engine answered, `none` if not asked.
    pub fn decision(&self) -> Decision {
        match self {
            Self::Decided(d) if d.allowed() => Decision::Allow,
            Self::Decided(_) => Decision::Deny,
            Self::NotAsked => Decision::NotAsked,
        }
    }

    /// The ids of the policies that decided (none if the policy was not asked).
    pub fn policy_ids(&self) -> &[String] {
        match self {
            Self::Decided(d) => d.policy_ids(),
            Self::NotAsked => &[],
        }
    }
}

/// One security-relevant event, before it is placed in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    /// RFC 3339 UTC time with milliseconds, set by the service.
    pub time: String,
    /// The request id the caller saw in `x-request-id`.
    pub request_id: String,
    /// The caller's identity from its certificate, `payhsmd` for the daemon's own events, the
    /// custodians for a ceremony's.
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
    /// The policy's part: set when the event is made, replaced only by a later engine answer.
    verdict: PolicyVerdict,
    /// The outcome as a stable code: `created`, `existing`, `ok`, or the error code returned.
    pub outcome: String,
    /// Free-form, non-secret detail (`credential=<b64url> aaguid=<hex> format=packed
    /// trust=self`).
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event of `action` by `principal` in request `request_id` at `time`, with the
    /// policy's part; the outcome is empty and the other fields absent until set.
    pub fn new(
        time: String,
        request_id: String,
        principal: String,
        action: String,
        verdict: PolicyVerdict,
    ) -> Self {
        Self {
            time,
            request_id,
            principal,
            action,
            domain: None,
            token: None,
            last4: None,
            verdict,
            outcome: String::new(),
            detail: None,
        }
    }

    /// The policy's part.
    pub fn verdict(&self) -> &PolicyVerdict {
        &self.verdict
    }

    /// Records the engine's answer to a question this request needed after the event was
    /// made (a payment is decided only once its assertion has verified; an enrolment bound to
    /// a token also asks whether the caller may see the token): the record states that answer.
    pub fn decided(&mut self, decision: PolicyDecision) {
        self.verdict = PolicyVerdict::Decided(decision);
    }
}

/// An event as the log holds it: what is hashed, stored, exported and verified.
///
/// Field order is the canonical order used for hashing: never reorder fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedEvent {
    /// RFC 3339 UTC time with milliseconds.
    pub time: String,
    /// The request id the caller saw in `x-request-id`.
    pub request_id: String,
    /// The caller's identity from its certificate, or the daemon's or a ceremony's own.
    pub principal: String,
    /// The action name.
    pub action: String,
    /// The tokenization domain, when the action has one.
    pub domain: Option<String>,
    /// The token, when one is known (never the PAN).
    pub token: Option<String>,
    /// The last four digits of the PAN, when known.
    pub last4: Option<String>,
    /// The policy decision: `allow`, `deny`, or `none` when the policy was not asked.
    pub decision: Decision,
    /// The ids of the Cedar policies that decided.
    pub policy_ids: Vec<String>,
    /// The outcome as a stable code: `created`, `existing`, `ok`, or the error code returned.
    pub outcome: String,
    /// Free-form, non-secret detail. Absent from records that have none, so records written
    /// before this field existed hash and verify exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl From<AuditEvent> for LoggedEvent {
    fn from(e: AuditEvent) -> Self {
        Self {
            decision: e.verdict.decision(),
            policy_ids: e.verdict.policy_ids().to_vec(),
            time: e.time,
            request_id: e.request_id,
            principal: e.principal,
            action: e.action,
            domain: e.domain,
            token: e.token,
            last4: e.last4,
            outcome: e.outcome,
            detail: e.detail,
        }
    }
}

/// An event placed in the hash chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Position in the log, from 1, without gaps.
    pub seq: u64,
    /// The event.
    #[serde(flatten)]
    pub event: LoggedEvent,
    /// Hex SHA-256 of the previous record (64 zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this record.
    pub hash: String,
}

/// A record's place in the log, handed to the caller whose request it records (a detokenize
/// answer carries one): with it the caller can later ask for the record's inclusion proof under
/// any later tree head, and check that the record proven is the one it was given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// The record's sequence number.
    pub seq: u64,
    /// The record's chain hash (hex), as its `hash` field holds it.
    pub record_hash: String,
}

impl From<&AuditRecord> for Receipt {
    fn from(r: &AuditRecord) -> Self {
        Self {
            seq: r.seq,
            record_hash: r.hash.clone(),
        }
    }
}

#[cfg(test)]
impl LoggedEvent {
    /// A tokenization record numbered `n`, for unit tests (and fuzz seeds): allowed, denied or
    /// not asked as `n` goes on.
    pub(crate) fn sample(n: u64) -> Self {
        let (decision, policy_ids) = match n % 3 {
            0 => (Decision::NotAsked, vec![]),
            1 => (Decision::Allow, vec!["p1".into()]),
            _ => (Decision::Deny, vec!["f1".into()]),
        };
        Self {
            time: "2026-01-01T00:00:00.000Z".into(),
            request_id: format!("r{n}"),
            principal: "gw".into(),
            action: "tokenize".into(),
            domain: Some("shop".into()),
            token: None,
            last4: None,
            decision,
            policy_ids,
            outcome: "created".into(),
            detail: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::card::Domain;
    use crate::policy::{Action, PolicyEngine, PolicyRequest, Principal, Resource};

    fn engine() -> PolicyEngine {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
        PolicyEngine::load(&dir).unwrap()
    }

    fn event(verdict: PolicyVerdict) -> AuditEvent {
        AuditEvent::new(
            "2026-01-01T00:00:00.000Z".into(),
            "r1".into(),
            "spiffe://payhsm.dev/gateway".into(),
            "detokenize".into(),
            verdict,
        )
    }

    #[test]
    fn a_record_states_the_engines_answer_or_that_it_was_not_asked() {
        let engine = engine();
        let shop = Domain::parse("shop").unwrap();
        for (who, want) in [
            ("spiffe://payhsm.dev/vault-reader", Decision::Allow),
            ("spiffe://payhsm.dev/gateway", Decision::Deny),
            ("spiffe://payhsm.dev/stranger", Decision::Deny),
        ] {
            let principal = Principal::new(who);
            let request =
                PolicyRequest::new(&principal, Action::Detokenize, Resource::Domain(&shop));
            let answer = engine.decide(&request);
            let ids = answer.policy_ids().to_vec();
            let logged = LoggedEvent::from(event(PolicyVerdict::Decided(answer)));
            assert_eq!((logged.decision, logged.policy_ids), (want, ids), "{who}");
        }
        let logged = LoggedEvent::from(event(PolicyVerdict::NotAsked));
        assert_eq!(logged.decision, Decision::NotAsked);
        assert!(logged.policy_ids.is_empty());
        let json = serde_json::to_value(&logged).unwrap();
        assert_eq!(json["decision"], "none");
    }

    #[test]
    fn a_later_answer_replaces_the_earlier_one() {
        let engine = engine();
        let gateway = Principal::new("spiffe://payhsm.dev/gateway");
        let shop = Domain::parse("shop").unwrap();
        let allow = engine.decide(&PolicyRequest::new(
            &gateway,
            Action::Tokenize,
            Resource::Domain(&shop),
        ));
        let deny = engine.decide(&PolicyRequest::new(
            &gateway,
            Action::Detokenize,
            Resource::Domain(&shop),
        ));
        let mut e = event(PolicyVerdict::NotAsked);
        e.decided(allow);
        assert_eq!(e.verdict().decision(), Decision::Allow);
        e.decided(deny.clone());
        assert_eq!(e.verdict(), &PolicyVerdict::Decided(deny));
    }
}
