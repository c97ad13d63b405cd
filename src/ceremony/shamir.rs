//! Shamir secret sharing over GF(2^8) (the AES field, 0x11B), byte by byte: M of N custodians
//! together recover the secret; any M-1 of them learn nothing about it.

use super::{gf256, hex, ShamirError};
use std::borrow::Borrow;
use zeroize::Zeroizing;

/// Length of a split's random identifier, in bytes.
pub const SET_ID_LEN: usize = 8;

/// The longest secret [`split`] accepts, in bytes (an AES-256 key is 32).
pub const MAX_SECRET_LEN: usize = 1024;

/// One custodian's share of a secret.
///
/// No `Clone`, no `Display`; `Debug` shows the set id, M-of-N and the share number, never the
/// value; the value is zeroized on drop.
pub struct Share {
    pub(super) set_id: [u8; SET_ID_LEN],
    pub(super) threshold: u8,
    pub(super) shares: u8,
    pub(super) x: u8,
    pub(super) y: Zeroizing<Vec<u8>>,
}

impl Share {
    /// The random id shared by every share of one split.
    pub fn set_id(&self) -> [u8; SET_ID_LEN] {
        self.set_id
    }

    /// M: how many shares recover the secret.
    pub fn threshold(&self) -> u8 {
        self.threshold
    }

    /// N: how many shares the split produced.
    pub fn shares(&self) -> u8 {
        self.shares
    }

    /// This share's number, 1 to N (the x coordinate).
    pub fn x(&self) -> u8 {
        self.x
    }

    /// The share value (the y coordinates). Use at the line that needs it; never format or log
    /// it.
    pub fn expose_secret(&self) -> &[u8] {
        &self.y
    }
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("set_id", &hex::encode_public(&self.set_id))
            .field("threshold", &self.threshold)
            .field("shares", &self.shares)
            .field("x", &self.x)
            .finish_non_exhaustive()
    }
}

/// Checks 2 <= M <= N (N <= 255 by its type).
pub(super) fn valid_parameters(threshold: u8, shares: u8) -> bool {
    threshold >= 2 && threshold <= shares
}

/// Splits `secret` into `shares` shares of which any `threshold` recover it.
///
/// Each byte gets its own polynomial of degree M-1 whose constant term is that byte and whose
/// other coefficients are uniformly random (a zero leading coefficient included: forcing it
/// non-zero would bias the shares). Share x is the polynomial at x, for x = 1..=N.
pub fn split(secret: &[u8], threshold: u8, shares: u8) -> Result<Vec<Share>, ShamirError> {
    if !valid_parameters(threshold, shares) {
        return Err(ShamirError::InvalidParameters { threshold, shares });
    }
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN {
        return Err(ShamirError::InvalidSecretLength { len: secret.len() });
    }
    let len = secret.len();
    let mut set_id = [0u8; SET_ID_LEN];
    getrandom::getrandom(&mut set_id).map_err(|_| ShamirError::RandomUnavailable)?;
    // Row j holds coefficient j+1 of every byte's polynomial.
    let mut coefficients = Zeroizing::new(vec![0u8; len * usize::from(threshold - 1)]);
    getrandom::getrandom(&mut coefficients).map_err(|_| ShamirError::RandomUnavailable)?;

    let mut out = Vec::with_capacity(usize::from(shares));
    for x in 1..=shares {
        let mut y = Zeroizing::new(vec![0u8; len]);
        // Horner, from the highest coefficient down to the secret.
        for row in coefficients.chunks_exact(len).rev() {
            for (yk, ck) in y.iter_mut().zip(row) {
                *yk = gf256::mul(*yk, x) ^ ck;
            }
        }
        for (yk, sk) in y.iter_mut().zip(secret) {
            *yk = gf256::mul(*yk, x) ^ sk;
        }
        out.push(Share {
            set_id,
            threshold,
            shares,
            x,
            y,
        });
    }
    Ok(out)
}

/// Recovers the secret from at least M shares of one split (Lagrange interpolation at x = 0).
///
/// Refused: fewer than M shares, a share number twice, shares of different splits, shares that
/// disagree on M-of-N or on length. When more than M shares are given, every extra share must
/// lie on the polynomial the first M define, or the set is refused as inconsistent (a wrong
/// share is caught instead of silently yielding a wrong key).
pub fn recover<S: Borrow<Share>>(shares: &[S]) -> Result<Zeroizing<Vec<u8>>, ShamirError> {
    let Some(first) = shares.first().map(Borrow::borrow) else {
        return Err(ShamirError::TooFewShares {
            given: 0,
            needed: 2,
        });
    };
    let mut seen = [false; 256];
    for share in shares.iter().map(Borrow::borrow) {
        if share.set_id != first.set_id {
            return Err(ShamirError::MixedSets);
        }
        if share.threshold != first.threshold || share.shares != first.shares {
            return Err(ShamirError::MismatchedParameters);
        }
        if share.y.len() != first.y.len() {
            return Err(ShamirError::MismatchedLengths);
        }
        if share.x == 0 || share.x > share.shares {
            return Err(ShamirError::InvalidShareNumber { x: share.x });
        }
        match seen.get_mut(usize::from(share.x)) {
            Some(s) if !*s => *s = true,
            _ => return Err(ShamirError::DuplicateShare { x: share.x }),
        }
    }
    if !valid_parameters(first.threshold, first.shares) {
        return Err(ShamirError::MismatchedParameters);
    }
    let needed = usize::from(first.threshold);
    if shares.len() < needed {
        return Err(ShamirError::TooFewShares {
            given: shares.len(),
            needed: first.threshold,
        });
    }
    let basis: Vec<&Share> = shares.iter().take(needed).map(Borrow::borrow).collect();
    let secret = interpolate(&basis, 0);
    let mut differ = 0u8;
    for extra in shares.iter().skip(needed).map(Borrow::borrow) {
        let expected = interpolate(&basis, extra.x);
        for (a, b) in expected.iter().zip(extra.y.iter()) {
            differ |= a ^ b;
        }
    }
    if differ != 0 {
        return Err(ShamirError::InconsistentShares);
    }
    Ok(secret)
}

/// The polynomial through `points` (distinct, non-zero x; equal lengths) evaluated at `at`.
pub(super) fn interpolate(points: &[&Share], at: u8) -> Zeroizing<Vec<u8>> {
    let len = points.first().map_or(0, |p| p.y.len());
    let mut out = Zeroizing::new(vec![0u8; len]);
    for (i, pi) in points.iter().enumerate() {
        // Lagrange basis l_i(at) = prod_{j != i} (at - x_j) / (x_i - x_j); minus is XOR here.
        let mut num = 1u8;
        let mut den = 1u8;
        for (j, pj) in points.iter().enumerate() {
            if i != j {
                num = gf256::mul(num, at ^ pj.x);
                den = gf256::mul(den, pi.x ^ pj.x);
            }
        }
        let li = gf256::mul(num, gf256::inv(den));
        for (o, y) in out.iter_mut().zip(pi.y.iter()) {
            *o ^= gf256::mul(li, *y);
        }
    }
    out
}
