//! COSE keys (RFC 9052 §7, RFC 9053 §2 and §7) and signature verification.
//!
//! A key is accepted only when every label is known for its key type, its algorithm is
//! present and matches the key type and curve, coordinates have the exact curve length and an
//! RSA modulus has 2048 to 8192 bits. Signatures are checked as WebAuthn encodes them: ECDSA as
//! ASN.1 DER, EdDSA raw, RSA PKCS#1 v1.5 or PSS by algorithm.

use super::cbor::{self, Value};
use super::WebauthnError;

/// A COSE algorithm identifier payhsm knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CoseAlgorithm {
    /// -7 ECDSA P-256 SHA-256
    Es256,
    /// -35 ECDSA P-384 SHA-384
    Es384,
    /// -36 ECDSA P-521 SHA-512
    Es512,
    /// -8 EdDSA (Ed25519 or Ed448 by curve)
    EdDsa,
    /// -257 RSASSA-PKCS1-v1_5 SHA-256
    Rs256,
    /// -258
    Rs384,
    /// -259
    Rs512,
    /// -65535 RSASSA-PKCS1-v1_5 SHA-1 (legacy TPMs; only where policy allows)
    Rs1,
    /// -37 RSASSA-PSS SHA-256
    Ps256,
    /// -38
    Ps384,
    /// -39
    Ps512,
}

/// Elliptic curves for EC2 keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    /// crv 1
    P256,
    /// crv 2
    P384,
    /// crv 3
    P521,
}

/// Curves for OKP keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OkpCurve {
    /// crv 6
    Ed25519,
    /// crv 7
    Ed448,
}

/// The key material of a COSE key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyParams {
    /// kty 2
    Ec2 {
        /// Curve.
        curve: EcCurve,
        /// X coordinate (big-endian, curve size).
        x: Vec<u8>,
        /// Y coordinate.
        y: Vec<u8>,
    },
    /// kty 1
    Okp {
        /// Curve.
        curve: OkpCurve,
        /// Public key.
        x: Vec<u8>,
    },
    /// kty 3
    Rsa {
        /// Modulus (big-endian, no leading zero).
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
}

/// A credential public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoseKey {
    /// Its algorithm.
    pub alg: CoseAlgorithm,
    /// Its material.
    pub params: KeyParams,
}

/// COSE problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoseError {
    /// The signature does not verify.
    BadSignature,
    /// The key is not a CBOR map.
    NotAMap,
    /// A required label is missing (the label).
    MissingLabel(i64),
    /// A label that is not defined for this key type (or not an integer).
    UnknownLabel,
    /// A known label with a value of the wrong CBOR type (the label).
    WrongLabelType(i64),
    /// A key type other than OKP (1), EC2 (2) or RSA (3).
    UnsupportedKeyType,
    /// A curve not defined for the key type.
    UnsupportedCurve,
    /// An algorithm payhsm does not implement.
    UnsupportedAlgorithm,
    /// The algorithm does not belong to the key type or curve.
    AlgorithmKeyMismatch,
    /// A coordinate or public key of the wrong length for its curve.
    CoordinateLength,
    /// An RSA modulus outside 2048..=8192 bits.
    RsaKeySize,
    /// An RSA modulus or exponent with a leading zero, an even or tiny exponent.
    RsaMalformed,
}

impl CoseError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadSignature => "bad_signature",
            Self::NotAMap => "cose_not_a_map",
            Self::MissingLabel(_) => "cose_missing_label",
            Self::UnknownLabel => "cose_unknown_label",
            Self::WrongLabelType(_) => "cose_wrong_label_type",
            Self::UnsupportedKeyType => "cose_unsupported_key_type",
            Self::UnsupportedCurve => "cose_unsupported_curve",
            Self::UnsupportedAlgorithm => "unsupported_algorithm",
            Self::AlgorithmKeyMismatch => "cose_alg_key_mismatch",
            Self::CoordinateLength => "cose_coordinate_length",
            Self::RsaKeySize => "rsa_key_size",
            Self::RsaMalformed => "rsa_key_malformed",
        }
    }
}

impl std::fmt::Display for CoseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BadSignature => f.write_str("signature does not verify"),
            Self::NotAMap => f.write_str("key is not a map"),
            Self::MissingLabel(l) => write!(f, "label {l} missing"),
            Self::UnknownLabel => f.write_str("label not defined for the key type"),
            Self::WrongLabelType(l) => write!(f, "label {l} has the wrong type"),
            Self::UnsupportedKeyType => f.write_str("unsupported kty"),
            Self::UnsupportedCurve => f.write_str("unsupported crv"),
            Self::UnsupportedAlgorithm => f.write_str("unsupported alg"),
            Self::AlgorithmKeyMismatch => f.write_str("alg does not match kty/crv"),
            Self::CoordinateLength => f.write_str("coordinate length does not match the curve"),
            Self::RsaKeySize => f.write_str("RSA modulus not 2048..=8192 bits"),
            Self::RsaMalformed => f.write_str("RSA modulus or exponent malformed"),
        }
    }
}

const LABEL_KTY: i64 = 1;
const LABEL_ALG: i64 = 3;
const LABEL_CRV_OR_N: i64 = -1;
const LABEL_X_OR_E: i64 = -2;
const LABEL_Y: i64 = -3;

impl CoseAlgorithm {
    /// From the COSE integer.
    pub fn from_i64(v: i64) -> Option<Self> {
        Some(match v {
            -7 => Self::Es256,
            -35 => Self::Es384,
            -36 => Self::Es512,
            -8 => Self::EdDsa,
            -257 => Self::Rs256,
            -258 => Self::Rs384,
            -259 => Self::Rs512,
            -65535 => Self::Rs1,
            -37 => Self::Ps256,
            -38 => Self::Ps384,
            -39 => Self::Ps512,
            _ => return None,
        })
    }

    /// The COSE integer.
    pub fn to_i64(self) -> i64 {
        match self {
            Self::Es256 => -7,
            Self::Es384 => -35,
            Self::Es512 => -36,
            Self::EdDsa => -8,
            Self::Rs256 => -257,
            Self::Rs384 => -258,
            Self::Rs512 => -259,
            Self::Rs1 => -65535,
            Self::Ps256 => -37,
            Self::Ps384 => -38,
            Self::Ps512 => -39,
        }
    }

    fn is_rsa(self) -> bool {
        matches!(
            self,
            Self::Rs256
                | Self::Rs384
                | Self::Rs512
                | Self::Rs1
                | Self::Ps256
                | Self::Ps384
                | Self::Ps512
        )
    }
}

impl EcCurve {
    /// Coordinate length in bytes.
    pub fn coordinate_len(self) -> usize {
        match self {
            Self::P256 => 32,
            Self::P384 => 48,
            Self::P521 => 66,
        }
    }
}

impl OkpCurve {
    /// Public key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Self::Ed25519 => 32,
            Self::Ed448 => 57,
        }
    }
}

/// The integer under `label`, or the error naming it.
fn int_label(map: &Value, label: i64) -> Result<i128, CoseError> {
    map.get_int(label)
        .ok_or(CoseError::MissingLabel(label))?
        .as_int()
        .ok_or(CoseError::WrongLabelType(label))
}

fn bytes_label(map: &Value, label: i64) -> Result<Vec<u8>, CoseError> {
    map.get_int(label)
        .ok_or(CoseError::MissingLabel(label))?
        .as_bytes()
        .map(<[u8]>::to_vec)
        .ok_or(CoseError::WrongLabelType(label))
}

/// Refuses any label outside `allowed` (RFC 9052 allows more, WebAuthn keys carry none).
fn only_labels(map: &[(Value, Value)], allowed: &[i64]) -> Result<(), CoseError> {
    for (key, _) in map {
        let known = key
            .as_int()
            .is_some_and(|k| allowed.iter().any(|a| i128::from(*a) == k));
        if !known {
            return Err(CoseError::UnknownLabel);
        }
    }
    Ok(())
}

/// A big-endian unsigned integer with no leading zero byte.
fn minimal_unsigned(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| *b != 0)
}

impl CoseKey {
    /// Parses a COSE_Key map.
    pub fn from_cbor(value: &Value) -> Result<Self, CoseError> {
        let map = value.as_map().ok_or(CoseError::NotAMap)?;
        let kty = int_label(value, LABEL_KTY)?;
        let alg_raw = int_label(value, LABEL_ALG)?;
        // RFC 9864's fully-specified Ed25519 (-19) and Ed448 (-53) are EdDSA pinned to one curve
        // (the WebAuthn L3 test vectors use -53); they are held as EdDsa once the curve agrees.
        let pinned_okp_curve = match alg_raw {
            -19 => Some(OkpCurve::Ed25519),
            -53 => Some(OkpCurve::Ed448),
            _ => None,
        };
        let alg = match pinned_okp_curve {
            Some(_) => CoseAlgorithm::EdDsa,
            None => i64::try_from(alg_raw)
                .ok()
                .and_then(CoseAlgorithm::from_i64)
                .ok_or(CoseError::UnsupportedAlgorithm)?,
        };
        let params = match kty {
            1 => {
                only_labels(map, &[LABEL_KTY, LABEL_ALG, LABEL_CRV_OR_N, LABEL_X_OR_E])?;
                let curve = match int_label(value, LABEL_CRV_OR_N)? {
                    6 => OkpCurve::Ed25519,
                    7 => OkpCurve::Ed448,
                    _ => return Err(CoseError::UnsupportedCurve),
                };
                if alg != CoseAlgorithm::EdDsa || pinned_okp_curve.is_some_and(|c| c != curve) {
                    return Err(CoseError::AlgorithmKeyMismatch);
                }
                let x = bytes_label(value, LABEL_X_OR_E)?;
                if x.len() != curve.key_len() {
                    return Err(CoseError::CoordinateLength);
                }
                KeyParams::Okp { curve, x }
            }
            2 => {
                only_labels(
                    map,
                    &[LABEL_KTY, LABEL_ALG, LABEL_CRV_OR_N, LABEL_X_OR_E, LABEL_Y],
                )?;
                let curve = match int_label(value, LABEL_CRV_OR_N)? {
                    1 => EcCurve::P256,
                    2 => EcCurve::P384,
                    3 => EcCurve::P521,
                    _ => return Err(CoseError::UnsupportedCurve),
                };
                let expected = match curve {
                    EcCurve::P256 => CoseAlgorithm::Es256,
                    EcCurve::P384 => CoseAlgorithm::Es384,
                    EcCurve::P521 => CoseAlgorithm::Es512,
                };
                if alg != expected {
                    return Err(CoseError::AlgorithmKeyMismatch);
                }
                // y as a bool (point compression) is a wrong type here: WebAuthn sends both.
                let x = bytes_label(value, LABEL_X_OR_E)?;
                let y = bytes_label(value, LABEL_Y)?;
                if x.len() != curve.coordinate_len() || y.len() != curve.coordinate_len() {
                    return Err(CoseError::CoordinateLength);
                }
                KeyParams::Ec2 { curve, x, y }
            }
            3 => {
                only_labels(map, &[LABEL_KTY, LABEL_ALG, LABEL_CRV_OR_N, LABEL_X_OR_E])?;
                if !alg.is_rsa() {
                    return Err(CoseError::AlgorithmKeyMismatch);
                }
                let n = bytes_label(value, LABEL_CRV_OR_N)?;
                let e = bytes_label(value, LABEL_X_OR_E)?;
                if !minimal_unsigned(&n) || !minimal_unsigned(&e) {
                    return Err(CoseError::RsaMalformed);
                }
                let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
                if !(2048..=8192).contains(&bits) {
                    return Err(CoseError::RsaKeySize);
                }
                // ring refuses even exponents and e < 3 at verification; refuse them here too.
                let e_is_odd = e.last().is_some_and(|b| b & 1 == 1);
                if !e_is_odd || (e.len() == 1 && e.first().is_some_and(|b| *b < 3)) || e.len() > 4 {
                    return Err(CoseError::RsaMalformed);
                }
                KeyParams::Rsa { n, e }
            }
            _ => return Err(CoseError::UnsupportedKeyType),
        };
        Ok(Self { alg, params })
    }

    /// Decodes exactly one COSE_Key from CBOR bytes (the stored form); trailing bytes refused.
    pub fn from_cbor_bytes(bytes: &[u8]) -> Result<Self, WebauthnError> {
        let value = cbor::decode(bytes)?;
        Ok(Self::from_cbor(&value)?)
    }

    /// For an EC2 key, the SEC1 uncompressed point `0x04 || x || y`.
    pub fn ec_uncompressed_point(&self) -> Option<Vec<u8>> {
        match &self.params {
            KeyParams::Ec2 { x, y, .. } => {
                let mut point = Vec::with_capacity(1 + x.len() + y.len());
                point.push(0x04);
                point.extend_from_slice(x);
                point.extend_from_slice(y);
                Some(point)
            }
            _ => None,
        }
    }

    /// For an RSA key, the modulus and public exponent (big-endian, no leading zero).
    pub fn rsa_modulus_exponent(&self) -> Option<(&[u8], &[u8])> {
        match &self.params {
            KeyParams::Rsa { n, e } => Some((n, e)),
            _ => None,
        }
    }
}

mod verify;

#[cfg(test)]
#[path = "cose_tests.rs"]
mod tests;
