//! The captured-case format of `shared/vectors/webauthn` (see its MANIFEST.md): one JSON file
//! per registration, authentication, statement-only or App Attest case, with the upstream
//! verifier's options. `payhsm webauthn verify CASE.json` and the data-driven vector test run
//! a case through this module. Sans-io: the case text and the trust-root files' bytes come in.
//!
//! Upstream options arrive in each library's own dialect (SimpleWebAuthn, py_webauthn,
//! go-webauthn, webauthn-rs); [`CaseParams`] folds them into payhsm's expectations.

use super::cose::CoseAlgorithm;
use base64::Engine as _;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Why a case file could not be used (exit 2 in the CLI: neither accept nor reject).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError(pub String);

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaseError {}

fn bad(msg: impl Into<String>) -> CaseError {
    CaseError(msg.into())
}

/// The fields of a case file payhsm uses.
#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    /// Case name.
    pub name: String,
    /// registration | authentication | attestation-statement-only |
    /// apple-appattest-attestation | apple-appattest-assertion
    pub kind: String,
    /// Attestation format (or `assertion`).
    pub format: String,
    /// accept | reject
    pub expected: String,
    /// RP ID, or a list of acceptable ones.
    #[serde(default)]
    pub rp_id: Value,
    /// Origin, or a list of acceptable ones.
    #[serde(default)]
    pub origin: Value,
    /// The challenge exactly as expected in clientDataJSON.
    #[serde(default)]
    pub challenge: Option<String>,
    /// Credential id (base64url).
    #[serde(default)]
    pub credential_id: Option<String>,
    /// clientDataJSON (base64url).
    #[serde(rename = "clientDataJSON", default)]
    pub client_data_json: Option<String>,
    /// attestationObject (base64url).
    #[serde(rename = "attestationObject", default)]
    pub attestation_object: Option<String>,
    /// authenticatorData (base64url).
    #[serde(rename = "authenticatorData", default)]
    pub authenticator_data: Option<String>,
    /// Assertion signature (base64url).
    #[serde(default)]
    pub signature: Option<String>,
    /// Stored credential public key (COSE, base64url).
    #[serde(default)]
    pub credential_public_key_cose: Option<String>,
    /// Stored signature counter.
    #[serde(default)]
    pub stored_sign_count: Option<u64>,
    /// Stored BE flag.
    #[serde(default)]
    pub stored_backup_eligible: Option<bool>,
    /// Upstream verifier options.
    #[serde(default)]
    pub verifier_params: Option<Value>,
    /// Pinned verification time.
    #[serde(default)]
    pub verification_time_utc: Option<String>,
    /// A time inside the chain's validity window.
    #[serde(default)]
    pub suggested_verification_time_utc: Option<String>,
    /// Capture time (App Attest).
    #[serde(default)]
    pub captured_at_utc: Option<String>,
    /// `roots/<file>` anchor named by the case.
    #[serde(default)]
    pub trust_root: Option<String>,
    /// SimpleWebAuthn per-format root overrides (a Python repr holding PEMs, or `[]`).
    #[serde(default)]
    pub root_cert_override: Option<Value>,
    /// SPC: what the browser was asked to display.
    #[serde(default)]
    pub expected_payment: Option<Value>,
    /// Statement-only: attStmt CBOR (base64url).
    #[serde(rename = "attStmt_cbor", default)]
    pub att_stmt_cbor: Option<String>,
    /// Statement-only: clientDataHash (hex).
    #[serde(rename = "clientDataHash_hex", default)]
    pub client_data_hash_hex: Option<String>,
    /// App Attest: the app id (team id + bundle id).
    #[serde(default)]
    pub app_id: Option<String>,
    /// App Attest: development | production.
    #[serde(default)]
    pub environment: Option<String>,
    /// App Attest: key id (base64url or base64).
    #[serde(default)]
    pub key_id: Option<String>,
    /// App Attest: clientData (base64url).
    #[serde(rename = "clientData_b64u", default)]
    pub client_data_b64u: Option<String>,
    /// App Attest: assertion object (base64url).
    #[serde(rename = "assertionObject", default)]
    pub assertion_object: Option<String>,
    /// App Attest: the public key from the attestation (PEM SPKI).
    #[serde(default)]
    pub credential_public_key_spki_pem: Option<String>,
    /// App Attest: stored counter for the assertion.
    #[serde(default)]
    pub stored_counter_for_test: Option<u64>,
}

impl Case {
    /// Parses a case file.
    pub fn parse(text: &str) -> Result<Self, CaseError> {
        serde_json::from_str(text).map_err(|e| bad(format!("not a case file: {e}")))
    }

    /// The verification time: pinned, else suggested, else capture time, else `fallback`.
    pub fn verification_time(
        &self,
        fallback: time::OffsetDateTime,
    ) -> Result<time::OffsetDateTime, CaseError> {
        let given = self
            .verification_time_utc
            .as_ref()
            .or(self.suggested_verification_time_utc.as_ref())
            .or(self.captured_at_utc.as_ref());
        match given {
            None => Ok(fallback),
            Some(t) => {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                    .map_err(|_| bad(format!("bad verification time {t:?}")))
            }
        }
    }

    /// Acceptable RP IDs (empty for statement-only cases).
    pub fn rp_ids(&self) -> Vec<String> {
        strings(&self.rp_id)
    }

    /// Acceptable origins.
    pub fn origins(&self) -> Vec<String> {
        strings(&self.origin)
    }

    /// The upstream options folded into payhsm's terms.
    pub fn params(&self) -> CaseParams {
        CaseParams::from_value(self.verifier_params.as_ref())
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// Upstream verifier options in payhsm's terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CaseParams {
    /// UV required.
    pub require_user_verification: bool,
    /// Acceptable clientData types, if restricted.
    pub expected_types: Option<Vec<String>>,
    /// crossOrigin allowed.
    pub allow_cross_origin: bool,
    /// Allowed top origins.
    pub top_origins: Vec<String>,
    /// Allowed algorithms, if restricted.
    pub algorithms: Option<Vec<CoseAlgorithm>>,
    /// webauthn-rs `attestation_ca_list` names, if given (empty = no CA checking).
    pub ca_list: Option<Vec<String>>,
    /// py_webauthn `pem_root_certs_bytes_by_fmt`: format -> root files.
    pub roots_by_format: BTreeMap<String, Vec<String>>,
    /// SimpleWebAuthn `attestationSafetyNetEnforceCTSCheck` (default true).
    pub safetynet_enforce_cts: bool,
}

impl CaseParams {
    fn from_value(v: Option<&Value>) -> Self {
        let empty = serde_json::Map::new();
        let m = v.and_then(Value::as_object).unwrap_or(&empty);
        let flag = |k: &str| m.get(k).and_then(Value::as_bool);
        let uv = flag("requireUserVerification")
            .or(flag("require_user_verification"))
            .or_else(|| {
                m.get("user_verification_policy")
                    .and_then(Value::as_array)
                    .map(|a| a.iter().any(|p| p.as_str() == Some("Required")))
            })
            .or_else(|| {
                m.get("userVerification")
                    .and_then(Value::as_str)
                    .map(|s| s == "required")
            })
            .unwrap_or(false);
        let expected_types = m.get("expectedType").map(strings);
        let algorithms = m
            .get("allowed_algorithms")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|n| n.as_str().and_then(alg_by_name))
                    .collect()
            })
            .or_else(|| {
                m.get("pubKeyCredParams")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|p| p.get("alg").and_then(Value::as_i64))
                            .filter_map(CoseAlgorithm::from_i64)
                            .collect()
                    })
            });
        let ca_list = m.get("attestation_ca_list").map(strings);
        let roots_by_format = m
            .get("pem_root_certs_bytes_by_fmt")
            .and_then(Value::as_object)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), strings(v))).collect())
            .unwrap_or_default();
        Self {
            require_user_verification: uv,
            expected_types,
            allow_cross_origin: flag("allow_cross_origin").unwrap_or(false),
            top_origins: m
                .get("expected_top_origins")
                .map(strings)
                .unwrap_or_default(),
            algorithms,
            ca_list,
            roots_by_format,
            safetynet_enforce_cts: flag("attestationSafetyNetEnforceCTSCheck").unwrap_or(true),
        }
    }
}

/// webauthn-rs algorithm names.
fn alg_by_name(name: &str) -> Option<CoseAlgorithm> {
    Some(match name {
        "ES256" => CoseAlgorithm::Es256,
        "ES384" => CoseAlgorithm::Es384,
        "ES512" => CoseAlgorithm::Es512,
        "EDDSA" => CoseAlgorithm::EdDsa,
        "RS256" => CoseAlgorithm::Rs256,
        "RS384" => CoseAlgorithm::Rs384,
        "RS512" => CoseAlgorithm::Rs512,
        "PS256" => CoseAlgorithm::Ps256,
        "PS384" => CoseAlgorithm::Ps384,
        "PS512" => CoseAlgorithm::Ps512,
        "INSECURE_RS1" => CoseAlgorithm::Rs1,
        _ => return None,
    })
}

/// Decodes base64url with or without padding (and tolerates standard base64, which some
/// captured cases use).
pub fn b64(field: &str, s: &str) -> Result<Vec<u8>, CaseError> {
    let t = s.trim().trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .map_err(|_| bad(format!("{field} is not base64")))
}

/// Every PEM certificate block in `text` (also inside a Python repr with `\n` escapes).
pub fn pem_blocks(text: &str) -> Vec<String> {
    let text = text.replace("\\n", "\n");
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let Some(after) = rest.get(start..) else {
            break;
        };
        let Some(end) = after.find("-----END CERTIFICATE-----") else {
            break;
        };
        let stop = end + "-----END CERTIFICATE-----".len();
        if let Some(block) = after.get(..stop) {
            out.push(block.to_owned());
        }
        rest = after.get(stop..).unwrap_or_default();
    }
    out
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseVerdict {
    /// Verified; a short summary (format, trust, flags).
    Accept(String),
    /// Rejected with a stable reason code and a message.
    Reject {
        /// The reason code.
        code: &'static str,
        /// Human text.
        message: String,
    },
}

impl CaseVerdict {
    fn from_result(r: Result<String, super::WebauthnError>) -> Self {
        match r {
            Ok(summary) => Self::Accept(summary),
            Err(e) => Self::Reject {
                code: e.code(),
                message: e.to_string(),
            },
        }
    }

    /// True for `Accept`.
    pub fn accepted(&self) -> bool {
        matches!(self, Self::Accept(_))
    }
}

/// The trust-root files a case may name: `roots/<file>` -> bytes.
pub type Roots = BTreeMap<String, Vec<u8>>;

/// Runs one case. `fallback_now` is used when the case pins no time.
pub fn run_case(
    case: &Case,
    roots: &Roots,
    fallback_now: time::OffsetDateTime,
) -> Result<CaseVerdict, CaseError> {
    run_case_with_revocations(case, roots, fallback_now, None)
}

/// [`run_case`] with Google's Android attestation revocation list applied to `android-key`
/// chains.
pub fn run_case_with_revocations(
    case: &Case,
    roots: &Roots,
    fallback_now: time::OffsetDateTime,
    revocations: Option<std::sync::Arc<super::attestation::android_key::RevocationList>>,
) -> Result<CaseVerdict, CaseError> {
    let now = case.verification_time(fallback_now)?;
    let revocations = revocations.as_ref();
    match case.kind.as_str() {
        "authentication" => run_authentication(case),
        "registration" => run_registration(case, roots, now, revocations),
        "attestation-statement-only" => run_statement(case, roots, now, revocations),
        "apple-appattest-attestation" => run_app_attest_attestation(case, roots, now),
        "apple-appattest-assertion" => run_app_attest_assertion(case),
        other => Err(bad(format!("unknown case kind {other:?}"))),
    }
}

/// The challenge as clientDataJSON must carry it: base64url without padding. Some cases give
/// `options.challenge` in padded standard base64; FIDO-conformance ones give plain strings.
fn expected_challenge(case: &Case) -> Result<String, CaseError> {
    let c = required("challenge", &case.challenge)?;
    if c.contains(['=', '+', '/']) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(c)
            .map_err(|_| bad("challenge is not base64"))?;
        return Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    }
    Ok(c.to_owned())
}

fn required<'a>(field: &str, v: &'a Option<String>) -> Result<&'a str, CaseError> {
    v.as_deref()
        .ok_or_else(|| bad(format!("the case has no {field}")))
}

fn relying_party(case: &Case, params: &CaseParams) -> super::registration::RelyingParty {
    let mut ids = case.rp_ids();
    if ids.is_empty() {
        // WebAuthn: the RP ID defaults to the caller origin's effective domain.
        ids = case
            .origins()
            .iter()
            .filter_map(|o| origin_host(o))
            .collect();
    }
    super::registration::RelyingParty {
        ids,
        origins: case.origins(),
        top_origins: params.top_origins.clone(),
    }
}

/// The host of `scheme://host[:port]`.
fn origin_host(origin: &str) -> Option<String> {
    let rest = origin.split_once("://")?.1;
    let host = rest.split(['/', ':']).next()?;
    (!host.is_empty()).then(|| host.to_owned())
}

fn run_authentication(case: &Case) -> Result<CaseVerdict, CaseError> {
    use super::assertion::{
        verify_assertion, AssertionExpectations, AssertionInput, AssertionType, StoredCredential,
    };
    let params = case.params();
    let rp = relying_party(case, &params);
    let challenge = &expected_challenge(case)?;
    let client_data = b64(
        "clientDataJSON",
        required("clientDataJSON", &case.client_data_json)?,
    )?;
    let auth_data = b64(
        "authenticatorData",
        required("authenticatorData", &case.authenticator_data)?,
    )?;
    let signature = b64("signature", required("signature", &case.signature)?)?;
    let public_key = b64(
        "credential_public_key_cose",
        required(
            "credential_public_key_cose",
            &case.credential_public_key_cose,
        )?,
    )?;
    let credential_id = b64(
        "credential_id",
        required("credential_id", &case.credential_id)?,
    )?;
    let payment = case.expected_payment.as_ref().map(expected_payment);
    let types: Vec<AssertionType> = match &params.expected_types {
        Some(list) => list
            .iter()
            .filter_map(|t| match t.as_str() {
                "webauthn.get" => Some(AssertionType::Get),
                "payment.get" => Some(AssertionType::PaymentGet),
                _ => None,
            })
            .collect(),
        None if payment.is_some() => vec![AssertionType::PaymentGet],
        None => vec![AssertionType::Get],
    };
    // Without a recorded BE flag there is nothing to be consistent with: take the one sent.
    let backup_eligible = match case.stored_backup_eligible {
        Some(be) => be,
        None => super::authdata::AuthenticatorData::parse(&auth_data)
            .map(|a| a.flags.be())
            .unwrap_or(false),
    };
    let stored = StoredCredential {
        credential_id: credential_id.clone(),
        public_key_cbor: public_key,
        sign_count: u32::try_from(case.stored_sign_count.unwrap_or(0))
            .map_err(|_| bad("stored_sign_count out of range"))?,
        backup_eligible,
    };
    let expect = AssertionExpectations {
        rp: &rp,
        challenge,
        types: &types,
        require_user_verification: params.require_user_verification,
        payment: payment.as_ref(),
    };
    let input = AssertionInput {
        credential_id: &credential_id,
        client_data_json: &client_data,
        authenticator_data: &auth_data,
        signature: &signature,
    };
    Ok(CaseVerdict::from_result(
        verify_assertion(input, &expect, &stored).map(|v| {
            format!(
                "counter {} uv {} be {} bs {}",
                v.sign_count, v.user_verified, v.backup_eligible, v.backup_state
            )
        }),
    ))
}

fn expected_payment(v: &Value) -> super::assertion::ExpectedPayment {
    let s = |path: &[&str]| {
        let mut cur = v;
        for p in path {
            cur = cur.get(p)?;
        }
        cur.as_str().map(str::to_owned)
    };
    super::assertion::ExpectedPayment {
        rp_id: s(&["rpId"]),
        top_origin: s(&["topOrigin"]),
        payee_name: s(&["payeeName"]),
        payee_origin: s(&["payeeOrigin"]),
        total_currency: s(&["total", "currency"]),
        total_value: s(&["total", "value"]),
        instrument_display_name: s(&["instrument", "displayName"]),
        instrument_icon: s(&["instrument", "icon"]),
        browser_bound_public_key: None,
        instrument_details: s(&["instrument", "details"]),
        entity_logos: None,
    }
}

/// Every algorithm payhsm can verify: the upstream default when a case restricts none.
const ALL_ALGORITHMS: [CoseAlgorithm; 11] = [
    CoseAlgorithm::Es256,
    CoseAlgorithm::Es384,
    CoseAlgorithm::Es512,
    CoseAlgorithm::EdDsa,
    CoseAlgorithm::Rs256,
    CoseAlgorithm::Rs384,
    CoseAlgorithm::Rs512,
    CoseAlgorithm::Rs1,
    CoseAlgorithm::Ps256,
    CoseAlgorithm::Ps384,
    CoseAlgorithm::Ps512,
];

fn root(roots: &Roots, name: &str) -> Result<(String, Vec<u8>), CaseError> {
    roots
        .get(name)
        .map(|b| (name.to_owned(), b.clone()))
        .ok_or_else(|| bad(format!("trust root {name} not found")))
}

/// The case's anchors, and whether the case named them (then a chain must reach one).
///
/// In order: SimpleWebAuthn's per-format PEM override (or its cleared list), py_webauthn's
/// roots by format, the case's `trust_root`, webauthn-rs's CA list (an empty list means "do
/// not check attestation CAs"); otherwise every root in `roots/`, with chains that reach none
/// reported as trust `none`, as the upstream libraries do.
fn anchors_for(
    case: &Case,
    params: &CaseParams,
    roots: &Roots,
    format: &str,
) -> Result<(super::attestation::TrustAnchors, bool), CaseError> {
    use super::attestation::TrustAnchors;
    let anchors = |items: Vec<(String, Vec<u8>)>| {
        TrustAnchors::from_certificates(items).map_err(|e| bad(format!("bad trust root: {e}")))
    };
    let override_text = case.root_cert_override.as_ref().map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if let Some(text) = override_text.filter(|t| t.contains(&format!("'{format}'"))) {
        let pems = pem_blocks(&text);
        if pems.is_empty() {
            return Ok((TrustAnchors::default(), false));
        }
        let items = pems
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("override#{}", i + 1), p.into_bytes()))
            .collect();
        return Ok((anchors(items)?, true));
    }
    let mut items = Vec::new();
    if let Some(list) = params.roots_by_format.get(format) {
        for name in list {
            items.push(root(roots, name)?);
        }
    } else if let Some(name) = &case.trust_root {
        items.push(root(roots, name)?);
    } else if let Some(list) = &params.ca_list {
        for name in list {
            items.push(root(roots, &format!("roots/webauthn-rs_{name}.pem"))?);
        }
        if list.is_empty() {
            return Ok((TrustAnchors::default(), false));
        }
    }
    if !items.is_empty() {
        return Ok((anchors(items)?, true));
    }
    let all = roots
        .iter()
        .filter(|(name, _)| name.starts_with("roots/"))
        .map(|(n, b)| (n.clone(), b.clone()))
        .collect();
    Ok((anchors(all)?, false))
}

fn policy_for(
    params: &CaseParams,
    named_anchors: bool,
    revocations: Option<&std::sync::Arc<super::attestation::android_key::RevocationList>>,
) -> super::attestation::AttestationPolicy {
    use super::attestation::{AttestationPolicy, SafetyNetCts, UntrustedChains};
    let mut policy = AttestationPolicy::new(
        params
            .algorithms
            .clone()
            .unwrap_or_else(|| ALL_ALGORITHMS.to_vec()),
    );
    policy.untrusted_chains = if named_anchors {
        UntrustedChains::Reject
    } else {
        UntrustedChains::ReportAsNone
    };
    if !params.safetynet_enforce_cts {
        policy.safetynet_cts = SafetyNetCts::DangerIgnore;
    }
    policy.android_revocations = revocations.cloned();
    policy
}

fn format_of(attestation_object: &[u8]) -> Option<String> {
    let v = super::cbor::decode(attestation_object).ok()?;
    v.get_text("fmt")?.as_text().map(str::to_owned)
}

fn run_registration(
    case: &Case,
    roots: &Roots,
    now: time::OffsetDateTime,
    revocations: Option<&std::sync::Arc<super::attestation::android_key::RevocationList>>,
) -> Result<CaseVerdict, CaseError> {
    use super::registration::{verify_registration, RegistrationExpectations, RegistrationInput};
    let params = case.params();
    // An RP that expects another clientData type can never be satisfied by a registration.
    if let Some(types) = &params.expected_types {
        if !types.iter().any(|t| t == "webauthn.create") {
            return Ok(CaseVerdict::Reject {
                code: "type_mismatch",
                message: format!("the relying party expects {types:?}, not webauthn.create"),
            });
        }
    }
    // Upstream checked only the statement (no RP inputs recorded): do the same.
    if case.challenge.is_none() {
        return run_statement(case, roots, now, revocations);
    }
    let rp = relying_party(case, &params);
    let challenge = &expected_challenge(case)?;
    let client_data = b64(
        "clientDataJSON",
        required("clientDataJSON", &case.client_data_json)?,
    )?;
    let attestation_object = b64(
        "attestationObject",
        required("attestationObject", &case.attestation_object)?,
    )?;
    let format = format_of(&attestation_object).unwrap_or_else(|| case.format.clone());
    let (anchors, named) = anchors_for(case, &params, roots, &format)?;
    let policy = policy_for(&params, named, revocations);
    let expect = RegistrationExpectations {
        rp: &rp,
        challenge,
        require_user_verification: params.require_user_verification,
        policy: &policy,
    };
    let input = RegistrationInput {
        client_data_json: &client_data,
        attestation_object: &attestation_object,
    };
    Ok(CaseVerdict::from_result(
        verify_registration(input, &expect, &anchors, now).map(|v| {
            format!(
                "format {} trust {}{} uv {} be {} bs {}{}",
                v.format.as_str(),
                v.trust.as_str(),
                v.anchor.map(|a| format!(" ({a})")).unwrap_or_default(),
                v.user_verified,
                v.backup_eligible,
                v.backup_state,
                v.android.as_ref().map(android_summary).unwrap_or_default()
            )
        }),
    ))
}

/// What an android-key attestation says of the device and the app, for `-v`.
fn android_summary(a: &super::attestation::AndroidKeyInfo) -> String {
    let mut out = format!(" android {}", a.security_level);
    if let Some(r) = &a.root_of_trust {
        out.push_str(&format!(
            " boot {} locked {}",
            r.verified_boot_state, r.device_locked
        ));
    }
    if let Some(id) = &a.application_id {
        out.push_str(&format!(
            " apps {} signers {}",
            id.packages.len(),
            id.signature_digests.len()
        ));
    }
    out
}

fn hex32(field: &str, s: &str) -> Result<[u8; 32], CaseError> {
    let bytes: Option<Vec<u8>> = (0..s.len() / 2)
        .map(|i| {
            s.get(2 * i..2 * i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad(format!("{field} is not 32 bytes of hex")))
}

/// A SafetyNet response carries its own capture time (`timestampMs`): used when a
/// statement-only case pins none, so its certificates are judged when they were used.
fn safetynet_capture_time(att_stmt: &super::cbor::Value) -> Option<time::OffsetDateTime> {
    let jws = att_stmt.get_text("response")?.as_bytes()?;
    let payload = std::str::from_utf8(jws).ok()?.split('.').nth(1)?;
    let json: Value = serde_json::from_slice(&b64("response", payload).ok()?).ok()?;
    let ms = json.get("timestampMs")?.as_i64()?;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

fn run_statement(
    case: &Case,
    roots: &Roots,
    now: time::OffsetDateTime,
    revocations: Option<&std::sync::Arc<super::attestation::android_key::RevocationList>>,
) -> Result<CaseVerdict, CaseError> {
    use super::attestation::{verify_statement, StatementInput};
    use sha2::Digest as _;
    let params = case.params();
    // The statement and authData: given apart, or inside the attestationObject.
    let (att_stmt, auth_raw, format) = match (&case.att_stmt_cbor, &case.attestation_object) {
        (Some(stmt), _) => (
            super::cbor::decode(&b64("attStmt_cbor", stmt)?),
            b64(
                "authenticatorData",
                required("authenticatorData", &case.authenticator_data)?,
            )?,
            case.format.clone(),
        ),
        (None, Some(obj)) => {
            let obj = super::cbor::decode(&b64("attestationObject", obj)?)
                .map_err(|e| bad(format!("attestationObject: {e}")))?;
            let part = |k: &str| obj.get_text(k).cloned();
            let auth = part("authData")
                .and_then(|v| v.as_bytes().map(<[u8]>::to_vec))
                .ok_or_else(|| bad("attestationObject has no authData"))?;
            let fmt = part("fmt")
                .and_then(|v| v.as_text().map(str::to_owned))
                .unwrap_or_else(|| case.format.clone());
            let stmt = part("attStmt").ok_or_else(|| bad("attestationObject has no attStmt"))?;
            (Ok(stmt), auth, fmt)
        }
        (None, None) => {
            return Err(bad(
                "the case has neither attStmt_cbor nor attestationObject",
            ))
        }
    };
    // clientDataHash: given, or SHA-256 of clientDataJSON. python-fido2's `none` cases pass a
    // placeholder of another length where the hash goes; `none` never reads it, and any other
    // length is hashed down to the 32 bytes a statement is verified over.
    let hash: [u8; 32] = match (&case.client_data_hash_hex, &case.client_data_json) {
        (Some(hex), _) => match hex32("clientDataHash_hex", hex) {
            Ok(h) => h,
            Err(_) => sha2::Sha256::digest(hex.as_bytes()).into(),
        },
        (None, Some(cd)) => sha2::Sha256::digest(b64("clientDataJSON", cd)?).into(),
        (None, None) => return Err(bad("the case has no clientDataHash or clientDataJSON")),
    };
    let result = (|| {
        let att_stmt = att_stmt?;
        let auth_data = super::authdata::AuthenticatorData::parse(&auth_raw)?;
        let pinned =
            case.verification_time_utc.is_some() || case.suggested_verification_time_utc.is_some();
        let now = match (pinned, format.as_str()) {
            (false, "android-safetynet") => safetynet_capture_time(&att_stmt).unwrap_or(now),
            _ => now,
        };
        let (anchors, named) = anchors_for(case, &params, roots, &format)
            .map_err(|_| super::attestation::AttestationError::CertificateMalformed)?;
        let policy = policy_for(&params, named, revocations);
        let input = StatementInput {
            format: &format,
            att_stmt: &att_stmt,
            auth_data: &auth_data,
            auth_data_raw: &auth_raw,
            client_data_hash: &hash,
        };
        verify_statement(&input, &anchors, &policy, now).map(|v| {
            format!(
                "format {} trust {}{}{}",
                v.format.as_str(),
                v.trust.as_str(),
                v.anchor.map(|a| format!(" ({a})")).unwrap_or_default(),
                v.android.as_ref().map(android_summary).unwrap_or_default()
            )
        })
    })();
    Ok(CaseVerdict::from_result(result))
}

fn app_attest_environment(case: &Case) -> super::attestation::appattest::AppAttestEnvironment {
    use super::attestation::appattest::AppAttestEnvironment;
    match case.environment.as_deref() {
        Some("production") => AppAttestEnvironment::Production,
        _ => AppAttestEnvironment::Development,
    }
}

fn run_app_attest_attestation(
    case: &Case,
    roots: &Roots,
    now: time::OffsetDateTime,
) -> Result<CaseVerdict, CaseError> {
    use super::attestation::appattest::{verify_app_attest_attestation, AppAttestAttestationInput};
    let params = case.params();
    let object = b64(
        "attestationObject",
        required("attestationObject", &case.attestation_object)?,
    )?;
    let client_data = b64(
        "clientData_b64u",
        required("clientData_b64u", &case.client_data_b64u)?,
    )?;
    let key_id = b64("key_id", required("key_id", &case.key_id)?)?;
    let app_id = required("app_id", &case.app_id)?;
    let (anchors, _) = anchors_for(case, &params, roots, "apple-appattest")?;
    let result = (|| {
        let v = super::cbor::decode(&object)?;
        let format = v
            .get_text("fmt")
            .and_then(super::cbor::Value::as_text)
            .unwrap_or_default();
        let auth_raw = v
            .get_text("authData")
            .and_then(super::cbor::Value::as_bytes)
            .unwrap_or_default();
        let auth_data = super::authdata::AuthenticatorData::parse(auth_raw)?;
        let empty = super::cbor::Value::Map(Vec::new());
        let input = AppAttestAttestationInput {
            format,
            att_stmt: v.get_text("attStmt").unwrap_or(&empty),
            auth_data: &auth_data,
            auth_data_raw: auth_raw,
            client_data: &client_data,
            key_id: &key_id,
            app_id,
            environment: app_attest_environment(case),
        };
        verify_app_attest_attestation(&input, &anchors, now)
            .map(|k| format!("app attest key, counter {} ({})", k.sign_count, k.anchor))
            .map_err(super::WebauthnError::from)
    })();
    Ok(CaseVerdict::from_result(result))
}

fn run_app_attest_assertion(case: &Case) -> Result<CaseVerdict, CaseError> {
    use super::attestation::appattest::{verify_app_attest_assertion, AppAttestAssertionInput};
    let object = b64(
        "assertionObject",
        required("assertionObject", &case.assertion_object)?,
    )?;
    let client_data = b64(
        "clientData_b64u",
        required("clientData_b64u", &case.client_data_b64u)?,
    )?;
    let app_id = required("app_id", &case.app_id)?;
    let pem = required(
        "credential_public_key_spki_pem",
        &case.credential_public_key_spki_pem,
    )?;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let spki = b64("credential_public_key_spki_pem", &body)?;
    // A P-256 SubjectPublicKeyInfo ends with the 65-byte uncompressed point.
    let point = spki
        .get(spki.len().saturating_sub(65)..)
        .ok_or_else(|| bad("public key too short"))?;
    let stored = u32::try_from(case.stored_counter_for_test.unwrap_or(0))
        .map_err(|_| bad("stored counter out of range"))?;
    let result = (|| {
        let assertion = super::cbor::decode(&object)?;
        let input = AppAttestAssertionInput {
            assertion: &assertion,
            client_data: &client_data,
            public_key: point,
            stored_counter: stored,
            app_id,
        };
        verify_app_attest_assertion(&input)
            .map(|a| format!("app attest assertion, counter {}", a.sign_count))
            .map_err(super::WebauthnError::from)
    })();
    Ok(CaseVerdict::from_result(result))
}
