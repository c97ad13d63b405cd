//! The key ceremony core: key components under split knowledge, key check values and Shamir
//! secret sharing, all sans-io and pure.
//!
//! Custodians form a key either from full-length components combined by XOR (PCI PIN
//! requirement 5 / PCI DSS 3.6.6: split knowledge and dual control) or from M-of-N Shamir shares.
//! Nothing here touches the HSM, a file or a terminal: the `payhsm ceremony` shell reads what
//! custodians type, calls in here, and hands the result to PKCS#11.
//!
//! No value in this module, its `Debug` output or its errors ever contains a component, key or
//! share byte; only key check values ([`kcv`]) and share numbers are shown.

mod component;
pub mod custodians;
mod error;
mod gf256;
mod hex;
pub mod kcv;
mod shamir;
mod transcript;

pub use component::{combine, Component, KeyMaterial, KEY_LEN};
pub use custodians::{Custodian, CustodianError};
pub use error::{ComponentError, ShamirError, TranscriptField};
pub use shamir::{recover, split, Share, MAX_SECRET_LEN, SET_ID_LEN};
pub use transcript::{MAX_TRANSCRIPT_LEN, TRANSCRIPT_TAG};

#[cfg(test)]
mod component_tests;
#[cfg(test)]
mod kcv_tests;
#[cfg(test)]
mod shamir_tests;
#[cfg(test)]
mod transcript_tests;

/// Fuzzing entry: any text is refused or parsed as a share, never a panic, and a parsed share
/// survives `to_transcript` / `from_transcript` unchanged. Panics only if that breaks.
#[allow(clippy::panic)]
pub(crate) fn fuzz_share_transcript(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(share) = Share::from_transcript(text) else {
        return;
    };
    let again = match Share::from_transcript(&share.to_transcript()) {
        Ok(again) => again,
        Err(e) => panic!("a parsed share's own transcript was refused: {}", e.code()),
    };
    if again.set_id() != share.set_id()
        || again.threshold() != share.threshold()
        || again.shares() != share.shares()
        || again.x() != share.x()
        || again.expose_secret() != share.expose_secret()
    {
        panic!("a share did not survive its transcript");
    }
}
