//! A software WebAuthn authenticator, for the load generator's `authorize` scenario and the
//! end-to-end tests: a P-256 credential key (ring) held in process memory, clientDataJSON,
//! authenticator data and an attestation object (`none`, or `packed` self attestation),
//! encoded by a tiny CBOR writer.
//!
//! It produces what a browser would send; its public fields (origin, RP ID, UV flag) let tests
//! produce what a browser must not. It is not an authenticator anyone should trust: the key is
//! an ordinary heap value and its attestation is at most `self`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::error::Unspecified;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
use sha2::{Digest, Sha256};

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_AT: u8 = 0x40;

/// CBOR items, written in CTAP2 canonical form (the verifier's own writer).
pub use crate::webauthn::cbor::write as cbor;

/// Which attestation statement to produce.
#[derive(Clone, PartialEq, Eq)]
pub enum Attestation {
    /// `fmt: "none"`, `attStmt: {}`.
    None,
    /// `fmt: "packed"`, self attestation: `{alg: -7, sig}` signed by the credential key.
    PackedSelf,
    /// `fmt: "android-key"`: `{alg: -7, sig, x5c}` signed by the credential key, whose
    /// certificate (with its KeyDescription) is `x5c[0]`.
    AndroidKey {
        /// The credential key's certificate, then its issuers, DER.
        x5c: Vec<Vec<u8>>,
    },
    /// `fmt: "packed"`, full attestation: `{alg: -7, sig, x5c}` signed by an attestation key
    /// whose certificate is `x5c[0]`.
    PackedFull {
        /// The attestation key (P-256), PKCS#8.
        key_pkcs8: Vec<u8>,
        /// The attestation certificate, then any intermediates, DER.
        x5c: Vec<Vec<u8>>,
    },
}

/// The format and the certificate count, never the attestation key.
impl std::fmt::Debug for Attestation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::PackedSelf => f.write_str("PackedSelf"),
            Self::AndroidKey { x5c } => write!(f, "AndroidKey {{ x5c: {} certs }}", x5c.len()),
            Self::PackedFull { x5c, .. } => {
                write!(f, "PackedFull {{ x5c: {} certs, .. }}", x5c.len())
            }
        }
    }
}

/// A registration response, as the browser's `PublicKeyCredential` carries it.
#[derive(Debug, Clone)]
pub struct Registration {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// attestationObject.
    pub attestation_object: Vec<u8>,
    /// clientDataJSON.
    pub client_data_json: Vec<u8>,
    /// The SPC browser-bound signature over clientDataJSON, when the browser has a key.
    pub browser_bound_signature: Option<Vec<u8>>,
}

impl Registration {
    /// The `POST /v1/devices` body for this response to `challenge_id`.
    pub fn body(&self, challenge_id: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "challenge_id": challenge_id,
            "credential_id": URL_SAFE_NO_PAD.encode(&self.credential_id),
            "attestation_object": URL_SAFE_NO_PAD.encode(&self.attestation_object),
            "client_data_json": URL_SAFE_NO_PAD.encode(&self.client_data_json),
        });
        with_browser_bound_signature(&mut body, self.browser_bound_signature.as_deref());
        body
    }
}

fn with_browser_bound_signature(body: &mut serde_json::Value, signature: Option<&[u8]>) {
    if let (Some(sig), Some(fields)) = (signature, body.as_object_mut()) {
        fields.insert(
            "browser_bound_signature".to_owned(),
            URL_SAFE_NO_PAD.encode(sig).into(),
        );
    }
}

/// `fmt` and an ES256 `attStmt` `{alg: -7, sig[, x5c]}` (no x5c when `x5c` is empty).
fn signed_statement(att: &mut Vec<u8>, fmt: &str, sig: &[u8], x5c: &[Vec<u8>]) {
    cbor::text(att, fmt);
    cbor::text(att, "attStmt");
    cbor::map(att, if x5c.is_empty() { 2 } else { 3 });
    cbor::text(att, "alg");
    cbor::int(att, -7);
    cbor::text(att, "sig");
    cbor::bytes(att, sig);
    if !x5c.is_empty() {
        cbor::text(att, "x5c");
        cbor::array(att, x5c.len() as u64);
        for cert in x5c {
            cbor::bytes(att, cert);
        }
    }
}

/// An SPC browser-bound key: the browser's own P-256 key for one credential, which never
/// syncs with it. Its public half goes in clientDataJSON's `payment` member, and it signs the
/// exact clientDataJSON.
pub struct BrowserKey {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl std::fmt::Debug for BrowserKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserKey").finish_non_exhaustive()
    }
}

impl BrowserKey {
    /// A fresh key. Fails only when the system random generator does.
    pub fn new() -> Result<Self, Unspecified> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| Unspecified)?;
        Ok(Self { key, rng })
    }

    /// The public key as a COSE_Key (EC2, ES256, P-256), base64url: `browserBoundPublicKey`.
    pub fn public_key_b64(&self) -> String {
        URL_SAFE_NO_PAD.encode(cose_p256(self.key.public_key().as_ref()))
    }

    /// The signature (ASN.1 DER) over `client_data_json`.
    pub fn sign(&self, client_data_json: &[u8]) -> Result<Vec<u8>, Unspecified> {
        Ok(self
            .key
            .sign(&self.rng, client_data_json)?
            .as_ref()
            .to_vec())
    }
}

/// A COSE_Key (EC2, ES256, P-256) for an uncompressed SEC1 point.
fn cose_p256(point: &[u8]) -> Vec<u8> {
    let x = point.get(1..33).unwrap_or_default();
    let y = point.get(33..65).unwrap_or_default();
    let mut out = Vec::new();
    cbor::map(&mut out, 5);
    cbor::int(&mut out, 1); // kty
    cbor::int(&mut out, 2); // EC2
    cbor::int(&mut out, 3); // alg
    cbor::int(&mut out, -7); // ES256
    cbor::int(&mut out, -1); // crv
    cbor::int(&mut out, 1); // P-256
    cbor::int(&mut out, -2);
    cbor::bytes(&mut out, x);
    cbor::int(&mut out, -3);
    cbor::bytes(&mut out, y);
    out
}

/// What SPC's `payment` member of clientDataJSON carries (`payment.get`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpcPayment {
    /// payment.rpId
    pub rp_id: String,
    /// payment.topOrigin
    pub top_origin: String,
    /// payment.payeeName
    pub payee_name: String,
    /// payment.payeeOrigin
    pub payee_origin: String,
    /// payment.total.currency
    pub currency: String,
    /// payment.total.value
    pub value: String,
    /// payment.instrument.displayName
    pub instrument_name: String,
    /// payment.instrument.icon
    pub instrument_icon: String,
    /// payment.instrument.details (SPC 2025), when the dialog showed some
    pub instrument_details: Option<String>,
    /// payment.paymentEntitiesLogos (SPC 2025): (url, label) as shown
    pub logos: Vec<(String, String)>,
}

/// An assertion, as the browser's `PublicKeyCredential` (get) carries it.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The credential id.
    pub credential_id: Vec<u8>,
    /// authenticatorData.
    pub authenticator_data: Vec<u8>,
    /// clientDataJSON.
    pub client_data_json: Vec<u8>,
    /// ECDSA P-256 signature (ASN.1 DER) over authData || SHA-256(clientDataJSON).
    pub signature: Vec<u8>,
    /// The SPC browser-bound signature over clientDataJSON, when the browser has a key.
    pub browser_bound_signature: Option<Vec<u8>>,
}

impl Assertion {
    /// The `POST /v1/authorizations` body for this assertion to `challenge_id`.
    pub fn body(&self, challenge_id: &str) -> serde_json::Value {
        let mut body = serde_json::json!({
            "challenge_id": challenge_id,
            "credential_id": URL_SAFE_NO_PAD.encode(&self.credential_id),
            "authenticator_data": URL_SAFE_NO_PAD.encode(&self.authenticator_data),
            "client_data_json": URL_SAFE_NO_PAD.encode(&self.client_data_json),
            "signature": URL_SAFE_NO_PAD.encode(&self.signature),
        });
        with_browser_bound_signature(&mut body, self.browser_bound_signature.as_deref());
        body
    }
}

/// One credential on a software authenticator.
pub struct SoftwareAuthenticator {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    /// The credential id (32 random bytes).
    pub credential_id: Vec<u8>,
    /// The RP ID hashed into authenticator data.
    pub rp_id: String,
    /// The origin written into clientDataJSON.
    pub origin: String,
    /// Whether the UV flag is set.
    pub user_verified: bool,
    /// The AAGUID (zeros, like most software authenticators).
    pub aaguid: [u8; 16],
    /// The browser's SPC browser-bound key for this credential, if it has one: then
    /// registrations and `payment.get` assertions carry it and its signature.
    pub browser_key: Option<BrowserKey>,
}

impl std::fmt::Debug for SoftwareAuthenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SoftwareAuthenticator")
            .field("rp_id", &self.rp_id)
            .field("origin", &self.origin)
            .field("user_verified", &self.user_verified)
            .finish_non_exhaustive()
    }
}

impl SoftwareAuthenticator {
    /// A fresh credential for RP `localhost` at `https://localhost`, UV set. Fails only when
    /// the system random generator does.
    pub fn new() -> Result<Self, Unspecified> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)?;
        Self::from_pkcs8(pkcs8.as_ref())
    }

    /// A credential whose key (P-256, PKCS#8) the caller made, e.g. to certify it.
    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, Unspecified> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8, &rng)
            .map_err(|_| Unspecified)?;
        let mut credential_id = vec![0u8; 32];
        getrandom::getrandom(&mut credential_id).map_err(|_| Unspecified)?;
        Ok(Self {
            key,
            rng,
            credential_id,
            rp_id: "localhost".to_owned(),
            origin: "https://localhost".to_owned(),
            user_verified: true,
            aaguid: [0; 16],
            browser_key: None,
        })
    }

    /// The credential public key as a COSE_Key: EC2, ES256, P-256, x, y.
    pub fn cose_key(&self) -> Vec<u8> {
        // An uncompressed SEC1 point: 0x04 || x (32) || y (32).
        cose_p256(self.key.public_key().as_ref())
    }

    /// clientDataJSON for `navigator.credentials.create` with this challenge (with SPC's
    /// `payment.browserBoundPublicKey` when the browser has a key).
    pub fn client_data(&self, challenge_b64: &str) -> Vec<u8> {
        let mut data = serde_json::json!({
            "type": "webauthn.create",
            "challenge": challenge_b64,
            "origin": self.origin,
            "crossOrigin": false,
        });
        if let (Some(k), Some(fields)) = (&self.browser_key, data.as_object_mut()) {
            fields.insert(
                "payment".to_owned(),
                serde_json::json!({"browserBoundPublicKey": k.public_key_b64()}),
            );
        }
        data.to_string().into_bytes()
    }

    /// The browser-bound signature over `client_data_json`, when the browser has a key.
    fn browser_bound_signature(
        &self,
        client_data_json: &[u8],
    ) -> Result<Option<Vec<u8>>, Unspecified> {
        self.browser_key
            .as_ref()
            .map(|k| k.sign(client_data_json))
            .transpose()
    }

    /// Authenticator data with attested credential data (§6.1, §6.5.1), counter 0.
    pub fn auth_data(&self) -> Vec<u8> {
        let mut flags = FLAG_UP | FLAG_AT;
        if self.user_verified {
            flags |= FLAG_UV;
        }
        let mut out = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend(0u32.to_be_bytes());
        out.extend(self.aaguid);
        out.extend((self.credential_id.len() as u16).to_be_bytes());
        out.extend(&self.credential_id);
        out.extend(self.cose_key());
        out
    }

    /// A registration response to `challenge_b64` with the chosen attestation.
    pub fn register(
        &self,
        challenge_b64: &str,
        attestation: Attestation,
    ) -> Result<Registration, Unspecified> {
        let client_data_json = self.client_data(challenge_b64);
        let auth_data = self.auth_data();
        // §8.2, §8.4: statements sign authenticatorData || clientDataHash.
        let mut signed = auth_data.clone();
        signed.extend(Sha256::digest(&client_data_json));
        let mut att = Vec::new();
        cbor::map(&mut att, 3);
        cbor::text(&mut att, "fmt");
        match attestation {
            Attestation::None => {
                cbor::text(&mut att, "none");
                cbor::text(&mut att, "attStmt");
                cbor::map(&mut att, 0);
            }
            // Self attestation: by the credential key.
            Attestation::PackedSelf => {
                let sig = self.key.sign(&self.rng, &signed)?;
                signed_statement(&mut att, "packed", sig.as_ref(), &[]);
            }
            // android-key: by the credential key, whose certificate is x5c[0].
            Attestation::AndroidKey { x5c } => {
                let sig = self.key.sign(&self.rng, &signed)?;
                signed_statement(&mut att, "android-key", sig.as_ref(), &x5c);
            }
            // Full packed attestation: by the attestation key.
            Attestation::PackedFull { key_pkcs8, x5c } => {
                let key = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_ASN1_SIGNING,
                    &key_pkcs8,
                    &self.rng,
                )
                .map_err(|_| Unspecified)?;
                let sig = key.sign(&self.rng, &signed)?;
                signed_statement(&mut att, "packed", sig.as_ref(), &x5c);
            }
        }
        cbor::text(&mut att, "authData");
        cbor::bytes(&mut att, &auth_data);
        Ok(Registration {
            credential_id: self.credential_id.clone(),
            attestation_object: att,
            browser_bound_signature: self.browser_bound_signature(&client_data_json)?,
            client_data_json,
        })
    }

    /// Authenticator data of an assertion (§6.1): rpIdHash, UP (and UV if set), `counter`.
    pub fn assertion_auth_data(&self, counter: u32) -> Vec<u8> {
        let mut flags = FLAG_UP;
        if self.user_verified {
            flags |= FLAG_UV;
        }
        let mut out = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        out.push(flags);
        out.extend(counter.to_be_bytes());
        out
    }

    /// An assertion to `challenge_b64`: `webauthn.get`, or SPC `payment.get` with `payment`.
    pub fn assert(
        &self,
        challenge_b64: &str,
        counter: u32,
        payment: Option<&SpcPayment>,
    ) -> Result<Assertion, Unspecified> {
        let mut client_data = serde_json::json!({
            "type": if payment.is_some() { "payment.get" } else { "webauthn.get" },
            "challenge": challenge_b64,
            "origin": self.origin,
            "crossOrigin": false,
        });
        if let (Some(p), Some(fields)) = (payment, client_data.as_object_mut()) {
            fields.insert(
                "payment".to_owned(),
                serde_json::json!({
                    "rpId": p.rp_id,
                    "topOrigin": p.top_origin,
                    "payeeName": p.payee_name,
                    "payeeOrigin": p.payee_origin,
                    "total": {"currency": p.currency, "value": p.value},
                    "instrument": {"displayName": p.instrument_name, "icon": p.instrument_icon},
                }),
            );
            if let Some(payment) = fields.get_mut("payment").and_then(|v| v.as_object_mut()) {
                if let (Some(details), Some(instrument)) = (
                    &p.instrument_details,
                    payment
                        .get_mut("instrument")
                        .and_then(|v| v.as_object_mut()),
                ) {
                    instrument.insert("details".to_owned(), details.clone().into());
                }
                if !p.logos.is_empty() {
                    let logos: Vec<serde_json::Value> = p
                        .logos
                        .iter()
                        .map(|(url, label)| serde_json::json!({"url": url, "label": label}))
                        .collect();
                    payment.insert("paymentEntitiesLogos".to_owned(), logos.into());
                }
            }
            // SPC: the browser's key for this credential rides along in `payment.get`.
            if let (Some(k), Some(payment)) = (
                &self.browser_key,
                fields.get_mut("payment").and_then(|v| v.as_object_mut()),
            ) {
                payment.insert(
                    "browserBoundPublicKey".to_owned(),
                    k.public_key_b64().into(),
                );
            }
        }
        let client_data_json = client_data.to_string().into_bytes();
        let authenticator_data = self.assertion_auth_data(counter);
        // §7.2 step 22: sig over authData || SHA-256(clientDataJSON).
        let mut signed = authenticator_data.clone();
        signed.extend(Sha256::digest(&client_data_json));
        let signature = self.key.sign(&self.rng, &signed)?.as_ref().to_vec();
        let browser_bound_signature = match payment {
            Some(_) => self.browser_bound_signature(&client_data_json)?,
            None => None,
        };
        Ok(Assertion {
            credential_id: self.credential_id.clone(),
            authenticator_data,
            client_data_json,
            signature,
            browser_bound_signature,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cose_key_carries_the_32_byte_coordinates() {
        let a = SoftwareAuthenticator::new().unwrap();
        let key = a.cose_key();
        // map(5) kty EC2 alg ES256 crv P-256, -2 bytes(32) x, -3 bytes(32) y
        assert_eq!(key.len(), 1 + 6 + 1 + 2 + 32 + 1 + 2 + 32);
        assert_eq!(key.first(), Some(&0xa5));
    }

    #[test]
    fn assertion_signs_auth_data_and_client_data_hash() {
        let a = SoftwareAuthenticator::new().unwrap();
        let s = a.assert("Y2hhbGxlbmdl", 7, None).unwrap();
        assert_eq!(&s.authenticator_data[33..37], &7u32.to_be_bytes());
        let mut signed = s.authenticator_data.clone();
        signed.extend(Sha256::digest(&s.client_data_json));
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            a.key.public_key().as_ref(),
        );
        assert!(public.verify(&signed, &s.signature).is_ok());
    }
}
