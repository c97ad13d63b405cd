//! Payment authorizations: issue a challenge bound to one transaction, then verify the
//! device's assertion (WebAuthn L3 §7.2, SPC), ask the policy, sign the authorization (JWS)
//! and commit it.
//!
//! Every answer to a challenge, approved or refused, uses it up; the end of an attempt is one
//! store transaction (consume + counter compare-and-set + authorization + idempotency key +
//! audit), so of two concurrent answers exactly one wins. The JWS is signed before that
//! commit and returned only after it. The token is checked early (before verifying), and
//! again inside the transaction that stores a challenge or commits an approval, so a suspend
//! or delete that commits in between stops the payment.

use super::idempotency::{request_hash, IdempotencyKey};
use super::ids::{fill_random, time_ordered_id};
use super::metadata::{LookupError, Metadata};
use super::{check_policy, Caller, Error};
use crate::audit::{AuditEvent, PolicyVerdict};
use crate::card::{Domain, Token, TokenStatus};
use crate::config::WebauthnConfig;
use crate::jose::{AuthorizationSigner, SignedJws};
use crate::keys::{KeyError, KeyVersion, SharedRing};
use crate::payment::{Amount, Audience, Currency, Payee, PaymentError, SpcDisplay};
use crate::policy::{Action, PaymentContext, PolicyContext, PolicyEngine, PolicyRequest, Resource};
use crate::store::{
    AuthorizationChallengeRecord, AuthorizationCommit, AuthorizationRecord, ChallengeIssue,
    ChallengeState, CommitOutcome, CounterUpdate, DeviceState, IdempotencyRecord, Idempotent,
    Store,
};
use crate::text::DisplayText;
use crate::webauthn::assertion::{
    verify_assertion, AssertionExpectations, AssertionInput, AssertionType, ExpectedPayment,
    StoredCredential,
};
use crate::webauthn::browser_bound;
use crate::webauthn::registration::RelyingParty;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Length of a challenge (WebAuthn L3 §13.4.3: at least 16 random bytes).
const CHALLENGE_BYTES: usize = 32;
/// Longest SPC display value (origins, instrument name, icon URL).
const MAX_SPC_CHARS: usize = 2048;

const ISSUED: &str = "authorization_challenge_issued";
const APPROVED: &str = "authorization_approved";
const REFUSED: &str = "authorization_refused";

/// A request's Idempotency-Key, as the keyed tag it is stored under, and the hash of the
/// request it came with (hashed only when a key was given).
#[derive(Clone, Copy)]
struct Keyed {
    version: KeyVersion,
    tag: [u8; 32],
    hash: [u8; 32],
}

impl Keyed {
    /// What the store keeps for the key: `v<data key version>:<tag in hex>`. A key tagged
    /// under an earlier active version is not found after a rotation; the retry is then a new
    /// request (a used challenge still refuses a second approval).
    fn stored(&self) -> String {
        use std::fmt::Write as _;
        let mut out = format!("v{}:", self.version.0);
        for b in self.tag {
            let _ = write!(out, "{b:02x}");
        }
        out
    }
}

/// Idempotency operation names (part of the request hash).
const OP_CHALLENGE: &str = "create_authorization_challenge";
const OP_AUTHORIZE: &str = "authorize_payment";

/// Payment authorizations over the store, the policy, the relying parties and the signer.
pub struct Authorizations {
    store: Arc<dyn Store>,
    policy: Arc<PolicyEngine>,
    /// The data keys, for the tags idempotency keys are stored under.
    ring: Arc<SharedRing>,
    config: WebauthnConfig,
    parties: Vec<RelyingParty>,
    signer: AuthorizationSigner,
    /// The FIDO Metadata Service BLOB in force.
    metadata: Arc<Metadata>,
}

/// A request for a payment challenge.
#[derive(Debug, Clone)]
pub struct PaymentChallengeInput {
    /// The token paid with.
    pub token: Token,
    /// Its domain.
    pub domain: Domain,
    /// The enrolled device that must confirm.
    pub device_id: String,
    /// Minor units (checked here: 1..=10^15).
    pub amount: u64,
    /// ISO 4217 code (checked here).
    pub currency: String,
    /// Payee name, screened and NFC (its length is checked here).
    pub payee: DisplayText,
    /// SPC display data, when the payment runs as `payment.get` (screened when decoded;
    /// lengths and origins checked here).
    pub spc: Option<SpcDisplay>,
    /// Who the authorization is for (signed as its `aud`), if the caller names one.
    pub audience: Option<Audience>,
}

impl PaymentChallengeInput {
    /// The amount, currency and payee checked, and the SPC display data if any (422).
    pub fn check_values(&self) -> Result<(Amount, Currency, Payee), PaymentError> {
        let amount = Amount::new(self.amount)?;
        let currency = Currency::parse(&self.currency)?;
        let payee = Payee::parse(&self.payee)?;
        if self.spc.as_ref().is_some_and(|s| !valid_spc(s)) {
            return Err(PaymentError::InvalidSpc);
        }
        Ok((amount, currency, payee))
    }
}

/// An assertion answering a payment challenge.
#[derive(Debug, Clone)]
pub struct AuthorizeInput {
    /// The challenge answered.
    pub challenge_id: String,
    /// The credential id used.
    pub credential_id: Vec<u8>,
    /// authenticatorData.
    pub authenticator_data: Vec<u8>,
    /// clientDataJSON, exact bytes.
    pub client_data_json: Vec<u8>,
    /// The assertion signature.
    pub signature: Vec<u8>,
    /// The SPC browser-bound signature over clientDataJSON, if the browser sent one.
    pub browser_bound_signature: Option<Vec<u8>>,
}

/// A payment challenge just issued (also the answer stored for its idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedPaymentChallenge {
    /// Quote it back with the assertion.
    pub challenge_id: String,
    /// 32 random bytes, base64url without padding.
    pub challenge: String,
    /// RFC 3339 UTC.
    pub expires_at: String,
}

/// An approved, signed and committed authorization (also the answer stored for its
/// idempotency key).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedAuthorization {
    /// payhsm's id for it.
    pub authorization_id: String,
    /// The compact JWS (ES256).
    pub authorization: String,
    /// `approved`.
    pub decision: String,
}

/// A payment between its signature and its commit: the assertion verified, the policy allowed
/// it, the JWS is signed. Made only by [`Authorizations::sign_payment`] and used up by
/// [`Authorizations::commit_payment`], so nothing commits an approval that skipped a step.
#[derive(Debug)]
pub struct SignedPayment(Signed);

#[derive(Debug)]
enum Signed {
    /// An earlier request with the same Idempotency-Key got this answer: nothing to commit.
    Replayed(SignedAuthorization),
    /// The commit to make (consume, counter, authorization, key, audit) and the answer to
    /// give once it is made.
    Ready {
        commit: Box<AuthorizationCommit>,
        answer: SignedAuthorization,
    },
}

fn valid_spc(spc: &SpcDisplay) -> bool {
    let text_ok = |s: &str| {
        let n = s.chars().count();
        n > 0 && n <= MAX_SPC_CHARS && !s.chars().any(char::is_control)
    };
    [
        &spc.top_origin,
        &spc.instrument_display_name,
        &spc.instrument_icon,
    ]
    .into_iter()
    .chain(&spc.payee_origin)
    .chain(&spc.instrument_details)
    .chain(spc.entity_logos.iter().flat_map(|l| [&l.url, &l.label]))
    .all(|s| text_ok(s))
        && spc
            .payee_origin
            .as_ref()
            .is_none_or(|o| o.starts_with("https://"))
        && spc.top_origin.starts_with("https://")
        && spc.entity_logos.len() <= crate::payment::MAX_SPC_LOGOS
}

fn challenge_state_error(state: ChallengeState) -> Error {
    match state {
        ChallengeState::NotFound => Error::ChallengeNotFound,
        ChallengeState::AlreadyUsed => Error::ChallengeUsed,
        ChallengeState::Expired => Error::ChallengeExpired,
    }
}

fn replayed<T: serde::de::DeserializeOwned>(response: &str) -> Result<T, Error> {
    serde_json::from_str(response).map_err(|e| {
        Error::Store(crate::store::StoreError::corrupt_from(
            "stored idempotent answer",
            e,
        ))
    })
}

impl Authorizations {
    /// Builds the use cases over the store, the policy, the `[webauthn]` configuration and
    /// the authorization signer.
    pub fn new(
        store: Arc<dyn Store>,
        policy: Arc<PolicyEngine>,
        ring: Arc<SharedRing>,
        config: WebauthnConfig,
        signer: AuthorizationSigner,
        metadata: Arc<Metadata>,
    ) -> Self {
        let parties = config.verifier_relying_parties();
        Self {
            store,
            policy,
            ring,
            config,
            parties,
            signer,
            metadata,
        }
    }

    /// Issues a single-use challenge bound to one payment by one enrolled device.
    pub async fn create_challenge(
        &self,
        caller: &Caller,
        input: PaymentChallengeInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<IssuedPaymentChallenge, Error> {
        let keyed = self.keyed(caller, key, || {
            request_hash(OP_CHALLENGE, &challenge_canonical(&input))
        })?;
        let decision = self.policy.decide(&PolicyRequest::new(
            &caller.principal,
            Action::CreateAuthorizationChallenge,
            Resource::Domain(&input.domain),
        ));
        let allowed = decision.allowed();
        // Whatever happens next, the record states the engine's answer.
        let mut audit = caller.audit_event(
            Action::CreateAuthorizationChallenge.as_str(),
            PolicyVerdict::Decided(decision),
        );
        // Masked until the token is found (see `Token::masked`).
        audit.token = Some(input.token.masked());
        audit.domain = Some(input.domain.as_str().to_owned());
        audit.detail = Some(format!("device={}", input.device_id));
        if !allowed {
            return Err(self.refuse(audit, Error::Forbidden).await);
        }
        if let Some(answer) = self.earlier_answer(caller, keyed).await? {
            return match answer {
                Ok(resp) => replayed(&resp),
                Err(e) => Err(self.refuse(audit, e).await),
            };
        }
        let (amount, currency, payee) = match input.check_values() {
            Ok(v) => v,
            Err(e) => return Err(self.refuse(audit, e.into()).await),
        };
        if let Err(e) = self.check_token(&input.token, &input.domain).await {
            if !matches!(e, Error::TokenNotFound) {
                audit.token = Some(input.token.as_str().to_owned());
            }
            return Err(self.refuse(audit, e).await);
        }
        audit.token = Some(input.token.as_str().to_owned());
        match self.store.device(&input.device_id).await? {
            None => return Err(self.refuse(audit, Error::DeviceNotFound).await),
            Some(d)
                if d.token.as_ref() != Some(&input.token)
                    || d.domain.as_ref() != Some(&input.domain) =>
            {
                return Err(self.refuse(audit, Error::DeviceNotEnrolledForToken).await)
            }
            Some(d) if d.state != DeviceState::Active => {
                return Err(self.refuse(audit, Error::DeviceRevoked).await)
            }
            Some(_) => {}
        }
        let mut challenge = vec![0u8; CHALLENGE_BYTES];
        fill_random(&mut challenge);
        let now = time::OffsetDateTime::now_utc();
        let record = AuthorizationChallengeRecord {
            id: time_ordered_id(now),
            challenge,
            principal: caller.principal.as_str().to_owned(),
            token: input.token,
            domain: input.domain,
            device_id: input.device_id,
            amount: amount.minor_units(),
            currency: currency.code().to_owned(),
            payee: payee.as_str().to_owned(),
            spc: input.spc,
            audience: input.audience.map(Audience::into_string),
            created_at: crate::clock::format_rfc3339(now),
            expires_at: crate::clock::format_rfc3339(now + self.config.authorization_challenge_ttl),
            used_at: None,
        };
        let issued = IssuedPaymentChallenge {
            challenge_id: record.id.clone(),
            challenge: URL_SAFE_NO_PAD.encode(&record.challenge),
            expires_at: record.expires_at.clone(),
        };
        let idempotency = self.idempotency_record(caller, keyed, &issued)?;
        audit.action = ISSUED.to_owned();
        audit.outcome = "created".to_owned();
        audit.detail = Some(format!(
            "challenge_id={} device={} amount={} currency={} payee={:?}{}",
            record.id,
            record.device_id,
            record.amount,
            record.currency,
            record.payee,
            if record.spc.is_some() { " spc" } else { "" }
        ));
        if let (Some(detail), Some(aud)) = (&mut audit.detail, &record.audience) {
            detail.push_str(&format!(" audience={aud:?}"));
        }
        let refused = audit.clone();
        match self
            .store
            .create_authorization_challenge(record, audit, idempotency)
            .await?
        {
            Idempotent::Fresh(ChallengeIssue::Issued) => Ok(issued),
            // Suspended or deleted since `check_token`: nothing was stored.
            Idempotent::Fresh(ChallengeIssue::TokenNotActive(status)) => {
                Err(self.refuse(refused, token_error(status)).await)
            }
            // Revoked since the check above: nothing was stored.
            Idempotent::Fresh(ChallengeIssue::DeviceRevoked) => {
                Err(self.refuse(refused, Error::DeviceRevoked).await)
            }
            Idempotent::Replayed(resp) => replayed(&resp),
            Idempotent::KeyReused => Err(self.refuse(refused, Error::IdempotencyKeyReused).await),
        }
    }

    /// Verifies the device's assertion against its challenge, asks the policy, and signs and
    /// commits the authorization. A refusal signs nothing.
    pub async fn authorize(
        &self,
        caller: &Caller,
        input: AuthorizeInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<SignedAuthorization, Error> {
        let signed = self.sign_payment(caller, input, key).await?;
        self.commit_payment(signed).await
    }

    /// The first step of [`Self::authorize`]: verifies the device's assertion against its
    /// challenge, asks the policy and signs the authorization, or ends the attempt as a
    /// refusal (audited, the challenge used up). The signed authorization leaves only through
    /// [`Self::commit_payment`].
    pub async fn sign_payment(
        &self,
        caller: &Caller,
        input: AuthorizeInput,
        key: Option<&IdempotencyKey>,
    ) -> Result<SignedPayment, Error> {
        let keyed = self.keyed(caller, key, || {
            request_hash(OP_AUTHORIZE, &authorize_canonical(&input))
        })?;
        // The payment policy needs what the assertion establishes: until it is asked, a refusal
        // is recorded as not asked. The caller's challenge id is audited only once it names a
        // stored challenge: before that it is caller text, and could be a card number.
        let mut audit = caller.audit_event(REFUSED, PolicyVerdict::NotAsked);
        if let Some(answer) = self.earlier_answer(caller, keyed).await? {
            return match answer {
                Ok(resp) => Ok(SignedPayment(Signed::Replayed(replayed(&resp)?))),
                Err(e) => Err(self.refuse(audit, e).await),
            };
        }
        // Only the principal that asked for the challenge may answer it.
        let challenge = match self
            .store
            .authorization_challenge(&input.challenge_id)
            .await?
        {
            Some(c) if c.principal == caller.principal.as_str() => c,
            _ => return Err(self.refuse(audit, Error::ChallengeNotFound).await),
        };
        audit.token = Some(challenge.token.as_str().to_owned());
        audit.domain = Some(challenge.domain.as_str().to_owned());
        audit.detail = Some(format!(
            "challenge_id={} device={} credential={} amount={} currency={} payee={:?}",
            challenge.id,
            challenge.device_id,
            URL_SAFE_NO_PAD.encode(&input.credential_id),
            challenge.amount,
            challenge.currency,
            challenge.payee
        ));
        // WebAuthn L3 §7.2 step 12 / §13.4.3: a challenge is used once and only while fresh.
        let now = time::OffsetDateTime::now_utc();
        let now_text = crate::clock::format_rfc3339(now);
        if challenge.used_at.is_some() {
            return Err(self.refuse(audit, Error::ChallengeUsed).await);
        }
        if challenge.expires_at <= now_text {
            return Err(self.refuse(audit, Error::ChallengeExpired).await);
        }
        let end = |counter: Option<CounterUpdate>| AuthorizationCommit {
            challenge_id: challenge.id.clone(),
            now: now_text.clone(),
            counter,
            authorization: None,
            audit: audit.clone(),
            idempotency: None,
        };
        // §7.2 step 6: the credential must be the challenge's device's.
        let device = match self
            .store
            .device_by_credential(&input.credential_id)
            .await?
        {
            Some(d) if d.device_id == challenge.device_id => d,
            _ => {
                return Err(self
                    .refuse_consuming(end(None), Error::CredentialMismatch)
                    .await)
            }
        };
        // A revoked device authorizes nothing, whenever its challenge was issued.
        if device.state != DeviceState::Active {
            return Err(self.refuse_consuming(end(None), Error::DeviceRevoked).await);
        }
        if let Err(e) = self.check_token(&challenge.token, &challenge.domain).await {
            return Err(self.refuse_consuming(end(None), e).await);
        }
        let Some(rp) = self
            .parties
            .iter()
            .find(|rp| rp.ids.contains(&device.rp_id))
        else {
            return Err(self
                .refuse_consuming(end(None), Error::UnknownRelyingParty)
                .await);
        };
        let Ok(currency) = Currency::parse(&challenge.currency) else {
            let e = Error::Payment(PaymentError::InvalidCurrency);
            return Err(self.refuse_consuming(end(None), e).await);
        };
        let Ok(amount) = Amount::new(challenge.amount) else {
            let e = Error::Payment(PaymentError::InvalidAmount);
            return Err(self.refuse_consuming(end(None), e).await);
        };
        // SPC: every payment member the browser was asked to show must come back unchanged.
        let expected = ExpectedPayment {
            rp_id: Some(device.rp_id.clone()),
            payee_name: Some(challenge.payee.clone()),
            total_currency: Some(challenge.currency.clone()),
            total_value: Some(amount.to_decimal(currency)),
            top_origin: challenge.spc.as_ref().map(|s| s.top_origin.clone()),
            payee_origin: challenge.spc.as_ref().and_then(|s| s.payee_origin.clone()),
            instrument_display_name: challenge
                .spc
                .as_ref()
                .map(|s| s.instrument_display_name.clone()),
            instrument_icon: challenge.spc.as_ref().map(|s| s.instrument_icon.clone()),
            browser_bound_public_key: None,
            instrument_details: challenge
                .spc
                .as_ref()
                .and_then(|s| s.instrument_details.clone()),
            entity_logos: challenge.spc.as_ref().map(|s| {
                s.entity_logos
                    .iter()
                    .map(|l| (l.url.clone(), l.label.clone()))
                    .collect()
            }),
        };
        // A challenge issued with SPC display data must be answered by `payment.get`.
        let types: &[AssertionType] = if challenge.spc.is_some() {
            &[AssertionType::PaymentGet]
        } else {
            &[AssertionType::Get, AssertionType::PaymentGet]
        };
        let challenge_b64 = URL_SAFE_NO_PAD.encode(&challenge.challenge);
        let verdict = verify_assertion(
            AssertionInput {
                credential_id: &input.credential_id,
                client_data_json: &input.client_data_json,
                authenticator_data: &input.authenticator_data,
                signature: &input.signature,
            },
            &AssertionExpectations {
                rp,
                challenge: &challenge_b64,
                types,
                // Payments always need UV, whatever the enrolment setting.
                require_user_verification: true,
                payment: Some(&expected),
            },
            &StoredCredential {
                credential_id: device.credential_id.clone(),
                public_key_cbor: device.public_key_cbor.clone(),
                sign_count: device.sign_count,
                backup_eligible: device.backup_eligible,
            },
        );
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => return Err(self.refuse_consuming(end(None), Error::Webauthn(e)).await),
        };
        // SPC browser-bound key: its signature must verify, and a device that enrolled with
        // one must show the same one (a synced passkey on another browser has not got it).
        let browser_bound = browser_bound::verify(
            verdict.browser_bound_public_key.as_deref(),
            &input.client_data_json,
            input.browser_bound_signature.as_deref(),
            &self.config.algorithms,
        )
        .and_then(|k| {
            browser_bound::check_enrolled(device.browser_bound_key.as_deref(), k.as_ref())
                .map(|()| k)
        });
        let browser_bound = match browser_bound {
            Ok(k) => k,
            Err(e) => {
                let e = Error::Webauthn(e.into());
                return Err(self.refuse_consuming(end(None), e).await);
            }
        };
        let counter = CounterUpdate {
            device_id: device.device_id.clone(),
            expected_old: device.sign_count,
            new: verdict.sign_count,
        };
        // The Metadata Service in force now, not at enrolment: a model found compromised
        // since authorizes nothing until a BLOB says otherwise.
        let model = match self.metadata.model(&device.aaguid, None, now) {
            Ok(m) => m,
            Err(LookupError::Stale) => {
                let e = Error::MetadataStale;
                return Err(self.refuse_consuming(end(Some(counter)), e).await);
            }
        };
        if let Some(code) = model.refusal {
            let e = Error::AuthenticatorStatus(code);
            return Err(self.refuse_consuming(end(Some(counter)), e).await);
        }
        let context = PaymentContext {
            amount: challenge.amount,
            currency: challenge.currency.clone(),
            payee: challenge.payee.clone(),
            user_verified: verdict.user_verified,
            trust: device.trust.as_str().to_owned(),
            backup_state: verdict.backup_state,
            domain: challenge.domain.as_str().to_owned(),
            certification: model.certification.to_owned(),
            mds_status: model.mds_status.to_owned(),
            android_verified_boot: device
                .android_boot
                .as_ref()
                .map_or_else(|| "none".to_owned(), |b| b.verified_boot_state.clone()),
            android_device_locked: device
                .android_boot
                .as_ref()
                .is_some_and(|b| b.device_locked),
        };
        let decision = self.policy.decide(&PolicyRequest {
            principal: &caller.principal,
            action: Action::AuthorizePayment,
            resource: Resource::Domain(&challenge.domain),
            context: PolicyContext::Payment(&context),
        });
        let allowed = decision.allowed();
        let policy_ids = decision.policy_ids().to_vec();
        let mut finish = end(Some(counter));
        finish.audit.decided(decision);
        if !allowed {
            let e = Error::PaymentRefused(policy_ids);
            return Err(self.refuse_consuming(finish, e).await);
        }
        let authorization_id = time_ordered_id(now);
        let iat = now.unix_timestamp();
        let ttl = i64::try_from(self.config.authorization_ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = iat.saturating_add(ttl);
        let mut claims = serde_json::json!({
            // RFC 7519 §4.1.7: jti, the authorization's unique id.
            "jti": authorization_id,
            "authorization_id": authorization_id,
            "token": challenge.token.as_str(),
            "domain": challenge.domain.as_str(),
            "amount": challenge.amount,
            "currency": challenge.currency,
            "payee": challenge.payee,
            "device_id": device.device_id,
            "credential_id": URL_SAFE_NO_PAD.encode(&device.credential_id),
            "user_verified": verdict.user_verified,
            "trust": device.trust.as_str(),
            "policy": policy_ids,
            "iat": iat,
            "exp": exp,
        });
        // RFC 7519 §4.1.3: aud, only when the challenge named the recipient.
        if let (Some(audience), Some(map)) = (&challenge.audience, claims.as_object_mut()) {
            map.insert("aud".to_owned(), audience.clone().into());
        }
        // The browser-bound key's COSE Key Thumbprint (RFC 9679), when the payment showed one.
        if let (Some(k), Some(map)) = (&browser_bound, claims.as_object_mut()) {
            map.insert("browser_bound_key".to_owned(), k.thumbprint().into());
        }
        // Sign first, then commit: if the commit fails the JWS is never returned.
        let SignedJws { compact: jws, kid } = match self.signer.sign(&claims).await {
            Ok(signed) => signed,
            Err(e) => return Err(self.refuse_consuming(finish, Error::Signer(e)).await),
        };
        let signed = SignedAuthorization {
            authorization_id: authorization_id.clone(),
            authorization: jws.clone(),
            decision: "approved".to_owned(),
        };
        finish.idempotency = self.idempotency_record(caller, keyed, &signed)?;
        finish.authorization = Some(AuthorizationRecord {
            authorization_id,
            challenge_id: challenge.id.clone(),
            token: challenge.token.clone(),
            domain: challenge.domain.clone(),
            amount: challenge.amount,
            currency: challenge.currency.clone(),
            payee: challenge.payee.clone(),
            device_id: device.device_id.clone(),
            credential_id: device.credential_id.clone(),
            decision: signed.decision.clone(),
            policy_ids,
            kid,
            iat,
            exp,
            jws,
        });
        finish.audit.action = APPROVED.to_owned();
        finish.audit.outcome = "approved".to_owned();
        if let Some(detail) = &mut finish.audit.detail {
            detail.push_str(&format!(
                " authorization={} trust={} uv={}",
                signed.authorization_id,
                device.trust.as_str(),
                verdict.user_verified
            ));
        }
        Ok(SignedPayment(Signed::Ready {
            commit: Box::new(finish),
            answer: signed,
        }))
    }

    /// The last step of [`Self::authorize`]: commits a signed payment in one store
    /// transaction (consume the challenge, move the counter, store the authorization and the
    /// idempotency key, audit) and only then returns the authorization.
    pub async fn commit_payment(
        &self,
        signed: SignedPayment,
    ) -> Result<SignedAuthorization, Error> {
        let (finish, signed) = match signed.0 {
            Signed::Replayed(answer) => return Ok(answer),
            Signed::Ready { commit, answer } => (*commit, answer),
        };
        // What ends the attempt as a refusal if the commit cannot approve it.
        let refusal = AuthorizationCommit {
            challenge_id: finish.challenge_id.clone(),
            now: finish.now.clone(),
            counter: finish.counter.clone(),
            authorization: None,
            audit: finish.audit.clone(),
            idempotency: None,
        };
        match self.store.commit_authorization(finish).await? {
            Idempotent::Fresh(CommitOutcome::Committed) => Ok(signed),
            // Suspended or deleted since `check_token`: nothing was written, the JWS is dropped,
            // and the attempt ends as any refusal does (challenge used up, counter moved).
            Idempotent::Fresh(CommitOutcome::TokenNotActive(status)) => {
                Err(self.refuse_consuming(refusal, token_error(status)).await)
            }
            // Revoked since it was read: likewise, the JWS is dropped.
            Idempotent::Fresh(CommitOutcome::DeviceRevoked) => {
                Err(self.refuse_consuming(refusal, Error::DeviceRevoked).await)
            }
            Idempotent::Fresh(outcome) => {
                Err(self.refuse(refusal.audit, outcome_error(outcome)).await)
            }
            Idempotent::Replayed(resp) => replayed(&resp),
            Idempotent::KeyReused => Err(self
                .refuse(refusal.audit, Error::IdempotencyKeyReused)
                .await),
        }
    }

    /// A signed authorization by id, with its JWS as issued: for a caller the policy allows
    /// `read_authorization` on the domain of the token it was paid with. A refusal is audited;
    /// an unknown id is [`Error::AuthorizationNotFound`] before any policy question (an id
    /// holds 74 random bits: whoever knows one learns nothing from its existence).
    pub async fn get(&self, caller: &Caller, id: &str) -> Result<AuthorizationRecord, Error> {
        let Some(record) = self.store.authorization(id).await? else {
            return Err(Error::AuthorizationNotFound);
        };
        check_policy(
            self.store.as_ref(),
            &self.policy,
            caller,
            Action::ReadAuthorization,
            Resource::Domain(&record.domain),
            |audit| {
                audit.token = Some(record.token.as_str().to_owned());
                audit.domain = Some(record.domain.as_str().to_owned());
                audit.detail = Some(format!("authorization={}", record.authorization_id));
            },
        )
        .await?;
        Ok(record)
    }

    /// The tag and request hash of an Idempotency-Key, when one came (the request is hashed
    /// only then).
    fn keyed(
        &self,
        caller: &Caller,
        key: Option<&IdempotencyKey>,
        hash: impl FnOnce() -> [u8; 32],
    ) -> Result<Option<Keyed>, Error> {
        let Some(key) = key else {
            return Ok(None);
        };
        let (version, tag) = self
            .ring
            .current()
            .idempotency_tag(caller.principal.as_str(), key.as_str())
            .ok_or(Error::Keys(KeyError::NoActiveKey))?;
        Ok(Some(Keyed {
            version,
            tag,
            hash: hash(),
        }))
    }

    /// The answer an earlier request with this key got (`Ok`), or `Err` if the key was used
    /// for another request; `None` without a key or for a new key.
    async fn earlier_answer(
        &self,
        caller: &Caller,
        keyed: Option<Keyed>,
    ) -> Result<Option<Result<String, Error>>, Error> {
        let Some(keyed) = keyed else {
            return Ok(None);
        };
        let found = self
            .store
            .idempotency(caller.principal.as_str(), &keyed.stored())
            .await?;
        Ok(found.map(|r| {
            if r.request_hash == keyed.hash {
                Ok(r.response)
            } else {
                Err(Error::IdempotencyKeyReused)
            }
        }))
    }

    fn idempotency_record<T: Serialize>(
        &self,
        caller: &Caller,
        keyed: Option<Keyed>,
        answer: &T,
    ) -> Result<Option<IdempotencyRecord>, Error> {
        let Some(keyed) = keyed else {
            return Ok(None);
        };
        let response = serde_json::to_string(answer).map_err(|e| {
            Error::Store(crate::store::StoreError::unavailable_from(
                "idempotent answer encoding",
                e,
            ))
        })?;
        Ok(Some(IdempotencyRecord {
            principal: caller.principal.as_str().to_owned(),
            key: keyed.stored(),
            request_hash: keyed.hash,
            response,
            created_at: crate::clock::now_rfc3339(),
        }))
    }

    /// The token must be live and active in its domain. An early check: the store checks
    /// again in the transaction that stores a challenge or commits an approval.
    async fn check_token(&self, token: &Token, domain: &Domain) -> Result<(), Error> {
        match self.store.token(token, domain).await? {
            Some(r) if r.status == TokenStatus::Active => Ok(()),
            Some(r) => Err(token_error(r.status)),
            None => Err(Error::TokenNotFound),
        }
    }

    /// Audits a refusal (outcome: the error's code) and returns the error; if the audit
    /// record cannot be written, the store error is returned instead.
    async fn refuse(&self, mut audit: AuditEvent, error: Error) -> Error {
        if audit.action == Action::CreateAuthorizationChallenge.as_str() || audit.action == ISSUED {
            audit.action = Action::CreateAuthorizationChallenge.as_str().to_owned();
        } else {
            audit.action = REFUSED.to_owned();
        }
        audit.outcome = error.code().to_owned();
        match self.store.record(audit).await {
            Ok(()) => error,
            Err(e) => Error::Store(e),
        }
    }

    /// Ends the attempt as a refusal: consumes the challenge (moving the counter if the
    /// assertion verified) and writes the refusal's audit record in one transaction.
    async fn refuse_consuming(&self, mut end: AuthorizationCommit, error: Error) -> Error {
        end.audit.action = REFUSED.to_owned();
        end.audit.outcome = error.code().to_owned();
        end.authorization = None;
        end.idempotency = None;
        let audit = end.audit.clone();
        match self.store.commit_authorization(end).await {
            Ok(Idempotent::Fresh(CommitOutcome::Committed)) => error,
            Ok(Idempotent::Fresh(outcome)) => self.refuse(audit, outcome_error(outcome)).await,
            // No key was given, so neither can happen.
            Ok(Idempotent::Replayed(_) | Idempotent::KeyReused) => error,
            Err(e) => Error::Store(e),
        }
    }
}

fn outcome_error(outcome: CommitOutcome) -> Error {
    match outcome {
        CommitOutcome::Challenge(state) => challenge_state_error(state),
        CommitOutcome::TokenNotActive(status) => token_error(status),
        CommitOutcome::DeviceRevoked => Error::DeviceRevoked,
        CommitOutcome::CounterConflict | CommitOutcome::Committed => Error::CounterConflict,
    }
}

/// Why a token that is not active cannot pay: suspended, or as good as absent.
fn token_error(status: TokenStatus) -> Error {
    match status {
        TokenStatus::Suspended => Error::TokenSuspended,
        TokenStatus::Active | TokenStatus::Deleted => Error::TokenNotFound,
    }
}

fn challenge_canonical(i: &PaymentChallengeInput) -> serde_json::Value {
    let mut canonical = serde_json::json!({
        "token": i.token.as_str(),
        "domain": i.domain.as_str(),
        "device_id": i.device_id,
        "amount": i.amount,
        "currency": i.currency,
        "payee": i.payee.as_str(),
        "spc": i.spc.as_ref().map(|s| {
            // Only when asked, so a key stored before these members existed hashes as it did.
            let mut instrument = serde_json::Map::new();
            instrument.insert("display_name".into(), s.instrument_display_name.clone().into());
            instrument.insert("icon".into(), s.instrument_icon.clone().into());
            if let Some(details) = &s.instrument_details {
                instrument.insert("details".into(), details.clone().into());
            }
            let mut spc = serde_json::Map::new();
            if let Some(origin) = &s.payee_origin {
                spc.insert("payee_origin".into(), origin.clone().into());
            }
            spc.insert("top_origin".into(), s.top_origin.clone().into());
            spc.insert("instrument".into(), instrument.into());
            if !s.entity_logos.is_empty() {
                spc.insert(
                    "payment_entities_logos".into(),
                    serde_json::json!(s.entity_logos),
                );
            }
            serde_json::Value::Object(spc)
        }),
    });
    // Only when named, so a key stored before audiences existed hashes as it did.
    if let (Some(audience), Some(map)) = (&i.audience, canonical.as_object_mut()) {
        map.insert("audience".to_owned(), audience.as_str().into());
    }
    canonical
}

fn authorize_canonical(i: &AuthorizeInput) -> serde_json::Value {
    let mut canonical = serde_json::json!({
        "challenge_id": i.challenge_id,
        "credential_id": URL_SAFE_NO_PAD.encode(&i.credential_id),
        "authenticator_data": URL_SAFE_NO_PAD.encode(&i.authenticator_data),
        "client_data_json": URL_SAFE_NO_PAD.encode(&i.client_data_json),
        "signature": URL_SAFE_NO_PAD.encode(&i.signature),
    });
    // Only when sent: the hash of a request without one stays what it was before SPC
    // browser-bound keys, so an idempotent retry across an upgrade still matches.
    if let (Some(sig), Some(fields)) = (&i.browser_bound_signature, canonical.as_object_mut()) {
        fields.insert(
            "browser_bound_signature".to_owned(),
            URL_SAFE_NO_PAD.encode(sig).into(),
        );
    }
    canonical
}
