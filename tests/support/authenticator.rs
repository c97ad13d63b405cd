//! The tests' view of the library's software WebAuthn authenticator
//! ([`payhsm::bench::authenticator`]): the same authenticator, with failures of the system
//! random generator turned into test panics so test bodies stay short.

use payhsm::bench::authenticator::SoftwareAuthenticator;
#[allow(unused_imports)] // each test crate uses part of it
pub use payhsm::bench::authenticator::{
    cbor, Assertion, Attestation, BrowserKey, Registration, SpcPayment,
};
use std::ops::{Deref, DerefMut};

/// One credential on a software authenticator; derefs to [`SoftwareAuthenticator`] for its
/// knobs (`origin`, `rp_id`, `user_verified`, ...).
pub struct Authenticator(SoftwareAuthenticator);

impl Authenticator {
    /// A fresh credential for RP `localhost` at `https://localhost`, UV set.
    pub fn new() -> Self {
        Self(SoftwareAuthenticator::new().unwrap())
    }

    /// A registration response to `challenge_b64` with the chosen attestation.
    pub fn register(&self, challenge_b64: &str, attestation: Attestation) -> Registration {
        self.0.register(challenge_b64, attestation).unwrap()
    }

    /// An assertion to `challenge_b64`: `webauthn.get`, or SPC `payment.get` with `payment`.
    pub fn assert(
        &self,
        challenge_b64: &str,
        counter: u32,
        payment: Option<&SpcPayment>,
    ) -> Assertion {
        self.0.assert(challenge_b64, counter, payment).unwrap()
    }
}

impl From<SoftwareAuthenticator> for Authenticator {
    fn from(a: SoftwareAuthenticator) -> Self {
        Self(a)
    }
}

impl Default for Authenticator {
    fn default() -> Self {
        Self::new()
    }
}

impl Deref for Authenticator {
    type Target = SoftwareAuthenticator;
    fn deref(&self) -> &SoftwareAuthenticator {
        &self.0
    }
}

impl DerefMut for Authenticator {
    fn deref_mut(&mut self) -> &mut SoftwareAuthenticator {
        &mut self.0
    }
}
