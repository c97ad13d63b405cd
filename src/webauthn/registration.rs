//! The registration ceremony (WebAuthn L3 §7.1), one step per clause. The attestation
//! statement itself (§7.1 steps 21-23) is verified by [`super::attestation`].

use super::attestation::{
    AndroidKeyInfo, AttestationPolicy, AttestationVerdict, Format, StatementInput, Trust,
    TrustAnchors,
};
use super::authdata::{AuthDataError, AuthenticatorData, MAX_CREDENTIAL_ID_LEN};
use super::cbor::{self, Value};
use super::client_data::{ClientData, ClientDataError};
use super::cose::CoseAlgorithm;
use super::WebauthnError;

/// A relying party as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingParty {
    /// Acceptable RP IDs (usually one).
    pub ids: Vec<String>,
    /// Exact allowed origins.
    pub origins: Vec<String>,
    /// Allowed top origins for cross-origin (iframe) ceremonies; empty refuses crossOrigin.
    pub top_origins: Vec<String>,
}

/// What the relying party expects of one registration.
#[derive(Debug, Clone)]
pub struct RegistrationExpectations<'a> {
    /// The relying party.
    pub rp: &'a RelyingParty,
    /// The challenge exactly as it must appear in clientDataJSON (base64url).
    pub challenge: &'a str,
    /// UV required (the default for payments).
    pub require_user_verification: bool,
    /// Attestation policy (algorithms).
    pub policy: &'a AttestationPolicy,
}

/// The bytes of a registration response.
#[derive(Debug, Clone, Copy)]
pub struct RegistrationInput<'a> {
    /// clientDataJSON, exact bytes.
    pub client_data_json: &'a [u8],
    /// attestationObject (CBOR).
    pub attestation_object: &'a [u8],
}

/// A verified registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationVerdict {
    /// Attestation format.
    pub format: Format,
    /// Trust level.
    pub trust: Trust,
    /// Anchor reached.
    pub anchor: Option<String>,
    /// AAGUID.
    pub aaguid: [u8; 16],
    /// UV flag.
    pub user_verified: bool,
    /// BE flag.
    pub backup_eligible: bool,
    /// BS flag.
    pub backup_state: bool,
    /// Credential id.
    pub credential_id: Vec<u8>,
    /// COSE public key bytes, to store.
    pub public_key_cbor: Vec<u8>,
    /// Its algorithm.
    pub alg: CoseAlgorithm,
    /// Initial signature counter.
    pub sign_count: u32,
    /// Android details.
    pub android: Option<AndroidKeyInfo>,
    /// SPC: `clientData.payment.browserBoundPublicKey` as sent (verified by
    /// [`browser_bound::verify`](super::browser_bound::verify) with its signature).
    pub browser_bound_public_key: Option<String>,
}

/// Registration ceremony problems.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationError {
    /// Placeholder.
    Unspecified,
    /// The attestationObject is not a map of exactly fmt (text), attStmt (map), authData (bytes).
    AttestationObjectMalformed,
    /// authData carries no attested credential data (AT clear).
    AttestedCredentialMissing,
    /// The credential's algorithm is not in the policy.
    AlgorithmNotAllowed,
}

impl RegistrationError {
    /// Stable reason code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unspecified => "registration_failed",
            Self::AttestationObjectMalformed => "attestation_object_malformed",
            Self::AttestedCredentialMissing => "attested_credential_missing",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
        }
    }
}

impl std::fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unspecified => "failed",
            Self::AttestationObjectMalformed => {
                "attestationObject is not {fmt: text, attStmt: map, authData: bytes}"
            }
            Self::AttestedCredentialMissing => "no attested credential data (AT clear)",
            Self::AlgorithmNotAllowed => "credential algorithm not allowed by policy",
        })
    }
}

/// Verifies a registration response.
pub fn verify_registration(
    input: RegistrationInput<'_>,
    expect: &RegistrationExpectations<'_>,
    anchors: &TrustAnchors,
    now: time::OffsetDateTime,
) -> Result<RegistrationVerdict, WebauthnError> {
    verify_registration_with(input, expect, |statement| {
        super::attestation::verify_statement(statement, anchors, expect.policy, now)
    })
}

/// The attestationObject's three members.
struct AttestationObject<'a> {
    fmt: &'a str,
    att_stmt: &'a Value,
    auth_data: &'a [u8],
}

impl<'a> AttestationObject<'a> {
    fn from_cbor(value: &'a Value) -> Result<Self, RegistrationError> {
        let malformed = RegistrationError::AttestationObjectMalformed;
        let map = value.as_map().ok_or(malformed.clone())?;
        if map.len() != 3 {
            return Err(malformed);
        }
        let fmt = value.get_text("fmt").and_then(Value::as_text);
        let att_stmt = value.get_text("attStmt").filter(|v| v.as_map().is_some());
        let auth_data = value.get_text("authData").and_then(Value::as_bytes);
        match (fmt, att_stmt, auth_data) {
            (Some(fmt), Some(att_stmt), Some(auth_data)) => Ok(Self {
                fmt,
                att_stmt,
                auth_data,
            }),
            _ => Err(malformed),
        }
    }
}

/// §7.1 with the statement verifier injected (tests pass a stub; production the real one).
fn verify_registration_with(
    input: RegistrationInput<'_>,
    expect: &RegistrationExpectations<'_>,
    verify_statement: impl FnOnce(&StatementInput<'_>) -> Result<AttestationVerdict, WebauthnError>,
) -> Result<RegistrationVerdict, WebauthnError> {
    // §7.1 steps 5-6: "Let C ... be the result of running an implementation-specific JSON parser on JSONtext."
    let c = ClientData::parse(input.client_data_json)?;
    // §7.1 step 7: "Verify that the value of C.type is webauthn.create."
    if c.kind != "webauthn.create" {
        return Err(ClientDataError::TypeMismatch.into());
    }
    // §7.1 step 8: "Verify that the value of C.challenge equals the base64url encoding of pkOptions.challenge."
    c.check_challenge(expect.challenge)?;
    // §7.1 steps 9-10: "Verify that the value of C.origin is an origin expected by the Relying Party."
    // and "If C.topOrigin is present: ... verify that the value of C.topOrigin matches ..."
    c.check_origins(expect.rp)?;
    // §7.1 step 11: "Let hash be the result of computing a hash over response.clientDataJSON using SHA-256."
    let hash = sha256(input.client_data_json);
    // §7.1 step 12: "Perform CBOR decoding on the attestationObject field ... to obtain fmt, authData and attStmt."
    let object_value = cbor::decode(input.attestation_object)?;
    let object = AttestationObject::from_cbor(&object_value)?;
    let auth_data = AuthenticatorData::parse(object.auth_data)?;
    // §7.1 step 13: "Verify that the rpIdHash in authData is the SHA-256 hash of the RP ID expected by the Relying Party."
    auth_data.check_rp_id(&expect.rp.ids)?;
    // §7.1 steps 14-15: "Verify that the UP bit of the flags in authData is set." / "If user verification is required ..., verify that the UV bit ... is set."
    auth_data.check_user(expect.require_user_verification)?;
    // §7.1 step 16: "If the BE bit of the flags in authData is not set, verify that the BS bit is not set." (enforced by parse)
    let attested = auth_data
        .attested
        .as_ref()
        .ok_or(RegistrationError::AttestedCredentialMissing)?;
    // §7.1 step 19: "Verify that the "alg" parameter in the credential public key in authData matches the alg attribute of one of the items in pkOptions.pubKeyCredParams."
    if !expect.policy.algorithms.contains(&attested.public_key.alg) {
        return Err(RegistrationError::AlgorithmNotAllowed.into());
    }
    // §7.1 step 24: "Verify that the credentialId is ≤ 1023 bytes." (also enforced by parse)
    if attested.credential_id.len() > MAX_CREDENTIAL_ID_LEN {
        return Err(AuthDataError::CredentialIdLength.into());
    }
    // §7.1 steps 21-23: "Verify that attStmt is a correct attestation statement ..." and assess its trust.
    let verdict = verify_statement(&StatementInput {
        format: object.fmt,
        att_stmt: object.att_stmt,
        auth_data: &auth_data,
        auth_data_raw: object.auth_data,
        client_data_hash: &hash,
    })?;
    Ok(RegistrationVerdict {
        format: verdict.format,
        trust: verdict.trust,
        anchor: verdict.anchor,
        aaguid: attested.aaguid,
        user_verified: auth_data.flags.uv(),
        backup_eligible: auth_data.flags.be(),
        backup_state: auth_data.flags.bs(),
        credential_id: attested.credential_id.clone(),
        public_key_cbor: attested.public_key_cbor.clone(),
        alg: attested.public_key.alg,
        sign_count: auth_data.sign_count,
        android: verdict.android,
        browser_bound_public_key: c.payment.and_then(|p| p.browser_bound_public_key),
    })
}

/// SHA-256, as a fixed-size array.
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[cfg(test)]
#[path = "registration_tests.rs"]
mod tests;

/// Fuzzing entry: the whole registration ceremony over fuzzed bytes (one length byte, then
/// clientDataJSON, then the attestationObject), with fixed expectations, no anchors and a
/// fixed clock. Never panics on any input.
pub(crate) fn fuzz_verify(data: &[u8]) {
    use super::attestation::{AttestationPolicy, UntrustedChains};
    use super::cose::CoseAlgorithm;
    let Some((len, rest)) = data.split_first() else {
        return;
    };
    let Some((client_data_json, attestation_object)) = rest.split_at_checked(usize::from(*len))
    else {
        return;
    };
    let rp = RelyingParty {
        ids: vec!["example.org".into()],
        origins: vec!["https://example.org".into()],
        top_origins: vec!["https://merchant.example".into()],
    };
    let mut policy = AttestationPolicy::new(vec![
        CoseAlgorithm::Es256,
        CoseAlgorithm::EdDsa,
        CoseAlgorithm::Rs256,
        CoseAlgorithm::Rs1,
    ]);
    policy.untrusted_chains = UntrustedChains::ReportAsNone;
    let expect = RegistrationExpectations {
        rp: &rp,
        challenge: "Y2hhbGxlbmdl",
        require_user_verification: true,
        policy: &policy,
    };
    let input = RegistrationInput {
        client_data_json,
        attestation_object,
    };
    let _ = verify_registration(
        input,
        &expect,
        &TrustAnchors::default(),
        time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000),
    );
}
