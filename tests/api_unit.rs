//! The server TLS configuration, exercised with real rustls handshakes over an in-memory pipe
//! (no daemon, no sockets): who gets through the handshake and who does not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use payhsm::transport::{principal_from_certificate, server_config, TlsError, TlsFiles};
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::{TlsAcceptor, TlsConnector};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    der: CertificateDer<'static>,
    pem: String,
}

fn ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca {
        der: cert.der().clone(),
        pem: cert.pem(),
        params,
        key,
    }
}

struct Leaf {
    der: CertificateDer<'static>,
    pem: String,
    key: KeyPair,
}

fn leaf(ca: &Ca, params: CertificateParams) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    let cert = params.signed_by(&key, &issuer).unwrap();
    Leaf {
        der: cert.der().clone(),
        pem: cert.pem(),
        key,
    }
}

fn client_params(uri: &str, serial: u64) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "gateway");
    p.subject_alt_names = vec![SanType::URI(Ia5String::try_from(uri).unwrap())];
    p.serial_number = Some(SerialNumber::from(serial));
    p
}

/// A server with its own CA-issued certificate, trusting `ca` for clients.
struct Server {
    _dir: tempfile::TempDir,
    files: TlsFiles,
}

fn server(ca: &Ca, crl_pem: Option<String>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let server = leaf(
        ca,
        CertificateParams::new(vec!["localhost".to_owned()]).unwrap(),
    );
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let mut files = TlsFiles {
        cert: write("server.pem", &server.pem),
        key: write("server.key", &server.key.serialize_pem()),
        client_ca: write("client-ca.pem", &ca.pem),
        crls: vec![],
    };
    if let Some(crl) = crl_pem {
        files.crls.push(write("client-ca.crl.pem", &crl));
    }
    Server { _dir: dir, files }
}

fn client_config(
    server_ca: &Ca,
    client: Option<&Leaf>,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(server_ca.der.clone()).unwrap();
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match client {
        Some(c) => builder
            .with_client_auth_cert(
                vec![c.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.serialize_der())),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// What the server saw: the client's principal, the suite and ALPN; or the handshake error.
#[derive(Debug)]
struct Accepted {
    principal: String,
    suite: rustls::CipherSuite,
    alpn: Option<Vec<u8>>,
}

async fn handshake(server: &Server, client: Arc<ClientConfig>) -> Result<Accepted, String> {
    let config = server_config(&server.files).map_err(|e| e.to_string())?;
    let (s, c) = tokio::io::duplex(64 * 1024);
    let accept = async {
        let tls = TlsAcceptor::from(config)
            .accept(s)
            .await
            .map_err(|e| e.to_string())?;
        let (_, session) = tls.get_ref();
        let leaf = session.peer_certificates().and_then(|c| c.first()).unwrap();
        Ok(Accepted {
            principal: principal_from_certificate(leaf.as_ref())
                .unwrap()
                .to_string(),
            suite: session.negotiated_cipher_suite().unwrap().suite(),
            alpn: session.alpn_protocol().map(<[u8]>::to_vec),
        })
    };
    let connect = async {
        let name = ServerName::try_from("localhost").unwrap();
        // Keep the client stream open until the server has decided.
        TlsConnector::from(client).connect(name, c).await
    };
    let (accepted, _client) = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::join!(accept, connect)
    })
    .await
    .expect("handshake hung");
    accepted
}

const TLS13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

#[tokio::test]
async fn client_with_a_certificate_from_the_client_ca_gets_through() {
    let ca = ca("client and server CA");
    let srv = server(&ca, None);
    let client = leaf(&ca, client_params("spiffe://pay.example/gateway", 7));
    let got = handshake(&srv, client_config(&ca, Some(&client), TLS13))
        .await
        .unwrap();
    assert_eq!(got.principal, "spiffe://pay.example/gateway");
    assert_eq!(got.suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    assert_eq!(got.alpn.as_deref(), Some(&b"h2"[..]));
}

#[tokio::test]
async fn client_without_a_certificate_is_refused_in_the_handshake() {
    let ca = ca("ca");
    let srv = server(&ca, None);
    let err = handshake(&srv, client_config(&ca, None, TLS13))
        .await
        .unwrap_err();
    assert!(err.contains("certificate"), "{err}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let other = ca("another CA");
    let ca = ca("ca");
    let srv = server(&ca, None);
    let client = leaf(&other, client_params("spiffe://pay.example/intruder", 8));
    let err = handshake(&srv, client_config(&ca, Some(&client), TLS13))
        .await
        .unwrap_err();
    assert!(
        err.to_lowercase().contains("issuer") || err.contains("Unknown"),
        "{err}"
    );
}

#[tokio::test]
async fn expired_client_certificate_is_refused() {
    let ca = ca("ca");
    let srv = server(&ca, None);
    let mut params = client_params("spiffe://pay.example/old", 9);
    params.not_before = rcgen::date_time_ymd(2001, 1, 1);
    params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let client = leaf(&ca, params);
    let err = handshake(&srv, client_config(&ca, Some(&client), TLS13))
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("expired"), "{err}");
}

#[tokio::test]
async fn tls12_client_is_refused() {
    let ca = ca("ca");
    let srv = server(&ca, None);
    let client = leaf(&ca, client_params("spiffe://pay.example/legacy", 10));
    let config = client_config(&ca, Some(&client), &[&rustls::version::TLS12]);
    assert!(handshake(&srv, config).await.is_err());
}

fn crl_revoking(ca: &Ca, serial: u64) -> String {
    let now = time::OffsetDateTime::now_utc();
    let params = CertificateRevocationListParams {
        this_update: now - time::Duration::days(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(serial),
            revocation_time: now - time::Duration::hours(1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    };
    let issuer = Issuer::from_params(&ca.params, &ca.key);
    params.signed_by(&issuer).unwrap().pem().unwrap()
}

#[tokio::test]
async fn revoked_client_certificate_is_refused_and_others_pass() {
    let ca = ca("ca");
    let srv = server(&ca, Some(crl_revoking(&ca, 66)));
    let revoked = leaf(&ca, client_params("spiffe://pay.example/revoked", 66));
    let err = handshake(&srv, client_config(&ca, Some(&revoked), TLS13))
        .await
        .unwrap_err();
    assert!(err.to_lowercase().contains("revoked"), "{err}");
    let good = leaf(&ca, client_params("spiffe://pay.example/good", 67));
    let got = handshake(&srv, client_config(&ca, Some(&good), TLS13))
        .await
        .unwrap();
    assert_eq!(got.principal, "spiffe://pay.example/good");
}

#[test]
fn configuration_errors_name_the_file_and_never_the_key() {
    let ca = ca("ca");
    let srv = server(&ca, None);

    let mut files = srv.files.clone();
    files.key = Path::new("/nonexistent/server.key").to_owned();
    let e = server_config(&files).unwrap_err();
    assert!(matches!(e, TlsError::Pem { .. }), "{e:?}");
    assert!(e.to_string().contains("/nonexistent/server.key"), "{e}");

    // A key file holding only a certificate: no private key.
    let mut files = srv.files.clone();
    files.key = files.cert.clone();
    let e = server_config(&files).unwrap_err();
    assert!(matches!(e, TlsError::Empty { .. }), "{e:?}");

    // A CA file holding only the private key: no certificates, and no key bytes in the error.
    let mut files = srv.files.clone();
    files.client_ca = files.key.clone();
    let e = server_config(&files).unwrap_err();
    let key_pem = std::fs::read_to_string(&srv.files.key).unwrap();
    let key_line = key_pem.lines().nth(1).unwrap();
    assert!(!e.to_string().contains(key_line), "{e}");
    assert!(!format!("{e:?}").contains(key_line), "{e:?}");

    // A truncated PEM.
    let broken = srv.files.cert.with_file_name("broken.pem");
    std::fs::write(&broken, &key_pem[..key_pem.len() / 2]).unwrap();
    let mut files = srv.files.clone();
    files.key = broken;
    let e = server_config(&files).unwrap_err();
    assert!(e.to_string().contains("broken.pem"), "{e}");
    assert!(!e.to_string().contains(key_line), "{e}");
}
