//! Loading configured trust anchors from bytes (PEM or DER): sans-io, the shell reads files.
use x509_parser::certificate::X509Certificate;

use super::{Anchor, AnchorAssurance, AttestationError, TrustAnchors};

/// The subject CN of the Android software attestation root, whose private key ships in AOSP:
/// reaching it never proves hardware.
const ANDROID_SOFTWARE_ROOT_CN: &str = "Android Keystore Software Attestation Root";

impl TrustAnchors {
    /// Loads `(name, PEM or DER bytes)` pairs; every item must hold exactly one certificate.
    /// The Android software root is recognised and marked [`AnchorAssurance::Software`].
    pub fn from_certificates(
        items: Vec<(String, Vec<u8>)>,
    ) -> Result<TrustAnchors, AttestationError> {
        let anchors = items
            .into_iter()
            .map(|(name, bytes)| {
                let der = to_der(&bytes)?;
                let assurance = assurance_of(&der)?;
                Ok(Anchor {
                    name,
                    der,
                    aaguids: None,
                    assurance,
                })
            })
            .collect::<Result<Vec<_>, AttestationError>>()?;
        Ok(TrustAnchors { anchors })
    }

    /// Restricts the anchor called `name` to authenticators with these AAGUIDs.
    pub fn restrict_aaguids(
        mut self,
        name: &str,
        aaguids: Vec<[u8; 16]>,
    ) -> Result<Self, AttestationError> {
        let anchor = self
            .anchors
            .iter_mut()
            .find(|a| a.name == name)
            .ok_or(AttestationError::CertificateMalformed)?;
        anchor.aaguids = Some(aaguids);
        Ok(self)
    }
}

fn to_der(bytes: &[u8]) -> Result<Vec<u8>, AttestationError> {
    if bytes.starts_with(b"-----BEGIN") {
        let (rest, pem) = x509_parser::pem::parse_x509_pem(bytes)
            .map_err(|_| AttestationError::CertificateMalformed)?;
        if pem.label != "CERTIFICATE" || rest.iter().any(|b| !b.is_ascii_whitespace()) {
            return Err(AttestationError::CertificateMalformed);
        }
        Ok(pem.contents)
    } else {
        Ok(bytes.to_vec())
    }
}

fn assurance_of(der: &[u8]) -> Result<AnchorAssurance, AttestationError> {
    let cert = super::chain::parse_cert(der)?;
    Ok(if common_name_is(&cert, ANDROID_SOFTWARE_ROOT_CN) {
        AnchorAssurance::Software
    } else {
        AnchorAssurance::Hardware
    })
}

fn common_name_is(cert: &X509Certificate<'_>, cn: &str) -> bool {
    cert.subject()
        .iter_common_name()
        .any(|a| a.as_str() == Ok(cn))
}
