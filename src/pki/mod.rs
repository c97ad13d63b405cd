//! The dev PKI (`payhsm pki dev --out keys-sample`): a throwaway CA, a server certificate and
//! one client certificate per sample identity, plus the negative cases the mTLS tests need
//! (a certificate from another CA, an expired one, a revoked one and the CRL that revokes it).
//!
//! DEV ONLY. The private keys written here are meant to be committed and are therefore public.
//! The CA private key itself is never written: it is dropped once everything is signed, so a
//! new certificate needs a full regeneration.

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertificateRevocationListParams,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, RevocationReason, RevokedCertParams, SanType, SerialNumber,
};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use time::OffsetDateTime;

/// The sample client identities; each gets `clients/<name>.pem` and `.key` with the URI SAN
/// [`SPIFFE_PREFIX`]`<name>`, matching `policies/identities.toml`.
pub const CLIENT_NAMES: [&str; 7] = [
    "gateway",
    "vault-reader",
    "auditor",
    "monitoring",
    "custodian-1",
    "custodian-2",
    "custodian-3",
];

/// The URI SAN prefix of every dev client identity.
pub const SPIFFE_PREFIX: &str = "spiffe://payhsm.dev/";

/// The subject CN of the dev CA.
pub const DEV_CA_NAME: &str = "payhsm dev CA \u{2014} DEV ONLY, NOT FOR PRODUCTION";

/// The identity the negative certificates (untrusted, expired, revoked) claim: the gateway,
/// so a test that lets one through would be *allowed* by the policy and fail loudly.
pub const NEGATIVE_CASE_IDENTITY: &str = "gateway";

const README: &str = include_str!("dev-readme.md");

/// What [`generate_dev_pki`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DevPki {
    /// The output folder.
    pub out: PathBuf,
    /// Every file written, relative to `out`, in writing order.
    pub files: Vec<PathBuf>,
}

/// Generating or writing the dev PKI failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum PkiError {
    /// Key generation, certificate or CRL signing failed.
    #[non_exhaustive]
    Generate {
        /// Which item was being made.
        what: String,
        /// The cause.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file or folder could not be written.
    #[non_exhaustive]
    Write {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Generate { what, source } => write!(f, "dev PKI: cannot make {what}: {source}"),
            Self::Write { path, source } => {
                write!(f, "dev PKI: cannot write {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for PkiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Generate { source, .. } => Some(source.as_ref()),
            Self::Write { source, .. } => Some(source),
        }
    }
}

fn generate_err<E>(what: &str) -> impl FnOnce(E) -> PkiError + '_
where
    E: std::error::Error + Send + Sync + 'static,
{
    move |e| PkiError::Generate {
        what: what.to_owned(),
        source: Box::new(e),
    }
}

/// Validity of everything current: 2026-01-01 to 2036-01-01.
fn dev_validity() -> (OffsetDateTime, OffsetDateTime) {
    (date_time_ymd(2026, 1, 1), date_time_ymd(2036, 1, 1))
}

/// A random positive 128-bit serial (RFC 5280 §4.1.2.2: unique per CA, at most 20 octets).
fn random_serial(what: &str) -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| std::io::Error::other(format!("system random: {e}")))
        .map_err(generate_err(what))?;
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x01;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

fn ca_params(common_name: &str) -> Result<CertificateParams, PkiError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "payhsm dev");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (params.not_before, params.not_after) = dev_validity();
    params.serial_number = Some(random_serial(common_name)?);
    Ok(params)
}

/// One end-entity certificate to make.
struct Leaf {
    /// File stem under the output folder, e.g. `clients/gateway`.
    file: String,
    common_name: String,
    subject_alt_names: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    validity: (OffsetDateTime, OffsetDateTime),
}

impl Leaf {
    /// A client certificate `clients/<file>` with CN `common_name` and the URI SAN of
    /// `identity`.
    fn client(file: &str, common_name: &str, identity: &str) -> Result<Self, PkiError> {
        let uri = format!("{SPIFFE_PREFIX}{identity}");
        let san = uri.try_into().map_err(generate_err(file))?;
        Ok(Self {
            file: format!("clients/{file}"),
            common_name: common_name.to_owned(),
            subject_alt_names: vec![SanType::URI(san)],
            usage: ExtendedKeyUsagePurpose::ClientAuth,
            validity: dev_validity(),
        })
    }

    fn server() -> Result<Self, PkiError> {
        let dns = "localhost".try_into().map_err(generate_err("server"))?;
        Ok(Self {
            file: "server".to_owned(),
            common_name: "localhost".to_owned(),
            subject_alt_names: vec![
                SanType::DnsName(dns),
                SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            ],
            usage: ExtendedKeyUsagePurpose::ServerAuth,
            validity: dev_validity(),
        })
    }

    /// Makes a fresh key and signs the certificate: returns (serial, cert PEM, key PEM).
    fn issue(&self, issuer: &Issuer<'_, KeyPair>) -> Result<Issued, PkiError> {
        let what = self.file.as_str();
        let key = KeyPair::generate().map_err(generate_err(what))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "payhsm dev");
        dn.push(DnType::CommonName, self.common_name.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = self.subject_alt_names.clone();
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![self.usage.clone()];
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = self.validity;
        let serial = random_serial(what)?;
        params.serial_number = Some(serial.clone());
        let cert = params.signed_by(&key, issuer).map_err(generate_err(what))?;
        Ok(Issued {
            serial,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

struct Issued {
    serial: SerialNumber,
    cert_pem: String,
    key_pem: String,
}

/// Writes files under the output folder and remembers them.
struct Writer {
    out: PathBuf,
    files: Vec<PathBuf>,
}

impl Writer {
    fn write(&mut self, relative: &str, contents: &str, private_key: bool) -> Result<(), PkiError> {
        let path = self.out.join(relative);
        let err = |source| PkiError::Write {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private_key {
            // Public dev keys, but keep the habit: keys are owner-only, also when an older
            // file (e.g. checked out by git as 0644) is overwritten.
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        }
        let mut file = options.open(&path).map_err(err)?;
        #[cfg(unix)]
        if private_key {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(err)?;
        }
        #[cfg(not(unix))]
        let _ = private_key;
        std::io::Write::write_all(&mut file, contents.as_bytes()).map_err(err)?;
        self.files.push(PathBuf::from(relative));
        Ok(())
    }

    fn write_issued(&mut self, file: &str, issued: &Issued) -> Result<(), PkiError> {
        self.write(&format!("{file}.pem"), &issued.cert_pem, false)?;
        self.write(&format!("{file}.key"), &issued.key_pem, true)
    }
}

/// Generates a fresh dev PKI into `out` (created if needed), replacing the files of any
/// earlier run:
///
/// - `ca.pem`: the self-signed dev CA ([`DEV_CA_NAME`], ECDSA P-256), its key not written;
/// - `server.pem`/`.key`: `localhost`, `127.0.0.1`, `::1`, serverAuth;
/// - `clients/<name>.pem`/`.key` for each of [`CLIENT_NAMES`]: CN `<name>`, URI SAN
///   [`SPIFFE_PREFIX`]`<name>`, clientAuth;
/// - `clients/untrusted`, `clients/expired` (2020-01-01..2021-01-01), `clients/revoked`:
///   client certificates claiming [`NEGATIVE_CASE_IDENTITY`], signed respectively by a
///   throwaway CA that is not written, by the dev CA, and by the dev CA but revoked;
/// - `ca.crl.pem`: the dev CA's CRL revoking `clients/revoked`;
/// - `README.md`: DEV ONLY, what each file is.
///
/// All validity periods other than `expired` are 2026-01-01..2036-01-01. Keys are PKCS#8 PEM.
pub fn generate_dev_pki(out: &Path) -> Result<DevPki, PkiError> {
    let mut writer = Writer {
        out: out.to_owned(),
        files: Vec::new(),
    };

    let ca_key = KeyPair::generate().map_err(generate_err("dev CA key"))?;
    let ca = ca_params(DEV_CA_NAME)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(generate_err("dev CA"))?;
    writer.write("ca.pem", &ca_cert.pem(), false)?;
    // From here the CA key lives only inside `issuer`, dropped at the end of this function.
    let issuer = Issuer::new(ca, ca_key);

    writer.write_issued("server", &Leaf::server()?.issue(&issuer)?)?;
    for name in CLIENT_NAMES {
        let leaf = Leaf::client(name, name, name)?;
        writer.write_issued(&leaf.file, &leaf.issue(&issuer)?)?;
    }

    // Negative cases, all claiming the gateway identity.
    {
        let other_key = KeyPair::generate().map_err(generate_err("untrusted CA key"))?;
        let other = ca_params("payhsm untrusted throwaway CA \u{2014} not written anywhere")?;
        let other_issuer = Issuer::new(other, other_key);
        let leaf = Leaf::client("untrusted", "untrusted", NEGATIVE_CASE_IDENTITY)?;
        writer.write_issued(&leaf.file, &leaf.issue(&other_issuer)?)?;
    }
    let mut expired = Leaf::client("expired", "expired", NEGATIVE_CASE_IDENTITY)?;
    expired.validity = (date_time_ymd(2020, 1, 1), date_time_ymd(2021, 1, 1));
    writer.write_issued(&expired.file, &expired.issue(&issuer)?)?;

    let revoked = Leaf::client("revoked", "revoked", NEGATIVE_CASE_IDENTITY)?;
    let revoked_issued = revoked.issue(&issuer)?;
    writer.write_issued(&revoked.file, &revoked_issued)?;
    let (this_update, next_update) = dev_validity();
    let crl = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: revoked_issued.serial,
            revocation_time: this_update,
            reason_code: Some(RevocationReason::KeyCompromise),
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .map_err(generate_err("CRL"))?;
    writer.write(
        "ca.crl.pem",
        &crl.pem().map_err(generate_err("CRL PEM"))?,
        false,
    )?;

    writer.write("README.md", README, false)?;
    drop(issuer);
    Ok(DevPki {
        out: writer.out,
        files: writer.files,
    })
}
