//! Reading the audit log over the API (`read_audit` on `AuditLog::"payhsm"`): a page of
//! records in order, and a checkpoint over the log's current head signed by the HSM audit
//! key, so an auditor can verify what it read without shell access to any host.
//!
//! Every read is audited (allowed or not): who read the log is itself evidence, and auditors
//! read rarely. The read's own record is written first, so the checkpoint covers it.

use super::{check_policy, Caller, Error};
use crate::audit::report::{Period, SignedReport, SystemFacts};
use crate::audit::{to_hex, AuditEvent, AuditRecord, Checkpoint, GENESIS};
use crate::jose::jws::ES256;
use crate::jose::{Jwk, SignError};
use crate::keys::{EcPublicKey, Hsm};
use crate::policy::{Action, PolicyEngine, Resource};
use crate::store::Store;
use base64::Engine as _;
use std::sync::Arc;

/// The most records one page holds.
pub const MAX_AUDIT_PAGE: usize = 1000;

/// One page of the log and the latest signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    /// Records with `seq > after`, in order, at most the asked limit.
    pub records: Vec<AuditRecord>,
    /// The whole log's head when the page was read (it may be past the page's last record),
    /// signed by the audit key.
    pub checkpoint: Checkpoint,
}

/// The `read_audit` use case.
#[derive(Clone)]
pub struct AuditReader {
    pub(super) store: Arc<dyn Store>,
    pub(super) policy: Arc<PolicyEngine>,
    hsm: Hsm,
    key_label: String,
    /// base64url of the audit key's public point, read once at start.
    public_key: String,
    /// The audit key as a JWK (`kid` its RFC 7638 thumbprint): the one key of the audit key
    /// set, kept apart from the authorization JWKS so no audit signature can pass for an
    /// authorization.
    jwk: Jwk,
    /// The Merkle tree over the log as read so far (see `service::tree`).
    pub(super) tree: Arc<tokio::sync::Mutex<super::tree::TreeState>>,
    /// What the evidence report states of the configuration (TLS, token format).
    facts: SystemFacts,
}

impl AuditReader {
    /// Reads from `store`, signs checkpoints with the HSM key `key_label` (whose public point
    /// is `public_key`, 65 bytes uncompressed); evidence reports state `facts`.
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicyEngine>,
        hsm: Hsm,
        (key_label, public_key): (String, &EcPublicKey),
        facts: SystemFacts,
    ) -> Self {
        Self {
            store,
            policy,
            hsm,
            key_label,
            public_key: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public_key.0),
            jwk: Jwk::from_public_key(*public_key),
            tree: Arc::default(),
            facts,
        }
    }

    /// The audit key set (`GET /v1/audit/jwks`): the audit key alone.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": [self.jwk.to_json()] })
    }

    /// `claims` as a compact JWS (ES256) signed in the HSM by the audit key, with `kid` its
    /// thumbprint: tree heads and evidence reports.
    pub async fn sign_jws(&self, claims: &serde_json::Value) -> Result<String, Error> {
        sign_jws_with(&self.hsm, &self.key_label, &self.jwk, claims).await
    }

    /// Checks `read_audit` for the caller ([`Error::Forbidden`], audited, if refused) and
    /// records the read with `detail` before anything is read, so what is read covers it.
    pub(super) async fn allow_read(&self, caller: &Caller, detail: String) -> Result<(), Error> {
        let mut event = self.check_read(caller).await?;
        event.outcome = "ok".to_owned();
        event.detail = Some(detail);
        self.store.record(event).await?;
        Ok(())
    }

    /// Checks `read_audit` for the caller ([`Error::Forbidden`], audited, if refused); the
    /// event to record once the read's outcome is known.
    pub(super) async fn check_read(&self, caller: &Caller) -> Result<AuditEvent, Error> {
        check_policy(
            self.store.as_ref(),
            &self.policy,
            caller,
            Action::ReadAudit,
            Resource::AuditLog,
            |_| {},
        )
        .await
    }

    /// The evidence report of `period` (`GET /v1/audit/report`), signed by the audit key:
    /// [`Error::Forbidden`] (audited) unless the policy allows `read_audit`; the read is
    /// audited before the log is read, so the report covers its own record.
    pub async fn report(
        &self,
        caller: &Caller,
        period: Period,
        keys: &super::KeyAdmin,
    ) -> Result<SignedReport, Error> {
        let store = self.store.as_ref();
        self.allow_read(
            caller,
            format!("report since={} until={}", period.since(), period.until()),
        )
        .await?;
        let inventory = super::report::inventory_keys(keys.inventory().await?);
        super::report::signed_report(
            store,
            super::report::AuditSigner {
                hsm: &self.hsm,
                label: &self.key_label,
                jwk: &self.jwk,
            },
            period,
            inventory,
            self.facts.clone(),
        )
        .await
    }

    /// Records after `after` (at most `limit`, 1..=[`MAX_AUDIT_PAGE`]) and a checkpoint over
    /// the head. [`Error::Forbidden`] (audited) unless the policy allows `read_audit`.
    pub async fn read(
        &self,
        caller: &Caller,
        after: u64,
        limit: usize,
    ) -> Result<AuditPage, Error> {
        let store = self.store.as_ref();
        self.allow_read(caller, format!("after={after} limit={limit}"))
            .await?;
        let records = store
            .audit_records(after, limit.clamp(1, MAX_AUDIT_PAGE))
            .await?;
        let (count, head) = match store.latest_audit_record().await? {
            Some(r) => (r.seq, r.hash),
            None => (0, to_hex(&GENESIS)),
        };
        let checkpoint = signed_checkpoint(
            &self.hsm,
            &self.key_label,
            self.public_key.clone(),
            count,
            head,
        )
        .await
        .map_err(Error::Hsm)?;
        Ok(AuditPage {
            records,
            checkpoint,
        })
    }
}

/// `claims` as a compact JWS (ES256) signed in the HSM by the audit key `label`, whose public
/// half is `jwk`, checked before it is handed out: for the daemon and for `payhsm audit report
/// --data-dir` alike.
pub(crate) async fn sign_jws_with(
    hsm: &Hsm,
    label: &str,
    jwk: &Jwk,
    claims: &serde_json::Value,
) -> Result<String, Error> {
    let header = serde_json::json!({ "alg": ES256, "kid": jwk.kid() });
    crate::jose::sign_compact(hsm, label, jwk.public_key(), &header, claims)
        .await
        .map_err(|e| match e {
            // The token did not answer: as every other audit-key signature (checkpoints).
            SignError::Hsm { source, .. } => Error::Hsm(source),
            e => Error::Signer(e),
        })
}

/// The checkpoint of a log of `records` records ending at `head`, signed in the HSM by the
/// audit key `label` whose public point is `public_key` (base64url): for the API and for
/// `payhsm audit export --data-dir` alike.
pub(crate) async fn signed_checkpoint(
    hsm: &Hsm,
    label: &str,
    public_key: String,
    records: u64,
    head: String,
) -> Result<Checkpoint, crate::keys::HsmError> {
    let signature = hsm
        .sign_p256(label, Checkpoint::message(records, &head))
        .await?;
    Ok(Checkpoint {
        records,
        head,
        public_key,
        signature: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature),
    })
}
