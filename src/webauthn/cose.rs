//! SKELETON (helper A implements): COSE keys and signatures.
use super::cbor::Value;

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
}

impl CoseError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        "bad_signature"
    }
}

impl std::fmt::Display for CoseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}

impl CoseAlgorithm {
    /// From the COSE integer.
    pub fn from_i64(v: i64) -> Option<Self> {
        let _ = v;
        unimplemented!()
    }
}

impl CoseKey {
    /// Parses a COSE_Key map.
    pub fn from_cbor(value: &Value) -> Result<Self, CoseError> {
        let _ = value;
        unimplemented!()
    }
    /// Verifies `signature` over `message` with this key and its algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CoseError> {
        let _ = (message, signature);
        unimplemented!()
    }
}
