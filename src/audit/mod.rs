//! The audit log: typed events (never a PAN: a token and the last four digits at most),
//! hash-chained records, HSM-signed checkpoints, JSON-lines export and verification, and the
//! PCI DSS evidence report derived from the log ([`report`]).
//!
//! The chain: `hash = SHA-256(prev_hash || canonical JSON of (seq, event))`, with the first
//! record's `prev_hash` 32 zero bytes. An export ends with a checkpoint line that carries the
//! record count and head hash, signed by the HSM audit key, so truncation is detected too.

mod chain;
mod event;
pub mod merkle;
pub mod proof;
pub mod report;
mod verify;

pub use chain::{export_jsonl, link, AuditHash, Checkpoint, GENESIS};
pub(crate) use chain::{hash_from_hex, link_encoded, to_hex};
pub use event::{AuditEvent, AuditRecord, Decision, LoggedEvent, PolicyVerdict, Receipt};
pub use verify::{verify_export, VerifyError, VerifyErrorKind, VerifySummary};
