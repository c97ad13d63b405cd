//! `payhsm ceremony`: key ceremonies on the HSM host.
//!
//! Components, their KCVs and share transcripts are read from stdin one line at a time,
//! straight into zeroizing buffers ([`crate::isolation::read_secret_line`], no echo on a
//! terminal); PINs from a file descriptor or the terminal, the same way ([`input`]); prompts
//! go to stderr. Components and shares are printed on stdout only by the commands whose
//! purpose that is (`kek components new`, `backup`); nothing secret is ever written to a file,
//! a log, an error message or the audit log: only labels, KCVs, counts, component numbers,
//! the custodians' identities and the token's identity.

mod init;
mod input;
mod session;

pub(in crate::cli) use session::{export_token_audit, report_token_audit};

use super::args::{
    CeremonyArgs, CeremonyCommand, ComponentsCommand, CustodianArgs, KekArgs, KekCommand, TokenArgs,
};
use super::{EXIT_API_ERROR, EXIT_OK, EXIT_USAGE};
use crate::ceremony::{self, kcv, Component, KeyMaterial, Share, TRANSCRIPT_TAG};
use crate::keys::HsmError;
use input::{prompt, read_line};
use session::{DataDir, Session};
use std::io::Write as _;

/// Why a ceremony stopped: the exit code and a message that never holds a secret.
struct Stop {
    code: i32,
    message: String,
}

/// The shape of a backup: M of N shares of a key entered as K components.
struct Split {
    threshold: u8,
    shares: u8,
    components: u8,
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
        e => Stop::error(format!("{what}: {}", crate::fault::Chain(&e))),
    }
}

/// Runs a ceremony subcommand and returns the exit code.
pub fn run(args: &CeremonyArgs) -> i32 {
    let result = match &args.command {
        CeremonyCommand::Init(init) => init::run(init),
        CeremonyCommand::Tokens { module } => init::tokens(module.as_deref()),
        CeremonyCommand::Kek(KekArgs { command }) => match command {
            KekCommand::Components(c) => match c.command {
                ComponentsCommand::New { count } => components_new(count),
            },
            KekCommand::Form {
                token,
                components,
                label,
                custodians,
            } => form(token, *components, label, custodians),
            KekCommand::Generate {
                token,
                label,
                custodians,
            } => generate(token, label, custodians),
        },
        CeremonyCommand::Backup {
            token,
            threshold,
            shares,
            components,
            label,
            custodians,
        } => backup(
            token,
            Split {
                threshold: *threshold,
                shares: *shares,
                components: *components,
            },
            label,
            custodians,
        ),
        CeremonyCommand::Restore {
            token,
            shares,
            label,
            expect_kcv,
            custodians,
        } => restore(token, *shares, label, expect_kcv, custodians),
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(stop) => {
            eprintln!("payhsm: {}", stop.message);
            stop.code
        }
    }
}

/// Opens the data directory's session with the custodians who enter `per_entry` values.
fn open(
    token: &TokenArgs,
    custodians: &CustodianArgs,
    per_entry: Option<(u8, &str)>,
) -> Result<Session, Stop> {
    let kind = DataDir::detect(&token.data_dir)?;
    // Who, before the PIN and before anyone types a component.
    let custodians = kind.custodians(custodians, per_entry)?;
    Session::open(token, &kind, custodians)
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

/// A KCV as typed: hex digits, spaces ignored, either case.
fn normalize_kcv(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Who enters entry `i` of `count`: the named custodian, or "custodian i of N".
fn whose_turn(session: &Session, i: u8, count: u8) -> String {
    match session.custodian(i) {
        Some(c) => format!("{} ({i} of {count})", c.name),
        None => format!("custodian {i} of {count}"),
    }
}

/// The audit detail naming the custodian of entry `i`, when named.
fn custodian_detail(session: &Session, i: u8) -> String {
    session
        .custodian(i)
        .map(|c| format!(" custodian={}", c.name))
        .unwrap_or_default()
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
                format!(
                    "label={label} component={i} of={count}{}",
                    custodian_detail(session, i)
                ),
                stop,
            )
        };
        let who = whose_turn(session, i, count);
        prompt(&format!("{who}: component {i} (64 hex digits)"));
        let line = read_line(&format!("component {i}"))?;
        let component = Component::from_hex(&line).map_err(|e| {
            refuse(
                e.code(),
                Stop::refused(format!("component {i}: {e}; nothing imported")),
            )
        })?;
        drop(line);
        prompt(&format!("{who}: KCV of component {i}"));
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

fn form(token: &TokenArgs, count: u8, label: &str, who: &CustodianArgs) -> Result<(), Stop> {
    let session = open(token, who, Some((count, "component")))?;
    session.require_free(label)?;
    let key = read_components(&session, "ceremony_kek_formed", label, count)?;
    let kcv = kcv::display(&session.import(label, &key)?);
    drop(key);
    session.audit(
        "ceremony_kek_formed",
        "created",
        format!("label={label} kcv={kcv} components={count}"),
    )?;
    println!("KEK {label} formed; KCV {kcv}");
    Ok(())
}

fn generate(token: &TokenArgs, label: &str, who: &CustodianArgs) -> Result<(), Stop> {
    let session = open(token, who, None)?;
    session
        .runtime
        .block_on(session.hsm.generate_kek(label))
        .map_err(hsm_stop("generating the KEK"))?;
    let kcv = kcv::display(&session.kcv(label)?);
    session.audit(
        "ceremony_kek_generated",
        "created",
        format!("label={label} kcv={kcv}"),
    )?;
    println!("KEK {label} generated; KCV {kcv}");
    Ok(())
}

fn backup(token: &TokenArgs, split: Split, label: &str, who: &CustodianArgs) -> Result<(), Stop> {
    let Split {
        threshold,
        shares,
        components: count,
    } = split;
    if threshold > shares {
        return Err(Stop::error(format!(
            "--threshold {threshold} is more than --shares {shares}"
        )));
    }
    let session = open(token, who, Some((count, "component")))?;
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
        "ok",
        format!("label={label} kcv={kcv} threshold={threshold} shares={shares}"),
    )?;
    Ok(())
}

fn restore(
    token: &TokenArgs,
    count: u8,
    label: &str,
    expect_kcv: &str,
    who: &CustodianArgs,
) -> Result<(), Stop> {
    let expected = normalize_kcv(expect_kcv);
    if expected.len() != 10 || !expected.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Stop::error(
            "--expect-kcv takes the 10 hex digits of the CMAC KCV",
        ));
    }
    let session = open(token, who, Some((count, "share")))?;
    session.require_free(label)?;
    let action = "ceremony_kek_restored";
    if crate::isolation::stdin_is_terminal() {
        eprintln!("payhsm: input is not echoed");
    }
    let mut shares: Vec<Share> = Vec::with_capacity(usize::from(count));
    for i in 1..=count {
        prompt(&format!(
            "{}: share line {i} of {count}",
            whose_turn(&session, i, count)
        ));
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
                format!("label={label} line={i}{}", custodian_detail(&session, i)),
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
        "created",
        format!("label={label} kcv={kcv} shares={count}"),
    )?;
    println!("KEK {label} restored; KCV {kcv}");
    Ok(())
}
