//! `payhsm audit report --data-dir`: the evidence report made on the daemon's host, from the
//! store opened read-only and signed with the audit key in the HSM, as the daemon would.

use super::bootstrap::open_hsm;
use super::DaemonError;
use crate::audit::report::{Period, SignedReport};
use crate::card::TokenFormat;
use crate::config::{Config, StoreConfig};
use crate::fault::Fault;
use crate::jose::Jwk;
use crate::keys::Hsm;
use crate::service::{inventory_keys, key_listing, signed_report, AuditSigner, Inventory};
use crate::store::Store;

/// Where the facts of a report made offline come from: the data directory is read without the
/// serving daemon's configuration file.
const OFFLINE_SOURCE: &str = "a data directory read offline (token format: the default; the \
                              TLS revocation setting is not known)";

/// The signed evidence report of `period` from the dev data directory of `config`.
pub async fn audit_report(config: &Config, period: Period) -> Result<SignedReport, DaemonError> {
    let StoreConfig::Sqlite { path, .. } = &config.store else {
        return Err(DaemonError::Store(Fault::new(
            "a PostgreSQL vault's report is made over the API: payhsm audit report --url",
        )));
    };
    let store = crate::store::sqlite::open_read_only(path)
        .map_err(|e| DaemonError::Store(Fault::caused_by("cannot open the store", e)))?;
    let hsm = open_hsm(config, false).await?;
    let made = report_with(
        &store,
        &hsm,
        OfflineKeys {
            kek_label: Some(&config.pkcs11.kek_label),
            audit_key_label: &config.pkcs11.audit_key_label,
            token_format: config.token_format,
        },
        period,
    )
    .await;
    // On every path, before the process exits (see `Hsm::shutdown`).
    hsm.shutdown().await;
    made
}

/// What a report made offline needs to know of the keys and tokens.
#[derive(Debug, Clone, Copy)]
pub struct OfflineKeys<'a> {
    /// The KEK's label; `None`: the one that wrapped the newest data key on record (a data
    /// directory bound to a token names its KEK only in the daemon's configuration).
    pub kek_label: Option<&'a str>,
    /// The audit key's label (created if absent, as the export does).
    pub audit_key_label: &'a str,
    /// The token format to state.
    pub token_format: TokenFormat,
}

/// The signed evidence report of `period` from a `store` and an `hsm` the caller opened:
/// [`audit_report`], and a data directory bound to a token. Data key check values are left
/// out: they would need the data keys unwrapped into this process.
pub async fn report_with(
    store: &dyn Store,
    hsm: &Hsm,
    keys: OfflineKeys<'_>,
    period: Period,
) -> Result<SignedReport, DaemonError> {
    let public = hsm
        .ensure_signing_key(keys.audit_key_label)
        .await
        .map_err(|e| DaemonError::Hsm(Fault::caused_by("audit signing key", e)))?;
    let service = |e: crate::service::Error| {
        DaemonError::Store(Fault::caused_by("building the evidence report", e))
    };
    let recorded = match keys.kek_label {
        Some(_) => None,
        None => store
            .data_key_info()
            .await
            .map_err(|e| DaemonError::Store(Fault::caused_by("reading the data keys", e)))?
            .into_iter()
            .max_by_key(|d| d.version.0)
            .map(|d| d.kek_label),
    };
    let kek_label = keys
        .kek_label
        .or(recorded.as_deref())
        .unwrap_or(crate::config::defaults::KEK_LABEL);
    let listing = key_listing(
        Inventory {
            store,
            hsm,
            kek_label,
            audit_key_label: keys.audit_key_label,
        },
        |_| None,
    )
    .await
    .map_err(service)?;
    let facts = crate::service::system_facts(
        OFFLINE_SOURCE,
        keys.token_format,
        crate::transport::tls::tls_facts(None),
    );
    signed_report(
        store,
        AuditSigner {
            hsm,
            label: keys.audit_key_label,
            jwk: &Jwk::from_public_key(public),
        },
        period,
        inventory_keys(listing),
        facts,
    )
    .await
    .map_err(service)
}
