//! WAL checkpoints on the writer thread, between batches.
//!
//! The writer runs with `wal_autocheckpoint=0`. SQLite's automatic checkpoint runs inside
//! `COMMIT`, every 1000 pages: before the batch's callers are answered, and so often that hot
//! pages (B-tree roots, the audit log's tail) are copied again and again. Instead the writer
//! checkpoints after answering a batch, at most every [`INTERVAL`]: a page written many times
//! in between is copied once. A checkpoint run by the only writer completes, so the next
//! commit starts the WAL over and it stays small (a checkpoint on another thread never
//! catches up with a busy writer, and the WAL would only grow).

use rusqlite::Connection;
use std::time::{Duration, Instant};

/// The longest time between checkpoints while commits arrive.
const INTERVAL: Duration = Duration::from_millis(100);

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

    /// After a committed batch: checkpoints if the interval has passed. A failure (disk full)
    /// is logged and retried later; the WAL keeps every commit meanwhile.
    pub(super) fn after_commit(&mut self, conn: &Connection) {
        if self.last.elapsed() < INTERVAL {
            return;
        }
        self.last = Instant::now();
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}
