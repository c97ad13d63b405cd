//! Why the daemon would not start.

/// A start-up failure. Messages name what failed and never contain a secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum DaemonError {
    /// A known-answer self-test failed.
    SelfTest(String),
    /// The HSM could not be used.
    Hsm(String),
    /// The key hierarchy is incomplete or inconsistent.
    Keys(String),
    /// The store could not be opened.
    Store(String),
    /// The policy could not be loaded.
    Policy(String),
    /// TLS material could not be loaded.
    Tls(String),
    /// The WebAuthn trust anchors could not be loaded.
    Anchors(String),
    /// A file or socket failed.
    Io(String),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SelfTest(m) => write!(f, "self-test failed, refusing to serve: {m}"),
            Self::Hsm(m) => write!(f, "HSM: {m}"),
            Self::Keys(m) => write!(f, "keys: {m}"),
            Self::Store(m) => write!(f, "store: {m}"),
            Self::Policy(m) => write!(f, "policy: {m}"),
            Self::Tls(m) => write!(f, "TLS: {m}"),
            Self::Anchors(m) => write!(f, "WebAuthn anchors: {m}"),
            Self::Io(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DaemonError {}
