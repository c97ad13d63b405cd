//! What a run reports: per scenario the operations, rate, latency percentiles (from the merged
//! HDR histogram), errors by class and operations per replica, as a table or one JSON object
//! per line, with the machine, the command line and the commit.

use super::replicas::Replicas;
use super::{new_histogram, BenchError, Scenario, Tally};
use hdrhistogram::Histogram;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

/// The members every `--json` line has (it has more: `max_ms`, `error_classes`, ...).
pub const JSON_FIELDS: [&str; 11] = [
    "scenario",
    "ops_per_sec",
    "p50_ms",
    "p99_ms",
    "p999_ms",
    "errors",
    "connections",
    "duration_s",
    "ops",
    "machine",
    "commit",
];

/// The result of one scenario.
#[derive(Debug)]
pub struct Outcome {
    /// Which scenario.
    pub scenario: Scenario,
    /// Concurrent connections.
    pub connections: usize,
    /// Length of the timed phase.
    pub elapsed: Duration,
    /// Successful operations.
    pub ops: u64,
    /// Latency of the successful operations, µs.
    pub histogram: Histogram<u64>,
    /// Failed operations by class (`HTTP 409 token_state_conflict`, `transport: TLS`, ...).
    pub errors: BTreeMap<String, u64>,
    /// Operations and failures on each replica, in `--url` order.
    pub per_replica: Vec<ReplicaCount>,
    /// The `idle` mode's findings.
    pub idle: Option<IdleMemory>,
    /// With `--flood`: the flood's sockets held at once and how many it opened in all.
    pub flood: Option<(usize, u64)>,
}

/// What one replica was asked in the timed phase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaCount {
    /// Its URL.
    pub url: String,
    /// Successful operations.
    pub ops: u64,
    /// Failed operations.
    pub errors: u64,
}

/// What the `idle` mode found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleMemory {
    /// Connections asked for.
    pub wanted: usize,
    /// Connections that completed the handshake and one request.
    pub opened: usize,
    /// Of those, how many still answered after the idle period.
    pub alive_after_idle: usize,
    /// How long they were left idle.
    pub idle_s: u64,
    /// The daemon's VmRSS (KiB) before opening, with all open, after the idle period.
    pub server_rss_kb: Option<[u64; 3]>,
}

impl Outcome {
    /// Merges the connections' tallies, counting them per replica too.
    pub(crate) fn merge(
        scenario: Scenario,
        connections: usize,
        elapsed: Duration,
        tallies: Vec<Tally>,
        replicas: &Replicas,
    ) -> Result<Self, BenchError> {
        let mut histogram = new_histogram()?;
        let mut errors = BTreeMap::new();
        let mut ops = 0;
        let mut per_replica: Vec<ReplicaCount> = replicas
            .urls()
            .iter()
            .map(|url| ReplicaCount {
                url: url.clone(),
                ops: 0,
                errors: 0,
            })
            .collect();
        for t in tallies {
            histogram
                .add(&t.histogram)
                .map_err(|e| BenchError::Config(format!("merging histograms: {e:?}")))?;
            ops += t.ops;
            if let Some(count) = per_replica.get_mut(t.replica) {
                count.ops += t.ops;
                count.errors += t.errors.values().sum::<u64>();
            }
            for (class, n) in t.errors {
                *errors.entry(class).or_insert(0) += n;
            }
        }
        Ok(Self {
            scenario,
            connections,
            elapsed,
            ops,
            histogram,
            errors,
            per_replica,
            idle: None,
            flood: None,
        })
    }

    /// Failed operations, all classes.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed operations over all attempted ones (0 when none was attempted).
    pub fn error_rate(&self) -> f64 {
        let attempted = self.ops + self.error_count();
        if attempted == 0 {
            0.0
        } else {
            self.error_count() as f64 / attempted as f64
        }
    }

    /// Successful operations per second of the timed phase.
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }

    /// The latency at `quantile` (0..=1), milliseconds.
    pub fn quantile_ms(&self, quantile: f64) -> f64 {
        self.histogram.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// The largest latency, milliseconds.
    pub fn max_ms(&self) -> f64 {
        self.histogram.max() as f64 / 1000.0
    }

    /// One JSON object for this scenario.
    pub fn json(&self, run: &RunInfo) -> serde_json::Value {
        let mut v = json!({
            "scenario": self.scenario.name(),
            "connections": self.connections,
            "duration_s": round3(self.elapsed.as_secs_f64()),
            "ops": self.ops,
            "ops_per_sec": round3(self.ops_per_sec()),
            "p50_ms": round3(self.quantile_ms(0.5)),
            "p99_ms": round3(self.quantile_ms(0.99)),
            "p999_ms": round3(self.quantile_ms(0.999)),
            "max_ms": round3(self.max_ms()),
            "errors": self.error_count(),
            "error_classes": self.errors,
            "protocol": run.protocol,
            "machine": {"cores": run.machine.cores, "cpu": run.machine.cpu},
            "commit": run.commit,
            "version": env!("CARGO_PKG_VERSION"),
            "command": run.command,
            "replicas": self.per_replica.iter().map(|r| json!({
                "url": r.url,
                "ops": r.ops,
                "errors": r.errors,
            })).collect::<Vec<_>>(),
        });
        if let (Some((sockets, opened)), Some(fields)) = (self.flood, v.as_object_mut()) {
            fields.insert(
                "flood".to_owned(),
                json!({"sockets": sockets, "opened": opened}),
            );
        }
        if let (Some(idle), Some(fields)) = (&self.idle, v.as_object_mut()) {
            fields.insert(
                "idle".to_owned(),
                json!({
                    "wanted": idle.wanted,
                    "opened": idle.opened,
                    "alive_after_idle": idle.alive_after_idle,
                    "idle_s": idle.idle_s,
                    "server_rss_kb_before": idle.server_rss_kb.map(|r| r[0]),
                    "server_rss_kb_open": idle.server_rss_kb.map(|r| r[1]),
                    "server_rss_kb_after_idle": idle.server_rss_kb.map(|r| r[2]),
                    "server_kb_per_connection": idle.kb_per_connection(),
                }),
            );
        }
        v
    }

    /// One row of the human table (see [`TABLE_HEADER`]).
    pub fn row(&self) -> String {
        format!(
            "{:<18} {:>5} {:>7.2} {:>10} {:>10.1} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7}",
            self.scenario.name(),
            self.connections,
            self.elapsed.as_secs_f64(),
            self.ops,
            self.ops_per_sec(),
            self.quantile_ms(0.5),
            self.quantile_ms(0.99),
            self.quantile_ms(0.999),
            self.max_ms(),
            self.error_count(),
        )
    }

    /// Lines under the table: errors by class, operations per replica when there are several,
    /// and the idle findings.
    pub fn notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .errors
            .iter()
            .map(|(class, n)| format!("  {}: {n} x {class}", self.scenario.name()))
            .collect();
        if self.per_replica.len() > 1 {
            out.extend(self.per_replica.iter().map(|r| {
                format!(
                    "  {}: {} {} ops, {} errors",
                    self.scenario.name(),
                    r.url,
                    r.ops,
                    r.errors
                )
            }));
        }
        if let Some((sockets, opened)) = self.flood {
            out.push(format!(
                "  {}: under a flood of {sockets} silent sockets ({opened} opened in all)",
                self.scenario.name()
            ));
        }
        if let Some(idle) = &self.idle {
            out.push(format!(
                "  idle: {}/{} connections opened, {} still answering after {} s idle",
                idle.opened, idle.wanted, idle.alive_after_idle, idle.idle_s
            ));
            match (idle.server_rss_kb, idle.kb_per_connection()) {
                (Some([before, open, end]), Some(per)) => out.push(format!(
                    "  idle: daemon VmRSS {before} KiB before, {open} KiB with all open \
                     ({per:.1} KiB per connection), {end} KiB after the idle period"
                )),
                _ => out.push("  idle: daemon memory not read (give --server-pid)".to_owned()),
            }
        }
        out
    }
}

impl IdleMemory {
    /// (RSS with all open - RSS before) / connections opened, KiB.
    pub fn kb_per_connection(&self) -> Option<f64> {
        let [before, open, _] = self.server_rss_kb?;
        (self.opened > 0).then(|| (open as f64 - before as f64) / self.opened as f64)
    }
}

/// The table's column names.
pub const TABLE_HEADER: &str = "scenario           conns  time_s        ops      ops/s   p50_ms   p99_ms p99.9_ms   max_ms  errors";

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Where and what was measured, the same for every scenario of a run.
#[derive(Debug, Clone)]
pub struct RunInfo {
    /// The machine.
    pub machine: Machine,
    /// `git rev-parse --short HEAD` of the working directory, else `v<crate version>`.
    pub commit: String,
    /// The command line, as typed.
    pub command: String,
    /// `HTTP/1.1` or `HTTP/2`, over TLS 1.3 with a client certificate.
    pub protocol: &'static str,
    /// The daemons' URLs, in `--url` order.
    pub urls: Vec<String>,
}

impl RunInfo {
    /// Detects the machine and the commit; `args` is the command line.
    pub fn detect(args: &[String], http2: bool, replicas: &Replicas) -> Self {
        Self {
            machine: Machine::detect(),
            commit: commit(),
            command: shell_words(args),
            protocol: if http2 { "HTTP/2" } else { "HTTP/1.1" },
            urls: replicas.urls().to_vec(),
        }
    }

    /// The lines above the table.
    pub fn header(&self) -> String {
        let daemons = match self.urls.as_slice() {
            [one] => format!("daemon: {one}"),
            several => format!(
                "daemons: {} replicas, connection i on replica i mod {n}, set up on the next: {}",
                several.len(),
                several.join(", "),
                n = several.len()
            ),
        };
        format!(
            "payhsm bench {}, commit {}\nmachine: {} cores, {}\ncommand: {}\ntransport: {} keep-alive over TLS 1.3 with a client certificate\n{daemons}",
            env!("CARGO_PKG_VERSION"),
            self.commit,
            self.machine.cores,
            self.machine.cpu,
            self.command,
            self.protocol,
        )
    }
}

/// Cores and CPU model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// Cores this process may use.
    pub cores: usize,
    /// `model name` from /proc/cpuinfo, or `unknown`.
    pub cpu: String,
}

impl Machine {
    /// This machine.
    pub fn detect() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| cpu_model(&text))
            .unwrap_or_else(|| "unknown".to_owned());
        Self {
            cores: std::thread::available_parallelism().map_or(1, usize::from),
            cpu,
        }
    }
}

/// The first `model name` of a /proc/cpuinfo text.
fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// `git rev-parse --short HEAD` (with `-dirty` when the tree has changes), else the crate
/// version.
fn commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(out) if out.status.success() => {
            let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|o| o.status.success() && !o.stdout.is_empty());
            if dirty {
                format!("{hash}-dirty")
            } else {
                hash
            }
        }
        _ => format!("v{}", env!("CARGO_PKG_VERSION")),
    }
}

/// The arguments joined for a shell, quoting those that need it.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,@%+".contains(&b));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_model_is_the_first_model_name() {
        let text =
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nprocessor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(text).as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(cpu_model("flags: x"), None);
    }

    #[test]
    fn shell_words_quote_what_needs_it() {
        let args = [
            "payhsm",
            "bench",
            "--url",
            "https://127.0.0.1:8443",
            "a b",
            "it's",
        ]
        .map(String::from);
        assert_eq!(
            shell_words(&args),
            r"payhsm bench --url https://127.0.0.1:8443 'a b' 'it'\''s'"
        );
    }

    #[test]
    fn outcome_reports_rate_percentiles_and_error_rate() {
        let mut t = Tally::new(0).unwrap();
        for us in 1..=1000 {
            t.histogram.record(us).unwrap();
        }
        t.ops = 1000;
        t.error("HTTP 409 token_state_conflict".into());
        let replicas = Replicas::new(vec!["https://127.0.0.1:8443".into()]).unwrap();
        let o = Outcome::merge(
            Scenario::Noop,
            1,
            Duration::from_secs(2),
            vec![t],
            &replicas,
        )
        .unwrap();
        assert_eq!(o.ops_per_sec(), 500.0);
        assert!((o.quantile_ms(0.5) - 0.5).abs() < 0.01);
        assert!((o.error_rate() - 1.0 / 1001.0).abs() < 1e-9);
        let run = RunInfo {
            machine: Machine {
                cores: 2,
                cpu: "cpu".into(),
            },
            commit: "abc".into(),
            command: "payhsm bench".into(),
            protocol: "HTTP/1.1",
            urls: replicas.urls().to_vec(),
        };
        let v = o.json(&run);
        for field in JSON_FIELDS {
            assert!(v.get(field).is_some(), "{field}");
        }
        assert_eq!(v["errors"], 1);
        assert_eq!(v["error_classes"]["HTTP 409 token_state_conflict"], 1);
        assert_eq!(v["replicas"][0]["ops"], 1000);
        assert!(run.header().contains("daemon: https://127.0.0.1:8443"));
    }

    #[test]
    fn several_replicas_are_counted_apart_and_named_in_the_notes() {
        let replicas = Replicas::new(vec!["https://a:1".into(), "https://b:2".into()]).unwrap();
        let tally = |replica, ops, errors: u64| {
            let mut t = Tally::new(replica).unwrap();
            t.histogram.record(100).unwrap();
            t.ops = ops;
            for _ in 0..errors {
                t.error("timeout".into());
            }
            t
        };
        let tallies = vec![tally(0, 5, 0), tally(1, 7, 1), tally(0, 3, 2)];
        let o = Outcome::merge(
            Scenario::Noop,
            3,
            Duration::from_secs(1),
            tallies,
            &replicas,
        )
        .unwrap();
        let counts: Vec<(&str, u64, u64)> = o
            .per_replica
            .iter()
            .map(|r| (r.url.as_str(), r.ops, r.errors))
            .collect();
        assert_eq!(counts, [("https://a:1", 8, 2), ("https://b:2", 7, 1)]);
        assert_eq!((o.ops, o.error_count()), (15, 3));
        let notes = o.notes();
        assert!(
            notes.contains(&"  noop: https://a:1 8 ops, 2 errors".to_owned()),
            "{notes:?}"
        );
        assert!(
            notes.contains(&"  noop: https://b:2 7 ops, 1 errors".to_owned()),
            "{notes:?}"
        );
    }
}
