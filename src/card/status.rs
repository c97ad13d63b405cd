//! A token's lifecycle: active, suspended, deleted; and which changes are allowed.

/// The state of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenStatus {
    /// Detokenizes for allowed callers.
    Active,
    /// Kept, but refuses detokenization until resumed.
    Suspended,
    /// Ciphertext and fingerprint wiped; the token is gone for every caller.
    Deleted,
}

impl TokenStatus {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Deleted => "deleted",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "suspended" => Some(Self::Suspended),
            "deleted" => Some(Self::Deleted),
            _ => None,
        }
    }

    /// The state after `change`, or why the change is not allowed from this state.
    pub fn apply(self, change: StatusChange) -> Result<Self, TransitionError> {
        match (self, change) {
            (Self::Deleted, _) => Err(TransitionError::Gone),
            (Self::Active, StatusChange::Suspend) => Ok(Self::Suspended),
            (Self::Suspended, StatusChange::Resume) => Ok(Self::Active),
            (_, StatusChange::Delete) => Ok(Self::Deleted),
            (from, _) => Err(TransitionError::NotFrom(from)),
        }
    }
}

/// A lifecycle request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// active -> suspended
    Suspend,
    /// suspended -> active
    Resume,
    /// active or suspended -> deleted
    Delete,
}

impl StatusChange {
    /// The action name used by policy and audit.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Delete => "delete",
        }
    }
}

/// Why a lifecycle change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionError {
    /// The token is deleted: it no longer exists for anyone.
    Gone,
    /// The change does not apply to a token in this state.
    NotFrom(TokenStatus),
}

#[cfg(test)]
mod tests {
    use super::{StatusChange::*, TokenStatus::*, *};

    #[test]
    fn lifecycle_transitions() {
        assert_eq!(Active.apply(Suspend), Ok(Suspended));
        assert_eq!(Suspended.apply(Resume), Ok(Active));
        assert_eq!(Active.apply(Delete), Ok(Deleted));
        assert_eq!(Suspended.apply(Delete), Ok(Deleted));
        assert_eq!(Active.apply(Resume), Err(TransitionError::NotFrom(Active)));
        assert_eq!(
            Suspended.apply(Suspend),
            Err(TransitionError::NotFrom(Suspended))
        );
        assert_eq!(Deleted.apply(Resume), Err(TransitionError::Gone));
    }
}
