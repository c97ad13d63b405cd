//! Tokenization use cases: tokenize, detokenize, read metadata, suspend/resume/delete.

use super::ids::fill_random;
use super::KeySync;
use super::{Caller, Error};
use crate::audit::{AuditEvent, Receipt};
use crate::card::{Domain, Expiry, Last4, Pan, StatusChange, Token, TokenFormat, TokenStatus};
use crate::keys::SharedRing;
use crate::policy::{Action, PolicyEngine, Resource};
use crate::store::{
    DetokenizeOutcome, Lookup, NewToken, Store, TokenRecord, TokenizeOutcome, TransitionOutcome,
};
use std::sync::Arc;

mod batch;
pub use batch::{BatchCard, MAX_TOKEN_BATCH};

/// How many tokens are offered for one PAN before giving up: the derived one, then random
/// draws. A collision needs the same kept digits and the same middle in one domain; sixteen
/// misses in a row mean the token space of that BIN and last four is nearly full.
const MAX_TOKEN_DRAWS: usize = 16;

/// The card vault: tokens for PANs, and PANs back for those allowed.
pub struct Vault {
    store: Arc<dyn Store>,
    keys: Arc<SharedRing>,
    policy: Arc<PolicyEngine>,
    format: TokenFormat,
    /// Reloads `keys` when another replica changed them (none in unit setups).
    sync: Option<Arc<KeySync>>,
}

/// A request to tokenize.
#[derive(Debug)]
pub struct TokenizeInput {
    /// The card number.
    pub pan: Pan,
    /// Its expiry, if known.
    pub expiry: Option<Expiry>,
    /// The domain the token belongs to.
    pub domain: Domain,
}

/// A token's metadata: what any allowed caller may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenView {
    /// The token.
    pub token: Token,
    /// Its domain.
    pub domain: Domain,
    /// Lifecycle state.
    pub status: TokenStatus,
    /// The PAN's last four digits.
    pub last4: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// RFC 3339 UTC.
    pub updated_at: String,
}

impl From<&TokenRecord> for TokenView {
    fn from(r: &TokenRecord) -> Self {
        Self {
            token: r.token.clone(),
            domain: r.domain.clone(),
            status: r.status,
            last4: r.last4.as_str().to_owned(),
            created_at: r.created_at.clone(),
            updated_at: r.updated_at.clone(),
        }
    }
}

/// The result of a tokenization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tokenized {
    /// A new token was issued.
    Created(TokenView),
    /// The PAN already had a token in this domain; that one is returned.
    Existing(TokenView),
}

/// A PAN released by detokenization. Zeroized on drop.
#[derive(Debug)]
pub struct Detokenized {
    /// The card number.
    pub pan: Pan,
    /// Its expiry, if it was given at tokenization.
    pub expiry: Option<Expiry>,
    /// The receipt of the release's audit record.
    pub receipt: Receipt,
}

impl Vault {
    /// Builds the vault over its store, loaded key ring, policy and token format.
    pub fn new(
        store: Arc<dyn Store>,
        keys: Arc<SharedRing>,
        policy: Arc<PolicyEngine>,
        format: TokenFormat,
    ) -> Self {
        Self {
            store,
            keys,
            policy,
            format,
            sync: None,
        }
    }

    /// Reloads the ring through `sync` when the store's keys turn out newer than it.
    pub fn with_key_sync(mut self, sync: Arc<KeySync>) -> Self {
        self.sync = Some(sync);
        self
    }

    /// The store (for readiness checks).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Issues a token for the PAN in the domain, or returns the one it already has there.
    pub async fn tokenize(
        &self,
        caller: &Caller,
        input: TokenizeInput,
    ) -> Result<Tokenized, Error> {
        let TokenizeInput {
            pan,
            expiry,
            domain,
        } = input;
        let last4 = pan.last4();
        let audit = self
            .authorize(
                caller,
                Action::Tokenize,
                &domain,
                None,
                Some(last4.as_str()),
            )
            .await?;
        self.tokenize_allowed(&pan, expiry, &domain, audit).await
    }

    /// Tokenizes once the policy has allowed it; `audit` is the allowed request's event,
    /// completed by the store with the outcome.
    async fn tokenize_allowed(
        &self,
        pan: &Pan,
        expiry: Option<Expiry>,
        domain: &Domain,
        mut audit: AuditEvent,
    ) -> Result<Tokenized, Error> {
        let last4 = pan.last4();
        // A second pass only after the store said the ring was not its keys' (another
        // replica changed them) and the ring was reloaded.
        for pass in 0..2 {
            match self
                .tokenize_with_ring(pan, expiry, domain, last4, &audit)
                .await?
            {
                Some(Ok(done)) => return Ok(done),
                Some(Err(())) => break,
                None if pass == 0 && self.sync_keys().await? => continue,
                None => return Err(Error::KeysChanged),
            }
        }
        audit.outcome = "token_space_exhausted".to_owned();
        self.store.record(audit).await?;
        Err(Error::TokenSpaceExhausted)
    }

    /// One tokenization attempt with the ring as it is now: `Some(Ok(_))` done, `Some(Err(()))`
    /// no free token found, `None` the store's keys are not this ring's.
    async fn tokenize_with_ring(
        &self,
        pan: &Pan,
        expiry: Option<Expiry>,
        domain: &Domain,
        last4: Last4,
        audit: &AuditEvent,
    ) -> Result<Option<Result<Tokenized, ()>>, Error> {
        let keys = self.keys.current();
        let lookup: Vec<Lookup> = keys
            .versioned_fingerprints(pan, domain)
            .into_iter()
            .map(|(version, fingerprint)| Lookup {
                version,
                derived: self.format.derive(pan, &fingerprint.0),
                fingerprint,
            })
            .collect();
        let first = lookup
            .first()
            .ok_or(Error::Keys(crate::keys::KeyError::NoActiveKey))?;
        let fingerprint = first.fingerprint;
        for draw in 0..MAX_TOKEN_DRAWS {
            // First the token derived from the fingerprint; if another card holds it, random.
            let token = if draw == 0 {
                first.derived.clone()
            } else {
                self.format.generate(pan, fill_random)
            };
            let sealed = keys.seal(pan, expiry, &token, domain)?;
            let now = crate::clock::now_rfc3339();
            let record = TokenRecord {
                token,
                domain: domain.clone(),
                fingerprint: Some(fingerprint),
                sealed: Some(sealed),
                last4,
                status: TokenStatus::Active,
                created_at: now.clone(),
                updated_at: now,
            };
            let new = NewToken {
                record,
                format: self.format,
                lookup: lookup.clone(),
            };
            match self.store.tokenize(new, audit.clone()).await? {
                TokenizeOutcome::Created(r) => {
                    return Ok(Some(Ok(Tokenized::Created((&r).into()))))
                }
                TokenizeOutcome::Existing(r) => {
                    return Ok(Some(Ok(Tokenized::Existing((&r).into()))))
                }
                TokenizeOutcome::TokenTaken => continue,
                TokenizeOutcome::KeysChanged => return Ok(None),
            }
        }
        Ok(Some(Err(())))
    }

    /// Reloads the key ring from the store, if this vault can; whether anything changed.
    async fn sync_keys(&self) -> Result<bool, Error> {
        match &self.sync {
            Some(sync) => sync.sync().await,
            None => Ok(false),
        }
    }

    /// Returns the PAN behind an active token, only to callers the policy allows, and only
    /// after the audit record of this release is durable.
    pub async fn detokenize(
        &self,
        caller: &Caller,
        token: &Token,
        domain: &Domain,
    ) -> Result<Detokenized, Error> {
        let audit = self
            .authorize(caller, Action::Detokenize, domain, Some(token), None)
            .await?;
        let outcome = self.store.detokenize(token, domain, audit).await?;
        self.open(outcome, token, domain).await
    }

    /// The PAN of a detokenize outcome whose audit record the store has written.
    async fn open(
        &self,
        outcome: DetokenizeOutcome,
        token: &Token,
        domain: &Domain,
    ) -> Result<Detokenized, Error> {
        let (sealed, receipt) = match outcome {
            DetokenizeOutcome::Active(sealed, receipt) => (sealed, receipt),
            DetokenizeOutcome::Suspended => return Err(Error::TokenSuspended),
            DetokenizeOutcome::NotFound => return Err(Error::TokenNotFound),
        };
        let opened = match self.keys.current().open(&sealed, token, domain) {
            // Sealed under a version another replica made since this ring was loaded.
            Err(crate::keys::KeyError::UnknownVersion(_)) if self.sync_keys().await? => {
                self.keys.current().open(&sealed, token, domain)
            }
            other => other,
        };
        let (pan, expiry) = opened?;
        Ok(Detokenized {
            pan,
            expiry,
            receipt,
        })
    }

    /// A token's metadata (any state but deleted).
    pub async fn metadata(
        &self,
        caller: &Caller,
        token: &Token,
        domain: &Domain,
    ) -> Result<TokenView, Error> {
        self.authorize(caller, Action::ReadMetadata, domain, Some(token), None)
            .await?;
        match self.store.token(token, domain).await? {
            Some(r) if r.status != TokenStatus::Deleted => Ok((&r).into()),
            _ => Err(Error::TokenNotFound),
        }
    }

    /// Suspends, resumes or deletes a token.
    pub async fn change_status(
        &self,
        caller: &Caller,
        token: &Token,
        domain: &Domain,
        change: StatusChange,
    ) -> Result<TokenView, Error> {
        let action = match change {
            StatusChange::Suspend => Action::Suspend,
            StatusChange::Resume => Action::Resume,
            StatusChange::Delete => Action::Delete,
        };
        let audit = self
            .authorize(caller, action, domain, Some(token), None)
            .await?;
        match self.store.transition(token, domain, change, audit).await? {
            TransitionOutcome::Done(r) => Ok((&r).into()),
            TransitionOutcome::NotFound => Err(Error::TokenNotFound),
            TransitionOutcome::Conflict(s) => Err(Error::TokenStateConflict(s)),
        }
    }

    /// Asks the policy. A refusal is audited (and fails if it cannot be) before `Forbidden`
    /// is returned; an allowance returns the audit event to complete with the outcome.
    async fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        domain: &Domain,
        token: Option<&Token>,
        last4: Option<&str>,
    ) -> Result<AuditEvent, Error> {
        super::check_policy(
            self.store.as_ref(),
            &self.policy,
            caller,
            action,
            Resource::Domain(domain),
            |event| {
                event.domain = Some(domain.as_str().to_owned());
                // Masked until the store finds it (then the record names it in full).
                event.token = token.map(Token::masked);
                event.last4 = last4.map(str::to_owned);
            },
        )
        .await
    }
}
