//! The client's rustls configuration: TLS 1.3 only, the configured CA as the only trust anchor,
//! an optional client certificate, ALPN for the HTTP version asked for.

use super::{ClientError, ClientOptions};
use rustls::crypto::ring::{cipher_suite, default_provider};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;

/// ALPN protocol id for HTTP/2.
pub(super) const ALPN_H2: &[u8] = b"h2";
/// ALPN protocol id for HTTP/1.1.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Builds the client TLS configuration for `opts`.
///
/// TLS 1.3 only; the server must chain to `opts.ca` (the system roots are never used); the
/// client certificate and key come from `opts.identity` when given. ALPN offers `h2` when
/// `opts.http2` is set, `http/1.1` otherwise. Every file error names the file.
pub fn tls_config(opts: &ClientOptions) -> Result<ClientConfig, ClientError> {
    let roots = load_roots(&opts.ca)?;
    let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ClientError::Config(format!("TLS versions: {e}")))?
        .with_root_certificates(roots);
    let mut config = match &opts.identity {
        Some(id) => {
            let chain = load_chain(&id.cert)?;
            let key = PrivateKeyDer::from_pem_file(&id.key)
                .map_err(|e| file_error("client key", &id.key, e))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ClientError::Config(format!("client certificate and key: {e}")))?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![if opts.http2 { ALPN_H2 } else { ALPN_HTTP11 }.to_vec()];
    Ok(config)
}

/// The ring provider with TLS 1.3 suites only, AES-128-GCM first: the server honours the
/// client's order, and SHA-384 is measurably slower on the target machines (DESIGN.md).
fn provider() -> CryptoProvider {
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..default_provider()
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in load_chain_named("CA certificate", path)? {
        roots
            .add(cert)
            .map_err(|e| ClientError::Config(format!("CA certificate {}: {e}", path.display())))?;
    }
    Ok(roots)
}

fn load_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    load_chain_named("client certificate", path)
}

fn load_chain_named(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_error(what, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(what, path, e))?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!(
            "{what} {}: no CERTIFICATE found",
            path.display()
        )));
    }
    Ok(certs)
}

fn file_error(what: &str, path: &Path, e: rustls::pki_types::pem::Error) -> ClientError {
    ClientError::Config(format!("{what} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::ClientIdentity;
    use std::path::PathBuf;

    fn opts(ca: PathBuf) -> ClientOptions {
        ClientOptions {
            url: "https://127.0.0.1:8443".into(),
            ca,
            identity: None,
            http2: false,
        }
    }

    #[test]
    fn missing_ca_file_is_a_config_error_naming_the_file() {
        let ca = PathBuf::from("/nonexistent/payhsm-test/ca.pem");
        match tls_config(&opts(ca)) {
            Err(ClientError::Config(msg)) => {
                assert!(msg.contains("/nonexistent/payhsm-test/ca.pem"), "{msg}")
            }
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn ca_file_without_certificates_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("empty.pem");
        std::fs::write(&ca, b"not a pem file\n").unwrap();
        match tls_config(&opts(ca.clone())) {
            Err(ClientError::Config(msg)) => {
                assert!(msg.contains(&ca.display().to_string()), "{msg}")
            }
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn missing_client_certificate_is_a_config_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, SELF_SIGNED_PEM).unwrap();
        let mut o = opts(ca);
        o.identity = Some(ClientIdentity {
            cert: dir.path().join("gateway.pem"),
            key: dir.path().join("gateway.key"),
        });
        match tls_config(&o) {
            Err(ClientError::Config(msg)) => assert!(msg.contains("gateway.pem"), "{msg}"),
            other => panic!("expected a Config error, got {other:?}"),
        }
    }

    #[test]
    fn offers_only_the_asked_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, SELF_SIGNED_PEM).unwrap();
        let mut o = opts(ca);
        let h1 = tls_config(&o).unwrap();
        assert_eq!(h1.alpn_protocols, vec![b"http/1.1".to_vec()]);
        o.http2 = true;
        assert_eq!(tls_config(&o).unwrap().alpn_protocols, vec![b"h2".to_vec()]);
    }

    /// A throwaway self-signed P-256 certificate (CN=payhsm-test-ca), only used as a trust anchor.
    const SELF_SIGNED_PEM: &str = include_str!("testdata/test-ca.pem");
}
