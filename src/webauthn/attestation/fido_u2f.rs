//! `fido-u2f` (WebAuthn L3 §8.6).
use super::{chain, chain_trust, keys, stmt};
use super::{
    AttestationError, AttestationPolicy, AttestationVerdict, Format, StatementInput, TrustAnchors,
};
use crate::webauthn::cose::{CoseAlgorithm, EcCurve, KeyParams};

pub(super) fn verify(
    input: &StatementInput<'_>,
    anchors: &TrustAnchors,
    policy: &AttestationPolicy,
    now: time::OffsetDateTime,
) -> Result<AttestationVerdict, AttestationError> {
    let s = input.att_stmt;
    stmt::only_keys(s, &["sig", "x5c"], "fido-u2f: unknown attStmt member")?;
    let sig = stmt::bytes(s, "sig")?;
    // §8.6 step 2: x5c has exactly one element; its key is an EC P-256 key.
    let x5c = stmt::x5c(s)?.ok_or(AttestationError::MalformedStatement("x5c"))?;
    if x5c.len() != 1 {
        return Err(AttestationError::MalformedStatement(
            "fido-u2f: x5c must hold one certificate",
        ));
    }
    let certs = chain::parse_x5c(&x5c)?;
    let leaf = certs
        .first()
        .ok_or(AttestationError::MalformedStatement("x5c"))?;
    if keys::kind(leaf.public_key())? != keys::KeyKind::P256 {
        return Err(AttestationError::CertificateRequirement(
            "fido-u2f: key must be EC P-256",
        ));
    }
    // §8.6 steps 3-4: the credential public key is an EC2 P-256 key; take x and y.
    let credential = input.credential()?;
    let KeyParams::Ec2 {
        curve: EcCurve::P256,
        x,
        y,
    } = &credential.public_key.params
    else {
        return Err(AttestationError::UnsupportedKey);
    };
    // §8.6 step 5: verificationData = 0x00 || rpIdHash || clientDataHash || credentialId || publicKeyU2F.
    let mut data = Vec::with_capacity(1 + 32 + 32 + credential.credential_id.len() + 65);
    data.push(0x00);
    data.extend_from_slice(&input.auth_data.rp_id_hash);
    data.extend_from_slice(input.client_data_hash);
    data.extend_from_slice(&credential.credential_id);
    data.extend_from_slice(&keys::ec_point(x, y));
    // §8.6 step 6: verify sig with the certificate key (ECDSA P-256 SHA-256).
    keys::verify_cose_alg(leaf.public_key(), CoseAlgorithm::Es256, &data, sig)?;
    let reached = chain::verify(&certs, anchors, Some(&credential.aaguid), now)?;
    let (trust, anchor) = chain_trust(reached, policy)?;
    Ok(AttestationVerdict::new(Format::FidoU2f, trust, anchor))
}
