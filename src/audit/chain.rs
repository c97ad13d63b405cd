//! The hash chain, signed checkpoints and the JSON-lines export.
//!
//! `hash = SHA-256(prev || JSON of {seq, <event fields in declaration order>})`; hashes are
//! written as lowercase hex. Only the canonical re-serialization is hashed, so a verifier
//! recomputes the hash from parsed values, never from the bytes it was given.

use super::{AuditEvent, AuditRecord, LoggedEvent};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A SHA-256 chain hash.
pub type AuditHash = [u8; 32];

/// prev_hash of the first record.
pub const GENESIS: AuditHash = [0u8; 32];

/// The hashed form of a record: `seq` first, then the event's fields in declaration order.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: u64,
    #[serde(flatten)]
    event: &'a LoggedEvent,
}

/// The chain hash of `event` at position `seq` after `prev`.
pub(crate) fn record_hash(prev: &AuditHash, seq: u64, event: &LoggedEvent) -> AuditHash {
    // Serializing a struct of strings cannot fail; if it ever did, the empty input yields a
    // hash no verifier accepts, which fails loudly rather than silently.
    chain_hash(prev, canonical(seq, event).unwrap_or_default().as_bytes())
}

/// The hashed form of the record at `seq`.
fn canonical(seq: u64, event: &LoggedEvent) -> serde_json::Result<String> {
    serde_json::to_string(&Canonical { seq, event })
}

fn chain_hash(prev: &AuditHash, canonical: &[u8]) -> AuditHash {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(canonical);
    h.finalize().into()
}

/// Places an event in the chain after `prev`.
pub fn link(prev: &AuditHash, seq: u64, event: impl Into<LoggedEvent>) -> (AuditRecord, AuditHash) {
    let event = event.into();
    let hash = record_hash(prev, seq, &event);
    let record = AuditRecord {
        seq,
        event,
        prev_hash: to_hex(prev),
        hash: to_hex(&hash),
    };
    (record, hash)
}

/// [`link`], and the record's JSON as stored and exported, from one serialization: the
/// stored form is the hashed form with `prev_hash` and `hash` appended, so the writer need
/// not serialize the event twice.
pub(crate) fn link_encoded(
    prev: &AuditHash,
    seq: u64,
    event: AuditEvent,
) -> serde_json::Result<(AuditRecord, AuditHash, String)> {
    let event = LoggedEvent::from(event);
    let mut json = canonical(seq, &event)?;
    let hash = chain_hash(prev, json.as_bytes());
    let record = AuditRecord {
        seq,
        event,
        prev_hash: to_hex(prev),
        hash: to_hex(&hash),
    };
    // `{...}` -> `{...,"prev_hash":"<hex>","hash":"<hex>"}`, as `AuditRecord` serializes.
    json.pop();
    for part in [
        ",\"prev_hash\":\"",
        record.prev_hash.as_str(),
        "\",\"hash\":\"",
        record.hash.as_str(),
        "\"}",
    ] {
        json.push_str(part);
    }
    Ok((record, hash, json))
}

/// Lowercase hex of `bytes`.
pub(crate) fn to_hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        // from_digit writes lowercase; a nibble is always < 16.
        out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0'));
        out.push(char::from_digit(u32::from(b & 0x0f), 16).unwrap_or('0'));
    }
    out
}

/// Parses exactly 64 lowercase hex digits (the only form [`to_hex`] writes).
pub(crate) fn hash_from_hex(s: &str) -> Option<AuditHash> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        if let [hi, lo] = pair {
            *o = (nibble(*hi)? << 4) | nibble(*lo)?;
        }
    }
    Some(out)
}

/// The signed end of an export: how many records it covers and the head hash, signed by the
/// HSM audit key (ECDSA P-256, SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Number of records covered (the last record's `seq`).
    pub records: u64,
    /// Lowercase hex hash of the last record (of [`GENESIS`] for an empty log).
    pub head: String,
    /// base64url (no padding) of the 65-byte uncompressed P-256 public key.
    pub public_key: String,
    /// base64url (no padding) of the fixed-size signature `r || s` (64 bytes).
    pub signature: String,
}

impl Checkpoint {
    /// The bytes the audit key signs for a checkpoint of `records` records ending at `head`.
    pub fn message(records: u64, head: &str) -> Vec<u8> {
        format!("payhsm-audit-checkpoint/v1\n{records}\n{head}").into_bytes()
    }
}

/// The last line of an export: `{"checkpoint":{...}}`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckpointLine {
    pub(crate) checkpoint: Checkpoint,
}

/// Exports records as JSON lines (one record per line, in order) followed by the checkpoint
/// line `{"checkpoint":{...}}`. Every line ends with `\n`.
pub fn export_jsonl(records: &[AuditRecord], checkpoint: &Checkpoint) -> String {
    let mut out = String::new();
    for r in records {
        // Cannot fail for these types; an empty line would be refused by the verifier.
        out.push_str(&serde_json::to_string(r).unwrap_or_default());
        out.push('\n');
    }
    let line = CheckpointLine {
        checkpoint: checkpoint.clone(),
    };
    out.push_str(&serde_json::to_string(&line).unwrap_or_default());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u32) -> LoggedEvent {
        LoggedEvent::sample(n.into())
    }

    /// An event as a service writes it: one the policy was not asked about.
    fn written(n: u32) -> AuditEvent {
        let mut e = AuditEvent::new(
            "2026-01-01T00:00:00.000Z".into(),
            format!("r{n}"),
            "payhsmd".into(),
            "data_key_created".into(),
            super::super::PolicyVerdict::NotAsked,
        );
        e.outcome = "created".into();
        e
    }

    #[test]
    fn hex_round_trips_and_is_lowercase() {
        let h = record_hash(&GENESIS, 1, &event(1));
        let s = to_hex(&h);
        assert_eq!(s, s.to_lowercase());
        assert_eq!(hash_from_hex(&s), Some(h));
        assert_eq!(hash_from_hex(&s.to_uppercase()), None);
        assert_eq!(to_hex(&GENESIS), "0".repeat(64));
    }

    #[test]
    fn encoded_record_is_the_record_serialized() {
        let mut quoted = written(2);
        quoted.detail = Some("a \"quoted\" \\ detail\n\u{1}".into());
        quoted.domain = Some("shop".into());
        for (i, e) in [written(1), quoted].into_iter().enumerate() {
            let (record, hash, json) = link_encoded(&[7; 32], i as u64 + 5, e.clone()).unwrap();
            assert_eq!(json, serde_json::to_string(&record).unwrap());
            assert_eq!((record.clone(), hash), link(&[7; 32], i as u64 + 5, e));
            assert_eq!(hash, record_hash(&[7; 32], i as u64 + 5, &record.event));
        }
    }

    #[test]
    fn link_chains_prev_hash() {
        let (r1, h1) = link(&GENESIS, 1, event(1));
        let (r2, _) = link(&h1, 2, event(2));
        assert_eq!(r1.prev_hash, to_hex(&GENESIS));
        assert_eq!(r2.prev_hash, r1.hash);
    }

    #[test]
    fn hash_input_is_seq_then_event_fields_in_order() {
        let e = event(1);
        let json = serde_json::to_string(&Canonical { seq: 9, event: &e }).unwrap();
        assert!(json.starts_with(r#"{"seq":9,"time":"#), "{json}");
        assert!(json.ends_with(r#""outcome":"created"}"#), "{json}");
    }

    #[test]
    fn detail_is_hashed_only_when_present() {
        let mut e = event(1);
        let json = serde_json::to_string(&Canonical { seq: 1, event: &e }).unwrap();
        assert!(!json.contains("detail"), "{json}");
        e.detail = Some("format=none trust=none".into());
        let json = serde_json::to_string(&Canonical { seq: 1, event: &e }).unwrap();
        assert!(
            json.ends_with(r#""outcome":"created","detail":"format=none trust=none"}"#),
            "{json}"
        );
    }
}
