//! Proof files as `payhsm audit prove` and `payhsm audit consistency` print them, and their
//! offline verification against the audit key set: sans-io.
//!
//! A proof alone does not bind a tree size or root (see `merkle`): both are trusted only from
//! a tree head signed by the audit key, so a proof without its signed head is refused.

use super::merkle::{self, Hash};
use super::{AuditRecord, Receipt};
use crate::jose::{verify_compact, JoseError, Jwks};
use serde::Deserialize;

/// The action of the record that stores a signed tree head in the log.
pub const TREE_HEAD_ACTION: &str = "tree_head_signed";

/// The `sub` claim of a signed tree head: what the JWS is, so it passes for nothing else.
pub const TREE_HEAD_SUBJECT: &str = "payhsm-audit-tree-head";

/// A tree head signed by the audit key, as a `tree_head_signed` record keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTreeHead {
    /// The number of leaves (records) the tree covers.
    pub tree_size: u64,
    /// The RFC 9162 root hash of those leaves.
    pub root_hash: Hash,
    /// When it was signed, milliseconds since the Unix epoch.
    pub timestamp: u64,
    /// The compact JWS (ES256, audit key) whose claims are the three above.
    pub jws: String,
}

impl SignedTreeHead {
    /// The `detail` of its `tree_head_signed` record.
    pub fn detail(&self) -> String {
        format!(
            "tree_size={} root_hash={} timestamp={} sth={}",
            self.tree_size,
            super::to_hex(&self.root_hash),
            self.timestamp,
            self.jws
        )
    }

    /// Reads a `tree_head_signed` record's detail back, exactly as [`Self::detail`] writes it
    /// (`None` otherwise). The JWS is not checked here: [`verify_tree_head`] does that.
    pub fn from_detail(text: &str) -> Option<Self> {
        let mut fields = text.split(' ');
        let mut next = |key: &str| fields.next()?.strip_prefix(key)?.strip_prefix('=');
        let tree_size = next("tree_size")?.parse().ok()?;
        let root_hash = super::hash_from_hex(next("root_hash")?)?;
        let timestamp = next("timestamp")?.parse().ok()?;
        let jws = next("sth")?.to_owned();
        if fields.next().is_some() {
            return None;
        }
        Some(Self {
            tree_size,
            root_hash,
            timestamp,
            jws,
        })
    }
}

/// The claims of a signed tree head: `sub`, `tree_size`, `root_hash` (hex), `timestamp` (ms
/// since the Unix epoch) and `iat` (seconds).
pub fn tree_head_claims(tree_size: u64, root_hash: &Hash, timestamp: u64) -> serde_json::Value {
    serde_json::json!({
        "sub": TREE_HEAD_SUBJECT,
        "tree_size": tree_size,
        "root_hash": super::to_hex(root_hash),
        "timestamp": timestamp,
        "iat": timestamp / 1000,
    })
}
/// The largest proof file read, in bytes (a record line and two 64-hash paths fit many times).
pub const MAX_PROOF_FILE: usize = 256 * 1024;

/// What was wrong with a proof file. `code()` is stable.
#[derive(Debug)]
pub enum ProofError {
    /// Not a proof file: not JSON, an unknown or missing member, a bad hex hash.
    Format(String),
    /// A proof without the signed tree head of its size: its root is not trusted.
    Unsigned(&'static str),
    /// The signed tree head does not verify against the audit key set.
    TreeHead(JoseError),
    /// The signed tree head is not a payhsm tree head, or names another size or root.
    HeadMismatch(&'static str),
    /// The proof does not verify.
    Invalid,
}

impl ProofError {
    /// The stable code `verify-proof` prints.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Format(_) => "malformed_proof",
            Self::Unsigned(_) => "unsigned_tree_head",
            Self::TreeHead(_) => "tree_head_signature",
            Self::HeadMismatch(_) => "tree_head_mismatch",
            Self::Invalid => "proof_does_not_verify",
        }
    }
}

impl std::fmt::Display for ProofError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Format(what) => write!(f, "not a proof file: {what}"),
            Self::Unsigned(which) => write!(
                f,
                "the {which} tree head is not signed: a root is only trusted from a signed head"
            ),
            Self::TreeHead(e) => write!(f, "the signed tree head does not verify: {e}"),
            Self::HeadMismatch(what) => write!(f, "the signed tree head {what}"),
            Self::Invalid => f.write_str("the proof does not verify against the signed root"),
        }
    }
}

impl std::error::Error for ProofError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::TreeHead(e) => Some(e),
            _ => None,
        }
    }
}

/// A tree head whose signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TreeHead {
    /// Records covered.
    pub tree_size: u64,
    /// The root hash.
    pub root_hash: Hash,
    /// When it was signed, ms since the Unix epoch.
    pub timestamp: u64,
}

/// What a proof file proved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proven {
    /// The record is in the log under the signed head.
    Inclusion {
        /// The record (its line, parsed).
        record: Box<AuditRecord>,
        /// The head it is under.
        head: TreeHead,
    },
    /// The second signed head's log extends the first's.
    Consistency {
        /// The earlier head.
        first: TreeHead,
        /// The later head.
        second: TreeHead,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InclusionFile {
    leaf_index: u64,
    tree_size: u64,
    leaf: String,
    audit_path: Vec<String>,
    root_hash: String,
    signed_tree_head: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsistencyFile {
    first: u64,
    second: u64,
    first_root_hash: String,
    second_root_hash: String,
    consistency_path: Vec<String>,
    first_signed_tree_head: Option<String>,
    second_signed_tree_head: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum ProofFile {
    Inclusion(InclusionFile),
    Consistency(ConsistencyFile),
}

fn hash(hex: &str) -> Result<Hash, ProofError> {
    super::hash_from_hex(hex)
        .ok_or_else(|| ProofError::Format("a hash is not 64 lowercase hex digits".into()))
}

fn hashes(hex: &[String]) -> Result<Vec<Hash>, ProofError> {
    hex.iter().map(|h| hash(h)).collect()
}

/// Verifies a signed tree head (compact JWS) against the audit key set at `now_unix`.
pub fn verify_tree_head(jws: &str, jwks: &Jwks, now_unix: i64) -> Result<TreeHead, ProofError> {
    let claims = verify_compact(jws, jwks, now_unix).map_err(ProofError::TreeHead)?;
    if claims.get("sub").and_then(|s| s.as_str()) != Some(TREE_HEAD_SUBJECT) {
        return Err(ProofError::HeadMismatch("is not a payhsm audit tree head"));
    }
    let number = |name| claims.get(name).and_then(serde_json::Value::as_u64);
    let root = claims.get("root_hash").and_then(|r| r.as_str());
    match (
        number("tree_size"),
        root.and_then(super::hash_from_hex),
        number("timestamp"),
    ) {
        (Some(tree_size), Some(root_hash), Some(timestamp)) => Ok(TreeHead {
            tree_size,
            root_hash,
            timestamp,
        }),
        _ => Err(ProofError::HeadMismatch(
            "lacks its tree_size, root_hash or timestamp",
        )),
    }
}

/// A signed head that must be present and name exactly this size and root.
fn signed_head(
    jws: Option<&str>,
    which: &'static str,
    size: u64,
    root: &Hash,
    jwks: &Jwks,
    now_unix: i64,
) -> Result<TreeHead, ProofError> {
    let head = verify_tree_head(jws.ok_or(ProofError::Unsigned(which))?, jwks, now_unix)?;
    if head.tree_size != size {
        return Err(ProofError::HeadMismatch("is for another tree size"));
    }
    if head.root_hash != *root {
        return Err(ProofError::HeadMismatch("has another root hash"));
    }
    Ok(head)
}

/// The largest receipt file read, in bytes.
pub const MAX_RECEIPT_FILE: usize = 4 * 1024;

/// Parses a receipt as a detokenize answer gives it: `{"seq": N, "record_hash": "<hex>"}`.
pub fn parse_receipt(bytes: &[u8]) -> Result<Receipt, ProofError> {
    if bytes.len() > MAX_RECEIPT_FILE {
        return Err(ProofError::Format(format!(
            "a receipt is at most {MAX_RECEIPT_FILE} bytes"
        )));
    }
    let receipt: Receipt = serde_json::from_slice(bytes).map_err(|_| {
        ProofError::Format(r#"expected a receipt: {"seq": N, "record_hash": "<hex>"}"#.into())
    })?;
    hash(&receipt.record_hash)?;
    Ok(receipt)
}

/// Whether a verified inclusion proof proves the receipt's record: the same `seq` and the
/// same chain hash.
pub fn proves_receipt(proven: &Proven, receipt: &Receipt) -> bool {
    matches!(proven, Proven::Inclusion { record, .. }
        if record.seq == receipt.seq && record.hash == receipt.record_hash)
}

/// Parses a proof file and verifies it against the audit key set `jwks` at `now_unix`.
pub fn verify_proof(bytes: &[u8], jwks: &Jwks, now_unix: i64) -> Result<Proven, ProofError> {
    if bytes.len() > MAX_PROOF_FILE {
        return Err(ProofError::Format(format!(
            "larger than {MAX_PROOF_FILE} bytes"
        )));
    }
    let file: ProofFile = serde_json::from_slice(bytes).map_err(|_| {
        ProofError::Format(
            "expected the JSON of `payhsm audit prove` or `audit consistency`".into(),
        )
    })?;
    match file {
        ProofFile::Inclusion(p) => {
            let root = hash(&p.root_hash)?;
            let path = hashes(&p.audit_path)?;
            let head = signed_head(
                p.signed_tree_head.as_deref(),
                "inclusion proof's",
                p.tree_size,
                &root,
                jwks,
                now_unix,
            )?;
            let leaf = merkle::leaf_hash(p.leaf.as_bytes());
            if !merkle::verify_inclusion(&leaf, p.leaf_index, p.tree_size, &path, &root) {
                return Err(ProofError::Invalid);
            }
            let record: AuditRecord = serde_json::from_str(&p.leaf)
                .map_err(|_| ProofError::Format("the leaf is not an audit record".into()))?;
            if record.seq != p.leaf_index + 1 {
                return Err(ProofError::Format(
                    "the leaf's seq is not leaf_index + 1".into(),
                ));
            }
            Ok(Proven::Inclusion {
                record: Box::new(record),
                head,
            })
        }
        ProofFile::Consistency(p) => {
            let (first_root, second_root) = (hash(&p.first_root_hash)?, hash(&p.second_root_hash)?);
            let path = hashes(&p.consistency_path)?;
            let first = signed_head(
                p.first_signed_tree_head.as_deref(),
                "first",
                p.first,
                &first_root,
                jwks,
                now_unix,
            )?;
            let second = signed_head(
                p.second_signed_tree_head.as_deref(),
                "second",
                p.second,
                &second_root,
                jwks,
                now_unix,
            )?;
            if !merkle::verify_consistency(p.first, p.second, &first_root, &second_root, &path) {
                return Err(ProofError::Invalid);
            }
            Ok(Proven::Consistency { first, second })
        }
    }
}
