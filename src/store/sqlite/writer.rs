//! The one writer thread: group commit.
//!
//! Jobs arrive over a channel. The thread takes the first one (blocking), drains what else is
//! queued up to `max_batch`, runs them in one `BEGIN IMMEDIATE` transaction with a SAVEPOINT
//! per job, commits once, and only then answers. One fsync serves the whole batch; a job that
//! fails is rolled back to its savepoint alone.

use super::cache::TokenCache;
use super::sql_err;
use crate::audit::{link_encoded, AuditEvent, AuditHash, AuditRecord, GENESIS};
use crate::card::{Domain, Token, TokenFormat};
use crate::store::StoreError;
use rusqlite::{params, Connection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

/// The end of the audit chain as committed (or as released within the open batch).
#[derive(Debug, Clone, Copy)]
pub(super) struct ChainHead {
    seq: u64,
    hash: AuditHash,
}

impl ChainHead {
    /// Reads the head from the database.
    pub(super) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let row: Option<(i64, String)> = conn
            .query_row(
                "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map(Some)
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(None),
                e => Err(e),
            })
            .map_err(sql_err)?;
        let Some((seq, hash)) = row else {
            return Ok(Self {
                seq: 0,
                hash: GENESIS,
            });
        };
        let seq = u64::try_from(seq)
            .map_err(|_| StoreError::corrupt(format!("audit_log seq {seq} is negative")))?;
        let hash = crate::audit::hash_from_hex(&hash)
            .ok_or_else(|| StoreError::corrupt(format!("audit_log seq {seq}: bad hash")))?;
        Ok(Self { seq, hash })
    }
}

/// What the writer carries from batch to batch about the database; a job or batch that rolls
/// back restores it as it was before.
#[derive(Debug, Clone, Copy)]
pub(super) struct Carried {
    head: ChainHead,
    /// The token format the database has adopted for derived tokens, once a job has checked
    /// (`tokens::adopt_format`); `None` until then, and after a failed batch.
    pub(super) token_format: Option<TokenFormat>,
}

/// What a job sees: the open transaction, the audit chain and the adopted token format.
pub(super) struct JobCtx<'a> {
    /// The write connection, inside the batch transaction and the job's savepoint.
    pub(super) conn: &'a Connection,
    pub(super) carried: Carried,
    /// Token rows changed by the batch so far; see [`JobCtx::touch`].
    touched: &'a mut Vec<(Domain, Token)>,
}

impl JobCtx<'_> {
    /// Records that the job changes (or may change) this token row: the writer drops it from
    /// the [`TokenCache`] once the batch has ended, before anyone is answered. Every UPDATE of
    /// `tokens` calls it; an INSERT need not (missing rows are never cached).
    pub(super) fn touch(&mut self, domain: &Domain, token: &Token) {
        self.touched.push((domain.clone(), token.clone()));
    }

    /// Appends an audit record after the current head; it becomes part of the chain only
    /// if the job succeeds.
    pub(super) fn audit(&mut self, event: AuditEvent) -> Result<AuditRecord, StoreError> {
        let seq = self.carried.head.seq.saturating_add(1);
        let (record, hash, json) = link_encoded(&self.carried.head.hash, seq, event)
            .map_err(|e| StoreError::unavailable_from("audit record encoding", e))?;
        let seq_i =
            i64::try_from(seq).map_err(|_| StoreError::unavailable("audit seq out of range"))?;
        self.conn
            .prepare_cached(
                "INSERT INTO audit_log (seq, action, token, record, prev_hash, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    seq_i,
                    record.event.action,
                    record.event.token,
                    json,
                    record.prev_hash,
                    record.hash
                ])
            })
            .map_err(sql_err)?;
        self.carried.head = ChainHead { seq, hash };
        Ok(record)
    }
}

/// A queued unit of work and its reply.
pub(super) trait Job: Send {
    /// Runs inside the job's savepoint; `Err` rolls the savepoint back.
    fn run(&mut self, ctx: &mut JobCtx<'_>) -> Result<(), ()>;
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
    F: FnOnce(&mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
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
    F: FnOnce(&mut JobCtx<'_>) -> Result<T, StoreError> + Send + 'static,
{
    fn run(&mut self, ctx: &mut JobCtx<'_>) -> Result<(), ()> {
        let result = match self.work.take() {
            Some(work) => work(ctx),
            None => Err(StoreError::unavailable("job run twice")),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        if ok {
            Ok(())
        } else {
            Err(())
        }
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

/// Runs the writer loop until every sender is dropped. `failing` is true from a batch that
/// could not commit (disk full, I/O error) until the next one that does.
pub(super) fn run(
    conn: Connection,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    max_batch: usize,
    failing: Arc<AtomicBool>,
    cache: Option<Arc<TokenCache>>,
) {
    let mut carried = match ChainHead::load(&conn) {
        Ok(head) => Carried {
            head,
            token_format: None,
        },
        Err(e) => {
            // Unusable log: answer every job with the error rather than fork the chain.
            for job in jobs {
                job.reply(Err(&e));
            }
            return;
        }
    };
    let max_batch = max_batch.max(1);
    let mut checkpointer = super::checkpointer::Checkpointer::new();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let (next, committed) = run_batch(&conn, carried, batch, cache.as_deref());
        carried = next;
        failing.store(!committed, Ordering::Relaxed);
        if committed {
            checkpointer.after_commit(&conn);
        }
    }
}

/// Runs one batch; returns what the writer carries afterwards (on failure the head reloaded
/// from the DB and the format forgotten) and whether the batch committed. Rolled back or
/// not, the token rows the jobs touched leave the cache before any job is answered.
fn run_batch(
    conn: &Connection,
    carried: Carried,
    mut batch: Vec<Box<dyn Job>>,
    cache: Option<&TokenCache>,
) -> (Carried, bool) {
    let mut touched = Vec::new();
    let result = run_jobs(conn, carried, &mut batch, &mut touched);
    if let Some(cache) = cache {
        for (domain, token) in &touched {
            cache.invalidate(domain, token);
        }
    }
    match result {
        Ok(next) => {
            for job in batch {
                job.reply(Ok(()));
            }
            (next, true)
        }
        Err(e) => {
            for job in batch {
                job.reply(Err(&e));
            }
            let head = ChainHead::load(conn).unwrap_or(carried.head);
            let reloaded = Carried {
                head,
                token_format: None,
            };
            (reloaded, false)
        }
    }
}

/// The batch's transaction: every job in its savepoint, then the commit. On an error the
/// transaction is rolled back and the error returned for every job.
fn run_jobs(
    conn: &Connection,
    carried: Carried,
    batch: &mut [Box<dyn Job>],
    touched: &mut Vec<(Domain, Token)>,
) -> Result<Carried, StoreError> {
    exec(conn, "BEGIN IMMEDIATE").map_err(|e| rollback(conn, e))?;
    let mut ctx = JobCtx {
        conn,
        carried,
        touched,
    };
    for job in batch.iter_mut() {
        // SQLite rolls a whole transaction back on some errors (disk full, I/O): a SAVEPOINT
        // then would open a fresh transaction and silently drop the jobs already run.
        if conn.is_autocommit() {
            return Err(rolled_back());
        }
        exec(conn, "SAVEPOINT job").map_err(|e| rollback(conn, e))?;
        let before = ctx.carried;
        let ok = job.run(&mut ctx).is_ok() && exec(conn, "RELEASE job").is_ok();
        if !ok {
            ctx.carried = before;
            if conn.is_autocommit() {
                return Err(rolled_back());
            }
            exec(conn, "ROLLBACK TO job")
                .and_then(|()| exec(conn, "RELEASE job"))
                .map_err(|e| rollback(conn, e))?;
        }
    }
    exec(conn, "COMMIT").map_err(|e| rollback(conn, e))?;
    Ok(ctx.carried)
}

fn rolled_back() -> StoreError {
    StoreError::unavailable("transaction was rolled back by SQLite")
}

/// Rolls back what is open; returns `e`.
fn rollback(conn: &Connection, e: StoreError) -> StoreError {
    if !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    e
}

/// Runs one transaction-control statement, prepared once per connection: these run several
/// times per job, and `execute_batch` would parse them every time.
fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut s| s.execute([]))
        .map(|_| ())
        .map_err(sql_err)
}
