//! The engine's answer to one request: the only source of the `allow` or `deny` an audit
//! record states (DESIGN.md, Audit: "the decision it records is the policy engine's answer,
//! never rebuilt from strings").

/// The policy engine's answer to one request: permitted or not, and the `@id`s of the policies
/// that decided. Only the engine makes one (the fields are private and there is no public
/// constructor), so an audit event that carries it states what the engine decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyDecision {
    allowed: bool,
    policy_ids: Vec<String>,
}

impl PolicyDecision {
    /// Cedar's answer: `allowed` on an explicit `Allow`, with the deciding policies' ids.
    pub(super) fn new(allowed: bool, mut policy_ids: Vec<String>) -> Self {
        policy_ids.sort();
        policy_ids.dedup();
        Self {
            allowed,
            policy_ids,
        }
    }

    /// A denial no policy made: nothing permitted the request.
    pub(super) fn deny_by_default() -> Self {
        Self::new(false, Vec::new())
    }

    /// Permitted.
    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// The `@id`s of the policies that decided, sorted: the permits for an allow, the forbids
    /// for an explicit deny, empty for a deny by default.
    pub fn policy_ids(&self) -> &[String] {
        &self.policy_ids
    }
}
