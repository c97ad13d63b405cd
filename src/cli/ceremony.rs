//! `payhsm ceremony`: key ceremonies on the HSM host, on a dev data directory.
//!
//! Components, their KCVs and share transcripts are read from stdin one line at a time,
//! straight into zeroizing buffers ([`crate::isolation::read_secret_line`], no echo on a
//! terminal); prompts go to stderr. Components and shares are printed on stdout only by the
//! commands whose purpose that is (`kek components new`, `backup`); nothing secret is ever
//! written to a file, a log, an error message or the audit log: only labels, KCVs, counts and
//! component numbers.

use super::args::{CeremonyArgs, CeremonyCommand, ComponentsCommand, KekArgs, KekCommand};
use super::{EXIT_API_ERROR, EXIT_OK, EXIT_USAGE};
use crate::audit::{AuditEvent, Decision};
use crate::ceremony::{self, kcv, Component, KeyMaterial, Share, TRANSCRIPT_TAG};
use crate::config::{defaults, Config};
use crate::keys::{Hsm, HsmConfig, HsmError, Module, Pin};
use crate::store::sqlite::{SqliteOptions, SqliteStore};
use crate::store::Store;
use std::io::Write as _;
use std::path::Path;
use zeroize::Zeroizing;

/// Longest line read from stdin (a share transcript of a 32-byte key is about 110 bytes).
const MAX_LINE: usize = 1024;

/// Why a ceremony stopped: the exit code and a message that never holds a secret.
struct Stop {
    code: i32,
    message: String,
}

impl Stop {
    /// A check refused the ceremony (exit 1).
    fn refused(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_API_ERROR,
            message: message.into(),
        }
    }

    /// Usage, file or HSM error (exit 2).
    fn error(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

fn hsm_stop(what: &str) -> impl Fn(HsmError) -> Stop + '_ {
    move |e| match e {
        HsmError::AlreadyExists(label) => {
            Stop::refused(format!("{what}: a key labelled {label:?} already exists"))
        }
        e => Stop::error(format!("{what}: {e}")),
    }
}

/// Runs a ceremony subcommand and returns the exit code.
pub fn run(args: &CeremonyArgs) -> i32 {
    let result = match &args.command {
        CeremonyCommand::Init { data_dir } => init(data_dir),
        CeremonyCommand::Kek(KekArgs { command }) => match command {
            KekCommand::Components(c) => match c.command {
                ComponentsCommand::New { count } => components_new(count),
            },
            KekCommand::Form {
                data_dir,
                components,
                label,
            } => form(data_dir, *components, label),
            KekCommand::Generate { data_dir, label } => generate(data_dir, label),
        },
        CeremonyCommand::Backup {
            data_dir,
            threshold,
            shares,
            components,
            label,
        } => backup(data_dir, *threshold, *shares, *components, label),
        CeremonyCommand::Restore {
            data_dir,
            shares,
            label,
            expect_kcv,
        } => restore(data_dir, *shares, label, expect_kcv),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(stop) => {
            eprintln!("payhsm: {}", stop.message);
            stop.code
        }
    }
}

/// The token and the audit log of one data directory, and a runtime to drive them.
struct Session {
    runtime: tokio::runtime::Runtime,
    hsm: Hsm,
    store: SqliteStore,
}

impl Drop for Session {
    /// Stops the PKCS#11 workers before the process exits (see `Hsm::shutdown`).
    fn drop(&mut self) {
        self.runtime.block_on(self.hsm.shutdown());
    }
}

impl Session {
    /// Opens the dev token and store of `data_dir`; with `create`, first prepares the directory
    /// and the token as `payhsmd dev` does.
    fn open(data_dir: &Path, create: bool) -> Result<Self, Stop> {
        if create {
            crate::daemon::prepare_dev_dir(data_dir).map_err(|e| Stop::error(e.to_string()))?;
        } else if !data_dir.join("softhsm2.conf").exists() || !data_dir.join("payhsm.db").exists() {
            return Err(Stop::error(format!(
                "{} holds no softhsm2.conf and payhsm.db: create it with `payhsmd dev` or \
                 `payhsm ceremony init`",
                data_dir.display()
            )));
        }
        let unused = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        let config = Config::dev(
            data_dir,
            unused,
            Path::new("keys-sample"),
            Path::new("policies"),
        );
        // Before any thread starts: SoftHSM2 reads it when the module loads.
        crate::daemon::use_softhsm2_conf(&config);
        let p = &config.pkcs11;
        let module = Module::load(&p.module).map_err(hsm_stop("loading the PKCS#11 module"))?;
        if create {
            let so = Pin::new(defaults::DANGER_DEV_SO_PIN.to_owned());
            let user = Pin::new(defaults::DANGER_DEV_USER_PIN.to_owned());
            module
                .init_token_if_absent(&p.token_label, &so, &user)
                .map_err(hsm_stop("creating the dev token"))?;
        }
        let store = crate::store::sqlite::open(&config.sqlite_path, SqliteOptions::default())
            .map_err(|e| Stop::error(format!("opening the store: {e}")))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Stop::error(format!("starting the runtime: {e}")))?;
        let pin = crate::daemon::read_pin(&p.pin).map_err(|e| Stop::error(e.to_string()))?;
        // Opened last: from here on `Drop for Session` stops the workers on every path.
        let hsm = Hsm::open(
            &module,
            HsmConfig {
                token_label: p.token_label.clone(),
                pin,
                sessions: 1,
            },
        )
        .map_err(hsm_stop("opening the token"))?;
        Ok(Self {
            runtime,
            hsm,
            store,
        })
    }

    /// Refuses early, before custodians type anything, when `label` is taken.
    fn require_free(&self, label: &str) -> Result<(), Stop> {
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
    fn import(&self, label: &str, key: &KeyMaterial) -> Result<[u8; 5], Stop> {
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

    fn kcv(&self, label: &str) -> Result<[u8; 5], Stop> {
        self.runtime
            .block_on(self.hsm.kek_kcv(label))
            .map_err(hsm_stop("computing the KEK's KCV in the token"))
    }

    /// Appends an audit record (never a component or share: labels, KCVs, counts).
    fn audit(
        &self,
        action: &str,
        decision: Decision,
        outcome: &str,
        detail: String,
    ) -> Result<(), Stop> {
        let event = AuditEvent {
            time: crate::clock::now_rfc3339(),
            request_id: "ceremony".to_owned(),
            principal: "payhsm-ceremony".to_owned(),
            action: action.to_owned(),
            domain: None,
            token: None,
            last4: None,
            decision,
            policy_ids: Vec::new(),
            outcome: outcome.to_owned(),
            detail: Some(detail),
        };
        self.runtime
            .block_on(self.store.record(event))
            .map_err(|e| Stop::error(format!("writing the audit record: {e}")))
    }

    /// Audits a refusal, then returns it.
    fn refuse(&self, action: &str, outcome: &str, detail: String, stop: Stop) -> Stop {
        match self.audit(action, Decision::Deny, outcome, detail) {
            Ok(()) => stop,
            Err(audit) => Stop {
                code: stop.code,
                message: format!("{}; {}", stop.message, audit.message),
            },
        }
    }
}

fn init(data_dir: &Path) -> Result<(), Stop> {
    Session::open(data_dir, true)?;
    eprintln!(
        "payhsm: DEV ONLY: {} ready (token {:?}, public dev PINs)",
        data_dir.display(),
        defaults::DEV_TOKEN_LABEL
    );
    Ok(())
}

/// Writes pieces to stdout without `format!`ing the secret ones, then flushes.
fn print_parts(parts: &[&str]) -> Result<(), Stop> {
    let mut out = std::io::stdout().lock();
    let written = parts
        .iter()
        .try_for_each(|p| out.write_all(p.as_bytes()))
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    written.map_err(|e| Stop::error(format!("writing to stdout: {e}")))
}

fn components_new(count: u8) -> Result<(), Stop> {
    for i in 1..=count {
        let c = Component::random().map_err(|e| Stop::error(e.to_string()))?;
        let head = format!("component {i} of {count}: ");
        let tail = format!("  KCV {}", kcv::display(&c.kcv_cmac()));
        print_parts(&[&head, c.to_hex().as_str(), &tail])?;
    }
    Ok(())
}

/// Prompts on stderr: on the same line at a terminal, on its own line otherwise.
fn prompt(text: &str) {
    if crate::isolation::stdin_is_terminal() {
        eprint!("{text}: ");
    } else {
        eprintln!("{text}:");
    }
}

/// Reads one line from stdin into a zeroizing buffer; `what` names it for errors.
fn read_line(what: &str) -> Result<Zeroizing<String>, Stop> {
    let mut buf = Zeroizing::new(vec![0u8; MAX_LINE]);
    let len = crate::isolation::read_secret_line(&mut buf)
        .map_err(|e| Stop::error(format!("reading {what}: {e}")))?
        .ok_or_else(|| Stop::error(format!("reading {what}: end of input")))?;
    let bytes = buf.get(..len).unwrap_or_default();
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Stop::refused(format!("{what} is not text; nothing imported")))?;
    let mut line = Zeroizing::new(String::with_capacity(len));
    line.push_str(text);
    Ok(line)
}

/// A KCV as typed: hex digits, spaces ignored, either case.
fn normalize_kcv(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Custodians enter `count` components in turn, each followed by its KCV; each KCV is checked
/// as it is entered. Then the components are combined.
fn read_components(
    session: &Session,
    action: &str,
    label: &str,
    count: u8,
) -> Result<KeyMaterial, Stop> {
    if crate::isolation::stdin_is_terminal() {
        eprintln!("payhsm: input is not echoed");
    }
    let mut components: Vec<Component> = Vec::with_capacity(usize::from(count));
    let mut kcvs: Vec<[u8; 5]> = Vec::with_capacity(usize::from(count));
    for i in 1..=count {
        let refuse = |outcome: &str, stop: Stop| {
            session.refuse(
                action,
                outcome,
                format!("label={label} component={i} of={count}"),
                stop,
            )
        };
        prompt(&format!(
            "custodian {i} of {count}: component {i} (64 hex digits)"
        ));
        let line = read_line(&format!("component {i}"))?;
        let component = Component::from_hex(&line).map_err(|e| {
            refuse(
                e.code(),
                Stop::refused(format!("component {i}: {e}; nothing imported")),
            )
        })?;
        drop(line);
        prompt(&format!("custodian {i} of {count}: KCV of component {i}"));
        let typed = read_line(&format!("the KCV of component {i}"))?;
        let actual = component.kcv_cmac();
        if normalize_kcv(&typed) != kcv::display(&actual) {
            return Err(refuse(
                "component_kcv_mismatch",
                Stop::refused(format!(
                    "component {i}: its KCV does not match the one entered; nothing imported"
                )),
            ));
        }
        if let Some(j) = kcvs.iter().position(|k| *k == actual) {
            return Err(refuse(
                "component_repeated",
                Stop::refused(format!(
                    "component {i} is the same as component {}; nothing imported",
                    j + 1
                )),
            ));
        }
        eprintln!(
            "payhsm: component {i} accepted (KCV {})",
            kcv::display(&actual)
        );
        kcvs.push(actual);
        components.push(component);
    }
    ceremony::combine(&components).map_err(|e| {
        session.refuse(
            action,
            e.code(),
            format!("label={label} components={count}"),
            Stop::refused(format!("combining the components: {e}; nothing imported")),
        )
    })
}

fn form(data_dir: &Path, count: u8, label: &str) -> Result<(), Stop> {
    let session = Session::open(data_dir, false)?;
    session.require_free(label)?;
    let key = read_components(&session, "ceremony_kek_formed", label, count)?;
    let kcv = kcv::display(&session.import(label, &key)?);
    drop(key);
    session.audit(
        "ceremony_kek_formed",
        Decision::Allow,
        "created",
        format!("label={label} kcv={kcv} components={count}"),
    )?;
    println!("KEK {label} formed; KCV {kcv}");
    Ok(())
}

fn generate(data_dir: &Path, label: &str) -> Result<(), Stop> {
    let session = Session::open(data_dir, false)?;
    session
        .runtime
        .block_on(session.hsm.generate_kek(label))
        .map_err(hsm_stop("generating the KEK"))?;
    let kcv = kcv::display(&session.kcv(label)?);
    session.audit(
        "ceremony_kek_generated",
        Decision::Allow,
        "created",
        format!("label={label} kcv={kcv}"),
    )?;
    println!("KEK {label} generated; KCV {kcv}");
    Ok(())
}

fn backup(data_dir: &Path, threshold: u8, shares: u8, count: u8, label: &str) -> Result<(), Stop> {
    if threshold > shares {
        return Err(Stop::error(format!(
            "--threshold {threshold} is more than --shares {shares}"
        )));
    }
    let session = Session::open(data_dir, false)?;
    let in_token = session.kcv(label)?;
    let action = "ceremony_backup_split";
    let key = read_components(&session, action, label, count)?;
    let kcv = kcv::display(&key.kcv_cmac());
    if key.kcv_cmac() != in_token {
        return Err(session.refuse(
            action,
            "kcv_mismatch",
            format!(
                "label={label} kcv={kcv} token_kcv={}",
                kcv::display(&in_token)
            ),
            Stop::refused(format!(
                "the components form a key with KCV {kcv}, not KEK {label:?} (KCV {}); no \
                 shares made",
                kcv::display(&in_token)
            )),
        ));
    }
    let split = ceremony::split(key.expose_secret(), threshold, shares)
        .map_err(|e| Stop::error(format!("splitting: {e}")))?;
    drop(key);
    for share in &split {
        let head = format!("share {} of {shares}: ", share.x());
        print_parts(&[&head, share.to_transcript().as_str()])?;
    }
    println!("KEK {label} KCV {kcv} ({threshold} of {shares} shares recover it)");
    session.audit(
        action,
        Decision::Allow,
        "ok",
        format!("label={label} kcv={kcv} threshold={threshold} shares={shares}"),
    )?;
    Ok(())
}

fn restore(data_dir: &Path, count: u8, label: &str, expect_kcv: &str) -> Result<(), Stop> {
    let expected = normalize_kcv(expect_kcv);
    if expected.len() != 10 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Stop::error(
            "--expect-kcv takes the 10 hex digits of the CMAC KCV",
        ));
    }
    let session = Session::open(data_dir, false)?;
    session.require_free(label)?;
    let action = "ceremony_kek_restored";
    if crate::isolation::stdin_is_terminal() {
        eprintln!("payhsm: input is not echoed");
    }
    let mut shares: Vec<Share> = Vec::with_capacity(usize::from(count));
    for i in 1..=count {
        prompt(&format!("share line {i} of {count}"));
        let line = read_line(&format!("share line {i}"))?;
        // Accept the line as `backup` printed it, `share x of N: ` prefix included.
        let text = line
            .find(TRANSCRIPT_TAG)
            .and_then(|at| line.get(at..))
            .unwrap_or(line.as_str());
        let share = Share::from_transcript(text).map_err(|e| {
            session.refuse(
                action,
                e.code(),
                format!("label={label} line={i}"),
                Stop::refused(format!("share line {i}: {e}; nothing imported")),
            )
        })?;
        eprintln!("payhsm: share {} accepted", share.x());
        shares.push(share);
    }
    let secret = ceremony::recover(&shares).map_err(|e| {
        session.refuse(
            action,
            e.code(),
            format!("label={label} shares={count}"),
            Stop::refused(format!("recovering: {e}; nothing imported")),
        )
    })?;
    drop(shares);
    let key = KeyMaterial::try_from_slice(&secret)
        .map_err(|e| Stop::refused(format!("the recovered key: {e}; nothing imported")))?;
    drop(secret);
    let kcv = kcv::display(&key.kcv_cmac());
    if kcv != expected {
        return Err(session.refuse(
            action,
            "kcv_mismatch",
            format!("label={label} kcv={kcv} expected={expected}"),
            Stop::refused(format!(
                "the recovered key has KCV {kcv}, not {expected}; nothing imported"
            )),
        ));
    }
    session.import(label, &key)?;
    drop(key);
    session.audit(
        action,
        Decision::Allow,
        "created",
        format!("label={label} kcv={kcv} shares={count}"),
    )?;
    println!("KEK {label} restored; KCV {kcv}");
    Ok(())
}
