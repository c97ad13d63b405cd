//! `payhsmd`: the payhsm daemon.
//!
//! - `payhsmd dev [--data-dir DIR] [--listen ADDR]`: a self-contained dev instance (SoftHSM2
//!   token, KEK and first data key created under DIR; the sample PKI and policies).
//! - `payhsmd serve --config FILE`: production, from a TOML file.

use clap::{Parser, Subcommand};
use payhsm::config::Config;
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

#[derive(Subcommand)]
enum Command {
    /// Start a self-contained dev instance (DEV ONLY: public PINs and sample keys).
    Dev {
        /// Where the SoftHSM2 token, the SQLite vault and softhsm2.conf live.
        #[arg(long, default_value = "target/payhsm-dev")]
        data_dir: PathBuf,
        /// Address to listen on (port 0 picks a free one; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: SocketAddr,
        /// The sample PKI folder.
        #[arg(long, default_value = "keys-sample")]
        keys: PathBuf,
        /// The policy folder.
        #[arg(long, default_value = "policies")]
        policies: PathBuf,
        /// Log as JSON lines instead of text.
        #[arg(long)]
        json_logs: bool,
        /// Most concurrent connections.
        #[arg(long, default_value_t = 4096)]
        max_connections: usize,
        /// Seconds a new authorization signing key is published before it may sign.
        #[arg(long, default_value_t = 300)]
        signing_key_publish_lead: u64,
        /// Milliseconds a client has for its TLS handshake.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
        handshake_timeout_ms: u64,
        /// Milliseconds a client has to send request headers; also closes idle connections.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
        header_timeout_ms: u64,
        /// Milliseconds a client has to send a whole request body.
        #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=600_000))]
        body_timeout_ms: u64,
    },
    /// Start from a production configuration file.
    Serve {
        /// The TOML configuration (see docs/payhsmd.example.toml).
        #[arg(long)]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (config, dev) = match cli.command {
        Command::Dev {
            data_dir,
            listen,
            keys,
            policies,
            json_logs,
            max_connections,
            signing_key_publish_lead,
            handshake_timeout_ms,
            header_timeout_ms,
            body_timeout_ms,
        } => {
            if let Err(e) = payhsm::daemon::prepare_dev_dir(&data_dir) {
                eprintln!("payhsmd: {e}");
                return ExitCode::from(1);
            }
            let mut config = Config::dev(&data_dir, listen, &keys, &policies);
            if json_logs {
                config.log_format = LogFormat::Json;
            }
            config.server.max_connections = max_connections.max(1);
            config.server.handshake_timeout = Duration::from_millis(handshake_timeout_ms);
            config.server.header_timeout = Duration::from_millis(header_timeout_ms);
            config.server.body_timeout = Duration::from_millis(body_timeout_ms);
            config.keys.signing_key_publish_lead = Duration::from_secs(signing_key_publish_lead);
            (config, true)
        }
        Command::Serve { config } => match Config::from_file(&config) {
            Ok(c) => (c, false),
            Err(e) => {
                eprintln!("payhsmd: {e}");
                return ExitCode::from(2);
            }
        },
    };
    init_logging(config.log_format, &config.log_filter);
    // Before any other thread exists: SoftHSM2 reads SOFTHSM2_CONF when it initializes.
    payhsm::daemon::use_softhsm2_conf(&config);
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
        let shutdown =
            shutdown_signal().map_err(|e| payhsm::daemon::DaemonError::Io(e.to_string()))?;
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
            tracing::error!(error = %e, "payhsmd stopped");
            eprintln!("payhsmd: {e}");
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
