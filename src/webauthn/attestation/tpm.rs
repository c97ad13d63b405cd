//! `tpm` (WebAuthn L3 §8.3): TPMT_PUBLIC and TPMS_ATTEST parsed by hand (TPM 2.0 Part 2).
use ring::digest;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::{chain, chain_trust, keys, packed, stmt};
use super::{
    AttestationError, AttestationPolicy, AttestationVerdict, Format, StatementInput, TrustAnchors,
};
use crate::webauthn::cose::{CoseAlgorithm, CoseKey, EcCurve, KeyParams};

const TPM_ALG_RSA: u16 = 0x0001;
const TPM_ALG_ECC: u16 = 0x0023;
const TPM_ALG_NULL: u16 = 0x0010;
const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
const TPM_ST_ATTEST_CERTIFY: u16 = 0x8017;
/// tcg-kp-AIKCertificate.
const TCG_KP_AIK_CERTIFICATE: &str = "2.23.133.8.3";
const TCG_AT_TPM_MANUFACTURER: &str = "2.23.133.2.1";
const TCG_AT_TPM_MODEL: &str = "2.23.133.2.2";
const TCG_AT_TPM_VERSION: &str = "2.23.133.2.3";

fn err(what: &'static str) -> AttestationError {
    AttestationError::Tpm(what)
}

/// A big-endian reader over TPM structures.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], AttestationError> {
        let (head, rest) = self.0.split_at_checked(n).ok_or(err(what))?;
        self.0 = rest;
        Ok(head)
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, AttestationError> {
        let b = self.take(2, what)?;
        Ok(b.iter().fold(0u16, |a, x| (a << 8) | u16::from(*x)))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, AttestationError> {
        let b = self.take(4, what)?;
        Ok(b.iter().fold(0u32, |a, x| (a << 8) | u32::from(*x)))
    }
    /// A TPM2B: u16 size then bytes.
    fn sized(&mut self, what: &'static str) -> Result<&'a [u8], AttestationError> {
        let n = self.u16(what)?;
        self.take(usize::from(n), what)
    }
    fn end(&self, what: &'static str) -> Result<(), AttestationError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(err(what))
        }
    }
}

/// The key in TPMT_PUBLIC.unique with its parameters.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TpmKey<'a> {
    /// RSA modulus and exponent (0 means 65537).
    Rsa { n: &'a [u8], exponent: u32 },
    /// ECC curve id and point.
    Ecc {
        curve: u16,
        x: &'a [u8],
        y: &'a [u8],
    },
}

/// TPMT_PUBLIC, the fields §8.3 uses.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct PubArea<'a> {
    pub name_alg: u16,
    pub key: TpmKey<'a>,
}

/// Parses TPMT_PUBLIC exactly (no trailing bytes).
pub(super) fn parse_pub_area(bytes: &[u8]) -> Result<PubArea<'_>, AttestationError> {
    let mut r = Reader(bytes);
    let kind = r.u16("pubArea type")?;
    let name_alg = r.u16("pubArea nameAlg")?;
    let _object_attributes = r.u32("pubArea objectAttributes")?;
    let _auth_policy = r.sized("pubArea authPolicy")?;
    // A signing key has no symmetric algorithm (TPM_ALG_NULL).
    if r.u16("pubArea symmetric")? != TPM_ALG_NULL {
        return Err(err("pubArea symmetric must be TPM_ALG_NULL"));
    }
    let scheme = r.u16("pubArea scheme")?;
    if scheme != TPM_ALG_NULL {
        let _scheme_hash = r.u16("pubArea scheme hash")?;
    }
    let key = match kind {
        TPM_ALG_RSA => {
            let _key_bits = r.u16("pubArea keyBits")?;
            let exponent = r.u32("pubArea exponent")?;
            let n = r.sized("pubArea unique")?;
            TpmKey::Rsa { n, exponent }
        }
        TPM_ALG_ECC => {
            let curve = r.u16("pubArea curveID")?;
            if r.u16("pubArea kdf")? != TPM_ALG_NULL {
                let _kdf_hash = r.u16("pubArea kdf hash")?;
            }
            let x = r.sized("pubArea unique x")?;
            let y = r.sized("pubArea unique y")?;
            TpmKey::Ecc { curve, x, y }
        }
        _ => return Err(err("pubArea type must be RSA or ECC")),
    };
    r.end("pubArea trailing bytes")?;
    Ok(PubArea { name_alg, key })
}

/// TPMS_ATTEST for TPM_ST_ATTEST_CERTIFY, the fields §8.3 uses.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct CertInfo<'a> {
    pub extra_data: &'a [u8],
    pub attested_name: &'a [u8],
}

/// Parses TPMS_ATTEST; checks magic and type (§8.3 step "Validate that certInfo is valid").
pub(super) fn parse_cert_info(bytes: &[u8]) -> Result<CertInfo<'_>, AttestationError> {
    let mut r = Reader(bytes);
    // Verify that magic is set to TPM_GENERATED_VALUE.
    if r.u32("certInfo magic")? != TPM_GENERATED_VALUE {
        return Err(err("certInfo magic is not TPM_GENERATED_VALUE"));
    }
    // Verify that type is set to TPM_ST_ATTEST_CERTIFY.
    if r.u16("certInfo type")? != TPM_ST_ATTEST_CERTIFY {
        return Err(err("certInfo type is not TPM_ST_ATTEST_CERTIFY"));
    }
    let _qualified_signer = r.sized("certInfo qualifiedSigner")?;
    let extra_data = r.sized("certInfo extraData")?;
    // clockInfo (clock u64, resetCount u32, restartCount u32, safe u8) and firmwareVersion u64.
    r.take(17 + 8, "certInfo clockInfo/firmwareVersion")?;
    let attested_name = r.sized("certInfo attested.name")?;
    let _qualified_name = r.sized("certInfo attested.qualifiedName")?;
    r.end("certInfo trailing bytes")?;
    Ok(CertInfo {
        extra_data,
        attested_name,
    })
}

fn cose_hash(alg: CoseAlgorithm) -> &'static digest::Algorithm {
    use CoseAlgorithm as A;
    match alg {
        A::Rs1 => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        A::Es384 | A::Rs384 | A::Ps384 => &digest::SHA384,
        A::Es512 | A::Rs512 | A::Ps512 => &digest::SHA512,
        A::Es256 | A::Rs256 | A::Ps256 | A::EdDsa => &digest::SHA256,
    }
}

fn tpm_hash(name_alg: u16) -> Result<&'static digest::Algorithm, AttestationError> {
    match name_alg {
        0x0004 => Ok(&digest::SHA1_FOR_LEGACY_USE_ONLY),
        0x000b => Ok(&digest::SHA256),
        0x000c => Ok(&digest::SHA384),
        0x000d => Ok(&digest::SHA512),
        _ => Err(err("pubArea nameAlg unsupported")),
    }
}

/// Whether the pubArea key is the credential key.
fn same_key(area: &TpmKey<'_>, cose: &CoseKey) -> bool {
    let strip = |b: &[u8]| -> Vec<u8> { b.iter().copied().skip_while(|x| *x == 0).collect() };
    match (area, &cose.params) {
        (TpmKey::Rsa { n, exponent }, KeyParams::Rsa { n: cn, e }) => {
            let exp = if *exponent == 0 { 65537 } else { *exponent };
            strip(n) == strip(cn) && strip(&exp.to_be_bytes()) == strip(e)
        }
        (
            TpmKey::Ecc { curve, x, y },
            KeyParams::Ec2 {
                curve: cc,
                x: cx,
                y: cy,
            },
        ) => {
            let same_curve = matches!(
                (curve, cc),
                (0x0003, EcCurve::P256) | (0x0004, EcCurve::P384) | (0x0005, EcCurve::P521)
            );
            same_curve && x == cx && y == cy
        }
        _ => false,
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
        &["ver", "alg", "x5c", "sig", "certInfo", "pubArea"],
        "tpm: unknown attStmt member",
    )?;
    // §8.3 step 1: ver is "2.0".
    if stmt::text(s, "ver")? != "2.0" {
        return Err(err("ver must be 2.0"));
    }
    let alg = stmt::alg(s, &policy.algorithms)?;
    let sig = stmt::bytes(s, "sig")?;
    let cert_info_raw = stmt::bytes(s, "certInfo")?;
    let pub_area_raw = stmt::bytes(s, "pubArea")?;
    let x5c = stmt::x5c(s)?.ok_or(AttestationError::MalformedStatement("x5c"))?;
    let credential = input.credential()?;
    // §8.3 step 2: the key in pubArea's parameters and unique is the credential public key.
    let area = parse_pub_area(pub_area_raw)?;
    if !same_key(&area.key, &credential.public_key) {
        return Err(AttestationError::CredentialKeyMismatch);
    }
    let info = parse_cert_info(cert_info_raw)?;
    // §8.3 step 4: extraData is the hash of attToBeSigned using the hash of alg.
    let att_hash = digest::digest(cose_hash(alg), &input.to_be_signed());
    if info.extra_data != att_hash.as_ref() {
        return Err(err("certInfo extraData is not hash(attToBeSigned)"));
    }
    // §8.3 step 4: attested.name is the Name of pubArea: nameAlg || H_nameAlg(pubArea).
    let name_hash = digest::digest(tpm_hash(area.name_alg)?, pub_area_raw);
    let mut name = area.name_alg.to_be_bytes().to_vec();
    name.extend_from_slice(name_hash.as_ref());
    if info.attested_name != name.as_slice() {
        return Err(err("certInfo attested.name is not the Name of pubArea"));
    }
    let certs = chain::parse_x5c(&x5c)?;
    let aik = certs
        .first()
        .ok_or(AttestationError::MalformedStatement("x5c"))?;
    // §8.3 step 3: sig is a valid signature over certInfo with the AIK key and alg.
    keys::verify_cose_alg(aik.public_key(), alg, cert_info_raw, sig)?;
    // §8.3.1: AIK certificate requirements.
    aik_requirements(aik)?;
    // §8.3 step 3: id-fido-gen-ce-aaguid, if present, equals the AAGUID in authenticatorData.
    packed::check_aaguid_extension(aik, &credential.aaguid)?;
    let reached = chain::verify(&certs, anchors, Some(&credential.aaguid), now)?;
    let (trust, anchor) = chain_trust(reached, policy)?;
    Ok(AttestationVerdict::new(Format::Tpm, trust, anchor))
}

/// §8.3.1: version 3, empty subject, SAN with the TCG TPM attributes, EKU tcg-kp-AIKCertificate,
/// not a CA.
fn aik_requirements(aik: &X509Certificate<'_>) -> Result<(), AttestationError> {
    let req = AttestationError::CertificateRequirement;
    if aik.version().0 != 2 {
        return Err(req("AIK version must be 3"));
    }
    if aik.subject().iter_attributes().next().is_some() {
        return Err(req("AIK subject must be empty"));
    }
    let san = aik
        .subject_alternative_name()
        .map_err(|_| req("AIK subjectAltName malformed"))?
        .ok_or(req("AIK subjectAltName missing"))?;
    let mut found = [false; 3];
    for name in &san.value.general_names {
        if let GeneralName::DirectoryName(dn) = name {
            for attr in dn.iter_attributes() {
                let oid = attr.attr_type().to_id_string();
                for (slot, want) in found.iter_mut().zip([
                    TCG_AT_TPM_MANUFACTURER,
                    TCG_AT_TPM_MODEL,
                    TCG_AT_TPM_VERSION,
                ]) {
                    *slot |= oid == want;
                }
            }
        }
    }
    if found.contains(&false) {
        return Err(req(
            "AIK subjectAltName lacks TPM manufacturer, model or version",
        ));
    }
    let eku = aik
        .extended_key_usage()
        .map_err(|_| req("AIK extendedKeyUsage malformed"))?
        .ok_or(req("AIK extendedKeyUsage missing"))?;
    if !eku
        .value
        .other
        .iter()
        .any(|o| o.to_id_string() == TCG_KP_AIK_CERTIFICATE)
    {
        return Err(req("AIK extendedKeyUsage lacks tcg-kp-AIKCertificate"));
    }
    if chain::basic_constraints_ca(aik)? == Some(true) {
        return Err(req("AIK basic constraints CA false"));
    }
    Ok(())
}
