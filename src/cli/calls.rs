//! Turning API subcommands into HTTP calls: method, path and JSON body. No I/O except reading
//! the PAN from stdin when asked.

use super::args::{
    AuthorizationsCommand, AuthorizeArgs, CreateArgs, DetokenizeArgs, DetokenizeBatchArgs,
    DeviceChallengeArgs, DeviceListArgs, DevicesCommand, EnrolArgs, HealthArgs, PanInput,
    PaymentChallengeArgs, TokenBatchArgs, TokenRef, TokensCommand,
};
use super::output::CliError;
use hyper::Method;
use serde::Serialize;
use serde_json::json;
use std::fmt;
use std::io::{BufRead, IsTerminal, Read, Write};
use zeroize::Zeroizing;

/// The longest stdin line read for a PAN; longer input is refused, not truncated.
const MAX_PAN_LINE: u64 = 64;

/// One API call, ready to send.
pub struct ApiCall {
    /// HTTP method.
    pub method: Method,
    /// Path and query, starting with `/`.
    pub path: String,
    /// JSON body, when the call has one. May hold a PAN: never printed, wiped when dropped.
    pub body: Option<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for ApiCall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiCall")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("body_len", &self.body.as_ref().map(|b| b.len()))
            .finish()
    }
}

/// The call for a `payhsm tokens ...` subcommand; reads stdin for `--pan -`.
pub fn tokens_call(command: TokensCommand) -> Result<ApiCall, CliError> {
    match command {
        TokensCommand::Create(args) => {
            let pan = match &args.pan {
                PanInput::Stdin => read_pan(&mut std::io::stdin().lock())?,
                PanInput::Literal(pan) => pan.clone(),
            };
            create_call(&args, &pan)
        }
        TokensCommand::Detokenize(DetokenizeArgs { token, domain }) => {
            let body = DetokenizeRequest {
                token: &token,
                domain: &domain,
            };
            Ok(ApiCall {
                method: Method::POST,
                path: "/v1/tokens/detokenize".to_owned(),
                body: Some(to_json(&body, 64 + 6 * (token.len() + domain.len()))?),
            })
        }
        TokensCommand::Get(t) => Ok(token_call(Method::GET, &t, "")),
        TokensCommand::Suspend(t) => Ok(token_call(Method::POST, &t, "/suspend")),
        TokensCommand::Resume(t) => Ok(token_call(Method::POST, &t, "/resume")),
        TokensCommand::Delete(t) => Ok(token_call(Method::DELETE, &t, "")),
        TokensCommand::Batch(args) => {
            let items = if args.items.as_os_str() == "-" {
                read_items(&mut std::io::stdin().lock())?
            } else {
                let file = std::fs::File::open(&args.items)
                    .map_err(|e| CliError::Usage(format!("{}: {e}", args.items.display())))?;
                read_items(&mut std::io::BufReader::new(file))?
            };
            batch_call(&args, &items)
        }
        TokensCommand::DetokenizeBatch(DetokenizeBatchArgs { tokens, domain }) => {
            let body = json!({ "domain": domain, "tokens": tokens });
            Ok(ApiCall {
                method: Method::POST,
                path: "/v1/tokens/detokenize/batch".to_owned(),
                body: Some(to_json(&body, 64 + 32 * tokens.len())?),
            })
        }
        TokensCommand::Import(_) => Err(CliError::Usage(
            "tokens import makes many calls: run it through cli::run".to_owned(),
        )),
    }
}

/// The call for a `payhsm authorizations ...` subcommand. The assertion's fields go as given
/// (base64url): the daemon decodes and checks them.
pub fn authorizations_call(command: AuthorizationsCommand) -> Result<ApiCall, CliError> {
    match command {
        AuthorizationsCommand::Challenge(args) => Ok(ApiCall {
            method: Method::POST,
            path: "/v1/authorizations/challenges".to_owned(),
            body: Some(to_json(&PaymentChallengeBody::from(&args), 256)?),
        }),
        AuthorizationsCommand::Create(args) => Ok(ApiCall {
            method: Method::POST,
            path: "/v1/authorizations".to_owned(),
            body: Some(to_json(&AuthorizeBody::from(&args), 1024)?),
        }),
        AuthorizationsCommand::Get { id } => Ok(ApiCall {
            method: Method::GET,
            path: format!("/v1/authorizations/{}", percent_encode(&id)),
            body: None,
        }),
    }
}

#[derive(Serialize)]
struct PaymentChallengeBody<'a> {
    token: &'a str,
    domain: &'a str,
    device_id: &'a str,
    amount: u64,
    currency: &'a str,
    payee: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<&'a str>,
}

impl<'a> From<&'a PaymentChallengeArgs> for PaymentChallengeBody<'a> {
    fn from(a: &'a PaymentChallengeArgs) -> Self {
        Self {
            token: &a.token,
            domain: &a.domain,
            device_id: &a.device_id,
            amount: a.amount,
            currency: &a.currency,
            payee: &a.payee,
            audience: a.audience.as_deref(),
        }
    }
}

#[derive(Serialize)]
struct AuthorizeBody<'a> {
    challenge_id: &'a str,
    credential_id: &'a str,
    authenticator_data: &'a str,
    client_data_json: &'a str,
    signature: &'a str,
}

impl<'a> From<&'a AuthorizeArgs> for AuthorizeBody<'a> {
    fn from(a: &'a AuthorizeArgs) -> Self {
        Self {
            challenge_id: &a.challenge_id,
            credential_id: &a.credential_id,
            authenticator_data: &a.authenticator_data,
            client_data_json: &a.client_data_json,
            signature: &a.signature,
        }
    }
}

/// The call for a `payhsm devices ...` subcommand.
pub fn devices_call(command: DevicesCommand) -> Result<ApiCall, CliError> {
    let get = |path: String| ApiCall {
        method: Method::GET,
        path,
        body: None,
    };
    match command {
        DevicesCommand::Challenge(DeviceChallengeArgs { user, rp_id }) => Ok(ApiCall {
            method: Method::POST,
            path: "/v1/devices/challenges".to_owned(),
            body: Some(to_json(&json!({ "user": user, "rp_id": rp_id }), 256)?),
        }),
        DevicesCommand::Enrol(args) => Ok(ApiCall {
            method: Method::POST,
            path: "/v1/devices".to_owned(),
            body: Some(to_json(&EnrolBody::from(&args), 4096)?),
        }),
        DevicesCommand::List(DeviceListArgs {
            user: Some(user), ..
        }) => Ok(get(format!("/v1/devices?user={}", percent_encode(&user)))),
        DevicesCommand::List(DeviceListArgs {
            token: Some(token),
            domain: Some(domain),
            ..
        }) => Ok(get(format!(
            "/v1/devices?token={}&domain={}",
            percent_encode(&token),
            percent_encode(&domain)
        ))),
        DevicesCommand::List(_) => Err(CliError::Usage(
            "give --user, or --token and --domain".to_owned(),
        )),
        DevicesCommand::Get(d) => Ok(get(format!("/v1/devices/{}", percent_encode(&d.device_id)))),
        DevicesCommand::Revoke(r) => Ok(ApiCall {
            method: Method::POST,
            path: format!("/v1/devices/{}/revoke", percent_encode(&r.device_id)),
            body: Some(to_json(
                &serde_json::json!({ "reason": r.reason }),
                64 + r.reason.len(),
            )?),
        }),
    }
}

#[derive(Serialize)]
struct EnrolBody<'a> {
    challenge_id: &'a str,
    credential_id: &'a str,
    attestation_object: &'a str,
    client_data_json: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<&'a str>,
}

impl<'a> From<&'a EnrolArgs> for EnrolBody<'a> {
    fn from(a: &'a EnrolArgs) -> Self {
        Self {
            challenge_id: &a.challenge_id,
            credential_id: &a.credential_id,
            attestation_object: &a.attestation_object,
            client_data_json: &a.client_data_json,
            token: a.token.as_deref(),
            domain: a.domain.as_deref(),
        }
    }
}

/// The call for `payhsm openapi`.
pub fn openapi_call() -> ApiCall {
    ApiCall {
        method: Method::GET,
        path: "/v1/openapi.json".to_owned(),
        body: None,
    }
}

/// The call for `payhsm health`.
pub fn health_call(args: &HealthArgs) -> ApiCall {
    let path = if args.metrics {
        "/metrics"
    } else if args.ready {
        "/readyz"
    } else {
        "/healthz"
    };
    ApiCall {
        method: Method::GET,
        path: path.to_owned(),
        body: None,
    }
}

#[derive(Serialize)]
struct CreateRequest<'a> {
    pan: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp_month: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp_year: Option<u16>,
    domain: &'a str,
}

#[derive(Serialize)]
struct DetokenizeRequest<'a> {
    token: &'a str,
    domain: &'a str,
}

fn create_call(args: &CreateArgs, pan: &str) -> Result<ApiCall, CliError> {
    let body = CreateRequest {
        pan,
        exp_month: args.exp_month,
        exp_year: args.exp_year,
        domain: &args.domain,
    };
    // Sized so serializing never reallocates, which would leave PAN copies in freed memory.
    let capacity = 128 + 6 * (pan.len() + args.domain.len());
    Ok(ApiCall {
        method: Method::POST,
        path: "/v1/tokens".to_owned(),
        body: Some(to_json(&body, capacity)?),
    })
}

/// The largest items file read for `tokens batch`: the daemon's batch body limit (128 KiB by
/// default) with room for a raised one.
const MAX_ITEMS_BYTES: u64 = 1 << 20;

/// Reads a `tokens batch` items file: a JSON array, kept in a buffer that is zeroized and
/// never reallocated (it holds PANs). Only its shape is checked here; the daemon checks each
/// item and answers for each.
fn read_items(input: &mut dyn Read) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut items = Zeroizing::new(Vec::with_capacity(MAX_ITEMS_BYTES as usize + 1));
    input
        .take(MAX_ITEMS_BYTES + 1)
        .read_to_end(&mut items)
        .map_err(|e| CliError::Usage(format!("reading the items: {e}")))?;
    if items.len() as u64 > MAX_ITEMS_BYTES {
        return Err(CliError::Usage(format!(
            "the items are over {MAX_ITEMS_BYTES} bytes: split them, or use tokens import"
        )));
    }
    // The parse error is not shown: its text could quote a PAN.
    serde_json::from_slice::<Vec<serde::de::IgnoredAny>>(&items).map_err(|_| {
        CliError::Usage(
            "the items must be a JSON array of {\"pan\",\"exp_month\",\"exp_year\"} objects"
                .to_owned(),
        )
    })?;
    Ok(items)
}

/// `POST /v1/tokens/batch` with the items as read: the body is built around them byte for
/// byte, in a buffer sized so it never reallocates.
fn batch_call(args: &TokenBatchArgs, items: &[u8]) -> Result<ApiCall, CliError> {
    let domain = serde_json::to_string(&args.domain)
        .map_err(|e| CliError::Usage(format!("encoding the request: {e}")))?;
    let mut body = Zeroizing::new(Vec::with_capacity(32 + domain.len() + items.len()));
    body.extend_from_slice(b"{\"domain\":");
    body.extend_from_slice(domain.as_bytes());
    body.extend_from_slice(b",\"items\":");
    body.extend_from_slice(items);
    body.push(b'}');
    Ok(ApiCall {
        method: Method::POST,
        path: "/v1/tokens/batch".to_owned(),
        body: Some(body),
    })
}

fn token_call(method: Method, t: &TokenRef, suffix: &str) -> ApiCall {
    ApiCall {
        method,
        path: format!(
            "/v1/tokens/{}{suffix}?domain={}",
            percent_encode(&t.token),
            percent_encode(&t.domain)
        ),
        body: None,
    }
}

fn to_json<T: Serialize>(body: &T, capacity: usize) -> Result<Zeroizing<Vec<u8>>, CliError> {
    let mut out = Zeroizing::new(Vec::with_capacity(capacity));
    serde_json::to_writer(&mut *out, body)
        .map_err(|e| CliError::Usage(format!("encoding the request: {e}")))?;
    Ok(out)
}

/// Reads one line holding the PAN; surrounding whitespace (the newline) is dropped.
fn read_pan(input: &mut dyn BufRead) -> Result<Zeroizing<String>, CliError> {
    if std::io::stdin().is_terminal() {
        eprint!("PAN (input is echoed; prefer piping it): ");
        let _ = std::io::stderr().flush();
    }
    // Capacity above the limit: the buffer never reallocates, so no copy is left behind.
    let mut line = Zeroizing::new(String::with_capacity(MAX_PAN_LINE as usize + 8));
    input
        .take(MAX_PAN_LINE)
        .read_line(&mut line)
        .map_err(|e| CliError::Usage(format!("reading the PAN from stdin: {e}")))?;
    if line.len() as u64 >= MAX_PAN_LINE && !line.ends_with('\n') {
        return Err(CliError::Usage(
            "the PAN line on stdin is too long".to_owned(),
        ));
    }
    let pan = Zeroizing::new(line.trim().to_owned());
    if pan.is_empty() {
        return Err(CliError::Usage("no PAN on stdin".to_owned()));
    }
    Ok(pan)
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::args::{Cli, Command};
    use clap::Parser;
    use serde_json::json;

    fn call(argv: &[&str]) -> ApiCall {
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Tokens(t) => tokens_call(t.command).unwrap(),
            Command::Authorizations(a) => authorizations_call(a.command).unwrap(),
            Command::Devices(d) => devices_call(d.command).unwrap(),
            Command::Health(h) => health_call(&h),
            Command::Openapi => openapi_call(),
            other => panic!("not an API call: {other:?}"),
        }
    }

    /// `(method, path template)` of each route in docs/openapi.json.
    fn documented_routes() -> std::collections::BTreeSet<(String, String)> {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
        let mut routes = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                    routes.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        routes
    }

    /// The route template a concrete path matches: `{x}` stands for one segment; the query
    /// is not part of it.
    fn matches_template(path: &str, template: &str) -> bool {
        let path = path.split('?').next().unwrap();
        let (p, t): (Vec<_>, Vec<_>) = (path.split('/').collect(), template.split('/').collect());
        p.len() == t.len()
            && p.iter()
                .zip(&t)
                .all(|(p, t)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || p == t)
    }

    /// The call for one command line, words separated by spaces.
    fn call_line(line: &str) -> ApiCall {
        call(&line.split_whitespace().collect::<Vec<_>>())
    }

    #[test]
    fn every_documented_route_has_a_subcommand() {
        // Subcommands built as one `ApiCall`: their call is checked. The others drive a
        // session (pages, progress, a JWKS fetch); for them the command line must parse and
        // the module that runs it must send to the route.
        let calls = [
            "payhsm tokens create --pan 4111111111111111 --domain d",
            "payhsm tokens detokenize --token 9 --domain d",
            "payhsm tokens get 9 --domain d",
            "payhsm tokens delete 9 --domain d",
            "payhsm tokens suspend 9 --domain d",
            "payhsm tokens resume 9 --domain d",
            "payhsm tokens detokenize-batch 9 --domain d",
            "payhsm devices challenge --user u --rp-id r",
            "payhsm devices enrol --challenge-id c --credential-id i --attestation-object a \
             --client-data-json j",
            "payhsm devices list --user u",
            "payhsm devices get dev",
            "payhsm devices revoke dev --reason lost",
            "payhsm authorizations challenge --token 9 --domain d --device-id dev --amount 1 \
             --currency EUR --payee p",
            "payhsm authorizations create --challenge-id c --credential-id i \
             --authenticator-data a --client-data-json j --signature s",
            "payhsm authorizations get a",
            "payhsm health",
            "payhsm health --ready",
            "payhsm health --metrics",
            "payhsm openapi",
        ];
        let sessions = [
            (
                "payhsm tokens batch - --domain d",
                "POST",
                "/v1/tokens/batch",
                include_str!("calls.rs"),
            ),
            (
                "payhsm keys list",
                "GET",
                "/v1/keys",
                include_str!("keys.rs"),
            ),
            (
                "payhsm keys jwks",
                "GET",
                "/v1/keys/jwks",
                include_str!("keys.rs"),
            ),
            (
                "payhsm keys rotate --purpose data",
                "POST",
                "/v1/keys/changes",
                include_str!("keys.rs"),
            ),
            (
                "payhsm keys rewrap",
                "POST",
                "/v1/keys/rewrap",
                include_str!("keys.rs"),
            ),
            (
                "payhsm audit sth",
                "GET",
                "/v1/audit/sth",
                include_str!("audit.rs"),
            ),
            (
                "payhsm audit prove --seq 1",
                "GET",
                "/v1/audit/proof",
                include_str!("audit.rs"),
            ),
            (
                "payhsm audit consistency --from 1 --to 2",
                "GET",
                "/v1/audit/consistency",
                include_str!("audit.rs"),
            ),
            (
                "payhsm audit jwks",
                "GET",
                "/v1/audit/jwks",
                include_str!("audit.rs"),
            ),
            (
                "payhsm audit export --url https://h:1",
                "GET",
                "/v1/audit",
                include_str!("audit.rs"),
            ),
            (
                "payhsm audit report --since 2026-01-01 --until 2026-01-31 --format md",
                "GET",
                "/v1/audit/report",
                include_str!("report.rs"),
            ),
        ];
        let mut covered = std::collections::BTreeSet::new();
        let documented = documented_routes();
        for line in calls {
            let c = call_line(line);
            let route = documented
                .iter()
                .find(|(m, t)| *m == c.method.as_str() && matches_template(&c.path, t))
                .unwrap_or_else(|| panic!("{line}: {} {} is not documented", c.method, c.path));
            covered.insert(route.clone());
        }
        for (line, method, path, source) in sessions {
            Cli::try_parse_from(line.split_whitespace()).unwrap_or_else(|e| panic!("{line}: {e}"));
            assert!(
                source.contains(&format!("\"{path}")),
                "{line} does not send to {path}"
            );
            assert!(
                documented.contains(&(method.to_string(), path.to_string())),
                "{path}"
            );
            covered.insert((method.to_string(), path.to_string()));
        }
        let missing: Vec<_> = documented.difference(&covered).collect();
        assert!(
            missing.is_empty(),
            "routes without a subcommand: {missing:?}"
        );
    }

    #[test]
    fn tokens_batch_sends_the_items_as_read_inside_the_request() {
        let items = br#"[{"pan":"4111111111111111","exp_month":12,"exp_year":2030},{"pan":"x"}]"#;
        let read = read_items(&mut &items[..]).unwrap();
        let args = TokenBatchArgs {
            items: "-".into(),
            domain: "shop".into(),
        };
        let c = batch_call(&args, &read).unwrap();
        assert_eq!(
            (c.method.clone(), c.path.as_str()),
            (Method::POST, "/v1/tokens/batch")
        );
        assert_eq!(
            body(&c),
            json!({"domain": "shop", "items": [
                {"pan": "4111111111111111", "exp_month": 12, "exp_year": 2030},
                {"pan": "x"}
            ]})
        );
    }

    #[test]
    fn tokens_batch_refuses_what_is_not_an_array_without_quoting_it() {
        for bad in [
            &br#"{"pan":"4111111111111111"}"#[..],
            b"[{\"pan\":\"4111111111111111\"",
            b"",
        ] {
            let Err(CliError::Usage(m)) = read_items(&mut &bad[..]) else {
                panic!("accepted {:?}", String::from_utf8_lossy(bad));
            };
            assert!(!m.contains("4111"), "{m}");
        }
        let big = vec![b' '; MAX_ITEMS_BYTES as usize + 1];
        assert!(matches!(read_items(&mut &big[..]), Err(CliError::Usage(m)) if m.contains("over")));
    }

    #[test]
    fn detokenize_batch_and_device_enrolment_build_their_bodies() {
        let c = call_line("payhsm tokens detokenize-batch 41 42 --domain d");
        assert_eq!(c.path, "/v1/tokens/detokenize/batch");
        assert_eq!(body(&c), json!({"domain": "d", "tokens": ["41", "42"]}));
        let c = call_line("payhsm devices challenge --user alice --rp-id localhost");
        assert_eq!(body(&c), json!({"user": "alice", "rp_id": "localhost"}));
        let enrol = "payhsm devices enrol --challenge-id c --credential-id i \
                     --attestation-object a --client-data-json j";
        let c = call_line(&format!("{enrol} --token 9 --domain d"));
        assert_eq!(
            body(&c),
            json!({"challenge_id": "c", "credential_id": "i", "attestation_object": "a",
                   "client_data_json": "j", "token": "9", "domain": "d"})
        );
        assert!(body(&call_line(enrol)).get("token").is_none());
    }

    fn body(c: &ApiCall) -> serde_json::Value {
        serde_json::from_slice(c.body.as_deref().unwrap()).unwrap()
    }

    #[test]
    fn authorizations_subcommands_map_to_their_api_v1_calls() {
        let c = call(&[
            "payhsm",
            "authorizations",
            "challenge",
            "--token",
            "4111119876541111",
            "--domain",
            "shop",
            "--device-id",
            "AAAAAAAAAAAAAAAAAAAAAA",
            "--amount",
            "1234",
            "--currency",
            "EUR",
            "--payee",
            "Shop",
            "--audience",
            "https://acquirer.example",
        ]);
        assert_eq!(
            (&c.method, c.path.as_str()),
            (&Method::POST, "/v1/authorizations/challenges")
        );
        assert_eq!(
            body(&c),
            json!({"token": "4111119876541111", "domain": "shop",
                "device_id": "AAAAAAAAAAAAAAAAAAAAAA", "amount": 1234, "currency": "EUR",
                "payee": "Shop", "audience": "https://acquirer.example"})
        );
        let c = call(&[
            "payhsm",
            "authorizations",
            "challenge",
            "--token",
            "t",
            "--domain",
            "d",
            "--device-id",
            "x",
            "--amount",
            "1",
            "--currency",
            "EUR",
            "--payee",
            "p",
        ]);
        assert!(body(&c).get("audience").is_none());
        let c = call(&[
            "payhsm",
            "authorizations",
            "create",
            "--challenge-id",
            "c1",
            "--credential-id",
            "Y3JlZA",
            "--authenticator-data",
            "YXV0aA",
            "--client-data-json",
            "e30",
            "--signature",
            "c2ln",
        ]);
        assert_eq!(
            (&c.method, c.path.as_str()),
            (&Method::POST, "/v1/authorizations")
        );
        assert_eq!(
            body(&c),
            json!({"challenge_id": "c1", "credential_id": "Y3JlZA",
                "authenticator_data": "YXV0aA", "client_data_json": "e30", "signature": "c2ln"})
        );
        let c = call(&["payhsm", "authorizations", "get", "0190a1b2-7e5f/x"]);
        assert_eq!(
            (c.method, c.path.as_str(), c.body.is_none()),
            (Method::GET, "/v1/authorizations/0190a1b2-7e5f%2Fx", true)
        );
    }

    #[test]
    fn device_subcommands_map_to_the_device_routes() {
        let c = call(&["payhsm", "devices", "list", "--user", "alice b"]);
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::GET, "/v1/devices?user=alice%20b")
        );
        let c = call(&[
            "payhsm",
            "devices",
            "list",
            "--token",
            "4111119876541111",
            "--domain",
            "shop",
        ]);
        assert_eq!(c.path, "/v1/devices?token=4111119876541111&domain=shop");
        let c = call(&["payhsm", "devices", "get", "AbC-_9"]);
        assert_eq!(
            (c.method, c.path.as_str()),
            (Method::GET, "/v1/devices/AbC-_9")
        );
        let c = call(&[
            "payhsm", "devices", "revoke", "AbC-_9", "--reason", "stolen",
        ]);
        assert_eq!(
            (c.method.clone(), c.path.as_str()),
            (Method::POST, "/v1/devices/AbC-_9/revoke")
        );
        assert_eq!(body(&c), json!({"reason": "stolen"}));
        // The owner is a user or a card, never both or half a card; the reason is one of the set.
        for bad in [
            &["payhsm", "devices", "list"][..],
            &[
                "payhsm",
                "devices",
                "list",
                "--user",
                "a",
                "--token",
                "4111119876541111",
            ],
            &["payhsm", "devices", "list", "--token", "4111119876541111"],
            &["payhsm", "devices", "list", "--domain", "shop"],
            &["payhsm", "devices", "revoke", "AbC", "--reason", "bored"],
            &["payhsm", "devices", "revoke", "AbC"],
        ] {
            assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn create_with_literal_pan_posts_the_api_v1_body() {
        let c = call(&[
            "payhsm",
            "tokens",
            "create",
            "--pan",
            "4111111111111111",
            "--exp-month",
            "12",
            "--exp-year",
            "2030",
            "--domain",
            "ecom",
        ]);
        assert_eq!(c.method, Method::POST);
        assert_eq!(c.path, "/v1/tokens");
        assert_eq!(
            body(&c),
            json!({"pan": "4111111111111111", "exp_month": 12, "exp_year": 2030, "domain": "ecom"})
        );
    }

    #[test]
    fn create_without_expiry_omits_it() {
        let c = call(&[
            "payhsm",
            "tokens",
            "create",
            "--pan",
            "4111111111111111",
            "--domain",
            "d",
        ]);
        assert_eq!(body(&c), json!({"pan": "4111111111111111", "domain": "d"}));
    }

    #[test]
    fn api_call_debug_does_not_show_the_body() {
        let c = call(&[
            "payhsm",
            "tokens",
            "create",
            "--pan",
            "4111111111111111",
            "--domain",
            "d",
        ]);
        assert!(!format!("{c:?}").contains("4111"));
    }

    #[test]
    fn detokenize_posts_token_and_domain() {
        let c = call(&[
            "payhsm",
            "tokens",
            "detokenize",
            "--token",
            "4111119876541111",
            "--domain",
            "d",
        ]);
        assert_eq!(c.path, "/v1/tokens/detokenize");
        assert_eq!(
            body(&c),
            json!({"token": "4111119876541111", "domain": "d"})
        );
    }

    #[test]
    fn lifecycle_calls_use_the_token_path_and_domain_query() {
        let expect = [
            (
                "get",
                Method::GET,
                "/v1/tokens/4111119876541111?domain=ecom%2Feu",
            ),
            (
                "suspend",
                Method::POST,
                "/v1/tokens/4111119876541111/suspend?domain=ecom%2Feu",
            ),
            (
                "resume",
                Method::POST,
                "/v1/tokens/4111119876541111/resume?domain=ecom%2Feu",
            ),
            (
                "delete",
                Method::DELETE,
                "/v1/tokens/4111119876541111?domain=ecom%2Feu",
            ),
        ];
        for (sub, method, path) in expect {
            let c = call(&[
                "payhsm",
                "tokens",
                sub,
                "4111119876541111",
                "--domain",
                "ecom/eu",
            ]);
            assert_eq!((c.method, c.path.as_str()), (method, path), "{sub}");
            assert!(c.body.is_none());
        }
    }

    #[test]
    fn health_picks_liveness_readiness_or_metrics() {
        assert_eq!(call(&["payhsm", "health"]).path, "/healthz");
        assert_eq!(call(&["payhsm", "health", "--ready"]).path, "/readyz");
        assert_eq!(call(&["payhsm", "health", "--metrics"]).path, "/metrics");
    }

    #[test]
    fn pan_is_read_from_one_stdin_line() {
        let pan = read_pan(&mut &b"4111111111111111\n"[..]).unwrap();
        assert_eq!(pan.as_str(), "4111111111111111");
        let pan = read_pan(&mut &b"  5555555555554444\r\nignored"[..]).unwrap();
        assert_eq!(pan.as_str(), "5555555555554444");
    }

    #[test]
    fn empty_or_overlong_stdin_pan_is_refused() {
        assert!(read_pan(&mut &b""[..]).is_err());
        assert!(read_pan(&mut &b"\n"[..]).is_err());
        let long = "1".repeat(200);
        assert!(read_pan(&mut long.as_bytes()).is_err());
    }

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(percent_encode("aZ09-._~"), "aZ09-._~");
        assert_eq!(
            percent_encode("a b/c?d&e=f#é"),
            "a%20b%2Fc%3Fd%26e%3Df%23%C3%A9"
        );
    }
}
