//! The TOML file format and its validation.

use super::{defaults, Config, PinSource, Pkcs11Config, ServerConfig};
use crate::card::TokenFormat;
use crate::telemetry::LogFormat;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration that could not be loaded; names the key path.
#[derive(Debug)]
pub struct ConfigError {
    /// The key path (`server.listen`), or empty for the file as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "config: {}", self.message)
        } else {
            write!(f, "config key `{}`: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

pub(super) fn err(path: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        path: path.to_owned(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    server: ServerSection,
    tls: TlsSection,
    pkcs11: Pkcs11Section,
    store: StoreSection,
    policy: PolicySection,
    #[serde(default)]
    tokens: TokensSection,
    #[serde(default)]
    log: LogSection,
    #[serde(default)]
    webauthn: super::webauthn::WebauthnSection,
    #[serde(default)]
    keys: KeysSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeysSection {
    #[serde(default = "d_approval_window_secs")]
    approval_window_secs: u64,
    #[serde(default = "d_cryptoperiod_days")]
    data_key_cryptoperiod_days: u64,
    #[serde(default = "d_cryptoperiod_days")]
    signing_key_cryptoperiod_days: u64,
    #[serde(default = "d_publish_lead_secs")]
    signing_key_publish_lead_secs: u64,
}

impl Default for KeysSection {
    fn default() -> Self {
        Self {
            approval_window_secs: d_approval_window_secs(),
            data_key_cryptoperiod_days: d_cryptoperiod_days(),
            signing_key_cryptoperiod_days: d_cryptoperiod_days(),
            signing_key_publish_lead_secs: d_publish_lead_secs(),
        }
    }
}

fn d_approval_window_secs() -> u64 {
    900
}
fn d_cryptoperiod_days() -> u64 {
    365
}
fn d_publish_lead_secs() -> u64 {
    300
}

/// Checks the `[keys]` section.
fn validate_keys(k: &KeysSection) -> Result<super::KeysConfig, ConfigError> {
    const DAY: u64 = 24 * 60 * 60;
    if !(10..=86_400).contains(&k.approval_window_secs) {
        return Err(err(
            "keys.approval_window_secs",
            "must be 10 to 86400 seconds",
        ));
    }
    for (key, days) in [
        (
            "keys.data_key_cryptoperiod_days",
            k.data_key_cryptoperiod_days,
        ),
        (
            "keys.signing_key_cryptoperiod_days",
            k.signing_key_cryptoperiod_days,
        ),
    ] {
        if !(1..=3650).contains(&days) {
            return Err(err(key, "must be 1 to 3650 days"));
        }
    }
    if k.signing_key_publish_lead_secs > 7 * DAY {
        return Err(err(
            "keys.signing_key_publish_lead_secs",
            "must be at most 604800 seconds",
        ));
    }
    Ok(super::KeysConfig {
        approval_window: Duration::from_secs(k.approval_window_secs),
        data_key_cryptoperiod: Duration::from_secs(k.data_key_cryptoperiod_days * DAY),
        signing_key_cryptoperiod: Duration::from_secs(k.signing_key_cryptoperiod_days * DAY),
        signing_key_publish_lead: Duration::from_secs(k.signing_key_publish_lead_secs),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    listen: String,
    #[serde(default = "d_max_connections")]
    max_connections: usize,
    #[serde(default = "d_timeout_ms")]
    handshake_timeout_ms: u64,
    #[serde(default = "d_timeout_ms")]
    header_timeout_ms: u64,
    #[serde(default = "d_timeout_ms")]
    body_timeout_ms: u64,
    #[serde(default = "d_drain_ms")]
    drain_timeout_ms: u64,
    #[serde(default = "d_max_body")]
    max_body_bytes: usize,
}

fn d_max_connections() -> usize {
    4096
}
fn d_timeout_ms() -> u64 {
    10_000
}
fn d_drain_ms() -> u64 {
    30_000
}
fn d_max_body() -> usize {
    16 * 1024
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    #[serde(default)]
    crls: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pkcs11Section {
    #[serde(default = "d_module")]
    module: PathBuf,
    token_label: String,
    pin_env: Option<String>,
    pin_file: Option<PathBuf>,
    #[serde(default = "d_sessions")]
    sessions: usize,
    #[serde(default = "d_kek")]
    kek_label: String,
    #[serde(default = "d_audit_key")]
    audit_key_label: String,
    #[serde(default = "d_authz_key")]
    authz_key_label: String,
    softhsm2_conf: Option<PathBuf>,
}

fn d_module() -> PathBuf {
    PathBuf::from(defaults::PKCS11_MODULE)
}
fn d_sessions() -> usize {
    2
}
fn d_kek() -> String {
    defaults::KEK_LABEL.to_owned()
}
fn d_audit_key() -> String {
    defaults::AUDIT_KEY_LABEL.to_owned()
}
fn d_authz_key() -> String {
    defaults::AUTHZ_KEY_LABEL.to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoreSection {
    sqlite_path: PathBuf,
    #[serde(default = "d_token_cache_rows")]
    token_cache_rows: usize,
}

fn d_token_cache_rows() -> usize {
    defaults::TOKEN_CACHE_ROWS
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicySection {
    dir: PathBuf,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensSection {
    #[serde(default = "d_keep_first")]
    keep_first: u8,
    #[serde(default = "d_keep_last")]
    keep_last: u8,
}

impl Default for TokensSection {
    fn default() -> Self {
        Self {
            keep_first: d_keep_first(),
            keep_last: d_keep_last(),
        }
    }
}

fn d_keep_first() -> u8 {
    6
}
fn d_keep_last() -> u8 {
    4
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogSection {
    #[serde(default = "d_log_format")]
    format: String,
    #[serde(default = "d_log_filter")]
    filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: d_log_format(),
            filter: d_log_filter(),
        }
    }
}

fn d_log_format() -> String {
    "json".to_owned()
}
fn d_log_filter() -> String {
    "info".to_owned()
}

pub(super) fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base)
}

pub(super) fn parse(text: &str, base: &Path) -> Result<Config, ConfigError> {
    let de = toml::Deserializer::parse(text).map_err(|e| err("", e.to_string()))?;
    let file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        err(if path == "." { "" } else { &path }, e.inner().to_string())
    })?;
    validate(file, base)
}

fn validate(f: FileConfig, base: &Path) -> Result<Config, ConfigError> {
    let abs = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
    let listen = f
        .server
        .listen
        .parse()
        .map_err(|_| err("server.listen", "expected an address like 127.0.0.1:8443"))?;
    if f.server.max_connections == 0 {
        return Err(err("server.max_connections", "must be at least 1"));
    }
    if !(256..=1024 * 1024).contains(&f.server.max_body_bytes) {
        return Err(err("server.max_body_bytes", "must be 256 to 1048576"));
    }
    for (key, v) in [
        ("server.handshake_timeout_ms", f.server.handshake_timeout_ms),
        ("server.header_timeout_ms", f.server.header_timeout_ms),
        ("server.body_timeout_ms", f.server.body_timeout_ms),
        ("server.drain_timeout_ms", f.server.drain_timeout_ms),
    ] {
        if !(1..=600_000).contains(&v) {
            return Err(err(key, "must be 1 to 600000 milliseconds"));
        }
    }
    let pin = match (f.pkcs11.pin_env, f.pkcs11.pin_file) {
        (Some(v), None) if !v.is_empty() => PinSource::Env(v),
        (None, Some(p)) => PinSource::File(abs(p)),
        (Some(_), Some(_)) => {
            return Err(err("pkcs11.pin_env", "give pin_env or pin_file, not both"))
        }
        _ => return Err(err("pkcs11.pin_env", "give pin_env or pin_file")),
    };
    if f.pkcs11.token_label.is_empty() || f.pkcs11.token_label.len() > 32 {
        return Err(err("pkcs11.token_label", "must be 1 to 32 bytes"));
    }
    if !(1..=64).contains(&f.pkcs11.sessions) {
        return Err(err("pkcs11.sessions", "must be 1 to 64"));
    }
    let token_format =
        TokenFormat::new(f.tokens.keep_first, f.tokens.keep_last).ok_or_else(|| {
            err(
                "tokens.keep_last",
                "keep_first + keep_last must leave at least 3 random digits of a 13-digit PAN",
            )
        })?;
    let log_format = match f.log.format.as_str() {
        "json" => LogFormat::Json,
        "text" => LogFormat::Text,
        _ => return Err(err("log.format", "must be \"json\" or \"text\"")),
    };
    let webauthn = super::webauthn::validate(f.webauthn, base)?;
    let keys = validate_keys(&f.keys)?;
    Ok(Config {
        server: ServerConfig {
            listen,
            cert: abs(f.tls.cert),
            key: abs(f.tls.key),
            client_ca: abs(f.tls.client_ca),
            crls: f.tls.crls.into_iter().map(abs).collect(),
            max_connections: f.server.max_connections,
            handshake_timeout: Duration::from_millis(f.server.handshake_timeout_ms),
            header_timeout: Duration::from_millis(f.server.header_timeout_ms),
            body_timeout: Duration::from_millis(f.server.body_timeout_ms),
            drain_timeout: Duration::from_millis(f.server.drain_timeout_ms),
            max_body_bytes: f.server.max_body_bytes,
        },
        pkcs11: Pkcs11Config {
            module: abs(f.pkcs11.module),
            token_label: f.pkcs11.token_label,
            pin,
            sessions: f.pkcs11.sessions,
            kek_label: f.pkcs11.kek_label,
            audit_key_label: f.pkcs11.audit_key_label,
            authz_key_label: f.pkcs11.authz_key_label,
            softhsm2_conf: f.pkcs11.softhsm2_conf.map(abs),
        },
        sqlite_path: abs(f.store.sqlite_path),
        token_cache_rows: f.store.token_cache_rows,
        policy_dir: abs(f.policy.dir),
        token_format,
        log_format,
        log_filter: f.log.filter,
        webauthn,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[server]
listen = "127.0.0.1:8443"
[tls]
cert = "keys/server.pem"
key = "keys/server.key"
client_ca = "keys/ca.pem"
[pkcs11]
token_label = "payhsm"
pin_env = "PAYHSM_PIN"
[store]
sqlite_path = "/var/lib/payhsm/payhsm.db"
[policy]
dir = "policies"
"#;

    #[test]
    fn a_minimal_file_validates_with_defaults() {
        let c = parse(GOOD, Path::new("/etc/payhsm")).unwrap();
        assert_eq!(c.server.cert, Path::new("/etc/payhsm/keys/server.pem"));
        assert_eq!(c.server.max_body_bytes, 16 * 1024);
        assert_eq!(c.pkcs11.pin, PinSource::Env("PAYHSM_PIN".into()));
        assert_eq!(c.sqlite_path, Path::new("/var/lib/payhsm/payhsm.db"));
        assert_eq!(c.token_cache_rows, defaults::TOKEN_CACHE_ROWS);
        let none = GOOD.replace(
            "sqlite_path = \"/var/lib/payhsm/payhsm.db\"",
            "sqlite_path = \"/var/lib/payhsm/payhsm.db\"\ntoken_cache_rows = 0",
        );
        assert_eq!(parse(&none, Path::new("/")).unwrap().token_cache_rows, 0);
    }

    #[test]
    fn errors_name_the_key_path() {
        let bad = GOOD.replace("127.0.0.1:8443", "nowhere");
        assert_eq!(
            parse(&bad, Path::new("/")).unwrap_err().path,
            "server.listen"
        );
        let bad = GOOD.replace("[policy]", "[policy]\ncolour = 1");
        let e = parse(&bad, Path::new("/")).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let bad = GOOD.replace("pin_env = \"PAYHSM_PIN\"", "sessions = \"two\"");
        assert_eq!(
            parse(&bad, Path::new("/")).unwrap_err().path,
            "pkcs11.sessions"
        );
        let bad = format!("{GOOD}[tokens]\nkeep_first = 8\nkeep_last = 4\n");
        assert_eq!(
            parse(&bad, Path::new("/")).unwrap_err().path,
            "tokens.keep_last"
        );
    }

    #[test]
    fn example_file_in_docs_is_valid() {
        let text = include_str!("../../docs/payhsmd.example.toml");
        parse(text, Path::new("/etc/payhsm")).unwrap();
    }
}
