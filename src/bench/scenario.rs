//! What one connection does in each scenario: its untimed setup and one timed operation.
//!
//! Every operation checks the answer it needs (status, and the field the next step uses); any
//! other answer is an error of class `HTTP <status> <code>`. A transport failure breaks the
//! connection: the driver opens a new one.

use super::authenticator::{Attestation, SoftwareAuthenticator};
use super::pans::{PanSource, TestPan};
use super::{BenchError, Plan, Scenario};
use crate::client::{Client, ClientError, Response};
use hyper::Method;
use std::sync::Arc;
use zeroize::Zeroize;

/// Amount of each benchmark payment, in minor units: under the sample policy's 100.00
/// threshold, so a device with `self` attestation may approve it.
const BENCH_AMOUNT: u64 = 1234;
const BENCH_CURRENCY: &str = "EUR";
const BENCH_PAYEE: &str = "payhsm bench";
/// The relying party the software authenticator registers with (in the dev configuration).
const BENCH_RP_ID: &str = "localhost";

/// Why one operation failed.
#[derive(Debug)]
pub(super) struct OpError {
    /// The error class the report counts: `HTTP 409 token_state_conflict`, `transport: TLS`, ...
    pub class: String,
    /// The connection is unusable: open a new one before the next operation.
    pub broken: bool,
}

impl OpError {
    fn transport(e: &ClientError) -> Self {
        let kind = match e {
            ClientError::Config(_) => "config",
            ClientError::Connect(_) => "connect",
            ClientError::Tls(_) => "TLS",
            ClientError::Http(_) => "HTTP",
            ClientError::Json(_) => "JSON",
        };
        Self {
            class: format!("transport: {kind}"),
            broken: !matches!(e, ClientError::Json(_)),
        }
    }

    pub(super) fn timeout() -> Self {
        Self {
            class: "timeout".to_owned(),
            broken: true,
        }
    }

    /// An answer with an unexpected status: `HTTP <status> <error.code>`.
    fn status(r: &Response) -> Self {
        let code: String = serde_json::from_slice::<serde_json::Value>(&r.body)
            .ok()
            .and_then(|v| {
                v.get("error")
                    .and_then(|e| e.get("code"))
                    .and_then(|c| c.as_str())
                    .map(|c| c.chars().filter(|ch| !ch.is_control()).take(64).collect())
            })
            .unwrap_or_default();
        Self {
            class: format!("HTTP {} {code}", r.status).trim_end().to_owned(),
            broken: false,
        }
    }

    fn answer(what: &str) -> Self {
        Self {
            class: format!("bad answer: {what}"),
            broken: false,
        }
    }
}

/// One connection's scenario state, made by [`Work::setup`].
pub(super) enum Work {
    /// Fresh PANs from the run's source.
    TokenizeNew(Arc<PanSource>),
    /// This connection's pool of tokenized PANs, tokenized again.
    TokenizeExisting(Cycle<TestPan>),
    /// This connection's pool of tokens, detokenized (vault-reader identity).
    Detokenize(Cycle<String>),
    /// This connection's pool of tokens, their metadata read.
    Metadata(Cycle<String>),
    /// This connection's pool of tokens with their state: suspended when `true`.
    Lifecycle(Cycle<(String, bool)>),
    /// A device enrolled for a token.
    Authorize(Box<Device>),
    /// A new mTLS connection per operation.
    Handshake,
    /// `GET /healthz`.
    Noop,
}

/// A pool walked round-robin.
pub(super) struct Cycle<T> {
    items: Vec<T>,
    next: usize,
}

impl<T> Cycle<T> {
    fn new(items: Vec<T>) -> Self {
        Self { items, next: 0 }
    }

    fn next_mut(&mut self) -> Option<&mut T> {
        let len = self.items.len();
        let item = self.items.get_mut(self.next % len.max(1));
        self.next = self.next.wrapping_add(1);
        item
    }
}

/// The `authorize` scenario's enrolled device.
pub(super) struct Device {
    auth: SoftwareAuthenticator,
    token: String,
    device_id: String,
    counter: u32,
}

impl Work {
    /// The untimed setup of one connection: tokenizes its pool, or enrols its device. `client`
    /// is a gateway connection.
    pub(super) async fn setup(
        plan: &Plan,
        client: &mut Client,
        share: usize,
    ) -> Result<Self, BenchError> {
        let setup =
            |e: OpError| BenchError::Setup(format!("{}: {}", plan.scenario.name(), e.class));
        Ok(match plan.scenario {
            Scenario::TokenizeNew => Self::TokenizeNew(plan.pans.clone()),
            Scenario::TokenizeExisting => {
                let mut pans = Vec::with_capacity(share);
                for _ in 0..share {
                    let pan = plan.pans.next_pan();
                    tokenize(plan, client, &pan, 201).await.map_err(setup)?;
                    pans.push(pan);
                }
                Self::TokenizeExisting(Cycle::new(pans))
            }
            Scenario::Detokenize | Scenario::Metadata | Scenario::Lifecycle => {
                let mut tokens = Vec::with_capacity(share);
                for _ in 0..share {
                    let pan = plan.pans.next_pan();
                    tokens.push(tokenize(plan, client, &pan, 201).await.map_err(setup)?);
                }
                match plan.scenario {
                    Scenario::Detokenize => Self::Detokenize(Cycle::new(tokens)),
                    Scenario::Metadata => Self::Metadata(Cycle::new(tokens)),
                    _ => Self::Lifecycle(Cycle::new(
                        tokens.into_iter().map(|t| (t, false)).collect(),
                    )),
                }
            }
            Scenario::Authorize => {
                Self::Authorize(Box::new(enrol(plan, client).await.map_err(setup)?))
            }
            Scenario::Handshake | Scenario::Idle => Self::Handshake,
            Scenario::Noop => Self::Noop,
        })
    }

    /// One timed operation on `client`, a connection to `url` (`handshake` ignores `client`
    /// and opens its own to `url`).
    pub(super) async fn op(
        &mut self,
        plan: &Plan,
        url: &str,
        client: &mut Client,
    ) -> Result<(), OpError> {
        match self {
            Self::TokenizeNew(pans) => {
                let pan = pans.next_pan();
                tokenize(plan, client, &pan, 201).await.map(drop)
            }
            Self::TokenizeExisting(pool) => match pool.next_mut() {
                Some(pan) => tokenize(plan, client, pan, 200).await.map(drop),
                None => Err(OpError::answer("empty pool")),
            },
            Self::Detokenize(pool) => {
                let token = pool
                    .next_mut()
                    .ok_or_else(|| OpError::answer("empty pool"))?;
                let body = format!(r#"{{"token":"{token}","domain":"{}"}}"#, plan.domain);
                let mut r = call(
                    client,
                    Method::POST,
                    "/v1/tokens/detokenize",
                    Some(body.into_bytes()),
                    200,
                )
                .await;
                // The answer holds the PAN: wipe it, whatever it was.
                if let Ok(r) = r.as_mut() {
                    r.body.zeroize();
                }
                r.map(drop)
            }
            Self::Metadata(pool) => {
                let token = pool
                    .next_mut()
                    .ok_or_else(|| OpError::answer("empty pool"))?;
                let path = format!("/v1/tokens/{token}?domain={}", plan.domain);
                call(client, Method::GET, &path, None, 200).await.map(drop)
            }
            Self::Lifecycle(pool) => {
                let (token, suspended) = pool
                    .next_mut()
                    .ok_or_else(|| OpError::answer("empty pool"))?;
                let change = if *suspended { "resume" } else { "suspend" };
                let path = format!("/v1/tokens/{token}/{change}?domain={}", plan.domain);
                call(client, Method::POST, &path, None, 200).await?;
                *suspended = !*suspended;
                Ok(())
            }
            Self::Authorize(device) => authorize(plan, client, device).await,
            Self::Handshake => {
                let mut fresh = Client::connect_with(url, plan.handshake_tls.clone())
                    .await
                    .map_err(|e| OpError::transport(&e))?;
                call(&mut fresh, Method::GET, "/healthz", None, 200)
                    .await
                    .map(drop)
            }
            Self::Noop => call(client, Method::GET, "/healthz", None, 200)
                .await
                .map(drop),
        }
    }
}

/// Sends one request; an answer other than `expect` is an [`OpError`].
async fn call(
    client: &mut Client,
    method: Method,
    path: &str,
    body: Option<Vec<u8>>,
    expect: u16,
) -> Result<Response, OpError> {
    let r = client
        .request(method, path, body)
        .await
        .map_err(|e| OpError::transport(&e))?;
    if r.status == expect {
        Ok(r)
    } else {
        Err(OpError::status(&r))
    }
}

/// POST /v1/tokens; returns the token.
async fn tokenize(
    plan: &Plan,
    client: &mut Client,
    pan: &TestPan,
    expect: u16,
) -> Result<String, OpError> {
    // Sized so that it never reallocates: no PAN copy is left in freed memory. The client
    // wipes the body when hyper drops it.
    let mut body = Vec::with_capacity(96 + plan.domain.len());
    body.extend_from_slice(br#"{"pan":""#);
    body.extend_from_slice(pan.expose_digits());
    body.extend_from_slice(br#"","exp_month":12,"exp_year":2030,"domain":""#);
    body.extend_from_slice(plan.domain.as_bytes());
    body.extend_from_slice(br#""}"#);
    let r = call(client, Method::POST, "/v1/tokens", Some(body), expect).await?;
    field(&r, "token")
}

/// A string field of a JSON answer.
fn field(r: &Response, name: &str) -> Result<String, OpError> {
    r.json()
        .ok()
        .and_then(|v| v.get(name).and_then(|f| f.as_str()).map(str::to_owned))
        .ok_or_else(|| OpError::answer(&format!("no `{name}`")))
}

/// POSTs a JSON value.
async fn post(
    client: &mut Client,
    path: &str,
    body: &serde_json::Value,
    expect: u16,
) -> Result<Response, OpError> {
    call(
        client,
        Method::POST,
        path,
        Some(body.to_string().into_bytes()),
        expect,
    )
    .await
}

/// Tokenizes a card and enrols a fresh software authenticator bound to it (packed self
/// attestation, as the `authorizations_api` tests do).
async fn enrol(plan: &Plan, client: &mut Client) -> Result<Device, OpError> {
    let broken = |what: &str| OpError::answer(what);
    let auth = SoftwareAuthenticator::new().map_err(|_| broken("random generator failed"))?;
    let token = tokenize(plan, client, &plan.pans.next_pan(), 201).await?;
    let challenge = post(
        client,
        "/v1/devices/challenges",
        &serde_json::json!({"user": "bench", "rp_id": BENCH_RP_ID}),
        201,
    )
    .await?;
    let registration = auth
        .register(&field(&challenge, "challenge")?, Attestation::PackedSelf)
        .map_err(|_| broken("signing failed"))?;
    let mut body = registration.body(&field(&challenge, "challenge_id")?);
    if let Some(fields) = body.as_object_mut() {
        fields.insert("token".to_owned(), token.clone().into());
        fields.insert("domain".to_owned(), plan.domain.clone().into());
    }
    let enrolled = post(client, "/v1/devices", &body, 201).await?;
    Ok(Device {
        auth,
        token,
        device_id: field(&enrolled, "device_id")?,
        counter: 0,
    })
}

/// One payment: challenge -> assertion by the software authenticator -> signed authorization.
async fn authorize(plan: &Plan, client: &mut Client, device: &mut Device) -> Result<(), OpError> {
    let challenge = post(
        client,
        "/v1/authorizations/challenges",
        &serde_json::json!({
            "token": device.token,
            "domain": plan.domain,
            "device_id": device.device_id,
            "amount": BENCH_AMOUNT,
            "currency": BENCH_CURRENCY,
            "payee": BENCH_PAYEE,
        }),
        201,
    )
    .await?;
    device.counter = device.counter.wrapping_add(1);
    let assertion = device
        .auth
        .assert(&field(&challenge, "challenge")?, device.counter, None)
        .map_err(|_| OpError::answer("signing failed"))?;
    let r = post(
        client,
        "/v1/authorizations",
        &assertion.body(&field(&challenge, "challenge_id")?),
        201,
    )
    .await?;
    field(&r, "authorization").map(drop)
}
