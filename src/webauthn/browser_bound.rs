//! Secure Payment Confirmation browser-bound keys (SPC, 2025 drafts: "browser bound key",
//! `CollectedClientAdditionalPaymentData.browserBoundPublicKey`,
//! `AuthenticationExtensionsPaymentOutputs.browserBoundSignature`): sans-io.
//!
//! A browser that supports them keeps a key pair of its own per credential, which never
//! syncs with the passkey: it puts the public key (a COSE_Key, base64url) in clientDataJSON's
//! `payment` member and returns a signature by it over the exact clientDataJSON bytes in the
//! `payment` extension output. The relying party verifies that signature, keeps the key at
//! enrolment, and at each payment requires the same key: a synced passkey used from another
//! device has the credential but not the browser's key.

use super::cbor::write::{bytes, int, map};
use super::cose::{CoseAlgorithm, CoseKey, EcCurve, KeyParams, OkpCurve};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::Digest as _;

/// Why a browser-bound key or signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrowserBoundError {
    /// Only one of the key (in clientDataJSON) and the signature (in the request) was sent.
    Incomplete,
    /// The key is not base64url of a COSE_Key payhsm can use.
    Malformed,
    /// The key's algorithm is not one the relying party accepts.
    AlgorithmNotAllowed,
    /// The signature over clientDataJSON does not verify under the key.
    BadSignature,
    /// The device enrolled with a browser-bound key and this assertion carries none.
    Missing,
    /// The assertion's browser-bound key is not the one the device enrolled with.
    Changed,
}

impl BrowserBoundError {
    /// The stable reason code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Incomplete => "browser_bound_key_incomplete",
            Self::Malformed => "browser_bound_key_malformed",
            Self::AlgorithmNotAllowed => "browser_bound_key_alg_not_allowed",
            Self::BadSignature => "browser_bound_signature_invalid",
            Self::Missing => "browser_bound_key_missing",
            Self::Changed => "browser_bound_key_changed",
        }
    }
}

impl std::fmt::Display for BrowserBoundError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Incomplete => {
                "the browser-bound key and its signature come together or not at all"
            }
            Self::Malformed => "the browser-bound key is not a usable COSE_Key",
            Self::AlgorithmNotAllowed => "the browser-bound key's algorithm is not accepted",
            Self::BadSignature => "the browser-bound signature does not verify",
            Self::Missing => "the device enrolled with a browser-bound key and none was sent",
            Self::Changed => "the browser-bound key is not the one the device enrolled with",
        })
    }
}

impl std::error::Error for BrowserBoundError {}

/// A verified browser-bound public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrowserBoundKey {
    /// The COSE_Key bytes as the browser sent them (what is stored and compared).
    pub cose: Vec<u8>,
    key: CoseKey,
}

impl BrowserBoundKey {
    /// The COSE Key Thumbprint (RFC 9679): SHA-256 over the deterministic CBOR map of the
    /// key type's required members, base64url.
    pub fn thumbprint(&self) -> String {
        // Labels in deterministic (bytewise) order: 1 (kty), then -1, -2, -3.
        let mut out = Vec::new();
        match &self.key.params {
            KeyParams::Ec2 { curve, x, y } => {
                let crv = match curve {
                    EcCurve::P256 => 1,
                    EcCurve::P384 => 2,
                    EcCurve::P521 => 3,
                };
                map(&mut out, 4);
                int(&mut out, 1);
                int(&mut out, 2);
                int(&mut out, -1);
                int(&mut out, crv);
                int(&mut out, -2);
                bytes(&mut out, x);
                int(&mut out, -3);
                bytes(&mut out, y);
            }
            KeyParams::Okp { curve, x } => {
                let crv = match curve {
                    OkpCurve::Ed25519 => 6,
                    OkpCurve::Ed448 => 7,
                };
                map(&mut out, 3);
                int(&mut out, 1);
                int(&mut out, 1);
                int(&mut out, -1);
                int(&mut out, crv);
                int(&mut out, -2);
                bytes(&mut out, x);
            }
            KeyParams::Rsa { n, e } => {
                map(&mut out, 3);
                int(&mut out, 1);
                int(&mut out, 3);
                int(&mut out, -1);
                bytes(&mut out, n);
                int(&mut out, -2);
                bytes(&mut out, e);
            }
        }
        URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(&out))
    }
}

/// Verifies the browser-bound signature of a ceremony the WebAuthn verifier has accepted:
/// `encoded_key` is `clientData.payment.browserBoundPublicKey` as its verdict reports it,
/// `client_data_json` the exact bytes, `signature` as the `payment` extension output
/// returned it. `None` when the browser sent neither; an error when it sent one without the
/// other, or when the key or the signature does not hold.
pub fn verify(
    encoded_key: Option<&str>,
    client_data_json: &[u8],
    signature: Option<&[u8]>,
    algorithms: &[CoseAlgorithm],
) -> Result<Option<BrowserBoundKey>, BrowserBoundError> {
    let (encoded, signature) = match (encoded_key, signature) {
        (None, None) => return Ok(None),
        (Some(k), Some(s)) => (k, s),
        _ => return Err(BrowserBoundError::Incomplete),
    };
    let cose = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| BrowserBoundError::Malformed)?;
    let key = CoseKey::from_cbor_bytes(&cose).map_err(|_| BrowserBoundError::Malformed)?;
    if !algorithms.contains(&key.alg) {
        return Err(BrowserBoundError::AlgorithmNotAllowed);
    }
    key.verify(client_data_json, signature)
        .map_err(|_| BrowserBoundError::BadSignature)?;
    Ok(Some(BrowserBoundKey { cose, key }))
}

/// At a payment: the assertion's verified browser-bound key against the one the device
/// enrolled with. A device enrolled without one accepts an assertion with or without.
pub fn check_enrolled(
    enrolled: Option<&[u8]>,
    presented: Option<&BrowserBoundKey>,
) -> Result<(), BrowserBoundError> {
    match (enrolled, presented) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(BrowserBoundError::Missing),
        (Some(e), Some(p)) if e == p.cose.as_slice() => Ok(()),
        (Some(_), Some(_)) => Err(BrowserBoundError::Changed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};

    fn ec2(x: &[u8], y: &[u8]) -> Vec<u8> {
        // {1: 2, 3: -7, -1: 1, -2: x, -3: y}
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20];
        out.extend_from_slice(x);
        out.extend([0x22, 0x58, 0x20]);
        out.extend_from_slice(y);
        out
    }

    #[test]
    fn the_thumbprint_is_rfc_9679s_example() {
        // RFC 9679 §6: the EC2 example key and its thumbprint.
        let hex = |s: &str| -> Vec<u8> {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect()
        };
        let x = hex("65eda5a12577c2bae829437fe338701a10aaa375e1bb5b5de108de439c08551d");
        let y = hex("1e52ed75701163f7f9e40ddf9f341b3dc9ba860af7e0ca7ca7e9eecd0084d19c");
        let cose = ec2(&x, &y);
        let key = BrowserBoundKey {
            key: CoseKey::from_cbor_bytes(&cose).unwrap(),
            cose,
        };
        let want = hex("496bd8afadf307e5b08c64b0421bf9dc01528a344a43bda88fadd1669da253ec");
        assert_eq!(key.thumbprint(), URL_SAFE_NO_PAD.encode(want));
    }

    struct Browser {
        key: EcdsaKeyPair,
        rng: SystemRandom,
    }

    impl Browser {
        fn new() -> Self {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            Self { key, rng }
        }

        fn client_data(&self) -> Vec<u8> {
            let point = self.key.public_key().as_ref();
            let cose = ec2(&point[1..33], &point[33..65]);
            serde_json::json!({
                "type": "payment.get", "challenge": "Y2g", "origin": "https://localhost",
                "payment": {"browserBoundPublicKey": URL_SAFE_NO_PAD.encode(cose)},
            })
            .to_string()
            .into_bytes()
        }

        fn sign(&self, message: &[u8]) -> Vec<u8> {
            self.key.sign(&self.rng, message).unwrap().as_ref().to_vec()
        }
    }

    const ES256: &[CoseAlgorithm] = &[CoseAlgorithm::Es256];

    /// [`verify`] with the key as the WebAuthn verifier reads it from the client data.
    fn verify_cd(
        data: &[u8],
        signature: Option<&[u8]>,
        algorithms: &[CoseAlgorithm],
    ) -> Result<Option<BrowserBoundKey>, BrowserBoundError> {
        let key = crate::webauthn::client_data::ClientData::parse(data)
            .map_err(|_| BrowserBoundError::Malformed)?
            .payment
            .and_then(|p| p.browser_bound_public_key);
        verify(key.as_deref(), data, signature, algorithms)
    }

    #[test]
    fn a_key_and_its_signature_over_the_exact_client_data_verify_cd() {
        let b = Browser::new();
        let data = b.client_data();
        let key = verify_cd(&data, Some(&b.sign(&data)), ES256)
            .unwrap()
            .unwrap();
        assert_eq!(check_enrolled(Some(&key.cose), Some(&key)), Ok(()));
        // Signed over other bytes, or verified against other bytes: refused.
        let mut other = data.clone();
        other.push(b' ');
        assert_eq!(
            verify_cd(&data, Some(&b.sign(&other)), ES256),
            Err(BrowserBoundError::BadSignature)
        );
        // Half of the pair: refused either way; neither: no key.
        assert_eq!(
            verify_cd(&data, None, ES256),
            Err(BrowserBoundError::Incomplete)
        );
        let plain = br#"{"type":"payment.get","challenge":"Y2g","origin":"https://localhost"}"#;
        assert_eq!(
            verify_cd(plain, Some(&[1]), ES256),
            Err(BrowserBoundError::Incomplete)
        );
        assert_eq!(verify_cd(plain, None, ES256), Ok(None));
        // An algorithm the relying party does not accept.
        assert_eq!(
            verify_cd(&data, Some(&b.sign(&data)), &[CoseAlgorithm::EdDsa]),
            Err(BrowserBoundError::AlgorithmNotAllowed)
        );
        // Not a COSE key.
        let junk = br#"{"type":"payment.get","challenge":"Y2g","origin":"https://localhost","payment":{"browserBoundPublicKey":"AAAA"}}"#;
        assert_eq!(
            verify_cd(junk, Some(&[1]), ES256),
            Err(BrowserBoundError::Malformed)
        );
    }

    #[test]
    fn an_enrolled_key_must_be_shown_again_and_be_the_same() {
        let (b1, b2) = (Browser::new(), Browser::new());
        let (d1, d2) = (b1.client_data(), b2.client_data());
        let k1 = verify_cd(&d1, Some(&b1.sign(&d1)), ES256).unwrap().unwrap();
        let k2 = verify_cd(&d2, Some(&b2.sign(&d2)), ES256).unwrap().unwrap();
        assert_eq!(
            check_enrolled(Some(&k1.cose), None),
            Err(BrowserBoundError::Missing)
        );
        assert_eq!(
            check_enrolled(Some(&k1.cose), Some(&k2)),
            Err(BrowserBoundError::Changed)
        );
        assert_eq!(check_enrolled(None, Some(&k2)), Ok(()));
        assert_eq!(check_enrolled(None, None), Ok(()));
        assert_ne!(k1.thumbprint(), k2.thumbprint());
    }
}
