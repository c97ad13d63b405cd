//! The Merkle tree over the audit log (RFC 9162 §2.1) as the daemon serves it: signed tree
//! heads, inclusion proofs and consistency proofs.
//!
//! Leaf `i` is record `i + 1`'s line exactly as `payhsm audit export` writes it, without the
//! newline. The daemon keeps the leaf hashes in memory (32 bytes a record), read from the store
//! in order, so every replica of a shared vault builds the same tree over the one history. A
//! tree head is signed by the HSM audit key as a compact JWS and stored in the log itself, as
//! a `tree_head_signed` record of the daemon: each later head covers the earlier ones.

use super::{check_policy, AuditReader, Caller, Error};
use crate::audit::merkle::{self, Hash};
pub use crate::audit::proof::TREE_HEAD_ACTION;
use crate::audit::proof::{tree_head_claims, SignedTreeHead};
use crate::audit::{AuditEvent, AuditRecord, PolicyVerdict};
use crate::policy::{Action, PolicyContext, PolicyRequest, Resource};
use crate::store::StoreError;
use std::collections::BTreeMap;
use std::time::Duration;

/// The least time between two heads signed for proof requests (not the periodic ones).
const ON_DEMAND_HEAD_GAP: Duration = Duration::from_secs(1);

/// Milliseconds since the Unix epoch, as a head's timestamp.
fn now_millis() -> u64 {
    u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000)
        .unwrap_or_default()
}

/// How many records one read of the store brings while the tree catches up.
const SYNC_PAGE: usize = 10_000;

/// An inclusion proof of one record under a tree size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionProof {
    /// The record's leaf index (its `seq` - 1).
    pub leaf_index: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The leaf: the record's export line, without the newline.
    pub leaf: String,
    /// The audit path, from the leaf's sibling up.
    pub audit_path: Vec<Hash>,
    /// The root of the tree of `tree_size` leaves.
    pub root_hash: Hash,
    /// The signed head of that size, when one was signed.
    pub signed_tree_head: Option<SignedTreeHead>,
}

/// A consistency proof between two tree sizes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsistencyProof {
    /// The smaller tree size.
    pub first: u64,
    /// The larger tree size.
    pub second: u64,
    /// The root of the first tree.
    pub first_root_hash: Hash,
    /// The root of the second tree.
    pub second_root_hash: Hash,
    /// The RFC 9162 §2.1.4 proof.
    pub consistency_path: Vec<Hash>,
    /// The signed head of the first size, when one was signed.
    pub first_signed_tree_head: Option<SignedTreeHead>,
    /// The signed head of the second size, when one was signed.
    pub second_signed_tree_head: Option<SignedTreeHead>,
}

/// The tree as read so far (every leaf, and every complete subtree's hash: a proof costs
/// O(log² n) hashes), and the signed heads found in the log.
#[derive(Debug, Default)]
pub(super) struct TreeState {
    tree: merkle::Tree,
    heads: BTreeMap<u64, SignedTreeHead>,
}

impl TreeState {
    fn size(&self) -> u64 {
        self.tree.len() as u64
    }

    /// Adds the records after the last one read, in order, and the heads they store.
    fn extend(&mut self, records: &[AuditRecord]) -> Result<(), StoreError> {
        for r in records {
            if r.seq != self.size() + 1 {
                return Err(StoreError::corrupt(format!(
                    "audit record {} follows record {}",
                    r.seq,
                    self.size()
                )));
            }
            self.tree.push(
                merkle::record_leaf(r)
                    .map_err(|e| StoreError::corrupt_from("audit record encoding", e))?,
            );
            if r.event.action == TREE_HEAD_ACTION {
                if let Some(head) = r
                    .event
                    .detail
                    .as_deref()
                    .and_then(SignedTreeHead::from_detail)
                {
                    self.heads.insert(head.tree_size, head);
                }
            }
        }
        Ok(())
    }

    fn latest(&self) -> Option<&SignedTreeHead> {
        self.heads.values().next_back()
    }
}

impl AuditReader {
    /// Reads the records added since the last call into the tree.
    async fn sync(&self, state: &mut TreeState) -> Result<(), Error> {
        loop {
            let page = self.store.audit_records(state.size(), SYNC_PAGE).await?;
            if page.is_empty() {
                return Ok(());
            }
            state.extend(&page)?;
        }
    }

    /// The tree, caught up, and the size of a signed head covering record `seq`: the latest
    /// head if it does, else a new one. Proof requests sign at most one head per
    /// [`ON_DEMAND_HEAD_GAP`]: a caller that finds the latest head younger than that waits for
    /// its turn without the lock (a head signed meanwhile may cover it), so callers never
    /// drive the HSM and the log faster than that.
    async fn head_covering(
        &self,
        seq: u64,
    ) -> Result<(tokio::sync::MutexGuard<'_, TreeState>, u64), Error> {
        loop {
            let mut state = self.tree.lock().await;
            self.sync(&mut state).await?;
            let wait = match state.latest() {
                Some(head) if head.tree_size >= seq => {
                    let size = head.tree_size;
                    return Ok((state, size));
                }
                Some(head) => ON_DEMAND_HEAD_GAP.saturating_sub(Duration::from_millis(
                    now_millis().saturating_sub(head.timestamp),
                )),
                None => Duration::ZERO,
            };
            if wait.is_zero() {
                let size = self.sign_head(&mut state).await?.tree_size;
                return Ok((state, size));
            }
            drop(state);
            tokio::time::sleep(wait).await;
        }
    }

    /// Signs a head over the whole tree as read and stores it in the log.
    async fn sign_head(&self, state: &mut TreeState) -> Result<SignedTreeHead, Error> {
        let tree_size = state.size();
        let root_hash = state.tree.root(state.tree.len()).unwrap_or_default();
        let timestamp = now_millis();
        let jws = self
            .sign_jws(&tree_head_claims(tree_size, &root_hash, timestamp))
            .await?;
        let head = SignedTreeHead {
            tree_size,
            root_hash,
            timestamp,
            jws,
        };
        // The daemon's own act: no policy governs it.
        let mut event = AuditEvent::new(
            crate::clock::now_rfc3339(),
            "tree-head".to_owned(),
            "payhsmd".to_owned(),
            TREE_HEAD_ACTION.to_owned(),
            PolicyVerdict::NotAsked,
        );
        event.outcome = "ok".to_owned();
        event.detail = Some(head.detail());
        self.store.record(event).await?;
        state.heads.insert(tree_size, head.clone());
        Ok(head)
    }

    /// Signs a tree head when it is due: `every_records` records were added since the latest
    /// head (its own record aside), or `force` (the interval passed, or shutdown) and any was.
    /// The head signed, if one was.
    pub async fn sign_tree_head_if_due(
        &self,
        every_records: u64,
        force: bool,
    ) -> Result<Option<SignedTreeHead>, Error> {
        let mut state = self.tree.lock().await;
        self.sync(&mut state).await?;
        // The latest head's own record follows it: it alone is no reason for another head.
        let covered = state.latest().map_or(0, |h| h.tree_size + 1);
        let added = state.size().saturating_sub(covered);
        if added >= every_records || (force && added > 0) {
            return self.sign_head(&mut state).await.map(Some);
        }
        Ok(None)
    }

    /// `GET /v1/audit/sth`: the latest signed tree head (one is signed now if none was yet).
    pub async fn tree_head(&self, caller: &Caller) -> Result<SignedTreeHead, Error> {
        self.allow_read(caller, "tree head".to_owned()).await?;
        let mut state = self.tree.lock().await;
        self.sync(&mut state).await?;
        match state.latest() {
            Some(head) => Ok(head.clone()),
            None => self.sign_head(&mut state).await,
        }
    }

    /// `GET /v1/audit/proof`: the inclusion proof of record `seq` under `tree_size`, or, without
    /// one, under the latest signed head (one is signed now if none covers the record).
    ///
    /// An auditor (`read_audit`) proves any record; a caller the policy lets
    /// `prove_audit_record` proves only its own (its receipts): another's is not found.
    pub async fn inclusion_proof(
        &self,
        caller: &Caller,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, Error> {
        let store = self.store.as_ref();
        let auditor = self
            .policy
            .decide(&PolicyRequest {
                principal: &caller.principal,
                action: Action::ReadAudit,
                resource: Resource::AuditLog,
                context: PolicyContext::Empty,
            })
            .allowed();
        let action = if auditor {
            Action::ReadAudit
        } else {
            Action::ProveAuditRecord
        };
        let mut event = check_policy(
            store,
            &self.policy,
            caller,
            action,
            Resource::AuditLog,
            |_| {},
        )
        .await?;
        event.detail = Some(match tree_size {
            Some(m) => format!("inclusion seq={seq} tree_size={m}"),
            None => format!("inclusion seq={seq}"),
        });
        let record = match seq.checked_sub(1) {
            Some(after) => store.audit_records(after, 1).await?.into_iter().next(),
            None => None,
        }
        .filter(|r| r.seq == seq && (auditor || r.event.principal == caller.principal.as_str()));
        let mut state = self.tree.lock().await;
        self.sync(&mut state).await?;
        // The record's outcome is the answer's: checked before it is recorded.
        let refused = match (&record, tree_size) {
            (None, _) => Some(Error::AuditRecordNotFound),
            (Some(_), _) if seq > state.size() => Some(Error::AuditRecordNotFound),
            (Some(_), Some(m)) if m < seq || m > state.size() => Some(Error::InvalidTreeSize),
            (Some(_), _) => None,
        };
        event.outcome = refused.as_ref().map_or("ok", Error::code).to_owned();
        store.record(event).await?;
        let (Some(record), None) = (record, refused.as_ref()) else {
            return Err(refused.unwrap_or(Error::AuditRecordNotFound));
        };
        let (state, size) = match tree_size {
            Some(m) => (state, m),
            None => {
                drop(state);
                self.head_covering(seq).await?
            }
        };
        let n = usize::try_from(size).map_err(|_| Error::InvalidTreeSize)?;
        let index = usize::try_from(seq - 1).map_err(|_| Error::InvalidTreeSize)?;
        let audit_path = (state.tree)
            .inclusion_proof(n, index)
            .ok_or(Error::InvalidTreeSize)?;
        let root_hash = state.tree.root(n).ok_or(Error::InvalidTreeSize)?;
        let leaf = serde_json::to_string(&record)
            .map_err(|e| StoreError::corrupt_from("audit record encoding", e))?;
        Ok(InclusionProof {
            leaf_index: seq - 1,
            tree_size: size,
            leaf,
            audit_path,
            root_hash,
            signed_tree_head: state.heads.get(&size).cloned(),
        })
    }

    /// `GET /v1/audit/consistency`: the proof that the tree of `second` leaves extends the tree
    /// of `first` (1 <= first <= second <= the log's size).
    pub async fn consistency_proof(
        &self,
        caller: &Caller,
        first: u64,
        second: u64,
    ) -> Result<ConsistencyProof, Error> {
        let mut event = self.check_read(caller).await?;
        event.detail = Some(format!("consistency from={first} to={second}"));
        let mut state = self.tree.lock().await;
        self.sync(&mut state).await?;
        // The record's outcome is the answer's: checked before it is recorded.
        let valid = first != 0 && first <= second && second <= state.size();
        event.outcome = if valid {
            "ok"
        } else {
            Error::InvalidTreeSize.code()
        }
        .to_owned();
        self.store.record(event).await?;
        if !valid {
            return Err(Error::InvalidTreeSize);
        }
        let size = |n: u64| usize::try_from(n).map_err(|_| Error::InvalidTreeSize);
        let (m, n) = (size(first)?, size(second)?);
        let tree = &state.tree;
        let consistency_path = tree.consistency_proof(n, m).ok_or(Error::InvalidTreeSize)?;
        Ok(ConsistencyProof {
            first,
            second,
            first_root_hash: tree.root(m).ok_or(Error::InvalidTreeSize)?,
            second_root_hash: tree.root(n).ok_or(Error::InvalidTreeSize)?,
            consistency_path,
            first_signed_tree_head: state.heads.get(&first).cloned(),
            second_signed_tree_head: state.heads.get(&second).cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_detail_reads_back_as_written() {
        let head = SignedTreeHead {
            tree_size: 42,
            root_hash: [7; 32],
            timestamp: 1_765_000_000_123,
            jws: "aGVhZGVy.cGF5bG9hZA.c2ln".to_owned(),
        };
        assert_eq!(SignedTreeHead::from_detail(&head.detail()), Some(head));
    }

    #[test]
    fn a_detail_the_daemon_did_not_write_is_no_head() {
        for text in [
            "",
            "tree_size=1",
            "tree_size=x root_hash=00 timestamp=1 sth=a",
            "root_hash=0000000000000000000000000000000000000000000000000000000000000000 tree_size=1 timestamp=1 sth=a",
        ] {
            assert_eq!(SignedTreeHead::from_detail(text), None, "{text}");
        }
    }

    #[test]
    fn a_gap_in_the_records_is_refused() {
        let mut state = TreeState::default();
        let (r1, h1) = crate::audit::link(
            &crate::audit::GENESIS,
            1,
            crate::audit::LoggedEvent::sample(1),
        );
        let (r2, _) = crate::audit::link(&h1, 2, crate::audit::LoggedEvent::sample(2));
        state.extend(std::slice::from_ref(&r1)).unwrap();
        assert!(state.extend(&[r1]).is_err());
        state.extend(&[r2]).unwrap();
        assert_eq!(state.size(), 2);
    }
}
