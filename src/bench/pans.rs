//! Unique, Luhn-valid test PANs for the load generator, spread over several BINs.
//!
//! PAN number `i` of a run is a pure function of `(seed, run, i)`: BIN `i mod 8`, then nine
//! digits `(base(seed, run, bin) + (i / 8) * STRIDE) mod 10^9`, then the Luhn check digit.
//! `STRIDE` is coprime to 10^9, so within one run no two indices give the same PAN (up to
//! 8 * 10^9 of them), and successive PANs differ in their high digits. `run` is drawn at random
//! for each run, so a rerun against the same data directory tokenizes new cards rather than
//! meeting the previous run's (two runs of n PANs overlap with probability about 2n / 8e9).
//!
//! The PANs are never printed: a [`TestPan`] has no `Display`, a redacted `Debug`, and is
//! wiped on drop like any other PAN in this code base.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Issuer prefixes of well-known test card ranges (Visa, Mastercard 5- and 2-series,
/// Discover, JCB), all 16-digit PANs.
const BINS: [&[u8; 6]; 8] = [
    b"411111", b"424242", b"400005", b"510510", b"555555", b"222300", b"601100", b"353011",
];
/// The nine account digits between the BIN and the check digit.
const BODY_SPACE: u64 = 1_000_000_000;
/// 3^18: coprime to 10^9, so `k -> k * STRIDE mod 10^9` is a permutation.
const STRIDE: u64 = 387_420_489;

/// A 16-digit test PAN (ASCII digits), wiped on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct TestPan([u8; 16]);

impl TestPan {
    /// The ASCII digits, for the one line that puts them in a request body.
    pub fn expose_digits(&self) -> &[u8] {
        &self.0
    }

    /// The last four digits, which may be shown.
    pub fn last4(&self) -> &[u8] {
        self.0.get(12..).unwrap_or_default()
    }
}

impl fmt::Debug for TestPan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestPan(<redacted>)")
    }
}

/// Hands out the PANs of one run, in order, to any number of tasks.
#[derive(Debug)]
pub struct PanSource {
    bases: [u64; BINS.len()],
    next: AtomicU64,
}

impl PanSource {
    /// A source for `seed` with a fresh random run number.
    pub fn new(seed: u64) -> Result<Self, getrandom::Error> {
        let mut run = [0u8; 8];
        getrandom::getrandom(&mut run)?;
        Ok(Self::with_run(seed, u64::from_le_bytes(run)))
    }

    /// The deterministic source for `seed` and `run`.
    pub fn with_run(seed: u64, run: u64) -> Self {
        let mut bases = [0u64; BINS.len()];
        let mut state = seed ^ run.rotate_left(32);
        for base in &mut bases {
            *base = splitmix64(&mut state) % BODY_SPACE;
        }
        Self {
            bases,
            next: AtomicU64::new(0),
        }
    }

    /// The next PAN of this run.
    pub fn next_pan(&self) -> TestPan {
        self.pan(self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// PAN number `i` of this run.
    pub fn pan(&self, i: u64) -> TestPan {
        let bins = BINS.len() as u64;
        let slot = (i % bins) as usize;
        let bin = BINS.get(slot).copied().unwrap_or(b"411111");
        let base = self.bases.get(slot).copied().unwrap_or_default();
        let k = (i / bins) % BODY_SPACE;
        // u128: k * STRIDE overflows u64 for k near 10^9 only in theory, but cheaply avoided.
        let body = ((u128::from(base) + u128::from(k) * u128::from(STRIDE))
            % u128::from(BODY_SPACE)) as u64;
        let mut digits = [b'0'; 16];
        for (d, b) in digits.iter_mut().zip(bin.iter()) {
            *d = *b;
        }
        let mut rest = body;
        for d in digits.iter_mut().take(15).skip(6).rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        // With the check position at 0 the Luhn sum tells which digit makes it a multiple of 10.
        let sum = crate::card::luhn_sum(&digits).unwrap_or_default();
        if let Some(check) = digits.last_mut() {
            *check = b'0' + ((10 - sum % 10) % 10) as u8;
        }
        TestPan(digits)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): a small, well-mixed deterministic sequence.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn pans_are_luhn_valid_16_digits_over_all_bins() {
        let source = PanSource::with_run(1, 2);
        let mut bins = HashSet::new();
        for _ in 0..1000 {
            let pan = source.next_pan();
            assert!(crate::card::luhn_valid(pan.expose_digits()));
            assert!(pan.expose_digits().iter().all(u8::is_ascii_digit));
            bins.insert(pan.expose_digits()[..6].to_vec());
        }
        assert_eq!(bins.len(), BINS.len());
    }

    #[test]
    fn pans_of_one_run_are_unique_and_deterministic() {
        let a = PanSource::with_run(7, 99);
        let b = PanSource::with_run(7, 99);
        let mut seen = HashSet::new();
        for i in 0..50_000 {
            let pan = a.pan(i);
            assert_eq!(pan.expose_digits(), b.pan(i).expose_digits());
            assert!(
                seen.insert(pan.expose_digits().to_vec()),
                "duplicate at {i}"
            );
        }
    }

    #[test]
    fn another_run_gives_other_pans() {
        let a = PanSource::with_run(7, 1);
        let b = PanSource::with_run(7, 2);
        let first: HashSet<Vec<u8>> = (0..1000)
            .map(|i| a.pan(i).expose_digits().to_vec())
            .collect();
        assert!((0..1000).all(|i| !first.contains(b.pan(i).expose_digits())));
    }

    #[test]
    fn debug_does_not_show_digits() {
        let pan = PanSource::with_run(0, 0).pan(0);
        assert_eq!(format!("{pan:?}"), "TestPan(<redacted>)");
        assert_eq!(pan.last4().len(), 4);
    }
}
