//! Start-up known-answer tests over the crypto crates payhsm uses.
//!
//! Any failure means: refuse to serve. The vectors are data ([`Vectors`]) so a test can corrupt
//! one expected value and see the matching algorithm fail.
use super::primitives;
use sha2::{Digest, Sha256};

/// A known-answer test failed; names the algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelfTestError(pub &'static str);

impl std::fmt::Display for SelfTestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "known-answer test failed: {}", self.0)
    }
}

impl std::error::Error for SelfTestError {}

const AES_GCM: &str = "AES-256-GCM";
const HMAC_SHA256: &str = "HMAC-SHA256";
const HKDF_SHA256: &str = "HKDF-SHA256";
const SHA256: &str = "SHA-256";
const ECDSA_P256: &str = "ECDSA-P256-SHA256";

/// Hex-encoded test vectors, one per algorithm.
struct Vectors<'a> {
    aes_gcm: AesGcmVector<'a>,
    hmac: HmacVector<'a>,
    hkdf: HkdfVector<'a>,
    sha256: Sha256Vector<'a>,
    ecdsa: EcdsaVector<'a>,
}

struct AesGcmVector<'a> {
    key: &'a str,
    iv: &'a str,
    aad: &'a str,
    plaintext: &'a str,
    ciphertext: &'a str,
    tag: &'a str,
}

struct HmacVector<'a> {
    key: &'a str,
    data: &'a str,
    mac: &'a str,
}

struct HkdfVector<'a> {
    ikm: &'a str,
    salt: &'a str,
    info: &'a str,
    okm: &'a str,
}

struct Sha256Vector<'a> {
    message: &'a str,
    digest: &'a str,
}

struct EcdsaVector<'a> {
    /// Uncompressed SEC1 point.
    public_key: &'a str,
    message: &'a str,
    /// r || s.
    signature: &'a str,
}

const VECTORS: Vectors<'static> = Vectors {
    // The Galois/Counter Mode of Operation (McGrew, Viega), test case 16: 256-bit key, 96-bit IV,
    // AAD, 60-byte plaintext.
    aes_gcm: AesGcmVector {
        key: "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308",
        iv: "cafebabefacedbaddecaf888",
        aad: "feedfacedeadbeeffeedfacedeadbeefabaddad2",
        plaintext: "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
                    1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
        ciphertext: "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
                     8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
        tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    },
    // RFC 4231 §4.3, test case 2.
    hmac: HmacVector {
        key: "4a656665",
        data: "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
        mac: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    },
    // RFC 5869 §A.1, test case 1.
    hkdf: HkdfVector {
        ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
        salt: "000102030405060708090a0b0c",
        info: "f0f1f2f3f4f5f6f7f8f9",
        okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf\
              34007208d5b887185865",
    },
    // FIPS 180-2 appendix B.1: "abc".
    sha256: Sha256Vector {
        message: "616263",
        digest: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    },
    // RFC 6979 §A.2.5: P-256, SHA-256, message "sample".
    ecdsa: EcdsaVector {
        public_key: "0460fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6\
                     7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299",
        message: "73616d706c65",
        signature: "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716\
                    f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8",
    },
};

/// Runs the start-up known-answer tests: AES-256-GCM (encrypt and decrypt), HMAC-SHA256,
/// HKDF-SHA256, SHA-256 and ECDSA P-256 verification.
pub fn run_known_answer_tests() -> Result<(), SelfTestError> {
    run(&VECTORS)
}

fn run(v: &Vectors<'_>) -> Result<(), SelfTestError> {
    check_aes_gcm(&v.aes_gcm).ok_or(SelfTestError(AES_GCM))?;
    check_hmac(&v.hmac).ok_or(SelfTestError(HMAC_SHA256))?;
    check_hkdf(&v.hkdf).ok_or(SelfTestError(HKDF_SHA256))?;
    check_sha256(&v.sha256).ok_or(SelfTestError(SHA256))?;
    check_ecdsa(&v.ecdsa).ok_or(SelfTestError(ECDSA_P256))?;
    Ok(())
}

/// `Some(())` when the vector passes.
fn check_aes_gcm(v: &AesGcmVector<'_>) -> Option<()> {
    let key = hex(v.key)?;
    let iv = hex(v.iv)?;
    let aad = hex(v.aad)?;
    let plaintext = hex(v.plaintext)?;
    let mut expected = hex(v.ciphertext)?;
    expected.extend_from_slice(&hex(v.tag)?);
    // The calls the data keys make (`keys::primitives`), so the test covers that path.
    let key: &[u8; primitives::GCM_KEY_LEN] = key.as_slice().try_into().ok()?;
    let nonce: &[u8; primitives::GCM_NONCE_LEN] = iv.as_slice().try_into().ok()?;
    let mut buf = Vec::with_capacity(plaintext.len() + primitives::GCM_TAG_LEN);
    buf.extend_from_slice(&plaintext);
    primitives::gcm_seal_in_place(key, nonce, &aad, &mut buf).ok()?;
    if buf != expected {
        return None;
    }
    primitives::gcm_open_in_place(key, nonce, &aad, &mut buf).ok()?;
    (buf == plaintext).then_some(())
}

fn check_hmac(v: &HmacVector<'_>) -> Option<()> {
    let mac = primitives::hmac_sha256(&hex(v.key)?, &[&hex(v.data)?])?;
    (mac.as_slice() == hex(v.mac)?.as_slice()).then_some(())
}

fn check_hkdf(v: &HkdfVector<'_>) -> Option<()> {
    let expected = hex(v.okm)?;
    let mut okm = vec![0u8; expected.len()];
    primitives::hkdf_sha256(&hex(v.salt)?, &hex(v.ikm)?, &hex(v.info)?, &mut okm)?;
    (okm == expected).then_some(())
}

fn check_sha256(v: &Sha256Vector<'_>) -> Option<()> {
    let digest = Sha256::digest(hex(v.message)?);
    (digest.as_slice() == hex(v.digest)?.as_slice()).then_some(())
}

fn check_ecdsa(v: &EcdsaVector<'_>) -> Option<()> {
    let key = ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P256_SHA256_FIXED,
        hex(v.public_key)?,
    );
    key.verify(&hex(v.message)?, &hex(v.signature)?).ok()
}

/// Decodes lowercase or uppercase hex; `None` on odd length or a non-hex digit.
fn hex(s: &str) -> Option<Vec<u8>> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    }
    let s = s.as_bytes();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Some(nibble(*hi)? << 4 | nibble(*lo)?),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Flips the last hex digit of an expected value.
    fn corrupt(s: &str) -> String {
        let mut c = s.to_owned();
        let last = c.pop().unwrap();
        c.push(if last == '0' { '1' } else { '0' });
        c
    }

    #[test]
    fn known_answer_tests_pass() {
        assert_eq!(run_known_answer_tests(), Ok(()));
    }

    #[test]
    fn corrupted_aes_gcm_ciphertext_or_tag_fails_aes_gcm() {
        let ct = corrupt(VECTORS.aes_gcm.ciphertext);
        let mut v = VECTORS;
        v.aes_gcm.ciphertext = &ct;
        assert_eq!(run(&v), Err(SelfTestError(AES_GCM)));
        let tag = corrupt(VECTORS.aes_gcm.tag);
        let mut v = VECTORS;
        v.aes_gcm.tag = &tag;
        assert_eq!(run(&v), Err(SelfTestError(AES_GCM)));
    }

    #[test]
    fn corrupted_hmac_fails_hmac() {
        let mac = corrupt(VECTORS.hmac.mac);
        let mut v = VECTORS;
        v.hmac.mac = &mac;
        assert_eq!(run(&v), Err(SelfTestError(HMAC_SHA256)));
    }

    #[test]
    fn corrupted_hkdf_output_fails_hkdf() {
        let okm = corrupt(VECTORS.hkdf.okm);
        let mut v = VECTORS;
        v.hkdf.okm = &okm;
        assert_eq!(run(&v), Err(SelfTestError(HKDF_SHA256)));
    }

    #[test]
    fn corrupted_sha256_digest_fails_sha256() {
        let d = corrupt(VECTORS.sha256.digest);
        let mut v = VECTORS;
        v.sha256.digest = &d;
        assert_eq!(run(&v), Err(SelfTestError(SHA256)));
    }

    #[test]
    fn corrupted_ecdsa_signature_fails_ecdsa() {
        let sig = corrupt(VECTORS.ecdsa.signature);
        let mut v = VECTORS;
        v.ecdsa.signature = &sig;
        assert_eq!(run(&v), Err(SelfTestError(ECDSA_P256)));
    }

    #[test]
    fn display_names_the_algorithm() {
        assert_eq!(
            SelfTestError(HKDF_SHA256).to_string(),
            "known-answer test failed: HKDF-SHA256"
        );
    }

    #[test]
    fn hex_rejects_odd_length_and_non_hex() {
        assert_eq!(hex("0"), None);
        assert_eq!(hex("zz"), None);
        assert_eq!(hex("0aFf"), Some(vec![0x0a, 0xff]));
    }
}
