//! FIDO Metadata Service v3 BLOBs (FIDO MDS 3.0 §3.1.7): sans-io.
//!
//! A BLOB is a compact JWS (`ES256` or `RS256`) whose header `x5c` chain must reach the
//! configured MDS root; its payload lists metadata entries by AAGUID (FIDO2), by AAID (UAF)
//! or by attestation certificate key identifier (U2F), each with its status reports.
//!
//! - [`verify_blob`]: the signature, the chain at `now`, the payload's shape. Staleness
//!   (`nextUpdate` passed) is reported, not refused: the caller's policy decides.
//! - [`MetadataEntry::latest_status`]: the report with the latest `effectiveDate` decides
//!   (ties: the later in the list). A compromise followed by a later certification no longer
//!   refuses; an old compromise is not masked by its position (fido2-net-lib#288 read the
//!   first report).
use std::collections::HashMap;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use ring::signature::{self, UnparsedPublicKey, VerificationAlgorithm};
use serde::Deserialize;

use super::{chain, keys, Anchor, AnchorAssurance, AttestationError, TrustAnchors};

/// The largest BLOB read (the production BLOB is about 5 MB).
pub const MAX_BLOB_BYTES: usize = 64 << 20;
/// The most certificates accepted in the header's `x5c`.
const MAX_X5C: usize = 5;

/// Why a BLOB was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MdsError {
    /// Not a compact JWS, or a header or payload that is not what MDS3 specifies; the part.
    Malformed(&'static str),
    /// `alg` is not ES256 or RS256, or does not match the signer's key.
    Algorithm,
    /// The `x5c` chain does not reach the configured root at the time of the check.
    Chain(AttestationError),
    /// The signature does not verify under `x5c[0]`.
    Signature,
}

impl MdsError {
    /// The stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "mds_malformed",
            Self::Algorithm => "mds_algorithm",
            Self::Chain(_) => "mds_untrusted_chain",
            Self::Signature => "mds_bad_signature",
        }
    }
}

impl std::fmt::Display for MdsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Malformed(what) => write!(f, "the MDS BLOB is malformed: {what}"),
            Self::Algorithm => f.write_str("the MDS BLOB's alg is not ES256/RS256 for its key"),
            Self::Chain(e) => write!(
                f,
                "the MDS BLOB's x5c chain does not reach the configured root: {}",
                e.code()
            ),
            Self::Signature => f.write_str("the MDS BLOB's signature does not verify"),
        }
    }
}

impl std::error::Error for MdsError {}

/// An authenticator status (MDS 3.0 §3.1.4), as a report states it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthenticatorStatus {
    /// `NOT_FIDO_CERTIFIED`
    NotFidoCertified,
    /// `FIDO_CERTIFIED`
    FidoCertified,
    /// `USER_VERIFICATION_BYPASS`
    UserVerificationBypass,
    /// `ATTESTATION_KEY_COMPROMISE`
    AttestationKeyCompromise,
    /// `USER_KEY_REMOTE_COMPROMISE`
    UserKeyRemoteCompromise,
    /// `USER_KEY_PHYSICAL_COMPROMISE`
    UserKeyPhysicalCompromise,
    /// `UPDATE_AVAILABLE`
    UpdateAvailable,
    /// `REVOKED`
    Revoked,
    /// `SELF_ASSERTION_SUBMITTED`
    SelfAssertionSubmitted,
    /// `FIDO_CERTIFIED_L1`
    L1,
    /// `FIDO_CERTIFIED_L1plus`
    L1Plus,
    /// `FIDO_CERTIFIED_L2`
    L2,
    /// `FIDO_CERTIFIED_L2plus`
    L2Plus,
    /// `FIDO_CERTIFIED_L3`
    L3,
    /// `FIDO_CERTIFIED_L3plus`
    L3Plus,
}

const STATUSES: [(&str, AuthenticatorStatus); 15] = [
    ("NOT_FIDO_CERTIFIED", AuthenticatorStatus::NotFidoCertified),
    ("FIDO_CERTIFIED", AuthenticatorStatus::FidoCertified),
    (
        "USER_VERIFICATION_BYPASS",
        AuthenticatorStatus::UserVerificationBypass,
    ),
    (
        "ATTESTATION_KEY_COMPROMISE",
        AuthenticatorStatus::AttestationKeyCompromise,
    ),
    (
        "USER_KEY_REMOTE_COMPROMISE",
        AuthenticatorStatus::UserKeyRemoteCompromise,
    ),
    (
        "USER_KEY_PHYSICAL_COMPROMISE",
        AuthenticatorStatus::UserKeyPhysicalCompromise,
    ),
    ("UPDATE_AVAILABLE", AuthenticatorStatus::UpdateAvailable),
    ("REVOKED", AuthenticatorStatus::Revoked),
    (
        "SELF_ASSERTION_SUBMITTED",
        AuthenticatorStatus::SelfAssertionSubmitted,
    ),
    ("FIDO_CERTIFIED_L1", AuthenticatorStatus::L1),
    ("FIDO_CERTIFIED_L1plus", AuthenticatorStatus::L1Plus),
    ("FIDO_CERTIFIED_L2", AuthenticatorStatus::L2),
    ("FIDO_CERTIFIED_L2plus", AuthenticatorStatus::L2Plus),
    ("FIDO_CERTIFIED_L3", AuthenticatorStatus::L3),
    ("FIDO_CERTIFIED_L3plus", AuthenticatorStatus::L3Plus),
];

impl AuthenticatorStatus {
    /// The MDS name, e.g. `FIDO_CERTIFIED_L2`.
    pub fn as_str(self) -> &'static str {
        STATUSES
            .iter()
            .find(|(_, s)| *s == self)
            .map_or("", |(name, _)| name)
    }

    fn parse(name: &str) -> Option<Self> {
        STATUSES.iter().find(|(n, _)| *n == name).map(|(_, s)| *s)
    }

    /// A certification status (the `certification` policy attribute), as opposed to a
    /// security notice.
    pub fn is_certification(self) -> bool {
        use AuthenticatorStatus as S;
        matches!(
            self,
            S::NotFidoCertified
                | S::FidoCertified
                | S::SelfAssertionSubmitted
                | S::L1
                | S::L1Plus
                | S::L2
                | S::L2Plus
                | S::L3
                | S::L3Plus
        )
    }

    /// The stable refusal code when this status, as the latest one, forbids enrolling or
    /// using the authenticator; `None` when it does not.
    pub fn refusal_code(self) -> Option<&'static str> {
        use AuthenticatorStatus as S;
        Some(match self {
            S::Revoked => "mds_revoked",
            S::AttestationKeyCompromise => "mds_attestation_key_compromise",
            S::UserVerificationBypass => "mds_user_verification_bypass",
            S::UserKeyRemoteCompromise => "mds_user_key_remote_compromise",
            S::UserKeyPhysicalCompromise => "mds_user_key_physical_compromise",
            _ => return None,
        })
    }
}

/// One status report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// The status.
    pub status: AuthenticatorStatus,
    /// `effectiveDate`, when given.
    pub effective_date: Option<time::Date>,
}

/// One metadata entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataEntry {
    /// The AAGUID (FIDO2 authenticators).
    pub aaguid: Option<[u8; 16]>,
    /// The AAID (UAF authenticators).
    pub aaid: Option<String>,
    /// Attestation certificate key identifiers (U2F): lowercase hex SHA-1 of the subject
    /// public key.
    pub key_identifiers: Vec<String>,
    /// The statement's `description`.
    pub description: String,
    /// `attestationRootCertificates`, DER.
    pub roots: Vec<Vec<u8>>,
    /// The status reports, as listed.
    pub status_reports: Vec<StatusReport>,
}

impl MetadataEntry {
    /// The report with the latest `effectiveDate` (undated reports count as the earliest;
    /// among equals, the later in the list).
    pub fn latest_status(&self) -> Option<&StatusReport> {
        latest(self.status_reports.iter())
    }

    /// The latest certification report's status (`FIDO_CERTIFIED_L2`, ...).
    pub fn certification(&self) -> Option<AuthenticatorStatus> {
        latest(
            self.status_reports
                .iter()
                .filter(|r| r.status.is_certification()),
        )
        .map(|r| r.status)
    }

    /// The refusal code of the latest status, if it forbids the authenticator.
    pub fn refusal(&self) -> Option<&'static str> {
        self.latest_status().and_then(|r| r.status.refusal_code())
    }

    /// The entry's attestation roots as trust anchors, named `mds:<what it is>`.
    pub fn anchors(&self) -> TrustAnchors {
        let name = match (&self.aaguid, &self.aaid) {
            (Some(g), _) => format!("mds:{}", format_aaguid(g)),
            (None, Some(aaid)) => format!("mds:{aaid}"),
            (None, None) => format!(
                "mds:{}",
                self.key_identifiers.first().map_or("", String::as_str)
            ),
        };
        TrustAnchors {
            anchors: self
                .roots
                .iter()
                .map(|der| Anchor {
                    name: name.clone(),
                    der: der.clone(),
                    aaguids: None,
                    assurance: AnchorAssurance::Hardware,
                })
                .collect(),
        }
    }
}

fn latest<'a>(reports: impl Iterator<Item = &'a StatusReport>) -> Option<&'a StatusReport> {
    // max_by_key keeps the last of equal keys.
    reports.max_by_key(|r| r.effective_date)
}

/// A verified BLOB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataBlob {
    /// `no`: the serial number, increasing with each BLOB.
    pub no: u64,
    /// `nextUpdate`: a BLOB past this date is stale.
    pub next_update: time::Date,
    /// The subject of the certificate that signed it.
    pub signer: String,
    /// The entries.
    pub entries: Vec<MetadataEntry>,
    by_aaguid: HashMap<[u8; 16], usize>,
    by_key_identifier: HashMap<String, usize>,
}

impl MetadataBlob {
    /// The entry of an AAGUID.
    pub fn by_aaguid(&self, aaguid: &[u8; 16]) -> Option<&MetadataEntry> {
        self.by_aaguid
            .get(aaguid)
            .and_then(|i| self.entries.get(*i))
    }

    /// The entry of an attestation certificate key identifier (lowercase hex).
    pub fn by_key_identifier(&self, id: &str) -> Option<&MetadataEntry> {
        self.by_key_identifier
            .get(id)
            .and_then(|i| self.entries.get(*i))
    }

    /// Where the model with this AAGUID (a zero AAGUID is no model) or else, for U2F, this
    /// attestation certificate key identifier sits in [`Self::entries`].
    pub fn find(&self, aaguid: &[u8; 16], key_identifier: Option<&str>) -> Option<usize> {
        Some(aaguid)
            .filter(|g| **g != [0; 16])
            .and_then(|g| self.by_aaguid.get(g))
            .or_else(|| key_identifier.and_then(|k| self.by_key_identifier.get(k)))
            .copied()
    }

    /// Whether `today` is past `nextUpdate`.
    pub fn is_stale(&self, today: time::Date) -> bool {
        today > self.next_update
    }
}

/// The U2F attestation certificate key identifier of a DER certificate: lowercase hex of the
/// SHA-1 of its subjectPublicKey bit string (MDS 3.0 §3.1.1, as RFC 5280 §4.2.1.2 (1)).
pub fn key_identifier(cert_der: &[u8]) -> Option<String> {
    let cert = chain::parse_cert(cert_der).ok()?;
    let digest = ring::digest::digest(
        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
        &cert.public_key().subject_public_key.data,
    );
    Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

/// The model a registration names before it is verified: the AAGUID of its attested
/// credential data, and for `fido-u2f` the key identifier of its attestation certificate.
/// `None` when the attestation object does not parse (the verifier then says why).
pub fn attested_model(attestation_object: &[u8]) -> Option<([u8; 16], Option<String>)> {
    use crate::webauthn::cbor::{decode, Value};
    let obj = decode(attestation_object).ok()?;
    let (Some(Value::Text(fmt)), Some(Value::Bytes(raw))) = (
        super::stmt::get(&obj, "fmt"),
        super::stmt::get(&obj, "authData"),
    ) else {
        return None;
    };
    let auth = crate::webauthn::authdata::AuthenticatorData::parse(raw).ok()?;
    let aaguid = auth.attested.as_ref()?.aaguid;
    let key_id = match (fmt.as_str(), super::stmt::get(&obj, "attStmt")) {
        ("fido-u2f", Some(stmt)) => super::stmt::x5c(stmt)
            .ok()
            .flatten()
            .and_then(|x5c| x5c.first().and_then(|leaf| key_identifier(leaf))),
        _ => None,
    };
    Some((aaguid, key_id))
}

/// `a14eb40d-3b89-4f3b-8d46-13cdf3de625c`.
pub fn format_aaguid(g: &[u8; 16]) -> String {
    let h: String = g.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h.get(..8).unwrap_or_default(),
        h.get(8..12).unwrap_or_default(),
        h.get(12..16).unwrap_or_default(),
        h.get(16..20).unwrap_or_default(),
        h.get(20..).unwrap_or_default()
    )
}

/// An AAGUID in its 8-4-4-4-12 form (or 32 hex digits).
pub fn parse_aaguid(s: &str) -> Option<[u8; 16]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks(2)) {
        let s = std::str::from_utf8(pair).ok()?;
        *o = u8::from_str_radix(s, 16).ok()?;
    }
    Some(out)
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    no: u64,
    next_update: String,
    entries: Vec<EntryJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryJson {
    aaguid: Option<String>,
    aaid: Option<String>,
    #[serde(default)]
    attestation_certificate_key_identifiers: Vec<String>,
    metadata_statement: StatementJson,
    #[serde(default)]
    status_reports: Vec<StatusJson>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatementJson {
    #[serde(default)]
    description: String,
    #[serde(default)]
    attestation_root_certificates: Vec<String>,
    #[serde(default)]
    attestation_certificate_key_identifiers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson {
    status: String,
    effective_date: Option<String>,
}

fn date(s: &str) -> Option<time::Date> {
    time::Date::parse(s, time::macros::format_description!("[year]-[month]-[day]")).ok()
}

/// Verifies a BLOB (compact JWS bytes) against `root` at `now` and reads its payload.
pub fn verify_blob(
    jwt: &[u8],
    root: &TrustAnchors,
    now: time::OffsetDateTime,
) -> Result<MetadataBlob, MdsError> {
    if jwt.len() > MAX_BLOB_BYTES {
        return Err(MdsError::Malformed("larger than 64 MiB"));
    }
    let text = std::str::from_utf8(jwt).map_err(|_| MdsError::Malformed("not ASCII"))?;
    let text = text.trim_end_matches(['\n', '\r']);
    let mut parts = text.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(MdsError::Malformed("not a compact JWS"));
    };
    let b64 = |part: &str, what| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| MdsError::Malformed(what))
    };
    let header: Header =
        serde_json::from_slice(&b64(h, "header")?).map_err(|_| MdsError::Malformed("header"))?;
    let sig = b64(s, "signature")?;
    if header.x5c.is_empty() || header.x5c.len() > MAX_X5C {
        return Err(MdsError::Malformed("x5c"));
    }
    let ders = header
        .x5c
        .iter()
        .map(|c| STANDARD.decode(c).map_err(|_| MdsError::Malformed("x5c")))
        .collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&[u8]> = ders.iter().map(Vec::as_slice).collect();
    let certs = chain::parse_x5c(&refs).map_err(MdsError::Chain)?;
    match chain::verify(&certs, root, None, now).map_err(MdsError::Chain)? {
        Some(_) => {}
        None => return Err(MdsError::Chain(AttestationError::UntrustedChain)),
    }
    let leaf = certs.first().ok_or(MdsError::Malformed("x5c"))?;
    let spki = leaf.public_key();
    let alg: &'static dyn VerificationAlgorithm = match (header.alg.as_str(), keys::kind(spki)) {
        ("ES256", Ok(keys::KeyKind::P256)) => &signature::ECDSA_P256_SHA256_FIXED,
        ("RS256", Ok(keys::KeyKind::Rsa)) => &signature::RSA_PKCS1_2048_8192_SHA256,
        _ => return Err(MdsError::Algorithm),
    };
    let signed = text
        .get(..h.len() + 1 + p.len())
        .ok_or(MdsError::Malformed("not a compact JWS"))?;
    UnparsedPublicKey::new(alg, &spki.subject_public_key.data)
        .verify(signed.as_bytes(), &sig)
        .map_err(|_| MdsError::Signature)?;
    let signer = leaf.subject().to_string();
    let payload: Payload =
        serde_json::from_slice(&b64(p, "payload")?).map_err(|_| MdsError::Malformed("payload"))?;
    read_payload(payload, signer)
}

fn read_payload(payload: Payload, signer: String) -> Result<MetadataBlob, MdsError> {
    let next_update = date(&payload.next_update).ok_or(MdsError::Malformed("nextUpdate"))?;
    let mut entries = Vec::with_capacity(payload.entries.len());
    let (mut by_aaguid, mut by_key_identifier) = (HashMap::new(), HashMap::new());
    for e in payload.entries {
        let aaguid = match &e.aaguid {
            Some(g) => Some(parse_aaguid(g).ok_or(MdsError::Malformed("aaguid"))?),
            None => None,
        };
        let mut key_identifiers: Vec<String> = e
            .attestation_certificate_key_identifiers
            .iter()
            .chain(&e.metadata_statement.attestation_certificate_key_identifiers)
            .map(|k| k.to_ascii_lowercase())
            .collect();
        key_identifiers.dedup();
        let roots = e
            .metadata_statement
            .attestation_root_certificates
            .iter()
            .map(|c| {
                STANDARD
                    .decode(c)
                    .map_err(|_| MdsError::Malformed("attestationRootCertificates"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let status_reports = e
            .status_reports
            .iter()
            .map(|r| {
                Ok(StatusReport {
                    status: AuthenticatorStatus::parse(&r.status)
                        .ok_or(MdsError::Malformed("statusReports.status"))?,
                    effective_date: match &r.effective_date {
                        Some(d) => Some(
                            date(d).ok_or(MdsError::Malformed("statusReports.effectiveDate"))?,
                        ),
                        None => None,
                    },
                })
            })
            .collect::<Result<Vec<_>, MdsError>>()?;
        let index = entries.len();
        if let Some(g) = aaguid {
            by_aaguid.insert(g, index);
        }
        for k in &key_identifiers {
            by_key_identifier.insert(k.clone(), index);
        }
        entries.push(MetadataEntry {
            aaguid,
            aaid: e.aaid,
            key_identifiers,
            description: e.metadata_statement.description,
            roots,
            status_reports,
        });
    }
    Ok(MetadataBlob {
        no: payload.no,
        next_update,
        signer,
        entries,
        by_aaguid,
        by_key_identifier,
    })
}

/// A BLOB from payload JSON alone, unsigned: for unit tests of what uses a verified BLOB.
#[cfg(test)]
pub(crate) fn payload_for_tests(json: &str) -> MetadataBlob {
    let payload: Payload = serde_json::from_str(json).expect("test payload");
    read_payload(payload, String::new()).expect("test payload")
}

/// Fuzzing entry: `data` as a BLOB's payload JSON, and as a whole BLOB against no root.
/// Never panics.
pub(crate) fn fuzz_blob(data: &[u8]) {
    if let Ok(payload) = serde_json::from_slice::<Payload>(data) {
        let _ = read_payload(payload, String::new());
    }
    let _ = verify_blob(
        data,
        &TrustAnchors::default(),
        time::OffsetDateTime::UNIX_EPOCH,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(reports: &str) -> MetadataBlob {
        let json = format!(
            r#"{{"no":7,"nextUpdate":"2030-01-01","entries":[{{"aaguid":"a14eb40d-3b89-4f3b-8d46-13cdf3de625c","metadataStatement":{{"description":"x"}},"statusReports":{reports}}}]}}"#
        );
        read_payload(serde_json::from_str(&json).unwrap(), String::new()).unwrap()
    }

    fn entry(b: &MetadataBlob) -> &MetadataEntry {
        b.entries.first().unwrap()
    }

    #[test]
    fn the_latest_effective_date_decides_not_the_position_in_the_list() {
        // A compromise listed first but dated last still refuses.
        let b = payload(
            r#"[{"status":"REVOKED","effectiveDate":"2025-06-01"},
                {"status":"FIDO_CERTIFIED_L2","effectiveDate":"2024-01-01"}]"#,
        );
        assert_eq!(entry(&b).refusal(), Some("mds_revoked"));
        assert_eq!(entry(&b).certification(), Some(AuthenticatorStatus::L2));
        // A compromise fixed by a later certification no longer refuses.
        let b = payload(
            r#"[{"status":"USER_VERIFICATION_BYPASS","effectiveDate":"2024-01-01"},
                {"status":"FIDO_CERTIFIED_L3","effectiveDate":"2025-01-01"}]"#,
        );
        assert_eq!(entry(&b).refusal(), None);
        assert_eq!(
            entry(&b).latest_status().unwrap().status,
            AuthenticatorStatus::L3
        );
        // Equal dates: the later in the list.
        let b = payload(
            r#"[{"status":"FIDO_CERTIFIED_L1","effectiveDate":"2025-01-01"},
                {"status":"ATTESTATION_KEY_COMPROMISE","effectiveDate":"2025-01-01"}]"#,
        );
        assert_eq!(entry(&b).refusal(), Some("mds_attestation_key_compromise"));
        // UPDATE_AVAILABLE after a certification keeps the certification.
        let b = payload(
            r#"[{"status":"FIDO_CERTIFIED_L1plus","effectiveDate":"2024-01-01"},
                {"status":"UPDATE_AVAILABLE","effectiveDate":"2025-01-01"}]"#,
        );
        assert_eq!(entry(&b).refusal(), None);
        assert_eq!(entry(&b).certification(), Some(AuthenticatorStatus::L1Plus));
    }

    #[test]
    fn every_refusing_status_has_its_own_code_and_the_others_none() {
        let mut codes = std::collections::BTreeSet::new();
        for (name, status) in STATUSES {
            assert_eq!(AuthenticatorStatus::parse(name), Some(status));
            assert_eq!(status.as_str(), name);
            if let Some(code) = status.refusal_code() {
                assert!(codes.insert(code), "{code} twice");
                assert!(!status.is_certification(), "{name}");
            }
        }
        assert_eq!(codes.len(), 5);
    }

    #[test]
    fn unknown_statuses_and_bad_dates_refuse_the_payload() {
        for reports in [
            r#"[{"status":"FIDO_CERTIFIED_L9"}]"#,
            r#"[{"status":"REVOKED","effectiveDate":"yesterday"}]"#,
        ] {
            let json = format!(
                r#"{{"no":1,"nextUpdate":"2030-01-01","entries":[{{"aaguid":"a14eb40d-3b89-4f3b-8d46-13cdf3de625c","metadataStatement":{{}},"statusReports":{reports}}}]}}"#
            );
            let p: Payload = serde_json::from_str(&json).unwrap();
            assert!(read_payload(p, String::new()).is_err(), "{reports}");
        }
    }

    #[test]
    fn u2f_models_are_found_by_key_identifier_in_any_case() {
        let json = r#"{"no":1,"nextUpdate":"2030-01-01","entries":[{"attestationCertificateKeyIdentifiers":["BF7BCAA0D0C6187A8C6ABBDD16A15640E7C7BDE2"],"metadataStatement":{"description":"u2f key"},"statusReports":[{"status":"USER_KEY_PHYSICAL_COMPROMISE"}]}]}"#;
        let b = payload_for_tests(json);
        let e = b
            .by_key_identifier("bf7bcaa0d0c6187a8c6abbdd16a15640e7c7bde2")
            .unwrap();
        assert_eq!(e.description, "u2f key");
        assert_eq!(e.refusal(), Some("mds_user_key_physical_compromise"));
        assert_eq!(e.anchors().anchors.len(), 0);
        assert!(b.by_aaguid(&[0; 16]).is_none());
    }

    #[test]
    fn a_key_identifier_is_the_sha1_of_the_subject_public_key_bits() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(Vec::<String>::new())
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let id = key_identifier(cert.der()).unwrap();
        // The public key bits are the uncompressed point rcgen reports.
        let digest = ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            key.public_key_raw(),
        );
        let want: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id, want);
        assert_eq!(key_identifier(b"not a certificate"), None);
    }

    #[test]
    fn aaguids_read_and_print_in_their_usual_form() {
        let g = parse_aaguid("A14EB40D-3b89-4f3b-8d46-13cdf3de625c").unwrap();
        assert_eq!(format_aaguid(&g), "a14eb40d-3b89-4f3b-8d46-13cdf3de625c");
        assert_eq!(parse_aaguid("a14eb40d3b894f3b8d4613cdf3de625c"), Some(g));
        assert_eq!(parse_aaguid("a14eb40d-3b89"), None);
        assert_eq!(parse_aaguid("g14eb40d-3b89-4f3b-8d46-13cdf3de625c"), None);
    }
}
