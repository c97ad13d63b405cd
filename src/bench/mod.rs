//! The load generator behind `payhsm bench`: C keep-alive mTLS connections, each driven by its
//! own task issuing requests back to back, for a fixed time or request count, every latency
//! recorded in an HDR histogram (one per connection, merged at the end). The connections are
//! spread round-robin over one or more replicas of the daemon.
//!
//! - [`replicas`]: the daemons' URLs, which connection drives which, where it sets up.
//! - `scenario`: what one connection sets up (untimed) and what one operation is.
//! - [`pans`]: unique Luhn-valid test PANs, never printed.
//! - [`authenticator`]: the software WebAuthn authenticator of the `authorize` scenario (and
//!   of the end-to-end tests).
//! - [`report`]: the summary, the table, the JSON lines, the machine and the commit.
//! - `idle`: the idle-connection memory mode.
//! - `flood`: `--flood`, silent sockets from another loopback address during a scenario.
//!
//! How to run it and what was measured: `docs/benchmarks.md`.

pub mod authenticator;
mod flood;
mod idle;
pub mod pans;
pub mod replicas;
pub mod report;
mod scenario;

use crate::client::{tls_config, BaseUrl, Client, ClientIdentity, ClientOptions};
pub use flood::FloodOptions;
use hdrhistogram::Histogram;
use pans::PanSource;
use replicas::Replicas;
use report::Outcome;
use scenario::{OpError, Work};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Latencies above this (a minute) are recorded as this.
const MAX_LATENCY_US: u64 = 60_000_000;
/// After a failed connect, wait this long before the next try.
const RECONNECT_PAUSE: Duration = Duration::from_millis(50);

/// A benchmark scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// POST /v1/tokens with a PAN never seen before (201).
    TokenizeNew,
    /// POST /v1/tokens with a PAN tokenized during setup (200).
    TokenizeExisting,
    /// POST /v1/tokens/detokenize (vault-reader identity).
    Detokenize,
    /// GET /v1/tokens/{token}?domain=.
    Metadata,
    /// POST /v1/tokens/{token}/suspend, then /resume, alternately.
    Lifecycle,
    /// Payment challenge -> assertion (software authenticator) -> signed authorization.
    Authorize,
    /// A new mTLS connection (full handshake, no resumption) and GET /healthz, per operation.
    Handshake,
    /// GET /healthz on a kept-alive mTLS connection: the transport's ceiling.
    Noop,
    /// N connections opened and left idle; the daemon's resident memory reported.
    Idle,
}

impl Scenario {
    /// What `--scenario all` runs, in order (`idle` is a mode of its own).
    pub const ALL: [Scenario; 8] = [
        Self::Noop,
        Self::TokenizeNew,
        Self::TokenizeExisting,
        Self::Detokenize,
        Self::Metadata,
        Self::Lifecycle,
        Self::Authorize,
        Self::Handshake,
    ];

    /// The name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::TokenizeNew => "tokenize-new",
            Self::TokenizeExisting => "tokenize-existing",
            Self::Detokenize => "detokenize",
            Self::Metadata => "metadata",
            Self::Lifecycle => "lifecycle",
            Self::Authorize => "authorize",
            Self::Handshake => "handshake",
            Self::Noop => "noop",
            Self::Idle => "idle",
        }
    }

    /// `all` or one scenario name.
    pub fn parse_list(s: &str) -> Result<Vec<Scenario>, String> {
        if s == "all" {
            return Ok(Self::ALL.to_vec());
        }
        Self::ALL
            .iter()
            .chain([Self::Idle].iter())
            .find(|sc| sc.name() == s)
            .map(|sc| vec![*sc])
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|sc| sc.name()).collect();
                format!(
                    "unknown scenario {s:?}; one of: all, {}, idle",
                    names.join(", ")
                )
            })
    }

    /// Whether setup tokenizes a pool of cards for each connection.
    fn uses_pool(self) -> bool {
        matches!(
            self,
            Self::TokenizeExisting | Self::Detokenize | Self::Metadata | Self::Lifecycle
        )
    }
}

/// When the timed phase stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// After this long.
    Duration(Duration),
    /// After this many operations, over all connections.
    Requests(u64),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// CA, HTTP version and the gateway identity (every scenario but `detokenize`, and every
    /// setup). Its `url` is not used: `replicas` says where each connection goes.
    pub client: ClientOptions,
    /// The daemons driven, connection i on replica `i % n`.
    pub replicas: Replicas,
    /// The identity of the `detokenize` scenario's timed requests.
    pub reader: ClientIdentity,
    /// Concurrent connections.
    pub connections: usize,
    /// When the timed phase stops.
    pub limit: Limit,
    /// Untimed operations before the timed phase, on the same connections.
    pub warmup: Duration,
    /// Token domain (validated).
    pub domain: String,
    /// Seed of the test PANs (a random run number is added).
    pub seed: u64,
    /// Tokens (or PANs) tokenized in setup for the pool scenarios, over all connections.
    pub pool: usize,
    /// One request (or one `authorize` flow) that takes longer fails as `timeout`.
    pub request_timeout: Duration,
    /// The daemon's process id, for its resident memory (`idle`).
    pub server_pid: Option<u32>,
    /// Silent sockets held open during the warm-up and the timed phase, against the first
    /// replica.
    pub flood: Option<FloodOptions>,
}

/// Why a run could not be made (as opposed to errors counted while it ran).
#[derive(Debug)]
#[non_exhaustive]
pub enum BenchError {
    /// Bad options or files.
    Config(String),
    /// The untimed setup failed (connect, tokenize the pool, enrol a device).
    Setup(String),
}

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(m) => write!(f, "configuration: {m}"),
            Self::Setup(m) => write!(f, "setup: {m}"),
        }
    }
}

impl std::error::Error for BenchError {}

/// What every connection task of one scenario shares.
pub(crate) struct Plan {
    scenario: Scenario,
    replicas: Replicas,
    domain: String,
    pans: Arc<PanSource>,
    /// The TLS configuration of the timed connections.
    tls: Arc<rustls::ClientConfig>,
    /// The gateway configuration without session resumption, for `handshake`.
    handshake_tls: Arc<rustls::ClientConfig>,
    request_timeout: Duration,
}

/// Runs one scenario: setup, warm-up, the timed phase.
pub async fn run(opts: &BenchOptions, scenario: Scenario) -> Result<Outcome, BenchError> {
    if scenario == Scenario::Idle {
        return idle::run(opts).await;
    }
    let plan = Arc::new(plan(opts, scenario)?);
    let gateway =
        Arc::new(tls_config(&opts.client).map_err(|e| BenchError::Config(e.to_string()))?);
    let connections = opts.connections.max(1);
    let pool_share = if scenario.uses_pool() {
        opts.pool.div_ceil(connections).max(1)
    } else {
        0
    };

    // Untimed: connect, and tokenize pools or enrol devices, all connections at once. Each
    // connection sets up on the replica after its own, so with several replicas every timed
    // operation uses what another one wrote.
    let mut setups = JoinSet::new();
    for i in 0..connections {
        let (plan, gateway) = (plan.clone(), gateway.clone());
        let (replica, setup_replica) = (
            plan.replicas.of_connection(i),
            plan.replicas.setup_of_connection(i),
        );
        setups.spawn(async move {
            let mut client = connect(plan.replicas.url(setup_replica), gateway.clone()).await?;
            let work = Work::setup(&plan, &mut client, pool_share).await?;
            if setup_replica != replica || !Arc::ptr_eq(&plan.tls, &gateway) {
                client = connect(plan.replicas.url(replica), plan.tls.clone()).await?;
            }
            Ok::<_, BenchError>(Worker {
                replica,
                client: Some(client),
                work,
            })
        });
    }
    let mut workers = Vec::with_capacity(connections);
    while let Some(joined) = setups.join_next().await {
        workers.push(joined.map_err(|e| BenchError::Setup(e.to_string()))??);
    }

    // The flood starts before the warm-up, so the timed phase sees it at full strength.
    let flooding = match opts.flood {
        Some(f) => Some(flood::Flooding::start(
            resolve(plan.replicas.first()).await?,
            f,
        )?),
        None => None,
    };

    // Warm-up: the same operations, not recorded.
    if !opts.warmup.is_zero() {
        let stop = Stop::Deadline(Instant::now() + opts.warmup);
        workers = drive_all(&plan, workers, stop).await?.0;
    }

    let stop = match opts.limit {
        Limit::Duration(d) => Stop::Deadline(Instant::now() + d),
        Limit::Requests(n) => Stop::Count(AtomicU64::new(0), n),
    };
    let started = Instant::now();
    let driven = drive_all(&plan, workers, stop).await;
    let elapsed = started.elapsed();
    let flood = match (flooding, opts.flood) {
        (Some(f), Some(o)) => Some((o.sockets, f.stop().await)),
        _ => None,
    };
    let (_, tallies) = driven?;
    let mut outcome = Outcome::merge(scenario, connections, elapsed, tallies, &plan.replicas)
        .map_err(|e| BenchError::Setup(format!("merging histograms: {e}")))?;
    outcome.flood = flood;
    Ok(outcome)
}

/// The daemon's socket address, from its URL.
async fn resolve(url: &str) -> Result<std::net::SocketAddr, BenchError> {
    let base = BaseUrl::parse(url).map_err(|e| BenchError::Config(format!("URL {url:?}: {e}")))?;
    tokio::net::lookup_host((base.host_str(), base.port))
        .await
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| BenchError::Config(format!("cannot resolve {url:?}")))
}

fn plan(opts: &BenchOptions, scenario: Scenario) -> Result<Plan, BenchError> {
    let config = |o: &ClientOptions| {
        tls_config(o)
            .map(Arc::new)
            .map_err(|e| BenchError::Config(e.to_string()))
    };
    let tls = if scenario == Scenario::Detokenize {
        config(&ClientOptions {
            identity: Some(opts.reader.clone()),
            ..opts.client.clone()
        })?
    } else {
        config(&opts.client)?
    };
    let mut fresh = tls_config(&opts.client).map_err(|e| BenchError::Config(e.to_string()))?;
    // A full handshake per operation: no TLS 1.3 resumption ticket is kept or offered.
    fresh.resumption = rustls::client::Resumption::disabled();
    let pans = PanSource::new(opts.seed)
        .map_err(|e| BenchError::Config(format!("random generator: {e}")))?;
    Ok(Plan {
        scenario,
        replicas: opts.replicas.clone(),
        domain: opts.domain.clone(),
        pans: Arc::new(pans),
        tls,
        handshake_tls: Arc::new(fresh),
        request_timeout: opts.request_timeout,
    })
}

async fn connect(url: &str, tls: Arc<rustls::ClientConfig>) -> Result<Client, BenchError> {
    Client::connect_with(url, tls)
        .await
        .map_err(|e| BenchError::Setup(format!("connecting: {e}")))
}

/// When the connection tasks stop.
enum Stop {
    Deadline(Instant),
    /// Operations started so far, and how many to start.
    Count(AtomicU64, u64),
}

impl Stop {
    /// Whether another operation may start.
    fn next(&self) -> bool {
        match self {
            Self::Deadline(at) => Instant::now() < *at,
            Self::Count(started, limit) => started.fetch_add(1, Ordering::Relaxed) < *limit,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self {
            Self::Deadline(at) => Some(*at),
            Self::Count(..) => None,
        }
    }
}

/// What one connection measured.
pub(crate) struct Tally {
    /// The replica it drove.
    replica: usize,
    histogram: Histogram<u64>,
    ops: u64,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn new(replica: usize) -> Result<Self, BenchError> {
        Ok(Self {
            replica,
            histogram: new_histogram()?,
            ops: 0,
            errors: BTreeMap::new(),
        })
    }

    fn error(&mut self, class: String) {
        *self.errors.entry(class).or_insert(0) += 1;
    }
}

/// Microseconds from 1 µs to a minute, 3 significant figures.
pub(crate) fn new_histogram() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .map_err(|e| BenchError::Config(format!("histogram: {e}")))
}

/// One connection between phases.
struct Worker {
    /// The replica it drives.
    replica: usize,
    /// None while it is being replaced.
    client: Option<Client>,
    /// Its scenario state.
    work: Work,
}

/// Runs every connection until `stop`; hands the connections back for the next phase.
async fn drive_all(
    plan: &Arc<Plan>,
    workers: Vec<Worker>,
    stop: Stop,
) -> Result<(Vec<Worker>, Vec<Tally>), BenchError> {
    let stop = Arc::new(stop);
    let mut tasks = JoinSet::new();
    for worker in workers {
        let (plan, stop) = (plan.clone(), stop.clone());
        let tally = Tally::new(worker.replica)?;
        tasks.spawn(drive(plan, stop, worker, tally));
    }
    let mut back = Vec::new();
    let mut tallies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (worker, tally) = joined.map_err(|e| BenchError::Setup(e.to_string()))?;
        back.push(worker);
        tallies.push(tally);
    }
    Ok((back, tallies))
}

/// One connection: operations back to back until `stop`; a broken connection is replaced.
async fn drive(
    plan: Arc<Plan>,
    stop: Arc<Stop>,
    worker: Worker,
    mut tally: Tally,
) -> (Worker, Tally) {
    let Worker {
        replica,
        mut client,
        mut work,
    } = worker;
    let url = plan.replicas.url(replica);
    while stop.next() {
        let conn = match client.as_mut() {
            Some(c) => c,
            None => match Client::connect_with(url, plan.tls.clone()).await {
                Ok(c) => client.insert(c),
                Err(e) => {
                    tally.error(format!("reconnect: {}", connect_class(&e)));
                    pause(stop.deadline()).await;
                    continue;
                }
            },
        };
        let started = Instant::now();
        let result =
            match tokio::time::timeout(plan.request_timeout, work.op(&plan, url, conn)).await {
                Ok(r) => r,
                Err(_) => Err(OpError::timeout()),
            };
        match result {
            Ok(()) => {
                let us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.histogram.saturating_record(us.max(1));
                tally.ops += 1;
            }
            Err(e) => {
                if e.broken {
                    client = None;
                }
                tally.error(e.class);
            }
        }
    }
    let worker = Worker {
        replica,
        client,
        work,
    };
    (worker, tally)
}

fn connect_class(e: &crate::client::ClientError) -> &'static str {
    match e {
        crate::client::ClientError::Connect(_) => "connect",
        crate::client::ClientError::Tls(_) => "TLS",
        _ => "other",
    }
}

/// Waits before a new connect, never past the deadline.
async fn pause(deadline: Option<Instant>) {
    let wait = match deadline {
        Some(at) => RECONNECT_PAUSE.min(at.saturating_duration_since(Instant::now())),
        None => RECONNECT_PAUSE,
    };
    tokio::time::sleep(wait).await;
}
