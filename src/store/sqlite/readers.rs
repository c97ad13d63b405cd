//! Read connections: a fixed pool, each use on a blocking worker so the async runtime never
//! waits on SQLite. WAL lets them read while the writer commits.

use super::{schema, sql_err};
use crate::audit::AuditRecord;
use crate::keys::{DataKeyState, KeyVersion, WrappedDataKey};
use crate::store::StoreError;
use rusqlite::{params, Connection, OpenFlags};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::Semaphore;

/// A fixed set of read-only connections; the semaphore has one permit per idle connection.
pub(super) struct ReaderPool {
    idle: Arc<Mutex<Vec<Connection>>>,
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    /// Opens `size` read connections to an existing database.
    pub(super) fn open(path: &Path, size: usize) -> Result<Self, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut idle = Vec::with_capacity(size);
        for _ in 0..size {
            let conn = Connection::open_with_flags(path, flags).map_err(sql_err)?;
            schema::configure_reader(&conn)?;
            idle.push(conn);
        }
        Ok(Self {
            idle: Arc::new(Mutex::new(idle)),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `read` on an idle connection on a blocking worker. The connection and its permit
    /// go back from the worker itself, so a caller that gives up does not shrink the pool.
    pub(super) async fn run<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        let idle = Arc::clone(&self.idle);
        tokio::task::spawn_blocking(move || {
            // Holding a permit guarantees an idle connection.
            let conn = idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop()
                .ok_or_else(|| StoreError::unavailable("no idle read connection"))?;
            let result = read(&conn);
            idle.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::unavailable_from("read task failed", e))?
    }

    /// Runs a point read (one row by its key: microseconds on a warm page cache) on the
    /// calling task's thread. Handing such a read to a blocking worker and back costs more than
    /// the read; anything that scans goes through [`ReaderPool::run`].
    pub(super) async fn run_point<T, F>(&self, read: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        // Holding a permit guarantees an idle connection.
        let conn = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .ok_or_else(|| StoreError::unavailable("no idle read connection"))?;
        let result = read(&conn);
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(conn);
        drop(permit);
        result
    }

    /// Runs `read` on an idle connection on this thread, for use before the pool is shared.
    pub(super) fn with_idle<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let conn = idle
            .last()
            .ok_or_else(|| StoreError::unavailable("no idle read connection"))?;
        read(conn)
    }
}

/// All wrapped data keys, oldest first.
pub(super) fn data_keys(conn: &Connection) -> Result<Vec<WrappedDataKey>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, kek_label, iv, wrapped, state, created_at
             FROM data_keys ORDER BY version",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Vec<u8>>(2)?,
                r.get::<_, Vec<u8>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (version, kek_label, iv, wrapped, state, created_at) = row.map_err(sql_err)?;
        let bad = |what: &str| StoreError::corrupt(format!("data key {version}: bad {what}"));
        out.push(WrappedDataKey {
            version: KeyVersion(u32::try_from(version).map_err(|_| bad("version"))?),
            kek_label,
            iv: iv.as_slice().try_into().map_err(|_| bad("iv"))?,
            wrapped,
            state: DataKeyState::parse(&state).ok_or_else(|| bad("state"))?,
            created_at,
        });
    }
    Ok(out)
}

/// The record with the highest `seq`, if any.
pub(super) fn latest_audit_record(conn: &Connection) -> Result<Option<AuditRecord>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, record FROM audit_log ORDER BY seq DESC LIMIT 1")
        .map_err(sql_err)?;
    let mut rows = stmt.query([]).map_err(sql_err)?;
    let Some(row) = rows.next().map_err(sql_err)? else {
        return Ok(None);
    };
    let (seq, json): (i64, String) = (row.get(0).map_err(sql_err)?, row.get(1).map_err(sql_err)?);
    decode_audit(seq, &json).map(Some)
}

/// A stored record, checked against the row's `seq`.
fn decode_audit(seq: i64, json: &str) -> Result<AuditRecord, StoreError> {
    let record: AuditRecord = serde_json::from_str(json)
        .map_err(|e| StoreError::corrupt_from(format!("audit seq {seq}"), e))?;
    if i64::try_from(record.seq).ok() != Some(seq) {
        return Err(StoreError::corrupt(format!(
            "audit seq {seq}: record says seq {}",
            record.seq
        )));
    }
    Ok(record)
}

/// Audit records with `seq > after`, at most `limit`, in order.
pub(super) fn audit_records(
    conn: &Connection,
    after: u64,
    limit: usize,
) -> Result<Vec<AuditRecord>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn
        .prepare_cached("SELECT seq, record FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2")
        .map_err(sql_err)?;
    let rows = stmt
        .query_map(params![after, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (seq, json) = row.map_err(sql_err)?;
        out.push(decode_audit(seq, &json)?);
    }
    Ok(out)
}
