//! `payhsmd`: the payhsm daemon.
//!
//! - `payhsmd dev [--data-dir DIR] [--listen ADDR]`: a self-contained dev instance (SoftHSM2
//!   token, KEK and first data key created under DIR; the sample PKI and policies).
//! - `payhsmd serve --config FILE`: production, from a TOML file.

use clap::{Parser, Subcommand};
use payhsm::config::{Config, PostgresConfig, StoreConfig};
use payhsm::telemetry::{init_logging, LogFormat};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "payhsmd",
    version,
    about = "payhsm daemon: mTLS card vault with keys behind PKCS#11"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Connection budgets and timeouts of `payhsmd dev` (`[server]` in a configuration file).
#[derive(clap::Args)]
struct LimitArgs {
    /// Most concurrent authenticated connections.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Most concurrent connections of one client identity.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_identity: u64,
    /// Most concurrent authenticated connections from one source address.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_address: u64,
    /// Most connections in their TLS handshake (the unauthenticated budget).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_handshakes: u64,
    /// Most connections in their TLS handshake from one source address.
    #[arg(long, default_value_t = 128, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_handshakes_per_address: u64,
    /// Milliseconds a client has for its TLS handshake.
    #[arg(long, default_value_t = 5_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    handshake_timeout_ms: u64,
    /// Milliseconds a client has to send request headers; also closes idle connections.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    header_timeout_ms: u64,
    /// Milliseconds a response may go unread before its connection is dropped.
    #[arg(long, default_value_t = 15_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    write_timeout_ms: u64,
    /// Milliseconds a client has to send a whole request body.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
    body_timeout_ms: u64,
}

impl LimitArgs {
    fn apply(&self, limits: &mut payhsm::transport::ServerLimits) {
        let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
        limits.max_connections = n(self.max_connections);
        limits.max_connections_per_identity = n(self.max_connections_per_identity);
        limits.max_connections_per_address = n(self.max_connections_per_address);
        limits.max_handshakes = n(self.max_handshakes);
        limits.max_handshakes_per_address = n(self.max_handshakes_per_address);
        limits.handshake_timeout = Duration::from_millis(self.handshake_timeout_ms);
        limits.header_timeout = Duration::from_millis(self.header_timeout_ms);
        limits.write_timeout = Duration::from_millis(self.write_timeout_ms);
        limits.body_timeout = Duration::from_millis(self.body_timeout_ms);
    }
}

#[derive(Subcommand)]
// Parsed once at start: the size of the dev variant does not matter.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Start a self-contained dev instance (DEV ONLY: public PINs and sample keys).
    Dev {
        /// Where the SoftHSM2 token, the SQLite vault and softhsm2.conf live.
        #[arg(long, default_value = "target/payhsm-dev")]
        data_dir: PathBuf,
        /// Address to listen on (port 0 picks a free one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// The PKCS#11 module to make the dev token in with C_InitToken (default: the one the
        /// data directory was made with, else SoftHSM2, whose token store is then under the
        /// data directory). Recorded in the data directory. Another module reads its own
        /// configuration (kryoptic: the file KRYOPTIC_CONF names).
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
        /// The sample PKI folder.
        #[arg(long, default_value = "keys-sample")]
        keys: PathBuf,
        /// The policy folder.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
        /// Seconds a new authorization signing key is published before it may sign.
        #[arg(long, default_value_t = 300)]
        signing_key_publish_lead: u64,
        /// Keep the vault in this PostgreSQL database instead of SQLite
        /// (postgres://user@host:port/database; the password, if any, from
        /// PAYHSM_PG_PASSWORD). Dev daemons with the same --data-dir and the same URL on
        /// different --listen ports are replicas of one vault: start the first, then the
        /// others once it listens (it creates the token, KEK and data keys they use).
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
        /// The CA of the PostgreSQL server's certificate: TLS with verify-full. Without it the
        /// connection is plain, which is refused unless the host is a loopback address.
        #[arg(long, value_name = "FILE", requires = "postgres")]
        postgres_ca: Option<PathBuf>,
        /// A FIDO Metadata Service BLOB (compact JWS): attestation roots and status reports by
        /// AAGUID. Reloaded on SIGHUP and hourly; a stale BLOB only warns in dev.
        #[arg(long, value_name = "BLOB")]
        mds: Option<PathBuf>,
        /// The root the BLOB's x5c chain must reach (default: GlobalSign Root CA - R3 from
        /// /etc/ssl/certs, the production BLOB's root).
        #[arg(long, value_name = "PEM", requires = "mds")]
        mds_anchor: Option<PathBuf>,
        /// Google's Android attestation revocation list (JSON, as fetched from
        /// https://android.googleapis.com/attestation/status); reloaded on SIGHUP.
        #[arg(long, value_name = "JSON")]
        android_revocations: Option<PathBuf>,
        /// An Android app allowed to enrol android-key devices at the dev relying party, as
        /// PACKAGE:SHA256 (its signing certificate's digest, 64 hex digits); repeatable. Without
        /// any, every app may.
        #[arg(long, value_name = "PACKAGE:SHA256", value_parser = parse_android_app)]
        android_app: Vec<payhsm::config::AndroidApp>,
        /// Sign an audit tree head once this many records were added since the last.
        #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        tree_head_every_records: u64,
        /// Sign an audit tree head this many seconds after the last when any record was added.
        #[arg(long, value_name = "SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        tree_head_interval_secs: u64,
        /// Do not confine the daemon (no Landlock, no seccomp allow-list): for debugging only.
        #[arg(long)]
        no_isolation: bool,
        /// Log system calls off the seccomp allow-list instead of refusing them (to find what
        /// another PKCS#11 module needs; the kernel log shows them).
        #[arg(long, conflicts_with = "no_isolation")]
        seccomp_log: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Start from a production configuration file.
    Serve {
        /// The TOML configuration (see docs/payhsmd.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
}

fn parse_android_app(text: &str) -> Result<payhsm::config::AndroidApp, String> {
    payhsm::config::AndroidApp::parse(text)
        .ok_or_else(|| "expected PACKAGE:SHA256 (64 hex digits)".to_owned())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, dev) = match cli.command {
        Command::Dev {
            data_dir,
            listen,
            module,
            keys,
            policies,
            json_logs,
            signing_key_publish_lead,
            postgres,
            postgres_ca,
            mds,
            mds_anchor,
            android_revocations,
            android_app,
            tree_head_every_records,
            tree_head_interval_secs,
            no_isolation,
            seccomp_log,
            limits,
        } => {
            if let Err(e) = payhsm::daemon::prepare_dev_dir(&data_dir) {
                eprintln!("payhsmd: {}", payhsm::fault::Chain(&e));
                return ExitCode::from(1);
            }
            if let Some(module) = &module {
                if let Err(e) = payhsm::daemon::record_dev_module(&data_dir, module) {
                    eprintln!("payhsmd: {}", payhsm::fault::Chain(&e));
                    return ExitCode::from(1);
                }
            }
            let mut config = Config::dev(&data_dir, listen, &keys, &policies);
            if json_logs {
                config.log_format = LogFormat::Json;
            }
            limits.apply(&mut config.server.limits);
            config.keys.signing_key_publish_lead = Duration::from_secs(signing_key_publish_lead);
            config.webauthn.mds = mds.map(|blob| payhsm::config::MdsConfig::dev(blob, mds_anchor));
            config.webauthn.android_revocation_list = android_revocations;
            if no_isolation {
                config.isolation.seccomp = payhsm::isolation::confine::SeccompMode::Off;
            } else if seccomp_log {
                config.isolation.seccomp = payhsm::isolation::confine::SeccompMode::LogOnly;
            }
            config.audit = payhsm::config::AuditConfig {
                tree_head_every_records,
                tree_head_interval: Duration::from_secs(tree_head_interval_secs),
            };
            for rp in &mut config.webauthn.relying_parties {
                rp.android_apps = android_app.clone();
            }
            if let Some(url) = postgres {
                match PostgresConfig::dev(url, postgres_ca) {
                    Ok(pg) => config.store = StoreConfig::Postgres(pg),
                    Err(e) => {
                        eprintln!("payhsmd: --postgres: {e}");
                        return ExitCode::from(2);
                    }
                }
            }
            (config, true)
        }
        Command::Serve { config } => match Config::from_file(&config) {
            Ok(c) => (c, false),
            Err(e) => {
                eprintln!("payhsmd: {}", payhsm::fault::Chain(&e));
                return ExitCode::from(2);
            }
        },
    };
    init_logging(config.log_format, &config.log_filter);
    // Before any other thread exists: SoftHSM2 reads SOFTHSM2_CONF when it initializes.
    payhsm::daemon::use_softhsm2_conf(&config);
    // Before the runtime starts any thread: Landlock confines this thread and those it starts.
    if let Err(e) = payhsm::daemon::confine_files(&config) {
        eprintln!("payhsmd: {}", payhsm::fault::Chain(&e));
        return ExitCode::from(1);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("payhsmd: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        // Installed before anything is announced: a SIGTERM that arrives during start-up or
        // right after the listening line must drain, not kill.
        let shutdown = shutdown_signal().map_err(|e| {
            payhsm::daemon::DaemonError::Io(payhsm::fault::Fault::caused_by(
                "cannot wait for signals",
                e,
            ))
        })?;
        payhsm::daemon::run(config, dev, shutdown, |addr| {
            // The one line on stdout: scripts and tests wait for it.
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "payhsmd listening on {addr}");
            let _ = out.flush();
        })
        .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %payhsm::fault::Chain(&e), "payhsmd stopped");
            eprintln!("payhsmd: {}", payhsm::fault::Chain(&e));
            ExitCode::from(1)
        }
    }
}

/// Installs the SIGTERM and SIGINT handlers now; the returned future completes on either.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown requested: draining");
    })
}
