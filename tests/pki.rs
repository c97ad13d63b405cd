//! The dev PKI: what `generate_dev_pki` writes, and the committed `keys-sample/` folder.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate
   // Test code: a failed unwrap is a failed test.

use payhsm::pki::{generate_dev_pki, CLIENT_NAMES, DEV_CA_NAME, SPIFFE_PREFIX};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::time::ASN1Time;

/// DER of the single PEM block in `path`.
fn der(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (rest, pem) = x509_parser::pem::parse_x509_pem(&bytes).unwrap();
    assert!(
        rest.iter().all(u8::is_ascii_whitespace),
        "{}",
        path.display()
    );
    pem.contents
}

fn cert(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    assert!(rest.is_empty());
    cert
}

fn common_name<'a>(cert: &'a X509Certificate<'_>) -> &'a str {
    cert.subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
}

fn uris<'a>(cert: &'a X509Certificate<'_>) -> Vec<&'a str> {
    cert.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::URI(u) => Some(*u),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn is_client_auth(cert: &X509Certificate<'_>) -> bool {
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    eku.client_auth && !eku.server_auth
}

/// The key file is PKCS#8 PEM and belongs to the certificate.
fn assert_key_matches(dir: &Path, stem: &str, cert: &X509Certificate<'_>) {
    let path = dir.join(format!("{stem}.key"));
    PrivatePkcs8KeyDer::from_pem_file(&path)
        .unwrap_or_else(|e| panic!("{} is not PKCS#8 PEM: {e}", path.display()));
    let key = rcgen::KeyPair::from_pem(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        key.public_key_raw(),
        &cert.public_key().subject_public_key.data[..],
        "{stem}.key does not match {stem}.pem"
    );
}

fn at(year: i32) -> ASN1Time {
    let t = time::Date::from_calendar_date(year, time::Month::July, 1)
        .unwrap()
        .midnight()
        .assume_utc();
    ASN1Time::from(t)
}

/// Every property the dev PKI promises, checked on the folder `dir`.
fn assert_dev_pki(dir: &Path) {
    let ca_der = der(&dir.join("ca.pem"));
    let ca = cert(&ca_der);
    assert_eq!(common_name(&ca), DEV_CA_NAME);
    assert!(ca.is_ca());
    assert_eq!(ca.issuer(), ca.subject());
    ca.verify_signature(None).unwrap();
    assert_eq!(
        ca.validity().not_before,
        ASN1Time::from_timestamp(1_767_225_600).unwrap()
    ); // 2026-01-01
    assert_eq!(
        ca.validity().not_after,
        ASN1Time::from_timestamp(2_082_758_400).unwrap()
    ); // 2036-01-01
    let ca_key = ca.public_key();
    let issued_by_ca = |c: &X509Certificate<'_>| {
        c.issuer() == ca.subject() && c.verify_signature(Some(ca_key)).is_ok()
    };

    for name in CLIENT_NAMES {
        let der = der(&dir.join(format!("clients/{name}.pem")));
        let client = cert(&der);
        assert_eq!(common_name(&client), name);
        assert_eq!(uris(&client), [format!("{SPIFFE_PREFIX}{name}")]);
        assert!(is_client_auth(&client), "{name}");
        assert!(!client.is_ca(), "{name}");
        assert!(issued_by_ca(&client), "{name} not issued by the dev CA");
        assert_eq!(client.validity(), ca.validity(), "{name}");
        assert!(client.validity().is_valid_at(at(2030)));
        assert_key_matches(dir, &format!("clients/{name}"), &client);
    }

    let server_der = der(&dir.join("server.pem"));
    let server = cert(&server_der);
    assert!(issued_by_ca(&server));
    let names = &server
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert!(names.contains(&GeneralName::DNSName("localhost")));
    let ips: Vec<IpAddr> = names
        .iter()
        .filter_map(|n| match n {
            GeneralName::IPAddress(b) if b.len() == 4 => {
                Some(IpAddr::from(<[u8; 4]>::try_from(*b).unwrap()))
            }
            GeneralName::IPAddress(b) => Some(IpAddr::from(<[u8; 16]>::try_from(*b).unwrap())),
            _ => None,
        })
        .collect();
    assert_eq!(
        ips,
        [
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        ]
    );
    let eku = server.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && !eku.client_auth);
    assert_key_matches(dir, "server", &server);

    // Negative cases all claim the gateway identity.
    let gateway = [format!("{SPIFFE_PREFIX}gateway")];

    let untrusted_der = der(&dir.join("clients/untrusted.pem"));
    let untrusted = cert(&untrusted_der);
    assert_ne!(untrusted.issuer(), ca.subject());
    assert!(untrusted.verify_signature(Some(ca_key)).is_err());
    assert_eq!(uris(&untrusted), gateway);
    assert!(is_client_auth(&untrusted));
    assert_key_matches(dir, "clients/untrusted", &untrusted);

    let expired_der = der(&dir.join("clients/expired.pem"));
    let expired = cert(&expired_der);
    assert!(issued_by_ca(&expired));
    assert!(!expired.validity().is_valid(), "expired.pem is valid now");
    assert!(expired.validity().is_valid_at(at(2020)));
    assert!(!expired.validity().is_valid_at(at(2021)));
    assert_eq!(uris(&expired), gateway);
    assert_key_matches(dir, "clients/expired", &expired);

    let revoked_der = der(&dir.join("clients/revoked.pem"));
    let revoked = cert(&revoked_der);
    assert!(issued_by_ca(&revoked));
    assert_eq!(uris(&revoked), gateway);
    assert_key_matches(dir, "clients/revoked", &revoked);

    let crl_der = der(&dir.join("ca.crl.pem"));
    let (_, crl) = x509_parser::parse_x509_crl(&crl_der).unwrap();
    assert_eq!(crl.issuer(), ca.subject());
    crl.verify_signature(ca_key).unwrap();
    let serials: Vec<&[u8]> = crl
        .iter_revoked_certificates()
        .map(|r| r.raw_serial())
        .collect();
    assert_eq!(serials, [revoked.raw_serial()]);
    // Only revoked.pem is revoked.
    for other in [&server, &expired] {
        assert!(!serials.contains(&other.raw_serial()));
    }

    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    assert!(readme.contains("DEV ONLY"));
    assert!(readme.contains("private key"));
    assert!(readme.contains("payhsm pki dev --out keys-sample"));
}

/// Every file under `dir`, relative.
fn files_under(dir: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(path.strip_prefix(dir).unwrap().to_owned());
            }
        }
    }
    out
}

fn expected_files() -> BTreeSet<PathBuf> {
    let mut names: Vec<String> = [
        "ca.pem",
        "ca.crl.pem",
        "README.md",
        "server.pem",
        "server.key",
    ]
    .map(String::from)
    .into();
    for client in CLIENT_NAMES
        .iter()
        .chain(&["untrusted", "expired", "revoked"])
    {
        names.push(format!("clients/{client}.pem"));
        names.push(format!("clients/{client}.key"));
    }
    names.into_iter().map(PathBuf::from).collect()
}

#[test]
fn generated_dev_pki_has_the_promised_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("nested/keys");
    let pki = generate_dev_pki(&out).unwrap();
    assert_eq!(pki.out, out);
    let reported: BTreeSet<PathBuf> = pki.files.iter().cloned().collect();
    assert_eq!(reported, expected_files());
    // Exactly these files: in particular no CA private key.
    assert_eq!(files_under(&out), expected_files());
    assert_dev_pki(&out);
}

#[test]
fn regenerating_replaces_the_ca_and_every_certificate() {
    let dir = tempfile::tempdir().unwrap();
    generate_dev_pki(dir.path()).unwrap();
    let before: Vec<Vec<u8>> = expected_files()
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e != "md"))
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    generate_dev_pki(dir.path()).unwrap();
    let after: Vec<Vec<u8>> = expected_files()
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e != "md"))
        .map(|f| std::fs::read(dir.path().join(f)).unwrap())
        .collect();
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(b, a);
    }
    assert_eq!(files_under(dir.path()), expected_files());
    assert_dev_pki(dir.path());
}

#[cfg(unix)]
#[test]
fn private_keys_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // Even over a world-readable file left by an earlier checkout.
    std::fs::write(dir.path().join("server.key"), "old").unwrap();
    std::fs::set_permissions(
        dir.path().join("server.key"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    generate_dev_pki(dir.path()).unwrap();
    for file in expected_files() {
        let mode = std::fs::metadata(dir.path().join(&file))
            .unwrap()
            .permissions()
            .mode();
        if file.extension().is_some_and(|e| e == "key") {
            assert_eq!(mode & 0o077, 0, "{}", file.display());
        }
    }
}

#[test]
fn committed_keys_sample_is_a_valid_dev_pki() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("keys-sample");
    assert_eq!(files_under(&dir), expected_files());
    assert_dev_pki(&dir);
}
