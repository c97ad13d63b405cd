//! The `idle` mode: opens N mTLS connections (handshake and one `GET /healthz` each), leaves
//! them idle for the run's duration, then asks each one again. With `--server-pid` it reads the
//! daemon's VmRSS from /proc before, with all open, and after the idle period.
//!
//! The latencies reported are those of opening (handshake + first request); `ops` is the
//! number of connections opened.

use super::report::{IdleMemory, Outcome};
use super::{BenchError, BenchOptions, Limit, Scenario, Tally};
use crate::client::{tls_config, Client};
use hyper::Method;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Handshakes in flight at once while opening.
const OPENING_CONCURRENCY: usize = 32;

pub(super) async fn run(opts: &BenchOptions) -> Result<Outcome, BenchError> {
    let tls = Arc::new(tls_config(&opts.client).map_err(|e| BenchError::Config(e.to_string()))?);
    let idle = match opts.limit {
        Limit::Duration(d) => d,
        Limit::Requests(_) => Duration::ZERO,
    };
    let rss_before = opts.server_pid.map(server_rss_kb).transpose()?;

    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(OPENING_CONCURRENCY));
    let mut opening = JoinSet::new();
    for i in 0..opts.connections {
        let replica = opts.replicas.of_connection(i);
        let (tls, gate, url, timeout) = (
            tls.clone(),
            gate.clone(),
            opts.replicas.url(replica).to_owned(),
            opts.request_timeout,
        );
        opening.spawn(async move {
            let _slot = gate.acquire_owned().await;
            let t = Instant::now();
            let open = async {
                let mut c = Client::connect_with(&url, tls).await?;
                let r = c.request(Method::GET, "/healthz", None).await?;
                Ok::<_, crate::client::ClientError>((c, r.status))
            };
            let opened = match tokio::time::timeout(timeout, open).await {
                Ok(Ok((c, 200))) => Ok((c, t.elapsed())),
                Ok(Ok((_, status))) => Err(format!("HTTP {status}")),
                Ok(Err(e)) => Err(format!("open: {}", super::connect_class(&e))),
                Err(_) => Err("open: timeout".to_owned()),
            };
            (replica, opened)
        });
    }
    // One tally per replica, so the report counts each apart.
    let mut tallies = (0..opts.replicas.len())
        .map(Tally::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut open = Vec::with_capacity(opts.connections);
    while let Some(joined) = opening.join_next().await {
        let (replica, opened) = joined.map_err(|e| BenchError::Setup(e.to_string()))?;
        let Some(tally) = tallies.get_mut(replica) else {
            continue;
        };
        match opened {
            Ok((client, took)) => {
                let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
                tally.histogram.saturating_record(us.max(1));
                tally.ops += 1;
                open.push(client);
            }
            Err(class) => tally.error(class),
        }
    }
    let elapsed = started.elapsed();
    let rss_open = opts.server_pid.map(server_rss_kb).transpose()?;

    tokio::time::sleep(idle).await;
    let rss_end = opts.server_pid.map(server_rss_kb).transpose()?;
    let mut alive = 0;
    for client in &mut open {
        let again = client.request(Method::GET, "/healthz", None);
        if matches!(tokio::time::timeout(opts.request_timeout, again).await, Ok(Ok(r)) if r.status == 200)
        {
            alive += 1;
        }
    }
    let opened = open.len();
    drop(open);

    let mut outcome = Outcome::merge(
        Scenario::Idle,
        opts.connections,
        elapsed,
        tallies,
        &opts.replicas,
    )?;
    outcome.idle = Some(IdleMemory {
        wanted: opts.connections,
        opened,
        alive_after_idle: alive,
        idle_s: idle.as_secs(),
        server_rss_kb: match (rss_before, rss_open, rss_end) {
            (Some(a), Some(b), Some(c)) => Some([a, b, c]),
            _ => None,
        },
    });
    Ok(outcome)
}

/// VmRSS of process `pid`, KiB, from /proc/PID/status.
fn server_rss_kb(pid: u32) -> Result<u64, BenchError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| BenchError::Config(format!("--server-pid: {path}: {e}")))?;
    vm_rss_kb(&text).ok_or_else(|| BenchError::Config(format!("--server-pid: no VmRSS in {path}")))
}

fn vm_rss_kb(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tpayhsmd\nVmPeak:\t  100 kB\nVmRSS:\t   23456 kB\nThreads:\t4\n";
        assert_eq!(vm_rss_kb(status), Some(23456));
        assert_eq!(vm_rss_kb("Name:\tx\n"), None);
    }

    #[test]
    fn this_process_has_a_resident_set() {
        assert!(server_rss_kb(std::process::id()).unwrap() > 0);
    }
}
