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
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(leaves, index, &mut proof);
    Some(proof)
}

fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
    if leaves.len() <= 1 {
        return;
    }
    let k = split(leaves.len());
    let (l, r) = leaves.split_at(k);
    if m < k {
        path(l, m, out);
        out.push(root(r));
    } else {
        path(r, m - k, out);
        out.push(root(l));
    }
}

/// PROOF(m, D[n]): the consistency proof that the tree of the first `m` leaves is a prefix of
/// the tree of `leaves`; `None` unless 0 < `m` <= n. Empty when `m` = n.
pub fn consistency_proof(leaves: &[Hash], m: usize) -> Option<Vec<Hash>> {
    if m == 0 || m > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    subproof(m, leaves, true, &mut proof);
    Some(proof)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    let (l, r) = leaves.split_at(k);
    if m <= k {
        subproof(m, l, whole, out);
        out.push(root(r));
    } else {
        subproof(m - k, r, false, out);
        out.push(root(l));
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
