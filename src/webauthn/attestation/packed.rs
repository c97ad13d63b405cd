//! `packed` (WebAuthn L3 §8.2): full attestation with x5c, or self attestation.
use x509_parser::certificate::X509Certificate;

use super::{chain, chain_trust, der, keys, stmt};
use super::{
    AttestationError, AttestationPolicy, AttestationVerdict, Format, StatementInput, Trust,
    TrustAnchors,
};

/// id-fido-gen-ce-aaguid.
const FIDO_GEN_CE_AAGUID: &str = "1.3.6.1.4.1.45724.1.1.4";

pub(super) fn verify(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, AttestationError> {
    let s = input.att_stmt;
    stmt::only_keys(s, &["alg", "sig", "x5c"], "packed: unknown attStmt member")?;
    let alg = stmt::alg(s, &policy.algorithms)?;
    let sig = stmt::bytes(s, "sig")?;
    let credential = input.credential()?;
    let signed = input.to_be_signed();
    let Some(x5c) = stmt::x5c(s)? else {
        // §8.2 step 3: self attestation: alg matches the credential key's alg, and sig
        // verifies with the credential public key.
        if alg != credential.public_key.alg {
            return Err(AttestationError::AlgorithmMismatch);
        }
        credential
            .public_key
            .verify(&signed, sig)
            .map_err(|_| AttestationError::BadSignature)?;
        return Ok(AttestationVerdict::new(
            Format::Packed,
            Trust::SelfAttested,
            None,
        ));
    };
    let certs = chain::parse_x5c(&x5c)?;
    let leaf = certs
        .first()
        .ok_or(AttestationError::MalformedStatement("x5c"))?;
    // §8.2 step 2: sig is a valid signature over authenticatorData || clientDataHash by attestnCert.
    keys::verify_cose_alg(leaf.public_key(), alg, &signed, sig)?;
    // §8.2.1: attestnCert meets the packed certificate requirements.
    leaf_requirements(leaf)?;
    // §8.2 step 2: id-fido-gen-ce-aaguid, if present, equals the AAGUID in authenticatorData.
    check_aaguid_extension(leaf, &credential.aaguid)?;
    let reached = chain::verify(&certs, anchors, Some(&credential.aaguid), now)?;
    let (trust, anchor) = chain_trust(reached, policy)?;
    Ok(AttestationVerdict::new(Format::Packed, trust, anchor))
}

/// §8.2.1: version 3; subject C, O, OU = "Authenticator Attestation", CN; not a CA.
pub(super) fn leaf_requirements(leaf: &X509Certificate<'_>) -> Result<(), AttestationError> {
    if leaf.version().0 != 2 {
        return Err(AttestationError::CertificateRequirement(
            "version must be 3",
        ));
    }
    let subject = leaf.subject();
    let non_empty =
        |a: &x509_parser::x509::AttributeTypeAndValue<'_>| a.as_str().is_ok_and(|s| !s.is_empty());
    if !subject.iter_country().any(non_empty)
        || !subject.iter_organization().any(non_empty)
        || !subject.iter_common_name().any(non_empty)
    {
        return Err(AttestationError::CertificateRequirement(
            "subject C, O and CN",
        ));
    }
    if !subject
        .iter_organizational_unit()
        .any(|a| a.as_str() == Ok("Authenticator Attestation"))
    {
        return Err(AttestationError::CertificateRequirement(
            "subject OU Authenticator Attestation",
        ));
    }
    if chain::basic_constraints_ca(leaf)? == Some(true) {
        return Err(AttestationError::CertificateRequirement(
            "basic constraints CA false",
        ));
    }
    Ok(())
}

/// id-fido-gen-ce-aaguid, if present: not critical, an OCTET STRING equal to `aaguid`.
pub(super) fn check_aaguid_extension(
    leaf: &X509Certificate<'_>,
    aaguid: &[u8; 16],
) -> Result<(), AttestationError> {
    let Some(ext) = leaf
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == FIDO_GEN_CE_AAGUID)
    else {
        return Ok(());
    };
    let value = der::read_one(ext.value).filter(|t| t.is(der::OCTET_STRING));
    match value {
        Some(v) if !ext.critical && v.value == aaguid.as_slice() => Ok(()),
        _ => Err(AttestationError::AaguidMismatch),
    }
}
