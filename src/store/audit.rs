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
