//! The FIDO Metadata Service BLOB (and Google's Android attestation revocation list): read and
//! verified at start (a BLOB that does not verify,
//! is a rollback, or is stale under `stale = "refuse"` stops the daemon), then again on SIGHUP
//! and every `reload_interval` (such a BLOB is then logged and the one in force stays).

use super::DaemonError;
use crate::config::MdsConfig;
use crate::fault::{Chain, Fault};
use crate::service::{AndroidRevocations, InstallOutcome, Metadata};
use crate::telemetry::Metrics;
use crate::webauthn::attestation::android_key::RevocationList;
use crate::webauthn::attestation::mds::{verify_blob, MAX_BLOB_BYTES};
use crate::webauthn::attestation::TrustAnchors;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// Reads Google's Android attestation revocation list and puts it in force.
pub fn load_revocations(path: &Path, revocations: &AndroidRevocations) -> Result<usize, Fault> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| {
        Fault::caused_by(
            format!("cannot read the Android revocation list {shown}"),
            e,
        )
    })?;
    let list = RevocationList::parse(&bytes)
        .map_err(|why| Fault::new(format!("the Android revocation list {shown}: {why}")))?;
    let n = list.len();
    revocations.install(list);
    Ok(n)
}

/// The trust files the daemon reloads: the MDS BLOB and the Android revocation list.
pub struct Reloads {
    /// The BLOB, its root, and where it is put in force.
    pub mds: Option<(MdsConfig, TrustAnchors, Arc<Metadata>)>,
    /// The revocation list file and where it is put in force.
    pub revocations: Option<(PathBuf, Arc<AndroidRevocations>)>,
}

/// Reloads the trust files on SIGHUP, and every `reload_interval` of the MDS configuration
/// (hourly without one), for as long as the runtime runs. A failed reload is logged with its
/// cause; what is in force stays.
pub fn spawn_reloads(reloads: Reloads, metrics: Arc<Metrics>) -> Result<(), DaemonError> {
    use tokio::signal::unix::{signal, SignalKind};
    if reloads.mds.is_none() && reloads.revocations.is_none() {
        return Ok(());
    }
    let mut hangup = signal(SignalKind::hangup())
        .map_err(|e| DaemonError::Io(Fault::caused_by("cannot wait for SIGHUP", e)))?;
    let interval = reloads
        .mds
        .as_ref()
        .map_or(Duration::from_secs(3600), |(c, _, _)| c.reload_interval);
    let reloads = Arc::new(reloads);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(interval);
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
            let (reloads, metrics) = (reloads.clone(), metrics.clone());
            let done = tokio::task::spawn_blocking(move || {
                if let Some((config, anchor, metadata)) = &reloads.mds {
                    match load(config, anchor, metadata, &metrics) {
                        Ok(outcome) => tracing::info!(why, ?outcome, "MDS BLOB reloaded"),
                        Err(e) => tracing::error!(
                            why,
                            error = %Chain(&e),
                            "MDS BLOB not reloaded; the one in force stays"
                        ),
                    }
                }
                if let Some((path, revocations)) = &reloads.revocations {
                    match load_revocations(path, revocations) {
                        Ok(n) => {
                            tracing::info!(why, entries = n, "Android revocation list reloaded")
                        }
                        Err(e) => tracing::error!(
                            why,
                            error = %Chain(&e),
                            "Android revocation list not reloaded; the one in force stays"
                        ),
                    }
                }
            })
            .await;
            if let Err(e) = done {
                tracing::error!(why, error = %e, "trust file reload task failed");
            }
        }
    });
    Ok(())
}
