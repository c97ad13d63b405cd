//! Attestation statement formats (WebAuthn L3 §8) and certificate chains verified against
//! configured trust anchors (never a root found inside x5c).
//!
//! # Trust rule
//! - A statement whose signature (or binding: nonce, challenge, extraData, key) fails: reject.
//! - A chain with a bad signature, a certificate outside its validity at `now`, a CA without
//!   BasicConstraints CA, or a broken link (x5c certificates that do not form one path): reject.
//! - A chain that verifies up to a configured [`Anchor`]: [`Trust::Hardware`], with the anchor's
//!   name. Exceptions that cap it at [`Trust::None`] (anchor still reported): an anchor marked
//!   [`AnchorAssurance::Software`] (the Android software root), an `android-key` key whose
//!   attestationSecurityLevel is software or whose origin/purpose are only software-enforced,
//!   and every `android-safetynet` statement.
//! - A chain that is well formed but reaches no configured anchor: reject with `untrusted_chain`
//!   under [`UntrustedChains::Reject`], [`Trust::None`] under [`UntrustedChains::ReportAsNone`].
//! - An anchor with an AAGUID allow-list that does not hold the authenticator's AAGUID is not
//!   reachable; if it was the only way up, reject with `anchor_aaguid_not_allowed`.
//! - Self attestation (`packed` without x5c): [`Trust::SelfAttested`]; `none`: [`Trust::None`].
//!
//! # Layout
//! - `anchors`: loading configured roots (PEM or DER bytes).
//! - `chain`: x5c path building and certificate signature verification with ring.
//! - `keys`: certificate public keys: statement signatures and comparison with the COSE key.
//! - `der`: a small strict DER reader for the extensions x509-parser does not know.
//! - one module per format: `packed`, `fido_u2f`, `tpm`, `android_key`, `apple`, `safetynet`.
//! - [`appattest`]: Apple App Attest attestation and assertion (not a WebAuthn format).
//! - [`mds`]: FIDO Metadata Service BLOBs: anchors and status reports by AAGUID.
use super::authdata::AuthenticatorData;
use super::cbor::Value;
use super::cose::CoseAlgorithm;

mod anchors;
pub mod android_key;
pub mod appattest;
mod apple;
mod chain;
mod der;
mod error;
mod fido_u2f;
mod keys;
pub mod mds;
mod packed;
mod safetynet;
mod tpm;

pub use error::AttestationError;

/// The attestation statement formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `packed`
    Packed,
    /// `fido-u2f`
    FidoU2f,
    /// `none`
    None,
    /// `tpm`
    Tpm,
    /// `android-key`
    AndroidKey,
    /// `apple`
    Apple,
    /// `android-safetynet` (parsed and reported, never trusted)
    AndroidSafetyNet,
}

impl Format {
    /// The WebAuthn format identifier.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Packed => "packed",
            Self::FidoU2f => "fido-u2f",
            Self::None => "none",
            Self::Tpm => "tpm",
            Self::AndroidKey => "android-key",
            Self::Apple => "apple",
            Self::AndroidSafetyNet => "android-safetynet",
        }
    }

    /// The format for a WebAuthn identifier (§8 registry), if payhsm knows it.
    pub fn from_id(id: &str) -> Option<Self> {
        [
            Self::Packed,
            Self::FidoU2f,
            Self::None,
            Self::Tpm,
            Self::AndroidKey,
            Self::Apple,
            Self::AndroidSafetyNet,
        ]
        .into_iter()
        .find(|f| f.as_str() == id)
    }
}

/// How far the attestation establishes where the key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    /// The chain reaches a configured anchor.
    Hardware,
    /// Self attestation: signed by the credential key itself.
    SelfAttested,
    /// No attestation, or one that cannot be tied to a configured anchor.
    None,
}

impl Trust {
    /// `hardware`, `self` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hardware => "hardware",
            Self::SelfAttested => "self",
            Self::None => "none",
        }
    }
}

/// What reaching an anchor proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnchorAssurance {
    /// Keys attested under it live in hardware.
    Hardware,
    /// Its private key is public knowledge (the Android software attestation root): a chain
    /// to it is reported, never [`Trust::Hardware`].
    Software,
}

/// A configured trust anchor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    /// A name for reports (file name).
    pub name: String,
    /// The certificate, DER.
    pub der: Vec<u8>,
    /// If set, only authenticators with these AAGUIDs may chain to it.
    pub aaguids: Option<Vec<[u8; 16]>>,
    /// What reaching it proves.
    pub assurance: AnchorAssurance,
}

/// The configured anchors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustAnchors {
    /// All anchors.
    pub anchors: Vec<Anchor>,
}

/// What to do with a chain that is well formed but reaches no configured anchor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UntrustedChains {
    /// Reject the registration (`untrusted_chain`).
    Reject,
    /// Accept it as [`Trust::None`].
    ReportAsNone,
}

/// Which Android authorization lists may carry origin = generated and purpose = sign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AndroidAuthorizations {
    /// Only teeEnforced (§8.4: "only keys from a trusted execution environment").
    TeeEnforcedOnly,
    /// The union of teeEnforced and softwareEnforced; a software-only key is recorded in
    /// [`AttestationVerdict::android_enforcement`] and never gets [`Trust::Hardware`].
    AllowSoftwareEnforced,
}

/// Whether SafetyNet's ctsProfileMatch must be true.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SafetyNetCts {
    /// ctsProfileMatch must be true.
    Require,
    /// Accept a device that fails CTS (the statement is still only [`Trust::None`]).
    DangerIgnore,
}

/// What the relying party accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationPolicy {
    /// Algorithms accepted for statement signatures and credential keys.
    pub algorithms: Vec<CoseAlgorithm>,
    /// Chains that reach no configured anchor.
    pub untrusted_chains: UntrustedChains,
    /// Android origin/purpose enforcement.
    pub android_authorizations: AndroidAuthorizations,
    /// SafetyNet CTS profile.
    pub safetynet_cts: SafetyNetCts,
    /// Google's Android attestation revocation list, when one is loaded.
    pub android_revocations: Option<std::sync::Arc<android_key::RevocationList>>,
}

impl AttestationPolicy {
    /// The strict defaults for `algorithms`: untrusted chains rejected, Android software
    /// enforcement recorded, SafetyNet CTS required.
    pub fn new(algorithms: Vec<CoseAlgorithm>) -> Self {
        Self {
            algorithms,
            untrusted_chains: UntrustedChains::Reject,
            android_authorizations: AndroidAuthorizations::AllowSoftwareEnforced,
            safetynet_cts: SafetyNetCts::Require,
            android_revocations: None,
        }
    }
}

/// Android Key Attestation details worth recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidKeyInfo {
    /// attestationSecurityLevel: software, trusted_environment or strongbox.
    pub security_level: String,
    /// userAuthType from the TEE-enforced list, if present.
    pub user_auth_type: Option<u64>,
    /// The TEE-enforced rootOfTrust: verified boot state and bootloader lock.
    pub root_of_trust: Option<android_key::RootOfTrust>,
    /// The attestationApplicationId: package names and signing-certificate digests.
    pub application_id: Option<android_key::ApplicationId>,
}

/// Where an Android key's origin and purpose were enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AndroidEnforcement {
    /// In teeEnforced.
    TrustedEnvironment,
    /// Only with softwareEnforced in the union.
    Software,
}

/// What a SafetyNet response said (never a basis for trust).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNetInfo {
    /// ctsProfileMatch.
    pub cts_profile_match: bool,
    /// basicIntegrity.
    pub basic_integrity: bool,
    /// timestampMs.
    pub timestamp_ms: i64,
}

/// The result of verifying an attestation statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttestationVerdict {
    /// The format.
    pub format: Format,
    /// The trust established.
    pub trust: Trust,
    /// The anchor reached, if any.
    pub anchor: Option<String>,
    /// Android details.
    pub android: Option<AndroidKeyInfo>,
    /// Android origin/purpose enforcement.
    pub android_enforcement: Option<AndroidEnforcement>,
    /// SafetyNet details.
    pub safetynet: Option<SafetyNetInfo>,
}

impl AttestationVerdict {
    fn new(format: Format, trust: Trust, anchor: Option<String>) -> Self {
        Self {
            format,
            trust,
            anchor,
            android: None,
            android_enforcement: None,
            safetynet: None,
        }
    }
}

/// Everything a statement is verified over.
#[derive(Debug)]
pub struct StatementInput<'a> {
    /// `fmt`
    pub format: &'a str,
    /// `attStmt`
    pub att_stmt: &'a Value,
    /// Parsed authData (with attested credential data).
    pub auth_data: &'a AuthenticatorData,
    /// Raw authData bytes.
    pub auth_data_raw: &'a [u8],
    /// SHA-256 of clientDataJSON.
    pub client_data_hash: &'a [u8; 32],
}

impl StatementInput<'_> {
    /// authenticatorData || clientDataHash: what every format signs or hashes.
    fn to_be_signed(&self) -> Vec<u8> {
        let mut m = Vec::with_capacity(self.auth_data_raw.len() + 32);
        m.extend_from_slice(self.auth_data_raw);
        m.extend_from_slice(self.client_data_hash);
        m
    }

    fn credential(&self) -> Result<&super::authdata::AttestedCredential, AttestationError> {
        self.auth_data
            .attested
            .as_ref()
            .ok_or(AttestationError::NoAttestedCredential)
    }
}

/// Verifies an attestation statement (§7.1 steps 19-21).
pub fn verify_statement(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, super::WebauthnError> {
    // §7.1 step 20: determine the format by a USASCII case-sensitive match on fmt.
    let format = Format::from_id(input.format).ok_or(AttestationError::UnsupportedFormat)?;
    let verdict = match format {
        Format::None => verify_none(input),
        Format::Packed => packed::verify(input, anchors, policy, now),
        Format::FidoU2f => fido_u2f::verify(input, anchors, policy, now),
        Format::Tpm => tpm::verify(input, anchors, policy, now),
        Format::AndroidKey => android_key::verify(input, anchors, policy, now),
        Format::Apple => apple::verify(input, anchors, policy, now),
        Format::AndroidSafetyNet => safetynet::verify(input, anchors, policy, now),
    }?;
    Ok(verdict)
}

/// §8.7: the attStmt of `none` is an empty map.
fn verify_none(input: &StatementInput<'_>) -> Result<AttestationVerdict, AttestationError> {
    match input.att_stmt {
        Value::Map(m) if m.is_empty() => {
            Ok(AttestationVerdict::new(Format::None, Trust::None, None))
        }
        _ => Err(AttestationError::MalformedStatement(
            "none: attStmt not an empty map",
        )),
    }
}

/// The trust a verified chain gives, after the untrusted-chain policy.
fn chain_trust(
    reached: Option<&Anchor>,
    policy: &AttestationPolicy,
) -> Result<(Trust, Option<String>), AttestationError> {
    match reached {
        Some(a) if a.assurance == AnchorAssurance::Hardware => {
            Ok((Trust::Hardware, Some(a.name.clone())))
        }
        Some(a) => Ok((Trust::None, Some(a.name.clone()))),
        None => match policy.untrusted_chains {
            UntrustedChains::Reject => Err(AttestationError::UntrustedChain),
            UntrustedChains::ReportAsNone => Ok((Trust::None, None)),
        },
    }
}

/// attStmt accessors: a strict view of the map (known keys only, typed values).
mod stmt {
    use super::{AttestationError, Value};
    use crate::webauthn::cose::CoseAlgorithm;

    /// Refuses keys outside `allowed` (a statement with members we do not verify is refused).
    pub(super) fn only_keys(
        v: &Value,
        allowed: &[&str],
        fmt: &'static str,
    ) -> Result<(), AttestationError> {
        let Value::Map(m) = v else {
            return Err(AttestationError::MalformedStatement(fmt));
        };
        for (k, _) in m {
            match k {
                Value::Text(t) if allowed.contains(&t.as_str()) => {}
                _ => return Err(AttestationError::MalformedStatement(fmt)),
            }
        }
        Ok(())
    }

    pub(super) fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
        let Value::Map(m) = v else { return None };
        m.iter()
            .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
            .map(|(_, v)| v)
    }

    pub(super) fn bytes<'v>(v: &'v Value, key: &'static str) -> Result<&'v [u8], AttestationError> {
        match get(v, key) {
            Some(Value::Bytes(b)) => Ok(b),
            _ => Err(AttestationError::MalformedStatement(key)),
        }
    }

    pub(super) fn text<'v>(v: &'v Value, key: &'static str) -> Result<&'v str, AttestationError> {
        match get(v, key) {
            Some(Value::Text(t)) => Ok(t),
            _ => Err(AttestationError::MalformedStatement(key)),
        }
    }

    /// `alg`: a COSE algorithm payhsm knows and the policy accepts.
    pub(super) fn alg(
        v: &Value,
        accepted: &[CoseAlgorithm],
    ) -> Result<CoseAlgorithm, AttestationError> {
        let n = match get(v, "alg") {
            Some(Value::Negative(n)) => i64::try_from(*n).ok(),
            Some(Value::Unsigned(n)) => i64::try_from(*n).ok(),
            _ => None,
        }
        .ok_or(AttestationError::MalformedStatement("alg"))?;
        let alg = cose_alg(n).ok_or(AttestationError::AlgorithmNotAllowed)?;
        if accepted.contains(&alg) {
            Ok(alg)
        } else {
            Err(AttestationError::AlgorithmNotAllowed)
        }
    }

    /// x5c: absent, or a non-empty array of byte strings.
    pub(super) fn x5c(v: &Value) -> Result<Option<Vec<&[u8]>>, AttestationError> {
        match get(v, "x5c") {
            None => Ok(None),
            Some(Value::Array(items)) if !items.is_empty() => items
                .iter()
                .map(|i| match i {
                    Value::Bytes(b) => Ok(b.as_slice()),
                    _ => Err(AttestationError::MalformedStatement("x5c")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(AttestationError::MalformedStatement("x5c")),
        }
    }

    /// The COSE algorithm registry values (IANA "COSE Algorithms").
    pub(super) fn cose_alg(n: i64) -> Option<CoseAlgorithm> {
        Some(match n {
            -7 => CoseAlgorithm::Es256,
            -35 => CoseAlgorithm::Es384,
            -36 => CoseAlgorithm::Es512,
            -8 => CoseAlgorithm::EdDsa,
            -257 => CoseAlgorithm::Rs256,
            -258 => CoseAlgorithm::Rs384,
            -259 => CoseAlgorithm::Rs512,
            -65535 => CoseAlgorithm::Rs1,
            -37 => CoseAlgorithm::Ps256,
            -38 => CoseAlgorithm::Ps384,
            -39 => CoseAlgorithm::Ps512,
            _ => return None,
        })
    }
}

/// The checks an attestation certificate's key makes, reached from DER for the Wycheproof
/// tests (`tests/wycheproof.rs`, `docs/wycheproof.md`). Not an API: hidden from the docs.
#[doc(hidden)]
pub mod certificate_signatures {
    use super::{keys, AttestationError};
    use crate::webauthn::cose::CoseAlgorithm;
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

    /// The check `packed`, `tpm`, `android-key` and `fido-u2f` make of their statement's `sig`
    /// under COSE `alg` with the certificate key `spki_der` (a DER SubjectPublicKeyInfo).
    pub fn verify_statement(
        spki_der: &[u8],
        alg: CoseAlgorithm,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AttestationError> {
        keys::verify_cose_alg(&spki(spki_der)?, alg, message, signature)
    }

    /// The check of each certificate's signature in an x5c chain: `algorithm_der` is the
    /// certificate's DER signatureAlgorithm, `spki_der` the issuer's key.
    pub fn verify_certificate(
        spki_der: &[u8],
        algorithm_der: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), AttestationError> {
        let algorithm = match AlgorithmIdentifier::from_der(algorithm_der) {
            Ok(([], algorithm)) => algorithm,
            _ => return Err(AttestationError::CertificateMalformed),
        };
        keys::verify_x509(&spki(spki_der)?, &algorithm, message, signature)
    }

    fn spki(der: &[u8]) -> Result<SubjectPublicKeyInfo<'_>, AttestationError> {
        match SubjectPublicKeyInfo::from_der(der) {
            Ok(([], spki)) => Ok(spki),
            _ => Err(AttestationError::UnsupportedKey),
        }
    }
}

#[cfg(test)]
mod tests;

/// Fuzzing entry: an attestation object (CBOR {fmt, attStmt, authData}) through every format
/// with a fixed clock, no anchors and a zero clientDataHash. Never panics.
pub(crate) fn fuzz_attestation_object(data: &[u8]) {
    let Ok(obj) = super::cbor::decode(data) else {
        return;
    };
    let (Some(Value::Text(fmt)), Some(att_stmt), Some(Value::Bytes(raw))) = (
        stmt::get(&obj, "fmt"),
        stmt::get(&obj, "attStmt"),
        stmt::get(&obj, "authData"),
    ) else {
        return;
    };
    let Ok(auth_data) = AuthenticatorData::parse(raw) else {
        return;
    };
    let input = StatementInput {
        format: fmt,
        att_stmt,
        auth_data: &auth_data,
        auth_data_raw: raw,
        client_data_hash: &[0; 32],
    };
    let mut policy = AttestationPolicy::new(vec![
        CoseAlgorithm::Es256,
        CoseAlgorithm::Rs256,
        CoseAlgorithm::EdDsa,
    ]);
    policy.untrusted_chains = UntrustedChains::ReportAsNone;
    let _ = verify_statement(
        &input,
        &TrustAnchors::default(),
        &policy,
        time::OffsetDateTime::UNIX_EPOCH,
    );
}

/// Fuzzing entry: `data` split into certificates (2-byte big-endian length prefixes), verified
/// as an x5c chain with the first one as the only anchor, and each one's extensions parsed as
/// KeyDescription, Apple nonce and BasicConstraints. Never panics.
pub(crate) fn fuzz_x5c_chain(mut data: &[u8]) {
    let mut ders = Vec::new();
    while let [hi, lo, rest @ ..] = data {
        let n = usize::from(*hi) << 8 | usize::from(*lo);
        let Some((der, rest)) = rest.split_at_checked(n) else {
            break;
        };
        ders.push(der);
        data = rest;
    }
    let Ok(certs) = chain::parse_x5c(&ders) else {
        return;
    };
    for c in &certs {
        let _ = chain::basic_constraints_ca(c);
        let _ = apple::nonce_extension(c);
        for e in c.extensions() {
            let _ = android_key::parse_key_description(e.value);
        }
    }
    let anchors = TrustAnchors {
        anchors: ders
            .first()
            .map(|d| Anchor {
                name: "fuzz".into(),
                der: d.to_vec(),
                aaguids: None,
                assurance: AnchorAssurance::Hardware,
            })
            .into_iter()
            .collect(),
    };
    let _ = chain::verify(
        certs.get(1..).unwrap_or_default(),
        &anchors,
        None,
        time::OffsetDateTime::UNIX_EPOCH,
    );
}
