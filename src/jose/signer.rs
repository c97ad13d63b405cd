//! The authorization signer: compact JWS (ES256) signed by a P-256 key that never leaves the
//! PKCS#11 token. The I/O shell around [`jws`](super::jws) and [`jwk`](super::jwk).

use super::jwk::{Jwk, Jwks};
use super::jws::{encode, verify_signature, ES256};
use super::SignError;
use crate::keys::{EcPublicKey, Hsm};
use serde_json::{json, Value};
use std::sync::{Arc, PoisonError, RwLock};

/// Signed once at start-up to prove the token's private key matches the public key we publish.
/// It holds `/`, outside the base64url alphabet, so it can never be a JWS signing input.
const STARTUP_PROBE: &[u8] = b"payhsm/authz/startup-probe/v1";

/// Signs authorizations as compact JWS (ES256, `kid` = RFC 7638 thumbprint) with an EC P-256
/// key generated inside the PKCS#11 token (sensitive, never extractable), through `C_Sign`.
///
/// The signing key and the published set can be replaced while the daemon runs (key rotation):
/// each signature uses one snapshot, so its `kid` always names the key that made it.
#[derive(Clone)]
pub struct AuthorizationSigner {
    inner: Arc<Inner>,
}

struct Inner {
    hsm: Hsm,
    keys: RwLock<Arc<SignerKeys>>,
}

/// One consistent view: the key that signs and what verifiers are told.
struct SignerKeys {
    /// CKA_LABEL of the current signing key pair.
    label: String,
    /// The current key's JWK.
    current: Jwk,
    /// What verifiers are told: the current key first, then keys published before they sign
    /// and keys retired from signing whose authorizations may still be unexpired.
    published: Jwks,
}

/// A compact JWS and the `kid` of the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedJws {
    /// The compact serialization.
    pub compact: String,
    /// The signing key's thumbprint.
    pub kid: String,
}

impl std::fmt::Debug for AuthorizationSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.keys();
        f.debug_struct("AuthorizationSigner")
            .field("label", &keys.label)
            .field("kid", &keys.current.kid())
            .finish_non_exhaustive()
    }
}

impl AuthorizationSigner {
    /// Finds or generates the P-256 key pair `label` in the token and proves it (see
    /// [`AuthorizationSigner::prove`]); the signer publishes that key alone.
    pub async fn open(hsm: Hsm, label: &str) -> Result<AuthorizationSigner, SignError> {
        let public = Self::prove(&hsm, label).await?;
        Self::with_keys(hsm, label, public, &[])
    }

    /// A signer with `label` (whose public key is `public`) signing, publishing also `others`.
    pub fn with_keys(
        hsm: Hsm,
        label: &str,
        public: EcPublicKey,
        others: &[EcPublicKey],
    ) -> Result<AuthorizationSigner, SignError> {
        let keys = SignerKeys::new(label, public, others)?;
        tracing::info!(
            label,
            kid = keys.current.kid(),
            published = others.len() + 1,
            "authorization signing key ready"
        );
        Ok(AuthorizationSigner {
            inner: Arc::new(Inner {
                hsm,
                keys: RwLock::new(Arc::new(keys)),
            }),
        })
    }

    /// Finds or generates the P-256 key pair `label` in the token, then signs a probe through
    /// the HSM and verifies it against the public key: a token whose halves do not match (or
    /// that cannot sign) is an error, and the key must not be used.
    pub async fn prove(hsm: &Hsm, label: &str) -> Result<EcPublicKey, SignError> {
        let public = hsm
            .ensure_signing_key(label)
            .await
            .map_err(|source| SignError::Hsm {
                doing: "find or generate the key pair",
                label: label.to_owned(),
                source,
            })?;
        let signature = hsm
            .sign_p256(label, STARTUP_PROBE.to_vec())
            .await
            .map_err(|source| SignError::Hsm {
                doing: "sign the start-up probe",
                label: label.to_owned(),
                source,
            })?;
        verify_signature(&public, STARTUP_PROBE, &signature).map_err(|_| {
            SignError::SignatureDoesNotVerify {
                label: label.to_owned(),
            }
        })?;
        Ok(public)
    }

    /// From now on `label` signs and the JWKS holds it and `others` (keys about to sign and
    /// keys whose authorizations may still be unexpired).
    pub fn replace(
        &self,
        label: &str,
        public: EcPublicKey,
        others: &[EcPublicKey],
    ) -> Result<(), SignError> {
        let keys = SignerKeys::new(label, public, others)?;
        tracing::info!(
            label,
            kid = keys.current.kid(),
            published = others.len() + 1,
            "authorization signing keys replaced"
        );
        *self
            .inner
            .keys
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(())
    }

    fn keys(&self) -> Arc<SignerKeys> {
        Arc::clone(
            &self
                .inner
                .keys
                .read()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> String {
        self.keys().current.kid().to_owned()
    }

    /// Signs `claims` (a JSON object) into a compact JWS with header {alg ES256, typ JWT, kid}.
    pub async fn sign(&self, claims: &Value) -> Result<SignedJws, SignError> {
        let keys = self.keys();
        let kid = keys.current.kid().to_owned();
        let header = json!({ "alg": ES256, "typ": "JWT", "kid": kid });
        let compact = sign_compact(
            &self.inner.hsm,
            &keys.label,
            keys.current.public_key(),
            &header,
            claims,
        )
        .await?;
        Ok(SignedJws { compact, kid })
    }

    /// The JWKS document (current and not-yet-retired keys).
    pub fn jwks(&self) -> Value {
        self.keys().published.to_json()
    }

    /// The published keys, current first.
    pub fn published(&self) -> Jwks {
        self.keys().published.clone()
    }
}

impl SignerKeys {
    fn new(label: &str, public: EcPublicKey, others: &[EcPublicKey]) -> Result<Self, SignError> {
        let current = Jwk::from_public_key(public);
        let mut keys = vec![current.clone()];
        keys.extend(others.iter().map(|p| Jwk::from_public_key(*p)));
        let published = Jwks::new(keys).map_err(SignError::Jose)?;
        Ok(Self {
            label: label.to_owned(),
            current,
            published,
        })
    }
}

/// `claims` under `header` as a compact JWS signed in the HSM by the P-256 key `label`, and
/// checked against its public half `public` before it is handed out: a faulty token or a
/// swapped key never leaves a signature nobody can verify. The authorization signer and the
/// audit key (tree heads, evidence reports) both sign through here.
pub(crate) async fn sign_compact(
    hsm: &Hsm,
    label: &str,
    public: &EcPublicKey,
    header: &Value,
    claims: &Value,
) -> Result<String, SignError> {
    let input = encode(header, claims).map_err(SignError::Jose)?;
    // RFC 7518 §3.4: ECDSA P-256 over SHA-256(signing input); sign_p256 hashes in software
    // and signs the digest with CKM_ECDSA, which returns R || S.
    let signature = hsm
        .sign_p256(label, input.as_bytes().to_vec())
        .await
        .map_err(|source| SignError::Hsm {
            doing: "sign",
            label: label.to_owned(),
            source,
        })?;
    verify_signature(public, input.as_bytes(), &signature).map_err(|_| {
        SignError::SignatureDoesNotVerify {
            label: label.to_owned(),
        }
    })?;
    Ok(input.into_compact(&signature))
}
