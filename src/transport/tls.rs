//! The rustls server configuration: TLS 1.3 only, a client certificate from the configured
//! CA required (and checked against CRLs when given; a chain once verified is remembered, see
//! [`super::verified`]), ALPN `h2` then `http/1.1`.
//!
//! A client without a certificate, with one from another CA, an expired or revoked one, or
//! offering only TLS 1.2 fails in the handshake and never reaches HTTP.

use rustls::crypto::ring::cipher_suite;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Server-side TLS sessions kept for resumption (rustls keeps 256 by default).
pub const SESSION_CACHE_SIZE: usize = 8192;

/// The only protocol version the listener speaks.
const PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The application protocols offered, in order.
const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// The TLS policy [`server_tls`] builds, as the evidence report states it (PCI DSS 4.2, 8.3).
/// `crl_files`: the CRL files configured, or `None` when the configuration is not known (a
/// report made offline from a data directory).
pub fn tls_facts(crl_files: Option<usize>) -> crate::audit::report::TlsFacts {
    crate::audit::report::TlsFacts {
        protocol_versions: PROTOCOL_VERSIONS
            .iter()
            .map(|v| format!("{:?}", v.version))
            .collect(),
        cipher_suites: provider()
            .cipher_suites
            .iter()
            .map(|s| format!("{:?}", s.suite()))
            .collect(),
        client_authentication: "required: a certificate chaining to the configured client CA, \
                                verified in the handshake; without one no HTTP is read"
            .to_owned(),
        revocation: match crl_files {
            Some(0) => "no CRL configured".to_owned(),
            Some(n) => format!(
                "client certificates checked against {n} CRL file(s); unknown status refused"
            ),
            None => "not known: the report was made offline from a data directory".to_owned(),
        },
        alpn: ALPN
            .iter()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    }
}

/// The PEM files the server's TLS configuration is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// The CA certificates that issue client certificates.
    pub client_ca: PathBuf,
    /// Certificate revocation lists of the client CA; empty for none.
    pub crls: Vec<PathBuf>,
}

/// Why the TLS configuration could not be built. Names the file and the problem; never
/// contains key material.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    Pem {
        /// The file.
        path: PathBuf,
        /// What went wrong (a fixed description, never file contents).
        problem: String,
    },
    /// The file holds no item of the expected kind.
    Empty {
        /// The file.
        path: PathBuf,
        /// What was expected in it.
        expected: &'static str,
    },
    /// A client CA certificate was refused as a trust anchor.
    ClientCa {
        /// The file.
        path: PathBuf,
        /// The reason from rustls.
        problem: String,
    },
    /// The client certificate verifier could not be built (no anchor, or a CRL that does
    /// not parse).
    Verifier {
        /// The client CA and CRL files involved.
        paths: Vec<PathBuf>,
        /// The reason from rustls.
        problem: String,
    },
    /// The certificate and key were refused together (unsupported key, or they do not match).
    CertifiedKey {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The reason from rustls.
        problem: String,
    },
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pem { path, problem } => write!(f, "{}: {problem}", path.display()),
            Self::Empty { path, expected } => {
                write!(f, "{}: no {expected} found", path.display())
            }
            Self::ClientCa { path, problem } => {
                write!(f, "{}: client CA refused: {problem}", path.display())
            }
            Self::Verifier { paths, problem } => {
                let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "client certificate verifier ({}): {problem}",
                    names.join(", ")
                )
            }
            Self::CertifiedKey { cert, key, problem } => write!(
                f,
                "{} with {}: certificate and key refused: {problem}",
                cert.display(),
                key.display()
            ),
        }
    }
}

impl std::error::Error for TlsError {}

/// The ring provider restricted to the TLS 1.3 suites, AES-128-GCM first (SHA-384 is slow on
/// the measured machines; see DESIGN.md).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

/// A server's TLS configuration and its client certificate verifier (which rustls keeps
/// private): the server checks a resumed session's certificate again with it.
#[derive(Debug, Clone)]
pub struct ServerTls {
    /// The rustls configuration.
    pub config: Arc<ServerConfig>,
    /// The verifier `config` checks client certificates with.
    pub verifier: Arc<dyn ClientCertVerifier>,
}

/// Builds the server configuration from PEM files.
pub fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, TlsError> {
    server_tls(files).map(|t| t.config)
}

/// Builds the server configuration from PEM files, with its verifier.
pub fn server_tls(files: &TlsFiles) -> Result<ServerTls, TlsError> {
    let provider = provider();

    let mut roots = RootCertStore::empty();
    for ca in read_all::<CertificateDer<'static>>(&files.client_ca, "CA certificate")? {
        roots.add(ca).map_err(|e| TlsError::ClientCa {
            path: files.client_ca.clone(),
            problem: e.to_string(),
        })?;
    }
    let mut crls = Vec::new();
    for path in &files.crls {
        crls.extend(read_all::<CertificateRevocationListDer<'static>>(
            path, "CRL",
        )?);
    }
    let mut verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    if !crls.is_empty() {
        // Unknown revocation status stays an error: a certificate the CRLs cannot speak for
        // is refused (fail closed).
        verifier = verifier.with_crls(crls).only_check_end_entity_revocation();
    }
    let verifier = verifier.build().map_err(|e| TlsError::Verifier {
        paths: std::iter::once(files.client_ca.clone())
            .chain(files.crls.iter().cloned())
            .collect(),
        problem: e.to_string(),
    })?;
    let verifier: Arc<dyn ClientCertVerifier> =
        Arc::new(super::verified::RememberingVerifier::new(verifier));

    let chain = read_all::<CertificateDer<'static>>(&files.cert, "certificate")?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Empty {
            path: files.key.clone(),
            expected: "private key",
        },
        e => pem_error(&files.key, &e),
    })?;

    let certified = |e: rustls::Error| TlsError::CertifiedKey {
        cert: files.cert.clone(),
        key: files.key.clone(),
        problem: e.to_string(),
    };
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(certified)?
        .with_client_cert_verifier(verifier.clone())
        .with_single_cert(chain, key)
        .map_err(certified)?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
    // Our suite order (AES-128-GCM first) wins over the client's.
    config.ignore_client_order = true;
    Ok(ServerTls {
        config: Arc::new(config),
        verifier,
    })
}

/// Every item of type `T` in a PEM file; at least one.
fn read_all<T: PemObject>(path: &Path, expected: &'static str) -> Result<Vec<T>, TlsError> {
    let items = T::pem_file_iter(path)
        .map_err(|e| pem_error(path, &e))?
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if items.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_owned(),
            expected,
        });
    }
    Ok(items)
}

/// A PEM error described without echoing file contents (a key file's lines are secret).
fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    let problem = match e {
        pem::Error::Io(io) => format!("cannot read: {io}"),
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line".to_owned(),
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".to_owned(),
        pem::Error::Base64Decode(_) => "a PEM section is not valid base64".to_owned(),
        pem::Error::NoItemsFound => "no PEM items found".to_owned(),
        pem::Error::SectionTooLarge => "a PEM section is too large".to_owned(),
        _ => "the PEM file does not parse".to_owned(),
    };
    TlsError::Pem {
        path: path.to_owned(),
        problem,
    }
}
