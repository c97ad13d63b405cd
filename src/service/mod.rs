//! The use cases. Each public function is one thing a caller can ask for: it checks the policy,
//! does the work through the key ring and the store, and writes the audit record in the same
//! store transaction as the change. Handlers above only decode, call one function and encode.

mod audit;
mod authorizations;
mod devices;
mod error;
mod idempotency;
mod ids;
mod keys;
mod metadata;
mod metrics;
mod report;
mod tokens;
mod tree;

pub use crate::audit::proof::SignedTreeHead;
pub(crate) use audit::signed_checkpoint;
pub use audit::{AuditPage, AuditReader, MAX_AUDIT_PAGE};
pub use authorizations::{
    Authorizations, AuthorizeInput, IssuedPaymentChallenge, PaymentChallengeInput,
    SignedAuthorization, SignedPayment,
};
pub use devices::{Devices, EnrolInput, EnrolledDevice, IssuedChallenge};
pub use error::Error;
pub use idempotency::IdempotencyKey;
pub use ids::uuid_text;
pub(crate) use keys::{key_listing, Inventory};
pub use keys::{
    ChangeOutcome, KeyAdmin, KeyChange, KeyChangeKind, KeyEntry, KeyListing, KeySettings, KeySync,
    RewrapProgress, MAX_REWRAP_BATCH,
};
pub use metadata::{
    AndroidRevocations, InstallError, InstallOutcome, Installed, LookupError, Metadata, ModelStatus,
};
pub use metrics::MetricsAccess;
pub use report::system_facts;
pub(crate) use report::{inventory_keys, signed_report, AuditSigner};
pub use tokens::{
    BatchCard, Detokenized, TokenView, TokenizeInput, Tokenized, Vault, MAX_TOKEN_BATCH,
};
pub use tree::{ConsistencyProof, InclusionProof, TREE_HEAD_ACTION};

use crate::audit::{AuditEvent, PolicyVerdict};
use crate::policy::{Action, PolicyContext, PolicyEngine, PolicyRequest, Principal, Resource};
use crate::store::Store;

/// Who is asking, and under which request id (echoed to the caller and put in the audit log).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The identity from the client certificate.
    pub principal: Principal,
    /// The request id.
    pub request_id: String,
}

impl Caller {
    /// The start of the audit event of this caller's request: who, which request, what, and
    /// the policy's part (the engine's answer, or not asked); the use case fills in the rest.
    pub(crate) fn audit_event(&self, action: &str, verdict: PolicyVerdict) -> AuditEvent {
        AuditEvent::new(
            crate::clock::now_rfc3339(),
            self.request_id.clone(),
            self.principal.as_str().to_owned(),
            action.to_owned(),
            verdict,
        )
    }
}

/// Asks the policy about `action` on `resource` (no context) for `caller`, and starts the audit
/// event of the request with the engine's answer, which `fill` completes (domain, token,
/// last 4). A refusal is audited with outcome `forbidden` (and fails if it cannot be) before
/// [`Error::Forbidden`] is returned; an allowance returns the event for the use case to finish
/// with its outcome (whatever that is, the record states the engine's `allow`).
pub(crate) async fn check_policy(
    store: &dyn Store,
    policy: &PolicyEngine,
    caller: &Caller,
    action: Action,
    resource: Resource<'_>,
    fill: impl FnOnce(&mut AuditEvent),
) -> Result<AuditEvent, Error> {
    check_policy_in(
        store,
        policy,
        caller,
        (action, resource, PolicyContext::Empty),
        fill,
    )
    .await
}

/// [`check_policy`] with a context (the actions whose schema gives them one).
pub(crate) async fn check_policy_in(
    store: &dyn Store,
    policy: &PolicyEngine,
    caller: &Caller,
    (action, resource, context): (Action, Resource<'_>, PolicyContext<'_>),
    fill: impl FnOnce(&mut AuditEvent),
) -> Result<AuditEvent, Error> {
    let decision = policy.decide(&PolicyRequest {
        principal: &caller.principal,
        action,
        resource,
        context,
    });
    let allowed = decision.allowed();
    let mut event = caller.audit_event(action.as_str(), PolicyVerdict::Decided(decision));
    fill(&mut event);
    if allowed {
        return Ok(event);
    }
    event.outcome = "forbidden".to_owned();
    store.record(event).await?;
    Err(Error::Forbidden)
}
