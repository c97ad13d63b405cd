//! Start-up of `payhsmd`: self-tests, hardening, the HSM, the keys, the store, the policy, then
//! the mTLS listener. Any failure before serving stops the daemon with a clear message; nothing
//! is served half-initialized.

pub mod anchors;
mod bootstrap;
mod error;
pub mod mds;
mod report;

pub(crate) use bootstrap::read_pin;
pub use bootstrap::{
    confine_files, dev_tool_config, export_audit, export_with, file_access, open_keys,
    prepare_dev_dir, record_dev_module, run, use_softhsm2_conf, Keys,
};
pub use error::DaemonError;
pub use report::{audit_report, report_with, OfflineKeys};
