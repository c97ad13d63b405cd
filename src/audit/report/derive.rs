//! Every figure of the report, from the log, the inventory and the facts: one function.

use super::{
    AuditTrail, Gap, Identities, Integrity, InventoryKey, KeyEvent, KeyManagement, KeyRow,
    LogScope, PanStorage, PrincipalDetokenize, PrincipalSeen, Refusal, Report, ReportInputs,
    VersionCount, MAX_SEQS, REPORT_KIND,
};
use crate::audit::chain::{record_hash, to_hex, GENESIS};
use crate::audit::merkle;
use crate::audit::proof::{SignedTreeHead, TREE_HEAD_ACTION};
use crate::audit::{hash_from_hex, AuditRecord, Decision};
use std::collections::BTreeMap;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Outcomes that mean the request did what was asked (or was recorded as pending a second
/// custodian): any other outcome is a refusal or a failure, counted by code in 10.2.
pub const SUCCESS_OUTCOMES: &[&str] = &[
    "active",
    "approved",
    "created",
    "done",
    "enrolled",
    "existing",
    "granted",
    "ok",
    "pending",
    "recorded",
    "registered",
    "restored",
    "revoked",
    "rewrapped",
];

/// Why a report cannot be derived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeriveError {
    /// `since`/`until` are not a period (see [`super::Period::parse`]).
    Period(&'static str),
}

impl std::fmt::Display for DeriveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Period(why) => write!(f, "bad period: {why}"),
        }
    }
}

impl std::error::Error for DeriveError {}

/// The report of `inputs` over `log`: the whole log from record 1 up to the head the report
/// covers, in order (what `GET /v1/audit` pages or an export hold).
pub fn derive(inputs: &ReportInputs, log: &[AuditRecord]) -> Report {
    let generated = OffsetDateTime::parse(&inputs.generated_at, &Rfc3339).ok();
    let mut in_period: Vec<(&AuditRecord, String)> = Vec::new();
    let mut undated = Vec::new();
    for r in log {
        match day_of(&r.event.time) {
            Some(d) if inputs.period.contains(d) => in_period.push((r, super::day(d))),
            Some(_) => {}
            None => undated.push(r.seq),
        }
    }
    undated.truncate(MAX_SEQS);
    // PCI DSS v4.0 10.3.4: existing log data cannot be changed without it being detected.
    let (gaps, broken) = check_chain(log);
    let (latest_signed_tree_head, tree_head_matches_log) = match latest_tree_head(log) {
        Some(head) => (Some(head.jws.clone()), Some(tree_matches(log, &head))),
        None => (None, None),
    };
    let integrity = Integrity {
        chain_verified: gaps.is_empty() && broken.is_empty(),
        gaps,
        broken,
        undated,
        latest_signed_tree_head,
        tree_head_matches_log,
    };
    let scope = LogScope {
        records: log.last().map_or(0, |r| r.seq),
        head: log
            .last()
            .map_or_else(|| to_hex(&GENESIS), |r| r.hash.clone()),
        records_in_period: in_period.len() as u64,
        first_seq_in_period: in_period.first().map(|(r, _)| r.seq),
        last_seq_in_period: in_period.last().map(|(r, _)| r.seq),
    };
    Report {
        kind: REPORT_KIND.to_owned(),
        since: inputs.period.since(),
        until: inputs.period.until(),
        generated_at: inputs.generated_at.clone(),
        log: scope,
        inventory: inputs.inventory.clone(),
        facts: inputs.facts.clone(),
        pci_dss_3_5: pan_storage(inputs, &in_period),
        pci_dss_3_6_3_7: key_management(inputs, generated, &in_period),
        pci_dss_10_2_10_3: audit_trail(inputs, &in_period, integrity),
        pci_dss_8_3_4_2: Identities {
            principals: principals(&in_period),
            tls: inputs.facts.tls.clone(),
        },
    }
}

/// The last `tree_head_signed` record's head, as the daemon wrote it in `detail` (its JWS is
/// the report's `latest_signed_tree_head`; its tree size and root are checked against the log
/// by [`tree_matches`]).
fn latest_tree_head(log: &[AuditRecord]) -> Option<SignedTreeHead> {
    log.iter()
        .rev()
        .filter(|r| r.event.action == TREE_HEAD_ACTION)
        .find_map(|r| SignedTreeHead::from_detail(r.event.detail.as_deref()?))
}

/// Whether the RFC 9162 root of the first `head.tree_size` records is `head.root_hash`.
fn tree_matches(log: &[AuditRecord], head: &SignedTreeHead) -> bool {
    let Some(records) = usize::try_from(head.tree_size)
        .ok()
        .and_then(|n| log.get(..n))
    else {
        return false;
    };
    let leaves: Result<Vec<_>, _> = records.iter().map(merkle::record_leaf).collect();
    leaves.is_ok_and(|leaves| merkle::root(&leaves) == head.root_hash)
}

/// The UTC day of an RFC 3339 time.
fn day_of(time: &str) -> Option<time::Date> {
    OffsetDateTime::parse(time, &Rfc3339)
        .ok()
        .map(|t| t.to_offset(time::UtcOffset::UTC).date())
}

/// Gaps in `seq`, and records whose link or hash does not verify.
fn check_chain(log: &[AuditRecord]) -> (Vec<Gap>, Vec<u64>) {
    let mut gaps = Vec::new();
    let mut broken = Vec::new();
    let mut expected: u64 = 1;
    let mut prev_hash = to_hex(&GENESIS);
    for r in log {
        if r.seq > expected {
            gaps.push(Gap {
                from: expected,
                to: r.seq - 1,
            });
        }
        // A record is sound if it links to the one before and its own hash is its contents'.
        let own =
            hash_from_hex(&r.prev_hash).map(|prev| to_hex(&record_hash(&prev, r.seq, &r.event)));
        let sound = r.seq >= expected
            && r.prev_hash == prev_hash
            && own.as_deref() == Some(r.hash.as_str());
        if !sound && broken.len() < MAX_SEQS {
            broken.push(r.seq);
        }
        expected = r.seq.saturating_add(1).max(expected);
        prev_hash.clone_from(&r.hash);
    }
    (gaps, broken)
}

/// A versioned key's line in a table of versions and their records (`None` for an
/// unversioned key).
fn version_count(k: &InventoryKey) -> Option<VersionCount> {
    Some(VersionCount {
        purpose: k.purpose.clone(),
        version: k.version?,
        state: k.state.clone(),
        records: k.records.unwrap_or(0),
    })
}

fn pan_storage(inputs: &ReportInputs, records: &[(&AuditRecord, String)]) -> PanStorage {
    // PCI DSS v4.0 3.5.1: PAN is rendered unreadable anywhere it is stored.
    let data_keys: Vec<VersionCount> = inputs
        .inventory
        .iter()
        .filter(|k| k.purpose == "data")
        .filter_map(version_count)
        .collect();
    let count = |outcome: &str| {
        records
            .iter()
            .filter(|(r, _)| r.event.action == "tokenize" && r.event.outcome == outcome)
            .count() as u64
    };
    PanStorage {
        pan_encryption: inputs.facts.pan_encryption.clone(),
        sealed_records: data_keys.iter().map(|k| k.records).sum(),
        data_keys,
        tokens_created: count("created"),
        tokens_existing: count("existing"),
        tokens: inputs.facts.tokens,
    }
}

/// `ceremony`, `approval`, `change`, `rewrap` or `daemon`; none for other actions.
fn key_event_kind(action: &str) -> Option<&'static str> {
    match action {
        a if a.starts_with("ceremony_") => Some("ceremony"),
        "approve_key_change" => Some("approval"),
        a if a.starts_with("key_") => Some("change"),
        "rewrap_keys" => Some("rewrap"),
        "kek_recorded" | "data_key_created" | "signing_key_registered" => Some("daemon"),
        _ => None,
    }
}

/// The custodians behind a key event: the two named by an applied change or a granted
/// approval (`...; approved by A and B`), every identity of a ceremony (principal `A,B`), else
/// the principal.
fn custodians(r: &AuditRecord) -> Vec<String> {
    let named = r
        .event
        .detail
        .as_deref()
        .and_then(|d| d.rsplit_once("approved by "))
        .and_then(|(_, who)| who.split_once(" and "))
        .map(|(a, b)| vec![a.to_owned(), b.to_owned()]);
    match named {
        Some(two) if r.event.outcome == "done" || r.event.outcome == "granted" => two,
        _ => r
            .event
            .principal
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

fn key_management(
    inputs: &ReportInputs,
    generated: Option<OffsetDateTime>,
    records: &[(&AuditRecord, String)],
) -> KeyManagement {
    // PCI DSS v4.0 3.6.1.1 / 3.7.4: an inventory of keys, and key changes at the end of their
    // cryptoperiod.
    let keys = inputs
        .inventory
        .iter()
        .map(|k| KeyRow {
            purpose: k.purpose.clone(),
            version: k.version,
            algorithm: k.algorithm.clone(),
            check: k
                .kcv
                .as_ref()
                .map(|c| format!("KCV {c}"))
                .or_else(|| k.thumbprint.as_ref().map(|t| format!("thumbprint {t}"))),
            state: k.state.clone(),
            cryptoperiod_end: k.cryptoperiod_end.clone(),
            days_remaining: k
                .cryptoperiod_end
                .as_deref()
                .and_then(|e| OffsetDateTime::parse(e, &Rfc3339).ok())
                .zip(generated)
                // Whole days, rounded down: a key a few hours past its end is at -1, not 0.
                .map(|(end, now)| (end - now).whole_seconds().div_euclid(86_400)),
            records: k.records,
        })
        .collect();
    // PCI DSS v4.0 3.7.5, 3.7.6: retired and destroyed keys; split knowledge and dual control.
    let events: Vec<KeyEvent> = records
        .iter()
        .filter_map(|(r, _)| {
            Some(KeyEvent {
                seq: r.seq,
                time: r.event.time.clone(),
                kind: key_event_kind(&r.event.action)?.to_owned(),
                action: r.event.action.clone(),
                custodians: custodians(r),
                outcome: r.event.outcome.clone(),
                detail: r.event.detail.clone(),
            })
        })
        .collect();
    let applied: Vec<&KeyEvent> = events
        .iter()
        .filter(|e| e.kind == "change" && e.outcome == "done")
        .collect();
    let two = applied
        .iter()
        .filter(|e| match e.custodians.as_slice() {
            [a, b] => a != b,
            _ => false,
        })
        .count();
    let seqs = |action: &str, outcome: &str| {
        events
            .iter()
            .filter(|e| e.action == action && e.outcome == outcome)
            .map(|e| e.seq)
            .collect()
    };
    KeyManagement {
        keys,
        changes_applied: applied.len() as u64,
        changes_with_two_custodians: two as u64,
        same_custodian_refusals: events
            .iter()
            .filter(|e| e.action == "approve_key_change" && e.outcome == "same_custodian")
            .count() as u64,
        rotations: seqs("key_rotate", "done"),
        rewraps: seqs("rewrap_keys", "rewrapped"),
        retired_or_destroyed: inputs
            .inventory
            .iter()
            .filter(|k| k.state == "retired" || k.state == "destroyed")
            .filter_map(version_count)
            .collect(),
        events,
    }
}

fn is_detokenize(action: &str) -> bool {
    action == "detokenize" || action == "detokenize_batch"
}

fn audit_trail(
    inputs: &ReportInputs,
    records: &[(&AuditRecord, String)],
    integrity: Integrity,
) -> AuditTrail {
    let mut by_principal: BTreeMap<&str, PrincipalDetokenize> = BTreeMap::new();
    let mut refusals: BTreeMap<&str, Refusal> = BTreeMap::new();
    let mut failures: BTreeMap<&str, Refusal> = BTreeMap::new();
    let mut reads: BTreeMap<String, u64> = BTreeMap::new();
    let mut detokenized = 0u64;
    let mut denials = 0u64;
    // PCI DSS v4.0 10.2.1.1: all individual user access to cardholder data; 10.2.1.3: all
    // access to audit logs; 10.2.1.4: all invalid logical access attempts.
    for (r, day) in records {
        let e = &r.event;
        if e.decision == Decision::Deny {
            denials += 1;
        }
        if e.action == "read_audit" {
            *reads.entry(e.principal.clone()).or_default() += 1;
        }
        let ok = SUCCESS_OUTCOMES.contains(&e.outcome.as_str());
        if is_detokenize(&e.action) {
            let p =
                by_principal
                    .entry(e.principal.as_str())
                    .or_insert_with(|| PrincipalDetokenize {
                        principal: e.principal.clone(),
                        released: 0,
                        refused: 0,
                        per_day: BTreeMap::new(),
                    });
            if e.outcome == "ok" {
                detokenized += 1;
                p.released += 1;
                *p.per_day.entry(day.clone()).or_default() += 1;
            } else {
                p.refused += 1;
            }
        }
        if ok {
            continue;
        }
        let table = if e.outcome.ends_with("_unavailable") {
            &mut failures
        } else {
            &mut refusals
        };
        let row = table.entry(e.outcome.as_str()).or_insert_with(|| Refusal {
            outcome: e.outcome.clone(),
            count: 0,
            by_action: BTreeMap::new(),
            seqs: Vec::new(),
        });
        row.count += 1;
        *row.by_action.entry(e.action.clone()).or_default() += 1;
        if row.seqs.len() < MAX_SEQS {
            row.seqs.push(r.seq);
        }
    }
    AuditTrail {
        days: inputs.period.days(),
        detokenized,
        detokenize_by_principal: by_principal.into_values().collect(),
        refusals: refusals.into_values().collect(),
        policy_denials: denials,
        dependency_failures: failures.into_values().collect(),
        audit_reads: reads,
        integrity,
    }
}

fn principals(records: &[(&AuditRecord, String)]) -> Vec<PrincipalSeen> {
    // PCI DSS v4.0 8.3.1: all access is authenticated (here: the client certificate's identity).
    let mut seen: BTreeMap<&str, PrincipalSeen> = BTreeMap::new();
    for (r, _) in records {
        let p = seen
            .entry(r.event.principal.as_str())
            .or_insert_with(|| PrincipalSeen {
                principal: r.event.principal.clone(),
                records: 0,
                first_seq: r.seq,
                last_seq: r.seq,
                actions: BTreeMap::new(),
            });
        p.records += 1;
        p.last_seq = r.seq;
        *p.actions.entry(r.event.action.clone()).or_default() += 1;
    }
    seen.into_values().collect()
}
