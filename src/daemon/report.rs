//! `payhsm audit report --data-dir`: the evidence report made on the daemon's host, from the
//! store opened read-only and signed with the audit key in the HSM, as the daemon would.

use super::bootstrap::open_hsm;
use super::DaemonError;
use crate::audit::report::{Period, SignedReport};
use crate::config::{Config, StoreConfig};
use crate::fault::Fault;
use crate::jose::Jwk;
use crate::service::{inventory_keys, key_listing, signed_report, AuditSigner, Inventory};

/// Where the facts of a report made offline come from: the data directory is read with the
/// dev defaults, not the serving daemon's configuration file.
const OFFLINE_SOURCE: &str = "a data directory read offline (payhsmd dev defaults: token format \
                              as `payhsmd dev`; the TLS revocation setting is not known)";

/// The signed evidence report of `period` from the data directory of `config`. Data key check
/// values are left out: they would need the data keys unwrapped into this process.
pub async fn audit_report(config: &Config, period: Period) -> Result<SignedReport, DaemonError> {
    let StoreConfig::Sqlite { path, .. } = &config.store else {
        return Err(DaemonError::Store(Fault::new(
            "a PostgreSQL vault's report is made over the API: payhsm audit report --url",
        )));
    };
    let store = crate::store::sqlite::open_read_only(path)
        .map_err(|e| DaemonError::Store(Fault::caused_by("cannot open the store", e)))?;
    let hsm = open_hsm(config, false).await?;
    let made = async {
        let label = &config.pkcs11.audit_key_label;
        let public = hsm
            .ensure_signing_key(label)
            .await
            .map_err(|e| DaemonError::Hsm(Fault::caused_by("audit signing key", e)))?;
        let service = |e: crate::service::Error| {
            DaemonError::Store(Fault::caused_by("building the evidence report", e))
        };
        let listing = key_listing(
            Inventory {
                store: &store,
                hsm: &hsm,
                kek_label: &config.pkcs11.kek_label,
                audit_key_label: label,
            },
            |_| None,
        )
        .await
        .map_err(service)?;
        let facts = crate::service::system_facts(
            OFFLINE_SOURCE,
            config.token_format,
            crate::transport::tls::tls_facts(None),
        );
        signed_report(
            &store,
            AuditSigner {
                hsm: &hsm,
                label,
                jwk: &Jwk::from_public_key(public),
            },
            period,
            inventory_keys(listing),
            facts,
        )
        .await
        .map_err(service)
    }
    .await;
    // On every path, before the process exits (see `Hsm::shutdown`).
    hsm.shutdown().await;
    made
}
