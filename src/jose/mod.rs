//! SKELETON (helper E implements): JOSE for payment authorizations: compact JWS (ES256),
//! JWK / JWKS, RFC 7638 thumbprints, and the HSM-backed authorization signer.

use crate::keys::Hsm;

/// Signs authorizations as compact JWS (ES256, `kid` = RFC 7638 thumbprint) with an EC P-256
/// key generated inside the PKCS#11 token (sensitive, never extractable), through `C_Sign`.
#[derive(Clone)]
pub struct AuthorizationSigner {
    _hsm: Hsm,
}

/// Signing failed (HSM unavailable or the claims could not be encoded).
#[derive(Debug)]
pub struct SignError(pub String);

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SignError {}

impl AuthorizationSigner {
    /// The `kid` of the current signing key.
    pub fn kid(&self) -> &str {
        unimplemented!()
    }

    /// Signs `claims` (a JSON object) into a compact JWS with header {alg ES256, typ JWT, kid}.
    pub async fn sign(&self, claims: &serde_json::Value) -> Result<String, SignError> {
        let _ = claims;
        unimplemented!()
    }

    /// The JWKS document (current and not-yet-retired keys).
    pub fn jwks(&self) -> serde_json::Value {
        unimplemented!()
    }
}

// STUB(authz): drop this block at merge; the JOSE branch implements `open` with this signature.
impl AuthorizationSigner {
    /// Opens (creating if missing) the signing key pair `label` in the token.
    pub async fn open(hsm: Hsm, label: &str) -> Result<Self, SignError> {
        let _ = label;
        Ok(Self { _hsm: hsm })
    }
}
