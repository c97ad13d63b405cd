//! `payhsm ceremony init`: initialize a PKCS#11 token and bind a data directory to it, or
//! (`--dev`) prepare a DEV ONLY data directory.

use super::input::{PinBounds, PinEntry, MAX_LINE, MIN_PIN_LEN};
use super::session::{named, Binding, Dev, Opening, Session, BINDING_FILE};
use super::{hsm_stop, Stop};
use crate::cli::args::InitArgs;
use crate::config::defaults;
use crate::keys::{HsmError, Module, TokenIdentity};
use std::path::Path;

/// Runs `ceremony init`.
pub(super) fn run(args: &InitArgs) -> Result<(), Stop> {
    match &args.token_label {
        _ if args.dev => dev(args),
        Some(label) => token(args, label),
        None => Err(Stop::error(
            "give --token-label LABEL, or --dev for a dev directory",
        )),
    }
}

/// Runs `ceremony tokens`: one line per slot with a token, in the module's order.
pub(super) fn tokens(module: Option<&Path>) -> Result<(), Stop> {
    let path = module.unwrap_or(Path::new(defaults::PKCS11_MODULE));
    let module = Module::load(path).map_err(hsm_stop("loading the PKCS#11 module"))?;
    let tokens = module.tokens().map_err(hsm_stop("listing the tokens"))?;
    for (id, initialized) in &tokens {
        let state = if *initialized {
            "initialized"
        } else {
            "uninitialized"
        };
        println!(
            "slot {}: {state} label={:?} serial={:?} manufacturer={:?} model={:?}",
            id.slot, id.label, id.serial, id.manufacturer, id.model
        );
    }
    if tokens.is_empty() {
        eprintln!("payhsm: {} has no slot with a token", path.display());
    }
    Ok(())
}

fn dev(args: &InitArgs) -> Result<(), Stop> {
    let custodians = named(&args.custodians, None)?;
    let session = Session::open_dev(
        &args.data_dir,
        Dev::Create {
            module: args.module.as_deref(),
        },
        custodians,
    )?;
    drop(session);
    eprintln!(
        "payhsm: DEV ONLY: {} ready (token {:?}, public dev PINs)",
        args.data_dir.display(),
        defaults::DEV_TOKEN_LABEL
    );
    Ok(())
}

fn token(args: &InitArgs, label: &str) -> Result<(), Stop> {
    if label.is_empty() || label.len() > 32 {
        return Err(Stop::error("--token-label takes 1 to 32 bytes"));
    }
    let dir = &args.data_dir;
    if dir.join(BINDING_FILE).exists() {
        return Err(Stop::refused(format!(
            "{} is already bound to a token ({BINDING_FILE}); nothing initialized",
            dir.display()
        )));
    }
    if dir.join("softhsm2.conf").exists() {
        return Err(Stop::error(format!(
            "{} is a DEV ONLY data directory: use a new directory for a real token",
            dir.display()
        )));
    }
    // Who, before anything: an unknown custodian stops here.
    let custodians = named(&args.custodians, None)?;
    let module_path = args
        .module
        .as_deref()
        .unwrap_or(Path::new(defaults::PKCS11_MODULE));
    // Never SOFTHSM2_CONF here: the module reads the operator's own configuration.
    let module = Module::load(module_path).map_err(hsm_stop("loading the PKCS#11 module"))?;
    let free = module.free_slot(label, args.slot).map_err(|e| match e {
        HsmError::TokenExists(what) => Stop::refused(format!(
            "{what} is already initialized; initializing it again would destroy its keys, \
             which payhsm never does; nothing initialized"
        )),
        e => Stop::error(format!("choosing the token to initialize: {e}")),
    })?;
    let bounds = PinBounds {
        min: free.min_pin_len.max(MIN_PIN_LEN),
        max: free.max_pin_len.min(MAX_LINE),
    };
    if bounds.max < bounds.min {
        return Err(Stop::error(format!(
            "the token in slot {} takes PINs of at most {} bytes, below payhsm's minimum of {}",
            free.id(),
            free.max_pin_len,
            MIN_PIN_LEN
        )));
    }
    if crate::isolation::stdin_is_terminal() && args.so_pin_fd.is_none() {
        eprintln!(
            "payhsm: initializing slot {} as token {label:?}: PINs are not echoed",
            free.id()
        );
    }
    let so = PinEntry {
        what: "SO PIN",
        flag: "--so-pin-fd",
        fd: args.so_pin_fd,
    }
    .read_new(bounds)?;
    let user = PinEntry {
        what: "user PIN",
        flag: "--user-pin-fd",
        fd: args.user_pin_fd,
    }
    .read_new(bounds)?;
    if so.same_as(&user) {
        return Err(Stop::refused(
            "the user PIN is the SO PIN: the two roles need different PINs; nothing initialized",
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| Stop::error(format!("{}: {e}", dir.display())))?;
    // The audit log opens before the token changes, so a store that cannot be opened stops
    // the ceremony with the token untouched.
    let opening = Opening::new(dir, false)?;
    let identity = module
        .init_token(&free, label, &so, &user)
        .map_err(hsm_stop("initializing the token"))?;
    drop(so);
    Binding::new(module_path, &identity).write(dir)?;
    // Logging in as the user proves the user PIN was set.
    let session = opening.login(&module, label, user, custodians)?;
    session.audit(
        "ceremony_token_initialized",
        "created",
        describe(&identity, module_path),
    )?;
    drop(session);
    print_identity(&identity, dir);
    Ok(())
}

/// The audit detail of a token's identity (free-text fields quoted).
fn describe(id: &TokenIdentity, module: &Path) -> String {
    format!(
        "label={:?} serial={:?} manufacturer={:?} model={:?} slot={} module={:?}",
        id.label,
        id.serial,
        id.manufacturer,
        id.model,
        id.slot,
        module.display().to_string()
    )
}

fn print_identity(id: &TokenIdentity, dir: &Path) {
    println!("token initialized: {}", id.label);
    println!("  manufacturer: {}", id.manufacturer);
    println!("  model:        {}", id.model);
    println!("  serial:       {}", id.serial);
    println!("  slot:         {}", id.slot);
    println!("  data dir:     {}", dir.display());
}
