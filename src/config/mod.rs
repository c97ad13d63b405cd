//! Configuration: a TOML file (`payhsmd serve --config FILE`, every key documented in
//! `docs/payhsmd.example.toml`) or, in dev mode, values built in code. Either way it is
//! validated once into a [`Config`] that cannot be invalid; errors name the exact key path.

mod file;
mod webauthn;

pub use file::ConfigError;
pub use webauthn::{
    cose_identifier, AndroidApp, MdsConfig, RelyingPartyConfig, StaleBlob, WebauthnConfig,
    MDS_PRODUCTION_ROOT, MDS_PRODUCTION_ROOT_SHA256,
};

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::card::TokenFormat;
use crate::telemetry::LogFormat;

/// Where the PKCS#11 user PIN comes from. The PIN itself is never in the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// Read from this environment variable at start.
    Env(String),
    /// Read from this file at start (first line, trailing newline removed).
    File(PathBuf),
    /// The fixed, public PIN of a dev token created by `payhsmd dev`. Protects nothing.
    DangerDevPin,
}

/// The PKCS#11 token and the labels of the objects payhsm uses in it.
#[derive(Debug, Clone)]
pub struct Pkcs11Config {
    /// Path of the PKCS#11 module.
    pub module: PathBuf,
    /// Label of the token.
    pub token_label: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// Worker threads with one session each.
    pub sessions: usize,
    /// Label of the KEK object.
    pub kek_label: String,
    /// Label of the audit checkpoint signing key pair.
    pub audit_key_label: String,
    /// Label of the EC P-256 key pair that signs payment authorizations (ES256).
    pub authz_key_label: String,
    /// A SoftHSM2 configuration file to point `SOFTHSM2_CONF` at before loading the module.
    pub softhsm2_conf: Option<PathBuf>,
}

/// Where a secret that is not in the config comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// Read from this environment variable at start.
    Env(String),
    /// Read from this file at start (first line, trailing newline removed).
    File(PathBuf),
}

/// The store: one SQLite file (one daemon), or a PostgreSQL database shared by replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// The embedded default.
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Token rows kept in memory after reading them (0: none).
        token_cache_rows: usize,
    },
    /// PostgreSQL, shared by every replica of the vault.
    Postgres(PostgresConfig),
}

/// How the daemon reaches PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// `postgres://user@host:port/database` (no password: see `password`).
    pub url: String,
    /// Where the password comes from; `None`: the server asks none (trust or certificate).
    pub password: Option<SecretSource>,
    /// `None`: no TLS (`sslmode = "disable"`, refused unless the host is a loopback address);
    /// otherwise the CA file the server's certificate must chain to, and its name must match
    /// the host (`sslmode = "verify-full"`).
    pub ca_file: Option<PathBuf>,
    /// Connections in the readers' pool (the writer has its own).
    pub pool_size: usize,
    /// Longest wait for a connection, and for a pooled one.
    pub connect_timeout: Duration,
    /// Longest any statement may run.
    pub statement_timeout: Duration,
    /// Most jobs committed together in one transaction.
    pub max_batch: usize,
}

/// Where `payhsmd dev --postgres` reads the database password from, when it is set.
const DEV_PG_PASSWORD_ENV: &str = "PAYHSM_PG_PASSWORD";

impl PostgresConfig {
    /// The dev daemon's PostgreSQL settings (`payhsmd dev --postgres URL [--postgres-ca
    /// FILE]`): the password, if the server asks one, from `PAYHSM_PG_PASSWORD`; defaults
    /// otherwise. A plain connection is refused unless the host is a loopback address.
    pub fn dev(url: String, ca_file: Option<PathBuf>) -> Result<Self, String> {
        let loopback = file::postgres_url_loopback(&url).map_err(str::to_owned)?;
        if ca_file.is_none() && !loopback {
            return Err(
                "a plain connection is for a loopback host only: give --postgres-ca".to_owned(),
            );
        }
        Ok(Self {
            url,
            password: std::env::var_os(DEV_PG_PASSWORD_ENV)
                .is_some()
                .then(|| SecretSource::Env(DEV_PG_PASSWORD_ENV.to_owned())),
            ca_file,
            pool_size: defaults::PG_POOL_SIZE,
            connect_timeout: Duration::from_millis(defaults::PG_CONNECT_TIMEOUT_MS),
            statement_timeout: Duration::from_millis(defaults::PG_STATEMENT_TIMEOUT_MS),
            max_batch: defaults::PG_MAX_BATCH,
        })
    }
}

/// Listener, TLS and connection limits.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Server private key (PEM).
    pub key: PathBuf,
    /// CA that issues client certificates (PEM).
    pub client_ca: PathBuf,
    /// CRLs of the client CA (PEM).
    pub crls: Vec<PathBuf>,
    /// Connection budgets and timeouts.
    pub limits: crate::transport::ServerLimits,
}

/// Confinement after start-up (Linux): Landlock file access, `no_new_privs`, the seccomp
/// allow-list. The paths the daemon's own configuration names are added to these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsolationConfig {
    /// What seccomp does with a call off the list; [`SeccompMode::Off`] turns isolation off
    /// altogether (Landlock too).
    ///
    /// [`SeccompMode::Off`]: crate::isolation::confine::SeccompMode::Off
    pub seccomp: crate::isolation::confine::SeccompMode,
    /// More folders read and written (another PKCS#11 module's token store).
    pub read_write: Vec<PathBuf>,
    /// More files or folders read (a hardware HSM client's configuration).
    pub read_only: Vec<PathBuf>,
}

impl IsolationConfig {
    /// Whether the daemon confines itself at all (Landlock and seccomp).
    pub fn enabled(&self) -> bool {
        self.seccomp != crate::isolation::confine::SeccompMode::Off
    }
}

impl Default for IsolationConfig {
    fn default() -> Self {
        Self {
            seccomp: crate::isolation::confine::SeccompMode::Enforce,
            read_write: Vec::new(),
            read_only: Vec::new(),
        }
    }
}

/// When the daemon signs a tree head over the audit log (RFC 9162 §4.1, with the HSM audit
/// key): once `every_records` records were added since the last head, or `interval` after it
/// when any was, and at shutdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditConfig {
    /// Records added since the last tree head that make the next one at once.
    pub tree_head_every_records: u64,
    /// The longest a record waits for a tree head that covers it.
    pub tree_head_interval: Duration,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            tree_head_every_records: 1000,
            tree_head_interval: Duration::from_secs(300),
        }
    }
}

/// Key lifecycle settings: dual control and cryptoperiods.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeysConfig {
    /// How long a custodian's approval of a key change waits for a second custodian.
    pub approval_window: Duration,
    /// Originator-usage period of a data key (how long it seals new records).
    pub data_key_cryptoperiod: Duration,
    /// How long an authorization signing key signs.
    pub signing_key_cryptoperiod: Duration,
    /// How long a new signing key is in the JWKS before it may sign: at least the JWKS cache
    /// lifetime, so verifiers know it before they meet it.
    pub signing_key_publish_lead: Duration,
}

impl Default for KeysConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 60 * 60;
        Self {
            approval_window: Duration::from_secs(15 * 60),
            data_key_cryptoperiod: Duration::from_secs(365 * DAY),
            signing_key_cryptoperiod: Duration::from_secs(365 * DAY),
            signing_key_publish_lead: Duration::from_secs(300),
        }
    }
}

/// The validated configuration of a daemon.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listener and TLS.
    pub server: ServerConfig,
    /// The HSM.
    pub pkcs11: Pkcs11Config,
    /// Where the vault's records live.
    pub store: StoreConfig,
    /// Folder with `schema.cedarschema`, `policies.cedar`, `identities.toml`.
    pub policy_dir: PathBuf,
    /// How tokens are formed.
    pub token_format: TokenFormat,
    /// Log output format.
    pub log_format: LogFormat,
    /// Log filter (tracing env-filter syntax).
    pub log_filter: String,
    /// Device enrolment (WebAuthn).
    pub webauthn: WebauthnConfig,
    /// Key lifecycle.
    pub keys: KeysConfig,
    /// Signed tree heads over the audit log.
    pub audit: AuditConfig,
    /// Confinement after start-up.
    pub isolation: IsolationConfig,
}

/// Defaults shared by the file format and dev mode.
pub mod defaults {
    /// Debian's SoftHSM2 module.
    pub const PKCS11_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
    /// KEK object label.
    pub const KEK_LABEL: &str = "payhsm-kek";
    /// Audit checkpoint key label.
    pub const AUDIT_KEY_LABEL: &str = "payhsm-audit-v1";
    /// Authorization (JWS ES256) signing key label.
    pub const AUTHZ_KEY_LABEL: &str = "payhsm-authz-v1";
    /// Token label of a dev token.
    pub const DEV_TOKEN_LABEL: &str = "payhsm-dev";
    /// The file in a dev data directory naming the PKCS#11 module its token is in, written by
    /// `payhsmd dev --module` (absent: [`PKCS11_MODULE`]).
    pub const DEV_MODULE_FILE: &str = "pkcs11-module";
    /// The public user PIN of dev tokens. A dev token protects nothing.
    pub const DANGER_DEV_USER_PIN: &str = "payhsm-dev-user-pin";
    /// The public SO PIN of dev tokens.
    pub const DANGER_DEV_SO_PIN: &str = "payhsm-dev-so-pin";
    /// Token rows the store keeps in memory (about 0.5 KiB each).
    pub const TOKEN_CACHE_ROWS: usize = 16_384;
    /// PostgreSQL: pooled read connections per replica.
    pub const PG_POOL_SIZE: usize = 16;
    /// PostgreSQL: longest wait for a connection, in milliseconds.
    pub const PG_CONNECT_TIMEOUT_MS: u64 = 5_000;
    /// PostgreSQL: longest statement, in milliseconds.
    pub const PG_STATEMENT_TIMEOUT_MS: u64 = 5_000;
    /// PostgreSQL: most jobs in one writer transaction.
    pub const PG_MAX_BATCH: usize = 256;
}

impl Config {
    /// Loads and validates a TOML file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        file::load(path)
    }

    /// Parses and validates TOML text; relative paths resolve against `base`.
    pub fn from_toml(text: &str, base: &std::path::Path) -> Result<Self, ConfigError> {
        file::parse(text, base)
    }

    /// The self-contained dev configuration: a token (SoftHSM2's store under `data_dir`, or
    /// the module [`dev_module`] names), SQLite and logs under `data_dir`, the sample PKI from `keys_dir` and the policies from `policy_dir`.
    pub fn dev(
        data_dir: &std::path::Path,
        listen: SocketAddr,
        keys_dir: &std::path::Path,
        policy_dir: &std::path::Path,
    ) -> Self {
        Self {
            server: ServerConfig {
                listen,
                cert: keys_dir.join("server.pem"),
                key: keys_dir.join("server.key"),
                client_ca: keys_dir.join("ca.pem"),
                crls: vec![keys_dir.join("ca.crl.pem")],
                limits: crate::transport::ServerLimits::default(),
            },
            pkcs11: Pkcs11Config {
                module: dev_module(data_dir),
                token_label: defaults::DEV_TOKEN_LABEL.to_owned(),
                pin: PinSource::DangerDevPin,
                sessions: 2,
                kek_label: defaults::KEK_LABEL.to_owned(),
                audit_key_label: defaults::AUDIT_KEY_LABEL.to_owned(),
                authz_key_label: defaults::AUTHZ_KEY_LABEL.to_owned(),
                softhsm2_conf: Some(data_dir.join("softhsm2.conf")),
            },
            store: StoreConfig::Sqlite {
                path: data_dir.join("payhsm.db"),
                token_cache_rows: defaults::TOKEN_CACHE_ROWS,
            },
            policy_dir: policy_dir.to_owned(),
            token_format: TokenFormat::default(),
            log_format: LogFormat::Text,
            log_filter: "info".to_owned(),
            webauthn: WebauthnConfig::dev(),
            keys: KeysConfig::default(),
            audit: AuditConfig::default(),
            // The dev data directory holds the token store as well as the vault: SoftHSM2's
            // (also added from softhsm2.conf) or another module's (`payhsmd dev --module`, whose
            // configuration puts it there; kryoptic in the tests), also with a PostgreSQL vault.
            isolation: IsolationConfig {
                read_write: vec![data_dir.to_owned()],
                ..IsolationConfig::default()
            },
        }
    }
}

/// The PKCS#11 module of the dev data directory `data_dir`: the one its
/// [`defaults::DEV_MODULE_FILE`] names, else SoftHSM2.
pub fn dev_module(data_dir: &std::path::Path) -> PathBuf {
    std::fs::read_to_string(data_dir.join(defaults::DEV_MODULE_FILE))
        .ok()
        .and_then(|text| text.lines().next().map(|l| PathBuf::from(l.trim())))
        .filter(|path| !path.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(defaults::PKCS11_MODULE))
}
