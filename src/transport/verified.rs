//! Client certificate chains already verified, remembered so a gateway's next handshake does
//! not verify the same chain and the same CRL signature again.
//!
//! Whether a chain is valid depends on the chain, the trust anchors, the CRLs and the time.
//! The anchors and CRLs are fixed for a server configuration (a new one gets a new cache), so
//! a success is remembered per exact chain (SHA-256 over the DER of every certificate) until
//! the earliest of: the leaf's notAfter, [`REMEMBER`] after it was verified. Failures are not
//! remembered. The handshake's own proof of possession (the client's CertificateVerify
//! signature) is checked on every handshake, whatever this cache says.

use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// How long a verified chain is trusted without verifying it again (seconds).
const REMEMBER: u64 = 300;

/// Chains remembered at most; a full cache starts over.
const CAPACITY: usize = 4096;

/// A [`ClientCertVerifier`] that remembers the chains `inner` accepted; see the module
/// documentation.
#[derive(Debug)]
pub struct RememberingVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// Chain digest -> until when (Unix seconds) it stands verified.
    verified: Mutex<HashMap<[u8; 32], u64>>,
    /// Chain verifications that reached `inner`.
    #[cfg(test)]
    inner_calls: std::sync::atomic::AtomicUsize,
}

impl RememberingVerifier {
    /// Wraps `inner`, which does the real verification.
    pub fn new(inner: Arc<dyn ClientCertVerifier>) -> Self {
        Self {
            inner,
            verified: Mutex::new(HashMap::new()),
            #[cfg(test)]
            inner_calls: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn digest(end_entity: &CertificateDer<'_>, intermediates: &[CertificateDer<'_>]) -> [u8; 32] {
        let mut h = Sha256::new();
        for cert in std::iter::once(end_entity).chain(intermediates) {
            h.update((cert.len() as u64).to_be_bytes());
            h.update(cert.as_ref());
        }
        h.finalize().into()
    }
}

/// The leaf's notAfter in Unix seconds; `None` if it does not parse (then nothing is
/// remembered: the inner verifier decides every time).
fn not_after(end_entity: &CertificateDer<'_>) -> Option<u64> {
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref()).ok()?;
    u64::try_from(cert.validity().not_after.timestamp()).ok()
}

impl ClientCertVerifier for RememberingVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let key = Self::digest(end_entity, intermediates);
        let t = now.as_secs();
        {
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            match verified.get(&key) {
                Some(&until) if t <= until => return Ok(ClientCertVerified::assertion()),
                Some(_) => {
                    verified.remove(&key);
                }
                None => {}
            }
        }
        #[cfg(test)]
        self.inner_calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(expires) = not_after(end_entity) {
            let until = expires.min(t.saturating_add(REMEMBER));
            let mut verified = self.verified.lock().unwrap_or_else(PoisonError::into_inner);
            if verified.len() >= CAPACITY {
                verified.clear();
            }
            verified.insert(key, until);
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateRevocationListDer;
    use rustls::server::WebPkiClientVerifier;
    use rustls::RootCertStore;
    use std::path::Path;
    use std::sync::atomic::Ordering;

    fn sample(name: &str) -> CertificateDer<'static> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("keys-sample")
            .join(name);
        CertificateDer::from_pem_file(path).unwrap()
    }

    fn verifier() -> RememberingVerifier {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-sample");
        let mut roots = RootCertStore::empty();
        roots.add(sample("ca.pem")).unwrap();
        let crl = CertificateRevocationListDer::from_pem_file(dir.join("ca.crl.pem")).unwrap();
        let webpki = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            super::super::tls::provider(),
        )
        .with_crls([crl])
        .only_check_end_entity_revocation()
        .build()
        .unwrap();
        RememberingVerifier::new(webpki)
    }

    fn at(secs: u64) -> UnixTime {
        UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs))
    }

    #[test]
    fn a_verified_chain_is_verified_again_only_after_the_remember_window() {
        let v = verifier();
        let gateway = sample("clients/gateway.pem");
        let now = UnixTime::now().as_secs();
        v.verify_client_cert(&gateway, &[], at(now)).unwrap();
        v.verify_client_cert(&gateway, &[], at(now + 10)).unwrap();
        assert_eq!(v.inner_calls.load(Ordering::SeqCst), 1);
        v.verify_client_cert(&gateway, &[], at(now + REMEMBER + 1))
            .unwrap();
        assert_eq!(v.inner_calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_remembered_chain_is_refused_once_its_certificate_expired() {
        let v = verifier();
        let gateway = sample("clients/gateway.pem");
        let expires = not_after(&gateway).unwrap();
        // Verified a minute before it expires: remembered for that minute only.
        v.verify_client_cert(&gateway, &[], at(expires - 60))
            .unwrap();
        assert!(v
            .verify_client_cert(&gateway, &[], at(expires + 1))
            .is_err());
    }

    #[test]
    fn revoked_and_expired_certificates_are_refused_every_time() {
        let v = verifier();
        let now = UnixTime::now();
        for name in [
            "clients/revoked.pem",
            "clients/expired.pem",
            "clients/untrusted.pem",
        ] {
            let cert = sample(name);
            for _ in 0..3 {
                assert!(v.verify_client_cert(&cert, &[], now).is_err(), "{name}");
            }
        }
        assert_eq!(v.inner_calls.load(Ordering::SeqCst), 9);
    }
}
