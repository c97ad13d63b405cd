//! Merkle trees over the audit log, as Certificate Transparency defines them (RFC 9162 §2.1):
//! sans-io.
//!
//! Leaf `i` is record `i`'s exported line without its newline. The tree hash of `n` leaves
//! splits at `k`, the largest power of two smaller than `n` (§2.1.1). Proofs are generated from
//! those definitions (§2.1.3.1 PATH, §2.1.4.1 PROOF/SUBPROOF) and verified with the RFC's own
//! algorithms (§2.1.3.2, §2.1.4.2), so the two halves check each other.

use sha2::{Digest, Sha256};

/// A SHA-256 tree node.
pub type Hash = [u8; 32];

/// The leaf hash of an audit record: its line exactly as `payhsm audit export` writes it,
/// without the newline (the one definition the daemon's tree and the report both use).
pub fn record_leaf(record: &super::AuditRecord) -> Result<Hash, serde_json::Error> {
    serde_json::to_string(record).map(|line| leaf_hash(line.as_bytes()))
}

/// `SHA-256(0x00 || leaf)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(leaf);
    h.finalize().into()
}

/// `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (`n` > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// MTH(D[n]) over leaf hashes; the empty tree's hash is SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves {
        [] => Sha256::digest([]).into(),
        [one] => *one,
        _ => {
            let k = split(leaves.len());
            let (l, r) = leaves.split_at(k);
            node_hash(&root(l), &root(r))
        }
    }
}

/// PATH(m, D[n]): the inclusion proof of leaf `index` in the tree of `leaves`, or `None` when
/// `index` is not a leaf of it.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    Tree::from_leaves(leaves).inclusion_proof(leaves.len(), index)
}

/// PROOF(m, D[n]): the consistency proof that the tree of the first `m` leaves is a prefix of
/// the tree of `leaves`; `None` unless 0 < `m` <= n. Empty when `m` = n.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    Tree::from_leaves(leaves).consistency_proof(leaves.len(), m)
}

/// PATH(m, D[start : start + n]) of RFC 9162 §2.1.3.1, with `range_root(a, len)` giving
/// MTH(D[a : a + len]) however the caller keeps the tree.
fn path(
    range_root: &impl Fn(usize, usize) -> Hash,
    start: usize,
    n: usize,
    m: usize,
    out: &mut Vec<Hash>,
) {
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path(range_root, start, k, m, out);
        out.push(range_root(start + k, n - k));
    } else {
        path(range_root, start + k, n - k, m - k, out);
        out.push(range_root(start, k));
    }
}

/// SUBPROOF(m, D[start : start + n], b) of RFC 9162 §2.1.4.1, as [`path`] takes the tree.
fn subproof(
    range_root: &impl Fn(usize, usize) -> Hash,
    start: usize,
    n: usize,
    m: usize,
    whole: bool,
    out: &mut Vec<Hash>,
) {
    if m == n {
        if !whole {
            out.push(range_root(start, n));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(range_root, start, k, m, whole, out);
        out.push(range_root(start + k, n - k));
    } else {
        subproof(range_root, start + k, n - k, m - k, false, out);
        out.push(range_root(start, k));
    }
}

/// A Merkle tree grown leaf by leaf that keeps the hash of every complete subtree of 2^h
/// aligned leaves (about twice the leaves' memory). Every range the RFC's recursions ask for
/// starts at a multiple of the largest power of two within its length, so its root is one
/// stored subtree or two joined recursively: a root, PATH or PROOF over any prefix costs
/// O(log² n) hashes rather than the O(n) of hashing the leaves again.
#[derive(Debug, Default, Clone)]
pub struct Tree {
    /// `levels[h][i]`: MTH of leaves `i * 2^h .. (i + 1) * 2^h`; `levels[0]` the leaves.
    levels: Vec<Vec<Hash>>,
}

impl Tree {
    /// The tree of `leaves`.
    pub fn from_leaves(leaves: &[Hash]) -> Self {
        let mut tree = Self::default();
        for leaf in leaves {
            tree.push(*leaf);
        }
        tree
    }

    /// Appends a leaf hash, completing the subtrees it closes.
    pub fn push(&mut self, leaf: Hash) {
        let mut node = leaf;
        for h in 0.. {
            if self.levels.len() == h {
                self.levels.push(Vec::new());
            }
            let Some(level) = self.levels.get_mut(h) else {
                return;
            };
            level.push(node);
            match level.as_slice() {
                // An even count: the last two are siblings, and their parent is complete.
                [.., left, right] if level.len().is_multiple_of(2) => node = node_hash(left, right),
                _ => return,
            }
        }
    }

    /// The number of leaves.
    pub fn len(&self) -> usize {
        self.levels.first().map_or(0, Vec::len)
    }

    /// Whether it has no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// MTH of the first `size` leaves; `None` past the tree.
    pub fn root(&self, size: usize) -> Option<Hash> {
        (size <= self.len()).then(|| self.range_root(0, size))
    }

    /// PATH of leaf `index` in the tree of the first `size` leaves; `None` unless
    /// `index` < `size` <= the tree's length.
    pub fn inclusion_proof(&self, size: usize, index: usize) -> Option<Vec<Hash>> {
        (index < size && size <= self.len()).then(|| {
            let mut proof = Vec::new();
            path(
                &|a, len| self.range_root(a, len),
                0,
                size,
                index,
                &mut proof,
            );
            proof
        })
    }

    /// PROOF that the tree of the first `m` leaves is a prefix of the tree of the first
    /// `size`; `None` unless 0 < `m` <= `size` <= the tree's length.
    pub fn consistency_proof(&self, size: usize, m: usize) -> Option<Vec<Hash>> {
        (m > 0 && m <= size && size <= self.len()).then(|| {
            let mut proof = Vec::new();
            subproof(
                &|a, len| self.range_root(a, len),
                0,
                size,
                m,
                true,
                &mut proof,
            );
            proof
        })
    }

    /// MTH(D[start : start + len]) for a range the recursions ask for.
    fn range_root(&self, start: usize, len: usize) -> Hash {
        if len == 0 {
            return Sha256::digest([]).into();
        }
        if len.is_power_of_two() && start.is_multiple_of(len) {
            let h = len.trailing_zeros() as usize;
            if let Some(stored) = self.levels.get(h).and_then(|l| l.get(start / len)) {
                return *stored;
            }
        }
        let k = split(len);
        node_hash(
            &self.range_root(start, k),
            &self.range_root(start + k, len - k),
        )
    }
}

/// RFC 9162 §2.1.3.2: whether `proof` shows the leaf hash `leaf` at `index` in the tree of
/// `tree_size` leaves whose root is `root`.
pub fn verify_inclusion(
    leaf: &Hash,
    index: u64,
    tree_size: u64,
    proof: &[Hash],
    root: &Hash,
) -> bool {
    if index >= tree_size {
        return false;
    }
    let (mut fnode, mut snode) = (index, tree_size - 1);
    let mut r = *leaf;
    for p in proof {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            r = node_hash(p, &r);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && r == *root
}

/// RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `first` leaves with root
/// `first_root` is a prefix of the tree of `second` leaves with root `second_root`.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    // If first is an exact power of 2, prepend first_root to the proof.
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((head, rest)) = path.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (first - 1, second - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*head, *head);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *first_root && sr == *second_root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("record {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn a_grown_tree_answers_every_prefix_as_the_leaves_hashed_again_do() {
        let all = leaves(70);
        let mut tree = Tree::default();
        assert_eq!(tree.root(0), Some(root(&[])));
        for (i, leaf) in all.iter().enumerate() {
            tree.push(*leaf);
            assert_eq!(tree.len(), i + 1);
        }
        assert_eq!(tree.root(71), None);
        assert_eq!(tree.inclusion_proof(71, 0), None);
        assert_eq!(tree.consistency_proof(71, 1), None);
        for size in 1..=70 {
            let prefix = &all[..size];
            let mth = root(prefix);
            assert_eq!(tree.root(size), Some(mth), "size {size}");
            for (index, leaf) in prefix.iter().enumerate() {
                let proof = tree.inclusion_proof(size, index).unwrap();
                let (i, n) = (index as u64, size as u64);
                assert!(
                    verify_inclusion(leaf, i, n, &proof, &mth),
                    "{index} of {size}"
                );
            }
            for m in 1..=size {
                let proof = tree.consistency_proof(size, m).unwrap();
                let first = root(&all[..m]);
                assert!(
                    verify_consistency(m as u64, size as u64, &first, &mth, &proof),
                    "{m} to {size}"
                );
            }
            assert_eq!(tree.inclusion_proof(size, size), None);
            assert_eq!(tree.consistency_proof(size, 0), None);
        }
    }

    #[test]
    fn every_leaf_of_every_tree_up_to_64_proves_its_inclusion_and_nothing_else() {
        for n in 1..=64 {
            let d = leaves(n);
            let r = root(&d);
            for i in 0..n {
                let p = inclusion_proof(&d, i).unwrap();
                assert!(
                    verify_inclusion(&d[i], i as u64, n as u64, &p, &r),
                    "{i} of {n}"
                );
                // Another leaf, another index, a changed proof: refused.
                let other = leaf_hash(b"not in the log");
                assert!(!verify_inclusion(&other, i as u64, n as u64, &p, &r));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(!verify_inclusion(&d[i], j as u64, n as u64, &p, &r));
                }
                // (A proof alone does not bind the tree size: trees of n and n + 1 leaves can
                // share a proof's shape. The signed tree head binds size and root together.)
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = leaf_hash(first);
                    assert!(!verify_inclusion(&d[i], i as u64, n as u64, &bad, &r));
                }
            }
            assert!(inclusion_proof(&d, n).is_none());
        }
    }

    #[test]
    fn every_prefix_of_every_tree_up_to_64_proves_its_consistency_and_nothing_else() {
        for n in 1..=64 {
            let d = leaves(n);
            let r2 = root(&d);
            for m in 1..=n {
                let r1 = root(&d[..m]);
                let p = consistency_proof(&d, m).unwrap();
                assert!(
                    verify_consistency(m as u64, n as u64, &r1, &r2, &p),
                    "{m} -> {n}"
                );
                // Another old root, or a tree that is not a prefix: refused.
                let forged = leaf_hash(b"rewritten history");
                assert!(!verify_consistency(m as u64, n as u64, &forged, &r2, &p));
                if m < n {
                    let mut rewritten = d.clone();
                    rewritten[0] = forged;
                    let r1_forged = root(&rewritten[..m]);
                    let p2 = consistency_proof(&rewritten, m).unwrap();
                    assert!(!verify_consistency(
                        m as u64, n as u64, &r1_forged, &r2, &p2
                    ));
                }
            }
            assert!(consistency_proof(&d, 0).is_none());
            assert!(consistency_proof(&d, n + 1).is_none());
        }
    }

    #[test]
    fn the_empty_tree_and_the_one_leaf_tree_hash_as_the_rfc_says() {
        // SHA-256 of the empty string.
        let empty = root(&[]);
        assert_eq!(
            empty.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let one = leaf_hash(b"");
        assert_eq!(root(&[one]), one);
        assert_eq!(
            one.iter().map(|b| format!("{b:02x}")).collect::<String>(),
            // SHA-256(0x00)
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
    }
}
