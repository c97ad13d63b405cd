//! Certificate public keys: statement signatures by an attestation certificate's key, X.509
//! signatures, and comparison with the attested COSE credential key. ring does the math.
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use x509_parser::public_key::PublicKey;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use super::AttestationError;
use crate::webauthn::cose::{CoseAlgorithm, CoseKey, EcCurve, KeyParams, OkpCurve};

const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const ED25519: &str = "1.3.101.112";
/// The contents octets of the named-curve OIDs.
const P256_OID: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const P384_OID: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];

/// A certificate key ring can verify with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyKind {
    /// EC P-256, uncompressed point.
    P256,
    /// EC P-384, uncompressed point.
    P384,
    /// RSA, the RSAPublicKey DER.
    Rsa,
    /// Ed25519, 32 bytes.
    Ed25519,
}

/// The kind of an SPKI, or `UnsupportedKey`.
pub(super) fn kind(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, AttestationError> {
    let alg = spki.algorithm.algorithm.to_id_string();
    let params = spki.algorithm.parameters.as_ref().map(|p| p.data);
    match (alg.as_str(), params) {
        (EC_PUBLIC_KEY, Some(P256_OID)) => Ok(KeyKind::P256),
        (EC_PUBLIC_KEY, Some(P384_OID)) => Ok(KeyKind::P384),
        (RSA_ENCRYPTION, _) => Ok(KeyKind::Rsa),
        (ED25519, _) => Ok(KeyKind::Ed25519),
        _ => Err(AttestationError::UnsupportedKey),
    }
}

fn verify_raw(
    alg: &'static dyn VerificationAlgorithm,
    spki: &SubjectPublicKeyInfo<'_>,
    message: &[u8],
    sig: &[u8],
) -> bool {
    UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(message, sig)
        .is_ok()
}

/// Verifies a statement signature made with COSE `alg` by the certificate key `spki`.
pub(super) fn verify_cose_alg(
    spki: &SubjectPublicKeyInfo<'_>,
    alg: CoseAlgorithm,
    message: &[u8],
    sig: &[u8],
) -> Result<(), AttestationError> {
    use CoseAlgorithm as A;
    let ring_alg: &'static dyn VerificationAlgorithm = match (alg, kind(spki)?) {
        (A::Es256, KeyKind::P256) => &signature::ECDSA_P256_SHA256_ASN1,
        (A::Es384, KeyKind::P384) => &signature::ECDSA_P384_SHA384_ASN1,
        (A::Rs256, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
        (A::Rs384, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA384,
        (A::Rs512, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA512,
        (A::Rs1, KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        (A::Ps256, KeyKind::Rsa) => &signature::RSA_PSS_2048_8192_SHA256,
        (A::Ps384, KeyKind::Rsa) => &signature::RSA_PSS_2048_8192_SHA384,
        (A::Ps512, KeyKind::Rsa) => &signature::RSA_PSS_2048_8192_SHA512,
        (A::EdDsa, KeyKind::Ed25519) => &signature::ED25519,
        // ES512 (P-521) and Ed448 are not in ring.
        (A::Es512, _) => return Err(AttestationError::UnsupportedKey),
        _ => return Err(AttestationError::AlgorithmMismatch),
    };
    if verify_raw(ring_alg, spki, message, sig) {
        Ok(())
    } else {
        Err(AttestationError::BadSignature)
    }
}

/// Verifies an X.509 signature (certificate or JWS) by `spki` under `sig_alg`.
pub(super) fn verify_x509(
    spki: &SubjectPublicKeyInfo<'_>,
    sig_alg: &AlgorithmIdentifier<'_>,
    message: &[u8],
    sig: &[u8],
) -> Result<(), AttestationError> {
    let oid = sig_alg.algorithm.to_id_string();
    let key = kind(spki)?;
    let ring_alg: &'static dyn VerificationAlgorithm = match (oid.as_str(), key) {
        ("1.2.840.10045.4.3.2", KeyKind::P256) => &signature::ECDSA_P256_SHA256_ASN1,
        ("1.2.840.10045.4.3.2", KeyKind::P384) => &signature::ECDSA_P384_SHA256_ASN1,
        ("1.2.840.10045.4.3.3", KeyKind::P256) => &signature::ECDSA_P256_SHA384_ASN1,
        ("1.2.840.10045.4.3.3", KeyKind::P384) => &signature::ECDSA_P384_SHA384_ASN1,
        ("1.2.840.113549.1.1.11", KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA256,
        ("1.2.840.113549.1.1.12", KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA384,
        ("1.2.840.113549.1.1.13", KeyKind::Rsa) => &signature::RSA_PKCS1_2048_8192_SHA512,
        // Legacy roots and intermediates (Yubico, Microsoft TPM, GlobalSign) still sign with SHA-1.
        ("1.2.840.113549.1.1.5", KeyKind::Rsa) => {
            &signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
        }
        ("1.2.840.113549.1.1.10", KeyKind::Rsa) => pss_params(sig_alg)?,
        ("1.3.101.112", KeyKind::Ed25519) => &signature::ED25519,
        _ => return Err(AttestationError::UnsupportedSignatureAlgorithm),
    };
    if verify_raw(ring_alg, spki, message, sig) {
        Ok(())
    } else {
        Err(AttestationError::ChainBadSignature)
    }
}

/// RSASSA-PSS parameters: only hash = MGF1 hash = SHA-256/384/512 (the default SHA-1 is refused).
fn pss_params(
    sig_alg: &AlgorithmIdentifier<'_>,
) -> Result<&'static dyn VerificationAlgorithm, AttestationError> {
    // DER contents of the hash OIDs: 2.16.840.1.101.3.4.2.{1,2,3}.
    let hash = |last: u8| [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, last];
    let params = sig_alg
        .parameters
        .as_ref()
        .map(|p| p.data)
        .ok_or(AttestationError::UnsupportedSignatureAlgorithm)?;
    let has = |last: u8| params.windows(9).any(|w| w == hash(last));
    match (has(1), has(2), has(3)) {
        (true, false, false) => Ok(&signature::RSA_PSS_2048_8192_SHA256),
        (false, true, false) => Ok(&signature::RSA_PSS_2048_8192_SHA384),
        (false, false, true) => Ok(&signature::RSA_PSS_2048_8192_SHA512),
        _ => Err(AttestationError::UnsupportedSignatureAlgorithm),
    }
}

fn strip_zeros(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
    b.get(start..).unwrap_or_default()
}

/// Whether the certificate key is exactly the COSE credential key.
pub(super) fn same_key(spki: &SubjectPublicKeyInfo<'_>, cose: &CoseKey) -> bool {
    let Ok(kind) = kind(spki) else { return false };
    let data: &[u8] = &spki.subject_public_key.data;
    match (&cose.params, kind) {
        (
            KeyParams::Ec2 {
                curve: EcCurve::P256,
                x,
                y,
            },
            KeyKind::P256,
        )
        | (
            KeyParams::Ec2 {
                curve: EcCurve::P384,
                x,
                y,
            },
            KeyKind::P384,
        ) => ec_point(x, y).as_slice() == data,
        (KeyParams::Rsa { n, e }, KeyKind::Rsa) => match spki.parsed() {
            Ok(PublicKey::RSA(k)) => {
                strip_zeros(k.modulus) == strip_zeros(n)
                    && strip_zeros(k.exponent) == strip_zeros(e)
            }
            _ => false,
        },
        (
            KeyParams::Okp {
                curve: OkpCurve::Ed25519,
                x,
            },
            KeyKind::Ed25519,
        ) => x.as_slice() == data,
        _ => false,
    }
}

/// 0x04 || x || y.
pub(super) fn ec_point(x: &[u8], y: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(1 + x.len() + y.len());
    p.push(0x04);
    p.extend_from_slice(x);
    p.extend_from_slice(y);
    p
}
