//! Key lifecycle use cases: list the keys, approve key changes under dual control (two
//! distinct custodians within a window), and rewrap records to the active data key.
//!
//! Every key change (rotate, activate, retire, destroy) is asked for by two custodians, each
//! with their own client certificate. The first approval is recorded and audited; the second,
//! from another identity before the first lapses, applies the change. Each approval and the
//! change itself are audited with the custodian's identity, never with key material.

use super::{Caller, Error};
use crate::audit::{AuditEvent, PolicyVerdict};
use crate::ceremony::kcv;
use crate::config::KeysConfig;
use crate::jose::{thumbprint, AuthorizationSigner};
use crate::keys::{DataKeyState, Hsm, KeyPurpose, KeyVersion, SharedRing};
use crate::policy::{Action, PolicyEngine, Resource};
use crate::store::{
    ApprovalOutcome, KeyApproval, KeyChangeOutcome, Rewrapped, SigningKeyRecord, SigningKeyState,
    Store,
};
use serde::Serialize;
use std::sync::Arc;
use time::OffsetDateTime;

/// Most records one rewrap call moves.
pub const MAX_REWRAP_BATCH: usize = 5_000;

/// The labels of the keys in the token and the lifecycle settings.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// The KEK that wraps new data keys.
    pub kek_label: String,
    /// The audit checkpoint key.
    pub audit_key_label: String,
    /// The first authorization signing key; later versions are named after it.
    pub authz_key_label: String,
    /// Dual control window and cryptoperiods.
    pub lifecycle: KeysConfig,
}

/// What a key change does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChangeKind {
    /// Data keys: create the next version and make it seal (the active one becomes
    /// decrypt-only). Signing keys: generate the next key and publish it (it signs only once
    /// activated).
    Rotate,
    /// Signing keys: a published key starts signing; the one before it keeps verifying.
    Activate,
    /// Take a key out of use: a data key no record uses, a signing key whose authorizations
    /// have all expired.
    Retire,
    /// Erase a retired key.
    Destroy,
}

impl KeyChangeKind {
    /// The name in the API, the CLI and the audit log.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rotate => "rotate",
            Self::Activate => "activate",
            Self::Retire => "retire",
            Self::Destroy => "destroy",
        }
    }

    /// Parses the name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "rotate" => Self::Rotate,
            "activate" => Self::Activate,
            "retire" => Self::Retire,
            "destroy" => Self::Destroy,
            _ => return None,
        })
    }
}

/// A key change as custodians ask for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyChange {
    /// What to do.
    pub kind: KeyChangeKind,
    /// To which kind of key.
    pub purpose: KeyPurpose,
    /// Which version (none for `rotate`, which makes the next one).
    pub version: Option<u32>,
}

impl KeyChange {
    /// The canonical text approvals are matched on, e.g. `retire data 1`.
    pub fn canonical(&self) -> String {
        match self.version {
            Some(v) => format!("{} {} {v}", self.kind.as_str(), self.purpose.as_str()),
            None => format!("{} {}", self.kind.as_str(), self.purpose.as_str()),
        }
    }

    fn check(&self) -> Result<u32, Error> {
        match (self.kind, self.purpose, self.version) {
            (KeyChangeKind::Rotate, _, None) => Ok(0),
            (KeyChangeKind::Rotate, _, Some(_)) => Err(Error::UnsupportedKeyChange(
                "rotate makes the next version: give no version",
            )),
            (KeyChangeKind::Activate, KeyPurpose::Data, _) => Err(Error::UnsupportedKeyChange(
                "a data key version is activated by `rotate`, which creates it",
            )),
            (_, _, Some(v)) if v >= 1 => Ok(v),
            _ => Err(Error::UnsupportedKeyChange(
                "activate, retire and destroy need a key version (1 or more)",
            )),
        }
    }
}

/// What an approval achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// Recorded; a second custodian must approve the same change before `expires_at`.
    Pending {
        /// The canonical change.
        change: String,
        /// Who approved.
        approved_by: String,
        /// When the approval lapses.
        expires_at: String,
    },
    /// Both approvals are in and the change was made.
    Applied {
        /// The canonical change.
        change: String,
        /// The two custodians, first approver first.
        approved_by: [String; 2],
        /// What changed, for people (versions, KCV or thumbprint).
        summary: String,
    },
}

/// One key as `keys list` shows it: never key material, wrapped or not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyEntry {
    /// `key-encryption`, `data`, `authorization-signing` or `audit-checkpoint`.
    pub purpose: &'static str,
    /// Version, for versioned keys.
    pub version: Option<u32>,
    /// CKA_LABEL in the token, for token objects.
    pub label: Option<String>,
    /// Algorithm.
    pub algorithm: &'static str,
    /// AES-CMAC key check value (10 hex digits, `docs/kcv.md`), for symmetric keys.
    pub kcv: Option<String>,
    /// RFC 7638 thumbprint, for public keys.
    pub thumbprint: Option<String>,
    /// Lifecycle state.
    pub state: String,
    /// RFC 3339 UTC.
    pub created_at: Option<String>,
    /// When it started being used.
    pub activated_at: Option<String>,
    /// When it was taken out of use (retired or destroyed).
    pub ended_at: Option<String>,
    /// The end of its cryptoperiod.
    pub cryptoperiod_end: Option<String>,
    /// Records that use it: token records sealed under a data key, data keys wrapped by the
    /// KEK, authorizations signed by a signing key.
    pub records: Option<u64>,
    /// The key is in use past its cryptoperiod.
    pub cryptoperiod_exceeded: bool,
}

/// Every key, and warnings for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyListing {
    /// The keys: KEK, data keys, signing keys, audit key.
    pub keys: Vec<KeyEntry>,
    /// Cryptoperiods exceeded and other things to act on.
    pub warnings: Vec<String>,
}

/// Where a rewrap stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RewrapProgress {
    /// Records moved by this call.
    pub rewrapped: u64,
    /// Live records still sealed under an older version.
    pub remaining: u64,
    /// The version records are moved to.
    pub active_version: u32,
}

/// Keeps this replica's data key ring and authorization signer in step with the stored keys,
/// which another replica may change: run [`KeySync::sync`] periodically, and at once when a
/// request meets a key version it does not hold. A change made here updates both directly.
pub struct KeySync {
    store: Arc<dyn Store>,
    hsm: Hsm,
    ring: Arc<SharedRing>,
    signer: AuthorizationSigner,
    /// The signing keys' versions and states the signer was last built from.
    signing_seen: tokio::sync::Mutex<Vec<(u32, SigningKeyState)>>,
}

impl std::fmt::Debug for KeySync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySync").finish_non_exhaustive()
    }
}

impl KeySync {
    /// Syncs `ring` and `signer` from `store`, unwrapping new data keys with `hsm`.
    pub fn new(
        store: Arc<dyn Store>,
        hsm: Hsm,
        ring: Arc<SharedRing>,
        signer: AuthorizationSigner,
    ) -> Self {
        Self {
            store,
            hsm,
            ring,
            signer,
            signing_seen: tokio::sync::Mutex::new(Vec::new()),
        }
    }

    /// Brings the ring and the signer to the stored keys; says whether anything changed.
    /// Concurrent calls run one after the other (the second then finds nothing to do).
    pub async fn sync(&self) -> Result<bool, Error> {
        let mut seen = self.signing_seen.lock().await;
        let data = self.sync_data_keys().await?;
        let keys = self.store.signing_keys().await?;
        let now: Vec<_> = keys.iter().map(|k| (k.version, k.state)).collect();
        if *seen == now {
            return Ok(data);
        }
        let (label, public, others) = KeyAdmin::signer_keys(&self.hsm, &keys).await?;
        self.signer
            .replace(&label, public, &others)
            .map_err(Error::Signer)?;
        *seen = now;
        Ok(true)
    }

    async fn sync_data_keys(&self) -> Result<bool, Error> {
        let stored = self.store.data_keys().await?;
        let live: Vec<_> = stored
            .iter()
            .filter(|k| matches!(k.state, DataKeyState::Active | DataKeyState::DecryptOnly))
            .collect();
        let Some(active) = live
            .iter()
            .filter(|k| k.state == DataKeyState::Active)
            .map(|k| k.version)
            .max()
        else {
            return Err(Error::Keys(crate::keys::KeyError::NoActiveKey));
        };
        let ring = self.ring.current();
        let loaded = ring.versions();
        let versions: Vec<_> = live.iter().map(|k| k.version).collect();
        if ring.active() == active
            && loaded.len() == versions.len()
            && versions.iter().all(|v| loaded.contains(v))
        {
            return Ok(false);
        }
        let mut added = Vec::new();
        for key in live.iter().filter(|k| !loaded.contains(&k.version)) {
            let material = self.hsm.unwrap_data_key(key).await.map_err(Error::Hsm)?;
            added.push((key.version, material));
        }
        let next = ring.reconciled(&versions, added, active)?;
        tracing::info!(
            active = active.0,
            versions = ?versions.iter().map(|v| v.0).collect::<Vec<_>>(),
            "data key ring reloaded from the store"
        );
        self.ring.replace(next);
        Ok(true)
    }
}

/// Where a key listing is read from.
pub(crate) struct Inventory<'a> {
    /// The store (data keys, signing keys).
    pub(crate) store: &'a dyn Store,
    /// The HSM (KEK check value, audit key).
    pub(crate) hsm: &'a Hsm,
    /// The KEK's label.
    pub(crate) kek_label: &'a str,
    /// The audit key's label.
    pub(crate) audit_key_label: &'a str,
}

/// Every key with its state, dates, check value or thumbprint and usage; `data_kcv` gives a
/// data key version's check value when its key is loaded.
pub(crate) async fn key_listing(
    from: Inventory<'_>,
    data_kcv: impl Fn(KeyVersion) -> Option<[u8; 5]>,
) -> Result<KeyListing, Error> {
    let now = OffsetDateTime::now_utc();
    let exceeded = |state_in_use: bool, end: &Option<String>| {
        state_in_use && end.as_deref().and_then(parse_time).is_some_and(|e| e < now)
    };
    let mut keys = Vec::new();
    let mut warnings = Vec::new();

    let data = from.store.data_key_info().await?;
    let kek = from.kek_label;
    let kek_kcv = match from.hsm.kek_kcv(kek).await {
        Ok(k) => Some(kcv::display(&k)),
        Err(e) => {
            warnings.push(format!("the KEK {kek:?} did not answer: {e}"));
            None
        }
    };
    let wrapped_by_kek = data
        .iter()
        .filter(|d| d.kek_label == kek && d.state != DataKeyState::Destroyed)
        .count();
    keys.push(KeyEntry {
        purpose: "key-encryption",
        version: None,
        label: Some(kek.to_owned()),
        algorithm: "AES-256",
        kcv: kek_kcv,
        thumbprint: None,
        state: "active".to_owned(),
        created_at: None,
        activated_at: None,
        ended_at: None,
        cryptoperiod_end: None,
        records: Some(wrapped_by_kek as u64),
        cryptoperiod_exceeded: false,
    });

    for d in data {
        let over = exceeded(d.state == DataKeyState::Active, &d.cryptoperiod_end);
        if over {
            warnings.push(format!(
                "data key version {} is past its cryptoperiod ({}): rotate it",
                d.version.0,
                d.cryptoperiod_end.as_deref().unwrap_or("-")
            ));
        }
        keys.push(KeyEntry {
            purpose: KeyPurpose::Data.as_str(),
            version: Some(d.version.0),
            label: None,
            algorithm: "AES-256-GCM + HMAC-SHA256 (HKDF-SHA256 subkeys)",
            kcv: data_kcv(d.version).map(|k| kcv::display(&k)),
            thumbprint: None,
            state: d.state.as_str().to_owned(),
            created_at: Some(d.created_at),
            activated_at: d.activated_at,
            ended_at: d.destroyed_at.or(d.retired_at),
            cryptoperiod_end: d.cryptoperiod_end,
            records: Some(d.records),
            cryptoperiod_exceeded: over,
        });
    }

    for k in from.store.signing_keys().await? {
        let over = exceeded(k.state == SigningKeyState::Active, &k.cryptoperiod_end);
        if over {
            warnings.push(format!(
                "authorization signing key version {} is past its cryptoperiod ({}): rotate it",
                k.version,
                k.cryptoperiod_end.as_deref().unwrap_or("-")
            ));
        }
        keys.push(KeyEntry {
            purpose: KeyPurpose::AuthorizationSigning.as_str(),
            version: Some(k.version),
            label: Some(k.label),
            algorithm: "ES256 (ECDSA P-256)",
            kcv: None,
            thumbprint: Some(k.kid),
            state: k.state.as_str().to_owned(),
            created_at: Some(k.created_at),
            activated_at: k.activated_at,
            ended_at: k.destroyed_at.or(k.retired_at).or(k.deactivated_at),
            cryptoperiod_end: k.cryptoperiod_end,
            records: Some(k.authorizations),
            cryptoperiod_exceeded: over,
        });
    }

    let audit_label = from.audit_key_label;
    let audit_kid = match from.hsm.ensure_signing_key(audit_label).await {
        Ok(public) => Some(thumbprint(&public)),
        Err(e) => {
            warnings.push(format!("the audit key {audit_label:?} did not answer: {e}"));
            None
        }
    };
    keys.push(KeyEntry {
        purpose: "audit-checkpoint",
        version: None,
        label: Some(audit_label.to_owned()),
        algorithm: "ES256 (ECDSA P-256)",
        kcv: None,
        thumbprint: audit_kid,
        state: "active".to_owned(),
        created_at: None,
        activated_at: None,
        ended_at: None,
        cryptoperiod_end: None,
        records: None,
        cryptoperiod_exceeded: false,
    });
    Ok(KeyListing { keys, warnings })
}

/// Key lifecycle over the store, the HSM, the live data key ring and the signer.
pub struct KeyAdmin {
    store: Arc<dyn Store>,
    policy: Arc<PolicyEngine>,
    hsm: Hsm,
    ring: Arc<SharedRing>,
    signer: AuthorizationSigner,
    settings: KeySettings,
    /// One key change at a time in this daemon.
    changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for KeyAdmin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyAdmin").finish_non_exhaustive()
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::clock::format_rfc3339(t)
}

fn after(t: OffsetDateTime, d: std::time::Duration) -> OffsetDateTime {
    t.saturating_add(time::Duration::try_from(d).unwrap_or(time::Duration::MAX))
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

fn outcome_error(outcome: KeyChangeOutcome) -> Result<(), Error> {
    match outcome {
        KeyChangeOutcome::Done => Ok(()),
        KeyChangeOutcome::NotFound => Err(Error::KeyNotFound),
        KeyChangeOutcome::StateConflict(s) => Err(Error::KeyStateConflict(s)),
        KeyChangeOutcome::InUse { records, until } => Err(Error::KeyInUse { records, until }),
    }
}

/// The label of signing key `version`: the configured label for version 1, then the same stem
/// with `-v<version>` (`payhsm-authz-v1` -> `payhsm-authz-v2`).
fn signing_label(base: &str, version: u32) -> String {
    if version <= 1 {
        return base.to_owned();
    }
    let stem = base.strip_suffix("-v1").unwrap_or(base);
    format!("{stem}-v{version}")
}

impl KeyAdmin {
    /// Key lifecycle over these parts.
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicyEngine>,
        hsm: Hsm,
        ring: Arc<SharedRing>,
        signer: AuthorizationSigner,
        settings: KeySettings,
    ) -> Self {
        Self {
            store,
            policy,
            hsm,
            ring,
            signer,
            settings,
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// Opens the authorization signer from the signing keys on record. On first start (no
    /// record) the configured key is proven and recorded as version 1, active.
    pub async fn open_signer(
        store: &dyn Store,
        hsm: &Hsm,
        settings: &KeySettings,
    ) -> Result<AuthorizationSigner, Error> {
        let mut keys = store.signing_keys().await?;
        if keys.is_empty() {
            let label = &settings.authz_key_label;
            let public = AuthorizationSigner::prove(hsm, label)
                .await
                .map_err(Error::Signer)?;
            let now = OffsetDateTime::now_utc();
            let record = SigningKeyRecord {
                version: 1,
                label: label.clone(),
                kid: thumbprint(&public),
                state: SigningKeyState::Active,
                created_at: rfc3339(now),
                activated_at: Some(rfc3339(now)),
                deactivated_at: None,
                retired_at: None,
                destroyed_at: None,
                cryptoperiod_end: Some(rfc3339(after(
                    now,
                    settings.lifecycle.signing_key_cryptoperiod,
                ))),
                authorizations: 0,
            };
            // The daemon's own act at start-up: no policy governs it.
            let mut event = AuditEvent::new(
                rfc3339(now),
                "startup".to_owned(),
                "payhsmd".to_owned(),
                "signing_key_registered".to_owned(),
                PolicyVerdict::NotAsked,
            );
            event.outcome = "active".to_owned();
            event.detail = Some(format!(
                "authorization-signing version 1 label {label} kid {}",
                record.kid
            ));
            outcome_error(store.add_signing_key(record, event).await?)?;
            keys = store.signing_keys().await?;
        }
        let (label, public, others) = Self::signer_keys(hsm, &keys).await?;
        AuthorizationSigner::with_keys(hsm.clone(), &label, public, &others).map_err(Error::Signer)
    }

    /// The active key (proven by a signature) and the other keys in the JWKS, each checked
    /// against its recorded thumbprint.
    async fn signer_keys(
        hsm: &Hsm,
        keys: &[SigningKeyRecord],
    ) -> Result<
        (
            String,
            crate::keys::EcPublicKey,
            Vec<crate::keys::EcPublicKey>,
        ),
        Error,
    > {
        let active = keys
            .iter()
            .find(|k| k.state == SigningKeyState::Active)
            .ok_or_else(|| Error::KeyStateConflict("without an active signing key".into()))?;
        let public = AuthorizationSigner::prove(hsm, &active.label)
            .await
            .map_err(Error::Signer)?;
        let mismatch = |k: &SigningKeyRecord| {
            Error::Signer(crate::jose::SignError::NotTheRecordedKey {
                label: k.label.clone(),
                kid: k.kid.clone(),
            })
        };
        if thumbprint(&public) != active.kid {
            return Err(mismatch(active));
        }
        let mut others = Vec::new();
        for k in keys
            .iter()
            .filter(|k| k.state.in_jwks() && k.state != SigningKeyState::Active)
        {
            let public = hsm.ensure_signing_key(&k.label).await.map_err(Error::Hsm)?;
            if thumbprint(&public) != k.kid {
                return Err(mismatch(k));
            }
            others.push(public);
        }
        Ok((active.label.clone(), public, others))
    }

    async fn refresh_signer(&self) -> Result<(), Error> {
        let keys = self.store.signing_keys().await?;
        let (label, public, others) = Self::signer_keys(&self.hsm, &keys).await?;
        self.signer
            .replace(&label, public, &others)
            .map_err(Error::Signer)
    }

    /// Every key with its state, dates, check value or thumbprint and usage.
    pub async fn list(&self, caller: &Caller) -> Result<KeyListing, Error> {
        self.authorize(caller, Action::ReadKeys).await?;
        self.inventory().await
    }

    /// [`Self::list`] without asking the policy: for a caller already allowed something that
    /// includes it (the evidence report, under `read_audit`).
    pub(crate) async fn inventory(&self) -> Result<KeyListing, Error> {
        let ring = self.ring.current();
        key_listing(
            Inventory {
                store: self.store.as_ref(),
                hsm: &self.hsm,
                kek_label: &self.settings.kek_label,
                audit_key_label: &self.settings.audit_key_label,
            },
            |v| ring.kcv(v),
        )
        .await
    }

    /// One custodian's approval of `change`. The first is recorded ([`ChangeOutcome::Pending`]);
    /// a second custodian's approval of the same change within the window applies it.
    pub async fn approve(
        &self,
        caller: &Caller,
        change: KeyChange,
    ) -> Result<ChangeOutcome, Error> {
        let mut audit = self.authorize(caller, Action::ApproveKeyChange).await?;
        let canonical = change.canonical();
        audit.detail = Some(canonical.clone());
        if let Err(e) = change.check() {
            return Err(self.refuse(audit, e).await);
        }
        let _one_at_a_time = self.changes.lock().await;
        if let Err(e) = self.precheck(&change).await {
            return Err(self.refuse(audit, e).await);
        }
        let now = OffsetDateTime::now_utc();
        let approval = KeyApproval {
            change: canonical.clone(),
            custodian: caller.principal.as_str().to_owned(),
            now: rfc3339(now),
            expires_at: rfc3339(after(now, self.settings.lifecycle.approval_window)),
        };
        let me = approval.custodian.clone();
        match self
            .store
            .approve_key_change(approval, audit.clone())
            .await?
        {
            ApprovalOutcome::Pending { expires_at } => Ok(ChangeOutcome::Pending {
                change: canonical,
                approved_by: me,
                expires_at,
            }),
            ApprovalOutcome::SameCustodian { expires_at } => {
                Err(Error::SameCustodian { expires_at })
            }
            ApprovalOutcome::Granted { first } => {
                audit.action = format!("key_{}", change.kind.as_str());
                let summary = match self.apply(&change, &first, &me, audit.clone()).await {
                    Ok(summary) => summary,
                    Err(e) => return Err(self.refuse(audit, e).await),
                };
                Ok(ChangeOutcome::Applied {
                    change: canonical,
                    approved_by: [first, me],
                    summary,
                })
            }
        }
    }

    /// Refuses early, before an approval is recorded, a change that cannot apply now.
    async fn precheck(&self, change: &KeyChange) -> Result<(), Error> {
        let version = change.version.unwrap_or(0);
        match (change.kind, change.purpose) {
            (KeyChangeKind::Rotate, _) => Ok(()),
            (kind, KeyPurpose::Data) => {
                let info = self.store.data_key_info().await?;
                let d = info
                    .iter()
                    .find(|d| d.version.0 == version)
                    .ok_or(Error::KeyNotFound)?;
                if d.state == DataKeyState::Active {
                    return Err(Error::KeyStateConflict("active: rotate first".into()));
                }
                if d.records > 0 {
                    // Whatever its state: a version that still seals records stays.
                    return Err(Error::KeyInUse {
                        records: d.records,
                        until: None,
                    });
                }
                match (kind, d.state) {
                    (KeyChangeKind::Retire, DataKeyState::DecryptOnly)
                    | (KeyChangeKind::Destroy, DataKeyState::Retired) => Ok(()),
                    (_, state) => Err(Error::KeyStateConflict(state.as_str().to_owned())),
                }
            }
            (kind, KeyPurpose::AuthorizationSigning) => {
                let k = &self.signing_key(version).await?;
                match (kind, k.state) {
                    (KeyChangeKind::Activate, SigningKeyState::Published) => {
                        self.check_publish_lead(k)
                    }
                    (
                        KeyChangeKind::Retire,
                        SigningKeyState::Retiring | SigningKeyState::Published,
                    ) => {
                        let now = OffsetDateTime::now_utc().unix_timestamp();
                        match self.store.unexpired_authorizations(&k.kid, now).await? {
                            (0, _) => Ok(()),
                            (records, until) => Err(Error::KeyInUse { records, until }),
                        }
                    }
                    (KeyChangeKind::Destroy, SigningKeyState::Retired) => Ok(()),
                    (_, state) => Err(Error::KeyStateConflict(state.as_str().to_owned())),
                }
            }
        }
    }

    /// The signing key of this version.
    async fn signing_key(&self, version: u32) -> Result<SigningKeyRecord, Error> {
        self.store
            .signing_keys()
            .await?
            .into_iter()
            .find(|k| k.version == version)
            .ok_or(Error::KeyNotFound)
    }

    fn check_publish_lead(&self, k: &SigningKeyRecord) -> Result<(), Error> {
        let published = parse_time(&k.created_at)
            .ok_or_else(|| Error::KeyStateConflict("published at an unreadable time".into()))?;
        let not_before = after(published, self.settings.lifecycle.signing_key_publish_lead);
        if OffsetDateTime::now_utc() < not_before {
            return Err(Error::KeyNotPublishedLongEnough {
                not_before: rfc3339(not_before),
            });
        }
        Ok(())
    }

    /// Makes the change both custodians approved; returns a summary for people.
    async fn apply(
        &self,
        change: &KeyChange,
        first: &str,
        second: &str,
        mut audit: AuditEvent,
    ) -> Result<String, Error> {
        let now = OffsetDateTime::now_utc();
        let version = change.version.unwrap_or(0);
        let approved = format!("approved by {first} and {second}");
        let lifecycle = &self.settings.lifecycle;
        audit.outcome = "done".to_owned();
        let summary = match (change.kind, change.purpose) {
            (KeyChangeKind::Rotate, KeyPurpose::Data) => {
                let info = self.store.data_key_info().await?;
                let next = info.iter().map(|d| d.version.0).max().unwrap_or(0) + 1;
                let kek = &self.settings.kek_label;
                let (wrapped, material) = self
                    .hsm
                    .new_data_key(kek, KeyVersion(next))
                    .await
                    .map_err(Error::Hsm)?;
                let check = kcv::display(&kcv::kcv_cmac(material.expose()));
                let summary = format!(
                    "data key version {next} (KCV {check}, wrapped by {kek}) seals new records; \
                     older versions only open theirs until `payhsm keys rewrap` moves them"
                );
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let end = rfc3339(after(now, lifecycle.data_key_cryptoperiod));
                outcome_error(self.store.activate_data_key(wrapped, end, audit).await?)?;
                let ring = self.ring.current().with_active(KeyVersion(next), material);
                self.ring.replace(ring);
                summary
            }
            (KeyChangeKind::Retire, KeyPurpose::Data) => {
                let summary = format!("data key version {version} is retired");
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let outcome = self
                    .store
                    .retire_data_key(KeyVersion(version), rfc3339(now), audit)
                    .await?;
                outcome_error(outcome)?;
                let ring = self.ring.current().without(KeyVersion(version))?;
                self.ring.replace(ring);
                summary
            }
            (KeyChangeKind::Destroy, KeyPurpose::Data) => {
                let summary =
                    format!("data key version {version} is destroyed (wrapped key erased)");
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let outcome = self
                    .store
                    .destroy_data_key(KeyVersion(version), rfc3339(now), audit)
                    .await?;
                outcome_error(outcome)?;
                summary
            }
            (KeyChangeKind::Activate, KeyPurpose::Data) => {
                return Err(Error::UnsupportedKeyChange(
                    "a data key version is activated by `rotate`, which creates it",
                ))
            }
            (KeyChangeKind::Rotate, KeyPurpose::AuthorizationSigning) => {
                let keys = self.store.signing_keys().await?;
                let next = keys.iter().map(|k| k.version).max().unwrap_or(0) + 1;
                let label = signing_label(&self.settings.authz_key_label, next);
                let public = AuthorizationSigner::prove(&self.hsm, &label)
                    .await
                    .map_err(Error::Signer)?;
                let kid = thumbprint(&public);
                let not_before = rfc3339(after(now, lifecycle.signing_key_publish_lead));
                let summary = format!(
                    "authorization signing key version {next} ({label}, kid {kid}) is published \
                     in the JWKS; activate it after {not_before}"
                );
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let record = SigningKeyRecord {
                    version: next,
                    label,
                    kid,
                    state: SigningKeyState::Published,
                    created_at: rfc3339(now),
                    activated_at: None,
                    deactivated_at: None,
                    retired_at: None,
                    destroyed_at: None,
                    cryptoperiod_end: None,
                    authorizations: 0,
                };
                outcome_error(self.store.add_signing_key(record, audit).await?)?;
                self.refresh_signer().await?;
                summary
            }
            (KeyChangeKind::Activate, KeyPurpose::AuthorizationSigning) => {
                let k = &self.signing_key(version).await?;
                self.check_publish_lead(k)?;
                let summary = format!(
                    "authorization signing key version {version} (kid {}) signs; the key before \
                     it stays in the JWKS until its authorizations expire",
                    k.kid
                );
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let end = rfc3339(after(now, lifecycle.signing_key_cryptoperiod));
                let outcome = self
                    .store
                    .activate_signing_key(version, rfc3339(now), end, audit)
                    .await?;
                outcome_error(outcome)?;
                self.refresh_signer().await?;
                summary
            }
            (KeyChangeKind::Retire, KeyPurpose::AuthorizationSigning) => {
                let summary = format!("authorization signing key version {version} left the JWKS");
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let unix = now.unix_timestamp();
                let outcome = self
                    .store
                    .retire_signing_key(version, rfc3339(now), unix, audit)
                    .await?;
                outcome_error(outcome)?;
                self.refresh_signer().await?;
                summary
            }
            (KeyChangeKind::Destroy, KeyPurpose::AuthorizationSigning) => {
                let k = &self.signing_key(version).await?;
                if k.state != SigningKeyState::Retired {
                    return Err(Error::KeyStateConflict(k.state.as_str().to_owned()));
                }
                // The token first: a repeat after a crash finds nothing left to destroy.
                self.hsm
                    .destroy_signing_key(&k.label)
                    .await
                    .map_err(Error::Hsm)?;
                let summary = format!(
                    "authorization signing key version {version} ({}) was deleted from the token",
                    k.label
                );
                audit.detail = Some(format!("{}: {summary}; {approved}", change.canonical()));
                let outcome = self
                    .store
                    .destroy_signing_key(version, rfc3339(now), audit)
                    .await?;
                outcome_error(outcome)?;
                summary
            }
        };
        tracing::info!(change = %change.canonical(), first, second, "key change applied");
        Ok(summary)
    }

    /// Moves up to `batch` live records sealed under older data key versions to the active
    /// one, in one store transaction, and reports what remains. Safe to interrupt and repeat:
    /// each record moves atomically, only if unchanged since it was read.
    pub async fn rewrap(&self, caller: &Caller, batch: usize) -> Result<RewrapProgress, Error> {
        let audit = self.authorize(caller, Action::RewrapKeys).await?;
        let batch = batch.clamp(1, MAX_REWRAP_BATCH);
        let ring = self.ring.current();
        let active = ring.active();
        let records = self.store.tokens_to_rewrap(active, batch).await?;
        let mut moved = Vec::with_capacity(records.len());
        for r in records {
            let Some(sealed) = &r.sealed else { continue };
            let (pan, expiry) = ring.open(sealed, &r.token, &r.domain)?;
            let resealed = ring.seal(&pan, expiry, &r.token, &r.domain)?;
            let fingerprint = ring
                .fingerprints(&pan, &r.domain)
                .first()
                .copied()
                .ok_or(crate::keys::KeyError::NoActiveKey)?;
            moved.push(Rewrapped {
                old_version: sealed.key_version,
                old_nonce: sealed.nonce,
                token: r.token,
                domain: r.domain,
                sealed: resealed,
                fingerprint,
            });
        }
        let rewrapped = if moved.is_empty() {
            0
        } else {
            self.store.rewrap(moved, audit).await?
        };
        let remaining = self.store.count_to_rewrap(active).await?;
        Ok(RewrapProgress {
            rewrapped,
            remaining,
            active_version: active.0,
        })
    }

    /// Asks the policy; a refusal is audited before `Forbidden` is returned.
    async fn authorize(&self, caller: &Caller, action: Action) -> Result<AuditEvent, Error> {
        super::check_policy(
            self.store.as_ref(),
            &self.policy,
            caller,
            action,
            Resource::KeyRing,
            |_| {},
        )
        .await
    }

    /// Audits a refused change with the error's code, then returns the error.
    async fn refuse(&self, mut audit: AuditEvent, e: Error) -> Error {
        audit.outcome = e.code().to_owned();
        match self.store.record(audit).await {
            Ok(()) => e,
            Err(store) => Error::Store(store),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_have_one_canonical_text() {
        let c = KeyChange {
            kind: KeyChangeKind::Retire,
            purpose: KeyPurpose::Data,
            version: Some(1),
        };
        assert_eq!(c.canonical(), "retire data 1");
        let r = KeyChange {
            kind: KeyChangeKind::Rotate,
            purpose: KeyPurpose::AuthorizationSigning,
            version: None,
        };
        assert_eq!(r.canonical(), "rotate authorization-signing");
        for kind in ["rotate", "activate", "retire", "destroy"] {
            assert_eq!(KeyChangeKind::parse(kind).unwrap().as_str(), kind);
        }
        assert_eq!(KeyChangeKind::parse("delete"), None);
    }

    #[test]
    fn changes_without_the_right_version_are_refused() {
        let change = |kind, purpose, version| KeyChange {
            kind,
            purpose,
            version,
        };
        use KeyChangeKind::*;
        use KeyPurpose::*;
        assert!(change(Rotate, Data, None).check().is_ok());
        assert!(change(Rotate, Data, Some(2)).check().is_err());
        assert!(change(Activate, Data, Some(2)).check().is_err());
        assert!(change(Retire, Data, None).check().is_err());
        assert!(change(Retire, Data, Some(0)).check().is_err());
        assert_eq!(change(Retire, Data, Some(3)).check().unwrap(), 3);
        assert!(change(Activate, AuthorizationSigning, Some(2))
            .check()
            .is_ok());
        assert!(change(Destroy, AuthorizationSigning, None).check().is_err());
    }

    #[test]
    fn signing_labels_follow_the_first_one() {
        assert_eq!(signing_label("payhsm-authz-v1", 1), "payhsm-authz-v1");
        assert_eq!(signing_label("payhsm-authz-v1", 2), "payhsm-authz-v2");
        assert_eq!(signing_label("authz", 3), "authz-v3");
    }
}
