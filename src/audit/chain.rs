//! SKELETON: to be implemented (store/audit helper).
use super::{AuditEvent, AuditRecord};
/// A SHA-256 chain hash.
pub type AuditHash = [u8; 32];
/// prev_hash of the first record.
pub const GENESIS: AuditHash = [0u8; 32];
/// Places an event in the chain after `prev`.
pub fn link(prev: &AuditHash, seq: u64, event: AuditEvent) -> (AuditRecord, AuditHash) {
    let _ = (prev, seq, event);
    unimplemented!()
}
/// The signed end of an export.
#[derive(Debug, Clone)]
pub struct Checkpoint {}
