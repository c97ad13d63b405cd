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
