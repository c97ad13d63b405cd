//! Device enrolment: issue a single-use WebAuthn challenge, then verify the registration
//! response against it (WebAuthn L3 §7.1) and store the device. The lifecycle after it (list,
//! read, revoke) is in `lifecycle`.
//!
//! A challenge is consumed before the response is verified: a failed attempt uses it up, so
//! every attempt, good or bad, needs a fresh challenge (and a replayed response always meets
//! a used challenge).

mod lifecycle;

use super::ids::{fill_random, random_b64, time_ordered_id};
use super::metadata::{AndroidRevocations, LookupError, Metadata};
use super::{Caller, Error};
use crate::audit::{AuditEvent, PolicyVerdict};
use crate::card::{Domain, Token, TokenStatus};
use crate::config::{cose_identifier, WebauthnConfig};
use crate::policy::{
    Action, EnrolmentContext, PolicyContext, PolicyEngine, PolicyRequest, Resource,
};
use crate::store::{
    AndroidBoot, ChallengePurpose, ChallengeRecord, ConsumeOutcome, DeviceRecord, DeviceState,
    EnrolOutcome, Store,
};
use crate::text::{DisplayText, LoggableText};
use crate::webauthn::attestation::{
    mds, AttestationPolicy, Format, Trust, TrustAnchors, UntrustedChains,
};
use crate::webauthn::browser_bound;
use crate::webauthn::registration::{
    verify_registration, RegistrationExpectations, RegistrationInput, RelyingParty,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::Arc;

/// Length of a challenge (WebAuthn L3 §13.4.3: at least 16 random bytes).
const CHALLENGE_BYTES: usize = 32;
/// Longest user name.
const MAX_USER_CHARS: usize = 64;

/// The audit action of a successful enrolment.
const ENROLLED: &str = "device_enrolled";
/// The audit action of a refused enrolment (outcome: the error code).
const REFUSED: &str = "device_enrolment_refused";

/// Device enrolment over the store, the policy and the configured relying parties and
/// trust anchors.
pub struct Devices {
    store: Arc<dyn Store>,
    policy: Arc<PolicyEngine>,
    config: WebauthnConfig,
    parties: Vec<RelyingParty>,
    anchors: TrustAnchors,
    attestation: AttestationPolicy,
    metadata: Arc<Metadata>,
    revocations: Arc<AndroidRevocations>,
}

/// A challenge just issued, with what a browser needs to create a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChallenge {
    /// Quote it back with the registration response.
    pub challenge_id: String,
    /// 32 random bytes, base64url without padding.
    pub challenge: String,
    /// RFC 3339 UTC; the challenge is refused from then on.
    pub expires_at: String,
    /// The relying party.
    pub rp_id: String,
    /// The user name.
    pub user: String,
    /// COSE identifiers of the accepted algorithms, in order of preference.
    pub algorithms: Vec<i64>,
    /// Whether user verification is required.
    pub user_verification_required: bool,
}

/// A registration response to verify.
#[derive(Debug)]
pub struct EnrolInput {
    /// The challenge it answers.
    pub challenge_id: String,
    /// The credential id the client reports (must equal the attested one).
    pub credential_id: Vec<u8>,
    /// attestationObject (CBOR).
    pub attestation_object: Vec<u8>,
    /// clientDataJSON, exact bytes.
    pub client_data_json: Vec<u8>,
    /// A token (and its domain) to bind the device to; it must be active.
    pub token: Option<(Token, Domain)>,
    /// The SPC browser-bound signature over clientDataJSON, if the browser sent one.
    pub browser_bound_signature: Option<Vec<u8>>,
}

/// A device just enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolledDevice {
    /// payhsm's id for it.
    pub device_id: String,
    /// Attestation format.
    pub format: Format,
    /// Trust established by the attestation.
    pub trust: Trust,
    /// The authenticator's AAGUID.
    pub aaguid: [u8; 16],
    /// UV was set.
    pub user_verified: bool,
    /// BE was set.
    pub backup_eligible: bool,
}

/// The attestation policy for the verifier, built in this one place from the configuration.
///
/// An attestation whose chain reaches no configured anchor is worth no more than no attestation
/// at all: it registers with trust `none` (and Cedar decides what such a device may do) rather
/// than being refused. A chain that is broken, expired or badly signed is still refused.
fn attestation_policy(config: &WebauthnConfig) -> AttestationPolicy {
    AttestationPolicy {
        untrusted_chains: UntrustedChains::ReportAsNone,
        ..AttestationPolicy::new(config.algorithms.clone())
    }
}

/// Lowercase hex.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Devices {
    /// Builds the use cases over the store, the policy, the `[webauthn]` configuration, the
    /// trust anchors loaded from its `anchors_dir` and the Metadata Service BLOB in force.
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicyEngine>,
        config: WebauthnConfig,
        anchors: TrustAnchors,
        metadata: Arc<Metadata>,
        revocations: Arc<AndroidRevocations>,
    ) -> Self {
        let parties = config.verifier_relying_parties();
        let attestation = attestation_policy(&config);
        Self {
            store,
            policy,
            config,
            parties,
            anchors,
            attestation,
            metadata,
            revocations,
        }
    }

    fn relying_party(&self, rp_id: &str) -> Option<&RelyingParty> {
        self.parties
            .iter()
            .find(|rp| rp.ids.iter().any(|id| id == rp_id))
    }

    /// Issues a single-use enrolment challenge for `user` at the relying party `rp_id` (both
    /// screened when the request was decoded: no card number, no spoofing characters).
    pub async fn create_challenge(
        &self,
        caller: &Caller,
        user: &DisplayText,
        rp_id: &LoggableText,
    ) -> Result<IssuedChallenge, Error> {
        let (user, rp_id) = (user.as_str(), rp_id.as_str());
        let mut audit = self
            .authorize(caller, Action::CreateDeviceChallenge, rp_id)
            .await?;
        if self.relying_party(rp_id).is_none() {
            return Err(self.refuse(audit, Error::UnknownRelyingParty).await);
        }
        let chars = user.chars().count();
        if chars == 0 || chars > MAX_USER_CHARS {
            return Err(self.refuse(audit, Error::InvalidUser).await);
        }
        let mut challenge = vec![0u8; CHALLENGE_BYTES];
        fill_random(&mut challenge);
        let now = time::OffsetDateTime::now_utc();
        let record = ChallengeRecord {
            id: time_ordered_id(now),
            purpose: ChallengePurpose::Enrol,
            challenge,
            rp_id: rp_id.to_owned(),
            user: user.to_owned(),
            token: None,
            domain: None,
            created_at: crate::clock::format_rfc3339(now),
            expires_at: crate::clock::format_rfc3339(now + self.config.challenge_ttl),
            used_at: None,
        };
        audit.outcome = "created".to_owned();
        audit.detail = Some(format!("challenge_id={} rp={rp_id}", record.id));
        let issued = IssuedChallenge {
            challenge_id: record.id.clone(),
            challenge: URL_SAFE_NO_PAD.encode(&record.challenge),
            expires_at: record.expires_at.clone(),
            rp_id: record.rp_id.clone(),
            user: record.user.clone(),
            algorithms: self
                .config
                .algorithms
                .iter()
                .map(|a| cose_identifier(*a))
                .collect(),
            user_verification_required: self.config.require_user_verification,
        };
        self.store.create_challenge(record, audit).await?;
        Ok(issued)
    }

    /// Verifies a registration response against its challenge and stores the device.
    pub async fn enrol(&self, caller: &Caller, input: EnrolInput) -> Result<EnrolledDevice, Error> {
        // The policy is asked about the challenge's relying party before anything changes; for
        // an unknown challenge there is none to ask about.
        let Some(issued) = self.store.challenge(&input.challenge_id).await? else {
            let audit = caller.audit_event(Action::EnrolDevice.as_str(), PolicyVerdict::NotAsked);
            return Err(self.refuse(audit, Error::ChallengeNotFound).await);
        };
        // What the Metadata Service says of the model the registration names, for the policy
        // (and, once verified, for the anchors and the status check below).
        let now = time::OffsetDateTime::now_utc();
        let (aaguid, key_id) = mds::attested_model(&input.attestation_object).unwrap_or_default();
        let model = self.metadata.model(&aaguid, key_id.as_deref(), now);
        let context = match &model {
            Ok(m) => EnrolmentContext {
                certification: m.certification.to_owned(),
                mds_status: m.mds_status.to_owned(),
            },
            Err(LookupError::Stale) => EnrolmentContext {
                certification: "none".to_owned(),
                mds_status: "none".to_owned(),
            },
        };
        let mut audit = super::check_policy_in(
            self.store.as_ref(),
            &self.policy,
            caller,
            (
                Action::EnrolDevice,
                Resource::RelyingParty(&issued.rp_id),
                PolicyContext::Enrolment(&context),
            ),
            |event| event.detail = Some(format!("rp={}", issued.rp_id)),
        )
        .await?;
        audit.detail = Some(format!(
            "challenge_id={} rp={} credential={} certification={} mds_status={}",
            input.challenge_id,
            issued.rp_id,
            URL_SAFE_NO_PAD.encode(&input.credential_id),
            context.certification,
            context.mds_status,
        ));
        if let Some((token, domain)) = &input.token {
            // Masked until the token is found (see `Token::masked`).
            audit.token = Some(token.masked());
            audit.domain = Some(domain.as_str().to_owned());
        }
        // WebAuthn L3 §7.1 step 11: the challenge must be the one issued; single use.
        let challenge = match self
            .store
            .consume_challenge(&input.challenge_id, ChallengePurpose::Enrol, now)
            .await?
        {
            ConsumeOutcome::Consumed(c) => *c,
            ConsumeOutcome::NotFound => {
                return Err(self.refuse(audit, Error::ChallengeNotFound).await)
            }
            ConsumeOutcome::AlreadyUsed => {
                return Err(self.refuse(audit, Error::ChallengeUsed).await)
            }
            ConsumeOutcome::Expired => {
                return Err(self.refuse(audit, Error::ChallengeExpired).await)
            }
        };
        let Some(rp) = self.relying_party(&challenge.rp_id) else {
            return Err(self.refuse(audit, Error::UnknownRelyingParty).await);
        };
        // A model whose latest MDS status is a compromise (or revoked) is refused whatever
        // its attestation; its listed roots are anchors beside the configured ones.
        let model = match model {
            Ok(m) => m,
            Err(LookupError::Stale) => {
                return Err(self.refuse(audit, Error::MetadataStale).await);
            }
        };
        if let Some(code) = model.refusal {
            return Err(self.refuse(audit, Error::AuthenticatorStatus(code)).await);
        }
        let with_mds;
        let anchors = match model.entry() {
            Some(entry) if !entry.roots.is_empty() => {
                let mut all = self.anchors.clone();
                all.anchors.extend(entry.anchors().anchors);
                with_mds = all;
                &with_mds
            }
            _ => &self.anchors,
        };
        let challenge_b64 = URL_SAFE_NO_PAD.encode(&challenge.challenge);
        let attestation = AttestationPolicy {
            android_revocations: self.revocations.current(),
            ..self.attestation.clone()
        };
        let verdict = verify_registration(
            RegistrationInput {
                client_data_json: &input.client_data_json,
                attestation_object: &input.attestation_object,
            },
            &RegistrationExpectations {
                rp,
                challenge: &challenge_b64,
                require_user_verification: self.config.require_user_verification,
                policy: &attestation,
            },
            anchors,
            now,
        );
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => return Err(self.refuse(audit, Error::Webauthn(e)).await),
        };
        // The id the client reports must be the one the authenticator attested.
        if verdict.credential_id != input.credential_id {
            return Err(self.refuse(audit, Error::CredentialIdMismatch).await);
        }
        // android-key: where the relying party lists the apps allowed to enrol, the app the
        // attestation names (package and signing certificate) must be one of them.
        if verdict.format == Format::AndroidKey {
            let listed = self
                .config
                .relying_party(&challenge.rp_id)
                .map(|rp| rp.android_apps.as_slice())
                .unwrap_or_default();
            let named = verdict
                .android
                .as_ref()
                .and_then(|a| a.application_id.as_ref());
            let allowed = listed.is_empty()
                || named.is_some_and(|id| {
                    listed.iter().any(|app| {
                        id.packages.contains(&app.package)
                            && id
                                .signature_digests
                                .iter()
                                .any(|d| d.as_slice() == app.signature_sha256)
                    })
                });
            if !allowed {
                return Err(self.refuse(audit, Error::AndroidAppNotAllowed).await);
            }
        }
        // SPC: a browser-bound key in clientDataJSON comes with its signature, which must
        // verify; the device keeps the key and every payment must then show it.
        let browser_bound = match browser_bound::verify(
            verdict.browser_bound_public_key.as_deref(),
            &input.client_data_json,
            input.browser_bound_signature.as_deref(),
            &self.config.algorithms,
        ) {
            Ok(k) => k,
            Err(e) => return Err(self.refuse(audit, Error::Webauthn(e.into())).await),
        };
        if let Some((token, domain)) = &input.token {
            let checked = self.check_token(caller, token, domain, &mut audit).await;
            if matches!(checked, Ok(()) | Err(Error::TokenSuspended)) {
                audit.token = Some(token.as_str().to_owned());
            }
            if let Err(e) = checked {
                return Err(self.refuse(audit, e).await);
            }
        }
        let android = verdict.android.clone();
        let device = DeviceRecord {
            device_id: random_b64(16),
            credential_id: verdict.credential_id,
            rp_id: challenge.rp_id,
            user: challenge.user,
            public_key_cbor: verdict.public_key_cbor,
            alg: cose_identifier(verdict.alg),
            format: verdict.format,
            trust: verdict.trust,
            aaguid: verdict.aaguid,
            sign_count: verdict.sign_count,
            backup_eligible: verdict.backup_eligible,
            backup_state: verdict.backup_state,
            user_verified: verdict.user_verified,
            token: input.token.as_ref().map(|(t, _)| t.clone()),
            domain: input.token.as_ref().map(|(_, d)| d.clone()),
            created_at: crate::clock::format_rfc3339(now),
            last_used_at: None,
            state: DeviceState::Active,
            browser_bound_key: browser_bound.as_ref().map(|k| k.cose.clone()),
            android_boot: android
                .as_ref()
                .and_then(|a| a.root_of_trust.as_ref())
                .map(|r| AndroidBoot {
                    verified_boot_state: r.verified_boot_state.to_owned(),
                    device_locked: r.device_locked,
                }),
        };
        let enrolled = EnrolledDevice {
            device_id: device.device_id.clone(),
            format: device.format,
            trust: device.trust,
            aaguid: device.aaguid,
            user_verified: device.user_verified,
            backup_eligible: device.backup_eligible,
        };
        audit.action = ENROLLED.to_owned();
        audit.outcome = "enrolled".to_owned();
        audit.detail = Some(format!(
            "device={} credential={} aaguid={} format={} trust={}{}",
            device.device_id,
            URL_SAFE_NO_PAD.encode(&device.credential_id),
            hex(&device.aaguid),
            device.format.as_str(),
            device.trust.as_str(),
            verdict
                .anchor
                .as_deref()
                .map(|a| format!(" anchor={a}"))
                .unwrap_or_default(),
        ));
        if let (Some(k), Some(detail)) = (&browser_bound, audit.detail.as_mut()) {
            detail.push_str(&format!(" browser_bound_key={}", k.thumbprint()));
        }
        // What a TEE said of the device's boot (package names are the app's own text: not
        // logged, only counted).
        if let (Some(a), Some(detail)) = (&android, audit.detail.as_mut()) {
            if let Some(r) = &a.root_of_trust {
                detail.push_str(&format!(
                    " android_boot={} android_locked={}",
                    r.verified_boot_state, r.device_locked
                ));
            }
            if let Some(id) = &a.application_id {
                detail.push_str(&format!(" android_apps={}", id.packages.len()));
            }
        }
        let refused = audit.clone();
        match self.store.enrol_device(device, audit).await? {
            EnrolOutcome::Enrolled => Ok(enrolled),
            EnrolOutcome::CredentialExists => {
                let mut refused = refused;
                refused.action = Action::EnrolDevice.as_str().to_owned();
                Err(self.refuse(refused, Error::CredentialExists).await)
            }
            EnrolOutcome::TokenNotActive(status) => {
                let mut refused = refused;
                refused.action = Action::EnrolDevice.as_str().to_owned();
                let e = match status {
                    TokenStatus::Suspended => Error::TokenSuspended,
                    TokenStatus::Active | TokenStatus::Deleted => Error::TokenNotFound,
                };
                Err(self.refuse(refused, e).await)
            }
        }
    }

    /// A device may be bound only to an active token the caller may see. If the policy refuses
    /// the caller the token, `audit` records that answer (the one that refused the enrolment).
    async fn check_token(
        &self,
        caller: &Caller,
        token: &Token,
        domain: &Domain,
        audit: &mut AuditEvent,
    ) -> Result<(), Error> {
        let decision = self.policy.decide(&PolicyRequest {
            principal: &caller.principal,
            action: Action::ReadMetadata,
            resource: Resource::Domain(domain),
            context: PolicyContext::Empty,
        });
        if !decision.allowed() {
            audit.decided(decision);
            return Err(Error::Forbidden);
        }
        match self.store.token(token, domain).await? {
            Some(r) if r.status == TokenStatus::Active => Ok(()),
            Some(r) if r.status == TokenStatus::Suspended => Err(Error::TokenSuspended),
            _ => Err(Error::TokenNotFound),
        }
    }

    /// Asks the policy about `action` on the relying party. A refusal is audited before
    /// `Forbidden` is returned; an allowance returns the event to complete.
    async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        rp_id: &str,
    ) -> Result<AuditEvent, Error> {
        super::check_policy(
            self.store.as_ref(),
            &self.policy,
            caller,
            action,
            Resource::RelyingParty(rp_id),
            |event| event.detail = Some(format!("rp={rp_id}")),
        )
        .await
    }

    /// Audits a refusal (outcome: the error's code) and returns the error; if the audit
    /// record cannot be written, the store error is returned instead.
    async fn refuse(&self, mut audit: AuditEvent, error: Error) -> Error {
        if audit.action == Action::EnrolDevice.as_str() {
            audit.action = REFUSED.to_owned();
        }
        audit.outcome = error.code().to_owned();
        match self.store.record(audit).await {
            Ok(()) => error,
            Err(e) => Error::Store(e),
        }
    }
}
