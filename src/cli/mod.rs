//! The `payhsm` command: an API v1 client over mTLS, the dev PKI and the audit tools.
//!
//! ```text
//! payhsm tokens create --pan - --domain D [--exp-month M --exp-year Y]   # PAN on stdin
//! payhsm tokens detokenize --token T --domain D
//! payhsm tokens get|suspend|resume|delete T --domain D
//! payhsm tokens import FILE --domain D --mapping OUT [--errors ERR] [--batch N]
//! payhsm health [--ready | --metrics]
//! payhsm pki dev [--out keys-sample]
//! payhsm audit export --data-dir DIR [--out FILE] [--user-pin-fd FD] | verify FILE [--public-key FILE]
//! payhsm webauthn verify CASE.json [--anchors DIR]
//! payhsm authz verify JWS|- --jwks FILE|https://host:port/v1/keys/jwks
//! payhsm ceremony init --data-dir DIR --token-label T [--module SO] [--slot ID]
//!                      [--so-pin-fd FD] [--user-pin-fd FD] [--custodian C]...
//! payhsm ceremony init --data-dir DIR --dev                                # DEV ONLY
//! payhsm ceremony kek components new --count N
//! payhsm ceremony kek form --data-dir DIR --components N --label L        # stdin
//! payhsm ceremony kek generate --data-dir DIR --label L
//! payhsm ceremony backup --data-dir DIR --threshold M --shares N --components K --label L
//! payhsm ceremony restore --data-dir DIR --shares M --label L --expect-kcv KCV
//! # form, generate, backup, restore also take [--user-pin-fd FD] [--custodian C]...
//! #   [--policies DIR]; the custodians are required on a token made with --token-label
//! payhsm keys list [--json]
//! payhsm keys rotate --purpose data|authorization-signing                 # two custodians
//! payhsm keys activate|retire|destroy --purpose P --key-version N         # two custodians
//! payhsm keys rewrap [--batch N]
//! payhsm bench --scenario all|NAME --connections C (--duration S | --requests N) [--json]
//!              [--url URL]...                                 # one per replica, round-robin
//! ```
//! Every API subcommand takes `--url`, `--ca`, `--cert`, `--key`, `--http2`, `--timeout`;
//! `--url` once, except for `bench`.
//! Exit codes: 0 on 2xx, 1 on an API error (code and message on stderr), 2 on usage,
//! file or connection errors.
//!
//! The only PAN this command ever prints is the detokenize answer on stdout, which is its
//! purpose; request bodies are never printed or logged.

mod args;
mod audit;
mod authz;
mod bench;
mod calls;
mod ceremony;
mod import;
mod keys;
mod output;
mod report;
mod session;
mod webauthn;

pub use args::{
    AuditArgs, AuditCommand, AuthzArgs, AuthzCommand, BenchArgs, CeremonyArgs, CeremonyCommand,
    Cli, Command, ComponentsArgs, ComponentsCommand, ConnectArgs, CreateArgs, CustodianArgs,
    DetokenizeArgs, HealthArgs, ImportArgs, InitArgs, KekArgs, KekCommand, KeyPurposeArg, KeysArgs,
    KeysCommand, PanInput, PkiArgs, PkiCommand, Scenarios, TokenArgs, TokenRef, TokensArgs,
    TokensCommand, WebauthnArgs, WebauthnCommand,
};
pub use calls::ApiCall;
pub use output::{CliError, EXIT_API_ERROR, EXIT_OK, EXIT_USAGE};

use crate::client::Client;
use args::{url_occurrences, URL_ONCE};
use clap::Parser;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

/// Parses the process arguments, runs the command and returns the exit code.
pub fn main() -> i32 {
    main_from(std::env::args_os().collect())
}

/// Parses `argv` (with the program name), runs the command and returns the exit code.
fn main_from(argv: Vec<OsString>) -> i32 {
    match Cli::try_parse_from(&argv) {
        // clap keeps only the innermost of a global option given at two levels
        // (`tokens --url A get --url B`), so a repeat is counted on the command line itself.
        Ok(cli) if !matches!(cli.command, Command::Bench(_)) && url_occurrences(&argv) > 1 => {
            output::fail(&CliError::Usage(URL_ONCE.to_owned()))
        }
        Ok(cli) => run(cli),
        Err(e) => {
            let _ = e.print();
            if e.use_stderr() {
                EXIT_USAGE
            } else {
                // --help and --version
                EXIT_OK
            }
        }
    }
}

/// Runs a parsed command and returns the exit code.
pub fn run(cli: Cli) -> i32 {
    let connect = &cli.connect;
    match cli.command {
        Command::Tokens(TokensArgs {
            command: TokensCommand::Import(args),
        }) => import::run(connect, &args),
        Command::Tokens(args) => match calls::tokens_call(args.command) {
            Ok(call) => execute(connect, call),
            Err(e) => output::fail(&e),
        },
        Command::Authorizations(args) => match calls::authorizations_call(args.command) {
            Ok(call) => execute(connect, call),
            Err(e) => output::fail(&e),
        },
        Command::Devices(args) => match calls::devices_call(args.command) {
            Ok(call) => execute(connect, call),
            Err(e) => output::fail(&e),
        },
        Command::Health(args) => execute(connect, calls::health_call(&args)),
        Command::Openapi => execute(connect, calls::openapi_call()),
        Command::Pki(PkiArgs {
            command: PkiCommand::Dev { out },
        }) => pki_dev(&out),
        Command::Audit(args) => audit::run(&args, connect),
        Command::Webauthn(args) => webauthn::run(&args),
        Command::Authz(args) => authz::run(&args, connect),
        Command::Ceremony(args) => ceremony::run(&args),
        Command::Keys(args) => keys::run(&args, connect),
        Command::Bench(args) => bench::run(&args, connect),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "payhsm", &mut std::io::stdout());
            EXIT_OK
        }
    }
}

/// Connects, sends `call` on a current-thread runtime and prints the answer.
fn execute(connect: &ConnectArgs, call: ApiCall) -> i32 {
    let opts = match connect.client_options() {
        Ok(o) => o,
        Err(e) => return output::fail(&e),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return output::fail(&CliError::Usage(format!("starting the runtime: {e}"))),
    };
    let timeout = Duration::from_secs(connect.timeout);
    let result = runtime.block_on(async {
        let exchange = async {
            let mut client = Client::connect(&opts).await?;
            // The Vec moves into the client, which wipes it; the empty shell stays here.
            let body = call.body.map(|mut b| std::mem::take(&mut *b));
            client.request(call.method, &call.path, body).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(CliError::from),
            Err(_) => Err(CliError::Usage(format!(
                "no answer from {} within {}s",
                opts.url, connect.timeout
            ))),
        }
    });
    match result {
        Ok(response) => output::report(response),
        Err(e) => output::fail(&e),
    }
}

/// `payhsm pki dev`: regenerates the dev PKI.
fn pki_dev(out: &Path) -> i32 {
    match crate::pki::generate_dev_pki(out) {
        Ok(_) => {
            eprintln!("payhsm: dev PKI written to {}", out.display());
            EXIT_OK
        }
        Err(e) => output::fail(&CliError::Usage(format!("pki dev: {e}"))),
    }
}

#[cfg(test)]
mod tests;
