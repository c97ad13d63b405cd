//! Signature verification with a parsed COSE key: ring for P-256, P-384, Ed25519 and RSA;
//! RustCrypto `p521` for ES512 and `ed448-goldilocks-plus` for Ed448, which ring lacks.

use super::{CoseAlgorithm, CoseError, CoseKey, EcCurve, KeyParams, OkpCurve};
use ring::signature as rs;

impl CoseKey {
    /// Verifies `signature` over `message` with this key and its algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CoseError> {
        let ok = match (&self.params, self.alg) {
            (KeyParams::Ec2 { curve, .. }, alg) => {
                let point = self.ec_uncompressed_point().ok_or(CoseError::NotAMap)?;
                match (curve, alg) {
                    (EcCurve::P256, CoseAlgorithm::Es256) => {
                        ring_verify(&rs::ECDSA_P256_SHA256_ASN1, &point, message, signature)
                    }
                    (EcCurve::P384, CoseAlgorithm::Es384) => {
                        ring_verify(&rs::ECDSA_P384_SHA384_ASN1, &point, message, signature)
                    }
                    (EcCurve::P521, CoseAlgorithm::Es512) => {
                        verify_p521(&point, message, signature)
                    }
                    _ => return Err(CoseError::AlgorithmKeyMismatch),
                }
            }
            (KeyParams::Okp { curve, x }, CoseAlgorithm::EdDsa) => match curve {
                OkpCurve::Ed25519 => ring_verify(&rs::ED25519, x, message, signature),
                OkpCurve::Ed448 => verify_ed448(x, message, signature),
            },
            (KeyParams::Rsa { n, e }, alg) => {
                let params: &rs::RsaParameters = match alg {
                    CoseAlgorithm::Rs256 => &rs::RSA_PKCS1_2048_8192_SHA256,
                    CoseAlgorithm::Rs384 => &rs::RSA_PKCS1_2048_8192_SHA384,
                    CoseAlgorithm::Rs512 => &rs::RSA_PKCS1_2048_8192_SHA512,
                    CoseAlgorithm::Rs1 => &rs::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
                    CoseAlgorithm::Ps256 => &rs::RSA_PSS_2048_8192_SHA256,
                    CoseAlgorithm::Ps384 => &rs::RSA_PSS_2048_8192_SHA384,
                    CoseAlgorithm::Ps512 => &rs::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(CoseError::AlgorithmKeyMismatch),
                };
                rs::RsaPublicKeyComponents { n, e }
                    .verify(params, message, signature)
                    .is_ok()
            }
            _ => return Err(CoseError::AlgorithmKeyMismatch),
        };
        if ok {
            Ok(())
        } else {
            Err(CoseError::BadSignature)
        }
    }
}

fn ring_verify(
    alg: &'static dyn rs::VerificationAlgorithm,
    public_key: &[u8],
    message: &[u8],
    signature: &[u8],
) -> bool {
    rs::UnparsedPublicKey::new(alg, public_key)
        .verify(message, signature)
        .is_ok()
}

/// ES512: ECDSA P-521 with SHA-512, DER signature (ring has no P-521).
fn verify_p521(point: &[u8], message: &[u8], signature: &[u8]) -> bool {
    use p521::ecdsa::signature::Verifier;
    let Ok(key) = p521::ecdsa::VerifyingKey::from_sec1_bytes(point) else {
        return false;
    };
    let Ok(sig) = p521::ecdsa::Signature::from_der(signature) else {
        return false;
    };
    key.verify(message, &sig).is_ok()
}

/// Ed448 (RFC 8032, empty context), raw 114-byte signature.
fn verify_ed448(public_key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    let Ok(key_bytes) = <[u8; 57]>::try_from(public_key) else {
        return false;
    };
    let Ok(sig_bytes) = <[u8; 114]>::try_from(signature) else {
        return false;
    };
    // RFC 8032 §5.2.3 decoding of A and of R (the first 57 bytes of the signature).
    let r_bytes = sig_bytes.first_chunk::<57>();
    if !ed448_point_canonical(&key_bytes) || !r_bytes.is_some_and(ed448_point_canonical) {
        return false;
    }
    let Ok(key) = ed448_goldilocks_plus::VerifyingKey::from_bytes(&key_bytes) else {
        return false;
    };
    let Ok(sig) = ed448_goldilocks_plus::Signature::from_bytes(&sig_bytes) else {
        return false;
    };
    key.verify_raw(&sig, message).is_ok()
}

/// RFC 8032 §5.2.3: an Ed448 point is y little-endian in bits 0..447, which must be below
/// p = 2^448 - 2^224 - 1, and the sign of x in bit 455; bits 448..454 are zero. The library
/// reads only bit 455 of the last byte, so without this check one signature had several
/// accepted encodings (Wycheproof ed448 tcId 63-65, `docs/wycheproof.md`).
fn ed448_point_canonical(encoded: &[u8; 57]) -> bool {
    let Some((&last, y)) = encoded.split_last() else {
        return false;
    };
    if last & 0x7f != 0 {
        return false;
    }
    // Little-endian p: bytes 0..=27 are 0xff, byte 28 is 0xfe, bytes 29..=55 are 0xff.
    for (i, byte) in y.iter().enumerate().rev() {
        let p_byte = if i == 28 { 0xfe } else { 0xff };
        if *byte != p_byte {
            return *byte < p_byte;
        }
    }
    false
}
