//! Who may do what: Cedar policies (`policies/policies.cedar`) validated against a schema
//! (`policies/schema.cedarschema`) at load, and a map from certificate identities to groups
//! (`policies/identities.toml`). Deny by default.

mod decision;
mod engine;
mod error;
mod identities;
mod principal;

pub use decision::PolicyDecision;
pub use engine::{
    Action, EnrolmentContext, PaymentContext, PolicyContext, PolicyEngine, PolicyRequest, Resource,
    IDENTITIES_FILE, POLICIES_FILE, SCHEMA_FILE,
};
pub use error::PolicyError;
pub use identities::{load as load_identities, IdentityMap};
pub use principal::Principal;
