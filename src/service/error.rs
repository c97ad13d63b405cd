//! The service boundary's error. The API maps it to HTTP in exactly one place
//! (`api::error`).

use crate::card::{CardError, TokenStatus};
use crate::keys::KeyError;
use crate::store::StoreError;

/// Why a use case did not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// An input value is invalid (422).
    Invalid(CardError),
    /// The policy does not allow this caller to do this (403); the refusal was audited.
    Forbidden,
    /// No live token with that value in that domain (404).
    TokenNotFound,
    /// The token is suspended and does not detokenize (409).
    TokenSuspended,
    /// The lifecycle change does not apply to the token's current state (409).
    TokenStateConflict(TokenStatus),
    /// No free token could be drawn for this PAN in this domain (409).
    TokenSpaceExhausted,
    /// The store failed; nothing was done (503).
    Store(StoreError),
    /// A data key operation failed.
    Keys(KeyError),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Invalid(e) => e.fmt(f),
            Self::Forbidden => f.write_str("the policy does not allow this request"),
            Self::TokenNotFound => f.write_str("no such token in this domain"),
            Self::TokenSuspended => f.write_str("the token is suspended"),
            Self::TokenStateConflict(s) => {
                write!(
                    f,
                    "the change does not apply to a token that is {}",
                    s.as_str()
                )
            }
            Self::TokenSpaceExhausted => {
                f.write_str("no free token could be drawn for this card in this domain")
            }
            Self::Store(_) => f.write_str("the vault store is unavailable"),
            Self::Keys(KeyError::Integrity) => {
                f.write_str("the stored record failed its integrity check")
            }
            Self::Keys(_) => f.write_str("the data keys are unavailable"),
        }
    }
}

impl std::error::Error for Error {}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Self::Keys(e)
    }
}

impl From<CardError> for Error {
    fn from(e: CardError) -> Self {
        Self::Invalid(e)
    }
}
