//! The FIDO Metadata Service BLOB: read and verified at start (a BLOB that does not verify,
//! is a rollback, or is stale under `stale = "refuse"` stops the daemon), then again on SIGHUP
//! and every `reload_interval` (such a BLOB is then logged and the one in force stays).

use super::DaemonError;
use crate::config::MdsConfig;
use crate::fault::{Chain, Fault};
use crate::service::{InstallOutcome, Metadata};
use crate::telemetry::Metrics;
use crate::webauthn::attestation::mds::{verify_blob, MAX_BLOB_BYTES};
use crate::webauthn::attestation::TrustAnchors;
use std::io::Read as _;
use std::sync::Arc;

/// The configured MDS root; the default one (from the system store) must have its pinned
/// SHA-256.
pub fn read_anchor(config: &MdsConfig) -> Result<TrustAnchors, DaemonError> {
    let err = |what: String| DaemonError::Anchors(Fault::new(what));
    let bytes = std::fs::read(&config.anchor).map_err(|e| {
        DaemonError::Anchors(Fault::caused_by(
            format!(
                "the MDS root {} (set webauthn.mds.anchor)",
                config.anchor.display()
            ),
            e,
        ))
    })?;
    let anchors =
        TrustAnchors::from_certificates(vec![(config.anchor.display().to_string(), bytes)])
            .map_err(|e| err(format!("{}: {}", config.anchor.display(), e.code())))?;
    if let Some(pinned) = config.anchor_sha256 {
        let der = anchors.anchors.first().map(|a| a.der.as_slice());
        let digest = ring::digest::digest(&ring::digest::SHA256, der.unwrap_or_default());
        if digest.as_ref() != pinned {
            return Err(err(format!(
                "{} is not GlobalSign Root CA - R3 (its SHA-256 differs): set webauthn.mds.anchor",
                config.anchor.display()
            )));
        }
    }
    Ok(anchors)
}

/// Reads and verifies the BLOB file and puts it in force.
pub fn load(
    config: &MdsConfig,
    anchor: &TrustAnchors,
    metadata: &Metadata,
    metrics: &Metrics,
) -> Result<InstallOutcome, Fault> {
    let path = config.blob.display().to_string();
    let mut bytes = Vec::new();
    std::fs::File::open(&config.blob)
        .and_then(|f| f.take(MAX_BLOB_BYTES as u64 + 1).read_to_end(&mut bytes))
        .map_err(|e| Fault::caused_by(format!("cannot read the MDS BLOB {path}"), e))?;
    let now = time::OffsetDateTime::now_utc();
    let blob = verify_blob(&bytes, anchor, now)
        .map_err(|e| Fault::caused_by(format!("the MDS BLOB {path}"), e))?;
    let (no, next_update, entries) = (blob.no, blob.next_update, blob.entries.len());
    let stale = blob.is_stale(now.date());
    let outcome = metadata
        .install(blob, now)
        .map_err(|e| Fault::caused_by(format!("the MDS BLOB {path}"), e))?;
    if let Some(installed) = metadata.current() {
        metrics.record_mds_blob(
            installed.blob.no,
            installed.since.unix_timestamp(),
            installed
                .blob
                .next_update
                .midnight()
                .assume_utc()
                .unix_timestamp(),
        );
    }
    if outcome == InstallOutcome::Replaced {
        tracing::info!(no, entries, %next_update, "MDS BLOB in force");
    }
    if stale {
        tracing::warn!(no, %next_update, "the MDS BLOB is past its nextUpdate: fetch a fresh one");
    }
    Ok(outcome)
}

/// The Metadata Service of the configuration: disabled without `[webauthn.mds]`, else with
/// its BLOB loaded (or the daemon does not start).
pub fn open(
    config: Option<&MdsConfig>,
    metrics: &Metrics,
) -> Result<(Arc<Metadata>, Option<TrustAnchors>), DaemonError> {
    let Some(config) = config else {
        return Ok((Arc::new(Metadata::disabled()), None));
    };
    let anchor = read_anchor(config)?;
    let metadata = Arc::new(Metadata::new(config.stale));
    load(config, &anchor, &metadata, metrics).map_err(DaemonError::Anchors)?;
    Ok((metadata, Some(anchor)))
}

/// Reloads the BLOB on SIGHUP and every `reload_interval`, for as long as the runtime runs.
/// A failed reload is logged with its cause; the BLOB in force stays.
pub fn spawn_reloads(
    config: MdsConfig,
    anchor: TrustAnchors,
    metadata: Arc<Metadata>,
    metrics: Arc<Metrics>,
) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = signal(SignalKind::hangup())
        .map_err(|e| DaemonError::Io(Fault::caused_by("cannot wait for SIGHUP", e)))?;
    tokio::spawn(async move {
        let mut every = tokio::time::interval(config.reload_interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            let why = tokio::select! {
                _ = every.tick() => "interval",
                got = hangup.recv() => match got {
                    Some(()) => "SIGHUP",
                    None => return,
                },
            };
            let (config, anchor, metadata, metrics) = (
                config.clone(),
                anchor.clone(),
                metadata.clone(),
                metrics.clone(),
            );
            let loaded =
                tokio::task::spawn_blocking(move || load(&config, &anchor, &metadata, &metrics))
                    .await;
            match loaded {
                Ok(Ok(outcome)) => tracing::info!(why, ?outcome, "MDS BLOB reloaded"),
                Ok(Err(e)) => tracing::error!(
                    why,
                    error = %Chain(&e),
                    "MDS BLOB not reloaded; the one in force stays"
                ),
                Err(e) => tracing::error!(why, error = %e, "MDS BLOB reload task failed"),
            }
        }
    });
    Ok(())
}
