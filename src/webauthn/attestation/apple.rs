//! `apple` (WebAuthn L3 §8.8, Apple Anonymous Attestation).
use ring::digest;
use x509_parser::certificate::X509Certificate;

use super::{chain, chain_trust, der, keys, stmt};
use super::{
    AttestationError, AttestationPolicy, AttestationVerdict, Format, StatementInput, TrustAnchors,
};

/// The Apple nonce extension, shared with App Attest.
const APPLE_NONCE: &str = "1.2.840.113635.100.8.2";

/// The nonce in 1.2.840.113635.100.8.2: SEQUENCE { [1] EXPLICIT OCTET STRING }.
pub(super) fn nonce_extension<'c>(
    cert: &'c X509Certificate<'_>,
) -> Result<&'c [u8], AttestationError> {
    let ext = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == APPLE_NONCE)
        .ok_or(AttestationError::CertificateRequirement(
            "Apple nonce extension missing",
        ))?;
    let seq = der::read_one(ext.value)
        .filter(|t| t.is(der::SEQUENCE))
        .and_then(|t| t.children())
        .ok_or(AttestationError::CertificateMalformed)?;
    let [tagged] = seq.as_slice() else {
        return Err(AttestationError::CertificateMalformed);
    };
    if tagged.class != der::CONTEXT || tagged.tag != 1 {
        return Err(AttestationError::CertificateMalformed);
    }
    der::read_one(tagged.value)
        .filter(|t| t.is(der::OCTET_STRING))
        .map(|t| t.value)
        .ok_or(AttestationError::CertificateMalformed)
}

pub(super) fn verify(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, AttestationError> {
    let s = input.att_stmt;
    stmt::only_keys(s, &["x5c", "alg"], "apple: unknown attStmt member")?;
    let x5c = stmt::x5c(s)?.ok_or(AttestationError::MalformedStatement("x5c"))?;
    let credential = input.credential()?;
    let certs = chain::parse_x5c(&x5c)?;
    let leaf = certs
        .first()
        .ok_or(AttestationError::MalformedStatement("x5c"))?;
    // §8.8 steps 2-4: nonce = SHA-256(authenticatorData || clientDataHash) equals the extension.
    let nonce = digest::digest(&digest::SHA256, &input.to_be_signed());
    if nonce_extension(leaf)? != nonce.as_ref() {
        return Err(AttestationError::NonceMismatch);
    }
    // §8.8 step 5: the credential public key equals the Subject Public Key of credCert.
    if !keys::same_key(leaf.public_key(), &credential.public_key) {
        return Err(AttestationError::CredentialKeyMismatch);
    }
    let reached = chain::verify(&certs, anchors, Some(&credential.aaguid), now)?;
    let (trust, anchor) = chain_trust(reached, policy)?;
    Ok(AttestationVerdict::new(Format::Apple, trust, anchor))
}
