//! API v1: routing, request and response types, the one error-to-HTTP mapping.
//!
//! Handlers are thin: decode, call one service function, encode.
//!
//! - [`error`]: [`ApiError`] and its mapping to status and code.
//! - [`types`]: request and response bodies of the token routes.
//! - [`batch`]: request and response bodies of the token batch routes.
//! - [`devices`]: request and response bodies of the device routes.
//! - [`authorizations`]: request and response bodies of the authorization routes, and the
//!   `Idempotency-Key` header.
//! - [`keys`]: request and response bodies of the key lifecycle routes.
//! - [`body`]: size-limited request bodies, zeroized response bodies, request ids.

pub mod authorizations;
pub mod batch;
pub mod body;
pub mod devices;
pub mod error;
pub mod keys;
mod routes;
pub mod types;

pub use body::{new_request_id, SecretBuf};
pub use error::ApiError;
pub use routes::{error_response, handle};
pub(crate) use routes::{fuzz_audit_queries, fuzz_resolve};

use crate::jose::AuthorizationSigner;
use crate::keys::Hsm;
use crate::service::{Authorizations, Devices, KeyAdmin, Vault};
use crate::telemetry::Metrics;
use std::sync::Arc;

/// Everything a request handler needs.
pub struct App {
    /// The card vault use cases.
    pub vault: Vault,
    /// Device enrolment.
    pub devices: Devices,
    /// Payment authorizations.
    pub authorizations: Authorizations,
    /// Key lifecycle.
    pub keys: KeyAdmin,
    /// The HSM (for readiness).
    pub hsm: Hsm,
    /// The authorization signer; its public keys are served at `/v1/keys/jwks`.
    pub signer: AuthorizationSigner,
    /// Metrics, shared with the store wrapper.
    pub metrics: Arc<Metrics>,
    /// Who may read the metrics.
    pub metrics_access: crate::service::MetricsAccess,
    /// The audit log, for auditors.
    pub audit: crate::service::AuditReader,
    /// The largest request body accepted, except on the batch routes.
    pub max_body_bytes: usize,
    /// The largest request body of the batch routes.
    pub max_batch_body_bytes: usize,
    /// The longest a request body may take to arrive (a client trickling it byte by byte
    /// would otherwise hold its connection for ever).
    pub body_timeout: std::time::Duration,
}
