//! The use cases. Each public function is one thing a caller can ask for: it checks the policy,
//! does the work through the key ring and the store, and writes the audit record in the same
//! store transaction as the change. Handlers above only decode, call one function and encode.

mod authorizations;
mod devices;
mod error;
mod idempotency;
mod keys;
mod tokens;

pub use authorizations::{
    Authorizations, AuthorizeInput, IssuedPaymentChallenge, PaymentChallengeInput,
    SignedAuthorization,
};
pub use devices::{Devices, EnrolInput, EnrolledDevice, IssuedChallenge};
pub use error::Error;
pub use idempotency::IdempotencyKey;
pub use keys::{
    ChangeOutcome, KeyAdmin, KeyChange, KeyChangeKind, KeyEntry, KeyListing, KeySettings,
    RewrapProgress, MAX_REWRAP_BATCH,
};
pub use tokens::{Detokenized, TokenView, TokenizeInput, Tokenized, Vault};

use crate::policy::Principal;

/// Who is asking, and under which request id (echoed to the caller and put in the audit log).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The identity from the client certificate.
    pub principal: Principal,
    /// The request id.
    pub request_id: String,
}
