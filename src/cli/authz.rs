//! `payhsm authz verify JWS --jwks FILE|URL`: checks a signed authorization as a gateway would.

use super::args::{AuthzArgs, AuthzCommand, ConnectArgs};
use super::output::{describe_api_error, fail, CliError};
use super::{EXIT_API_ERROR, EXIT_OK};
use crate::client::Client;
use crate::jose::{verify_compact, Jwks};
use std::io::Read as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest JWS read from stdin; the verifier refuses far less.
const MAX_STDIN_JWS: u64 = 1024 * 1024;

/// Runs an authz subcommand and returns the exit code.
pub fn run(args: &AuthzArgs, connect: &ConnectArgs) -> i32 {
    match &args.command {
        AuthzCommand::Verify { jws, jwks } => verify(connect, jws, jwks),
    }
}

fn verify(connect: &ConnectArgs, jws: &str, jwks: &str) -> i32 {
    let jws = match read_jws(jws) {
        Ok(j) => j,
        Err(e) => return fail(&e),
    };
    let bytes = match jwks.strip_prefix("https://") {
        Some(rest) => fetch_jwks(connect, rest),
        None => std::fs::read(jwks).map_err(|e| CliError::Usage(format!("{jwks}: {e}"))),
    };
    let set = match bytes.and_then(|b| {
        Jwks::parse(&b).map_err(|e| CliError::Usage(format!("the JWKS at {jwks}: {e}")))
    }) {
        Ok(set) => set,
        Err(e) => return fail(&e),
    };
    let now = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(_) => return fail(&CliError::Usage("the clock is before 1970".to_owned())),
    };
    match verify_compact(jws.trim(), &set, now) {
        Ok(claims) => match serde_json::to_string_pretty(&claims) {
            Ok(text) => {
                println!("{text}");
                EXIT_OK
            }
            Err(e) => fail(&CliError::Usage(format!("printing the claims: {e}"))),
        },
        Err(e) => {
            println!("invalid: {}", e.code());
            EXIT_API_ERROR
        }
    }
}

fn read_jws(arg: &str) -> Result<String, CliError> {
    if arg != "-" {
        return Ok(arg.to_owned());
    }
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_STDIN_JWS)
        .read_to_string(&mut text)
        .map_err(|e| CliError::Usage(format!("reading the JWS from stdin: {e}")))?;
    Ok(text)
}

/// GET `https://{rest}` over mTLS with the connection options' CA and client identity.
fn fetch_jwks(connect: &ConnectArgs, rest: &str) -> Result<Vec<u8>, CliError> {
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    // The JWKS URL names the daemon; a repeated `--url` is refused all the same.
    let mut opts = connect.client_options()?;
    opts.url = format!("https://{authority}");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Usage(format!("starting the runtime: {e}")))?;
    let timeout = Duration::from_secs(connect.timeout);
    let response = runtime.block_on(async {
        let exchange = async {
            let mut client = Client::connect(&opts).await?;
            client.request(hyper::Method::GET, path, None).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(result) => result.map_err(CliError::from),
            Err(_) => Err(CliError::Usage(format!(
                "no answer from {} within {}s",
                opts.url, connect.timeout
            ))),
        }
    })?;
    if response.status != 200 {
        return Err(CliError::Usage(format!(
            "fetching the JWKS: {}",
            describe_api_error(&response)
        )));
    }
    Ok(response.body)
}
