//! API v1: routing, request and response types, the one error-to-HTTP mapping.
//!
//! Handlers are thin: decode, call one service function, encode.
//!
//! - [`error`]: [`ApiError`] and its mapping to status and code.
//! - [`types`]: request and response bodies of the token routes.
//! - [`devices`]: request and response bodies of the device routes.
//! - [`authorizations`]: request and response bodies of the authorization routes, and the
//!   `Idempotency-Key` header.
//! - [`body`]: size-limited request bodies, zeroized response bodies, request ids.

pub mod authorizations;
pub mod body;
pub mod devices;
pub mod error;
mod routes;
pub mod types;

pub use body::SecretBuf;
pub use error::ApiError;
pub use routes::handle;

use crate::jose::AuthorizationSigner;
use crate::keys::Hsm;
use crate::service::{Authorizations, Devices, Vault};
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
    /// The HSM (for readiness).
    pub hsm: Hsm,
    /// The authorization signer; its public keys are served at `/v1/keys/jwks`.
    pub signer: AuthorizationSigner,
    /// Metrics, shared with the store wrapper.
    pub metrics: Arc<Metrics>,
    /// The largest request body accepted.
    pub max_body_bytes: usize,
}

impl App {
    /// Bundles the use cases, HSM handle, authorization signer, metrics and body limit.
    pub fn new(
        vault: Vault,
        devices: Devices,
        authorizations: Authorizations,
        hsm: Hsm,
        signer: AuthorizationSigner,
        metrics: Arc<Metrics>,
        max_body_bytes: usize,
    ) -> Self {
        Self {
            vault,
            devices,
            authorizations,
            hsm,
            signer,
            metrics,
            max_body_bytes,
        }
    }
}
