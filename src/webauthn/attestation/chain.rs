//! x5c chains: leaf, then intermediates (in any order), up to a configured anchor. The anchor
//! always comes from the configuration; an anchor copy inside x5c proves nothing.
use x509_parser::certificate::X509Certificate;

use super::keys;
use super::{der, Anchor, AttestationError, TrustAnchors};

const BASIC_CONSTRAINTS: &str = "2.5.29.19";

/// Parses one DER certificate; trailing bytes are refused.
pub(super) fn parse_cert(bytes: &[u8]) -> Result<X509Certificate<'_>, AttestationError> {
    match x509_parser::parse_x509_certificate(bytes) {
        Ok(([], cert)) => Ok(cert),
        _ => Err(AttestationError::CertificateMalformed),
    }
}

/// Parses every x5c element.
pub(super) fn parse_x5c<'a>(
    x5c: &[&'a [u8]],
) -> Result<Vec<X509Certificate<'a>>, AttestationError> {
    x5c.iter().map(|der| parse_cert(der)).collect()
}

/// BasicConstraints cA: `None` when the extension is absent. Read by hand because Chrome's
/// virtual authenticator encodes the DEFAULT `cA FALSE` explicitly (a DER violation we accept).
pub(super) fn basic_constraints_ca(
    cert: &X509Certificate<'_>,
) -> Result<Option<bool>, AttestationError> {
    let Some(ext) = cert
        .extensions()
        .iter()
        .find(|e| e.oid.to_id_string() == BASIC_CONSTRAINTS)
    else {
        return Ok(None);
    };
    let seq = der::read_one(ext.value)
        .filter(|t| t.is(der::SEQUENCE))
        .and_then(|t| t.children())
        .ok_or(AttestationError::CertificateMalformed)?;
    Ok(Some(match seq.first() {
        Some(t) if t.is(0x01) => t.value == [0xff],
        _ => false,
    }))
}

/// notBefore <= now <= notAfter.
pub(super) fn check_time(
    cert: &X509Certificate<'_>,
    now: time::OffsetDateTime,
) -> Result<(), AttestationError> {
    let t = now.unix_timestamp();
    let v = cert.validity();
    if v.not_before.timestamp() <= t && t <= v.not_after.timestamp() {
        Ok(())
    } else {
        Err(AttestationError::CertificateNotValidAtTime)
    }
}

/// Whether `issuer`'s key signed `cert`.
fn signed_by(
    cert: &X509Certificate<'_>,
    issuer: &X509Certificate<'_>,
) -> Result<(), AttestationError> {
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(AttestationError::CertificateMalformed);
    }
    keys::verify_x509(
        issuer.public_key(),
        &cert.signature_algorithm,
        cert.tbs_certificate.as_ref(),
        &cert.signature_value.data,
    )
}

/// What the search for an anchor saw besides the anchor it found.
#[derive(Default)]
struct Misses {
    /// An anchor would have fit but its AAGUID allow-list excludes the AAGUID.
    refused: bool,
    /// An anchor has the issuer's name but its key did not sign.
    bad_signature: bool,
}

/// The configured anchor that issued `cert`, if any.
fn anchor_for<'t>(
    cert: &X509Certificate<'_>,
    anchors: &'t TrustAnchors,
    aaguid: Option<&[u8; 16]>,
    now: time::OffsetDateTime,
    misses: &mut Misses,
) -> Result<Option<&'t Anchor>, AttestationError> {
    for anchor in &anchors.anchors {
        let Ok(a) = parse_cert(&anchor.der) else {
            continue;
        };
        let pinned = cert.as_raw() == anchor.der.as_slice();
        if !pinned {
            if a.subject().as_raw() != cert.issuer().as_raw() {
                continue;
            }
            if signed_by(cert, &a).is_err() {
                // Several anchors may share a name (Google roots 1-4): only a miss.
                misses.bad_signature = true;
                continue;
            }
        }
        if let Some(list) = &anchor.aaguids {
            if !aaguid.is_some_and(|g| list.contains(g)) {
                misses.refused = true;
                continue;
            }
        }
        check_time(&a, now)?;
        return Ok(Some(anchor));
    }
    Ok(None)
}

/// Verifies the path from `certs[0]` (the leaf) and returns the anchor reached, or `None` for
/// a well-formed chain that reaches no configured anchor.
pub(super) fn verify<'t>(
    certs: &[X509Certificate<'_>],
    anchors: &'t TrustAnchors,
    aaguid: Option<&[u8; 16]>,
    now: time::OffsetDateTime,
) -> Result<Option<&'t Anchor>, AttestationError> {
    let mut current = certs.first().ok_or(AttestationError::ChainBroken)?;
    let mut used = vec![false; certs.len()];
    if let Some(u) = used.first_mut() {
        *u = true;
    }
    let mut misses = Misses::default();
    check_time(current, now)?;
    for _ in 0..certs.len() {
        if let Some(anchor) = anchor_for(current, anchors, aaguid, now, &mut misses)? {
            return Ok(Some(anchor));
        }
        // The next issuer: an unused x5c certificate whose subject is current's issuer.
        let mut next = None;
        let mut bad_signature = false;
        for (j, c) in certs.iter().enumerate() {
            if used.get(j) == Some(&true) || c.subject().as_raw() != current.issuer().as_raw() {
                continue;
            }
            match signed_by(current, c) {
                Ok(()) => {
                    next = Some(j);
                    break;
                }
                Err(AttestationError::ChainBadSignature) => bad_signature = true,
                Err(e) => return Err(e),
            }
        }
        let Some(j) = next else {
            if bad_signature || misses.bad_signature {
                return Err(AttestationError::ChainBadSignature);
            }
            break;
        };
        let issuer = certs.get(j).ok_or(AttestationError::ChainBroken)?;
        if let Some(u) = used.get_mut(j) {
            *u = true;
        }
        check_time(issuer, now)?;
        if basic_constraints_ca(issuer)? != Some(true) {
            return Err(AttestationError::ChainNotCa);
        }
        current = issuer;
    }
    if misses.refused {
        return Err(AttestationError::AnchorAaguidNotAllowed);
    }
    if used.iter().any(|u| !u) {
        return Err(AttestationError::ChainBroken);
    }
    // An unanchored self-signed top's own signature proves nothing and is not checked (Chrome's
    // virtual authenticator signs its batch certificate with ECDSA under an RSA OID).
    Ok(None)
}
