//! A resumed TLS session does not outlive its client certificate (issue 16, finding 7): the
//! daemon checks the certificate a resumed session carries again on every connection, so a
//! session made while the certificate was valid is refused once it has expired.
//!
//! The test makes its own PKI (the sample one has no short-lived certificate and keeps no CA
//! key): a CA, a server certificate, an empty CRL and a gateway certificate valid for seconds.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

mod support;
use payhsm::client::{tls_config, Client, ClientIdentity, ClientOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
    SerialNumber,
};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use time::OffsetDateTime;

/// Writes `ca.pem`, `ca.crl.pem`, `server.pem`/`.key` and `gateway.pem`/`.key` (valid until
/// `client_until`) into `dir`.
fn make_pki(dir: &Path, client_until: OffsetDateTime) {
    let now = OffsetDateTime::now_utc();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::default();
    ca.distinguished_name
        .push(DnType::CommonName, "resumption test CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = now - time::Duration::hours(1);
    ca.not_after = now + time::Duration::days(1);
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    let issuer = Issuer::new(ca, ca_key);

    let leaf = |cn: &str, san: SanType, usage, until, stem: &str| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.subject_alt_names = vec![san];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![usage];
        p.use_authority_key_identifier_extension = true;
        p.not_before = now - time::Duration::minutes(5);
        p.not_after = until;
        let cert = p.signed_by(&key, &issuer).unwrap();
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    };
    leaf(
        "localhost",
        SanType::IpAddress(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)),
        ExtendedKeyUsagePurpose::ServerAuth,
        now + time::Duration::days(1),
        "server",
    );
    leaf(
        "gateway",
        SanType::URI("spiffe://payhsm.dev/gateway".try_into().unwrap()),
        ExtendedKeyUsagePurpose::ClientAuth,
        client_until,
        "gateway",
    );
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::hours(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    std::fs::write(dir.join("ca.crl.pem"), crl.pem().unwrap()).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_session_is_refused_once_its_certificate_has_expired() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    // Long enough for the daemon to start and serve the first two connections.
    let valid_for = Duration::from_secs(12);
    let until = OffsetDateTime::now_utc() + valid_for;
    make_pki(&pki, until);

    let mut cmd = Command::new(env!("CARGO_BIN_EXE_payhsmd"));
    cmd.arg("dev")
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .arg("--keys")
        .arg(&pki)
        .arg("--policies")
        .arg(repo().join("policies"));
    let (mut child, addr) = spawn_until_listening(cmd, &tmp.path().join("payhsmd.log"));

    let options = ClientOptions {
        url: format!("https://{addr}"),
        ca: pki.join("ca.pem"),
        identity: Some(ClientIdentity {
            cert: pki.join("gateway.pem"),
            key: pki.join("gateway.key"),
        }),
        http2: false,
    };
    // One client configuration, so its session cache carries the tickets across connections.
    let config = Arc::new(tls_config(&options).unwrap());
    let healthz = |config: Arc<rustls::ClientConfig>| {
        let url = options.url.clone();
        async move {
            let mut c = Client::connect_with(&url, config).await.ok()?;
            c.request(hyper::Method::GET, "/healthz", None)
                .await
                .ok()
                .map(|r| r.status)
        }
    };
    assert_eq!(healthz(config.clone()).await, Some(200), "full handshake");
    // Resumed while the certificate is valid: served.
    assert_eq!(healthz(config.clone()).await, Some(200), "resumed, valid");

    let left = (until - OffsetDateTime::now_utc()).whole_milliseconds();
    assert!(
        left > 0,
        "the certificate expired before the valid resumption was tried"
    );
    tokio::time::sleep(Duration::from_millis(u64::try_from(left).unwrap() + 1500)).await;

    // The same session resumed after the certificate's notAfter: refused.
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let resumed = tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await;
    if let Ok(tls) = &resumed {
        assert_eq!(
            tls.get_ref().1.handshake_kind(),
            Some(rustls::HandshakeKind::Resumed),
            "the test must exercise a resumed session"
        );
    }
    assert_eq!(healthz(config).await, None, "resumed after expiry");
    let log = std::fs::read_to_string(tmp.path().join("payhsmd.log")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(!log.contains("panicked"), "{log}");
}
