//! WAL checkpoints: most of the copying on a background thread, the rest by the writer.
//!
//! The writer runs with `wal_autocheckpoint=0`. SQLite's automatic checkpoint runs inside
//! `COMMIT`, every 1000 pages: before the batch's callers are answered, and so often that hot
//! pages (B-tree roots, the audit log's tail) are copied again and again.
//!
//! - A background thread, on its own connection, runs a PASSIVE checkpoint every
//!   [`BACKGROUND_INTERVAL`]. It never blocks the writer or the readers; but under steady
//!   writes it never reaches the last frame, so alone it would let the WAL grow without end.
//! - The writer, after answering a batch and at most every [`WRITER_INTERVAL`], checkpoints
//!   what is left (little: the background copied the rest). Run by the only writer, that
//!   checkpoint completes, so the next commit starts the WAL over and it stays small.

use super::sql_err;
use crate::store::StoreError;
use rusqlite::Connection;
use std::path::Path;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often the background thread checkpoints.
const BACKGROUND_INTERVAL: Duration = Duration::from_millis(100);
/// The longest time between the writer's own checkpoints while commits arrive.
const WRITER_INTERVAL: Duration = Duration::from_secs(1);

/// Starts the background checkpoint thread; it stops (after a last checkpoint) when the
/// returned sender is dropped.
pub(super) fn start_background(path: &Path) -> Result<mpsc::Sender<()>, StoreError> {
    let conn = Connection::open(path).map_err(sql_err)?;
    conn.busy_timeout(Duration::from_secs(5)).map_err(sql_err)?;
    conn.execute_batch("PRAGMA synchronous=FULL;")
        .map_err(sql_err)?;
    let (stop, stopped) = mpsc::channel::<()>();
    std::thread::Builder::new()
        .name("payhsm-sqlite-checkpoint".into())
        .spawn(move || loop {
            match stopped.recv_timeout(BACKGROUND_INTERVAL) {
                Err(RecvTimeoutError::Timeout) => passive(&conn),
                Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                    passive(&conn);
                    break;
                }
            }
        })
        .map_err(|e| StoreError::unavailable_from("cannot start the checkpoint thread", e))?;
    Ok(stop)
}

/// One PASSIVE checkpoint: copies what it can without waiting for anyone. A failure (disk
/// full) is logged and retried at the next interval; the WAL keeps every commit meanwhile.
fn passive(conn: &Connection) {
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
        tracing::warn!(error = %crate::fault::Chain(&e), "WAL checkpoint failed; retrying");
    }
}

/// When the writer last checkpointed.
pub(super) struct Checkpointer {
    last: Instant,
}

impl Checkpointer {
    /// Starts the clock.
    pub(super) fn new() -> Self {
        Self {
            last: Instant::now(),
        }
    }

    /// After a committed batch: checkpoints if the interval has passed (when the background
    /// thread is mid-checkpoint this one returns at once, and the next batch tries again).
    pub(super) fn after_commit(&mut self, conn: &Connection) {
        if self.last.elapsed() < WRITER_INTERVAL {
            return;
        }
        let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(0));
        match done {
            // busy = 0: this checkpoint ran (it may still have stopped at a reader).
            Ok(0) => self.last = Instant::now(),
            Ok(_) => {}
            Err(e) => {
                self.last = Instant::now();
                tracing::warn!(error = %crate::fault::Chain(&e), "WAL checkpoint failed; retrying");
            }
        }
    }
}
