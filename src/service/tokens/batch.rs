//! Batches: many cards tokenized, or many tokens detokenized, in one request.
//!
//! The policy is asked once per batch: its question (this caller, this action, this domain,
//! no context) is the same for every item. A refusal is audited once and refuses the whole
//! batch. Otherwise each item goes the single route's way (its own store call, its own audit
//! record, written in the store transaction of its change) and gets its own result: one bad
//! item never fails the others. The items are issued concurrently, so the store's writer
//! commits them in a few groups rather than one by one.

use super::{Detokenized, Tokenized, Vault};
use crate::card::{CardError, Domain, Expiry, Pan, Token};
use crate::policy::Action;
use crate::service::{Caller, Error};
use futures_util::future::join_all;

/// The most items one batch request may hold (tokenize and detokenize alike).
pub const MAX_TOKEN_BATCH: usize = 500;

/// One card of a tokenize batch. The PAN is boxed: the batch's vectors move pointers, never
/// the digits (a moved-from or reallocated buffer is freed without being wiped).
#[derive(Debug)]
pub struct BatchCard {
    /// The card number.
    pub pan: Box<Pan>,
    /// Its expiry, if known.
    pub expiry: Option<Expiry>,
}

/// What the batch's caller gets for each item, in the items' order.
pub type BatchResults<T> = Vec<Result<T, Error>>;

impl Vault {
    /// Tokenizes each card in `domain`: per item the token (created or existing) or why not.
    /// Items already refused when decoded (`Err`) keep their error and reach neither the store
    /// nor the log, as on the single route. `Err` for the whole batch only when it is over
    /// [`MAX_TOKEN_BATCH`] or the policy refuses it.
    pub async fn tokenize_batch(
        &self,
        caller: &Caller,
        domain: &Domain,
        items: &[Result<BatchCard, CardError>],
    ) -> Result<BatchResults<Tokenized>, Error> {
        if items.len() > MAX_TOKEN_BATCH {
            return Err(Error::BatchTooLarge);
        }
        let audit = self
            .authorize(caller, Action::Tokenize, domain, None, None)
            .await?;
        let results = join_all(items.iter().map(|item| {
            let mut audit = audit.clone();
            async move {
                let card = item.as_ref().map_err(|e| Error::Invalid(*e))?;
                // The item's record as the single route writes it: with the card's last 4.
                audit.last4 = Some(card.pan.last4().as_str().to_owned());
                self.tokenize_allowed(&card.pan, card.expiry, domain, audit)
                    .await
            }
        }))
        .await;
        Ok(results)
    }

    /// Returns the PAN behind each token of `domain`, only to callers the policy allows.
    /// Every item's audit record is durable (each store call has returned) before the first
    /// PAN is opened. Tokens refused when decoded keep their error, unaudited as on the single
    /// route. `Err` for the whole batch only when it is over [`MAX_TOKEN_BATCH`] or the policy
    /// refuses it.
    pub async fn detokenize_batch(
        &self,
        caller: &Caller,
        domain: &Domain,
        tokens: &[Result<Token, CardError>],
    ) -> Result<BatchResults<Detokenized>, Error> {
        if tokens.len() > MAX_TOKEN_BATCH {
            return Err(Error::BatchTooLarge);
        }
        let audit = self
            .authorize(caller, Action::Detokenize, domain, None, None)
            .await?;
        let outcomes = join_all(tokens.iter().map(|token| {
            let mut audit = audit.clone();
            async move {
                let token = token.as_ref().map_err(|e| Error::Invalid(*e))?;
                // Masked until the store finds it, as on the single route.
                audit.token = Some(token.masked());
                Ok::<_, Error>(self.store.detokenize(token, domain, audit).await?)
            }
        }))
        .await;
        // Only now, with every record written, are PANs opened. Sized once: the vector never
        // reallocates, so no PAN is left behind in a freed buffer.
        let mut results = Vec::with_capacity(tokens.len());
        for (token, outcome) in tokens.iter().zip(outcomes) {
            results.push(match (token, outcome) {
                (Ok(token), Ok(outcome)) => self.open(outcome, token, domain).await,
                (_, Err(e)) => Err(e),
                (Err(e), Ok(_)) => Err(Error::Invalid(*e)),
            });
        }
        Ok(results)
    }
}
