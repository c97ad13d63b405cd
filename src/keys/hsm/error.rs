//! HSM errors: which PKCS#11 function failed and why, never a PIN or key byte.
use crate::fault::Fault;
use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};

/// Why an HSM call failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum HsmError {
    /// A PKCS#11 function failed with return value `rv` (e.g. `EncryptedDataInvalid`).
    Pkcs11 {
        /// The PKCS#11 function, e.g. `C_Decrypt`.
        function: &'static str,
        /// The return value, e.g. `CKR_ENCRYPTED_DATA_INVALID`.
        rv: RvError,
    },
    /// No token, key or free slot with that label or description.
    NotFound(String),
    /// The worker threads have stopped.
    WorkerGone,
    /// The token or a stored value returned something of the wrong shape.
    Malformed(&'static str),
    /// The PKCS#11 module could not be loaded: the loader's error is the source.
    Load(Fault),
    /// The PKCS#11 wrapper failed outside a PKCS#11 return value (conversion, threads).
    Library(Fault),
    /// A wrapped data key did not authenticate under its KEK (tampered or wrong KEK).
    Integrity,
    /// A key with that label already exists.
    AlreadyExists(String),
    /// That token is already initialized (initializing it again would destroy its keys).
    TokenExists(String),
    /// More than one object has that label.
    DuplicateLabel(String),
    /// Only one half of a key pair with that label exists.
    IncompleteKeyPair(String),
    /// The configuration or an argument is invalid.
    InvalidConfig(&'static str),
    /// The token is away (removed, its session or login lost) and could not be reached again
    /// yet; the reason, and the error that made it so as its source.
    Unavailable(Fault),
    /// The HSM did not answer in time.
    Timeout(std::time::Duration),
}

impl std::fmt::Display for HsmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Pkcs11 { function, rv } => write!(f, "PKCS#11 {function} failed: {rv:?}"),
            Self::NotFound(what) => write!(f, "not found in the HSM: {what}"),
            Self::WorkerGone => f.write_str("HSM worker threads have stopped"),
            Self::Malformed(what) => write!(f, "malformed HSM data: {what}"),
            Self::Load(why) => write!(f, "cannot load the PKCS#11 module: {why}"),
            Self::Library(why) => write!(f, "PKCS#11 wrapper error: {why}"),
            Self::Integrity => f.write_str("wrapped data key failed authentication"),
            Self::AlreadyExists(label) => write!(f, "key {label:?} already exists"),
            Self::TokenExists(what) => write!(f, "{what} is already initialized"),
            Self::DuplicateLabel(label) => write!(f, "more than one object labelled {label:?}"),
            Self::IncompleteKeyPair(label) => {
                write!(f, "key pair {label:?} has only one half in the token")
            }
            Self::InvalidConfig(why) => write!(f, "invalid HSM configuration: {why}"),
            Self::Unavailable(why) => write!(f, "the HSM token is unavailable: {why}"),
            Self::Timeout(t) => write!(f, "the HSM did not answer within {} ms", t.as_millis()),
        }
    }
}

impl std::error::Error for HsmError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Displayed with the fault's context: the next cause is the fault's source.
            Self::Load(f) | Self::Library(f) | Self::Unavailable(f) => std::error::Error::source(f),
            _ => None,
        }
    }
}

impl From<CkError> for HsmError {
    fn from(e: CkError) -> Self {
        match e {
            CkError::Pkcs11(rv, function) => Self::Pkcs11 {
                function: function_name(function),
                rv,
            },
            e @ CkError::LibraryLoading(_) => Self::Load(Fault::caused_by("the loader failed", e)),
            // The remaining variants carry no secrets (conversions, null function pointers).
            other => Self::Library(Fault::caused_by("cryptoki", other)),
        }
    }
}

/// An error inside a worker, with whether the session itself is gone.
#[derive(Debug)]
pub(super) struct Failure {
    pub(super) error: HsmError,
    pub(super) session_broken: bool,
}

impl From<HsmError> for Failure {
    fn from(error: HsmError) -> Self {
        Self {
            error,
            session_broken: false,
        }
    }
}

impl From<CkError> for Failure {
    fn from(e: CkError) -> Self {
        let session_broken = matches!(&e, CkError::Pkcs11(rv, _) if is_session_level(*rv));
        Self {
            error: e.into(),
            session_broken,
        }
    }
}

/// PKCS#11 3.0 §5.1: return values after which the session (or login) is gone.
fn is_session_level(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::UserNotLoggedIn
            | RvError::DeviceError
    )
}

/// The C name of a PKCS#11 function payhsm calls.
fn function_name(function: Function) -> &'static str {
    match function {
        Function::Initialize => "C_Initialize",
        Function::Finalize => "C_Finalize",
        Function::GetInfo => "C_GetInfo",
        Function::GetFunctionList => "C_GetFunctionList",
        Function::GetInterface => "C_GetInterface",
        Function::GetSlotList => "C_GetSlotList",
        Function::GetSlotInfo => "C_GetSlotInfo",
        Function::GetTokenInfo => "C_GetTokenInfo",
        Function::InitToken => "C_InitToken",
        Function::InitPIN => "C_InitPIN",
        Function::OpenSession => "C_OpenSession",
        Function::CloseSession => "C_CloseSession",
        Function::GetSessionInfo => "C_GetSessionInfo",
        Function::Login => "C_Login",
        Function::Logout => "C_Logout",
        Function::GetAttributeValue => "C_GetAttributeValue",
        Function::FindObjectsInit => "C_FindObjectsInit",
        Function::FindObjects => "C_FindObjects",
        Function::FindObjectsFinal => "C_FindObjectsFinal",
        Function::EncryptInit => "C_EncryptInit",
        Function::Encrypt => "C_Encrypt",
        Function::DecryptInit => "C_DecryptInit",
        Function::Decrypt => "C_Decrypt",
        Function::SignInit => "C_SignInit",
        Function::Sign => "C_Sign",
        Function::VerifyInit => "C_VerifyInit",
        Function::Verify => "C_Verify",
        Function::GenerateKey => "C_GenerateKey",
        Function::GenerateKeyPair => "C_GenerateKeyPair",
        Function::GenerateRandom => "C_GenerateRandom",
        Function::CreateObject => "C_CreateObject",
        Function::DestroyObject => "C_DestroyObject",
        _ => "C_(other)",
    }
}
