//! `android-key` (WebAuthn L3 §8.4) and the Android KeyDescription extension (Google "Key and
//! ID Attestation" schema).
use x509_parser::certificate::X509Certificate;

use super::{chain, chain_trust, der, keys, stmt};
use super::{
    AndroidAuthorizations, AndroidEnforcement, AndroidKeyInfo, AttestationError, AttestationPolicy,
    AttestationVerdict, Format, StatementInput, Trust, TrustAnchors,
};

const KEY_DESCRIPTION: &str = "1.3.6.1.4.1.11129.2.1.17";
const TAG_PURPOSE: u32 = 1;
const TAG_ALL_APPLICATIONS: u32 = 600;
const TAG_USER_AUTH_TYPE: u32 = 504;
const TAG_ORIGIN: u32 = 702;
const TAG_ROOT_OF_TRUST: u32 = 704;
const TAG_ATTESTATION_APPLICATION_ID: u32 = 709;
const KM_ORIGIN_GENERATED: u64 = 0;
const KM_PURPOSE_SIGN: u64 = 2;

/// Google's Android attestation revocation list (the JSON served at
/// `https://android.googleapis.com/attestation/status`, fetched by the operator): certificate
/// serial numbers (lowercase hex, no leading zeros) that are revoked or suspended. Sans-io.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevocationList {
    entries: std::collections::BTreeMap<String, String>,
}

#[derive(serde::Deserialize)]
struct RevocationJson {
    entries: std::collections::BTreeMap<String, RevocationEntryJson>,
}

#[derive(serde::Deserialize)]
struct RevocationEntryJson {
    status: String,
}

impl RevocationList {
    /// Parses the list. Every entry must be `REVOKED` or `SUSPENDED` under a hex serial: a
    /// list that does not parse is refused whole.
    pub fn parse(json: &[u8]) -> Result<Self, &'static str> {
        let parsed: RevocationJson =
            serde_json::from_slice(json).map_err(|_| "not the revocation list's JSON")?;
        let mut entries = std::collections::BTreeMap::new();
        for (serial, entry) in parsed.entries {
            if serial.is_empty() || !serial.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("a serial number is not hex");
            }
            if !matches!(entry.status.as_str(), "REVOKED" | "SUSPENDED") {
                return Err("a status is neither REVOKED nor SUSPENDED");
            }
            entries.insert(normalize_serial(&serial), entry.status);
        }
        Ok(Self { entries })
    }

    /// How many serials it lists.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it lists none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The status of a certificate by its DER serial, if listed.
    fn status(&self, serial: &[u8]) -> Option<&str> {
        let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
        self.entries
            .get(&normalize_serial(&hex))
            .map(String::as_str)
    }
}

/// Lowercase, without leading zeros (as Java's `BigInteger.toString(16)` prints it).
fn normalize_serial(hex: &str) -> String {
    let lower = hex.to_ascii_lowercase();
    let trimmed = lower.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn err(what: &'static str) -> AttestationError {
    AttestationError::AndroidKey(what)
}

/// An AuthorizationList, the members §8.4 uses, and the ones a relying party's policy reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct AuthorizationList {
    pub purposes: Vec<u64>,
    pub origin: Option<u64>,
    pub all_applications: bool,
    pub user_auth_type: Option<u64>,
    pub root_of_trust: Option<RootOfTrust>,
    pub application_id: Option<ApplicationId>,
}

/// RootOfTrust (tag 704): the device's verified boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootOfTrust {
    /// verifiedBootState: `verified`, `self_signed`, `unverified` or `failed`.
    pub verified_boot_state: &'static str,
    /// deviceLocked: the bootloader is locked.
    pub device_locked: bool,
}

/// AttestationApplicationId (tag 709): the app(s) that asked for the key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplicationId {
    /// The package names.
    pub packages: Vec<String>,
    /// SHA-256 digests of the packages' signing certificates.
    pub signature_digests: Vec<Vec<u8>>,
}

fn parse_root_of_trust(t: &der::Tlv<'_>) -> Result<RootOfTrust, AttestationError> {
    let bad = || err("rootOfTrust malformed");
    let items = t
        .children()
        .filter(|_| t.is(der::SEQUENCE))
        .ok_or_else(bad)?;
    let [key, locked, state, ..] = items.as_slice() else {
        return Err(bad());
    };
    if !key.is(der::OCTET_STRING) || !locked.is(0x01) || !state.is(der::ENUMERATED) {
        return Err(bad());
    }
    Ok(RootOfTrust {
        device_locked: locked.value == [0xff],
        verified_boot_state: match state.uint().ok_or_else(bad)? {
            0 => "verified",
            1 => "self_signed",
            2 => "unverified",
            3 => "failed",
            _ => return Err(bad()),
        },
    })
}

fn parse_application_id(t: &der::Tlv<'_>) -> Result<ApplicationId, AttestationError> {
    let bad = || err("attestationApplicationId malformed");
    if !t.is(der::OCTET_STRING) {
        return Err(bad());
    }
    let top = der::read_one(t.value)
        .filter(|t| t.is(der::SEQUENCE))
        .and_then(|t| t.children())
        .ok_or_else(bad)?;
    let [infos, digests, ..] = top.as_slice() else {
        return Err(bad());
    };
    let mut id = ApplicationId::default();
    for info in infos
        .children()
        .filter(|_| infos.is(der::SET))
        .ok_or_else(bad)?
    {
        let fields = info
            .children()
            .filter(|_| info.is(der::SEQUENCE))
            .ok_or_else(bad)?;
        let name = fields
            .first()
            .filter(|n| n.is(der::OCTET_STRING))
            .and_then(|n| std::str::from_utf8(n.value).ok())
            .ok_or_else(bad)?;
        id.packages.push(name.to_owned());
    }
    for d in digests
        .children()
        .filter(|_| digests.is(der::SET))
        .ok_or_else(bad)?
    {
        if !d.is(der::OCTET_STRING) {
            return Err(bad());
        }
        id.signature_digests.push(d.value.to_vec());
    }
    Ok(id)
}

/// KeyDescription, the members §8.4 uses.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct KeyDescription<'a> {
    pub security_level: u64,
    pub challenge: &'a [u8],
    pub software: AuthorizationList,
    pub tee: AuthorizationList,
}

fn parse_list(t: &der::Tlv<'_>) -> Result<AuthorizationList, AttestationError> {
    let items = t
        .children()
        .filter(|_| t.is(der::SEQUENCE))
        .ok_or(err("AuthorizationList malformed"))?;
    let mut list = AuthorizationList::default();
    for item in items {
        if item.class != der::CONTEXT || !item.constructed {
            return Err(err("AuthorizationList member not context-tagged"));
        }
        let inner = der::read_one(item.value).ok_or(err("AuthorizationList member malformed"))?;
        match item.tag {
            TAG_PURPOSE => {
                let set = inner
                    .children()
                    .filter(|_| inner.is(der::SET))
                    .ok_or(err("purpose malformed"))?;
                for p in set {
                    list.purposes
                        .push(p.uint().ok_or(err("purpose malformed"))?);
                }
            }
            TAG_ORIGIN => list.origin = Some(inner.uint().ok_or(err("origin malformed"))?),
            TAG_USER_AUTH_TYPE => {
                list.user_auth_type = Some(inner.uint().ok_or(err("userAuthType malformed"))?)
            }
            TAG_ALL_APPLICATIONS => list.all_applications = true,
            TAG_ROOT_OF_TRUST => list.root_of_trust = Some(parse_root_of_trust(&inner)?),
            TAG_ATTESTATION_APPLICATION_ID => {
                list.application_id = Some(parse_application_id(&inner)?)
            }
            _ => {}
        }
    }
    Ok(list)
}

/// Parses the KeyDescription extension value.
pub(super) fn parse_key_description(value: &[u8]) -> Result<KeyDescription<'_>, AttestationError> {
    let top = der::read_one(value)
        .filter(|t| t.is(der::SEQUENCE))
        .and_then(|t| t.children())
        .ok_or(err("KeyDescription malformed"))?;
    let [_version, security_level, _km_version, _km_security_level, challenge, _unique_id, software, tee, ..] =
        top.as_slice()
    else {
        return Err(err("KeyDescription too short"));
    };
    if !challenge.is(der::OCTET_STRING) {
        return Err(err("attestationChallenge malformed"));
    }
    Ok(KeyDescription {
        security_level: security_level
            .uint()
            .ok_or(err("attestationSecurityLevel malformed"))?,
        challenge: challenge.value,
        software: parse_list(software)?,
        tee: parse_list(tee)?,
    })
}

fn key_description<'c>(
    leaf: &'c X509Certificate<'_>,
) -> Result<KeyDescription<'c>, AttestationError> {
    let ext = leaf
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == KEY_DESCRIPTION)
        .ok_or(err("KeyDescription extension missing"))?;
    parse_key_description(ext.value)
}

fn generated_for_signing(list: &AuthorizationList) -> bool {
    list.origin == Some(KM_ORIGIN_GENERATED) && list.purposes.contains(&KM_PURPOSE_SIGN)
}

/// attestationSecurityLevel as recorded.
fn security_level_name(level: u64) -> Result<&'static str, AttestationError> {
    match level {
        0 => Ok("software"),
        1 => Ok("trusted_environment"),
        2 => Ok("strongbox"),
        _ => Err(err("attestationSecurityLevel unknown")),
    }
}

pub(super) fn verify(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, AttestationError> {
    let s = input.att_stmt;
    stmt::only_keys(
        s,
        &["alg", "sig", "x5c"],
        "android-key: unknown attStmt member",
    )?;
    let alg = stmt::alg(s, &policy.algorithms)?;
    let sig = stmt::bytes(s, "sig")?;
    let x5c = stmt::x5c(s)?.ok_or(AttestationError::MalformedStatement("x5c"))?;
    let credential = input.credential()?;
    let certs = chain::parse_x5c(&x5c)?;
    let leaf = certs
        .first()
        .ok_or(AttestationError::MalformedStatement("x5c"))?;
    // §8.4 step 2: sig over authenticatorData || clientDataHash with the first x5c key and alg.
    keys::verify_cose_alg(leaf.public_key(), alg, &input.to_be_signed(), sig)?;
    // §8.4 step 3: the first certificate's public key is the credential public key.
    if !keys::same_key(leaf.public_key(), &credential.public_key) {
        return Err(AttestationError::CredentialKeyMismatch);
    }
    let kd = key_description(leaf)?;
    // §8.4 step 4: attestationChallenge is clientDataHash.
    if kd.challenge != input.client_data_hash.as_slice() {
        return Err(AttestationError::NonceMismatch);
    }
    // §8.4 step 4: allApplications is absent from both lists (the key is bound to the RP).
    if kd.software.all_applications || kd.tee.all_applications {
        return Err(err("allApplications present"));
    }
    // §8.4 step 4: origin = KM_ORIGIN_GENERATED and purpose = KM_PURPOSE_SIGN, in teeEnforced
    // only, or in the union when the RP accepts software-enforced keys.
    let enforcement = if generated_for_signing(&kd.tee) {
        AndroidEnforcement::TrustedEnvironment
    } else {
        let union = AuthorizationList {
            purposes: kd
                .tee
                .purposes
                .iter()
                .chain(&kd.software.purposes)
                .copied()
                .collect(),
            origin: kd.tee.origin.or(kd.software.origin),
            all_applications: false,
            user_auth_type: None,
            root_of_trust: None,
            application_id: None,
        };
        match policy.android_authorizations {
            AndroidAuthorizations::AllowSoftwareEnforced if generated_for_signing(&union) => {
                AndroidEnforcement::Software
            }
            _ => return Err(err("origin generated and purpose sign not enforced")),
        }
    };
    let security_level = security_level_name(kd.security_level)?;
    let reached = chain::verify(&certs, anchors, Some(&credential.aaguid), now)?;
    // Google's revocation list: no certificate of the chain may be revoked or suspended.
    if let Some(list) = &policy.android_revocations {
        if certs.iter().any(|c| list.status(c.raw_serial()).is_some()) {
            return Err(AttestationError::AndroidKeyRevoked);
        }
    }
    let (mut trust, anchor) = chain_trust(reached, policy)?;
    // A key attested in software, or bound only by software, is never hardware.
    if kd.security_level == 0 || enforcement == AndroidEnforcement::Software {
        trust = Trust::None;
    }
    let mut verdict = AttestationVerdict::new(Format::AndroidKey, trust, anchor);
    verdict.android = Some(AndroidKeyInfo {
        security_level: security_level.to_owned(),
        user_auth_type: kd.tee.user_auth_type,
        // Only what the secure environment enforced counts: a software-enforced rootOfTrust
        // says nothing a compromised OS could not.
        root_of_trust: kd.tee.root_of_trust.clone(),
        // The application id is software-enforced by design (the OS names the caller).
        application_id: kd
            .software
            .application_id
            .clone()
            .or_else(|| kd.tee.application_id.clone()),
    });
    verdict.android_enforcement = Some(enforcement);
    Ok(verdict)
}
