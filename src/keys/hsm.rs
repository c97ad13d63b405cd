//! The HSM over PKCS#11 (cryptoki): KEKs, data key wrapping, P-256 signing keys.
//!
//! [`Module`] loads and initializes a PKCS#11 library once per process. [`Hsm`] logs in to one
//! token and runs every call on dedicated worker threads, each owning one RW session.
use super::{DataKeyMaterial, DataKeyState, KeyVersion, WrappedDataKey};
use cryptoki::context::{CInitializeArgs, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

mod error;
mod worker;

use error::Failure;
pub use error::HsmError;
use worker::{Access, Held, SessionSource};

/// The longest an HSM call is awaited. A token that hangs (a network HSM that stopped
/// answering) then fails the request with [`HsmError::Timeout`] instead of holding it; the
/// worker stays busy until the module returns.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// AAD prefix binding a wrapped data key to its purpose; the version follows as u32 BE.
const DATA_KEY_AAD: &[u8] = b"payhsm/data-key/v1";
const DATA_KEY_LEN: usize = 32;
const GCM_TAG_BITS: u64 = 128;
const GCM_TAG_LEN: usize = 16;
/// DER OID 1.2.840.10045.3.1.7 (prime256v1), the CKA_EC_PARAMS of a P-256 key.
const P256_EC_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// PKCS#11 token labels are 32 bytes, blank padded.
const MAX_LABEL_LEN: usize = 32;

/// A PKCS#11 PIN. Zeroized, no Clone, Debug prints nothing.
pub struct Pin(Zeroizing<String>);

impl Pin {
    /// Wraps a PIN.
    pub fn new(pin: String) -> Self {
        Self(Zeroizing::new(pin))
    }

    /// The PIN's length in bytes (PKCS#11 ulMinPinLen and ulMaxPinLen count bytes).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the PIN is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether two PINs are equal, in a time that does not depend on where they differ.
    pub fn same_as(&self, other: &Pin) -> bool {
        let (a, b) = (self.0.as_bytes(), other.0.as_bytes());
        let diff = a
            .iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y));
        a.len() == b.len() && diff == 0
    }

    /// For the FFI line only (cryptoki `AuthPin`).
    fn auth(&self) -> AuthPin {
        AuthPin::new(self.0.as_str().to_owned())
    }
}

/// Who a token is: what C_GetTokenInfo and the slot report, for the audit record of its
/// initialization and to check later that a data directory still talks to the same token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    /// CKA token label (blank padding removed).
    pub label: String,
    /// Token manufacturer (manufacturerID).
    pub manufacturer: String,
    /// Token model.
    pub model: String,
    /// Token serial number.
    pub serial: String,
    /// The slot ID the token is in.
    pub slot: u64,
}

/// An uninitialized token chosen for `C_InitToken`, with the PIN length bounds it reports.
#[derive(Debug)]
pub struct FreeSlot {
    slot: Slot,
    /// ulMinPinLen: the shortest PIN the token accepts, in bytes.
    pub min_pin_len: usize,
    /// ulMaxPinLen: the longest PIN the token accepts, in bytes; `usize::MAX` when the token
    /// sets no bound (kryoptic reports CK_EFFECTIVELY_INFINITE, 0).
    pub max_pin_len: usize,
}

impl FreeSlot {
    /// The slot ID.
    pub fn id(&self) -> u64 {
        self.slot.id()
    }
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pin(..)")
    }
}

/// A loaded and initialized PKCS#11 library. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Module {
    pkcs11: Arc<Pkcs11>,
    path: PathBuf,
    library: Arc<Library>,
}

/// What every handle on one library shares about its initialization.
#[derive(Debug, Default)]
struct Library {
    /// Bumped by each re-initialization: sessions of an older generation are gone.
    generation: AtomicU64,
    /// When the library was last re-initialized.
    last_reset: Mutex<Option<Instant>>,
    /// Contexts that initialized the library again. Dropping a cryptoki context finalizes the
    /// library for the whole process, so they are kept for its life.
    contexts: Mutex<Vec<Pkcs11>>,
}

/// Libraries loaded by this process. C_Initialize may run once per process, and dropping a
/// cryptoki context calls C_Finalize for everyone, so each path is loaded once and kept.
static LOADED: OnceLock<Mutex<HashMap<PathBuf, Module>>> = OnceLock::new();

impl Module {
    /// Loads the PKCS#11 library at `path` and initializes it (OS locking), once per process.
    pub fn load(path: &Path) -> Result<Module, HsmError> {
        let mut loaded = LOADED
            .get_or_init(Mutex::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(module) = loaded.get(path) {
            return Ok(module.clone());
        }
        let pkcs11 = Pkcs11::new(path)?;
        // PKCS#11 3.0 §5.4 C_Initialize: CKR_CRYPTOKI_ALREADY_INITIALIZED means another part
        // of the process initialized it; the library is usable.
        match pkcs11.initialize(CInitializeArgs::OsThreads) {
            Ok(())
            | Err(CkError::AlreadyInitialized)
            | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(e.into()),
        }
        let module = Module {
            pkcs11: Arc::new(pkcs11),
            path: path.to_owned(),
            library: Arc::default(),
        };
        loaded.insert(path.to_owned(), module.clone());
        Ok(module)
    }

    /// How many times the library was re-initialized in this process.
    fn generation(&self) -> u64 {
        self.library.generation.load(Ordering::SeqCst)
    }

    /// Whether a re-initialization may run now (none in the last `backoff`); if so, records
    /// that one starts now.
    fn reset_allowed(&self, backoff: Duration) -> bool {
        let mut last = self
            .library
            .last_reset
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| t.elapsed() < backoff) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// PKCS#11 3.0 §5.4 C_Finalize then C_Initialize: every session of the process is closed
    /// and the module reads its tokens again. SoftHSM2's file store marks a token invalid for
    /// the life of the process once its directory went away, even after it is back; only this
    /// brings it back. The caller holds `TOKEN_ACCESS` exclusively, and sessions opened
    /// before must be forgotten, not closed (their handles may name new sessions).
    fn reinitialize(&self) -> Result<(), HsmError> {
        // cryptoki calls C_Finalize when a context is dropped, whoever initialized the
        // library; `self.pkcs11` keeps the library loaded meanwhile.
        drop(Pkcs11::new(&self.path)?);
        let fresh = Pkcs11::new(&self.path)?;
        let initialized = fresh.initialize(CInitializeArgs::OsThreads);
        // Bumped even when C_Initialize failed: the old sessions are gone either way.
        self.library.generation.fetch_add(1, Ordering::SeqCst);
        self.library
            .contexts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(fresh);
        match initialized {
            Ok(())
            | Err(CkError::AlreadyInitialized)
            | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Initializes a new token with `label` in the first free (uninitialized) slot unless a
    /// token with that label exists; sets the user PIN. Returns true if it created one.
    pub fn init_token_if_absent(
        &self,
        label: &str,
        so_pin: &Pin,
        user_pin: &Pin,
    ) -> Result<bool, HsmError> {
        check_label(label)?;
        if self.find_token(label)?.is_some() {
            return Ok(false);
        }
        let free = self.free_slot(label, None)?;
        self.init_token(&free, label, so_pin, user_pin)?;
        Ok(true)
    }

    /// Chooses the uninitialized token to initialize as `label`: the one in slot `slot_id`, or
    /// the first free one. Refuses with [`HsmError::TokenExists`] when a token labelled
    /// `label` exists or the token in `slot_id` is initialized: C_InitToken on it would
    /// destroy its keys.
    pub fn free_slot(&self, label: &str, slot_id: Option<u64>) -> Result<FreeSlot, HsmError> {
        check_label(label)?;
        if self.find_token(label)?.is_some() {
            return Err(HsmError::TokenExists(format!("a token labelled {label:?}")));
        }
        for slot in self.pkcs11.get_slots_with_token()? {
            if slot_id.is_some_and(|id| id != slot.id()) {
                continue;
            }
            let info = self.pkcs11.get_token_info(slot)?;
            if !info.token_initialized() {
                return Ok(FreeSlot {
                    slot,
                    min_pin_len: info.min_pin_length(),
                    max_pin_len: max_pin_len(info.max_pin_length()),
                });
            }
            if let Some(id) = slot_id {
                return Err(HsmError::TokenExists(format!(
                    "the token {:?} in slot {id}",
                    info.label()
                )));
            }
        }
        Err(HsmError::NotFound(match slot_id {
            Some(id) => format!("a token in slot {id}"),
            None => "a free (uninitialized) token slot".to_owned(),
        }))
    }

    /// Initializes the token in `free` as `label` with the SO PIN (C_InitToken), then, logged
    /// in as SO, sets the user PIN (C_InitPIN). Returns the new token's identity.
    pub fn init_token(
        &self,
        free: &FreeSlot,
        label: &str,
        so_pin: &Pin,
        user_pin: &Pin,
    ) -> Result<TokenIdentity, HsmError> {
        check_label(label)?;
        // PKCS#11 3.0 §5.6 C_InitToken: initializes the token, destroying what it holds; only
        // ever called on a token `free_slot` found uninitialized.
        self.pkcs11.init_token(free.slot, &so_pin.auth(), label)?;
        // Some modules (SoftHSM2) renumber the slot once its token is initialized.
        let slot = self
            .find_token(label)?
            .ok_or_else(|| HsmError::NotFound(format!("token {label:?} after C_InitToken")))?;
        let session = self.pkcs11.open_rw_session(slot)?;
        session.login(UserType::So, Some(&so_pin.auth()))?;
        // PKCS#11 3.0 §5.6 C_InitPIN: the SO sets the normal user's PIN.
        session.init_pin(&user_pin.auth())?;
        session.logout()?;
        drop(session);
        self.identity_of(slot)
    }

    /// Every slot with a token (PKCS#11 3.0 §5.5 C_GetSlotList with tokenPresent, then
    /// C_GetTokenInfo), in the module's order: each token's identity and whether it is
    /// initialized (CKF_TOKEN_INITIALIZED). What a custodian checks before `init --slot`.
    pub fn tokens(&self) -> Result<Vec<(TokenIdentity, bool)>, HsmError> {
        let mut tokens = Vec::new();
        for slot in self.pkcs11.get_slots_with_token()? {
            let info = self.pkcs11.get_token_info(slot)?;
            tokens.push((identity_from(slot, &info), info.token_initialized()));
        }
        Ok(tokens)
    }

    /// The identity of the initialized token labelled `label`, if there is one.
    pub fn token_identity(&self, label: &str) -> Result<Option<TokenIdentity>, HsmError> {
        check_label(label)?;
        self.find_token(label)?
            .map(|slot| self.identity_of(slot))
            .transpose()
    }

    fn identity_of(&self, slot: Slot) -> Result<TokenIdentity, HsmError> {
        Ok(identity_from(slot, &self.pkcs11.get_token_info(slot)?))
    }

    /// The slot holding an initialized token labelled `label`.
    fn find_token(&self, label: &str) -> Result<Option<Slot>, HsmError> {
        for slot in self.pkcs11.get_slots_with_token()? {
            let info = self.pkcs11.get_token_info(slot)?;
            if info.token_initialized() && info.label() == label {
                return Ok(Some(slot));
            }
        }
        Ok(None)
    }
}

/// The identity of the token in `slot`, from its C_GetTokenInfo.
fn identity_from(slot: Slot, info: &cryptoki::slot::TokenInfo) -> TokenIdentity {
    TokenIdentity {
        label: info.label().to_owned(),
        manufacturer: info.manufacturer_id().to_owned(),
        model: info.model().to_owned(),
        serial: info.serial_number().to_owned(),
        slot: slot.id(),
    }
}

/// ulMaxPinLen as a bound: PKCS#11's CK_EFFECTIVELY_INFINITE (0), which kryoptic reports,
/// is no bound. SoftHSM2 reports 255.
fn max_pin_len(reported: usize) -> usize {
    if reported == 0 {
        usize::MAX
    } else {
        reported
    }
}

fn check_label(label: &str) -> Result<(), HsmError> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(HsmError::InvalidConfig("labels are 1 to 32 bytes"));
    }
    Ok(())
}

/// How to reach the token.
#[derive(Debug)]
pub struct HsmConfig {
    /// Token label.
    pub token_label: String,
    /// User PIN.
    pub pin: Pin,
    /// Worker threads, each with its own session (at least 1).
    pub sessions: usize,
}

/// The uncompressed SEC1 point (0x04 || x || y) of a P-256 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EcPublicKey(pub [u8; 65]);

/// Handle to the HSM worker threads. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Hsm {
    // Declared before `workers`, so dropped first: when the last handle goes, every sender
    // is gone before its `Workers` waits for the threads to see the channel close.
    jobs: mpsc::Sender<worker::Message>,
    /// The worker threads, joined by [`Hsm::shutdown`] or when the last handle is dropped.
    workers: Arc<Workers>,
}

/// The worker threads of one [`Hsm`] and its clones.
struct Workers(Mutex<Vec<std::thread::JoinHandle<()>>>);

impl Workers {
    fn take(&self) -> Vec<std::thread::JoinHandle<()>> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for Workers {
    /// The last handle is gone, and with it every sender of jobs: the workers finish, close
    /// their sessions and end. Waits for them, so that no worker outlives its `Hsm`: one
    /// still closing its session while the process exits crashes in SoftHSM2's static
    /// destructors (seen in test processes that did not call [`Hsm::shutdown`]). A worker
    /// dropping the last handle itself (from a job) is not waited for.
    fn drop(&mut self) {
        let me = std::thread::current().id();
        for h in self.take() {
            if h.thread().id() != me {
                let _ = h.join();
            }
        }
    }
}

/// Key creation is exclusive with every other PKCS#11 call of the process (all `Hsm` handles):
/// find-then-create is atomic, so two callers never make two keys with one label, and
/// SoftHSM2's file store, which fails with CKR_GENERAL_ERROR when a token object is created
/// while another session reads or writes the token, never sees that. Ordinary calls share the
/// lock and never wait for each other; creation is rare (start-up, ceremonies).
static TOKEN_ACCESS: std::sync::RwLock<()> = std::sync::RwLock::new(());

impl std::fmt::Debug for Hsm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hsm(..)")
    }
}

impl Hsm {
    /// Finds the token by label, logs in and starts `cfg.sessions` workers, each owning its own
    /// RW session. Blocking: call before serving or from `spawn_blocking`.
    pub fn open(module: &Module, cfg: HsmConfig) -> Result<Hsm, HsmError> {
        if cfg.sessions == 0 {
            return Err(HsmError::InvalidConfig("sessions must be at least 1"));
        }
        check_label(&cfg.token_label)?;
        let slot = module
            .find_token(&cfg.token_label)?
            .ok_or_else(|| HsmError::NotFound(format!("token {:?}", cfg.token_label)))?;
        let source = Arc::new(SessionSource {
            module: module.clone(),
            label: cfg.token_label,
            slot: Mutex::new(slot),
            pin: cfg.pin,
            objects: AtomicU64::new(0),
        });
        let sessions = {
            let _shared = TOKEN_ACCESS.read().unwrap_or_else(PoisonError::into_inner);
            (0..cfg.sessions)
                .map(|_| source.open())
                .collect::<Result<Vec<_>, _>>()?
        };
        let (jobs, handles) = worker::spawn(source, sessions)?;
        Ok(Hsm {
            jobs,
            workers: Arc::new(Workers(Mutex::new(handles))),
        })
    }

    /// Stops every worker after the jobs already queued, closes their sessions and waits for
    /// them. Call it before the process exits: SoftHSM2 (a C++ library) tears its state down in
    /// static destructors at exit, and a worker still closing its session then would crash the
    /// process. Calls made on any handle afterwards fail with `WorkerGone`.
    pub async fn shutdown(&self) {
        let handles = self.workers.take();
        for _ in &handles {
            let _ = self.jobs.send(worker::Message::Stop);
        }
        let _ = tokio::task::spawn_blocking(move || {
            for h in handles {
                let _ = h.join();
            }
        })
        .await;
    }

    /// Runs `f` on a worker's session and awaits its result.
    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Held) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, HsmError> {
        self.submit(Access::Shared, f).await
    }

    /// Like `call`, alone: no other PKCS#11 call of the process runs meanwhile (key creation),
    /// and only once the token answers.
    async fn call_exclusive<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Held) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, HsmError> {
        self.submit(Access::Exclusive, f).await
    }

    /// Queues `f` for a worker and awaits its answer for at most [`CALL_TIMEOUT`].
    async fn submit<T: Send + 'static>(
        &self,
        access: Access,
        f: impl FnOnce(&Held) -> Result<T, Failure> + Send + 'static,
    ) -> Result<T, HsmError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.jobs
            .send(worker::Message::Job(worker::job(f, tx), access))
            .map_err(|_| HsmError::WorkerGone)?;
        match tokio::time::timeout(CALL_TIMEOUT, rx).await {
            Ok(answer) => answer.map_err(|_| HsmError::WorkerGone)?,
            Err(_) => Err(HsmError::Timeout(CALL_TIMEOUT)),
        }
    }

    /// Whether an AES key labelled `label` exists in the token.
    pub async fn kek_exists(&self, label: &str) -> Result<bool, HsmError> {
        let label = label.to_owned();
        self.call(move |s| Ok(find_one(s, &kek_template(&label))?.is_some()))
            .await
    }

    /// Generates an AES-256 KEK in the token: sensitive, never extractable, encrypt/decrypt
    /// only. Fails with [`HsmError::AlreadyExists`] if the label is taken.
    pub async fn generate_kek(&self, label: &str) -> Result<(), HsmError> {
        check_label(label)?;
        let label = label.to_owned();
        self.call_exclusive(move |s| {
            if find_one(s, &kek_template(&label))?.is_some() {
                return Err(HsmError::AlreadyExists(label).into());
            }
            let mut template = kek_attributes(&label);
            template.push(Attribute::ValueLen(32.into()));
            s.generate_key(&Mechanism::AesKeyGen, &template)?;
            Ok(())
        })
        .await
    }

    /// Imports a KEK formed in a ceremony (C_CreateObject): an AES-256 token secret key,
    /// private, sensitive, never extractable, encrypt/decrypt only, as [`Hsm::generate_kek`]
    /// makes. Fails with [`HsmError::AlreadyExists`] if the label is taken.
    ///
    /// The CKA_VALUE buffer handed to cryptoki is zeroized when the call returns or fails.
    pub async fn import_kek(
        &self,
        label: &str,
        key: &crate::ceremony::KeyMaterial,
    ) -> Result<(), HsmError> {
        check_label(label)?;
        let label = label.to_owned();
        let mut template = SecretTemplate(kek_attributes(&label));
        template
            .0
            .push(Attribute::Value(key.expose_secret().to_vec()));
        self.call_exclusive(move |s| {
            if find_one(s, &kek_template(&label))?.is_some() {
                return Err(HsmError::AlreadyExists(label).into());
            }
            s.create_object(&template.0)?;
            Ok(())
        })
        .await
    }

    /// The CMAC KCV of the KEK labelled `label` (X9.24-1:2017: the leftmost 5 bytes of
    /// AES-CMAC(key, 16 zero bytes)), computed inside the HSM, so a KEK generated there has a
    /// KCV comparable with [`crate::ceremony::KeyMaterial::kcv_cmac`] and across replicas.
    ///
    /// KEKs are made without CKA_SIGN, so C_Sign with CKM_AES_CMAC is not permitted on them;
    /// the CMAC of one full block is computed instead from two C_Encrypt CKM_AES_ECB calls
    /// (NIST SP 800-38B §6.1-6.2: L = E(0), K1 = dbl(L), T = E(0 xor K1)), which CKA_ENCRYPT
    /// already permits.
    pub async fn kek_kcv(&self, label: &str) -> Result<[u8; 5], HsmError> {
        let label = label.to_owned();
        self.call(move |s| {
            let kek = find_kek(s, &label)?;
            let l = Zeroizing::new(s.encrypt(&Mechanism::AesEcb, kek, &[0u8; 16])?);
            let l: Zeroizing<[u8; 16]> = Zeroizing::new(
                l.as_slice()
                    .try_into()
                    .map_err(|_| HsmError::Malformed("AES-ECB block length"))?,
            );
            let k1 = Zeroizing::new(cmac_double(&l));
            let tag = s.encrypt(&Mechanism::AesEcb, kek, &k1[..])?;
            let mut kcv = [0u8; 5];
            if tag.len() != 16 {
                return Err(HsmError::Malformed("AES-ECB block length").into());
            }
            for (k, t) in kcv.iter_mut().zip(tag.iter()) {
                *k = *t;
            }
            Ok(kcv)
        })
        .await
    }

    /// Generates the data key `version` in the HSM (C_GenerateRandom) and returns it wrapped
    /// under the KEK (C_Encrypt, CKM_AES_GCM) and in clear.
    pub async fn new_data_key(
        &self,
        kek_label: &str,
        version: KeyVersion,
    ) -> Result<(WrappedDataKey, DataKeyMaterial), HsmError> {
        let label = kek_label.to_owned();
        let (iv, wrapped, material) = self
            .call(move |s| {
                let kek = find_kek(s, &label)?;
                let mut key = Zeroizing::new([0u8; DATA_KEY_LEN]);
                s.generate_random_slice(&mut key[..])?;
                let mut iv = [0u8; 12];
                s.generate_random_slice(&mut iv)?;
                let aad = data_key_aad(version);
                let mut params_iv = iv;
                let params = GcmParams::new(&mut params_iv, &aad, GCM_TAG_BITS.into())?;
                let wrapped = s.encrypt(&Mechanism::AesGcm(params), kek, &key[..])?;
                if wrapped.len() != DATA_KEY_LEN + GCM_TAG_LEN {
                    return Err(HsmError::Malformed("wrapped data key length").into());
                }
                let material = DataKeyMaterial::from_slice(&key[..])
                    .ok_or(HsmError::Malformed("data key length"))?;
                Ok((iv, wrapped, material))
            })
            .await?;
        let wrapped_key = WrappedDataKey {
            version,
            kek_label: kek_label.to_owned(),
            iv,
            wrapped,
            state: DataKeyState::Active,
            created_at: crate::clock::now_rfc3339(),
        };
        Ok((wrapped_key, material))
    }

    /// Decrypts a stored data key under its KEK (C_Decrypt, CKM_AES_GCM); the AAD binds the
    /// version. A tampered or foreign wrapped key fails with [`HsmError::Integrity`].
    pub async fn unwrap_data_key(
        &self,
        wrapped: &WrappedDataKey,
    ) -> Result<DataKeyMaterial, HsmError> {
        if wrapped.wrapped.len() != DATA_KEY_LEN + GCM_TAG_LEN {
            return Err(HsmError::Malformed("wrapped data key length"));
        }
        let label = wrapped.kek_label.clone();
        let (version, mut iv, ciphertext) = (wrapped.version, wrapped.iv, wrapped.wrapped.clone());
        self.call(move |s| {
            let kek = find_kek(s, &label)?;
            let aad = data_key_aad(version);
            let params = GcmParams::new(&mut iv, &aad, GCM_TAG_BITS.into())?;
            let plain = match s.decrypt(&Mechanism::AesGcm(params), kek, &ciphertext) {
                Ok(plain) => Zeroizing::new(plain),
                // PKCS#11 3.0 §5.9 C_Decrypt: the GCM tag did not verify.
                Err(CkError::Pkcs11(
                    RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange,
                    _,
                )) => return Err(HsmError::Integrity.into()),
                Err(e) => return Err(e.into()),
            };
            Ok(DataKeyMaterial::from_slice(&plain)
                .ok_or(HsmError::Malformed("unwrapped data key is not 32 bytes"))?)
        })
        .await
    }

    /// Finds or generates the EC P-256 key pair labelled `label` in the token (private:
    /// sensitive, never extractable, sign only; public: verify) and returns its public key.
    pub async fn ensure_signing_key(&self, label: &str) -> Result<EcPublicKey, HsmError> {
        check_label(label)?;
        let label = label.to_owned();
        self.call_exclusive(move |s| {
            let private = find_one(s, &ec_template(ObjectClass::PRIVATE_KEY, &label))?;
            let public = find_one(s, &ec_template(ObjectClass::PUBLIC_KEY, &label))?;
            let public = match (private, public) {
                (Some(_), Some(public)) => public,
                (None, None) => generate_p256(s, &label)?,
                _ => return Err(HsmError::IncompleteKeyPair(label).into()),
            };
            read_p256_point(s, public)
        })
        .await
    }

    /// Deletes both halves of the P-256 key pair labelled `label` from the token
    /// (C_DestroyObject). Returns how many objects were destroyed: 0 when already gone, so a
    /// destruction interrupted after this call can be repeated.
    pub async fn destroy_signing_key(&self, label: &str) -> Result<usize, HsmError> {
        check_label(label)?;
        let label = label.to_owned();
        self.call_exclusive(move |s| {
            let mut destroyed = 0;
            for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
                if let Some(object) = find_one(s, &ec_template(class, &label))? {
                    s.destroy_object(object)?;
                    destroyed += 1;
                }
            }
            Ok(destroyed)
        })
        .await
    }

    /// Signs SHA-256(`message`) with the P-256 key labelled `label` (hash in software,
    /// CKM_ECDSA in the HSM). Returns r || s.
    pub async fn sign_p256(&self, label: &str, message: Vec<u8>) -> Result<[u8; 64], HsmError> {
        let label = label.to_owned();
        let digest = Sha256::digest(&message);
        self.call(move |s| {
            let find = |s: &Session| find_one(s, &ec_template(ObjectClass::PRIVATE_KEY, &label));
            let missing = || HsmError::NotFound(format!("signing key {label:?}"));
            let key = s.remembered(&label, find)?.ok_or_else(missing)?;
            let signature = match s.sign(&Mechanism::Ecdsa, key, &digest) {
                // A remembered handle gone stale (the key was destroyed and made again by
                // another process): search once more.
                Err(CkError::Pkcs11(
                    RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                    _,
                )) => {
                    s.forget(&label);
                    let key = find(s)?.ok_or_else(missing)?;
                    s.sign(&Mechanism::Ecdsa, key, &digest)?
                }
                other => other?,
            };
            Ok(<[u8; 64]>::try_from(signature.as_slice())
                .map_err(|_| HsmError::Malformed("ECDSA signature length"))?)
        })
        .await
    }

    /// Checks that a worker answers, its session is logged in and the token and its object
    /// store answer (C_GetSessionInfo, C_GetTokenInfo, a one-handle C_FindObjects). A failed
    /// ping also starts the worker's recovery, so a readiness probe is enough to bring the HSM
    /// back once the token is.
    pub async fn ping(&self) -> Result<(), HsmError> {
        self.submit(Access::Checked, |_| Ok(())).await
    }
}

/// A PKCS#11 template holding a key value: every CKA_VALUE is zeroized on drop, whether the
/// call ran, failed or never reached a worker.
struct SecretTemplate(Vec<Attribute>);

impl Drop for SecretTemplate {
    fn drop(&mut self) {
        for attr in &mut self.0 {
            if let Attribute::Value(v) = attr {
                zeroize::Zeroize::zeroize(v);
            }
        }
    }
}

/// SP 800-38B §6.1 subkey doubling: `block` shifted left one bit, XOR 0x87 into the last
/// byte when the bit shifted out was set (branch-free on the key-derived bit).
fn cmac_double(block: &[u8; 16]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut carry = 0u8;
    for (o, b) in out.iter_mut().zip(block.iter()).rev() {
        *o = (b << 1) | carry;
        carry = b >> 7;
    }
    if let Some(last) = out.last_mut() {
        *last ^= 0x87 & carry.wrapping_neg();
    }
    out
}

/// AAD = "payhsm/data-key/v1" || version (u32 BE).
fn data_key_aad(version: KeyVersion) -> Vec<u8> {
    let mut aad = DATA_KEY_AAD.to_vec();
    aad.extend_from_slice(&version.0.to_be_bytes());
    aad
}

/// Every attribute of a KEK but its value (or length): an AES token key, private, sensitive,
/// never extractable, encrypt/decrypt only. Generated and imported KEKs share it.
fn kek_attributes(label: &str) -> Vec<Attribute> {
    vec![
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Encrypt(true),
        Attribute::Decrypt(true),
        Attribute::Wrap(false),
        Attribute::Unwrap(false),
        Attribute::Sign(false),
        Attribute::Verify(false),
        Attribute::Derive(false),
    ]
}

fn kek_template(label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(ObjectClass::SECRET_KEY),
        Attribute::KeyType(KeyType::AES),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

fn ec_template(class: ObjectClass, label: &str) -> [Attribute; 3] {
    [
        Attribute::Class(class),
        Attribute::KeyType(KeyType::EC),
        Attribute::Label(label.as_bytes().to_vec()),
    ]
}

/// The single object matching `template`; two or more is an error.
fn find_one(s: &Session, template: &[Attribute]) -> Result<Option<ObjectHandle>, Failure> {
    let found = s.find_objects(template)?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => {
            let label = template.iter().find_map(|a| match a {
                Attribute::Label(l) => Some(String::from_utf8_lossy(l).into_owned()),
                _ => None,
            });
            Err(HsmError::DuplicateLabel(label.unwrap_or_default()).into())
        }
    }
}

fn find_kek(s: &Session, label: &str) -> Result<ObjectHandle, Failure> {
    find_one(s, &kek_template(label))?
        .ok_or_else(|| HsmError::NotFound(format!("KEK {label:?}")).into())
}

/// PKCS#11 3.0 §6.3.3 CKM_EC_KEY_PAIR_GEN with CKA_EC_PARAMS = prime256v1.
fn generate_p256(s: &Session, label: &str) -> Result<ObjectHandle, Failure> {
    let id = Sha256::digest(label.as_bytes()).to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::Private(false),
        Attribute::Verify(true),
        Attribute::Encrypt(false),
        Attribute::Wrap(false),
        Attribute::EcParams(P256_EC_PARAMS.to_vec()),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sensitive(true),
        Attribute::Extractable(false),
        Attribute::Sign(true),
        Attribute::Decrypt(false),
        Attribute::Unwrap(false),
        Attribute::Derive(false),
        Attribute::Label(label.as_bytes().to_vec()),
        Attribute::Id(id),
    ];
    let (public, _private) = s.generate_key_pair(&Mechanism::EccKeyPairGen, &public, &private)?;
    Ok(public)
}

/// Reads CKA_EC_POINT of a P-256 public key: a DER OCTET STRING around the SEC1 point (some
/// modules return the bare point).
fn read_p256_point(s: &Session, public: ObjectHandle) -> Result<EcPublicKey, Failure> {
    let attrs = s.get_attributes(public, &[AttributeType::EcParams, AttributeType::EcPoint])?;
    let mut params = None;
    let mut point = None;
    for attr in attrs {
        match attr {
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    if params.as_deref() != Some(P256_EC_PARAMS) {
        return Err(HsmError::Malformed("signing key is not P-256").into());
    }
    let point = point.ok_or(HsmError::Malformed("public key has no CKA_EC_POINT"))?;
    let raw = match point.as_slice() {
        [0x04, 0x41, rest @ ..] if rest.len() == 65 => rest,
        raw => raw,
    };
    match <[u8; 65]>::try_from(raw) {
        Ok(p) if p.first() == Some(&0x04) => Ok(EcPublicKey(p)),
        _ => Err(HsmError::Malformed("CKA_EC_POINT is not an uncompressed P-256 point").into()),
    }
}

#[cfg(test)]
mod tests {
    use super::max_pin_len;

    #[test]
    fn an_effectively_infinite_max_pin_len_is_no_bound() {
        assert_eq!(max_pin_len(0), usize::MAX);
        assert_eq!(max_pin_len(255), 255);
    }
}
