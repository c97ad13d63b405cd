//! The audit log: records written on their own, and reads in order.

use super::StoreFuture;
use crate::audit::{AuditEvent, AuditRecord};

/// The audit log. Changes write their records in their own transaction; this port writes the
/// records of refused requests and key events, and reads the log back.
pub trait AuditStore: Send + Sync {
    /// Writes an audit record on its own (refused requests, key events).
    fn record(&self, audit: AuditEvent) -> StoreFuture<'_, ()>;

    /// Audit records with `seq > after`, at most `limit`, in order.
    fn audit_records(&self, after: u64, limit: usize) -> StoreFuture<'_, Vec<AuditRecord>>;

    /// The newest audit record (the chain's head), if the log is not empty.
    fn latest_audit_record(&self) -> StoreFuture<'_, Option<AuditRecord>>;
}

/// The whole audit log, in order, read a page of `PAGE` records at a time (offline exports
/// and the evidence report; the daemon's tree reads incrementally instead).
pub async fn read_whole_audit_log(
    store: &(impl AuditStore + ?Sized),
) -> Result<Vec<AuditRecord>, super::StoreError> {
    const PAGE: usize = 10_000;
    let mut log: Vec<AuditRecord> = Vec::new();
    loop {
        let after = log.last().map_or(0, |r| r.seq);
        let page = store.audit_records(after, PAGE).await?;
        if page.is_empty() {
            return Ok(log);
        }
        log.extend(page);
    }
}
