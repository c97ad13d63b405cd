//! The TOML file format and its validation.

use super::{
    defaults, Config, PinSource, Pkcs11Config, PostgresConfig, SecretSource, ServerConfig,
    StoreConfig,
};
use crate::card::TokenFormat;
use crate::telemetry::LogFormat;
use crate::transport::ServerLimits;
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
    #[serde(default)]
    audit: AuditSection,
    #[serde(default)]
    isolation: IsolationSection,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IsolationSection {
    #[serde(default = "d_true")]
    enabled: bool,
    #[serde(default = "d_seccomp")]
    seccomp: String,
    #[serde(default)]
    read_write: Vec<PathBuf>,
    #[serde(default)]
    read_only: Vec<PathBuf>,
}

impl Default for IsolationSection {
    fn default() -> Self {
        Self {
            enabled: true,
            seccomp: d_seccomp(),
            read_write: Vec::new(),
            read_only: Vec::new(),
        }
    }
}

fn d_true() -> bool {
    true
}
fn d_seccomp() -> String {
    "enforce".to_owned()
}

/// Checks the `[isolation]` section.
fn validate_isolation(
    i: IsolationSection,
    abs: &impl Fn(PathBuf) -> PathBuf,
) -> Result<super::IsolationConfig, ConfigError> {
    use crate::isolation::confine::SeccompMode;
    let seccomp = match i.seccomp.as_str() {
        "enforce" => SeccompMode::Enforce,
        "log" => SeccompMode::LogOnly,
        _ => {
            return Err(err(
                "isolation.seccomp",
                "must be \"enforce\" or \"log\" (disable isolation with enabled = false)",
            ))
        }
    };
    Ok(super::IsolationConfig {
        seccomp: if i.enabled { seccomp } else { SeccompMode::Off },
        read_write: i.read_write.into_iter().map(abs).collect(),
        read_only: i.read_only.into_iter().map(abs).collect(),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditSection {
    #[serde(default = "d_tree_head_every_records")]
    tree_head_every_records: u64,
    #[serde(default = "d_tree_head_interval_secs")]
    tree_head_interval_secs: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self {
            tree_head_every_records: d_tree_head_every_records(),
            tree_head_interval_secs: d_tree_head_interval_secs(),
        }
    }
}

fn d_tree_head_every_records() -> u64 {
    super::AuditConfig::default().tree_head_every_records
}
fn d_tree_head_interval_secs() -> u64 {
    super::AuditConfig::default().tree_head_interval.as_secs()
}

/// Checks the `[audit]` section.
fn validate_audit(a: &AuditSection) -> Result<super::AuditConfig, ConfigError> {
    if !(1..=1_000_000).contains(&a.tree_head_every_records) {
        return Err(err(
            "audit.tree_head_every_records",
            "must be 1 to 1000000 records",
        ));
    }
    if !(1..=86_400).contains(&a.tree_head_interval_secs) {
        return Err(err(
            "audit.tree_head_interval_secs",
            "must be 1 to 86400 seconds",
        ));
    }
    Ok(super::AuditConfig {
        tree_head_every_records: a.tree_head_every_records,
        tree_head_interval: Duration::from_secs(a.tree_head_interval_secs),
    })
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
    max_connections: Option<usize>,
    max_connections_per_identity: Option<usize>,
    max_connections_per_address: Option<usize>,
    max_handshakes: Option<usize>,
    max_handshakes_per_address: Option<usize>,
    handshake_timeout_ms: Option<u64>,
    header_timeout_ms: Option<u64>,
    write_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    drain_timeout_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_batch_body_bytes: Option<usize>,
}

/// The `[server]` limits, each from the file or the default; every bad value names its key.
fn validate_limits(s: &ServerSection) -> Result<ServerLimits, ConfigError> {
    let d = ServerLimits::default();
    let count = |key: &str, v: Option<usize>, default: usize| match v {
        None => Ok(default),
        Some(n) if (1..=1_000_000).contains(&n) => Ok(n),
        Some(_) => Err(err(key, "must be 1 to 1000000")),
    };
    let ms = |key: &str, v: Option<u64>, default: Duration| match v {
        None => Ok(default),
        Some(n) if (1..=600_000).contains(&n) => Ok(Duration::from_millis(n)),
        Some(_) => Err(err(key, "must be 1 to 600000 milliseconds")),
    };
    let max_body_bytes = s.max_body_bytes.unwrap_or(d.max_body_bytes);
    if !(256..=1024 * 1024).contains(&max_body_bytes) {
        return Err(err("server.max_body_bytes", "must be 256 to 1048576"));
    }
    let max_batch_body_bytes = s.max_batch_body_bytes.unwrap_or(d.max_batch_body_bytes);
    if !(256..=16 * 1024 * 1024).contains(&max_batch_body_bytes) {
        return Err(err(
            "server.max_batch_body_bytes",
            "must be 256 to 16777216",
        ));
    }
    Ok(ServerLimits {
        max_connections: count(
            "server.max_connections",
            s.max_connections,
            d.max_connections,
        )?,
        max_connections_per_identity: count(
            "server.max_connections_per_identity",
            s.max_connections_per_identity,
            d.max_connections_per_identity,
        )?,
        max_connections_per_address: count(
            "server.max_connections_per_address",
            s.max_connections_per_address,
            d.max_connections_per_address,
        )?,
        max_handshakes: count("server.max_handshakes", s.max_handshakes, d.max_handshakes)?,
        max_handshakes_per_address: count(
            "server.max_handshakes_per_address",
            s.max_handshakes_per_address,
            d.max_handshakes_per_address,
        )?,
        handshake_timeout: ms(
            "server.handshake_timeout_ms",
            s.handshake_timeout_ms,
            d.handshake_timeout,
        )?,
        header_timeout: ms(
            "server.header_timeout_ms",
            s.header_timeout_ms,
            d.header_timeout,
        )?,
        write_timeout: ms(
            "server.write_timeout_ms",
            s.write_timeout_ms,
            d.write_timeout,
        )?,
        body_timeout: ms("server.body_timeout_ms", s.body_timeout_ms, d.body_timeout)?,
        drain_timeout: ms(
            "server.drain_timeout_ms",
            s.drain_timeout_ms,
            d.drain_timeout,
        )?,
        max_body_bytes,
        max_batch_body_bytes,
    })
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
    #[serde(default = "d_store_kind")]
    kind: String,
    sqlite_path: Option<PathBuf>,
    #[serde(default = "d_token_cache_rows")]
    token_cache_rows: usize,
    postgres: Option<PostgresSection>,
}

fn d_store_kind() -> String {
    "sqlite".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PostgresSection {
    url: String,
    password_env: Option<String>,
    password_file: Option<PathBuf>,
    #[serde(default = "d_sslmode")]
    sslmode: String,
    ca_file: Option<PathBuf>,
    #[serde(default = "d_pool_size")]
    pool_size: usize,
    #[serde(default = "d_pg_connect_timeout_ms")]
    connect_timeout_ms: u64,
    #[serde(default = "d_pg_statement_timeout_ms")]
    statement_timeout_ms: u64,
    #[serde(default = "d_pg_max_batch")]
    max_batch: usize,
}

fn d_sslmode() -> String {
    "verify-full".to_owned()
}
fn d_pool_size() -> usize {
    defaults::PG_POOL_SIZE
}
fn d_pg_connect_timeout_ms() -> u64 {
    defaults::PG_CONNECT_TIMEOUT_MS
}
fn d_pg_statement_timeout_ms() -> u64 {
    defaults::PG_STATEMENT_TIMEOUT_MS
}
fn d_pg_max_batch() -> usize {
    defaults::PG_MAX_BATCH
}

/// Checks the shape of `postgres://user@host[:port]/database[?options]` and says whether the
/// host is a loopback address. A password in the URL is refused: it would sit in the config.
pub(super) fn postgres_url_loopback(url: &str) -> Result<bool, &'static str> {
    const SHAPE: &str = "expected postgres://user@host[:port]/database";
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .ok_or(SHAPE)?;
    let (authority, path) = rest.split_once('/').ok_or(SHAPE)?;
    let database = path.split('?').next().unwrap_or_default();
    if database.is_empty() {
        return Err(SHAPE);
    }
    let (user, host_port) = authority.rsplit_once('@').ok_or(SHAPE)?;
    if user.contains(':') {
        return Err("a password in the URL is never read: use password_env or password_file");
    }
    if user.is_empty() {
        return Err(SHAPE);
    }
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).ok_or(SHAPE)?,
        None => host_port.split(':').next().unwrap_or_default(),
    };
    if host.is_empty() {
        return Err(SHAPE);
    }
    Ok(host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()))
}

/// The `[store]` section: `kind = "sqlite"` (the default) with `sqlite_path`, or `kind =
/// "postgres"` with `[store.postgres]`.
fn validate_store(
    s: StoreSection,
    abs: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<StoreConfig, ConfigError> {
    match s.kind.as_str() {
        "sqlite" => {
            if s.postgres.is_some() {
                return Err(err("store.postgres", "only with kind = \"postgres\""));
            }
            let path = s
                .sqlite_path
                .ok_or_else(|| err("store.sqlite_path", "required with kind = \"sqlite\""))?;
            Ok(StoreConfig::Sqlite {
                path: abs(path),
                token_cache_rows: s.token_cache_rows,
            })
        }
        "postgres" => {
            if s.sqlite_path.is_some() {
                return Err(err("store.sqlite_path", "only with kind = \"sqlite\""));
            }
            let p = s
                .postgres
                .ok_or_else(|| err("store.postgres", "required with kind = \"postgres\""))?;
            validate_postgres(p, abs).map(StoreConfig::Postgres)
        }
        _ => Err(err("store.kind", "must be \"sqlite\" or \"postgres\"")),
    }
}

fn validate_postgres(
    p: PostgresSection,
    abs: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PostgresConfig, ConfigError> {
    let loopback = postgres_url_loopback(&p.url).map_err(|e| err("store.postgres.url", e))?;
    let password = match (p.password_env, p.password_file) {
        (Some(v), None) if !v.is_empty() => Some(SecretSource::Env(v)),
        (None, Some(f)) => Some(SecretSource::File(abs(f))),
        (None, None) => None,
        (Some(_), Some(_)) => {
            return Err(err(
                "store.postgres.password_env",
                "give password_env or password_file, not both",
            ))
        }
        (Some(_), None) => return Err(err("store.postgres.password_env", "must not be empty")),
    };
    let ca_file = match (p.sslmode.as_str(), p.ca_file) {
        ("verify-full", Some(ca)) => Some(abs(ca)),
        ("verify-full", None) => {
            return Err(err(
                "store.postgres.ca_file",
                "required with sslmode = \"verify-full\": the CA the server's certificate \
                 chains to",
            ))
        }
        ("disable", None) if loopback => None,
        ("disable", None) => {
            return Err(err(
                "store.postgres.sslmode",
                "\"disable\" is for a loopback database only; use \"verify-full\"",
            ))
        }
        ("disable", Some(_)) => {
            return Err(err(
                "store.postgres.ca_file",
                "only with sslmode = \"verify-full\"",
            ))
        }
        _ => {
            return Err(err(
                "store.postgres.sslmode",
                "must be \"verify-full\" or \"disable\" (loopback only)",
            ))
        }
    };
    if !(1..=1024).contains(&p.pool_size) {
        return Err(err("store.postgres.pool_size", "must be 1 to 1024"));
    }
    if !(100..=600_000).contains(&p.connect_timeout_ms) {
        return Err(err(
            "store.postgres.connect_timeout_ms",
            "must be 100 to 600000",
        ));
    }
    if !(100..=600_000).contains(&p.statement_timeout_ms) {
        return Err(err(
            "store.postgres.statement_timeout_ms",
            "must be 100 to 600000",
        ));
    }
    if !(1..=4096).contains(&p.max_batch) {
        return Err(err("store.postgres.max_batch", "must be 1 to 4096"));
    }
    Ok(PostgresConfig {
        url: p.url,
        password,
        ca_file,
        pool_size: p.pool_size,
        connect_timeout: Duration::from_millis(p.connect_timeout_ms),
        statement_timeout: Duration::from_millis(p.statement_timeout_ms),
        max_batch: p.max_batch,
    })
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
    let limits = validate_limits(&f.server)?;
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
    let audit = validate_audit(&f.audit)?;
    let isolation = validate_isolation(f.isolation, &abs)?;
    let store = validate_store(f.store, &abs)?;
    Ok(Config {
        server: ServerConfig {
            listen,
            cert: abs(f.tls.cert),
            key: abs(f.tls.key),
            client_ca: abs(f.tls.client_ca),
            crls: f.tls.crls.into_iter().map(abs).collect(),
            limits,
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
        store,
        policy_dir: abs(f.policy.dir),
        token_format,
        log_format,
        log_filter: f.log.filter,
        webauthn,
        keys,
        audit,
        isolation,
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
        assert_eq!(c.server.limits, ServerLimits::default());
        assert_eq!(c.pkcs11.pin, PinSource::Env("PAYHSM_PIN".into()));
        assert_eq!(
            c.store,
            StoreConfig::Sqlite {
                path: "/var/lib/payhsm/payhsm.db".into(),
                token_cache_rows: defaults::TOKEN_CACHE_ROWS
            }
        );
        let none = GOOD.replace(
            "sqlite_path = \"/var/lib/payhsm/payhsm.db\"",
            "sqlite_path = \"/var/lib/payhsm/payhsm.db\"\ntoken_cache_rows = 0",
        );
        assert!(matches!(
            parse(&none, Path::new("/")).unwrap().store,
            StoreConfig::Sqlite {
                token_cache_rows: 0,
                ..
            }
        ));
    }

    #[test]
    fn connection_limits_come_from_the_file_and_bad_ones_name_their_key() {
        let set = GOOD.replace(
            "listen = \"127.0.0.1:8443\"",
            "listen = \"127.0.0.1:8443\"\nmax_connections_per_identity = 7\nwrite_timeout_ms = 2500",
        );
        let c = parse(&set, Path::new("/")).unwrap();
        assert_eq!(c.server.limits.max_connections_per_identity, 7);
        assert_eq!(c.server.limits.write_timeout, Duration::from_millis(2500));
        assert_eq!(
            c.server.limits.max_handshakes,
            ServerLimits::default().max_handshakes
        );
        for (key, value) in [
            ("max_handshakes_per_address", "0"),
            ("max_connections_per_address", "0"),
            ("write_timeout_ms", "0"),
            ("max_body_bytes", "10"),
        ] {
            let bad = GOOD.replace(
                "listen = \"127.0.0.1:8443\"",
                &format!("listen = \"127.0.0.1:8443\"\n{key} = {value}"),
            );
            assert_eq!(
                parse(&bad, Path::new("/")).unwrap_err().path,
                format!("server.{key}")
            );
        }
    }

    fn with_store(store: &str) -> Result<Config, ConfigError> {
        let text = GOOD.replace(
            "[store]\nsqlite_path = \"/var/lib/payhsm/payhsm.db\"",
            &format!("[store]\n{store}"),
        );
        assert_ne!(text, GOOD, "the [store] section of GOOD moved");
        parse(&text, Path::new("/etc/payhsm"))
    }

    #[test]
    fn postgres_store_parses_with_defaults_and_resolves_paths() {
        let c = with_store(
            "kind = \"postgres\"\n[store.postgres]\nurl = \"postgres://payhsm@db.internal:5432/vault\"\n\
             password_file = \"secrets/pg\"\nca_file = \"tls/db-ca.pem\"",
        )
        .unwrap();
        let StoreConfig::Postgres(p) = c.store else {
            panic!("not postgres: {:?}", c.store)
        };
        assert_eq!(p.url, "postgres://payhsm@db.internal:5432/vault");
        assert_eq!(
            p.password,
            Some(SecretSource::File("/etc/payhsm/secrets/pg".into()))
        );
        assert_eq!(p.ca_file, Some("/etc/payhsm/tls/db-ca.pem".into()));
        assert_eq!(
            (p.pool_size, p.max_batch),
            (d_pool_size(), d_pg_max_batch())
        );
        assert_eq!(p.statement_timeout, Duration::from_millis(5000));
    }

    #[test]
    fn postgres_store_errors_name_the_key() {
        let pg = |rest: &str| {
            with_store(&format!("kind = \"postgres\"\n[store.postgres]\n{rest}"))
                .unwrap_err()
                .path
        };
        let url = "url = \"postgres://payhsm@db.internal/vault\"";
        let ca = "ca_file = \"ca.pem\"";
        assert_eq!(pg(url), "store.postgres.ca_file");
        assert_eq!(
            pg(&format!("{url}\nsslmode = \"disable\"")),
            "store.postgres.sslmode"
        );
        assert_eq!(
            pg(&format!("{url}\nsslmode = \"require\"\n{ca}")),
            "store.postgres.sslmode"
        );
        assert_eq!(
            pg(&format!(
                "url = \"postgres://payhsm:hunter2@db/vault\"\n{ca}"
            )),
            "store.postgres.url"
        );
        assert_eq!(
            pg(&format!("url = \"mysql://x@db/v\"\n{ca}")),
            "store.postgres.url"
        );
        assert_eq!(
            pg(&format!(
                "{url}\n{ca}\npassword_env = \"A\"\npassword_file = \"f\""
            )),
            "store.postgres.password_env"
        );
        assert_eq!(
            pg(&format!("{url}\n{ca}\npool_size = 0")),
            "store.postgres.pool_size"
        );
        assert_eq!(
            pg(&format!("{url}\n{ca}\nstatement_timeout_ms = 0")),
            "store.postgres.statement_timeout_ms"
        );
        assert_eq!(pg(&format!("{url}\n{ca}\nport = 1")), "store.postgres.port");
        assert_eq!(
            with_store("kind = \"postgres\"").unwrap_err().path,
            "store.postgres"
        );
        assert_eq!(
            with_store("kind = \"mysql\"").unwrap_err().path,
            "store.kind"
        );
        assert_eq!(
            with_store("token_cache_rows = 1").unwrap_err().path,
            "store.sqlite_path"
        );
        // Loopback without TLS is allowed (dev, a sidecar).
        assert!(with_store(
            "kind = \"postgres\"\n[store.postgres]\nurl = \"postgres://payhsm@127.0.0.1:5432/v\"\nsslmode = \"disable\""
        )
        .is_ok());
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
