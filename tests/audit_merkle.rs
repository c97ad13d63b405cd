//! The audit log's Merkle trees (RFC 9162 §2.1) checked by a second, independent
//! implementation written here from the RFC's recursive definitions: MTH, PATH and
//! SUBPROOF, and verifiers that rebuild the roots by recursion rather than by the RFC's
//! iterative algorithms the library uses. The vectors are Certificate Transparency's reference
//! tree (eight leaves) and every tree of 1 to 64 leaves.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

#[path = "support/rfc9162.rs"]
mod rfc9162;

use payhsm::audit::merkle::{
    consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency, verify_inclusion, Hash,
};
use rfc9162::*;

fn leaves(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{{\"seq\":{}}}", i + 1).into_bytes())
        .collect()
}

#[test]
fn certificate_transparencys_reference_tree_has_its_known_roots() {
    let d: Vec<Vec<u8>> = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|x| {
        (0..x.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&x[i..i + 2], 16).unwrap())
            .collect()
    })
    .collect();
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let hashes: Vec<Hash> = d.iter().map(|l| leaf_hash(l)).collect();
    for n in 1..=8 {
        let hex: String = root(&hashes[..n])
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, roots[n - 1], "tree of {n}");
        assert_eq!(root(&hashes[..n]), mth(&d[..n]));
    }
}

#[test]
fn the_librarys_proofs_are_the_rfcs_and_verify_independently_for_every_tree_up_to_64() {
    for n in 1..=64 {
        let d = leaves(n);
        let hashes: Vec<Hash> = d.iter().map(|l| leaf_hash(l)).collect();
        let r = mth(&d);
        assert_eq!(root(&hashes), r, "root of {n}");
        for m in 0..n {
            let p = inclusion_proof(&hashes, m).unwrap();
            assert_eq!(p, path(m, &d), "PATH({m}, D[{n}])");
            assert_eq!(root_from_path(hashes[m], m, n, &p), Some(r), "{m} in {n}");
            assert!(verify_inclusion(&hashes[m], m as u64, n as u64, &p, &r));
        }
        for m in 1..=n {
            let p = consistency_proof(&hashes, m).unwrap();
            assert_eq!(p, subproof(m, &d, true), "PROOF({m}, D[{n}])");
            let old = mth(&d[..m]);
            assert_eq!(
                roots_from_proof(m, n, &p, true, old),
                Some((old, r)),
                "{m} -> {n}"
            );
            assert!(verify_consistency(m as u64, n as u64, &old, &r, &p));
        }
    }
}
