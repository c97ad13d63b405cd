//! The kinds of keys custodians change under dual control.

/// Which kind of key a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPurpose {
    /// Data keys (PAN encryption and fingerprints).
    Data,
    /// Authorization signing keys.
    AuthorizationSigning,
}

impl KeyPurpose {
    /// The name used in the API, the CLI and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::AuthorizationSigning => "authorization-signing",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "data" => Some(Self::Data),
            "authorization-signing" => Some(Self::AuthorizationSigning),
            _ => None,
        }
    }
}
