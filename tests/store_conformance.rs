//! Every store conformance case runs on every backend: the `conformance!` lists of
//! `tests/store_sqlite.rs` and `tests/store_postgres.rs` are the same, sorted, and name exactly
//! the `pub async fn <case>(f: &dyn Fixture)` of `tests/store_cases/`. A case added for one
//! backend only, or not listed at all, fails here.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn tests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests")
}

/// The case names of the one `store_cases::conformance!(<fixture>; a, b, ...);` in `file`, in
/// their order.
fn listed(file: &str) -> Vec<String> {
    let source = std::fs::read_to_string(tests_dir().join(file)).unwrap();
    let mut invocations = source.split("store_cases::conformance!(").skip(1);
    let invocation = invocations
        .next()
        .unwrap_or_else(|| panic!("{file}: no store_cases::conformance! invocation"));
    assert!(
        invocations.next().is_none(),
        "{file}: one conformance! invocation"
    );
    let (_fixture, rest) = invocation.split_once(';').unwrap();
    rest[..rest.find(");").unwrap()]
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Every `pub async fn <name>(f: &dyn Fixture)` in `tests/store_cases/`.
fn cases() -> BTreeSet<String> {
    let mut cases = BTreeSet::new();
    for entry in std::fs::read_dir(tests_dir().join("store_cases")).unwrap() {
        let path = entry.unwrap().path();
        // Without whitespace, a signature rustfmt wrapped reads like one on a line.
        let source: String = std::fs::read_to_string(&path)
            .unwrap()
            .split_whitespace()
            .collect();
        for rest in source.split("pubasyncfn").skip(1) {
            let (name, args) = rest.split_once('(').unwrap();
            // Not `<case>` in a doc comment: an identifier.
            let ident = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            let one_fixture =
                args.starts_with("f:&dynFixture)") || args.starts_with("f:&dynFixture,)");
            if ident && one_fixture {
                assert!(cases.insert(name.to_owned()), "{name} twice in store_cases");
            }
        }
    }
    cases
}

#[test]
fn both_backends_run_every_store_case() {
    let cases = cases();
    assert!(cases.len() >= 20, "found only {cases:?}");
    for file in ["store_sqlite.rs", "store_postgres.rs"] {
        let list = listed(file);
        let sorted: BTreeSet<String> = list.iter().cloned().collect();
        assert_eq!(
            list,
            sorted.iter().cloned().collect::<Vec<_>>(),
            "{file}: sorted, none twice"
        );
        assert_eq!(sorted, cases, "{file} must list every case of store_cases");
    }
}
