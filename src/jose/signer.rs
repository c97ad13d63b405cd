//! The authorization signer: compact JWS (ES256) signed by a P-256 key that never leaves the
//! PKCS#11 token. The I/O shell around [`jws`](super::jws) and [`jwk`](super::jwk).

use super::jwk::{Jwk, Jwks};
use super::jws::{encode, verify_signature, ES256};
use super::SignError;
use crate::keys::Hsm;
use serde_json::{json, Value};
use std::sync::Arc;

/// Signed once at start-up to prove the token's private key matches the public key we publish.
/// It holds `/`, outside the base64url alphabet, so it can never be a JWS signing input.
const STARTUP_PROBE: &[u8] = b"payhsm/authz/startup-probe/v1";

/// Signs authorizations as compact JWS (ES256, `kid` = RFC 7638 thumbprint) with an EC P-256
/// key generated inside the PKCS#11 token (sensitive, never extractable), through `C_Sign`.
#[derive(Clone)]
pub struct AuthorizationSigner {
    inner: Arc<Inner>,
}

struct Inner {
    hsm: Hsm,
    /// CKA_LABEL of the current signing key pair.
    label: String,
    /// The current key's JWK.
    current: Jwk,
    /// What verifiers are told: the current key first, then keys retired from signing whose
    /// authorizations may still be unexpired (the key lifecycle work adds them).
    published: Jwks,
}

impl std::fmt::Debug for AuthorizationSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthorizationSigner")
            .field("label", &self.inner.label)
            .field("kid", &self.inner.current.kid())
            .finish_non_exhaustive()
    }
}

impl AuthorizationSigner {
    /// Finds or generates the P-256 key pair `label` in the token, computes its `kid`, then
    /// signs a probe through the HSM and verifies it against the public key: a token whose
    /// halves do not match (or that cannot sign) is an error, and the daemon must not serve.
    pub async fn open(hsm: Hsm, label: &str) -> Result<AuthorizationSigner, SignError> {
        let public = hsm
            .ensure_signing_key(label)
            .await
            .map_err(|e| SignError(format!("authorization signing key {label:?}: {e}")))?;
        let current = Jwk::from_public_key(public);
        let signature = hsm
            .sign_p256(label, STARTUP_PROBE.to_vec())
            .await
            .map_err(|e| SignError(format!("authorization key {label:?} cannot sign: {e}")))?;
        verify_signature(&public, STARTUP_PROBE, &signature).map_err(|_| {
            SignError(format!(
                "authorization key {label:?}: the token's signature does not verify under its \
                 public key (mismatched key pair or a faulty token)"
            ))
        })?;
        let published = Jwks::new(vec![current.clone()])
            .map_err(|e| SignError(format!("authorization JWKS: {e}")))?;
        tracing::info!(
            label,
            kid = current.kid(),
            "authorization signing key ready"
        );
        Ok(AuthorizationSigner {
            inner: Arc::new(Inner {
                hsm,
                label: label.to_owned(),
                current,
                published,
            }),
        })
    }

    /// The `kid` of the current signing key.
    pub fn kid(&self) -> &str {
        self.inner.current.kid()
    }

    /// Signs `claims` (a JSON object) into a compact JWS with header {alg ES256, typ JWT, kid}.
    pub async fn sign(&self, claims: &Value) -> Result<String, SignError> {
        let header = json!({ "alg": ES256, "typ": "JWT", "kid": self.kid() });
        let input = encode(&header, claims).map_err(|e| SignError(format!("claims: {e}")))?;
        // RFC 7518 §3.4: ECDSA P-256 over SHA-256(signing input); sign_p256 hashes in software
        // and signs the digest with CKM_ECDSA, which returns R || S.
        let signature = self
            .inner
            .hsm
            .sign_p256(&self.inner.label, input.as_bytes().to_vec())
            .await
            .map_err(|e| SignError(format!("HSM signing failed: {e}")))?;
        // Never hand out a signature that does not verify (a faulty token, a swapped key).
        verify_signature(
            self.inner.current.public_key(),
            input.as_bytes(),
            &signature,
        )
        .map_err(|_| SignError("the HSM signature does not verify".to_owned()))?;
        Ok(input.into_compact(&signature))
    }

    /// The JWKS document (current and not-yet-retired keys).
    pub fn jwks(&self) -> Value {
        self.inner.published.to_json()
    }

    /// The published keys, current first.
    pub fn published(&self) -> &Jwks {
        &self.inner.published
    }
}
