//! The `[webauthn]` section: relying parties, trust anchors, challenge lifetime, and what a
//! registration must show (user verification, signature algorithms).

use super::file::{err, ConfigError};
use crate::webauthn::cose::CoseAlgorithm;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Signature algorithms by their config name (the JOSE/COSE name). RS1 (SHA-1) is
/// deliberately absent: configuration cannot switch it on.
const ALGORITHMS: [(&str, CoseAlgorithm); 10] = [
    ("ES256", CoseAlgorithm::Es256),
    ("EdDSA", CoseAlgorithm::EdDsa),
    ("ES384", CoseAlgorithm::Es384),
    ("ES512", CoseAlgorithm::Es512),
    ("PS256", CoseAlgorithm::Ps256),
    ("PS384", CoseAlgorithm::Ps384),
    ("PS512", CoseAlgorithm::Ps512),
    ("RS256", CoseAlgorithm::Rs256),
    ("RS384", CoseAlgorithm::Rs384),
    ("RS512", CoseAlgorithm::Rs512),
];

/// The COSE identifier of an algorithm (IANA COSE Algorithms registry), as browsers are given
/// it in `pubKeyCredParams` and as it is stored with a device.
pub fn cose_identifier(alg: CoseAlgorithm) -> i64 {
    match alg {
        CoseAlgorithm::Es256 => -7,
        CoseAlgorithm::EdDsa => -8,
        CoseAlgorithm::Es384 => -35,
        CoseAlgorithm::Es512 => -36,
        CoseAlgorithm::Ps256 => -37,
        CoseAlgorithm::Ps384 => -38,
        CoseAlgorithm::Ps512 => -39,
        CoseAlgorithm::Rs256 => -257,
        CoseAlgorithm::Rs384 => -258,
        CoseAlgorithm::Rs512 => -259,
        CoseAlgorithm::Rs1 => -65535,
    }
}

/// One relying party: the RP ID and the exact origins allowed to run ceremonies for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelyingPartyConfig {
    /// The RP ID (a registrable domain, e.g. `pay.example.com`).
    pub id: String,
    /// Allowed origins, exactly (`https://pay.example.com`).
    pub origins: Vec<String>,
    /// Allowed top-level origins of cross-origin iframes; empty refuses cross-origin.
    pub top_origins: Vec<String>,
    /// The Android apps allowed to enrol `android-key` credentials here (package name and
    /// SHA-256 of its signing certificate); empty: any app.
    pub android_apps: Vec<AndroidApp>,
}

/// An Android app, as its key attestation's attestationApplicationId names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidApp {
    /// The package name, e.g. `com.bank.pay`.
    pub package: String,
    /// SHA-256 of the app's signing certificate.
    pub signature_sha256: [u8; 32],
}

impl AndroidApp {
    /// `PACKAGE:HEX` (64 hex digits), as `payhsmd dev --android-app` takes it.
    pub fn parse(text: &str) -> Option<Self> {
        let (package, hex) = text.split_once(':')?;
        Some(Self {
            package: valid_package(package).then(|| package.to_owned())?,
            signature_sha256: hex32(hex)?,
        })
    }
}

fn valid_package(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 255
        && p.split('.')
            .all(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

fn hex32(hex: &str) -> Option<[u8; 32]> {
    let hex = hex.replace(':', "");
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(hex.as_bytes().chunks(2)) {
        *o = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(out)
}

/// The validated `[webauthn]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnConfig {
    /// Relying parties devices may enrol with; an RP ID not listed is refused.
    pub relying_parties: Vec<RelyingPartyConfig>,
    /// Folder of attestation trust anchors (PEM or DER), read by the daemon at start;
    /// `None`: no anchors, so no attestation is trusted as hardware.
    pub anchors_dir: Option<PathBuf>,
    /// How long an issued challenge can be used.
    pub challenge_ttl: Duration,
    /// How long an issued payment authorization challenge can be used.
    pub authorization_challenge_ttl: Duration,
    /// How long a signed authorization is valid (`exp` - `iat`).
    pub authorization_ttl: Duration,
    /// Registrations and assertions must have UV set.
    pub require_user_verification: bool,
    /// Accepted signature algorithms, in the order offered to browsers.
    pub algorithms: Vec<CoseAlgorithm>,
    /// The FIDO Metadata Service BLOB, when one is configured.
    pub mds: Option<MdsConfig>,
    /// Google's Android attestation revocation list (JSON file), when one is configured;
    /// read at start and again with the MDS BLOB (SIGHUP, the reload interval).
    pub android_revocation_list: Option<PathBuf>,
}

/// What to do with a BLOB past its `nextUpdate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleBlob {
    /// Refuse it: not loaded, and while the loaded one is stale, enrolments that would need
    /// it are refused (`mds_stale`).
    Refuse,
    /// Warn (log and metric) and keep using the last good one.
    Warn,
}

/// The `[webauthn.mds]` section: the FIDO Metadata Service BLOB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MdsConfig {
    /// The BLOB file (compact JWS), as downloaded from the MDS.
    pub blob: PathBuf,
    /// The root its `x5c` chain must reach (PEM or DER).
    pub anchor: PathBuf,
    /// The SHA-256 the anchor file's certificate must have: set for the default anchor
    /// (GlobalSign Root CA - R3 from the system store), `None` for a configured one.
    pub anchor_sha256: Option<[u8; 32]>,
    /// How often the file is read again (SIGHUP reads it at once).
    pub reload_interval: Duration,
    /// A BLOB past its `nextUpdate`.
    pub stale: StaleBlob,
}

/// The root of the production MDS3 BLOB, GlobalSign Root CA - R3, where Debian's
/// ca-certificates puts it.
pub const MDS_PRODUCTION_ROOT: &str = "/etc/ssl/certs/GlobalSign_Root_CA_-_R3.pem";
/// Its SHA-256 fingerprint: the file must hold exactly this certificate.
pub const MDS_PRODUCTION_ROOT_SHA256: [u8; 32] = [
    0xcb, 0xb5, 0x22, 0xd7, 0xb7, 0xf1, 0x27, 0xad, 0x6a, 0x01, 0x13, 0x86, 0x5b, 0xdf, 0x1c, 0xd4,
    0x10, 0x2e, 0x7d, 0x07, 0x59, 0xaf, 0x63, 0x5a, 0x7c, 0xf4, 0x72, 0x0d, 0xc9, 0x63, 0xc5, 0x3b,
];

impl MdsConfig {
    /// `payhsmd dev --mds BLOB [--mds-anchor PEM]`: reloaded hourly, a stale BLOB warns.
    pub fn dev(blob: PathBuf, anchor: Option<PathBuf>) -> Self {
        let anchor_sha256 = anchor.is_none().then_some(MDS_PRODUCTION_ROOT_SHA256);
        Self {
            blob,
            anchor: anchor.unwrap_or_else(|| PathBuf::from(MDS_PRODUCTION_ROOT)),
            anchor_sha256,
            reload_interval: Duration::from_secs(d_mds_reload()),
            stale: StaleBlob::Warn,
        }
    }
}

impl WebauthnConfig {
    /// The configured relying parties as the verifier takes them.
    pub fn verifier_relying_parties(&self) -> Vec<crate::webauthn::registration::RelyingParty> {
        self.relying_parties
            .iter()
            .map(|rp| crate::webauthn::registration::RelyingParty {
                ids: vec![rp.id.clone()],
                origins: rp.origins.clone(),
                top_origins: rp.top_origins.clone(),
            })
            .collect()
    }

    /// Dev mode: relying party `localhost` at `https://localhost`, no anchors (so `none` and
    /// self attestation register with trust none and self), the defaults otherwise.
    pub fn dev() -> Self {
        Self {
            relying_parties: vec![RelyingPartyConfig {
                id: "localhost".to_owned(),
                origins: vec!["https://localhost".to_owned()],
                top_origins: Vec::new(),
                android_apps: Vec::new(),
            }],
            anchors_dir: None,
            challenge_ttl: Duration::from_secs(d_ttl()),
            authorization_challenge_ttl: Duration::from_secs(d_ttl()),
            authorization_ttl: Duration::from_secs(d_authorization_ttl()),
            require_user_verification: true,
            algorithms: vec![CoseAlgorithm::Es256, CoseAlgorithm::EdDsa],
            mds: None,
            android_revocation_list: None,
        }
    }

    /// The relying party with this RP ID.
    pub fn relying_party(&self, id: &str) -> Option<&RelyingPartyConfig> {
        self.relying_parties.iter().find(|rp| rp.id == id)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WebauthnSection {
    #[serde(default)]
    relying_parties: Vec<RelyingPartySection>,
    anchors_dir: Option<PathBuf>,
    #[serde(default = "d_ttl")]
    challenge_ttl_seconds: u64,
    #[serde(default = "d_ttl")]
    authorization_challenge_ttl_seconds: u64,
    #[serde(default = "d_authorization_ttl")]
    authorization_ttl_seconds: u64,
    #[serde(default = "d_true")]
    require_user_verification: bool,
    #[serde(default = "d_algorithms")]
    algorithms: Vec<String>,
    mds: Option<MdsSection>,
    android_revocation_list: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MdsSection {
    blob: PathBuf,
    anchor: Option<PathBuf>,
    #[serde(default = "d_mds_reload")]
    reload_interval_seconds: u64,
    #[serde(default = "d_stale")]
    stale: String,
}

fn d_mds_reload() -> u64 {
    3600
}
fn d_stale() -> String {
    "refuse".to_owned()
}

impl Default for WebauthnSection {
    fn default() -> Self {
        Self {
            relying_parties: Vec::new(),
            anchors_dir: None,
            challenge_ttl_seconds: d_ttl(),
            authorization_challenge_ttl_seconds: d_ttl(),
            authorization_ttl_seconds: d_authorization_ttl(),
            require_user_verification: true,
            algorithms: d_algorithms(),
            mds: None,
            android_revocation_list: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelyingPartySection {
    id: String,
    origins: Vec<String>,
    #[serde(default)]
    top_origins: Vec<String>,
    #[serde(default)]
    android_apps: Vec<AndroidAppSection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AndroidAppSection {
    package: String,
    signature_sha256: String,
}

fn d_ttl() -> u64 {
    120
}
fn d_authorization_ttl() -> u64 {
    300
}
fn d_true() -> bool {
    true
}
fn d_algorithms() -> Vec<String> {
    vec!["ES256".to_owned(), "EdDSA".to_owned()]
}

/// An RP ID: a lowercase DNS name (no scheme, port or path).
fn valid_rp_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 253
        && id.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

/// An origin as browsers serialize it: `https://host[:port]`, nothing after.
fn valid_origin(origin: &str) -> bool {
    let Some(rest) = origin.strip_prefix("https://") else {
        return false;
    };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (rest, None),
    };
    valid_rp_id(host) && port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n != 0))
}

pub(super) fn validate(s: WebauthnSection, base: &Path) -> Result<WebauthnConfig, ConfigError> {
    let mut relying_parties: Vec<RelyingPartyConfig> = Vec::new();
    for (i, rp) in s.relying_parties.into_iter().enumerate() {
        let at = |key: &str| format!("webauthn.relying_parties[{i}].{key}");
        if !valid_rp_id(&rp.id) {
            return Err(err(
                &at("id"),
                "must be a lowercase domain name such as pay.example.com",
            ));
        }
        if relying_parties.iter().any(|r| r.id == rp.id) {
            return Err(err(
                &at("id"),
                format!("relying party {} is listed twice", rp.id),
            ));
        }
        if rp.origins.is_empty() {
            return Err(err(&at("origins"), "list at least one origin"));
        }
        for (key, list) in [("origins", &rp.origins), ("top_origins", &rp.top_origins)] {
            for (j, origin) in list.iter().enumerate() {
                if !valid_origin(origin) {
                    return Err(err(
                        &at(&format!("{key}[{j}]")),
                        "must be an origin like https://pay.example.com (https, no path)",
                    ));
                }
            }
        }
        let mut android_apps = Vec::with_capacity(rp.android_apps.len());
        for (j, app) in rp.android_apps.iter().enumerate() {
            android_apps.push(
                AndroidApp::parse(&format!("{}:{}", app.package, app.signature_sha256))
                    .ok_or_else(|| {
                        err(
                            &at(&format!("android_apps[{j}]")),
                            "needs a package name (com.bank.pay) and signature_sha256, the 64 \
                             hex digits of its signing certificate's SHA-256",
                        )
                    })?,
            );
        }
        relying_parties.push(RelyingPartyConfig {
            id: rp.id,
            origins: rp.origins,
            top_origins: rp.top_origins,
            android_apps,
        });
    }
    if !(10..=3600).contains(&s.challenge_ttl_seconds) {
        return Err(err(
            "webauthn.challenge_ttl_seconds",
            "must be 10 to 3600 seconds",
        ));
    }
    if !(10..=3600).contains(&s.authorization_challenge_ttl_seconds) {
        return Err(err(
            "webauthn.authorization_challenge_ttl_seconds",
            "must be 10 to 3600 seconds",
        ));
    }
    if !(10..=86_400).contains(&s.authorization_ttl_seconds) {
        return Err(err(
            "webauthn.authorization_ttl_seconds",
            "must be 10 to 86400 seconds",
        ));
    }
    if s.algorithms.is_empty() {
        return Err(err("webauthn.algorithms", "list at least one algorithm"));
    }
    let mut algorithms = Vec::with_capacity(s.algorithms.len());
    for (i, name) in s.algorithms.iter().enumerate() {
        let key = format!("webauthn.algorithms[{i}]");
        let alg = ALGORITHMS
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, a)| *a)
            .ok_or_else(|| {
                let known: Vec<&str> = ALGORITHMS.iter().map(|(n, _)| *n).collect();
                err(
                    &key,
                    format!("unknown algorithm; one of {}", known.join(", ")),
                )
            })?;
        if algorithms.contains(&alg) {
            return Err(err(&key, format!("{name} is listed twice")));
        }
        algorithms.push(alg);
    }
    let absolute = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let mds = match s.mds {
        None => None,
        Some(m) => {
            if !(60..=604_800).contains(&m.reload_interval_seconds) {
                return Err(err(
                    "webauthn.mds.reload_interval_seconds",
                    "must be 60 to 604800 seconds",
                ));
            }
            let stale = match m.stale.as_str() {
                "refuse" => StaleBlob::Refuse,
                "warn" => StaleBlob::Warn,
                _ => return Err(err("webauthn.mds.stale", "must be refuse or warn")),
            };
            let anchor_sha256 = m.anchor.is_none().then_some(MDS_PRODUCTION_ROOT_SHA256);
            Some(MdsConfig {
                blob: absolute(m.blob),
                anchor: m
                    .anchor
                    .map_or_else(|| PathBuf::from(MDS_PRODUCTION_ROOT), absolute),
                anchor_sha256,
                reload_interval: Duration::from_secs(m.reload_interval_seconds),
                stale,
            })
        }
    };
    Ok(WebauthnConfig {
        relying_parties,
        anchors_dir: s
            .anchors_dir
            .map(|p| if p.is_absolute() { p } else { base.join(p) }),
        challenge_ttl: Duration::from_secs(s.challenge_ttl_seconds),
        authorization_challenge_ttl: Duration::from_secs(s.authorization_challenge_ttl_seconds),
        authorization_ttl: Duration::from_secs(s.authorization_ttl_seconds),
        require_user_verification: s.require_user_verification,
        algorithms,
        mds,
        android_revocation_list: s.android_revocation_list.map(absolute),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(toml_text: &str) -> Result<WebauthnConfig, ConfigError> {
        let s: WebauthnSection = toml::from_str(toml_text).unwrap();
        validate(s, Path::new("/etc/payhsm"))
    }

    #[test]
    fn the_mds_section_defaults_to_the_pinned_production_root_and_refusing_stale_blobs() {
        let c = section("[mds]\nblob = \"mds/blob.jwt\"\n").unwrap();
        let mds = c.mds.unwrap();
        assert_eq!(mds.blob, Path::new("/etc/payhsm/mds/blob.jwt"));
        assert_eq!(mds.anchor, Path::new(MDS_PRODUCTION_ROOT));
        assert_eq!(mds.anchor_sha256, Some(MDS_PRODUCTION_ROOT_SHA256));
        assert_eq!(mds.reload_interval, Duration::from_secs(3600));
        assert_eq!(mds.stale, StaleBlob::Refuse);
        let c = section(
            "[mds]\nblob = \"/b.jwt\"\nanchor = \"root.pem\"\nstale = \"warn\"\nreload_interval_seconds = 60\n",
        )
        .unwrap();
        let mds = c.mds.unwrap();
        assert_eq!(
            (mds.anchor.as_path(), mds.anchor_sha256, mds.stale),
            (Path::new("/etc/payhsm/root.pem"), None, StaleBlob::Warn)
        );
        for (bad, key) in [
            ("stale = \"ignore\"", "webauthn.mds.stale"),
            (
                "reload_interval_seconds = 5",
                "webauthn.mds.reload_interval_seconds",
            ),
        ] {
            let e = section(&format!("[mds]\nblob = \"b\"\n{bad}\n")).unwrap_err();
            assert_eq!(e.path, key, "{bad}");
        }
        assert!(section("").unwrap().mds.is_none());
        let c = section("android_revocation_list = \"android/status.json\"\n").unwrap();
        assert_eq!(
            c.android_revocation_list.as_deref(),
            Some(Path::new("/etc/payhsm/android/status.json"))
        );
    }

    #[test]
    fn android_apps_name_a_package_and_its_signing_certificate_digest() {
        let rp = |apps: &str| {
            section(&format!(
                "[[relying_parties]]\nid = \"pay.example.com\"\norigins = [\"https://pay.example.com\"]\nandroid_apps = {apps}\n"
            ))
        };
        let c = rp(&format!(
            "[{{ package = \"com.bank.pay\", signature_sha256 = \"{}\" }}]",
            "5A".repeat(32)
        ))
        .unwrap();
        assert_eq!(
            c.relying_parties[0].android_apps,
            [AndroidApp {
                package: "com.bank.pay".into(),
                signature_sha256: [0x5a; 32]
            }]
        );
        for bad in [
            "[{ package = \"com.bank.pay\", signature_sha256 = \"5a\" }]",
            "[{ package = \"com bank\", signature_sha256 = \"5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a\" }]",
        ] {
            let e = rp(bad).unwrap_err();
            assert_eq!(e.path, "webauthn.relying_parties[0].android_apps[0]", "{bad}");
        }
        assert_eq!(AndroidApp::parse("com.x:zz"), None);
    }

    #[test]
    fn defaults_are_es256_eddsa_uv_required_two_minutes() {
        let c = section("").unwrap();
        assert!(c.relying_parties.is_empty());
        assert_eq!(c.challenge_ttl, Duration::from_secs(120));
        assert_eq!(c.authorization_challenge_ttl, Duration::from_secs(120));
        assert_eq!(c.authorization_ttl, Duration::from_secs(300));
        assert!(c.require_user_verification);
        assert_eq!(c.algorithms, [CoseAlgorithm::Es256, CoseAlgorithm::EdDsa]);
        assert_eq!(c.anchors_dir, None);
    }

    #[test]
    fn relying_parties_and_anchors_dir_resolve() {
        let c = section(
            r#"anchors_dir = "anchors"
               algorithms = ["ES256", "RS256"]
               [[relying_parties]]
               id = "pay.example.com"
               origins = ["https://pay.example.com", "https://checkout.example.com:8443"]
               top_origins = ["https://shop.example"]"#,
        )
        .unwrap();
        assert_eq!(c.anchors_dir, Some(PathBuf::from("/etc/payhsm/anchors")));
        let rp = c.relying_party("pay.example.com").unwrap();
        assert_eq!(rp.origins.len(), 2);
        assert_eq!(rp.top_origins, ["https://shop.example"]);
        assert_eq!(c.algorithms, [CoseAlgorithm::Es256, CoseAlgorithm::Rs256]);
        assert!(c.relying_party("example.com").is_none());
    }

    #[test]
    fn errors_name_the_key_path() {
        let rp = |id: &str, origin: &str| {
            format!("[[relying_parties]]\nid = \"{id}\"\norigins = [\"{origin}\"]\n")
        };
        for (text, path) in [
            (
                rp("https://x.com", "https://x.com"),
                "webauthn.relying_parties[0].id",
            ),
            (
                rp("X.com", "https://x.com"),
                "webauthn.relying_parties[0].id",
            ),
            (
                rp("x.com", "http://x.com"),
                "webauthn.relying_parties[0].origins[0]",
            ),
            (
                rp("x.com", "https://x.com/pay"),
                "webauthn.relying_parties[0].origins[0]",
            ),
            (
                format!(
                    "{}{}",
                    rp("x.com", "https://x.com"),
                    rp("x.com", "https://x.com")
                ),
                "webauthn.relying_parties[1].id",
            ),
            (
                "challenge_ttl_seconds = 5".to_owned(),
                "webauthn.challenge_ttl_seconds",
            ),
            ("algorithms = []".to_owned(), "webauthn.algorithms"),
            (
                "algorithms = [\"ES256\", \"RS1\"]".to_owned(),
                "webauthn.algorithms[1]",
            ),
            (
                "algorithms = [\"ES256\", \"ES256\"]".to_owned(),
                "webauthn.algorithms[1]",
            ),
        ] {
            assert_eq!(section(&text).unwrap_err().path, path, "{text}");
        }
        let no_origins = "[[relying_parties]]\nid = \"x.com\"\norigins = []\n";
        assert_eq!(
            section(no_origins).unwrap_err().path,
            "webauthn.relying_parties[0].origins"
        );
    }

    #[test]
    fn dev_mode_has_localhost_and_no_anchors() {
        let c = WebauthnConfig::dev();
        let rp = c.relying_party("localhost").unwrap();
        assert_eq!(rp.origins, ["https://localhost"]);
        assert_eq!(c.anchors_dir, None);
        assert_eq!(cose_identifier(CoseAlgorithm::Es256), -7);
        assert_eq!(cose_identifier(CoseAlgorithm::EdDsa), -8);
    }
}
