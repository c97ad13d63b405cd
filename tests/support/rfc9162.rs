//! RFC 9162 §2.1 written from the RFC's recursive definitions (MTH, PATH, SUBPROOF) and
//! verifiers that rebuild roots by recursion: the second, independent implementation the
//! library's trees and the daemon's proofs are checked against. Not the library's code.
#![allow(dead_code, clippy::indexing_slicing)] // each test crate uses part of it

use sha2::{Digest, Sha256};

/// A SHA-256 node.
pub type Hash = [u8; 32];

pub fn h(parts: &[&[u8]]) -> Hash {
    let mut s = Sha256::new();
    for p in parts {
        s.update(p);
    }
    s.finalize().into()
}

/// k: the largest power of two smaller than n (RFC 9162 §2.1.1).
pub fn k_of(n: usize) -> usize {
    (0..)
        .map(|e| 1usize << e)
        .take_while(|k| *k < n)
        .last()
        .unwrap_or(1)
}

/// MTH over raw leaves.
pub fn mth(d: &[Vec<u8>]) -> Hash {
    match d.len() {
        0 => h(&[]),
        1 => h(&[&[0], &d[0]]),
        n => {
            let k = k_of(n);
            h(&[&[1], &mth(&d[..k]), &mth(&d[k..])])
        }
    }
}

/// PATH(m, D[n]).
pub fn path(m: usize, d: &[Vec<u8>]) -> Vec<Hash> {
    let n = d.len();
    if n == 1 {
        return Vec::new();
    }
    let k = k_of(n);
    if m < k {
        [path(m, &d[..k]), vec![mth(&d[k..])]].concat()
    } else {
        [path(m - k, &d[k..]), vec![mth(&d[..k])]].concat()
    }
}

/// SUBPROOF(m, D[n], b).
pub fn subproof(m: usize, d: &[Vec<u8>], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![mth(d)] };
    }
    let k = k_of(n);
    if m <= k {
        [subproof(m, &d[..k], b), vec![mth(&d[k..])]].concat()
    } else {
        [subproof(m - k, &d[k..], false), vec![mth(&d[..k])]].concat()
    }
}

/// The root an inclusion proof leads to, rebuilt by recursion.
pub fn root_from_path(leaf: Hash, m: usize, n: usize, proof: &[Hash]) -> Option<Hash> {
    if n == 1 {
        return proof.is_empty().then_some(leaf);
    }
    let (last, rest) = proof.split_last()?;
    let k = k_of(n);
    Some(if m < k {
        h(&[&[1], &root_from_path(leaf, m, k, rest)?, last])
    } else {
        h(&[&[1], last, &root_from_path(leaf, m - k, n - k, rest)?])
    })
}

/// The (old, new) roots a consistency proof leads to, rebuilt by recursion.
pub fn roots_from_proof(
    m: usize,
    n: usize,
    proof: &[Hash],
    b: bool,
    old: Hash,
) -> Option<(Hash, Hash)> {
    if m == n {
        return if b {
            proof.is_empty().then_some((old, old))
        } else {
            match proof {
                [node] => Some((*node, *node)),
                _ => None,
            }
        };
    }
    let (last, rest) = proof.split_last()?;
    let k = k_of(n);
    if m <= k {
        let (o, new) = roots_from_proof(m, k, rest, b, old)?;
        Some((o, h(&[&[1], &new, last])))
    } else {
        let (o, new) = roots_from_proof(m - k, n - k, rest, false, old)?;
        Some((h(&[&[1], last, &o]), h(&[&[1], last, &new])))
    }
}
