//! The `payhsm` command line, as clap derive types. Parsing only: handlers live beside it.

use super::output::CliError;
use crate::client::{ClientIdentity, ClientOptions};
use clap::{ArgAction, Args, Parser, Subcommand};
use std::fmt;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// payhsm: client, PKI and audit tools for the payhsm daemon.
#[derive(Debug, Parser)]
#[command(name = "payhsm", version, propagate_version = true)]
pub struct Cli {
    /// How to reach the daemon: global, so accepted before or after the subcommand
    /// (`payhsm --cert C tokens get T` and `payhsm tokens get T --cert C`).
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Tokenize, detokenize and manage card tokens (API v1, over mTLS).
    #[command(subcommand_required = true)]
    Tokens(TokensArgs),
    /// List, read and revoke enrolled payment devices (API v1, over mTLS).
    #[command(subcommand_required = true)]
    Devices(DevicesArgs),
    /// Ask the daemon for liveness, readiness or metrics.
    Health(HealthArgs),
    /// Development PKI.
    #[command(subcommand_required = true)]
    Pki(PkiArgs),
    /// Export and verify the tamper-evident audit log.
    #[command(subcommand_required = true)]
    Audit(AuditArgs),
    /// Examine captured WebAuthn / Secure Payment Confirmation / App Attest responses.
    #[command(subcommand_required = true)]
    Webauthn(WebauthnArgs),
    /// Signed payment authorizations (compact JWS, ES256).
    #[command(subcommand_required = true)]
    Authz(AuthzArgs),
    /// Payment challenges and authorizations (API v1, over mTLS).
    #[command(subcommand_required = true)]
    Authorizations(AuthorizationsArgs),
    /// Key ceremonies on the HSM host: KEK components, forming, backup shares, restore.
    #[command(subcommand_required = true)]
    Ceremony(CeremonyArgs),
    /// Key lifecycle in a running daemon: list, rotate, activate, retire, destroy (each change
    /// needs two custodians), rewrap.
    #[command(subcommand_required = true)]
    Keys(KeysArgs),
    /// Print the daemon's API contract, the OpenAPI 3.1 document (GET /v1/openapi.json).
    Openapi,
    /// Print a shell completion script (`payhsm completions bash > /etc/bash_completion.d/payhsm`).
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Load generator: C keep-alive mTLS connections against a running daemon, latency per
    /// request in an HDR histogram (see docs/benchmarks.md).
    Bench(BenchArgs),
}

/// `payhsm bench`.
///
/// Exit 0 when every scenario ran with an error rate at most `--max-error-rate`; 1 when one
/// exceeded it; 2 on usage errors or when a scenario's setup failed.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// `all` (each scenario in turn, not `idle`), or one of: noop, tokenize-new,
    /// tokenize-existing, detokenize, metadata, lifecycle, authorize, handshake, idle.
    #[arg(long, default_value = "all", value_parser = Scenarios::parse_arg)]
    pub scenario: Scenarios,
    /// Concurrent connections, each driven by its own task.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub connections: u32,
    /// Length of each scenario's timed phase (10 s when neither this nor --requests is given;
    /// for `idle`, how long the connections stay idle).
    #[arg(long, value_name = "SECONDS", conflicts_with = "requests", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration: Option<u64>,
    /// Stop each scenario after this many operations over all connections.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub requests: Option<u64>,
    /// Untimed operations before each timed phase, on the same connections; 0 for none.
    #[arg(long, value_name = "SECONDS", default_value_t = 2)]
    pub warmup: u64,
    /// One JSON object per scenario per line on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Token domain. `authorize` needs one where the policy lets the gateway authorize
    /// payments (the sample policy: shop, acme-shop).
    #[arg(long, default_value = "shop")]
    pub domain: String,
    /// Client certificate of the `detokenize` scenario's timed requests (PEM).
    #[arg(long, default_value = "keys-sample/clients/vault-reader.pem")]
    pub reader_cert: PathBuf,
    /// Client private key of the `detokenize` scenario's timed requests (PEM).
    #[arg(long, default_value = "keys-sample/clients/vault-reader.key")]
    pub reader_key: PathBuf,
    /// Cards tokenized during setup for tokenize-existing, detokenize, metadata and lifecycle
    /// (over all connections; at least one per connection).
    #[arg(long, default_value_t = 1000)]
    pub pool: usize,
    /// Seed of the generated test PANs (a random run number is mixed in, so reruns
    /// tokenize new cards).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The daemon's process id: `idle` reports its VmRSS (from /proc/PID/status).
    #[arg(long, value_name = "PID")]
    pub server_pid: Option<u32>,
    /// Hold this many TCP connections open that never send a ClientHello, each reopened
    /// when the daemon closes it, during the warm-up and the timed phase (loopback only).
    /// With several `--url`s, only the first is flooded.
    #[arg(long, value_name = "SOCKETS", value_parser = clap::value_parser!(u32).range(1..=60_000))]
    pub flood: Option<u32>,
    /// The loopback address the flood connects from.
    #[arg(long, default_value = "127.0.0.2", requires = "flood")]
    pub flood_from: std::net::Ipv4Addr,
    /// Exit 1 when a scenario's failed operations exceed this fraction of its attempts.
    #[arg(long, default_value_t = 0.001, value_name = "FRACTION")]
    pub max_error_rate: f64,
}

/// The scenarios `--scenario` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scenarios(pub Vec<crate::bench::Scenario>);

impl Scenarios {
    fn parse_arg(s: &str) -> Result<Self, String> {
        crate::bench::Scenario::parse_list(s).map(Self)
    }
}

/// `payhsm ceremony ...`.
#[derive(Debug, Args)]
pub struct CeremonyArgs {
    /// The ceremony.
    #[command(subcommand)]
    pub command: CeremonyCommand,
}

/// Key ceremonies. Components, KCVs and share transcripts are read from stdin, one per line
/// (without echo when stdin is a terminal); prompts go to stderr. PINs are read from a file
/// descriptor (`--user-pin-fd 3` with `3<file`) or prompted without echo, never taken from
/// the command line or the environment. Exit 0 on success, 1 when a check refuses (nothing
/// imported or initialized), 2 on usage, file or HSM errors.
#[derive(Debug, Subcommand)]
pub enum CeremonyCommand {
    /// Initialize a PKCS#11 token (SO PIN, then the user PIN set by the SO) and bind a data
    /// directory to it; or, with `--dev`, prepare a DEV ONLY data directory.
    Init(InitArgs),
    /// List the tokens of a PKCS#11 module, one line per slot: its ID, whether the token is
    /// initialized, and its label, serial, manufacturer and model. Changes nothing and needs
    /// no PIN: what the custodians check before `init --slot`.
    Tokens {
        /// The PKCS#11 module (default: SoftHSM2's; for SoftHSM2 the token store is the one
        /// `SOFTHSM2_CONF` names).
        #[arg(long, value_name = "PATH")]
        module: Option<PathBuf>,
    },
    /// Key-encrypting key ceremonies.
    #[command(subcommand_required = true)]
    Kek(KekArgs),
    /// Split a KEK, entered as its components, into M-of-N Shamir shares printed on stdout.
    Backup {
        /// The data directory and the user PIN.
        #[command(flatten)]
        token: TokenArgs,
        /// Shares needed to recover (M).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=255))]
        threshold: u8,
        /// Shares to make (N).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=255))]
        shares: u8,
        /// How many components the custodians enter.
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=9))]
        components: u8,
        /// The KEK's label in the token (the components must form it: KCVs compared).
        #[arg(long)]
        label: String,
        /// The custodians entering the components.
        #[command(flatten)]
        custodians: CustodianArgs,
    },
    /// Recover a KEK from M share transcripts on stdin and import it under `--label`.
    Restore {
        /// The data directory and the user PIN.
        #[command(flatten)]
        token: TokenArgs,
        /// How many share lines to read (M).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=255))]
        shares: u8,
        /// The label to import the KEK under (must be free).
        #[arg(long)]
        label: String,
        /// The KEK's CMAC KCV (10 hex digits) recorded at backup; checked before import.
        #[arg(long, value_name = "KCV")]
        expect_kcv: String,
        /// The custodians entering the share lines, one per share.
        #[command(flatten)]
        custodians: CustodianArgs,
    },
}

/// `payhsm ceremony init`: `--token-label` for a real token, or `--dev`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["dev", "token_label"])))]
pub struct InitArgs {
    /// The data directory to create (its audit log records the ceremonies on the token).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// DEV ONLY: a token with the public dev PINs, as `payhsmd dev` makes (SoftHSM2 under
    /// the data directory unless `--module` names another). It protects nothing.
    #[arg(long, conflicts_with_all = ["token_label", "slot", "so_pin_fd", "user_pin_fd"])]
    pub dev: bool,
    /// The label of the new token (1 to 32 bytes). A token with this label must not exist:
    /// an initialized token is never initialized again (that would destroy its keys).
    #[arg(long, value_name = "LABEL")]
    pub token_label: Option<String>,
    /// The PKCS#11 module (default: SoftHSM2's; for SoftHSM2 the token store is the one
    /// `SOFTHSM2_CONF` names). With `--dev`: the module to make the dev token in (default:
    /// the one the data directory was made with, else SoftHSM2, whose token store is then
    /// under the data directory), recorded in the data directory as `payhsmd dev --module`
    /// does. Another module reads its own configuration (kryoptic: the file `KRYOPTIC_CONF`
    /// names).
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// The slot ID of the token to initialize; by default the first uninitialized one.
    #[arg(long, value_name = "ID")]
    pub slot: Option<u64>,
    /// Read the new SO PIN (one line) from this open file descriptor, e.g. `3<so-pin`;
    /// otherwise it is typed twice at the terminal, without echo.
    #[arg(long, value_name = "FD", value_parser = parse_pin_fd)]
    pub so_pin_fd: Option<i32>,
    /// Read the new user PIN (one line) from this open file descriptor (the same as
    /// `--so-pin-fd` reads its next line); otherwise typed twice at the terminal.
    #[arg(long, value_name = "FD", value_parser = parse_pin_fd)]
    pub user_pin_fd: Option<i32>,
    /// Who initializes the token (optional, recorded in the audit log).
    #[command(flatten)]
    pub custodians: CustodianArgs,
}

/// The data directory a ceremony works on, and where the token's user PIN comes from.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The data directory, made by `payhsm ceremony init` (or `payhsmd dev`).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Read the token's user PIN (one line) from this open file descriptor, e.g. `3<pin`;
    /// otherwise it is prompted at the terminal without echo. A dev data directory uses the
    /// public dev PIN and takes no PIN.
    #[arg(long, value_name = "FD", value_parser = parse_pin_fd)]
    pub user_pin_fd: Option<i32>,
}

/// The custodians taking part in a ceremony.
#[derive(Debug, Args)]
pub struct CustodianArgs {
    /// A custodian, in entry order: one per component (per share line for `restore`). A
    /// short name (`custodian-1`) or an identity of the custodian group of the identities
    /// file; each distinct. Required on a token made by `ceremony init --token-label`.
    #[arg(long = "custodian", value_name = "NAME")]
    pub names: Vec<String>,
    /// The policy folder whose `identities.toml` lists the custodians.
    #[arg(long, value_name = "DIR", default_value = "policies")]
    pub policies: PathBuf,
}

/// A PIN file descriptor: an open descriptor other than stdout and stderr.
fn parse_pin_fd(s: &str) -> Result<i32, String> {
    match s.parse::<i32>() {
        Ok(1 | 2) => Err("stdout and stderr cannot carry a PIN".to_owned()),
        Ok(fd) if (0..=1023).contains(&fd) => Ok(fd),
        _ => Err("a file descriptor number, 0 or 3 to 1023".to_owned()),
    }
}

/// `payhsm ceremony kek ...`.
#[derive(Debug, Args)]
pub struct KekArgs {
    /// The KEK operation.
    #[command(subcommand)]
    pub command: KekCommand,
}

/// KEK ceremonies.
#[derive(Debug, Subcommand)]
pub enum KekCommand {
    /// Key components.
    #[command(subcommand_required = true)]
    Components(ComponentsArgs),
    /// Form a KEK from components entered by the custodians in turn, each with its KCV, and
    /// import it into the token.
    Form {
        /// The data directory and the user PIN.
        #[command(flatten)]
        token: TokenArgs,
        /// How many components.
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=9))]
        components: u8,
        /// The KEK's label in the token (must be free).
        #[arg(long)]
        label: String,
        /// The custodians entering the components.
        #[command(flatten)]
        custodians: CustodianArgs,
    },
    /// Generate a KEK inside the token and print its KCV.
    Generate {
        /// The data directory and the user PIN.
        #[command(flatten)]
        token: TokenArgs,
        /// The KEK's label in the token (must be free).
        #[arg(long)]
        label: String,
        /// Who generates it (optional, recorded in the audit log).
        #[command(flatten)]
        custodians: CustodianArgs,
    },
}

/// `payhsm ceremony kek components ...`.
#[derive(Debug, Args)]
pub struct ComponentsArgs {
    /// The component operation.
    #[command(subcommand)]
    pub command: ComponentsCommand,
}

/// Component operations.
#[derive(Debug, Subcommand)]
pub enum ComponentsCommand {
    /// Print N fresh random components with their KCVs, on stdout only.
    New {
        /// How many components (2 to 9).
        #[arg(long, value_parser = clap::value_parser!(u8).range(2..=9))]
        count: u8,
    },
}

/// `payhsm authz ...`.
#[derive(Debug, Args)]
pub struct AuthzArgs {
    /// The operation.
    #[command(subcommand)]
    pub command: AuthzCommand,
}

/// Authorization operations.
#[derive(Debug, Subcommand)]
pub enum AuthzCommand {
    /// Verify a signed authorization offline, as a gateway does. Prints the claims (JSON) and
    /// exits 0; prints `invalid: <code>` and exits 1 when the JWS is refused; exits 2 when the
    /// JWS or the JWKS cannot be read.
    Verify {
        /// The compact JWS, or `-` to read it from stdin.
        jws: String,
        /// The JWKS: a file, or an https URL fetched over mTLS with the connection options
        /// (e.g. https://127.0.0.1:8443/v1/keys/jwks).
        #[arg(long, value_name = "FILE|URL")]
        jwks: String,
        /// Clock skew tolerated between the signer and this host, in seconds (0 to 300): the
        /// JWS is refused as expired from `exp` + leeway on, and as issued in the future when
        /// `iat` (or `nbf`) is more than the leeway after now.
        #[arg(long, value_name = "SECONDS", default_value_t = 60,
            value_parser = clap::value_parser!(u16).range(0..=300))]
        leeway: u16,
        /// Verify as of this time (Unix seconds) instead of now: what the authorization was
        /// worth when it was used.
        #[arg(long, value_name = "UNIX_SECONDS")]
        at: Option<i64>,
    },
}

/// `payhsm authorizations ...`
#[derive(Debug, Args)]
pub struct AuthorizationsArgs {
    /// Connection options.
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// The operation.
    #[command(subcommand)]
    pub command: AuthorizationsCommand,
}

/// The payment authorization calls of API v1.
#[derive(Debug, Subcommand)]
pub enum AuthorizationsCommand {
    /// Ask for a challenge bound to one payment (POST /v1/authorizations/challenges).
    Challenge(PaymentChallengeArgs),
    /// Answer a challenge with the device's assertion (POST /v1/authorizations). Prints the
    /// signed authorization.
    Create(AuthorizeArgs),
    /// Look an authorization up by id (GET /v1/authorizations/{id}).
    Get {
        /// The authorization id.
        id: String,
    },
}

/// `payhsm authorizations challenge`
#[derive(Debug, Args)]
pub struct PaymentChallengeArgs {
    /// The token paid with.
    #[arg(long)]
    pub token: String,
    /// The token's domain.
    #[arg(long)]
    pub domain: String,
    /// The enrolled device that must confirm.
    #[arg(long)]
    pub device_id: String,
    /// The amount in minor units (1234 EUR is 12.34 EUR).
    #[arg(long)]
    pub amount: u64,
    /// ISO 4217 code.
    #[arg(long)]
    pub currency: String,
    /// The payee's name.
    #[arg(long)]
    pub payee: String,
    /// Who the authorization is for (signed as its `aud`).
    #[arg(long)]
    pub audience: Option<String>,
}

/// `payhsm authorizations create`: the assertion's fields, base64url without padding.
#[derive(Debug, Args)]
pub struct AuthorizeArgs {
    /// The challenge answered.
    #[arg(long)]
    pub challenge_id: String,
    /// The credential id.
    #[arg(long)]
    pub credential_id: String,
    /// authenticatorData.
    #[arg(long)]
    pub authenticator_data: String,
    /// clientDataJSON.
    #[arg(long)]
    pub client_data_json: String,
    /// The assertion signature.
    #[arg(long)]
    pub signature: String,
}

/// `payhsm webauthn ...`.
#[derive(Debug, Args)]
pub struct WebauthnArgs {
    /// The operation.
    #[command(subcommand)]
    pub command: WebauthnCommand,
}

/// WebAuthn operations.
#[derive(Debug, Subcommand)]
pub enum WebauthnCommand {
    /// Verify one captured case (the `shared/vectors/webauthn` case format) at the case's own
    /// verification time. Prints `accept` or `reject: <reason code>`; exit 0 accept, 1 reject,
    /// 2 when the case cannot be read.
    Verify {
        /// The case file (JSON).
        case: PathBuf,
        /// The folder of trust roots the case names as `roots/<file>`; by default the
        /// `roots` folder beside the case's folder.
        #[arg(long)]
        anchors: Option<PathBuf>,
        /// Also print the verdict's details (format, trust, flags) or the error message.
        #[arg(long, short)]
        verbose: bool,
        /// Google's Android attestation revocation list (JSON): an `android-key` chain with a
        /// listed certificate is rejected (`android_key_revoked`).
        #[arg(long, value_name = "JSON")]
        android_revocations: Option<PathBuf>,
    },
    /// FIDO Metadata Service BLOBs.
    #[command(subcommand)]
    Mds(MdsCommand),
}

/// `payhsm webauthn mds ...`
#[derive(Debug, Subcommand)]
pub enum MdsCommand {
    /// Verify a BLOB and describe it (JSON): whether its signature and chain verify, `no`,
    /// `nextUpdate`, whether it is stale, how many entries it has, and with --aaguid one
    /// entry's status history. Exit 0 when it verifies, 1 when it does not, 2 when a file
    /// cannot be read.
    Inspect {
        /// The BLOB (compact JWS).
        blob: PathBuf,
        /// The root its x5c chain must reach (default: GlobalSign Root CA - R3 from
        /// /etc/ssl/certs, the production root).
        #[arg(long, value_name = "PEM")]
        anchor: Option<PathBuf>,
        /// Describe this authenticator model's entry (8-4-4-4-12 form).
        #[arg(long, value_name = "ID")]
        aaguid: Option<String>,
    },
}

/// How to reach and authenticate to the daemon; on every API subcommand.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Connection options")]
pub struct ConnectArgs {
    /// Daemon base URL, https://host:port. Given once, except for `payhsm bench`, which takes
    /// it once per replica and spreads its connections over them round-robin.
    #[arg(
        long,
        value_name = "URL",
        env = "PAYHSM_URL",
        default_value = "https://127.0.0.1:8443",
        action = ArgAction::Append,
        global = true
    )]
    pub url: Vec<String>,
    /// CA certificate (PEM) the daemon's certificate must chain to.
    #[arg(
        long,
        env = "PAYHSM_CA",
        default_value = "keys-sample/ca.pem",
        global = true
    )]
    pub ca: PathBuf,
    /// Client certificate chain (PEM).
    #[arg(
        long,
        env = "PAYHSM_CERT",
        default_value = "keys-sample/clients/gateway.pem",
        global = true
    )]
    pub cert: PathBuf,
    /// Client private key (PEM).
    #[arg(
        long,
        env = "PAYHSM_KEY",
        default_value = "keys-sample/clients/gateway.key",
        global = true
    )]
    pub key: PathBuf,
    /// Use HTTP/2 (ALPN h2) instead of HTTP/1.1.
    #[arg(long, global = true)]
    pub http2: bool,
    /// Give up after this many seconds (connect and request together).
    #[arg(long, default_value_t = 30, value_name = "SECONDS", global = true)]
    pub timeout: u64,
}

/// The usage error of a `--url` given more than once to a subcommand that is not `bench`.
pub const URL_ONCE: &str = "--url is given once, except for `payhsm bench`";

/// How many times `argv` gives `--url` (as `--url V` or `--url=V`), up to a `--` that ends the
/// options.
pub fn url_occurrences(argv: &[std::ffi::OsString]) -> usize {
    argv.iter()
        .map(|a| a.as_encoded_bytes())
        .take_while(|a| *a != b"--")
        .filter(|a| *a == b"--url" || a.starts_with(b"--url="))
        .count()
}

impl ConnectArgs {
    /// The client options of a subcommand that talks to one daemon: refuses `--url` given more
    /// than once rather than pick one of them.
    pub fn client_options(&self) -> Result<ClientOptions, CliError> {
        match self.url.as_slice() {
            [url] => Ok(self.client_options_for(url)),
            [] => Err(CliError::Usage("--url is missing".to_owned())),
            _ => Err(CliError::Usage(URL_ONCE.to_owned())),
        }
    }

    /// The client options for `url`, with the CA, identity and HTTP version given.
    pub fn client_options_for(&self, url: &str) -> ClientOptions {
        ClientOptions {
            url: url.to_owned(),
            ca: self.ca.clone(),
            identity: Some(ClientIdentity {
                cert: self.cert.clone(),
                key: self.key.clone(),
            }),
            http2: self.http2,
        }
    }
}

/// `payhsm tokens ...`
#[derive(Debug, Args)]
pub struct TokensArgs {
    /// The token operation.
    #[command(subcommand)]
    pub command: TokensCommand,
}

/// The token operations of API v1.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Tokenize a PAN (POST /v1/tokens). Prefer `--pan -` and pipe the PAN on stdin.
    Create(CreateArgs),
    /// Return the PAN behind a token (POST /v1/tokens/detokenize). Prints the PAN.
    Detokenize(DetokenizeArgs),
    /// Show a token's metadata (GET /v1/tokens/{token}).
    Get(TokenRef),
    /// Suspend an active token (POST /v1/tokens/{token}/suspend).
    Suspend(TokenRef),
    /// Resume a suspended token (POST /v1/tokens/{token}/resume).
    Resume(TokenRef),
    /// Delete a token and wipe its ciphertext (DELETE /v1/tokens/{token}).
    Delete(TokenRef),
    /// Tokenize up to 500 cards in one call (POST /v1/tokens/batch): ITEMS is a file (or `-`
    /// for stdin) holding the JSON array of items, `[{"pan","exp_month","exp_year"}, ...]`.
    /// Prints each item's token or error code; never a PAN.
    Batch(TokenBatchArgs),
    /// Return the PANs behind up to 500 tokens in one call (POST
    /// /v1/tokens/detokenize/batch). Prints the PANs.
    DetokenizeBatch(DetokenizeBatchArgs),
    /// Tokenize the cards of another vault from a file (POST /v1/tokens/batch), writing a
    /// mapping of each card's ref to its token. Resumable: rerun with the same mapping file
    /// and the refs already in it are skipped. Never prints a PAN.
    Import(ImportArgs),
}

/// `payhsm tokens batch`
#[derive(Debug, Args)]
pub struct TokenBatchArgs {
    /// The items: a file holding a JSON array, or `-` to read it from stdin.
    #[arg(value_name = "ITEMS|-")]
    pub items: PathBuf,
    /// Token domain of every item.
    #[arg(long)]
    pub domain: String,
}

/// `payhsm tokens detokenize-batch`
#[derive(Debug, Args)]
pub struct DetokenizeBatchArgs {
    /// The tokens.
    #[arg(required = true, num_args = 1..=500)]
    pub tokens: Vec<String>,
    /// The tokens' domain.
    #[arg(long)]
    pub domain: String,
}

/// `payhsm tokens import`
///
/// Exit 0 when every card of the file is in the mapping, 1 when some line was refused (see
/// `--errors`) or the daemon refused a whole batch, 2 on file, usage or connection errors.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The cards: JSON lines `{"ref","pan","exp_month","exp_year"}`, or CSV with the header
    /// `ref,pan,exp_month,exp_year` (by the extension .csv/.jsonl, else the first line).
    pub file: PathBuf,
    /// Token domain of every card.
    #[arg(long)]
    pub domain: String,
    /// The mapping file: one JSON line `{"ref","token"}` per card, appended to; the refs it
    /// already holds are skipped.
    #[arg(long, value_name = "OUT")]
    pub mapping: PathBuf,
    /// The error file: one JSON line `{"line","ref","code"}` per refused line, rewritten on
    /// each run (default: on stderr). Never holds a PAN.
    #[arg(long, value_name = "ERR")]
    pub errors: Option<PathBuf>,
    /// Cards per batch call.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub batch: u16,
}

/// `payhsm tokens create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The card number, or `-` to read it from stdin (recommended: keeps it out of shell
    /// history and the process list).
    #[arg(long, value_name = "PAN|-", value_parser = PanInput::parse_arg)]
    pub pan: PanInput,
    /// Expiry month, 1 to 12.
    #[arg(long, requires = "exp_year", value_parser = clap::value_parser!(u8).range(1..=12))]
    pub exp_month: Option<u8>,
    /// Expiry year, four digits.
    #[arg(long, requires = "exp_month", value_parser = clap::value_parser!(u16).range(2000..=9999))]
    pub exp_year: Option<u16>,
    /// Token domain (tokens are convergent per domain).
    #[arg(long)]
    pub domain: String,
}

/// Where the PAN comes from: stdin (`-`) or the argument itself.
///
/// `Debug` never shows the digits; the literal is zeroized on drop.
#[derive(Clone, PartialEq, Eq)]
pub enum PanInput {
    /// `--pan -`: read one line from stdin.
    Stdin,
    /// `--pan DIGITS`: given on the command line.
    Literal(Zeroizing<String>),
}

impl PanInput {
    fn parse_arg(s: &str) -> Result<Self, String> {
        match s {
            "-" => Ok(Self::Stdin),
            "" => Err("empty PAN; use `--pan -` to read it from stdin".to_owned()),
            _ => Ok(Self::Literal(Zeroizing::new(s.to_owned()))),
        }
    }
}

impl fmt::Debug for PanInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Stdin => f.write_str("Stdin"),
            Self::Literal(_) => f.write_str("Literal(<redacted>)"),
        }
    }
}

/// `payhsm tokens detokenize`
#[derive(Debug, Args)]
pub struct DetokenizeArgs {
    /// The token.
    #[arg(long)]
    pub token: String,
    /// The token's domain.
    #[arg(long)]
    pub domain: String,
}

/// A token and its domain, for the metadata and lifecycle calls.
#[derive(Debug, Args)]
pub struct TokenRef {
    /// The token.
    pub token: String,
    /// The token's domain.
    #[arg(long)]
    pub domain: String,
}

/// `payhsm devices ...`
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// The device operation.
    #[command(subcommand)]
    pub command: DevicesCommand,
}

/// The device lifecycle operations of API v1.
#[derive(Debug, Subcommand)]
pub enum DevicesCommand {
    /// Ask for an enrolment challenge (POST /v1/devices/challenges): the WebAuthn creation
    /// options to give the authenticator.
    Challenge(DeviceChallengeArgs),
    /// Enrol a device with the authenticator's answer to a challenge (POST /v1/devices):
    /// the attestation's fields, base64url without padding.
    Enrol(EnrolArgs),
    /// List a user's or a card's devices (GET /v1/devices?user= | ?token=&domain=).
    List(DeviceListArgs),
    /// Show one device (GET /v1/devices/{id}).
    Get(DeviceRef),
    /// Revoke a device, for good (POST /v1/devices/{id}/revoke).
    Revoke(RevokeArgs),
}

/// `payhsm devices challenge`
#[derive(Debug, Args)]
pub struct DeviceChallengeArgs {
    /// The user the device is enrolled for (1 to 64 characters).
    #[arg(long)]
    pub user: String,
    /// The relying party id (a configured one).
    #[arg(long)]
    pub rp_id: String,
}

/// `payhsm devices enrol`: the attestation's fields, base64url without padding.
#[derive(Debug, Args)]
pub struct EnrolArgs {
    /// The challenge answered.
    #[arg(long)]
    pub challenge_id: String,
    /// The credential id.
    #[arg(long)]
    pub credential_id: String,
    /// attestationObject.
    #[arg(long)]
    pub attestation_object: String,
    /// clientDataJSON.
    #[arg(long)]
    pub client_data_json: String,
    /// The token the device pays with (with --domain).
    #[arg(long, requires = "domain")]
    pub token: Option<String>,
    /// The token's domain.
    #[arg(long, requires = "token")]
    pub domain: Option<String>,
}

/// `payhsm devices list`: `--user U`, or `--token T --domain D`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("owner").required(true).args(["user", "token"]))]
pub struct DeviceListArgs {
    /// The user the devices were enrolled for.
    #[arg(long, conflicts_with_all = ["token", "domain"])]
    pub user: Option<String>,
    /// The token the devices are bound to (with --domain).
    #[arg(long, requires = "domain")]
    pub token: Option<String>,
    /// The token's domain.
    #[arg(long, requires = "token")]
    pub domain: Option<String>,
}

/// A device id.
#[derive(Debug, Args)]
pub struct DeviceRef {
    /// The device id (as enrolment returned it).
    pub device_id: String,
}

/// `payhsm devices revoke`
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The device id.
    pub device_id: String,
    /// Why: lost, stolen, compromised, user_request or replaced.
    #[arg(long, value_parser = ["lost", "stolen", "compromised", "user_request", "replaced"])]
    pub reason: String,
}

/// `payhsm health`
#[derive(Debug, Args)]
pub struct HealthArgs {
    /// Readiness (GET /readyz: HSM, store, keys) instead of liveness (GET /healthz).
    #[arg(long, conflicts_with = "metrics")]
    pub ready: bool,
    /// Prometheus metrics (GET /metrics).
    #[arg(long)]
    pub metrics: bool,
}

/// `payhsm pki ...`
#[derive(Debug, Args)]
pub struct PkiArgs {
    /// The PKI operation.
    #[command(subcommand)]
    pub command: PkiCommand,
}

/// PKI operations.
#[derive(Debug, Subcommand)]
pub enum PkiCommand {
    /// Generate a development CA, server and client certificates. Never for production.
    Dev {
        /// Output directory.
        #[arg(long, default_value = "keys-sample")]
        out: PathBuf,
    },
}

/// `payhsm audit ...`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The audit operation.
    #[command(subcommand)]
    pub command: AuditCommand,
}

/// Audit operations.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Export the audit log as JSON lines: from a data directory on the daemon's host, or
    /// without `--data-dir` over the API (`GET /v1/audit`) at `--url` with an auditor
    /// certificate (`--cert`, `--key`). Both write the same lines and a signed checkpoint.
    Export {
        /// The daemon's data directory; without it the log is read over the API.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Output file; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// For a data directory made by `payhsm ceremony init --token-label`: read the token's
        /// user PIN from this open file descriptor (prompted without echo otherwise).
        #[arg(long, value_name = "FD", value_parser = parse_pin_fd)]
        user_pin_fd: Option<i32>,
    },
    /// Verify an exported audit log: chain, checkpoints, no edits, gaps or truncation.
    Verify {
        /// The exported log (JSON lines).
        file: PathBuf,
        /// A file holding the expected audit checkpoint public key (the base64url P-256 point,
        /// as published by the operator); without it the key found in the log is reported.
        #[arg(long)]
        public_key: Option<PathBuf>,
    },
    /// Print the latest signed tree head over the log (GET /v1/audit/sth; auditor).
    Sth,
    /// Print the inclusion proof of record SEQ (GET /v1/audit/proof; auditor) as JSON:
    /// leaf_index, tree_size, leaf (the record's line), audit_path, root_hash,
    /// signed_tree_head. Without --tree-size, under the latest signed tree head.
    Prove {
        /// The record's sequence number.
        #[arg(long, value_name = "N")]
        seq: u64,
        /// The tree size to prove it under (at least SEQ, at most the log's size).
        #[arg(long, value_name = "M")]
        tree_size: Option<u64>,
    },
    /// Print the RFC 9162 consistency proof between two tree sizes (GET
    /// /v1/audit/consistency; auditor) with their roots and signed tree heads.
    Consistency {
        /// The earlier tree size (at least 1).
        #[arg(long, value_name = "N")]
        from: u64,
        /// The later tree size.
        #[arg(long, value_name = "M")]
        to: u64,
    },
    /// Check a proof printed by `prove` or `consistency` offline: the signed tree heads
    /// against the audit key set, then the proof against their roots. Exit 0 if it holds, 1
    /// if not (with its code), 2 on usage errors.
    VerifyProof {
        /// The proof (JSON).
        file: PathBuf,
        /// The audit key set, as `payhsm audit jwks` prints it.
        #[arg(long, value_name = "FILE")]
        jwks: PathBuf,
    },
    /// Check a detokenize receipt (`{"seq", "record_hash"}`, as the answer's `receipt`):
    /// fetch the record's inclusion proof (GET /v1/audit/proof, with the certificate that
    /// detokenized, or an auditor's) and verify it against the audit key set, and that the
    /// record proven is the receipt's. Exit 0 if it holds, 1 if not, 2 on usage errors.
    VerifyReceipt {
        /// The receipt (JSON).
        file: PathBuf,
        /// The audit key set, as `payhsm audit jwks` prints it.
        #[arg(long, value_name = "FILE")]
        jwks: PathBuf,
        /// Prove it under this tree size (a signed head's); the latest signed head otherwise.
        #[arg(long, value_name = "M")]
        tree_size: Option<u64>,
        /// Also write the proof fetched here (for `verify-proof` later).
        #[arg(long, value_name = "FILE")]
        proof_out: Option<PathBuf>,
    },
    /// Print the audit key set (GET /v1/audit/jwks): the key that signs checkpoints, tree
    /// heads and evidence reports, for `verify-proof`, `verify-receipt` and `verify-report`.
    Jwks,
    /// The PCI DSS evidence report of a period, signed by the HSM audit key: over the API
    /// (GET /v1/audit/report, auditor certificate) or from a data directory on the daemon's
    /// host (`--data-dir`).
    Report {
        /// First UTC day covered, YYYY-MM-DD.
        #[arg(long)]
        since: String,
        /// Last UTC day covered (inclusive), YYYY-MM-DD.
        #[arg(long)]
        until: String,
        /// `json` (the signed answer as is), `md` or `html` (one self-contained page with
        /// charts); both embed the signed report.
        #[arg(long, default_value = "html", value_parser = ["json", "md", "html"])]
        format: String,
        /// Output file; stdout when absent.
        #[arg(long)]
        out: Option<PathBuf>,
        /// The daemon's data directory; without it the report is made over the API.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// For a data directory made by `payhsm ceremony init --token-label`: read the token's
        /// user PIN from this open file descriptor (prompted without echo otherwise).
        #[arg(long, value_name = "FD", value_parser = parse_pin_fd)]
        user_pin_fd: Option<i32>,
    },
    /// Verify an evidence report: its signature against the audit key set, for Markdown and
    /// HTML that the visible text is the signed report's, and with `--log` every figure
    /// derived again from an audit export.
    VerifyReport {
        /// The report (json, md or html).
        file: PathBuf,
        /// The audit key set as `payhsm audit jwks` prints it; without it, read over the API
        /// (GET /v1/audit/jwks).
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// An audit export (`payhsm audit export`): verified, then the report's figures are
        /// derived from it and compared.
        #[arg(long)]
        log: Option<PathBuf>,
    },
}

/// `payhsm keys ...`: run by custodians with their own client certificate (`--cert`,
/// `--key`). A change is applied when a second, distinct custodian runs the same command
/// within the approval window; the first run records an approval.
#[derive(Debug, Args)]
pub struct KeysArgs {
    /// The key operation.
    #[command(subcommand)]
    pub command: KeysCommand,
}

/// Which keys a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyPurposeArg {
    /// Data keys (PAN encryption and fingerprints).
    Data,
    /// Authorization signing keys (ES256 JWS).
    AuthorizationSigning,
}

impl KeyPurposeArg {
    /// The API name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Data => "data",
            Self::AuthorizationSigning => "authorization-signing",
        }
    }
}

/// Key lifecycle operations. Exit 0 when applied or listed, 3 when an approval was recorded
/// and waits for a second custodian, 1 on an API error, 2 on usage or connection errors.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Every key: version, algorithm, purpose, KCV or thumbprint, dates, state, records using
    /// it; warnings (cryptoperiods exceeded) on stderr.
    List {
        /// Print the JSON answer instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Data keys: create the next version and make it seal new records. Signing keys:
    /// generate the next key and publish it in the JWKS (activate it later).
    Rotate {
        /// Which keys.
        #[arg(long, value_enum)]
        purpose: KeyPurposeArg,
    },
    /// Make a published authorization signing key sign.
    Activate {
        /// Which keys (only authorization-signing).
        #[arg(long, value_enum)]
        purpose: KeyPurposeArg,
        /// The key version (as `keys list` shows it).
        #[arg(long, value_name = "N")]
        key_version: u32,
    },
    /// Take a key version out of use (refused while records still need it).
    Retire {
        /// Which keys.
        #[arg(long, value_enum)]
        purpose: KeyPurposeArg,
        /// The key version (as `keys list` shows it).
        #[arg(long, value_name = "N")]
        key_version: u32,
    },
    /// Erase a retired key version (refused while records still need it).
    Destroy {
        /// Which keys.
        #[arg(long, value_enum)]
        purpose: KeyPurposeArg,
        /// The key version (as `keys list` shows it).
        #[arg(long, value_name = "N")]
        key_version: u32,
    },
    /// Print the published authorization keys, the JWKS (GET /v1/keys/jwks).
    Jwks,
    /// Move every record to the active data key version, in batches, with progress on
    /// stderr. Safe to interrupt: run it again to resume.
    Rewrap {
        /// Records per batch (1 to 5000).
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=5000))]
        batch: u64,
    },
}
