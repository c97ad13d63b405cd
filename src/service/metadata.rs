//! The FIDO Metadata Service BLOB in force: installed at start and on each reload (never
//! replaced by an older one), asked at every enrolment and every payment.
//!
//! The BLOB is read and verified by the daemon (`daemon::mds`); this holds the result and
//! says what it means for one authenticator model.

use crate::config::StaleBlob;
use crate::webauthn::attestation::android_key::RevocationList;
use crate::webauthn::attestation::mds::{MetadataBlob, MetadataEntry};
use std::sync::{Arc, PoisonError, RwLock};

/// Google's Android attestation revocation list in force, if one is configured.
#[derive(Debug, Default)]
pub struct AndroidRevocations {
    current: RwLock<Option<Arc<RevocationList>>>,
}

impl AndroidRevocations {
    /// Puts a list in force (a newer fetch replaces the whole list).
    pub fn install(&self, list: RevocationList) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(list));
    }

    /// The list in force.
    pub fn current(&self) -> Option<Arc<RevocationList>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A verified BLOB and when it was installed.
#[derive(Debug)]
pub struct Installed {
    /// The BLOB.
    pub blob: MetadataBlob,
    /// When this BLOB (this `no`) was first installed.
    pub since: time::OffsetDateTime,
}

/// Why a BLOB was not installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallError {
    /// Its `no` is lower than the installed one's: a rollback.
    Rollback {
        /// The installed BLOB's `no`.
        installed: u64,
        /// The offered one's.
        offered: u64,
    },
    /// It is past its `nextUpdate` and stale BLOBs are refused.
    Stale {
        /// Its `nextUpdate`.
        next_update: time::Date,
    },
}

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rollback { installed, offered } => write!(
                f,
                "the MDS BLOB's no {offered} is lower than the installed one's ({installed}): \
                 refused as a rollback"
            ),
            Self::Stale { next_update } => write!(
                f,
                "the MDS BLOB is past its nextUpdate ({next_update}) and \
                 webauthn.mds.stale = \"refuse\""
            ),
        }
    }
}

impl std::error::Error for InstallError {}

/// What installing did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstallOutcome {
    /// A newer BLOB is in force.
    Replaced,
    /// The same `no` as the installed one: nothing changed.
    Unchanged,
}

/// What the Metadata Service says of one authenticator model. Cheap to make: the statuses are
/// static names and the entry stays in the BLOB in force, shared.
#[derive(Debug, Clone)]
pub struct ModelStatus {
    /// The latest certification status, or `none`.
    pub certification: &'static str,
    /// The latest status, or `none`.
    pub mds_status: &'static str,
    /// The refusal code of the latest status, when it forbids the model.
    pub refusal: Option<&'static str>,
    /// The BLOB and the entry's place in it, when the BLOB lists the model.
    listed: Option<(Arc<Installed>, usize)>,
}

impl ModelStatus {
    fn unknown() -> Self {
        Self {
            certification: "none",
            mds_status: "none",
            refusal: None,
            listed: None,
        }
    }

    fn of(installed: Arc<Installed>, index: usize) -> Self {
        let Some(entry) = installed.blob.entries.get(index) else {
            return Self::unknown();
        };
        Self {
            certification: entry.certification().map_or("none", |s| s.as_str()),
            mds_status: entry.latest_status().map_or("none", |r| r.status.as_str()),
            refusal: entry.refusal(),
            listed: Some((Arc::clone(&installed), index)),
        }
    }

    /// The model's entry, when the BLOB lists it.
    pub fn entry(&self) -> Option<&MetadataEntry> {
        self.listed
            .as_ref()
            .and_then(|(installed, i)| installed.blob.entries.get(*i))
    }
}

/// Why the Metadata Service could not be asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The BLOB in force is past its `nextUpdate` and stale BLOBs are refused.
    Stale,
}

/// The BLOB in force, if any, and the stale-BLOB policy.
#[derive(Debug)]
pub struct Metadata {
    current: RwLock<Option<Arc<Installed>>>,
    stale: StaleBlob,
    configured: bool,
}

impl Metadata {
    /// No Metadata Service: every model is `none`, nothing is refused.
    pub fn disabled() -> Self {
        Self {
            current: RwLock::new(None),
            stale: StaleBlob::Warn,
            configured: false,
        }
    }

    /// A Metadata Service whose BLOBs are then [`install`](Self::install)ed.
    pub fn new(stale: StaleBlob) -> Self {
        Self {
            current: RwLock::new(None),
            stale,
            configured: true,
        }
    }

    /// Whether a BLOB is configured.
    pub fn configured(&self) -> bool {
        self.configured
    }

    /// The BLOB in force.
    pub fn current(&self) -> Option<Arc<Installed>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts a verified BLOB in force unless it is older than the one in force, or stale
    /// under [`StaleBlob::Refuse`].
    pub fn install(
        &self,
        blob: MetadataBlob,
        now: time::OffsetDateTime,
    ) -> Result<InstallOutcome, InstallError> {
        if self.stale == StaleBlob::Refuse && blob.is_stale(now.date()) {
            return Err(InstallError::Stale {
                next_update: blob.next_update,
            });
        }
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(installed) = current.as_ref() {
            if blob.no < installed.blob.no {
                return Err(InstallError::Rollback {
                    installed: installed.blob.no,
                    offered: blob.no,
                });
            }
            if blob.no == installed.blob.no {
                return Ok(InstallOutcome::Unchanged);
            }
        }
        *current = Some(Arc::new(Installed { blob, since: now }));
        Ok(InstallOutcome::Replaced)
    }

    /// What the BLOB in force says of the model with this AAGUID, or else (U2F) of this
    /// attestation certificate key identifier.
    pub fn model(
        &self,
        aaguid: &[u8; 16],
        key_identifier: Option<&str>,
        now: time::OffsetDateTime,
    ) -> Result<ModelStatus, LookupError> {
        let Some(installed) = self.current() else {
            return Ok(ModelStatus::unknown());
        };
        if self.stale == StaleBlob::Refuse && installed.blob.is_stale(now.date()) {
            return Err(LookupError::Stale);
        }
        Ok(match installed.blob.find(aaguid, key_identifier) {
            Some(i) => ModelStatus::of(installed, i),
            None => ModelStatus::unknown(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webauthn::attestation::mds::parse_aaguid;

    const AAGUID: &str = "a14eb40d-3b89-4f3b-8d46-13cdf3de625c";

    /// A verified-looking BLOB: the payload path of `mds` (signature checks are its tests').
    fn blob(no: u64, next_update: &str, status: &str) -> MetadataBlob {
        let json = format!(
            r#"{{"no":{no},"nextUpdate":"{next_update}","entries":[{{"aaguid":"{AAGUID}","metadataStatement":{{}},"statusReports":[{{"status":"{status}","effectiveDate":"2024-01-01"}}]}}]}}"#
        );
        crate::webauthn::attestation::mds::payload_for_tests(&json)
    }

    fn now() -> time::OffsetDateTime {
        time::macros::datetime!(2026-12-07 12:00 UTC)
    }

    #[test]
    fn an_older_blob_is_a_rollback_and_the_same_one_changes_nothing() {
        let m = Metadata::new(StaleBlob::Refuse);
        let g = parse_aaguid(AAGUID).unwrap();
        assert_eq!(
            m.install(blob(5, "2030-01-01", "FIDO_CERTIFIED_L2"), now()),
            Ok(InstallOutcome::Replaced)
        );
        assert_eq!(
            m.install(blob(4, "2030-01-01", "REVOKED"), now()),
            Err(InstallError::Rollback {
                installed: 5,
                offered: 4
            })
        );
        assert_eq!(
            m.install(blob(5, "2030-01-01", "REVOKED"), now()),
            Ok(InstallOutcome::Unchanged)
        );
        let model = m.model(&g, None, now()).unwrap();
        assert_eq!(
            (model.certification, model.refusal),
            ("FIDO_CERTIFIED_L2", None)
        );
        assert_eq!(
            m.install(blob(6, "2030-01-01", "REVOKED"), now()),
            Ok(InstallOutcome::Replaced)
        );
        assert_eq!(
            m.model(&g, None, now()).unwrap().refusal,
            Some("mds_revoked")
        );
    }

    #[test]
    fn a_stale_blob_is_refused_or_kept_with_a_warning_as_configured() {
        let stale = || blob(1, "2026-12-06", "FIDO_CERTIFIED_L1");
        let refusing = Metadata::new(StaleBlob::Refuse);
        assert!(matches!(
            refusing.install(stale(), now()),
            Err(InstallError::Stale { .. })
        ));
        // Installed fresh, then left to go stale: lookups are refused.
        refusing
            .install(blob(2, "2026-12-07", "FIDO_CERTIFIED_L1"), now())
            .unwrap();
        let g = parse_aaguid(AAGUID).unwrap();
        assert!(refusing.model(&g, None, now()).is_ok());
        let tomorrow = now() + time::Duration::days(1);
        assert!(matches!(
            refusing.model(&g, None, tomorrow),
            Err(LookupError::Stale)
        ));
        let warning = Metadata::new(StaleBlob::Warn);
        assert_eq!(
            warning.install(stale(), now()),
            Ok(InstallOutcome::Replaced)
        );
        assert_eq!(
            warning.model(&g, None, now()).unwrap().certification,
            "FIDO_CERTIFIED_L1"
        );
    }

    #[test]
    fn without_a_blob_every_model_is_none_and_nothing_is_refused() {
        let m = Metadata::disabled();
        let model = m.model(&[7; 16], Some("00"), now()).unwrap();
        assert_eq!(
            (model.certification, model.mds_status, model.refusal),
            ("none", "none", None)
        );
        // A zero AAGUID (U2F) is never looked up as an AAGUID.
        let m = Metadata::new(StaleBlob::Warn);
        m.install(blob(1, "2030-01-01", "REVOKED"), now()).unwrap();
        assert_eq!(m.model(&[0; 16], None, now()).unwrap().refusal, None);
    }
}
