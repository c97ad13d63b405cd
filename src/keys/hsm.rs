//! SKELETON: to be implemented (keys helper).
use super::{DataKeyMaterial, KeyVersion, WrappedDataKey};
use std::path::PathBuf;

/// A PKCS#11 user PIN. Zeroized, no Clone, Debug prints nothing.
pub struct Pin(zeroize::Zeroizing<String>);
impl Pin {
    /// Wraps a PIN.
    pub fn new(pin: String) -> Self {
        Self(zeroize::Zeroizing::new(pin))
    }
}
impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(..)")
    }
}

/// How to reach the token.
#[derive(Debug)]
pub struct HsmConfig {
    /// PKCS#11 module path.
    pub module: PathBuf,
    /// Token label.
    pub token_label: String,
    /// User PIN.
    pub pin: Pin,
    /// Worker threads, each with its own session.
    pub sessions: usize,
}

/// Why an HSM call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum HsmError {
    /// A PKCS#11 function failed.
    Pkcs11 { function: &'static str, rv: String },
}

/// Handle to the HSM worker threads.
#[derive(Clone)]
pub struct Hsm {}

impl Hsm {
    /// Opens the module, finds the token, logs in, starts the workers.
    pub fn open(cfg: HsmConfig) -> Result<Self, HsmError> {
        let _ = cfg;
        unimplemented!()
    }
    /// Generates the data key `version` in the HSM and returns it wrapped and in clear.
    pub async fn new_data_key(
        &self,
        kek_label: &str,
        version: KeyVersion,
    ) -> Result<(WrappedDataKey, DataKeyMaterial), HsmError> {
        let _ = (kek_label, version);
        unimplemented!()
    }
    /// Unwraps a stored data key.
    pub async fn unwrap_data_key(
        &self,
        wrapped: &WrappedDataKey,
    ) -> Result<DataKeyMaterial, HsmError> {
        let _ = wrapped;
        unimplemented!()
    }
    /// Checks a session answers.
    pub async fn ping(&self) -> Result<(), HsmError> {
        unimplemented!()
    }
}
