//! Observability: structured logs (tracing, to stderr) and Prometheus metrics.
//!
//! - [`metrics`]: lock-free counters and histograms and their text rendering.
//! - [`logging`]: the tracing subscriber.

mod logging;
mod metrics;

pub use logging::{init_logging, LogFormat};
pub use metrics::{Metrics, DURATION_BUCKETS, HSM_OPS, ROUTES, STORE_OPS};
