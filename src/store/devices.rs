//! Device enrolment records: single-use WebAuthn challenges and enrolled devices.

use super::StoreFuture;
use crate::audit::AuditEvent;
use crate::card::{Domain, Token, TokenStatus};
use crate::webauthn::attestation::{Format, Trust};

/// What a challenge was issued for. A challenge is consumed only for its own purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// Device enrolment (a WebAuthn registration, `webauthn.create`).
    Enrol,
}

impl ChallengePurpose {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enrol => "enrol",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "enrol" => Some(Self::Enrol),
            _ => None,
        }
    }
}

/// An issued challenge as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeRecord {
    /// The challenge id the caller quotes back.
    pub id: String,
    /// What it may be used for.
    pub purpose: ChallengePurpose,
    /// The random challenge bytes (the ceremony sees them base64url-encoded).
    pub challenge: Vec<u8>,
    /// The relying party it was issued for.
    pub rp_id: String,
    /// The user name it was issued for.
    pub user: String,
    /// The token it is bound to, if any.
    pub token: Option<Token>,
    /// The token's domain, if any.
    pub domain: Option<Domain>,
    /// RFC 3339 UTC with milliseconds ([`crate::clock::format_rfc3339`]).
    pub created_at: String,
    /// RFC 3339 UTC with milliseconds; the challenge is refused from this instant on. The
    /// fixed-width format makes text order time order, so the database compares it.
    pub expires_at: String,
    /// When it was consumed; `None` while unused.
    pub used_at: Option<String>,
}

/// What [`DeviceStore::consume_challenge`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumeOutcome {
    /// The challenge was unused and unexpired; it is now used (`used_at` set) and cannot be
    /// consumed again.
    Consumed(Box<ChallengeRecord>),
    /// No challenge with this id and purpose.
    NotFound,
    /// It was consumed before.
    AlreadyUsed,
    /// It expired unused.
    Expired,
}

/// An enrolled device: a verified WebAuthn credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// payhsm's id for the device.
    pub device_id: String,
    /// The credential id (unique across all devices).
    pub credential_id: Vec<u8>,
    /// The relying party it was registered with.
    pub rp_id: String,
    /// The user name it was registered for.
    pub user: String,
    /// The credential public key as a COSE_Key (CBOR).
    pub public_key_cbor: Vec<u8>,
    /// Its COSE algorithm identifier (-7 ES256, -8 EdDSA, ...).
    pub alg: i64,
    /// The attestation statement format.
    pub format: Format,
    /// The trust the attestation established.
    pub trust: Trust,
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// The last accepted signature counter.
    pub sign_count: u32,
    /// BE at registration.
    pub backup_eligible: bool,
    /// BS at registration.
    pub backup_state: bool,
    /// UV at registration.
    pub user_verified: bool,
    /// The token the device is bound to, if any.
    pub token: Option<Token>,
    /// The token's domain, if any.
    pub domain: Option<Domain>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When an authorization with it last committed (RFC 3339 UTC); `None` before the first.
    pub last_used_at: Option<String>,
    /// Active, or revoked (final).
    pub state: DeviceState,
    /// The SPC browser-bound public key (COSE_Key) it enrolled with: every payment must
    /// then carry a signature by it.
    pub browser_bound_key: Option<Vec<u8>>,
    /// For an `android-key` device, its TEE-enforced rootOfTrust at enrolment.
    pub android_boot: Option<AndroidBoot>,
}

/// What an Android TEE attested of the device's boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AndroidBoot {
    /// `verified`, `self_signed`, `unverified` or `failed`.
    pub verified_boot_state: String,
    /// The bootloader was locked.
    pub device_locked: bool,
}

impl AndroidBoot {
    /// The stored form, `<state>:locked` or `<state>:unlocked`.
    pub fn to_column(&self) -> String {
        let lock = if self.device_locked {
            "locked"
        } else {
            "unlocked"
        };
        format!("{}:{lock}", self.verified_boot_state)
    }

    /// From the stored form.
    pub fn from_column(text: &str) -> Option<Self> {
        let (state, lock) = text.split_once(':')?;
        let verified_boot_state = ["verified", "self_signed", "unverified", "failed"]
            .into_iter()
            .find(|s| *s == state)?
            .to_owned();
        let device_locked = match lock {
            "locked" => true,
            "unlocked" => false,
            _ => return None,
        };
        Some(Self {
            verified_boot_state,
            device_locked,
        })
    }
}

/// Why a device was revoked: a small fixed set, so reports can count them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    /// The device was lost.
    Lost,
    /// The device was stolen.
    Stolen,
    /// Its key or the device is believed compromised.
    Compromised,
    /// The user asked for it.
    UserRequest,
    /// The user enrolled another device in its place.
    Replaced,
}

impl RevocationReason {
    /// Every reason, in the documented order.
    pub const ALL: [Self; 5] = [
        Self::Lost,
        Self::Stolen,
        Self::Compromised,
        Self::UserRequest,
        Self::Replaced,
    ];

    /// The stored and wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lost => "lost",
            Self::Stolen => "stolen",
            Self::Compromised => "compromised",
            Self::UserRequest => "user_request",
            Self::Replaced => "replaced",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A device's lifecycle: active until revoked, and a revocation is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceState {
    /// It may be challenged and may authorize payments.
    Active,
    /// It authorizes nothing, from the commit of its revocation on.
    Revoked {
        /// RFC 3339 UTC with milliseconds.
        at: String,
        /// Why.
        reason: RevocationReason,
    },
}

impl DeviceState {
    /// The stored and wire status name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked { .. } => "revoked",
        }
    }

    /// Revokes an active device; a revoked one stays as it is (`None`): revocation is final.
    pub fn revoke(&self, at: String, reason: RevocationReason) -> Option<Self> {
        match self {
            Self::Active => Some(Self::Revoked { at, reason }),
            Self::Revoked { .. } => None,
        }
    }

    /// Rebuilds the state from its stored columns (status, revoked_at, revoke_reason);
    /// `None` for a combination no write produces.
    pub fn from_columns(
        status: &str,
        revoked_at: Option<String>,
        reason: Option<&str>,
    ) -> Option<Self> {
        match (status, revoked_at, reason) {
            ("active", None, None) => Some(Self::Active),
            ("revoked", Some(at), Some(reason)) => Some(Self::Revoked {
                at,
                reason: RevocationReason::parse(reason)?,
            }),
            _ => None,
        }
    }

    /// The stored columns: revoked_at and revoke_reason.
    pub fn columns(&self) -> (Option<&str>, Option<&'static str>) {
        match self {
            Self::Active => (None, None),
            Self::Revoked { at, reason } => (Some(at), Some(reason.as_str())),
        }
    }
}

/// Which devices to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceOwner {
    /// The devices enrolled for this user name.
    User(String),
    /// The devices bound to this token in this domain.
    Token(Token, Domain),
}

/// A revocation to commit.
#[derive(Debug, Clone)]
pub struct Revocation {
    /// The device.
    pub device_id: String,
    /// Why.
    pub reason: RevocationReason,
    /// RFC 3339 UTC with milliseconds.
    pub at: String,
}

/// What [`DeviceStore::revoke_device`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RevokeOutcome {
    /// The device is revoked; the audit record was written in the same transaction.
    Revoked(Box<DeviceRecord>),
    /// No such device: nothing was written (the caller audits the refusal).
    NotFound,
    /// It was revoked before (revocation is final): nothing was written.
    AlreadyRevoked,
}

/// What [`DeviceStore::enrol_device`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnrolOutcome {
    /// Stored; the audit event was written as given.
    Enrolled,
    /// A device with this credential id exists: nothing was written, not even the audit
    /// record (the caller audits the refusal).
    CredentialExists,
    /// The token the device was to be bound to is no longer active in this transaction
    /// (suspended or deleted since the service checked it): nothing was written (the caller
    /// audits the refusal).
    TokenNotActive(TokenStatus),
}

/// Device enrolment: single-use WebAuthn challenges, enrolled devices and their counters.
pub trait DeviceStore: Send + Sync {
    /// Stores a newly issued challenge and writes `audit` in the same transaction.
    fn create_challenge(
        &self,
        challenge: ChallengeRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, ()>;

    /// Marks the challenge `id` of this `purpose` used if it is unused and `now` is before
    /// its expiry, and returns it. Single use is enforced by the database (a conditional
    /// update), so of concurrent consumers exactly one gets [`ConsumeOutcome::Consumed`].
    /// Writes no audit record: the use case that consumes it audits its own outcome.
    fn consume_challenge(
        &self,
        id: &str,
        purpose: ChallengePurpose,
        now: time::OffsetDateTime,
    ) -> StoreFuture<'_, ConsumeOutcome>;

    /// Stores an enrolled device and writes `audit` in the same transaction; for a credential
    /// id that is already enrolled it writes nothing ([`EnrolOutcome::CredentialExists`]).
    fn enrol_device(
        &self,
        device: DeviceRecord,
        audit: AuditEvent,
    ) -> StoreFuture<'_, EnrolOutcome>;

    /// Reads a challenge by id (any purpose, used or not) without writing.
    fn challenge(&self, id: &str) -> StoreFuture<'_, Option<ChallengeRecord>>;

    /// Reads a device by its id.
    fn device(&self, device_id: &str) -> StoreFuture<'_, Option<DeviceRecord>>;

    /// Reads a device by its credential id.
    fn device_by_credential(&self, credential_id: &[u8]) -> StoreFuture<'_, Option<DeviceRecord>>;

    /// The devices of a user or of a token, oldest first.
    fn devices_of(&self, owner: &DeviceOwner) -> StoreFuture<'_, Vec<DeviceRecord>>;

    /// Revokes an active device and writes `audit` in the same transaction; an unknown or
    /// already revoked device writes nothing. From its commit on, every payment challenge or
    /// authorization with the device is refused by the store
    /// ([`super::ChallengeIssue::DeviceRevoked`], [`super::CommitOutcome::DeviceRevoked`]).
    fn revoke_device(
        &self,
        revocation: Revocation,
        audit: AuditEvent,
    ) -> StoreFuture<'_, RevokeOutcome>;

    /// Compare-and-set of a device's signature counter: sets it to `new` only if it is still
    /// `expected_old`, and then writes `audit` in the same transaction. Returns `false` (and
    /// writes nothing) if the device is unknown or its counter changed in between.
    fn update_sign_count(
        &self,
        device_id: &str,
        expected_old: u32,
        new: u32,
        audit: AuditEvent,
    ) -> StoreFuture<'_, bool>;
}
