//! The scale-out store: PostgreSQL shared by many daemon replicas (issue 17).
//!
//! Same semantics as the SQLite store, method for method (one conformance suite runs against
//! both). Uniqueness and single use are the database's: primary keys and unique indexes,
//! conditional updates for challenges and counters. What is not in the database is not
//! trusted: no cache answers a security decision.
//!
//! - [`writer`]: one task per store owns one connection and group-commits; every batch locks
//!   the one audit chain head of all replicas first.
//! - [`tokens`], [`devices`], [`authorizations`], [`keys`]: rows and the write jobs, as in
//!   SQLite.
//! - [`connection`]: connection settings, the writer's connections, prepared-statement helpers
//!   and the one mapping of PostgreSQL errors.
//! - [`schema`]: versioned migrations under an advisory lock.
//! - [`tls`]: rustls (ring) for `verify-full`.
//!
//! Every public operation goes through one of two funnels, [`PostgresStore::write`] and
//! [`PostgresStore::read`], named by the trait method.

mod authorizations;
mod connection;
mod devices;
mod keys;
mod schema;
mod tls;
mod tokens;
mod writer;

use crate::audit::{AuditEvent, AuditRecord};
use crate::card::{Domain, StatusChange, Token};
use crate::keys::{KeyVersion, WrappedDataKey};
use crate::store::{
    ApprovalOutcome, AuditStore, AuthorizationChallengeRecord, AuthorizationCommit,
    AuthorizationRecord, AuthorizationStore, ChallengeIssue, ChallengePurpose, ChallengeRecord,
    CommitOutcome, ConsumeOutcome, DataKeyInfo, DetokenizeOutcome, DeviceOwner, DeviceRecord,
    DeviceStore, EnrolOutcome, IdempotencyRecord, IdempotencyStore, Idempotent, KeyApproval,
    KeyChangeOutcome, KeyStore, NewToken, Revocation, RevokeOutcome, Rewrapped, SigningKeyRecord,
    Store, StoreError, StoreFuture, StoreObserver, Timing, TokenRecord, TokenStore,
    TokenizeOutcome, TransitionOutcome,
};
use connection::{pg_config, pool_err, query_one, Connector};
use deadpool_postgres::{ClientWrapper, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use writer::{Job, JobCtx, JobFuture};
use zeroize::Zeroizing;

/// How to reach PostgreSQL, for [`open`].
#[derive(Debug)]
pub struct PostgresOptions {
    /// `postgres://user@host:port/db`. A password may be in it, but belongs in `password`.
    pub url: String,
    /// Read by the caller from a file or an environment variable, never from the config.
    pub password: Option<Zeroizing<String>>,
    /// TLS to the server.
    pub tls: PgTls,
    /// Connections in the read pool (at least one); the writer has one more of its own.
    pub pool_size: usize,
    /// Connecting, and waiting for a pooled connection: past it the store answers
    /// [`StoreError::Unavailable`] instead of hanging.
    pub connect_timeout: Duration,
    /// `statement_timeout` of every connection.
    pub statement_timeout: Duration,
    /// Most jobs committed together in one transaction.
    pub max_batch: usize,
}

/// TLS to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PgTls {
    /// No TLS: only to a loopback address or a Unix socket (development).
    Disable,
    /// TLS, the server's certificate chain verified up to a CA in `ca_file` (PEM) and its
    /// name checked against the host connected to.
    VerifyFull {
        /// PEM file of the CA certificates to trust.
        ca_file: PathBuf,
    },
}

/// The PostgreSQL [`Store`]. Dropping it closes the job channel: the writer task finishes the
/// queued jobs and ends.
pub struct PostgresStore {
    jobs: mpsc::UnboundedSender<Box<dyn Job>>,
    pool: Pool,
    /// The last batch did not commit: readiness probes with a write.
    failing: Arc<AtomicBool>,
    /// Where operations are timed.
    timing: Timing,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore").finish_non_exhaustive()
    }
}

/// Connects, applies pending migrations (refusing a schema newer than this build:
/// [`StoreError::Corrupt`]), checks the audit chain head, and starts the writer task. Must be
/// called within a tokio runtime.
pub async fn open(options: PostgresOptions) -> Result<PostgresStore, StoreError> {
    let (config, tls) = pg_config(&options)?;
    let connector = Arc::new(Connector {
        config: config.clone(),
        tls: tls.clone(),
        timeout: options.connect_timeout,
    });
    let mut db = connector.connect().await?;
    schema::migrate(&mut db).await?;
    writer::ChainHead::check(&db).await?;
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(options.connect_timeout))
        .create_timeout(Some(options.connect_timeout))
        .recycle_timeout(Some(options.connect_timeout))
        .build()
        .map_err(|e| StoreError::unavailable_from("postgres pool", e))?;
    let (jobs, rx) = mpsc::unbounded_channel();
    let failing = Arc::new(AtomicBool::new(false));
    let writer = writer::Writer {
        connector,
        jobs: rx,
        max_batch: options.max_batch,
        failing: Arc::clone(&failing),
    };
    tokio::spawn(writer.run(db));
    Ok(PostgresStore {
        jobs,
        pool,
        failing,
        timing: Timing::default(),
    })
}

impl PostgresStore {
    /// Reports each operation's duration to `observer` from now on.
    pub fn with_observer(mut self, observer: Arc<dyn StoreObserver>) -> Self {
        self.timing = Timing::new(observer);
        self
    }

    /// The write funnel: queues `work` for the writer and waits for its committed answer.
    fn write<T, F>(&self, op: &'static str, work: F) -> StoreFuture<'_, T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a mut JobCtx) -> JobFuture<'a, T> + Send + 'static,
    {
        Box::pin(self.timing.time(op, async move {
            let (job, answer) = writer::job(work);
            match self.jobs.send(job) {
                Ok(()) => answer.await.unwrap_or(Err(StoreError::Closed)),
                Err(_) => Err(StoreError::Closed),
            }
        }))
    }

    /// The read funnel: runs `f` on a pooled connection.
    async fn read<T, F>(&self, op: &'static str, f: F) -> Result<T, StoreError>
    where
        T: Send,
        F: for<'a> FnOnce(&'a ClientWrapper) -> JobFuture<'a, T> + Send,
    {
        self.timing
            .time(op, async move {
                match self.pool.get().await {
                    Ok(db) => f(&db).await,
                    Err(e) => Err(pool_err(e)),
                }
            })
            .await
    }
}

impl TokenStore for PostgresStore {
    fn tokenize(&self, new: NewToken, audit: AuditEvent) -> StoreFuture<'_, TokenizeOutcome> {
        self.write("tokenize", move |ctx| {
            Box::pin(tokens::tokenize(ctx, new, audit))
        })
    }

    fn detokenize(
        &self,
        token: &Token,
        domain: &Domain,
        audit: AuditEvent,
    ) -> StoreFuture<'_, DetokenizeOutcome> {
        let (token, domain) = (token.clone(), domain.clone());
        self.write("detokenize", move |ctx| {
            Box::pin(tokens::detokenize(ctx, token, domain, audit))
        })
    }

    fn transition(
        &self,
        token: &Token,
        domain: &Domain,
        change: StatusChange,
        audit: AuditEvent,
    ) -> StoreFuture<'_, TransitionOutcome> {
        let (token, domain) = (token.clone(), domain.clone());
        self.write("transition", move |ctx| {
            Box::pin(tokens::transition(ctx, token, domain, change, audit))
        })
    }

    fn token(&self, token: &Token, domain: &Domain) -> StoreFuture<'_, Option<TokenRecord>> {
        let (token, domain) = (token.clone(), domain.clone());
        Box::pin(self.read("token", move |db| {
            Box::pin(async move { tokens::read(db, &token, &domain).await })
        }))
    }
}

impl KeyStore for PostgresStore {
    fn data_keys(&self) -> StoreFuture<'_, Vec<WrappedDataKey>> {
        Box::pin(self.read("data_keys", |db| Box::pin(keys::data_keys(db))))
    }

    fn activate_data_key(
        &self,
        key: WrappedDataKey,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("activate_data_key", move |ctx| {
            Box::pin(keys::activate_data_key(ctx, key, cryptoperiod_end, audit))
        })
    }

    fn data_key_info(&self) -> StoreFuture<'_, Vec<DataKeyInfo>> {
        Box::pin(self.read("data_key_info", |db| Box::pin(keys::data_key_info(db))))
    }

    fn retire_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("retire_data_key", move |ctx| {
            Box::pin(keys::retire_data_key(ctx, version, now, audit))
        })
    }

    fn destroy_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("destroy_data_key", move |ctx| {
            Box::pin(keys::destroy_data_key(ctx, version, now, audit))
        })
    }

    fn approve_key_change(
        &self,
        approval: KeyApproval,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ApprovalOutcome> {
        self.write("approve_key_change", move |ctx| {
            Box::pin(keys::approve(ctx, approval, audit))
        })
    }

    fn tokens_to_rewrap(
        &self,
        active: KeyVersion,
        limit: usize,
    ) -> StoreFuture<'_, Vec<TokenRecord>> {
        Box::pin(self.read("tokens_to_rewrap", move |db| {
            Box::pin(keys::to_rewrap(db, active, limit))
        }))
    }

    fn count_to_rewrap(&self, active: KeyVersion) -> StoreFuture<'_, u64> {
        Box::pin(self.read("count_to_rewrap", move |db| {
            Box::pin(keys::count_to_rewrap(db, active))
        }))
    }

    fn rewrap(&self, batch: Vec<Rewrapped>, audit: AuditEvent) -> StoreFuture<'_, u64> {
        self.write("rewrap", move |ctx| {
            Box::pin(keys::rewrap(ctx, batch, audit))
        })
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>> {
        Box::pin(self.read("signing_keys", |db| Box::pin(keys::signing_keys(db))))
    }

    fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("add_signing_key", move |ctx| {
            Box::pin(keys::add_signing_key(ctx, key, audit))
        })
    }

    fn activate_signing_key(
        &self,
        version: u32,
        now: String,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("activate_signing_key", move |ctx| {
            Box::pin(keys::activate_signing_key(
                ctx,
                version,
                now,
                cryptoperiod_end,
                audit,
            ))
        })
    }

    fn retire_signing_key(
        &self,
        version: u32,
        now: String,
        now_unix: i64,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("retire_signing_key", move |ctx| {
            Box::pin(keys::retire_signing_key(ctx, version, now, now_unix, audit))
        })
    }

    fn unexpired_authorizations(
        &self,
        kid: &str,
        now_unix: i64,
    ) -> StoreFuture<'_, (u64, Option<String>)> {
        let kid = kid.to_owned();
        Box::pin(self.read("unexpired_authorizations", move |db| {
            Box::pin(async move { keys::unexpired_authorizations(db, &kid, now_unix).await })
        }))
    }

    fn destroy_signing_key(
        &self,
        version: u32,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        self.write("destroy_signing_key", move |ctx| {
            Box::pin(keys::destroy_signing_key(ctx, version, now, audit))
        })
    }

    fn pin_kek_kcv(
        &self,
        label: &str,
        kcv: &str,
        audit: AuditEvent,
    ) -> StoreFuture<'_, Option<String>> {
        let (label, kcv) = (label.to_owned(), kcv.to_owned());
        self.write("pin_kek_kcv", move |ctx| {
            Box::pin(async move { keys::pin_kek_kcv(ctx, &label, &kcv, audit).await })
        })
    }
}

impl DeviceStore for PostgresStore {
    fn create_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ()> {
        self.write("create_challenge", move |ctx| {
            Box::pin(devices::create_challenge(ctx, challenge, audit))
        })
    }

    fn consume_challenge(
        &self,
        id: &str,
        purpose: ChallengePurpose,
        now: time::OffsetDateTime,
    ) -> StoreFuture<'_, ConsumeOutcome> {
        let id = id.to_owned();
        let now = crate::clock::format_rfc3339(now);
        self.write("consume_challenge", move |ctx| {
            Box::pin(devices::consume_challenge(ctx, id, purpose, now))
        })
    }

    fn enrol_device(
        &self,
        device: DeviceRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, EnrolOutcome> {
        self.write("enrol_device", move |ctx| {
            Box::pin(devices::enrol_device(ctx, device, audit))
        })
    }

    fn challenge(&self, id: &str) -> StoreFuture<'_, Option<ChallengeRecord>> {
        let id = id.to_owned();
        Box::pin(self.read("challenge", move |db| {
            Box::pin(async move { devices::challenge(db, &id).await })
        }))
    }

    fn device(&self, device_id: &str) -> StoreFuture<'_, Option<DeviceRecord>> {
        let device_id = device_id.to_owned();
        Box::pin(self.read("device", move |db| {
            Box::pin(async move { devices::by_id(db, &device_id).await })
        }))
    }

    fn device_by_credential(&self, credential_id: &[u8]) -> StoreFuture<'_, Option<DeviceRecord>> {
        let credential_id = credential_id.to_vec();
        Box::pin(self.read("device_by_credential", move |db| {
            Box::pin(async move { devices::by_credential(db, &credential_id).await })
        }))
    }

    fn devices_of(&self, owner: &DeviceOwner) -> StoreFuture<'_, Vec<DeviceRecord>> {
        let owner = owner.clone();
        Box::pin(self.read("devices_of", move |db| {
            Box::pin(async move { devices::of_owner(db, &owner).await })
        }))
    }

    fn revoke_device(
        &self,
        revocation: Revocation,
        audit: AuditEvent,
    ) -> StoreFuture<'_, RevokeOutcome> {
        self.write("revoke_device", move |ctx| {
            Box::pin(devices::revoke_device(ctx, revocation, audit))
        })
    }

    fn update_sign_count(
        &self,
        device_id: &str,
        expected_old: u32,
        new: u32,
        audit: AuditEvent,
    ) -> StoreFuture<'_, bool> {
        let device_id = device_id.to_owned();
        self.write("update_sign_count", move |ctx| {
            Box::pin(devices::update_sign_count(
                ctx,
                device_id,
                expected_old,
                new,
                audit,
            ))
        })
    }
}

impl AuthorizationStore for PostgresStore {
    fn create_authorization_challenge(
        &self,
        challenge: AuthorizationChallengeRecord,
        audit: AuditEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreFuture<'_, Idempotent<ChallengeIssue>> {
        self.write("create_authorization_challenge", move |ctx| {
            Box::pin(authorizations::create_challenge(
                ctx,
                challenge,
                audit,
                idempotency,
            ))
        })
    }

    fn authorization_challenge(
        &self,
        id: &str,
    ) -> StoreFuture<'_, Option<AuthorizationChallengeRecord>> {
        let id = id.to_owned();
        Box::pin(self.read("authorization_challenge", move |db| {
            Box::pin(async move { authorizations::challenge(db, &id).await })
        }))
    }

    fn authorization(&self, id: &str) -> StoreFuture<'_, Option<AuthorizationRecord>> {
        let id = id.to_owned();
        Box::pin(self.read("authorization", move |db| {
            Box::pin(async move { authorizations::authorization(db, &id).await })
        }))
    }

    fn commit_authorization(
        &self,
        commit: AuthorizationCommit,
    ) -> StoreFuture<'_, Idempotent<CommitOutcome>> {
        self.write("commit_authorization", move |ctx| {
            Box::pin(authorizations::commit(ctx, commit))
        })
    }
}

impl IdempotencyStore for PostgresStore {
    fn idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> StoreFuture<'_, Option<IdempotencyRecord>> {
        let (principal, key) = (principal.to_owned(), key.to_owned());
        Box::pin(self.read("idempotency", move |db| {
            Box::pin(async move { authorizations::read_idempotency(db, &principal, &key).await })
        }))
    }
}

impl AuditStore for PostgresStore {
    fn record(&self, audit: AuditEvent) -> StoreFuture<'_, ()> {
        self.write("record", move |ctx| {
            Box::pin(async move { ctx.audit(audit).await.map(|_| ()) })
        })
    }

    fn audit_records(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>> {
        Box::pin(self.read("audit_records", move |db| {
            Box::pin(writer::audit_records(db, after, limit))
        }))
    }

    fn latest_audit_record(&self) -> StoreFuture<'_, Option<AuditRecord>> {
        Box::pin(self.read("latest_audit_record", |db| {
            Box::pin(writer::latest_audit_record(db))
        }))
    }
}

impl Store for PostgresStore {
    /// `SELECT 1` on a pooled connection; and while the writer's batches fail, an empty batch
    /// that must commit (locking the chain head like any write): readiness turns true again
    /// by itself once PostgreSQL takes writes.
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.read("ping", |db| {
                Box::pin(async move { query_one(db, "SELECT 1", &[]).await.map(|_| ()) })
            })
            .await?;
            if self.failing.load(Ordering::Relaxed) {
                self.write("ping", |_| Box::pin(async { Ok(()) })).await?;
            }
            Ok(())
        })
    }
}
