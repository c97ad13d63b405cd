//! Why the daemon would not start.

use crate::fault::Fault;

/// A start-up failure: what failed, in payhsm's words, with the error that made it fail as
/// its source. Never a secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum DaemonError {
    /// A known-answer self-test failed.
    SelfTest(Fault),
    /// The HSM could not be used.
    Hsm(Fault),
    /// The key hierarchy is incomplete or inconsistent.
    Keys(Fault),
    /// The store could not be opened.
    Store(Fault),
    /// The policy could not be loaded.
    Policy(Fault),
    /// TLS material could not be loaded.
    Tls(Fault),
    /// The WebAuthn trust anchors could not be loaded.
    Anchors(Fault),
    /// A file or socket failed.
    Io(Fault),
    /// The process could not be confined (Landlock, seccomp) as configured.
    Isolation(Fault),
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
            Self::Isolation(m) => write!(f, "isolation: {m}"),
        }
    }
}

impl std::error::Error for DaemonError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Displayed with the fault's context: the next cause is the fault's source.
            Self::SelfTest(f)
            | Self::Hsm(f)
            | Self::Keys(f)
            | Self::Store(f)
            | Self::Policy(f)
            | Self::Tls(f)
            | Self::Anchors(f)
            | Self::Io(f)
            | Self::Isolation(f) => std::error::Error::source(f),
        }
    }
}
