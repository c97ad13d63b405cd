//! Prometheus metrics over fixed label sets, so recording is a few atomic adds and never
//! takes a lock or allocates.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// The API routes (the `route` label). Anything else is recorded as `other`.
pub const ROUTES: &[&str] = &[
    "tokenize",
    "detokenize",
    "tokenize_batch",
    "detokenize_batch",
    "metadata",
    "suspend",
    "resume",
    "delete",
    "device_challenge",
    "enrol_device",
    "list_devices",
    "device",
    "revoke_device",
    "authorization_challenge",
    "authorize",
    "authorization",
    "jwks",
    "keys",
    "key_change",
    "rewrap",
    "audit",
    "audit_jwks",
    "audit_sth",
    "audit_proof",
    "audit_consistency",
    "audit_report",
    "openapi",
    "healthz",
    "readyz",
    "metrics",
    "unmatched",
];

/// HSM operations (the `op` label of `payhsm_hsm_duration_seconds`).
pub const HSM_OPS: &[&str] = &["ping", "unwrap_data_key", "new_data_key", "sign"];

/// Store operations (the `op` label of `payhsm_store_duration_seconds`): the `Store` methods.
pub const STORE_OPS: &[&str] = &[
    "tokenize",
    "detokenize",
    "transition",
    "token",
    "data_keys",
    "activate_data_key",
    "data_key_info",
    "retire_data_key",
    "destroy_data_key",
    "approve_key_change",
    "tokens_to_rewrap",
    "count_to_rewrap",
    "rewrap",
    "signing_keys",
    "add_signing_key",
    "activate_signing_key",
    "retire_signing_key",
    "unexpired_authorizations",
    "destroy_signing_key",
    "create_challenge",
    "consume_challenge",
    "enrol_device",
    "challenge",
    "device",
    "device_by_credential",
    "update_sign_count",
    "devices_of",
    "revoke_device",
    "create_authorization_challenge",
    "authorization_challenge",
    "authorization",
    "commit_authorization",
    "idempotency",
    "record",
    "audit_records",
    "ping",
    "latest_audit_record",
    "pin_kek_kcv",
];

/// Why a connection was refused (the `reason` label of `payhsm_connections_refused_total`):
/// a budget that was full (see `transport::budget`), or a resumed session whose certificate
/// no longer verifies.
pub const REFUSALS: &[&str] = &[
    "handshakes",
    "address_handshakes",
    "connections",
    "address_connections",
    "identity_connections",
    "resumed_certificate",
];

/// Why the server dropped a connection instead of closing it gracefully (the `reason` label
/// of `payhsm_connections_dropped_total`).
pub const DROPS: &[&str] = &["write_stall", "close_timeout"];

/// Histogram upper bounds in seconds, shared by every duration histogram.
pub const DURATION_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Status codes with their own counter; the rest are counted as `other`.
const STATUSES: &[u16] = &[
    200, 201, 400, 403, 404, 405, 409, 413, 415, 422, 429, 500, 503,
];

/// The label used for values outside a fixed set.
const OTHER: &str = "other";

/// The daemon's metrics. Shared as `Arc<Metrics>`; every method takes `&self`.
#[derive(Debug)]
pub struct Metrics {
    /// `[route][status]`, each with one extra slot for `other`.
    requests: Vec<Vec<AtomicU64>>,
    request_durations: Family,
    hsm_durations: Family,
    store_durations: Family,
    refused: Vec<AtomicU64>,
    dropped: Vec<AtomicU64>,
    /// The Metadata Service BLOB in force: `no`, when it was installed and its `nextUpdate`
    /// (Unix seconds); all 0 when none is.
    mds: [AtomicI64; 3],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// All counters at zero.
    pub fn new() -> Self {
        Self {
            requests: (0..=ROUTES.len())
                .map(|_| (0..=STATUSES.len()).map(|_| AtomicU64::new(0)).collect())
                .collect(),
            request_durations: Family::new(ROUTES),
            hsm_durations: Family::new(HSM_OPS),
            store_durations: Family::new(STORE_OPS),
            refused: (0..=REFUSALS.len()).map(|_| AtomicU64::new(0)).collect(),
            dropped: (0..=DROPS.len()).map(|_| AtomicU64::new(0)).collect(),
            mds: [AtomicI64::new(0), AtomicI64::new(0), AtomicI64::new(0)],
        }
    }

    /// Records the Metadata Service BLOB in force: its `no`, when it was installed and its
    /// `nextUpdate` (Unix seconds).
    pub fn record_mds_blob(&self, no: u64, installed: i64, next_update: i64) {
        let [n, i, u] = &self.mds;
        n.store(i64::try_from(no).unwrap_or(i64::MAX), Ordering::Relaxed);
        i.store(installed, Ordering::Relaxed);
        u.store(next_update, Ordering::Relaxed);
    }

    /// Counts one answered request and its duration.
    pub fn record_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let r = label_index(ROUTES, route);
        let s = STATUSES
            .iter()
            .position(|x| *x == status)
            .unwrap_or(STATUSES.len());
        if let Some(c) = self.requests.get(r).and_then(|row| row.get(s)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.request_durations.observe(route, elapsed);
    }

    /// Records the duration of one HSM call.
    pub fn record_hsm(&self, op: &'static str, elapsed: Duration) {
        self.hsm_durations.observe(op, elapsed);
    }

    /// Records the duration of one store call.
    pub fn record_store(&self, op: &'static str, elapsed: Duration) {
        self.store_durations.observe(op, elapsed);
    }

    /// Counts one connection refused for `reason` (one of [`REFUSALS`]).
    pub fn record_refused(&self, reason: &'static str) {
        if let Some(c) = self.refused.get(label_index(REFUSALS, reason)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one connection dropped for `reason` (one of [`DROPS`]).
    pub fn record_closed(&self, reason: &'static str) {
        if let Some(c) = self.dropped.get(label_index(DROPS, reason)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        out.push_str("# HELP payhsm_requests_total API requests answered, by route and status.\n");
        out.push_str("# TYPE payhsm_requests_total counter\n");
        for (r, row) in self.requests.iter().enumerate() {
            let route = ROUTES.get(r).copied().unwrap_or(OTHER);
            for (s, count) in row.iter().enumerate() {
                let n = count.load(Ordering::Relaxed);
                if n == 0 {
                    continue;
                }
                let _ = match STATUSES.get(s) {
                    Some(code) => writeln!(
                        out,
                        "payhsm_requests_total{{route=\"{route}\",code=\"{code}\"}} {n}"
                    ),
                    None => writeln!(
                        out,
                        "payhsm_requests_total{{route=\"{route}\",code=\"{OTHER}\"}} {n}"
                    ),
                };
            }
        }
        self.request_durations.render(
            &mut out,
            "payhsm_request_duration_seconds",
            "route",
            "API request duration, by route.",
        );
        self.hsm_durations.render(
            &mut out,
            "payhsm_hsm_duration_seconds",
            "op",
            "HSM call duration, by operation.",
        );
        self.store_durations.render(
            &mut out,
            "payhsm_store_duration_seconds",
            "op",
            "Store call duration, by operation.",
        );
        render_counters(
            &mut out,
            "payhsm_connections_refused_total",
            "Connections refused, by reason.",
            REFUSALS,
            &self.refused,
        );
        render_counters(
            &mut out,
            "payhsm_connections_dropped_total",
            "Connections dropped without a graceful close, by reason.",
            DROPS,
            &self.dropped,
        );
        let [no, installed, next_update] = self.mds.each_ref().map(|a| a.load(Ordering::Relaxed));
        if installed != 0 {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            for (name, help, value) in [
                (
                    "payhsm_mds_blob_age_seconds",
                    "Seconds since the Metadata Service BLOB in force was installed.",
                    now - installed,
                ),
                (
                    "payhsm_mds_blob_seconds_past_next_update",
                    "Seconds the BLOB in force is past its nextUpdate (negative: still fresh).",
                    now - next_update,
                ),
                (
                    "payhsm_mds_blob_number",
                    "The no of the Metadata Service BLOB in force.",
                    no,
                ),
            ] {
                let _ = writeln!(
                    out,
                    "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
                );
            }
        }
        out
    }
}

/// A counter family with a `reason` label; every label is rendered, zero or not, so an alert
/// can be written before the first refusal.
fn render_counters(
    out: &mut String,
    name: &str,
    help: &str,
    labels: &[&str],
    counts: &[AtomicU64],
) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} counter");
    for (label, count) in labels.iter().zip(counts) {
        let n = count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}{{reason=\"{label}\"}} {n}");
    }
}

/// The index of `label` in `labels`, or `labels.len()` (the `other` slot).
fn label_index(labels: &[&str], label: &str) -> usize {
    labels
        .iter()
        .position(|l| *l == label)
        .unwrap_or(labels.len())
}

/// One histogram per label value, plus `other`.
#[derive(Debug)]
struct Family {
    labels: &'static [&'static str],
    histograms: Vec<Histogram>,
}

impl Family {
    fn new(labels: &'static [&'static str]) -> Self {
        Self {
            labels,
            histograms: (0..=labels.len()).map(|_| Histogram::new()).collect(),
        }
    }

    fn observe(&self, label: &str, elapsed: Duration) {
        if let Some(h) = self.histograms.get(label_index(self.labels, label)) {
            h.observe(elapsed);
        }
    }

    fn render(&self, out: &mut String, name: &str, key: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        for (i, h) in self.histograms.iter().enumerate() {
            let count = h.count.load(Ordering::Relaxed);
            if count == 0 {
                continue;
            }
            let label = self.labels.get(i).copied().unwrap_or(OTHER);
            let mut cumulative = 0u64;
            for (bound, bucket) in DURATION_BUCKETS.iter().zip(&h.buckets) {
                cumulative += bucket.load(Ordering::Relaxed);
                let _ = writeln!(
                    out,
                    "{name}_bucket{{{key}=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "{name}_bucket{{{key}=\"{label}\",le=\"+Inf\"}} {count}"
            );
            let sum = h.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{{key}=\"{label}\"}} {sum}");
            let _ = writeln!(out, "{name}_count{{{key}=\"{label}\"}} {count}");
        }
    }
}

/// A fixed-bucket histogram of durations. Buckets hold per-bucket (not cumulative) counts;
/// rendering accumulates them.
#[derive(Debug)]
struct Histogram {
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: DURATION_BUCKETS.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = DURATION_BUCKETS.iter().position(|b| secs <= *b) {
            if let Some(b) = self.buckets.get(i) {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        // Count last, so a concurrent render never sees more in buckets than in count.
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

/// Store funnels report here ([`crate::store::Timing`]).
impl crate::store::StoreObserver for Metrics {
    fn observe(&self, op: &'static str, elapsed: Duration) {
        self.record_store(op, elapsed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The method names of the store's port traits, read from their source: every one has
    /// its own `op` label (a new method without one would be counted as `other`).
    #[test]
    fn store_ops_are_exactly_the_port_methods() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/store");
        let mut methods = Vec::new();
        for file in [
            "tokens",
            "keys",
            "devices",
            "authorizations",
            "idempotency",
            "audit",
            "mod",
        ] {
            let text = std::fs::read_to_string(dir.join(format!("{file}.rs"))).unwrap();
            let mut in_trait = false;
            for line in text.lines() {
                if let Some(rest) = line.strip_prefix("pub trait ") {
                    let name = rest.split([':', ' ', '<']).next().unwrap_or_default();
                    in_trait = name.ends_with("Store");
                } else if line == "}" {
                    in_trait = false;
                } else if let Some(rest) = line.trim().strip_prefix("fn ").filter(|_| in_trait) {
                    let name = rest.split(['(', '<']).next().unwrap_or_default();
                    methods.push(name.to_owned());
                }
            }
        }
        methods.sort();
        let mut ops: Vec<String> = STORE_OPS.iter().map(|s| (*s).to_owned()).collect();
        ops.sort();
        assert!(methods.len() > 30, "{methods:?}");
        assert_eq!(ops, methods);
    }

    #[test]
    fn render_contains_recorded_requests_and_durations() {
        let m = Metrics::new();
        m.record_request("tokenize", 201, Duration::from_micros(300));
        m.record_request("tokenize", 201, Duration::from_millis(3));
        m.record_request("detokenize", 403, Duration::from_millis(1));
        m.record_request("not-a-route", 599, Duration::from_secs(20));
        m.record_hsm("ping", Duration::from_millis(2));
        m.record_store("tokenize", Duration::from_millis(4));
        let text = m.render();
        assert!(text.contains("payhsm_requests_total{route=\"tokenize\",code=\"201\"} 2\n"));
        assert!(text.contains("payhsm_requests_total{route=\"detokenize\",code=\"403\"} 1\n"));
        assert!(text.contains("payhsm_requests_total{route=\"other\",code=\"other\"} 1\n"));
        assert!(text.contains(
            "payhsm_request_duration_seconds_bucket{route=\"tokenize\",le=\"0.0005\"} 1\n"
        ));
        assert!(text.contains(
            "payhsm_request_duration_seconds_bucket{route=\"tokenize\",le=\"0.005\"} 2\n"
        ));
        assert!(text
            .contains("payhsm_request_duration_seconds_bucket{route=\"other\",le=\"+Inf\"} 1\n"));
        assert!(text.contains("payhsm_request_duration_seconds_count{route=\"tokenize\"} 2\n"));
        assert!(text.contains("payhsm_hsm_duration_seconds_count{op=\"ping\"} 1\n"));
        assert!(text.contains("payhsm_store_duration_seconds_count{op=\"tokenize\"} 1\n"));
        assert!(text.contains("# TYPE payhsm_requests_total counter\n"));
        assert!(text.contains("# TYPE payhsm_store_duration_seconds histogram\n"));
    }

    #[test]
    fn fresh_metrics_render_only_headers() {
        let text = Metrics::new().render();
        assert!(!text.contains("payhsm_requests_total{"));
        assert!(text.contains("# TYPE payhsm_hsm_duration_seconds histogram"));
    }
}
