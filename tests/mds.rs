//! The FIDO conformance MDS3 BLOB in `../shared/vectors/mds/` and the verdicts its MANIFEST.md
//! states: the signature verifies under its x5c, whose chain reaches the conformance
//! intermediate; a BLOB cut short or checked against another root is refused; it is stale
//! after 2023-11-08. And what payhsm reads from it: entries by AAGUID, the latest status, the
//! certification level, the anchors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use payhsm::webauthn::attestation::mds::{
    parse_aaguid, verify_blob, AuthenticatorStatus, MdsError,
};
use payhsm::webauthn::attestation::TrustAnchors;
use std::path::PathBuf;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/vectors/mds")
}

fn blob() -> Vec<u8> {
    std::fs::read(vectors().join("conformance-blob.jwt")).unwrap()
}

fn anchor(file: &str) -> TrustAnchors {
    let pem = std::fs::read(vectors().join(file)).unwrap();
    TrustAnchors::from_certificates(vec![(file.to_owned(), pem)]).unwrap()
}

fn now() -> time::OffsetDateTime {
    time::macros::datetime!(2026-12-07 00:00 UTC)
}

#[test]
fn the_conformance_blob_verifies_under_its_intermediate_and_is_read_whole() {
    let b = verify_blob(&blob(), &anchor("blob-intermediate.pem"), now()).unwrap();
    assert_eq!(b.no, 42);
    assert_eq!(b.next_update, time::macros::date!(2023 - 11 - 08));
    assert_eq!(b.entries.len(), 200);
    assert_eq!(b.entries.iter().filter(|e| e.aaguid.is_some()).count(), 100);
    assert_eq!(b.entries.iter().filter(|e| e.aaid.is_some()).count(), 100);
    assert!(
        b.signer.contains("FAKE Metadata 3 BLOB Signing Signer 4"),
        "{}",
        b.signer
    );
    // Stale at any time after 2023-11-08, not the day itself.
    assert!(b.is_stale(time::macros::date!(2023 - 11 - 09)));
    assert!(!b.is_stale(time::macros::date!(2023 - 11 - 08)));
    // Its signer certificate is the one the MANIFEST names, so the signer pinned as the
    // anchor verifies it too.
    assert_eq!(
        verify_blob(&blob(), &anchor("blob-signer.pem"), now())
            .unwrap()
            .no,
        42
    );
}

#[test]
fn a_blob_cut_short_or_checked_against_another_root_is_refused() {
    let mut cut = blob();
    while cut.last().is_some_and(u8::is_ascii_whitespace) {
        cut.pop();
    }
    cut.pop();
    let e = verify_blob(&cut, &anchor("blob-intermediate.pem"), now()).unwrap_err();
    assert!(
        matches!(e, MdsError::Signature | MdsError::Malformed(_)),
        "{e:?}"
    );
    // The production root did not sign this chain.
    let e = verify_blob(&blob(), &anchor("production-root-globalsign-r3.pem"), now()).unwrap_err();
    assert_eq!(e.code(), "mds_untrusted_chain", "{e:?}");
    // After the signer's certificate expired (2030-01-31) the chain no longer verifies.
    let later = time::macros::datetime!(2030-02-01 00:00 UTC);
    let e = verify_blob(&blob(), &anchor("blob-intermediate.pem"), later).unwrap_err();
    assert_eq!(e.code(), "mds_untrusted_chain", "{e:?}");
    // A payload changed under the same signature.
    let text = String::from_utf8(blob()).unwrap();
    let parts: Vec<&str> = text.trim().split('.').collect();
    let forged = format!("{}.{}.{}", parts[0], "eyJubyI6NDN9", parts[2]);
    let e = verify_blob(forged.as_bytes(), &anchor("blob-intermediate.pem"), now()).unwrap_err();
    assert_eq!(e, MdsError::Signature);
}

#[test]
fn each_compromised_aaguid_is_refused_with_its_statuss_code_and_a_certified_one_is_not() {
    let b = verify_blob(&blob(), &anchor("blob-intermediate.pem"), now()).unwrap();
    let cases = [
        (
            "8cfa178e-b1f5-40ce-8f5f-8273e8109940",
            "mds_user_verification_bypass",
        ),
        (
            "9533c442-6810-4d9c-a365-b13590bfe3b8",
            "mds_user_key_physical_compromise",
        ),
        (
            "71bf3f7f-ad51-432a-aaf0-4783108d5620",
            "mds_attestation_key_compromise",
        ),
        (
            "7061d58b-c22e-429b-a29b-c8bcc4857b40",
            "mds_user_key_remote_compromise",
        ),
    ];
    for (aaguid, code) in cases {
        let e = b.by_aaguid(&parse_aaguid(aaguid).unwrap()).unwrap();
        assert_eq!(e.refusal(), Some(code), "{aaguid}");
    }
    let refused = b
        .entries
        .iter()
        .filter(|e| e.aaguid.is_some() && e.refusal().is_some())
        .count();
    assert_eq!(refused, 8, "the BLOB's compromised AAGUID entries");
    let certified = b
        .by_aaguid(&parse_aaguid("45cde785-b9a1-4a03-a399-5d08f7f27331").unwrap())
        .unwrap();
    assert_eq!(certified.refusal(), None);
    assert_eq!(certified.certification(), Some(AuthenticatorStatus::L2));
    let anchors = certified.anchors();
    assert_eq!(anchors.anchors.len(), 1);
    assert_eq!(
        anchors.anchors[0].name,
        "mds:45cde785-b9a1-4a03-a399-5d08f7f27331"
    );
    assert!(b.by_aaguid(&[0; 16]).is_none());
}

fn inspect(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_payhsm"))
        .args(["webauthn", "mds", "inspect"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn mds_inspect_describes_a_blob_and_one_entry_and_exits_1_when_it_does_not_verify() {
    let blob = vectors().join("conformance-blob.jwt");
    let intermediate = vectors().join("blob-intermediate.pem");
    let (code, out, err) = inspect(&[
        blob.to_str().unwrap(),
        "--anchor",
        intermediate.to_str().unwrap(),
        "--aaguid",
        "7061d58b-c22e-429b-a29b-c8bcc4857b40",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], true);
    assert_eq!(v["no"], 42);
    assert_eq!(v["next_update"], "2023-11-08");
    assert_eq!(v["stale"], true);
    assert_eq!(v["entries"], 200);
    assert_eq!(v["entry"]["status"], "USER_KEY_REMOTE_COMPROMISE");
    assert_eq!(v["entry"]["refusal"], "mds_user_key_remote_compromise");
    assert!(!v["entry"]["status_reports"].as_array().unwrap().is_empty());
    // Against the production root (the default when it is in /etc/ssl/certs, given here).
    let (code, out, _) = inspect(&[
        blob.to_str().unwrap(),
        "--anchor",
        vectors()
            .join("production-root-globalsign-r3.pem")
            .to_str()
            .unwrap(),
    ]);
    assert_eq!(code, 1, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["verified"].clone(), v["code"].clone()),
        (false.into(), "mds_untrusted_chain".into())
    );
    let (code, _, err) = inspect(&[
        "/nonexistent/blob.jwt",
        "--anchor",
        intermediate.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = inspect(&[blob.to_str().unwrap(), "--aaguid", "not-an-aaguid"]);
    assert_eq!(code, 2, "{err}");
}
