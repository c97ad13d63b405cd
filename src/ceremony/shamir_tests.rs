use super::shamir::interpolate;
use super::{recover, split, ShamirError, Share};

fn random_secret() -> Vec<u8> {
    let mut s = vec![0u8; 32];
    getrandom::getrandom(&mut s).unwrap();
    s
}

/// Every subset of `shares` (as bit masks over their indices).
fn subsets(shares: &[Share]) -> impl Iterator<Item = Vec<&Share>> {
    (1u32..(1 << shares.len())).map(move |mask| {
        shares
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, s)| s)
            .collect()
    })
}

#[test]
fn every_subset_of_at_least_m_recovers_and_every_m_minus_1_does_not() {
    for (m, n) in [(2u8, 2u8), (2, 3), (3, 5), (5, 5)] {
        let secret = random_secret();
        let shares = split(&secret, m, n).unwrap();
        assert_eq!(shares.len(), usize::from(n));
        let mut recovered = 0;
        for subset in subsets(&shares) {
            if subset.len() >= usize::from(m) {
                assert_eq!(recover(&subset).unwrap().as_slice(), secret, "{m}-of-{n}");
                recovered += 1;
            } else {
                assert_eq!(
                    recover(&subset).unwrap_err(),
                    ShamirError::TooFewShares {
                        given: subset.len(),
                        needed: m
                    }
                );
                // Interpolating anyway gives something else, not the secret.
                assert_ne!(interpolate(&subset, 0).as_slice(), secret, "{m}-of-{n}");
            }
        }
        let expected: usize = (usize::from(m)..=usize::from(n))
            .map(|k| binomial(usize::from(n), k))
            .sum();
        assert_eq!(recovered, expected);
    }
}

fn binomial(n: usize, k: usize) -> usize {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

#[test]
fn one_share_of_a_2_of_n_split_is_uniform_over_all_byte_values() {
    // Perfect hiding, checked statistically: with M = 2 one share's byte is the secret byte
    // plus a uniform random coefficient times x, so over many splits of the same secret it
    // must take every value, about equally often.
    let secret = [0x42u8];
    let mut counts = [0u32; 256];
    for _ in 0..5000 {
        let shares = split(&secret, 2, 3).unwrap();
        counts[usize::from(shares[1].expose_secret()[0])] += 1;
    }
    assert!(
        counts.iter().all(|c| *c > 0),
        "some byte value never appeared"
    );
    // Mean 19.5, standard deviation about 4.4.
    assert!(counts.iter().all(|c| *c < 60), "{counts:?}");
}

#[test]
fn split_refuses_parameters_outside_2_le_m_le_n() {
    for (m, n) in [(0u8, 0u8), (1, 1), (1, 3), (3, 2), (2, 1), (255, 254)] {
        assert_eq!(
            split(b"secret", m, n).unwrap_err(),
            ShamirError::InvalidParameters {
                threshold: m,
                shares: n
            }
        );
    }
    assert_eq!(
        split(b"", 2, 3).unwrap_err(),
        ShamirError::InvalidSecretLength { len: 0 }
    );
    assert!(split(&vec![0u8; super::MAX_SECRET_LEN + 1], 2, 3).is_err());
}

#[test]
fn the_largest_split_255_of_255_recovers() {
    let secret = random_secret();
    let shares = split(&secret, 255, 255).unwrap();
    assert_eq!(shares.last().unwrap().x(), 255);
    assert_eq!(recover(&shares).unwrap().as_slice(), secret);
}

#[test]
fn shares_carry_their_split_parameters() {
    let shares = split(&random_secret(), 3, 5).unwrap();
    let id = shares[0].set_id();
    for (i, s) in shares.iter().enumerate() {
        assert_eq!((s.threshold(), s.shares(), s.x()), (3, 5, i as u8 + 1));
        assert_eq!(s.set_id(), id);
        assert_eq!(s.expose_secret().len(), 32);
    }
    assert_ne!(split(&random_secret(), 3, 5).unwrap()[0].set_id(), id);
}

fn copy(share: &Share) -> Share {
    Share::from_transcript(&share.to_transcript()).unwrap()
}

#[test]
fn a_share_given_twice_is_refused() {
    let shares = split(&random_secret(), 2, 3).unwrap();
    let twice = [copy(&shares[1]), copy(&shares[1])];
    assert_eq!(
        recover(&twice).unwrap_err(),
        ShamirError::DuplicateShare { x: 2 }
    );
}

#[test]
fn shares_from_two_different_splits_are_refused() {
    let secret = random_secret();
    let a = split(&secret, 2, 3).unwrap();
    let b = split(&secret, 2, 3).unwrap();
    assert_eq!(
        recover(&[&a[0], &b[1]]).unwrap_err(),
        ShamirError::MixedSets
    );
}

#[test]
fn shares_disagreeing_on_parameters_or_length_are_refused() {
    let shares = split(&random_secret(), 2, 3).unwrap();
    let mut other_n = copy(&shares[1]);
    other_n.shares = 4;
    assert_eq!(
        recover(&[&shares[0], &other_n]).unwrap_err(),
        ShamirError::MismatchedParameters
    );
    let mut other_m = copy(&shares[1]);
    other_m.threshold = 3;
    assert_eq!(
        recover(&[&shares[0], &other_m]).unwrap_err(),
        ShamirError::MismatchedParameters
    );
    let mut shorter = copy(&shares[1]);
    shorter.y.truncate(31);
    assert_eq!(
        recover(&[&shares[0], &shorter]).unwrap_err(),
        ShamirError::MismatchedLengths
    );
    let mut beyond_n = copy(&shares[1]);
    beyond_n.x = 4;
    assert_eq!(
        recover(&[&shares[0], &beyond_n]).unwrap_err(),
        ShamirError::InvalidShareNumber { x: 4 }
    );
    let mut zero = copy(&shares[1]);
    zero.x = 0;
    assert_eq!(
        recover(&[&shares[0], &zero]).unwrap_err(),
        ShamirError::InvalidShareNumber { x: 0 }
    );
    let none: [&Share; 0] = [];
    assert!(matches!(
        recover(&none).unwrap_err(),
        ShamirError::TooFewShares { given: 0, .. }
    ));
}

#[test]
fn a_wrong_extra_share_is_caught_not_silently_used() {
    let secret = random_secret();
    let shares = split(&secret, 2, 3).unwrap();
    let mut wrong = copy(&shares[2]);
    wrong.y[5] ^= 1;
    assert_eq!(
        recover(&[&shares[0], &shares[1], &wrong]).unwrap_err(),
        ShamirError::InconsistentShares
    );
    assert_eq!(
        recover(&[&shares[0], &shares[1]]).unwrap().as_slice(),
        secret
    );
}

#[test]
fn debug_of_a_share_shows_no_value() {
    let shares = split(&[0xAB; 32], 2, 2).unwrap();
    let debug = format!("{:?}", shares[0]);
    let y: String = shares[0]
        .expose_secret()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    assert!(!debug.to_ascii_uppercase().contains(&y[..8]), "{debug}");
    assert!(debug.contains("x: 1"));
}
