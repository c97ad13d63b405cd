//! Who may do what: Cedar policies (`policies/policies.cedar`) validated against a schema
//! (`policies/schema.cedarschema`) at load, and a map from certificate identities to groups
//! (`policies/identities.toml`). Deny by default.

mod engine;
mod principal;

pub use engine::{Action, PolicyDecision, PolicyEngine, PolicyError, PolicyRequest};
pub use principal::Principal;
