//! Store timings without touching the services: a [`Store`] that forwards every call to the
//! real one and records how long it took.

use super::Metrics;
use crate::audit::{AuditEvent, AuditRecord};
use crate::card::{Domain, StatusChange, Token};
use crate::keys::{KeyVersion, WrappedDataKey};
use crate::store::{
    ApprovalOutcome, AuthorizationChallengeRecord, AuthorizationCommit, ChallengeIssue,
    ChallengePurpose, ChallengeRecord, CommitOutcome, ConsumeOutcome, DataKeyInfo,
    DetokenizeOutcome, DeviceRecord, EnrolOutcome, IdempotencyRecord, Idempotent, KeyApproval,
    KeyChangeOutcome, NewToken, Rewrapped, SigningKeyRecord, Store, StoreFuture, TokenRecord,
    TokenizeOutcome, TransitionOutcome,
};
use std::sync::Arc;
use std::time::Instant;

/// A store whose every call is timed into `payhsm_store_duration_seconds{op}`.
/// Works over a concrete store or `dyn Store`.
pub struct TimedStore<S: Store + ?Sized> {
    inner: Arc<S>,
    metrics: Arc<Metrics>,
}

impl<S: Store + ?Sized> TimedStore<S> {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<S>, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &Arc<S> {
        &self.inner
    }

    fn timed<'a, T: 'a>(
        &'a self,
        op: &'static str,
        call: StoreFuture<'a, T>,
    ) -> StoreFuture<'a, T> {
        Box::pin(async move {
            let started = Instant::now();
            let result = call.await;
            self.metrics.record_store(op, started.elapsed());
            result
        })
    }
}

impl<S: Store + ?Sized> Store for TimedStore<S> {
    fn tokenize(&self, new: NewToken, audit: AuditEvent) -> StoreFuture<'_, TokenizeOutcome> {
        self.timed("tokenize", self.inner.tokenize(new, audit))
    }

    fn detokenize(
        &self,
        token: &Token,
        domain: &Domain,
        audit: AuditEvent,
    ) -> StoreFuture<'_, DetokenizeOutcome> {
        self.timed("detokenize", self.inner.detokenize(token, domain, audit))
    }

    fn transition(
        &self,
        token: &Token,
        domain: &Domain,
        change: StatusChange,
        audit: AuditEvent,
    ) -> StoreFuture<'_, TransitionOutcome> {
        self.timed(
            "transition",
            self.inner.transition(token, domain, change, audit),
        )
    }

    fn record(&self, audit: AuditEvent) -> StoreFuture<'_, ()> {
        self.timed("record", self.inner.record(audit))
    }

    fn token(&self, token: &Token, domain: &Domain) -> StoreFuture<'_, Option<TokenRecord>> {
        self.timed("token", self.inner.token(token, domain))
    }

    fn data_keys(&self) -> StoreFuture<'_, Vec<WrappedDataKey>> {
        self.timed("data_keys", self.inner.data_keys())
    }

    fn activate_data_key(
        &self,
        key: WrappedDataKey,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        let call = self.inner.activate_data_key(key, cryptoperiod_end, audit);
        self.timed("activate_data_key", call)
    }

    fn data_key_info(&self) -> StoreFuture<'_, Vec<DataKeyInfo>> {
        self.timed("data_key_info", self.inner.data_key_info())
    }

    fn retire_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        let call = self.inner.retire_data_key(version, now, audit);
        self.timed("retire_data_key", call)
    }

    fn destroy_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        let call = self.inner.destroy_data_key(version, now, audit);
        self.timed("destroy_data_key", call)
    }

    fn approve_key_change(
        &self,
        approval: KeyApproval,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ApprovalOutcome> {
        let call = self.inner.approve_key_change(approval, audit);
        self.timed("approve_key_change", call)
    }

    fn tokens_to_rewrap(
        &self,
        active: KeyVersion,
        limit: usize,
    ) -> StoreFuture<'_, Vec<TokenRecord>> {
        self.timed(
            "tokens_to_rewrap",
            self.inner.tokens_to_rewrap(active, limit),
        )
    }

    fn count_to_rewrap(&self, active: KeyVersion) -> StoreFuture<'_, u64> {
        self.timed("count_to_rewrap", self.inner.count_to_rewrap(active))
    }

    fn rewrap(&self, batch: Vec<Rewrapped>, audit: AuditEvent) -> StoreFuture<'_, u64> {
        self.timed("rewrap", self.inner.rewrap(batch, audit))
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>> {
        self.timed("signing_keys", self.inner.signing_keys())
    }

    fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.timed("add_signing_key", self.inner.add_signing_key(key, audit))
    }

    fn activate_signing_key(
        &self,
        version: u32,
        now: String,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        let call = self
            .inner
            .activate_signing_key(version, now, cryptoperiod_end, audit);
        self.timed("activate_signing_key", call)
    }

    fn retire_signing_key(
        &self,
        version: u32,
        now: String,
        now_unix: i64,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        let call = self.inner.retire_signing_key(version, now, now_unix, audit);
        self.timed("retire_signing_key", call)
    }

    fn unexpired_authorizations(
        &self,
        kid: &str,
        now_unix: i64,
    ) -> StoreFuture<'_, (u64, Option<String>)> {
        let call = self.inner.unexpired_authorizations(kid, now_unix);
        self.timed("unexpired_authorizations", call)
    }

    fn destroy_signing_key(
        &self,
        version: u32,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        let call = self.inner.destroy_signing_key(version, now, audit);
        self.timed("destroy_signing_key", call)
    }

    fn audit_records(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>> {
        self.timed("audit_records", self.inner.audit_records(after, limit))
    }

    fn ping(&self) -> StoreFuture<'_, ()> {
        self.timed("ping", self.inner.ping())
    }

    fn create_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ()> {
        self.timed(
            "create_challenge",
            self.inner.create_challenge(challenge, audit),
        )
    }

    fn consume_challenge(
        &self,
        id: &str,
        purpose: ChallengePurpose,
        now: time::OffsetDateTime,
    ) -> StoreFuture<'_, ConsumeOutcome> {
        self.timed(
            "consume_challenge",
            self.inner.consume_challenge(id, purpose, now),
        )
    }

    fn enrol_device(
        &self,
        device: DeviceRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, EnrolOutcome> {
        self.timed("enrol_device", self.inner.enrol_device(device, audit))
    }

    fn challenge(&self, id: &str) -> StoreFuture<'_, Option<ChallengeRecord>> {
        self.timed("challenge", self.inner.challenge(id))
    }

    fn device(&self, device_id: &str) -> StoreFuture<'_, Option<DeviceRecord>> {
        self.timed("device", self.inner.device(device_id))
    }

    fn device_by_credential(&self, credential_id: &[u8]) -> StoreFuture<'_, Option<DeviceRecord>> {
        self.timed(
            "device_by_credential",
            self.inner.device_by_credential(credential_id),
        )
    }

    fn update_sign_count(
        &self,
        device_id: &str,
        expected_old: u32,
        new: u32,
        audit: AuditEvent,
    ) -> StoreFuture<'_, bool> {
        self.timed(
            "update_sign_count",
            self.inner
                .update_sign_count(device_id, expected_old, new, audit),
        )
    }

    fn create_authorization_challenge(
        &self,
        challenge: AuthorizationChallengeRecord,
        audit: AuditEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreFuture<'_, Idempotent<ChallengeIssue>> {
        self.timed(
            "create_authorization_challenge",
            self.inner
                .create_authorization_challenge(challenge, audit, idempotency),
        )
    }

    fn authorization_challenge(
        &self,
        id: &str,
    ) -> StoreFuture<'_, Option<AuthorizationChallengeRecord>> {
        self.timed(
            "authorization_challenge",
            self.inner.authorization_challenge(id),
        )
    }

    fn commit_authorization(
        &self,
        commit: AuthorizationCommit,
    ) -> StoreFuture<'_, Idempotent<CommitOutcome>> {
        self.timed(
            "commit_authorization",
            self.inner.commit_authorization(commit),
        )
    }

    fn idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> StoreFuture<'_, Option<IdempotencyRecord>> {
        self.timed("idempotency", self.inner.idempotency(principal, key))
    }
}
