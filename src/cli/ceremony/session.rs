//! The token and the audit log a ceremony works on.
//!
//! A data directory is either a dev one (`softhsm2.conf` and the SoftHSM2 token under it,
//! public dev PINs, made by `payhsmd dev` or `ceremony init --dev`) or bound to a real token
//! by `ceremony init --token-label` ([`BINDING_FILE`]: the module, the token's label and its
//! identity). Both keep the audit log in `payhsm.db`.

use super::input::PinEntry;
use super::{hsm_stop, Stop};
use crate::audit::{AuditEvent, PolicyVerdict};
use crate::ceremony::{kcv, Custodian, KeyMaterial};
use crate::cli::args::{CustodianArgs, TokenArgs};
use crate::config::defaults;
use crate::keys::{Hsm, HsmConfig, Module, Pin, TokenIdentity};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::AuditStore;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The file binding a data directory to its token.
pub(super) const BINDING_FILE: &str = "token.toml";
/// The audit log of a data directory.
pub(super) const STORE_FILE: &str = "payhsm.db";
const DEV_CONF_FILE: &str = "softhsm2.conf";
/// The principal of ceremony records that name no custodian.
const ANONYMOUS_PRINCIPAL: &str = "payhsm-ceremony";

/// `token.toml`: which token a data directory's ceremonies use (no PIN, ever).
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Binding {
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub label: String,
    /// The token's serial number, checked at every open.
    pub serial: String,
    /// The token's manufacturer, as recorded at init.
    pub manufacturer: String,
    /// The token's model, as recorded at init.
    pub model: String,
}

impl Binding {
    pub(super) fn new(module: &Path, id: &TokenIdentity) -> Self {
        Self {
            module: module.to_owned(),
            label: id.label.clone(),
            serial: id.serial.clone(),
            manufacturer: id.manufacturer.clone(),
            model: id.model.clone(),
        }
    }

    /// Writes `token.toml` (a new file: never replaces a binding).
    pub(super) fn write(&self, data_dir: &Path) -> Result<(), Stop> {
        let path = data_dir.join(BINDING_FILE);
        let text = toml::to_string(self)
            .map_err(|e| Stop::error(format!("encoding {}: {e}", path.display())))?;
        let text = format!(
            "# Written by `payhsm ceremony init`: the PKCS#11 token whose ceremonies this \
             directory's audit log records. No PIN is kept here.\n{text}"
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Stop::error(format!("{}: {e}", path.display())))?;
        std::io::Write::write_all(&mut file, text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| Stop::error(format!("{}: {e}", path.display())))
    }
}

/// How [`Session::open_dev`] finds a dev data directory.
#[derive(Debug, Clone, Copy)]
pub(super) enum Dev<'a> {
    /// Made already (by `payhsmd dev` or `ceremony init --dev`).
    Existing,
    /// Prepared now if absent, its token made in `module` if given (recorded in the
    /// directory, and refused if the directory was made with another), else in the module
    /// it was made with, else SoftHSM2.
    Create { module: Option<&'a Path> },
}

/// What kind of data directory a ceremony was pointed at.
#[derive(Debug)]
pub(super) enum DataDir {
    /// DEV ONLY: SoftHSM2 under the directory, public dev PINs.
    Dev,
    /// Bound to a real token by `ceremony init --token-label`.
    Token(Binding),
}

impl DataDir {
    /// Recognizes an existing data directory.
    pub(super) fn detect(data_dir: &Path) -> Result<Self, Stop> {
        let binding = data_dir.join(BINDING_FILE);
        if binding.exists() {
            let text = std::fs::read_to_string(&binding)
                .map_err(|e| Stop::error(format!("{}: {e}", binding.display())))?;
            let parsed = toml::from_str(&text)
                .map_err(|e| Stop::error(format!("{}: {e}", binding.display())))?;
            return Ok(Self::Token(parsed));
        }
        if data_dir.join(DEV_CONF_FILE).exists() && data_dir.join(STORE_FILE).exists() {
            return Ok(Self::Dev);
        }
        Err(Stop::error(format!(
            "{} holds neither {BINDING_FILE} nor {DEV_CONF_FILE} and {STORE_FILE}: create it \
             with `payhsm ceremony init` (or `payhsmd dev`)",
            data_dir.display()
        )))
    }

    /// The custodians named for a ceremony, checked against the identities file. `per_entry`
    /// is the number of components or shares the custodians enter, one each: on a real
    /// token the custodians of such a ceremony must be named.
    pub(super) fn custodians(
        &self,
        args: &CustodianArgs,
        per_entry: Option<(u8, &str)>,
    ) -> Result<Vec<Custodian>, Stop> {
        if args.names.is_empty() {
            return match (self, per_entry) {
                (Self::Token(b), Some((n, what))) => Err(Stop::error(format!(
                    "token {:?} is not a dev token: name the {n} custodians entering the \
                     {what}s, in order, with --custodian NAME",
                    b.label
                ))),
                _ => Ok(Vec::new()),
            };
        }
        named(args, per_entry)
    }
}

/// The custodians named in `args`, checked against the identities file: one per entry when
/// `per_entry` gives the entries' count, each distinct, each in the custodian group.
pub(super) fn named(
    args: &CustodianArgs,
    per_entry: Option<(u8, &str)>,
) -> Result<Vec<Custodian>, Stop> {
    if args.names.is_empty() {
        return Ok(Vec::new());
    }
    if let Some((n, what)) = per_entry {
        if args.names.len() != usize::from(n) {
            return Err(Stop::error(format!(
                "{} custodians named for {n} {what}s: one --custodian per {what}, in entry \
                 order",
                args.names.len()
            )));
        }
    }
    let identities = crate::policy::load_identities(&args.policies)
        .map_err(|e| Stop::error(format!("the custodians: {e}")))?;
    crate::ceremony::custodians::resolve(&args.names, &identities)
        .map_err(|e| Stop::refused(format!("custodian refused: {e}; nothing imported")))
}

/// The token and the audit log of one data directory, and a runtime to drive them.
pub(super) struct Session {
    pub runtime: tokio::runtime::Runtime,
    pub hsm: Hsm,
    pub store: SqliteStore,
    /// Who takes part, in entry order (empty: not named, dev data directories only).
    pub custodians: Vec<Custodian>,
}

impl Drop for Session {
    /// Stops the PKCS#11 workers before the process exits (see `Hsm::shutdown`).
    fn drop(&mut self) {
        self.runtime.block_on(self.hsm.shutdown());
    }
}

/// The parts of a session opened before the HSM.
pub(super) struct Opening {
    pub runtime: tokio::runtime::Runtime,
    pub store: SqliteStore,
}

impl Opening {
    /// Opens (or creates) the audit log of `data_dir` and a runtime; `read_only` opens an
    /// existing one without taking the writer's place (the daemon may be running).
    pub(super) fn new(data_dir: &Path, read_only: bool) -> Result<Self, Stop> {
        let path = data_dir.join(STORE_FILE);
        let store = if read_only {
            crate::store::sqlite::open_read_only(&path)
        } else {
            crate::store::sqlite::open(&path, SqliteOptions::default())
        }
        .map_err(|e| Stop::error(format!("opening the store: {}", crate::fault::Chain(&e))))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Stop::error(format!("starting the runtime: {e}")))?;
        Ok(Self { runtime, store })
    }

    /// Logs in to `label` with `pin`; from here on `Drop for Session` stops the workers.
    pub(super) fn login(
        self,
        module: &Module,
        label: &str,
        pin: Pin,
        custodians: Vec<Custodian>,
    ) -> Result<Session, Stop> {
        let hsm = Hsm::open(
            module,
            HsmConfig {
                token_label: label.to_owned(),
                pin,
                sessions: 1,
            },
        )
        .map_err(hsm_stop("opening the token"))?;
        Ok(Session {
            runtime: self.runtime,
            hsm,
            store: self.store,
            custodians,
        })
    }
}

impl Session {
    /// Opens the token and store of `token.data_dir`, of the kind `kind`.
    pub(super) fn open(
        token: &TokenArgs,
        kind: &DataDir,
        custodians: Vec<Custodian>,
    ) -> Result<Self, Stop> {
        match kind {
            DataDir::Dev => {
                if token.user_pin_fd.is_some() {
                    return Err(Stop::error(format!(
                        "{} is a DEV ONLY data directory with the public dev PIN: it takes no \
                         --user-pin-fd",
                        token.data_dir.display()
                    )));
                }
                Self::open_dev(&token.data_dir, Dev::Existing, custodians)
            }
            DataDir::Token(binding) => Self::open_token(
                &token.data_dir,
                binding,
                token.user_pin_fd,
                custodians,
                false,
            ),
        }
    }

    /// Opens the dev token and store of `data_dir`; with [`Dev::Create`], first prepares the
    /// directory and the token as `payhsmd dev` does.
    pub(super) fn open_dev(
        data_dir: &Path,
        how: Dev<'_>,
        custodians: Vec<Custodian>,
    ) -> Result<Self, Stop> {
        let create = matches!(how, Dev::Create { .. });
        if let Dev::Create { module } = how {
            if data_dir.join(BINDING_FILE).exists() {
                return Err(Stop::refused(format!(
                    "{} is bound to a real token ({BINDING_FILE}): not a dev data directory; \
                     nothing changed",
                    data_dir.display()
                )));
            }
            crate::daemon::prepare_dev_dir(data_dir)
                .map_err(|e| Stop::error(crate::fault::Chain(&e).to_string()))?;
            if let Some(module) = module {
                crate::daemon::record_dev_module(data_dir, module)
                    .map_err(|e| Stop::error(crate::fault::Chain(&e).to_string()))?;
            }
        }
        // Before any thread starts: SoftHSM2 reads its configuration when the module loads.
        let config = crate::daemon::dev_tool_config(data_dir);
        let p = &config.pkcs11;
        let module = Module::load(&p.module).map_err(hsm_stop("loading the PKCS#11 module"))?;
        if create {
            let so = Pin::new(defaults::DANGER_DEV_SO_PIN.to_owned());
            let user = Pin::new(defaults::DANGER_DEV_USER_PIN.to_owned());
            module
                .init_token_if_absent(&p.token_label, &so, &user)
                .map_err(hsm_stop("creating the dev token"))?;
        }
        let opening = Opening::new(data_dir, false)?;
        let pin = crate::daemon::read_pin(&p.pin)
            .map_err(|e| Stop::error(crate::fault::Chain(&e).to_string()))?;
        opening.login(&module, &p.token_label, pin, custodians)
    }

    /// Opens the token `binding` names, after checking it is the same token (serial), with
    /// the user PIN from its fd or the terminal; `read_only` for the store, as in
    /// [`Opening::new`].
    fn open_token(
        data_dir: &Path,
        binding: &Binding,
        pin_fd: Option<i32>,
        custodians: Vec<Custodian>,
        read_only: bool,
    ) -> Result<Self, Stop> {
        let module =
            Module::load(&binding.module).map_err(hsm_stop("loading the PKCS#11 module"))?;
        let identity = module
            .token_identity(&binding.label)
            .map_err(hsm_stop("looking for the token"))?
            .ok_or_else(|| {
                Stop::error(format!(
                    "no initialized token labelled {:?} in {} (named by {})",
                    binding.label,
                    binding.module.display(),
                    data_dir.join(BINDING_FILE).display()
                ))
            })?;
        if identity.serial != binding.serial {
            return Err(Stop::error(format!(
                "the token labelled {:?} has serial {:?}, not {:?} as recorded at init: not \
                 the token of this data directory",
                binding.label, identity.serial, binding.serial
            )));
        }
        if !data_dir.join(STORE_FILE).exists() {
            return Err(Stop::error(format!(
                "{} holds no {STORE_FILE} (the audit log)",
                data_dir.display()
            )));
        }
        let pin = PinEntry {
            what: "user PIN",
            flag: "--user-pin-fd",
            fd: pin_fd,
        }
        .read()?;
        Opening::new(data_dir, read_only)?.login(&module, &binding.label, pin, custodians)
    }

    /// The custodian entering entry `i` (1-based), if custodians are named.
    pub(super) fn custodian(&self, i: u8) -> Option<&Custodian> {
        self.custodians.get(usize::from(i).checked_sub(1)?)
    }

    /// Refuses early, before custodians type anything, when `label` is taken.
    pub(super) fn require_free(&self, label: &str) -> Result<(), Stop> {
        if self
            .runtime
            .block_on(self.hsm.kek_exists(label))
            .map_err(hsm_stop("looking up the label"))?
        {
            return Err(Stop::refused(format!(
                "a KEK labelled {label:?} already exists; nothing imported"
            )));
        }
        Ok(())
    }

    /// Imports `key` under `label` and returns the KCV the token computes, which must equal
    /// the one computed in software.
    pub(super) fn import(&self, label: &str, key: &KeyMaterial) -> Result<[u8; 5], Stop> {
        self.runtime
            .block_on(self.hsm.import_kek(label, key))
            .map_err(hsm_stop("importing the KEK"))?;
        let in_token = self.kcv(label)?;
        if in_token != key.kcv_cmac() {
            return Err(Stop::error(format!(
                "the token reports KCV {} for {label:?}, not {}",
                kcv::display(&in_token),
                kcv::display(&key.kcv_cmac())
            )));
        }
        Ok(in_token)
    }

    pub(super) fn kcv(&self, label: &str) -> Result<[u8; 5], Stop> {
        self.runtime
            .block_on(self.hsm.kek_kcv(label))
            .map_err(hsm_stop("computing the KEK's KCV in the token"))
    }

    /// Appends an audit record: who (the custodians, in entry order), what (`action`,
    /// `detail`: labels, KCVs, counts), never a component, share or PIN. Its decision is
    /// `none`: a ceremony is governed by dual control on the HSM host, not by a Cedar policy,
    /// and its outcome says whether it went through.
    pub(super) fn audit(&self, action: &str, outcome: &str, detail: String) -> Result<(), Stop> {
        let (principal, detail) = if self.custodians.is_empty() {
            (ANONYMOUS_PRINCIPAL.to_owned(), detail)
        } else {
            let identities: Vec<&str> = self
                .custodians
                .iter()
                .map(|c| c.identity.as_str())
                .collect();
            let names: Vec<&str> = self.custodians.iter().map(|c| c.name.as_str()).collect();
            (
                identities.join(","),
                format!("{detail} custodians={}", names.join(",")),
            )
        };
        let mut event = AuditEvent::new(
            crate::clock::now_rfc3339(),
            "ceremony".to_owned(),
            principal,
            action.to_owned(),
            PolicyVerdict::NotAsked,
        );
        event.outcome = outcome.to_owned();
        event.detail = Some(detail);
        self.runtime
            .block_on(self.store.record(event))
            .map_err(|e| Stop::error(format!("writing the audit record: {e}")))
    }

    /// Audits a refusal, then returns it.
    pub(super) fn refuse(&self, action: &str, outcome: &str, detail: String, stop: Stop) -> Stop {
        match self.audit(action, outcome, detail) {
            Ok(()) => stop,
            Err(audit) => Stop {
                code: stop.code,
                message: format!("{}; {}", stop.message, audit.message),
            },
        }
    }
}

/// `payhsm audit report --data-dir` of a directory bound to a token: `None` for any other
/// directory (the caller handles dev ones); else the signed report, or an exit code and
/// message.
pub(in crate::cli) fn report_token_audit(
    data_dir: &Path,
    user_pin_fd: Option<i32>,
    period: crate::audit::report::Period,
) -> Option<Result<crate::audit::report::SignedReport, (i32, String)>> {
    with_token_audit(data_dir, user_pin_fd, "audit report", |session| {
        Box::pin(crate::daemon::report_with(
            &session.store,
            &session.hsm,
            crate::daemon::OfflineKeys {
                kek_label: None,
                audit_key_label: defaults::AUDIT_KEY_LABEL,
                token_format: crate::card::TokenFormat::default(),
            },
            period,
        ))
    })
}

/// `payhsm audit export` of a data directory bound to a real token: `None` for a dev one.
pub(in crate::cli) fn export_token_audit(
    data_dir: &Path,
    user_pin_fd: Option<i32>,
) -> Option<Result<String, (i32, String)>> {
    with_token_audit(data_dir, user_pin_fd, "audit export", |session| {
        Box::pin(crate::daemon::export_with(
            &session.store,
            &session.hsm,
            defaults::AUDIT_KEY_LABEL,
        ))
    })
}

/// A daemon read run on a session's runtime.
type DaemonFuture<'s, T> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<T, crate::daemon::DaemonError>> + 's>,
>;

/// Runs `read` on a read-only session of the token `data_dir` is bound to (`None` when it is
/// not bound to one): its answer, or an exit code and message naming `what`.
fn with_token_audit<T>(
    data_dir: &Path,
    user_pin_fd: Option<i32>,
    what: &str,
    read: impl for<'s> FnOnce(&'s Session) -> DaemonFuture<'s, T>,
) -> Option<Result<T, (i32, String)>> {
    let binding = match DataDir::detect(data_dir) {
        Ok(DataDir::Token(binding)) => binding,
        _ => return None,
    };
    let run = || -> Result<T, Stop> {
        let session = Session::open_token(data_dir, &binding, user_pin_fd, Vec::new(), true)?;
        session
            .runtime
            .block_on(read(&session))
            .map_err(|e| Stop::error(format!("{what}: {}", crate::fault::Chain(&e))))
    };
    Some(run().map_err(|s| (s.code, s.message)))
}
