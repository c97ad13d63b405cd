//! Dedicated PKCS#11 worker threads, one RW session each, and their recovery when the token
//! goes away and comes back.
//!
//! PKCS#11 sessions are `Send` but not `Sync`, and every call blocks: jobs are boxed closures
//! sent over one std channel shared by the workers, and each reply goes back over a tokio
//! oneshot, so the async runtime never blocks on the HSM.
//!
//! Recovery. A job that fails with a session-level return value, or whose failure leaves the
//! session or the token unhealthy, closes its session; the next job opens a new one, logs in
//! and checks the token. When that does not work either, the worker re-initializes the library
//! (C_Finalize, C_Initialize: see [`super::Module::reinitialize`]), at most once per
//! [`RESET_BACKOFF`]; jobs arriving meanwhile fail at once. A re-initialization invalidates
//! every session of the process, so each session carries the library generation it was opened
//! in, and a session of an older generation is forgotten (never closed: its handle may name a
//! newer session by now).
use super::error::{Failure, HsmError};
use super::{Module, Pin, TOKEN_ACCESS};
use crate::fault::Fault;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::ObjectHandle;
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, PoisonError, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

/// Least time between two re-initializations of the library: a token that stays away costs a
/// few failed calls per job, not a busy loop of C_Finalize / C_Initialize.
pub(super) const RESET_BACKOFF: Duration = Duration::from_secs(1);

/// What a job reports to its worker once it has run.
pub(super) struct Done {
    health: Health,
    /// Sends the reply; called after the worker dealt with a broken session.
    reply: Box<dyn FnOnce() + Send>,
}

/// What a job learned about its session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Fine,
    /// A failure that may hide a lost login or a token gone away (private objects become
    /// invisible rather than failing): the worker checks the session and the token.
    Suspect,
    /// A session-level return value: close the session.
    Broken,
}

/// How a job uses the token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Alongside other shared jobs.
    Shared,
    /// Alongside other shared jobs, after checking that the session is logged in and the token
    /// answers (readiness).
    Checked,
    /// Alone in the process, after the same check: key creation, which must never run while
    /// the token's objects are invisible (it would make a second key with the same label).
    Exclusive,
}

/// A unit of work for one session. `Err` when the worker has no session and could not open one.
pub(super) type Job = Box<dyn FnOnce(Result<&Held, HsmError>) -> Done + Send>;

/// Wraps `f` as a job whose result goes to `tx`.
pub(super) fn job<T: Send + 'static>(
    f: impl FnOnce(&Held) -> Result<T, Failure> + Send + 'static,
    tx: tokio::sync::oneshot::Sender<Result<T, HsmError>>,
) -> Job {
    Box::new(move |session| {
        let (result, health) = match session.map_err(Failure::from).and_then(f) {
            Ok(v) => (Ok(v), Health::Fine),
            Err(Failure {
                error,
                session_broken: true,
            }) => (Err(error), Health::Broken),
            Err(failure) => (Err(failure.error), Health::Suspect),
        };
        Done {
            health,
            reply: Box::new(move || {
                // The caller may have gone away (cancelled future): nothing to do then.
                let _ = tx.send(result);
            }),
        }
    })
}

/// Opens and logs in sessions on one token, and re-initializes the library when it must.
pub(super) struct SessionSource {
    pub(super) module: Module,
    pub(super) label: String,
    /// The token's slot; found again by label after a re-initialization.
    pub(super) slot: Mutex<Slot>,
    pub(super) pin: Pin,
    /// Bumped after every exclusive job (the only ones that create or destroy objects): object
    /// handles a session remembered from before are forgotten.
    pub(super) objects: AtomicU64,
}

/// A session, the library generation it was opened in, and the object handles it found.
pub(super) struct Held {
    session: Session,
    generation: u64,
    /// Handles found by label in this session, valid while [`SessionSource::objects`] is
    /// `.0`. A search (C_FindObjects) walks the token's objects, and SoftHSM2 rereads each one's
    /// file to do it: most of what a signature cost before.
    handles: RefCell<(u64, HashMap<String, ObjectHandle>)>,
}

impl std::ops::Deref for Held {
    type Target = Session;

    fn deref(&self) -> &Session {
        &self.session
    }
}

impl Held {
    /// The handle remembered for `key`, or `find`'s (remembered when found).
    pub(super) fn remembered(
        &self,
        key: &str,
        find: impl FnOnce(&Session) -> Result<Option<ObjectHandle>, Failure>,
    ) -> Result<Option<ObjectHandle>, Failure> {
        if let Some(h) = self.handles.borrow().1.get(key) {
            return Ok(Some(*h));
        }
        let found = find(&self.session)?;
        if let Some(h) = found {
            self.handles.borrow_mut().1.insert(key.to_owned(), h);
        }
        Ok(found)
    }

    /// Forgets the handle remembered for `key` (a call with it failed).
    pub(super) fn forget(&self, key: &str) {
        self.handles.borrow_mut().1.remove(key);
    }

    /// Forgets every handle if objects were created or destroyed since they were found.
    fn sync(&self, objects: u64) {
        let mut handles = self.handles.borrow_mut();
        if handles.0 != objects {
            *handles = (objects, HashMap::new());
        }
    }
}

impl SessionSource {
    fn slot(&self) -> Slot {
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens an RW session, logs the user in and checks the token. The caller holds
    /// `TOKEN_ACCESS` (shared or exclusive). PKCS#11 login is per application and token, so a
    /// second session finds the user logged in already.
    pub(super) fn open(&self) -> Result<Held, HsmError> {
        let generation = self.module.generation();
        let session = self.module.pkcs11.open_rw_session(self.slot())?;
        match session.login(UserType::User, Some(&self.pin.auth())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(e) => return Err(e.into()),
        }
        self.check(&session)?;
        Ok(Held {
            session,
            generation,
            handles: RefCell::new((self.objects.load(Ordering::Acquire), HashMap::new())),
        })
    }

    /// PKCS#11 3.0 §5.6 C_GetSessionInfo, §5.5 C_GetTokenInfo and §5.7 C_FindObjects: the
    /// session is logged in, the token answers and its object store answers. SoftHSM2 keeps
    /// sessions "logged in" after its token directory vanished and only C_GetTokenInfo fails
    /// (CKR_GENERAL_ERROR). kryoptic answers C_GetTokenInfo from memory while its SQLite
    /// store cannot be read; only a search of the token's objects fails. So all three are
    /// asked (one handle at most is fetched; finding none is no fault).
    fn check(&self, session: &Session) -> Result<(), HsmError> {
        let info = session.get_session_info()?;
        if !matches!(info.session_state(), SessionState::RwUser) {
            return Err(HsmError::Unavailable(Fault::new(
                "the session is not logged in",
            )));
        }
        self.module.pkcs11.get_token_info(self.slot())?;
        let mut found = session.iter_objects_with_cache_size(
            &[cryptoki::object::Attribute::Token(true)],
            std::num::NonZeroUsize::MIN,
        )?;
        found.next().transpose()?;
        Ok(())
    }

    /// Re-initializes the library unless another worker did since generation `seen`, or the
    /// last re-initialization is less than [`RESET_BACKOFF`] ago. Then finds the token again.
    fn reset(&self, seen: u64, why: &HsmError) -> Result<(), HsmError> {
        let _alone = TOKEN_ACCESS.write().unwrap_or_else(PoisonError::into_inner);
        if self.module.generation() != seen {
            return Ok(());
        }
        if !self.module.reset_allowed(RESET_BACKOFF) {
            return Err(HsmError::Unavailable(Fault::caused_by(
                format!(
                    "the next attempt to reach the token is within {} ms",
                    RESET_BACKOFF.as_millis()
                ),
                why.clone(),
            )));
        }
        tracing::warn!(error = %crate::fault::Chain(&why), "HSM token unavailable: re-initializing the PKCS#11 library");
        self.module.reinitialize()?;
        let slot = self.module.find_token(&self.label)?.ok_or_else(|| {
            HsmError::Unavailable(Fault::new(format!("no token labelled {:?}", self.label)))
        })?;
        *self.slot.lock().unwrap_or_else(PoisonError::into_inner) = slot;
        Ok(())
    }
}

/// What a worker is sent.
pub(super) enum Message {
    /// Run this job on the worker's session.
    Job(Job, Access),
    /// Close the session and stop (see `Hsm::shutdown`).
    Stop,
}

/// Starts one worker per session; the returned sender feeds them all. Workers stop on
/// `Message::Stop`, or when every sender is dropped.
pub(super) fn spawn(
    source: Arc<SessionSource>,
    sessions: Vec<Held>,
) -> Result<(mpsc::Sender<Message>, Vec<std::thread::JoinHandle<()>>), HsmError> {
    let (tx, rx) = mpsc::channel::<Message>();
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::with_capacity(sessions.len());
    for (i, held) in sessions.into_iter().enumerate() {
        let (source, rx) = (Arc::clone(&source), Arc::clone(&rx));
        let handle = std::thread::Builder::new()
            .name(format!("payhsm-hsm-{i}"))
            .spawn(move || {
                let mut worker = Worker {
                    source,
                    held: Some(held),
                };
                worker.work(&rx);
            })
            .map_err(|e| {
                HsmError::Library(Fault::caused_by("cannot start an HSM worker thread", e))
            })?;
        handles.push(handle);
    }
    Ok((tx, handles))
}

/// `TOKEN_ACCESS` as a job needs it.
enum Guard {
    Shared(#[allow(dead_code)] RwLockReadGuard<'static, ()>),
    Alone(#[allow(dead_code)] RwLockWriteGuard<'static, ()>),
}

fn lock(access: Access) -> Guard {
    match access {
        Access::Shared | Access::Checked => {
            Guard::Shared(TOKEN_ACCESS.read().unwrap_or_else(PoisonError::into_inner))
        }
        Access::Exclusive => {
            Guard::Alone(TOKEN_ACCESS.write().unwrap_or_else(PoisonError::into_inner))
        }
    }
}

struct Worker {
    source: Arc<SessionSource>,
    held: Option<Held>,
}

impl Worker {
    fn work(&mut self, rx: &Mutex<mpsc::Receiver<Message>>) {
        loop {
            let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
            match next {
                Ok(Message::Job(job, access)) => self.handle(job, access),
                // Stopped, or every Hsm handle is gone.
                Ok(Message::Stop) | Err(_) => break,
            }
        }
        let _shared = lock(Access::Shared);
        self.forget_stale();
        drop(self.held.take()); // C_CloseSession
    }

    /// Forgets a session opened before the last re-initialization without closing it.
    fn forget_stale(&mut self) {
        let current = self.source.module.generation();
        if self.held.as_ref().is_some_and(|h| h.generation != current) {
            if let Some(stale) = self.held.take() {
                std::mem::forget(stale);
            }
        }
    }

    /// Makes sure there is a usable session; `checked` asks the token about it too.
    fn ready(&mut self, checked: bool) -> Result<(), HsmError> {
        self.forget_stale();
        match &self.held {
            None => {
                self.held = Some(self.source.open()?);
                Ok(())
            }
            Some(h) if checked => match self.source.check(&h.session) {
                Ok(()) => Ok(()),
                Err(e) => {
                    self.held = None; // C_CloseSession: the generation is current
                    Err(e)
                }
            },
            Some(_) => Ok(()),
        }
    }

    fn handle(&mut self, job: Job, access: Access) {
        let checked = access != Access::Shared;
        let mut guard = lock(access);
        let seen = self.source.module.generation();
        if let Err(why) = self.ready(checked) {
            drop(guard);
            let reset = self.source.reset(seen, &why);
            guard = lock(access);
            if let Err(e) = reset.and_then(|()| self.ready(checked)) {
                tracing::error!(error = %crate::fault::Chain(&e), "HSM session unavailable");
                let done = job(Err(e));
                drop(guard);
                (done.reply)();
                return;
            }
        }
        let Some(held) = &self.held else {
            // Not reached: `ready` succeeded. Answer rather than drop the job.
            let done = job(Err(HsmError::WorkerGone));
            drop(guard);
            (done.reply)();
            return;
        };
        held.sync(self.source.objects.load(Ordering::Acquire));
        let done = job(Ok(held));
        if access == Access::Exclusive {
            // Still alone (the guard is held): every other session forgets its handles before
            // its next job.
            self.source.objects.fetch_add(1, Ordering::AcqRel);
        }
        let close = match done.health {
            Health::Fine => false,
            Health::Broken => true,
            Health::Suspect => self.source.check(&held.session).is_err(),
        };
        // The guard is held: no re-initialization happened since `ready`, so closing is safe.
        if close {
            tracing::warn!("HSM session lost; the next call opens a new one and logs in again");
            self.held = None; // C_CloseSession
        }
        drop(guard);
        (done.reply)();
    }
}
