//! Dedicated PKCS#11 worker threads, one RW session each.
//!
//! PKCS#11 sessions are `Send` but not `Sync`, and every call blocks: jobs are boxed closures
//! sent over one std channel shared by the workers, and each reply goes back over a tokio
//! oneshot, so the async runtime never blocks on the HSM.
use super::error::{Failure, HsmError};
use super::Pin;
use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use std::sync::{mpsc, Arc, Mutex, PoisonError};

/// What a job reports to its worker once it has run.
pub(super) struct Done {
    health: Health,
    /// Sends the reply; called after any session recovery, so the next call finds a
    /// working session.
    reply: Box<dyn FnOnce() + Send>,
}

/// What a job learned about its session.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Health {
    Fine,
    /// A failure that may hide a lost login (private objects become invisible rather than
    /// failing): the worker checks the session state.
    Suspect,
    /// A session-level return value: reopen.
    Broken,
}

/// A unit of work for one session. `Err` when the worker has no session and could not open one.
pub(super) type Job = Box<dyn FnOnce(Result<&Session, HsmError>) -> Done + Send>;

/// Wraps `f` as a job whose result goes to `tx`.
pub(super) fn job<T: Send + 'static>(
    f: impl FnOnce(&Session) -> Result<T, Failure> + Send + 'static,
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

/// Opens and logs in sessions on one token.
pub(super) struct SessionSource {
    pub(super) pkcs11: Pkcs11,
    pub(super) slot: Slot,
    pub(super) pin: Pin,
}

impl SessionSource {
    /// Opens an RW session and logs the user in. PKCS#11 login is per application and token,
    /// so a second session finds the user logged in already.
    pub(super) fn open(&self) -> Result<Session, Failure> {
        let _shared = super::TOKEN_ACCESS
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let session = self.pkcs11.open_rw_session(self.slot)?;
        match session.login(UserType::User, Some(&self.pin.auth())) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
            Err(e) => Err(e.into()),
        }
    }
}

/// What a worker is sent.
pub(super) enum Message {
    /// Run this job on the worker's session.
    Job(Job),
    /// Close the session and stop (see `Hsm::shutdown`).
    Stop,
}

/// Starts one worker per session; the returned sender feeds them all. Workers stop on
/// `Message::Stop`, or when every sender is dropped.
pub(super) fn spawn(
    source: Arc<SessionSource>,
    sessions: Vec<Session>,
) -> Result<(mpsc::Sender<Message>, Vec<std::thread::JoinHandle<()>>), HsmError> {
    let (tx, rx) = mpsc::channel::<Message>();
    let rx = Arc::new(Mutex::new(rx));
    let mut handles = Vec::with_capacity(sessions.len());
    for (i, session) in sessions.into_iter().enumerate() {
        let (source, rx) = (Arc::clone(&source), Arc::clone(&rx));
        let handle = std::thread::Builder::new()
            .name(format!("payhsm-hsm-{i}"))
            .spawn(move || work(&source, session, &rx))
            .map_err(|e| HsmError::Library(format!("cannot start HSM worker: {e}")))?;
        handles.push(handle);
    }
    Ok((tx, handles))
}

fn work(source: &SessionSource, session: Session, rx: &Mutex<mpsc::Receiver<Message>>) {
    // `Err` holds why the last reopen failed; the next job retries it.
    let mut session: Result<Session, HsmError> = Ok(session);
    loop {
        let next = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok(Message::Job(job)) = next else {
            return; // stopped, or every Hsm handle is gone: the session closes here
        };
        if session.is_err() {
            session = reopen(source);
        }
        let done = job(session.as_ref().map_err(Clone::clone));
        let reopen_now = match (&session, done.health) {
            (Err(_), _) | (Ok(_), Health::Fine) => false,
            (Ok(_), Health::Broken) => true,
            (Ok(s), Health::Suspect) => !is_healthy(s),
        };
        if reopen_now {
            tracing::warn!("HSM session lost; reopening and logging in again");
            // Close the old session first: the token may cap the session count.
            drop(std::mem::replace(&mut session, Err(HsmError::WorkerGone)));
            session = reopen(source);
        }
        (done.reply)();
    }
}

fn reopen(source: &SessionSource) -> Result<Session, HsmError> {
    source.open().map_err(|f| {
        tracing::error!(error = %f.error, "cannot reopen HSM session");
        f.error
    })
}

/// PKCS#11 3.0 §5.6 C_GetSessionInfo: the session exists and the user is logged in.
fn is_healthy(session: &Session) -> bool {
    match session.get_session_info() {
        Ok(info) => matches!(info.session_state(), SessionState::RwUser),
        Err(_) => false,
    }
}
