//! The tracing subscriber: text or JSON lines on stderr, filtered by an env-filter directive.

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (for log shippers).
    Json,
}

/// Installs the global subscriber writing to stderr. `filter` is an env-filter directive such
/// as `info` or `payhsm=debug,hyper=warn`; an invalid one falls back to `info` and says so.
/// A second call leaves the first subscriber in place.
pub fn init_logging(format: LogFormat, filter: &str) {
    let (env_filter, bad_filter) = match EnvFilter::try_new(filter) {
        Ok(f) => (f, None),
        Err(e) => (EnvFilter::new("info"), Some(e.to_string())),
    };
    // A log line that cannot be written (stderr a file on a full disk) is dropped. By default
    // the subscriber reports that with `eprintln!`, which panics when stderr fails too, and
    // the panic took the request's connection down (found by tests/fault_store.rs).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    if installed.is_err() {
        tracing::debug!("a log subscriber was already installed");
    }
    if let Some(e) = bad_filter {
        tracing::warn!(filter, error = %e, "invalid log filter; using `info`");
    }
}
