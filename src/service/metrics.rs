//! Who may read the daemon's metrics: `GET /metrics` asks the policy (`read_metrics` on
//! `Metrics::"payhsm"`), like every route but `/healthz`, `/readyz` and the JWKS. A refusal is
//! audited like any other; an allowed read is not (a scraper reads every few seconds, and
//! the metrics hold no card data).

use super::{check_policy, Caller, Error};
use crate::policy::{Action, PolicyEngine, Resource};
use crate::store::Store;
use std::sync::Arc;

/// The `read_metrics` use case.
#[derive(Clone)]
pub struct MetricsAccess {
    store: Arc<dyn Store>,
    policy: Arc<PolicyEngine>,
}

impl MetricsAccess {
    /// Decides with `policy`, audits refusals in `store`.
    pub fn new(store: Arc<dyn Store>, policy: Arc<PolicyEngine>) -> Self {
        Self { store, policy }
    }

    /// `Ok` when `caller` may read the metrics; [`Error::Forbidden`] (audited) otherwise.
    pub async fn check(&self, caller: &Caller) -> Result<(), Error> {
        let store = self.store.as_ref();
        check_policy(
            store,
            &self.policy,
            caller,
            Action::ReadMetrics,
            Resource::Metrics,
            |_| {},
        )
        .await
        .map(drop)
    }
}
