//! Verification of a JSON-lines export: pure, text in and verdict out (a fuzz target calls it).
//!
//! The chain is recomputed from [`GENESIS`] with the canonical hash of each parsed record, so
//! an edit, a removal, a reordering, a truncation, a forged checkpoint or anything appended
//! after the checkpoint is reported with the line of the first bad record.

use super::chain::{hash_from_hex, record_hash, to_hex, CheckpointLine, GENESIS};
use super::{Checkpoint, Decision, LoggedEvent};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

/// What an intact log contained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    /// Number of records (the last `seq`).
    pub records: u64,
    /// Lowercase hex head hash.
    pub head: String,
    /// base64url (no padding) of the checkpoint's public key.
    pub public_key: String,
}

/// The first problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyError {
    /// 1-based line number of the first bad line (one past the end when a line is missing).
    pub line: usize,
    /// The `seq` of the bad record, when it could be read.
    pub seq: Option<u64>,
    /// What is wrong.
    pub kind: VerifyErrorKind,
}

/// What is wrong with an export.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyErrorKind {
    /// The line is not a record or a checkpoint (bad JSON, unknown or missing fields).
    Malformed(String),
    /// The record's `seq` is not the previous one plus one: a record was removed or reordered.
    OutOfSequence {
        /// The seq that should come here.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// `prev_hash` is not the previous record's hash.
    BrokenLink,
    /// The record's `hash` does not match its contents: the record was edited.
    Edited,
    /// The export ends without a checkpoint line: it was truncated.
    MissingCheckpoint,
    /// The checkpoint's count or head differs from the records read.
    CheckpointMismatch,
    /// The checkpoint's public key or signature is not well-formed.
    MalformedCheckpoint(&'static str),
    /// The checkpoint signature does not verify under its public key.
    BadSignature,
    /// The checkpoint is signed by a key other than the expected one.
    KeyMismatch,
    /// Something follows the checkpoint line.
    TrailingData,
}

impl std::fmt::Display for VerifyErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(why) => write!(f, "malformed line: {why}"),
            Self::OutOfSequence { expected, found } => write!(
                f,
                "record removed or reordered: expected seq {expected}, found {found}"
            ),
            Self::BrokenLink => {
                f.write_str("chain broken: prev_hash does not match the previous record")
            }
            Self::Edited => f.write_str("record was edited: hash does not match"),
            Self::MissingCheckpoint => f.write_str("log truncated: no checkpoint at the end"),
            Self::CheckpointMismatch => {
                f.write_str("checkpoint does not match the records (count or head hash)")
            }
            Self::MalformedCheckpoint(why) => write!(f, "malformed checkpoint: {why}"),
            Self::BadSignature => f.write_str("checkpoint signature does not verify"),
            Self::KeyMismatch => f.write_str("checkpoint signed by an unexpected key"),
            Self::TrailingData => f.write_str("data after the checkpoint"),
        }
    }
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}", self.line)?;
        if let Some(seq) = self.seq {
            write!(f, " (seq {seq})")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for VerifyError {}

/// A record line, strictly: every field once, nothing unknown (an extra field would not be
/// covered by the hash). Must list the fields of [`LoggedEvent`]; a round-trip test guards it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordLine {
    seq: u64,
    time: String,
    request_id: String,
    principal: String,
    action: String,
    domain: Option<String>,
    token: Option<String>,
    last4: Option<String>,
    decision: Decision,
    policy_ids: Vec<String>,
    outcome: String,
    #[serde(default)]
    detail: Option<String>,
    prev_hash: String,
    hash: String,
}

impl RecordLine {
    fn event(self) -> (u64, LoggedEvent, String, String) {
        let event = LoggedEvent {
            time: self.time,
            request_id: self.request_id,
            principal: self.principal,
            action: self.action,
            domain: self.domain,
            token: self.token,
            last4: self.last4,
            decision: self.decision,
            policy_ids: self.policy_ids,
            outcome: self.outcome,
            detail: self.detail,
        };
        (self.seq, event, self.prev_hash, self.hash)
    }
}

/// Verifies an export made by [`super::export_jsonl`]. With `expected_key` (the 65-byte
/// uncompressed P-256 point of the audit key), a checkpoint signed by any other key fails.
pub fn verify_export(
    text: &str,
    expected_key: Option<&[u8]>,
) -> Result<VerifySummary, VerifyError> {
    let mut prev = GENESIS;
    let mut count: u64 = 0;
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let mut last_line = 0;
    while let Some((line, raw)) = lines.next() {
        last_line = line;
        let err = |seq, kind| VerifyError { line, seq, kind };
        let rec = match serde_json::from_str::<RecordLine>(raw) {
            Ok(rec) => rec,
            Err(record_err) => {
                // Not a record: the only other line allowed is the final checkpoint.
                let Ok(cp) = serde_json::from_str::<CheckpointLine>(raw) else {
                    return Err(err(
                        None,
                        // Where and what kind, never serde_json's text: it quotes the
                        // line's values, and an edited export may hold anything.
                        VerifyErrorKind::Malformed(format!(
                            "{:?} error at column {}",
                            record_err.classify(),
                            record_err.column()
                        )),
                    ));
                };
                let summary = check_checkpoint(&cp.checkpoint, count, &prev, expected_key)
                    .map_err(|kind| err(None, kind))?;
                if let Some((line, _)) = lines.next() {
                    return Err(VerifyError {
                        line,
                        seq: None,
                        kind: VerifyErrorKind::TrailingData,
                    });
                }
                return Ok(summary);
            }
        };
        let (seq, event, prev_hash, hash) = rec.event();
        let expected = count.saturating_add(1);
        if seq != expected {
            return Err(err(
                Some(seq),
                VerifyErrorKind::OutOfSequence {
                    expected,
                    found: seq,
                },
            ));
        }
        if prev_hash != to_hex(&prev) {
            return Err(err(Some(seq), VerifyErrorKind::BrokenLink));
        }
        let computed = record_hash(&prev, seq, &event);
        if hash != to_hex(&computed) {
            return Err(err(Some(seq), VerifyErrorKind::Edited));
        }
        prev = computed;
        count = seq;
    }
    Err(VerifyError {
        line: last_line + 1,
        seq: None,
        kind: VerifyErrorKind::MissingCheckpoint,
    })
}

/// Checks the checkpoint against what was read, then its key, then its signature.
fn check_checkpoint(
    cp: &Checkpoint,
    count: u64,
    head: &[u8; 32],
    expected_key: Option<&[u8]>,
) -> Result<VerifySummary, VerifyErrorKind> {
    let head_hex = to_hex(head);
    if cp.records != count || hash_from_hex(&cp.head).as_ref() != Some(head) {
        return Err(VerifyErrorKind::CheckpointMismatch);
    }
    let key = URL_SAFE_NO_PAD
        .decode(&cp.public_key)
        .map_err(|_| VerifyErrorKind::MalformedCheckpoint("public_key is not base64url"))?;
    if key.len() != 65 || key.first() != Some(&0x04) {
        return Err(VerifyErrorKind::MalformedCheckpoint(
            "public_key is not an uncompressed P-256 point",
        ));
    }
    if let Some(expected) = expected_key {
        if expected != key.as_slice() {
            return Err(VerifyErrorKind::KeyMismatch);
        }
    }
    let sig = URL_SAFE_NO_PAD
        .decode(&cp.signature)
        .map_err(|_| VerifyErrorKind::MalformedCheckpoint("signature is not base64url"))?;
    if sig.len() != 64 {
        return Err(VerifyErrorKind::MalformedCheckpoint(
            "signature is not 64 bytes (r || s)",
        ));
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key)
        .verify(&Checkpoint::message(count, &head_hex), &sig)
        .map_err(|_| VerifyErrorKind::BadSignature)?;
    Ok(VerifySummary {
        records: count,
        head: head_hex,
        public_key: cp.public_key.clone(),
    })
}
