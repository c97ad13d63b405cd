//! SKELETON: to be implemented (policy helper).
use super::Principal;
use crate::card::Domain;
use std::path::Path;

/// A policy-checked action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// POST /v1/tokens
    Tokenize,
    /// POST /v1/tokens/detokenize
    Detokenize,
    /// GET /v1/tokens/{token}
    ReadMetadata,
    /// suspend
    Suspend,
    /// resume
    Resume,
    /// delete
    Delete,
    /// read the audit log
    ReadAudit,
}

impl Action {
    /// The Cedar action id and audit action name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tokenize => "tokenize",
            Self::Detokenize => "detokenize",
            Self::ReadMetadata => "read_metadata",
            Self::Suspend => "suspend",
            Self::Resume => "resume",
            Self::Delete => "delete",
            Self::ReadAudit => "read_audit",
        }
    }
}

/// A question for the policy.
#[derive(Debug)]
pub struct PolicyRequest<'a> {
    /// Who asks.
    pub principal: &'a Principal,
    /// What for.
    pub action: Action,
    /// On which domain, if any.
    pub domain: Option<&'a Domain>,
}

/// The answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecision {
    /// Permitted.
    pub allowed: bool,
    /// Ids of the policies that decided.
    pub policy_ids: Vec<String>,
}

/// Loading the policy failed.
#[derive(Debug)]
pub struct PolicyError(pub String);

/// Cedar policies + identity map.
pub struct PolicyEngine {}

impl PolicyEngine {
    /// Loads and validates `dir`.
    pub fn load(dir: &Path) -> Result<Self, PolicyError> {
        let _ = dir;
        unimplemented!()
    }
    /// Decides.
    pub fn decide(&self, request: &PolicyRequest<'_>) -> PolicyDecision {
        let _ = request;
        unimplemented!()
    }
}
