//! Arithmetic in GF(2^8) with the AES polynomial x^8 + x^4 + x^3 + x + 1 (0x11B).
//!
//! Bitwise and branch-free: no log/exp tables, whose lookups would be indexed by secret share
//! bytes and leak them through the cache.

/// Multiplication, in constant time.
pub(crate) fn mul(a: u8, b: u8) -> u8 {
    let mut a = a;
    let mut b = b;
    let mut product = 0u8;
    for _ in 0..8 {
        // Add `a` when the low bit of `b` is set.
        product ^= 0u8.wrapping_sub(b & 1) & a;
        // a *= x, reducing by 0x11B when the top bit falls out.
        let carry = 0u8.wrapping_sub(a >> 7);
        a = (a << 1) ^ (carry & 0x1B);
        b >>= 1;
    }
    product
}

/// Multiplicative inverse as a^254 (Fermat), in constant time; the inverse of 0 is 0.
pub(crate) fn inv(a: u8) -> u8 {
    // 254 = 0b1111_1110: square-and-multiply with a fixed sequence of operations.
    let a2 = mul(a, a);
    let a3 = mul(a2, a);
    let a6 = mul(a3, a3);
    let a7 = mul(a6, a);
    let a14 = mul(a7, a7);
    let a15 = mul(a14, a);
    let a30 = mul(a15, a15);
    let a31 = mul(a30, a);
    let a62 = mul(a31, a31);
    let a63 = mul(a62, a);
    let a126 = mul(a63, a63);
    let a127 = mul(a126, a);
    mul(a127, a127)
}

#[cfg(test)]
mod tests {
    use super::{inv, mul};

    /// Schoolbook multiplication with an explicit reduction, written independently.
    fn reference_mul(a: u8, b: u8) -> u8 {
        let mut wide = 0u16;
        for i in 0..8 {
            if b & (1 << i) != 0 {
                wide ^= u16::from(a) << i;
            }
        }
        for bit in (8..16).rev() {
            if wide & (1 << bit) != 0 {
                wide ^= 0x11B << (bit - 8);
            }
        }
        wide as u8
    }

    #[test]
    fn multiplication_matches_schoolbook_reduction_for_every_pair() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                assert_eq!(mul(a, b), reference_mul(a, b), "{a} * {b}");
            }
        }
    }

    #[test]
    fn multiplication_matches_fips_197_worked_example() {
        // FIPS 197 §4.2: {57} • {83} = {c1}, {57} • {13} = {fe}.
        assert_eq!(mul(0x57, 0x83), 0xC1);
        assert_eq!(mul(0x57, 0x13), 0xFE);
    }

    #[test]
    fn every_nonzero_element_times_its_inverse_is_one() {
        for a in 1..=255u8 {
            assert_eq!(mul(a, inv(a)), 1, "{a}");
        }
        assert_eq!(inv(0), 0);
    }
}
