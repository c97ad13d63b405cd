//! The writer task: group commit, and one audit chain shared by every replica.
//!
//! Jobs arrive over a channel. The task takes the first one, drains what else is queued up
//! to `max_batch`, and runs them in one transaction on its own connection, and answers only
//! after the COMMIT. Each transaction first locks the chain head row (`audit_head ... FOR
//! UPDATE`): batches of all replicas are serialized there, and the head is read again every
//! batch, since another replica may have appended since.
//!
//! Round trips are what a batch costs (every statement waits for the server), so a job sends
//! only its own reads and writes: its audit records are kept in the batch and written with the
//! head in one statement at the end, and the stored data keys are read once per batch. There
//! is no SAVEPOINT per job (two more round trips each): a job that fails rolls the whole batch
//! back, and every request in it is answered 503, none applied (`docs/decisions.md`).
//!
//! A batch that fails (connection lost, COMMIT refused) answers every job
//! [`StoreError::Unavailable`] and is never retried: once COMMIT was sent its outcome may be
//! unknown, and running the jobs again could apply a change twice. The next batch
//! reconnects, with a backoff while PostgreSQL stays unreachable.

use super::connection::{execute, pg_err, query_one, Connector};
use crate::audit::{hash_from_hex, link_encoded, to_hex, AuditEvent, AuditHash, AuditRecord};
use crate::card::TokenFormat;
use crate::keys::KeyVersion;
use crate::store::StoreError;
use deadpool_postgres::ClientWrapper;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// The future a job returns; it may borrow the job's context.
pub(super) type JobFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// The end of the audit chain within the open batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ChainHead {
    seq: u64,
    hash: AuditHash,
}

impl ChainHead {
    /// Reads the head row; `lock` takes its row lock for the rest of the transaction.
    async fn read(db: &ClientWrapper, lock: bool) -> Result<Self, StoreError> {
        let sql = if lock {
            "SELECT seq, hash FROM audit_head WHERE id FOR UPDATE"
        } else {
            "SELECT seq, hash FROM audit_head WHERE id"
        };
        let row = query_one(db, sql, &[]).await?;
        let seq: i64 = super::connection::get(&row, 0)?;
        let hash: String = super::connection::get(&row, 1)?;
        let seq = u64::try_from(seq)
            .map_err(|_| StoreError::corrupt(format!("audit_head seq {seq} is negative")))?;
        let hash = hash_from_hex(&hash)
            .ok_or_else(|| StoreError::corrupt(format!("audit_head seq {seq}: bad hash")))?;
        Ok(Self { seq, hash })
    }

    /// Checks at open that the head row is the last record of the log (a head that does not
    /// match would fork the chain). One statement, so one snapshot: another replica may be
    /// appending meanwhile.
    pub(super) async fn check(db: &ClientWrapper) -> Result<(), StoreError> {
        let row = query_one(
            db,
            "SELECT h.seq, h.hash, l.seq, l.hash FROM audit_head h
             LEFT JOIN LATERAL (SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1) l
                 ON true
             WHERE h.id",
            &[],
        )
        .await?;
        let head: (i64, String) = (
            super::connection::get(&row, 0)?,
            super::connection::get(&row, 1)?,
        );
        let last: (Option<i64>, Option<String>) = (
            super::connection::get(&row, 2)?,
            super::connection::get(&row, 3)?,
        );
        let last = (
            last.0.unwrap_or(0),
            last.1.unwrap_or_else(|| to_hex(&crate::audit::GENESIS)),
        );
        if head != last {
            return Err(StoreError::corrupt(format!(
                "audit_head (seq {}) is not the last audit record (seq {})",
                head.0, last.0
            )));
        }
        Ok(())
    }
}

/// What a batch carries from job to job.
#[derive(Debug, Clone)]
pub(super) struct Carried {
    head: ChainHead,
    /// The token format the database has adopted, once a job of this batch has checked
    /// (`tokens::adopt_format`). Forgotten between batches: another replica may change it.
    pub(super) token_format: Option<TokenFormat>,
    /// The stored data key versions that still open records (and whether each is the active
    /// one), once a job of this batch has read them; a job that changes data keys forgets
    /// them. Forgotten between batches, like the format.
    pub(super) live_keys: Option<Vec<(KeyVersion, bool)>>,
}

/// An audit row kept until the end of its batch.
struct PendingAudit {
    seq: i64,
    action: String,
    token: Option<String>,
    record: String,
    prev_hash: String,
    hash: String,
}

/// What a job sees: the writer's connection inside the batch transaction, and what the batch
/// carries.
pub(super) struct JobCtx {
    /// The writer's connection.
    pub(super) db: ClientWrapper,
    pub(super) carried: Carried,
    /// The batch's audit rows, written at its end.
    pending: Vec<PendingAudit>,
}

impl JobCtx {
    /// Appends an audit record after the current head; it is written with the batch's other
    /// records at its end, and is part of the chain only if the batch commits.
    pub(super) async fn audit(&mut self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        let seq = self.carried.head.seq.saturating_add(1);
        let (record, hash, json) = link_encoded(&self.carried.head.hash, seq, event)
            .map_err(|e| StoreError::unavailable_from("audit record encoding", e))?;
        let seq_i =
            i64::try_from(seq).map_err(|_| StoreError::unavailable("audit seq out of range"))?;
        self.pending.push(PendingAudit {
            seq: seq_i,
            action: record.event.action.clone(),
            token: record.event.token.clone(),
            record: json,
            prev_hash: record.prev_hash.clone(),
            hash: record.hash.clone(),
        });
        self.carried.head = ChainHead { seq, hash };
        Ok(record)
    }
}

/// A queued unit of work and its reply.
pub(super) trait Job: Send {
    /// Runs inside the batch transaction; `false` rolls the whole batch back.
    fn run<'a>(
        &'a mut self,
        ctx: &'a mut JobCtx,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>>;
    /// Answers the caller once the batch's fate is known: `committed` is the commit result.
    fn reply(self: Box<Self>, committed: Result<(), &StoreError>);
}

/// A job computing a `T`, answered over a oneshot channel.
struct TypedJob<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

/// A job running `work`, and the receiver of its answer.
pub(super) fn job<T, F>(work: F) -> (Box<dyn Job>, oneshot::Receiver<Result<T, StoreError>>)
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut JobCtx) -> JobFuture<'a, T> + Send + 'static,
{
    let (reply, rx) = oneshot::channel();
    let job = TypedJob {
        work: Some(work),
        result: None,
        reply,
    };
    (Box::new(job), rx)
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send + 'static,
    F: for<'a> FnOnce(&'a mut JobCtx) -> JobFuture<'a, T> + Send + 'static,
{
    fn run<'a>(
        &'a mut self,
        ctx: &'a mut JobCtx,
    ) -> Pin<Box<dyn Future<Output = bool> + Send + 'a>> {
        Box::pin(async move {
            let result = match self.work.take() {
                Some(work) => work(ctx).await,
                None => Err(StoreError::unavailable("job run twice")),
            };
            let ok = result.is_ok();
            self.result = Some(result);
            ok
        })
    }

    fn reply(self: Box<Self>, committed: Result<(), &StoreError>) {
        let answer = match (self.result, committed) {
            // The job's own error stands whatever happened to the batch.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (Some(Ok(_)), Err(e)) | (None, Err(e)) => Err(StoreError::unavailable_from(
                "batch not committed",
                e.clone(),
            )),
            (None, Ok(())) => Err(StoreError::unavailable("job was not run")),
        };
        // The caller may have gone away; nothing to do then.
        let _ = self.reply.send(answer);
    }
}

/// Waits between reconnection attempts while PostgreSQL stays unreachable; jobs that arrive
/// meanwhile are answered at once instead of queueing behind a connect timeout each.
struct Backoff {
    next_attempt: Option<Instant>,
    delay: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self {
            next_attempt: None,
            delay: Self::FIRST,
        }
    }

    fn waiting(&self) -> bool {
        self.next_attempt.is_some_and(|t| Instant::now() < t)
    }

    fn failed(&mut self) {
        self.next_attempt = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(Self::MAX);
    }

    fn reset(&mut self) {
        self.next_attempt = None;
        self.delay = Self::FIRST;
    }
}

/// The writer task's state.
pub(super) struct Writer {
    pub(super) connector: Arc<Connector>,
    pub(super) jobs: mpsc::UnboundedReceiver<Box<dyn Job>>,
    pub(super) max_batch: usize,
    /// True from a batch that could not commit until the next one that does.
    pub(super) failing: Arc<AtomicBool>,
}

impl Writer {
    /// Runs until every sender is dropped. `db` is the connection opened with the store.
    pub(super) async fn run(mut self, db: ClientWrapper) {
        let mut ctx = Some(new_ctx(db));
        let mut backoff = Backoff::new();
        let max_batch = self.max_batch.max(1);
        while let Some(first) = self.jobs.recv().await {
            let mut batch = vec![first];
            while batch.len() < max_batch {
                match self.jobs.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            let mut live = match ctx.take().filter(|c| !c.db.is_closed()) {
                Some(c) => c,
                None => match self.reconnect(&mut backoff).await {
                    Ok(db) => new_ctx(db),
                    Err(e) => {
                        self.failing.store(true, Ordering::Relaxed);
                        for job in batch {
                            job.reply(Err(&e));
                        }
                        continue;
                    }
                },
            };
            let result = run_jobs(&mut live, &mut batch).await;
            if let Err(e) = &result {
                tracing::warn!(error = %crate::fault::Chain(&e), jobs = batch.len(), "postgres batch not committed");
                if !live.db.is_closed() {
                    // Whatever is left open (a COMMIT that failed leaves nothing).
                    let _ = exec(&live.db, "ROLLBACK").await;
                }
            }
            self.failing.store(result.is_err(), Ordering::Relaxed);
            if result.is_ok() {
                backoff.reset();
            }
            for job in batch {
                job.reply(result.as_ref().map(|_| ()));
            }
            ctx = Some(live);
        }
    }

    /// Connects again unless the backoff says to wait.
    async fn reconnect(&self, backoff: &mut Backoff) -> Result<ClientWrapper, StoreError> {
        if backoff.waiting() {
            return Err(StoreError::unavailable(
                "postgres is unreachable; the writer reconnects shortly",
            ));
        }
        match self.connector.connect().await {
            Ok(db) => {
                tracing::info!("postgres writer reconnected");
                Ok(db)
            }
            Err(e) => {
                backoff.failed();
                Err(e)
            }
        }
    }
}

fn new_ctx(db: ClientWrapper) -> JobCtx {
    JobCtx {
        db,
        carried: Carried {
            head: ChainHead {
                seq: 0,
                hash: crate::audit::GENESIS,
            },
            token_format: None,
            live_keys: None,
        },
        pending: Vec::new(),
    }
}

/// The batch's transaction: the head locked and read, every job, the audit rows and the head
/// written in one statement, the commit. On an error (a job's included) the caller rolls back
/// what is open.
async fn run_jobs(ctx: &mut JobCtx, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    exec(&ctx.db, "BEGIN").await?;
    let start = ChainHead::read(&ctx.db, true).await?;
    ctx.carried = Carried {
        head: start,
        token_format: None,
        live_keys: None,
    };
    ctx.pending.clear();
    for job in batch.iter_mut() {
        if !job.run(ctx).await {
            return Err(StoreError::unavailable(
                "another request of the same transaction failed; nothing was applied",
            ));
        }
    }
    if !ctx.pending.is_empty() {
        write_audit(ctx).await?;
    }
    exec(&ctx.db, "COMMIT").await
}

/// Inserts the batch's audit rows and moves the head to the last, in one statement.
async fn write_audit(ctx: &mut JobCtx) -> Result<(), StoreError> {
    let pending = std::mem::take(&mut ctx.pending);
    let head = &ctx.carried.head;
    let seq =
        i64::try_from(head.seq).map_err(|_| StoreError::unavailable("audit seq out of range"))?;
    let mut seqs = Vec::with_capacity(pending.len());
    let mut actions = Vec::with_capacity(pending.len());
    let mut tokens = Vec::with_capacity(pending.len());
    let mut records = Vec::with_capacity(pending.len());
    let mut prevs = Vec::with_capacity(pending.len());
    let mut hashes = Vec::with_capacity(pending.len());
    for p in pending {
        seqs.push(p.seq);
        actions.push(p.action);
        tokens.push(p.token);
        records.push(p.record);
        prevs.push(p.prev_hash);
        hashes.push(p.hash);
    }
    execute(
        &ctx.db,
        "WITH appended AS (
             INSERT INTO audit_log (seq, action, token, record, prev_hash, hash)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[],
                                  $6::text[])
         )
         UPDATE audit_head SET seq = $7, hash = $8 WHERE id",
        &[
            &seqs,
            &actions,
            &tokens,
            &records,
            &prevs,
            &hashes,
            &seq,
            &to_hex(&head.hash),
        ],
    )
    .await
    .map(drop)
}

/// Runs one transaction-control statement, prepared once per connection.
async fn exec(db: &ClientWrapper, sql: &str) -> Result<(), StoreError> {
    let stmt = db.prepare_cached(sql).await.map_err(pg_err)?;
    db.execute(&stmt, &[]).await.map_err(pg_err).map(|_| ())
}

/// Audit records with `seq > after`, at most `limit`, in order.
pub(super) async fn audit_records(
    db: &ClientWrapper,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = super::connection::query(
        db,
        "SELECT seq, record FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2",
        &[&after, &limit],
    )
    .await?;
    rows.iter().map(decode_audit).collect()
}

/// The record with the highest `seq`, if any.
pub(super) async fn latest_audit_record(
    db: &ClientWrapper,
) -> Result<Option<AuditRecord>, StoreError> {
    super::connection::query_opt(
        db,
        "SELECT seq, record FROM audit_log ORDER BY seq DESC LIMIT 1",
        &[],
    )
    .await?
    .as_ref()
    .map(decode_audit)
    .transpose()
}

/// A stored `(seq, record)` row, checked against its `seq`.
fn decode_audit(row: &tokio_postgres::Row) -> Result<AuditRecord, StoreError> {
    let seq: i64 = super::connection::get(row, 0)?;
    let json: String = super::connection::get(row, 1)?;
    let record: AuditRecord = serde_json::from_str(&json)
        .map_err(|e| StoreError::corrupt_from(format!("audit seq {seq}"), e))?;
    if i64::try_from(record.seq).ok() != Some(seq) {
        return Err(StoreError::corrupt(format!(
            "audit seq {seq}: record says seq {}",
            record.seq
        )));
    }
    Ok(record)
}
