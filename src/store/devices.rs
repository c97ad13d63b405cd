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
