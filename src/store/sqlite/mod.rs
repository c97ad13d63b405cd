//! The embedded store: SQLite in WAL mode with `synchronous=FULL`.
//!
//! - [`writer`]: one thread owns the write connection and group-commits: many requests share
//!   one fsync, each answered only after the commit that holds it.
//! - [`readers`]: a small pool of read-only connections used through `spawn_blocking`.
//! - [`tokens`]: token rows and the tokenize / detokenize / transition jobs.
//! - [`devices`]: WebAuthn challenges and enrolled devices, and their write jobs.
//! - [`authorizations`]: payment challenges, authorizations, idempotency keys, and their jobs.
//! - [`cache`]: token rows recently read, invalidated by the writer.
//! - [`checkpointer`]: WAL checkpoints, on a background thread and by the writer between batches.
//! - [`keys`]: key lifecycle rows (data keys, signing keys, approvals) and the rewrap.
//! - [`schema`]: pragmas and versioned migrations.

mod authorizations;
mod cache;
mod checkpointer;
mod devices;
mod keys;
mod readers;
mod schema;
mod tokens;
mod writer;

use crate::audit::AuditEvent;
use crate::audit::AuditRecord;
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
use cache::TokenCache;
use readers::ReaderPool;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use writer::{Job, JobCtx};

/// Tuning for [`open`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    /// Read connections in the pool (at least one is opened).
    pub readers: usize,
    /// Most jobs committed together in one transaction.
    pub max_batch: usize,
    /// Token rows kept in memory after a read (0: no cache).
    pub token_cache_rows: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            readers: 4,
            max_batch: 256,
            token_cache_rows: crate::config::defaults::TOKEN_CACHE_ROWS,
        }
    }
}

/// The SQLite [`Store`]. Dropping it waits for the writer thread to finish the queued jobs.
pub struct SqliteStore {
    /// `None` when opened with [`open_read_only`].
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    /// The writer thread, joined on drop before the lock below is released.
    writer: Option<std::thread::JoinHandle<()>>,
    readers: Arc<ReaderPool>,
    /// Token rows recently read; the writer invalidates what it changes. `None` read-only:
    /// another process writes then.
    cache: Option<Arc<TokenCache>>,
    /// An exclusive lock on the database file, held while the store is open: one writer
    /// process (a second would fork the audit chain, and the cache is right only for the one).
    _lock: Option<File>,
    /// The last batch did not commit (disk full, I/O error): readiness probes with a write.
    failing: Arc<AtomicBool>,
    /// Dropping it stops the background checkpoint thread.
    _checkpoints: Option<mpsc::Sender<()>>,
    /// Where operations are timed.
    timing: Timing,
}

impl Drop for SqliteStore {
    /// Lets the writer finish what is queued and joins it, so the file lock is released only
    /// once this store's writer connection can write no more (a store opened again at once,
    /// in this process or another, must not write beside it).
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").finish_non_exhaustive()
    }
}

/// Opens (creating if needed) the database at `path`, applies pending migrations, and starts
/// the writer thread. Refuses a database whose schema is newer than this build
/// ([`StoreError::Corrupt`]).
pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, StoreError> {
    let lock = lock_exclusive(path)?;
    owner_only(path)?;
    let mut conn = rusqlite::Connection::open(path).map_err(sql_err)?;
    schema::configure_writer(&conn)?;
    schema::migrate(&mut conn)?;
    // Fail at open, not on the first write, if the chain head cannot be read.
    writer::ChainHead::load(&conn)?;
    let readers = Arc::new(ReaderPool::open(path, options.readers.max(1))?);
    let checkpoints = checkpointer::start_background(path)?;
    let (jobs, rx) = mpsc::channel();
    let failing = Arc::new(AtomicBool::new(false));
    let writer_failing = Arc::clone(&failing);
    let cache =
        (options.token_cache_rows > 0).then(|| Arc::new(TokenCache::new(options.token_cache_rows)));
    let writer_cache = cache.clone();
    let writer = std::thread::Builder::new()
        .name("payhsm-sqlite-writer".into())
        .spawn(move || writer::run(conn, rx, options.max_batch, writer_failing, writer_cache))
        .map_err(|e| StoreError::unavailable_from("cannot start the writer thread", e))?;
    Ok(SqliteStore {
        jobs: Some(jobs),
        writer: Some(writer),
        readers,
        cache,
        _lock: Some(lock),
        failing,
        _checkpoints: Some(checkpoints),
        timing: Timing::default(),
    })
}

/// Takes group and other permissions away from the database file and its `-wal` and `-shm`
/// files (SQLite creates those with the database file's mode): a database made by an older
/// version, or copied in, is tightened at open.
fn owner_only(path: &Path) -> Result<(), StoreError> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = Path::new(&name);
        if file.exists() {
            crate::isolation::owner_only(file, 0o600).map_err(|e| {
                StoreError::unavailable_from(
                    format!("{}: cannot restrict its mode", file.display()),
                    e,
                )
            })?;
        }
    }
    Ok(())
}

/// Opens an existing database to read it while another process (the daemon) may be writing:
/// no lock, no writer, no cache, no migration. Every write answers
/// [`StoreError::Unavailable`]. For `payhsm audit export`.
pub fn open_read_only(path: &Path) -> Result<SqliteStore, StoreError> {
    if !path.exists() {
        return Err(StoreError::unavailable(format!(
            "{} does not exist",
            path.display()
        )));
    }
    let readers = Arc::new(ReaderPool::open(path, 1)?);
    readers.with_idle(schema::check_readable)?;
    Ok(SqliteStore {
        jobs: None,
        writer: None,
        readers,
        cache: None,
        _lock: None,
        failing: Arc::new(AtomicBool::new(false)),
        _checkpoints: None,
        timing: Timing::default(),
    })
}

/// Opens (creating) the database file and takes an exclusive lock on it (`flock`; SQLite's
/// own locks are `fcntl` locks, which it does not touch), or says the store is in use.
fn lock_exclusive(path: &Path) -> Result<File, StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    // A new database is its owner's only (see `owner_only` for an existing one).
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options
        .open(path)
        .map_err(|e| StoreError::unavailable_from(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::unavailable(format!(
            "{} is in use by another process (another payhsmd on this data directory?)",
            path.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::unavailable_from(
            format!("cannot lock {}", path.display()),
            e,
        )),
    }
}

/// SQLite's own error text (it never carries bound values such as ciphertext or keys).
pub(super) fn sql_err(e: rusqlite::Error) -> StoreError {
    StoreError::unavailable_from("sqlite", e)
}

impl SqliteStore {
    /// Reports each operation's duration to `observer` from now on.
    pub fn with_observer(mut self, observer: Arc<dyn StoreObserver>) -> Self {
        self.timing = Timing::new(observer);
        self
    }

    /// Queues `work` for the writer and waits for its committed answer; timed as `op`.
    async fn write<T, F>(&self, op: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.timing
            .time(op, async move {
                let (job, answer) = writer::job(work);
                let jobs = self
                    .jobs
                    .as_ref()
                    .ok_or_else(|| StoreError::unavailable("the store was opened read-only"))?;
                jobs.send(job).map_err(|_| StoreError::Closed)?;
                answer.await.map_err(|_| StoreError::Closed)?
            })
            .await
    }

    /// A read on a pooled connection ([`ReaderPool::run`]); timed as `op`.
    async fn read<T, F>(&self, op: &'static str, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    {
        self.timing.time(op, self.readers.run(read)).await
    }

    /// A point read ([`ReaderPool::run_point`]); timed as `op`.
    async fn read_point<T, F>(&self, op: &'static str, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<T, StoreError>,
    {
        self.timing.time(op, self.readers.run_point(read)).await
    }
}

impl TokenStore for SqliteStore {
    fn tokenize(&self, new: NewToken, audit: AuditEvent) -> StoreFuture<'_, TokenizeOutcome> {
        Box::pin(self.write("tokenize", move |ctx| tokens::tokenize(ctx, new, audit)))
    }

    fn detokenize(
        &self,
        token: &Token,
        domain: &Domain,
        audit: AuditEvent,
    ) -> StoreFuture<'_, DetokenizeOutcome> {
        let (token, domain) = (token.clone(), domain.clone());
        Box::pin(self.write("detokenize", move |ctx| {
            tokens::detokenize(ctx, &token, &domain, audit)
        }))
    }

    fn transition(
        &self,
        token: &Token,
        domain: &Domain,
        change: StatusChange,
        audit: AuditEvent,
    ) -> StoreFuture<'_, TransitionOutcome> {
        let (token, domain) = (token.clone(), domain.clone());
        Box::pin(self.write("transition", move |ctx| {
            tokens::transition(ctx, &token, &domain, change, audit)
        }))
    }

    fn token(&self, token: &Token, domain: &Domain) -> StoreFuture<'_, Option<TokenRecord>> {
        let (token, domain) = (token.clone(), domain.clone());
        Box::pin(self.timing.time("token", async move {
            let stamp = match self.cache.as_ref().map(|c| c.get(&domain, &token)) {
                Some(Ok(row)) => return Ok(Some(row)),
                Some(Err(stamp)) => Some(stamp),
                None => None,
            };
            let row = self
                .readers
                .run_point(|conn| tokens::read(conn, &token, &domain))
                .await?;
            if let (Some(cache), Some(stamp), Some(row)) = (&self.cache, stamp, &row) {
                cache.insert(stamp, row);
            }
            Ok(row)
        }))
    }
}

impl KeyStore for SqliteStore {
    fn data_keys(&self) -> StoreFuture<'_, Vec<WrappedDataKey>> {
        Box::pin(self.read("data_keys", readers::data_keys))
    }

    fn activate_data_key(
        &self,
        key: WrappedDataKey,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("activate_data_key", move |ctx| {
            keys::activate_data_key(ctx, key, cryptoperiod_end, audit)
        }))
    }

    fn data_key_info(&self) -> StoreFuture<'_, Vec<DataKeyInfo>> {
        Box::pin(self.read("data_key_info", keys::data_key_info))
    }

    fn retire_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("retire_data_key", move |ctx| {
            keys::retire_data_key(ctx, version, &now, audit)
        }))
    }

    fn destroy_data_key(
        &self,
        version: KeyVersion,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("destroy_data_key", move |ctx| {
            keys::destroy_data_key(ctx, version, &now, audit)
        }))
    }

    fn approve_key_change(
        &self,
        approval: KeyApproval,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ApprovalOutcome> {
        Box::pin(self.write("approve_key_change", move |ctx| {
            keys::approve(ctx, approval, audit)
        }))
    }

    fn tokens_to_rewrap(
        &self,
        active: KeyVersion,
        limit: usize,
    ) -> StoreFuture<'_, Vec<TokenRecord>> {
        Box::pin(self.read("tokens_to_rewrap", move |conn| {
            keys::to_rewrap(conn, active, limit)
        }))
    }

    fn count_to_rewrap(&self, active: KeyVersion) -> StoreFuture<'_, u64> {
        Box::pin(self.read("count_to_rewrap", move |conn| {
            keys::count_to_rewrap(conn, active)
        }))
    }

    fn rewrap(&self, batch: Vec<Rewrapped>, audit: AuditEvent) -> StoreFuture<'_, u64> {
        Box::pin(self.write("rewrap", move |ctx| keys::rewrap(ctx, batch, audit)))
    }

    fn signing_keys(&self) -> StoreFuture<'_, Vec<SigningKeyRecord>> {
        Box::pin(self.read("signing_keys", keys::signing_keys))
    }

    fn add_signing_key(
        &self,
        key: SigningKeyRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("add_signing_key", move |ctx| {
            keys::add_signing_key(ctx, key, audit)
        }))
    }

    fn activate_signing_key(
        &self,
        version: u32,
        now: String,
        cryptoperiod_end: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("activate_signing_key", move |ctx| {
            keys::activate_signing_key(ctx, version, &now, &cryptoperiod_end, audit)
        }))
    }

    fn retire_signing_key(
        &self,
        version: u32,
        now: String,
        now_unix: i64,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("retire_signing_key", move |ctx| {
            keys::retire_signing_key(ctx, version, &now, now_unix, audit)
        }))
    }

    fn unexpired_authorizations(
        &self,
        kid: &str,
        now_unix: i64,
    ) -> StoreFuture<'_, (u64, Option<String>)> {
        let kid = kid.to_owned();
        Box::pin(self.read("unexpired_authorizations", move |conn| {
            keys::unexpired_authorizations(conn, &kid, now_unix)
        }))
    }

    fn destroy_signing_key(
        &self,
        version: u32,
        now: String,
        audit: AuditEvent,
    ) -> StoreFuture<'_, KeyChangeOutcome> {
        Box::pin(self.write("destroy_signing_key", move |ctx| {
            keys::destroy_signing_key(ctx, version, &now, audit)
        }))
    }

    fn pin_kek_kcv(
        &self,
        label: &str,
        kcv: &str,
        audit: AuditEvent,
    ) -> StoreFuture<'_, Option<String>> {
        let (label, kcv) = (label.to_owned(), kcv.to_owned());
        Box::pin(self.write("pin_kek_kcv", move |ctx| {
            keys::pin_kek_kcv(ctx, &label, &kcv, audit)
        }))
    }
}

impl DeviceStore for SqliteStore {
    fn create_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ()> {
        Box::pin(self.write("create_challenge", move |ctx| {
            devices::create_challenge(ctx, challenge, audit)
        }))
    }

    fn consume_challenge(
        &self,
        id: &str,
        purpose: ChallengePurpose,
        now: time::OffsetDateTime,
    ) -> StoreFuture<'_, ConsumeOutcome> {
        let id = id.to_owned();
        let now = crate::clock::format_rfc3339(now);
        Box::pin(self.write("consume_challenge", move |ctx| {
            devices::consume_challenge(ctx, &id, purpose, &now)
        }))
    }

    fn enrol_device(
        &self,
        device: DeviceRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, EnrolOutcome> {
        Box::pin(self.write("enrol_device", move |ctx| {
            devices::enrol_device(ctx, device, audit)
        }))
    }

    fn challenge(&self, id: &str) -> StoreFuture<'_, Option<ChallengeRecord>> {
        let id = id.to_owned();
        Box::pin(self.read_point("challenge", move |conn| devices::challenge(conn, &id)))
    }

    fn device(&self, device_id: &str) -> StoreFuture<'_, Option<DeviceRecord>> {
        let device_id = device_id.to_owned();
        Box::pin(self.read_point("device", move |conn| devices::by_id(conn, &device_id)))
    }

    fn device_by_credential(&self, credential_id: &[u8]) -> StoreFuture<'_, Option<DeviceRecord>> {
        let credential_id = credential_id.to_vec();
        Box::pin(self.read_point("device_by_credential", move |conn| {
            devices::by_credential(conn, &credential_id)
        }))
    }

    fn devices_of(&self, owner: &DeviceOwner) -> StoreFuture<'_, Vec<DeviceRecord>> {
        let owner = owner.clone();
        Box::pin(self.read("devices_of", move |conn| devices::of_owner(conn, &owner)))
    }

    fn revoke_device(
        &self,
        revocation: Revocation,
        audit: AuditEvent,
    ) -> StoreFuture<'_, RevokeOutcome> {
        Box::pin(self.write("revoke_device", move |ctx| {
            devices::revoke_device(ctx, revocation, audit)
        }))
    }

    fn update_sign_count(
        &self,
        device_id: &str,
        expected_old: u32,
        new: u32,
        audit: AuditEvent,
    ) -> StoreFuture<'_, bool> {
        let device_id = device_id.to_owned();
        Box::pin(self.write("update_sign_count", move |ctx| {
            devices::update_sign_count(ctx, &device_id, expected_old, new, audit)
        }))
    }
}

impl AuthorizationStore for SqliteStore {
    fn create_authorization_challenge(
        &self,
        challenge: AuthorizationChallengeRecord,
        audit: AuditEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreFuture<'_, Idempotent<ChallengeIssue>> {
        Box::pin(self.write("create_authorization_challenge", move |ctx| {
            authorizations::create_challenge(ctx, challenge, audit, idempotency)
        }))
    }

    fn authorization_challenge(
        &self,
        id: &str,
    ) -> StoreFuture<'_, Option<AuthorizationChallengeRecord>> {
        let id = id.to_owned();
        Box::pin(self.read_point("authorization_challenge", move |conn| {
            authorizations::challenge(conn, &id)
        }))
    }

    fn authorization(&self, id: &str) -> StoreFuture<'_, Option<AuthorizationRecord>> {
        let id = id.to_owned();
        Box::pin(self.read_point("authorization", move |conn| {
            authorizations::authorization(conn, &id)
        }))
    }

    fn commit_authorization(
        &self,
        commit: AuthorizationCommit,
    ) -> StoreFuture<'_, Idempotent<CommitOutcome>> {
        Box::pin(self.write("commit_authorization", move |ctx| {
            authorizations::commit(ctx, commit)
        }))
    }
}

impl IdempotencyStore for SqliteStore {
    fn idempotency(
        &self,
        principal: &str,
        key: &str,
    ) -> StoreFuture<'_, Option<IdempotencyRecord>> {
        let (principal, key) = (principal.to_owned(), key.to_owned());
        Box::pin(self.read_point("idempotency", move |conn| {
            authorizations::read_idempotency(conn, &principal, &key)
        }))
    }
}

impl AuditStore for SqliteStore {
    fn record(&self, audit: AuditEvent) -> StoreFuture<'_, ()> {
        Box::pin(self.write("record", move |ctx| ctx.audit(audit).map(|_| ())))
    }

    fn audit_records(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>> {
        Box::pin(self.read("audit_records", move |conn| {
            readers::audit_records(conn, after, limit)
        }))
    }

    fn latest_audit_record(&self) -> StoreFuture<'_, Option<AuditRecord>> {
        Box::pin(self.read_point("latest_audit_record", readers::latest_audit_record))
    }
}

impl Store for SqliteStore {
    /// A read; and while writes fail (disk full, read-only, I/O errors), a write that must
    /// commit: readiness stays false until the store takes writes again, and turns true by
    /// itself once it does (no request needs to succeed first).
    fn ping(&self) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            self.read("ping", |conn| {
                conn.query_row("SELECT 1", [], |_| Ok(())).map_err(sql_err)
            })
            .await?;
            if self.failing.load(Ordering::Relaxed) {
                self.write("ping", |ctx| {
                    // Rewriting user_version (unused by payhsm, 0) dirties the header page, so
                    // the commit writes and syncs the WAL like any change.
                    let v: i64 = ctx
                        .conn
                        .query_row("PRAGMA user_version", [], |r| r.get(0))
                        .map_err(sql_err)?;
                    ctx.conn
                        .execute_batch(&format!("PRAGMA user_version = {v}"))
                        .map_err(sql_err)
                })
                .await?;
            }
            Ok(())
        })
    }
}
