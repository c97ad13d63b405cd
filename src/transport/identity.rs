//! The caller's identity from its certificate: the first URI SAN, else the first DNS SAN,
//! else the subject CN. Sans-io: bytes in, a principal out, so the fuzzer can call it.
//!
//! The certificate has already been verified by rustls against the client CA when this runs;
//! this only reads the name out of it.

use crate::policy::Principal;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// The longest identity accepted, in bytes. Names go into audit records and policy requests.
pub const MAX_IDENTITY_LEN: usize = 256;

/// Why no principal could be taken from a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentityError {
    /// The bytes are not one DER X.509 certificate (or have trailing data).
    Malformed,
    /// The certificate has no URI SAN, no DNS SAN and no subject CN.
    NoIdentity,
    /// The chosen name is empty, longer than [`MAX_IDENTITY_LEN`] or has control characters.
    Unusable,
}

impl std::fmt::Display for IdentityError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Malformed => "the client certificate does not parse",
            Self::NoIdentity => "the client certificate has no URI SAN, DNS SAN or subject CN",
            Self::Unusable => {
                "the client certificate's identity is empty, too long or not printable"
            }
        })
    }
}

impl std::error::Error for IdentityError {}

/// The principal named by a DER certificate: first URI SAN, else first DNS SAN, else
/// subject CN.
pub fn principal_from_certificate(der: &[u8]) -> Result<Principal, IdentityError> {
    let (rest, cert) = X509Certificate::from_der(der).map_err(|_| IdentityError::Malformed)?;
    if !rest.is_empty() {
        return Err(IdentityError::Malformed);
    }
    let name = identity_name(&cert)?.ok_or(IdentityError::NoIdentity)?;
    if name.is_empty() || name.len() > MAX_IDENTITY_LEN || name.chars().any(char::is_control) {
        return Err(IdentityError::Unusable);
    }
    Ok(Principal::new(name))
}

/// The chosen name, borrowed from the certificate.
fn identity_name<'a>(cert: &'a X509Certificate<'a>) -> Result<Option<&'a str>, IdentityError> {
    // RFC 5280 §4.2.1.6: at most one subjectAltName extension; a duplicate is malformed.
    let san = cert
        .subject_alternative_name()
        .map_err(|_| IdentityError::Malformed)?;
    if let Some(san) = san {
        let names = &san.value.general_names;
        let uri = names.iter().find_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        });
        let dns = names.iter().find_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        });
        if let Some(name) = uri.or(dns) {
            return Ok(Some(name));
        }
    }
    match cert.subject().iter_common_name().next() {
        Some(cn) => cn.as_str().map(Some).map_err(|_| IdentityError::Malformed),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::string::Ia5String;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert_der(params: CertificateParams) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn params(cn: Option<&str>, sans: Vec<SanType>) -> CertificateParams {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            p.distinguished_name.push(DnType::CommonName, cn);
        }
        p.subject_alt_names = sans;
        p
    }

    fn uri(s: &str) -> SanType {
        SanType::URI(Ia5String::try_from(s).unwrap())
    }

    fn dns(s: &str) -> SanType {
        SanType::DnsName(Ia5String::try_from(s).unwrap())
    }

    #[test]
    fn uri_san_wins_over_dns_san_and_cn() {
        let der = cert_der(params(
            Some("gateway-cn"),
            vec![
                dns("gateway.internal"),
                uri("spiffe://pay.example/gateway"),
                uri("spiffe://pay.example/second"),
            ],
        ));
        let p = principal_from_certificate(&der).unwrap();
        assert_eq!(p.as_str(), "spiffe://pay.example/gateway");
    }

    #[test]
    fn dns_san_is_used_when_there_is_no_uri_san() {
        let der = cert_der(params(
            Some("gateway-cn"),
            vec![dns("gateway.internal"), dns("other.internal")],
        ));
        assert_eq!(
            principal_from_certificate(&der).unwrap().as_str(),
            "gateway.internal"
        );
    }

    #[test]
    fn subject_cn_is_used_when_there_are_no_sans() {
        let der = cert_der(params(Some("vault-reader"), vec![]));
        assert_eq!(
            principal_from_certificate(&der).unwrap().as_str(),
            "vault-reader"
        );
    }

    #[test]
    fn certificate_without_any_name_is_refused() {
        let der = cert_der(params(None, vec![]));
        assert_eq!(
            principal_from_certificate(&der),
            Err(IdentityError::NoIdentity)
        );
    }

    #[test]
    fn garbage_and_trailing_bytes_are_malformed() {
        assert_eq!(
            principal_from_certificate(b"not a certificate"),
            Err(IdentityError::Malformed)
        );
        assert_eq!(
            principal_from_certificate(&[]),
            Err(IdentityError::Malformed)
        );
        let mut der = cert_der(params(Some("x"), vec![]));
        der.push(0);
        assert_eq!(
            principal_from_certificate(&der),
            Err(IdentityError::Malformed)
        );
    }

    #[test]
    fn names_with_control_characters_are_unusable() {
        let der = cert_der(params(Some("evil\nname"), vec![]));
        assert_eq!(
            principal_from_certificate(&der),
            Err(IdentityError::Unusable)
        );
    }
}
