//! The network edge: a rustls listener that accepts only TLS 1.3 clients holding a
//! certificate from the configured client CA, the caller's identity taken from that
//! certificate, and HTTP/1.1 and HTTP/2 served by hyper over it.
//!
//! - [`tls`]: the rustls server configuration from PEM files.
//! - [`identity`]: the principal from a client certificate (sans-io, fuzzed).
//! - [`server`]: the accept loop: connection budgets, handshake timeout, graceful drain.
//! - [`bare_errors`]: hyper's own HTTP/1.1 error answers given the JSON error body (sans-io).
//! - [`budget`]: how many connections each kind of caller may hold (sans-io bookkeeping).
//! - [`watchdog`]: what one connection is doing: idle, or stalled by a client that does not read.
//! - [`verified`]: client certificate chains already verified, remembered per configuration.

pub mod bare_errors;
pub mod budget;
pub mod identity;
pub mod server;
pub mod tls;
pub mod verified;
pub mod watchdog;

pub use identity::{principal_from_certificate, IdentityError};
pub use server::{run, ServerLimits};
pub use tls::{server_config, server_tls, ServerTls, TlsError, TlsFiles};
