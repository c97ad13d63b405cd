//! The PCI DSS v4.0 evidence report: what the audit log and the key inventory show for
//! requirements 3.5, 3.6/3.7, 10.2/10.3 and 8.3/4.2, with the records behind each figure.
//!
//! Sans-io: [`derive`] takes the log (from record 1 to the head the report covers), the key
//! inventory, the system's facts and the period, and returns a [`Report`]. Every figure comes
//! from that one function, so `payhsm audit verify-report --log` re-derives them from an
//! export and compares. The daemon (or `--data-dir`) signs the report's canonical JSON with the
//! HSM audit key ([`file`]); [`render`] writes it as Markdown or as one self-contained HTML page
//! (no script, no external resource) that embeds the signed report, so a verifier can check
//! that the visible figures are the signed ones.
//!
//! Never a PAN, a key, a PIN or a component: the log holds tokens and last four digits at most,
//! and the inventory check values and thumbprints.

mod derive;
pub mod file;
pub mod render;

pub use derive::{derive, DeriveError, SUCCESS_OUTCOMES};
pub use file::{
    claims, parse_report_file, verify_against_log, verify_signature, ReportFile, ReportFileError,
    ReportFormat, SignedReport, MAX_REPORT_FILE,
};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The `kind` of a report of this shape.
pub const REPORT_KIND: &str = "payhsm-evidence-report/v1";

/// The longest period one report covers, in days (the charts have a column per day).
pub const MAX_REPORT_DAYS: i64 = 366;

/// The period, inclusive: whole UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    since: time::Date,
    until: time::Date,
}

const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

impl Period {
    /// Parses `since` and `until` (`YYYY-MM-DD`): `since <= until`, at most
    /// [`MAX_REPORT_DAYS`] days.
    pub fn parse(since: &str, until: &str) -> Result<Self, &'static str> {
        let date = |s: &str| {
            // `time` accepts a sign and more year digits; the API takes exactly YYYY-MM-DD.
            if s.len() != 10 || !s.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                return Err("`since` and `until` are dates written YYYY-MM-DD");
            }
            time::Date::parse(s, DATE)
                .map_err(|_| "`since` and `until` are dates written YYYY-MM-DD")
        };
        let (since, until) = (date(since)?, date(until)?);
        if since > until {
            return Err("`since` is after `until`");
        }
        if (until - since).whole_days() >= MAX_REPORT_DAYS {
            return Err("a report covers at most 366 days");
        }
        Ok(Self { since, until })
    }

    /// The first day, `YYYY-MM-DD`.
    pub fn since(&self) -> String {
        day(self.since)
    }

    /// The last day, `YYYY-MM-DD`.
    pub fn until(&self) -> String {
        day(self.until)
    }

    /// Whether `date` falls in the period.
    fn contains(&self, date: time::Date) -> bool {
        self.since <= date && date <= self.until
    }

    /// Every day of the period, in order.
    fn days(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut d = self.since;
        while d <= self.until {
            out.push(day(d));
            match d.next_day() {
                Some(next) => d = next,
                None => break,
            }
        }
        out
    }
}

fn day(d: time::Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// One key of the inventory as `GET /v1/keys` lists it (never key material).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryKey {
    /// `key-encryption`, `data`, `authorization-signing` or `audit-checkpoint`.
    pub purpose: String,
    /// Version, for versioned keys.
    pub version: Option<u32>,
    /// CKA_LABEL in the token, for token objects.
    pub label: Option<String>,
    /// Algorithm.
    pub algorithm: String,
    /// AES-CMAC key check value, for symmetric keys.
    pub kcv: Option<String>,
    /// RFC 7638 thumbprint, for public keys.
    pub thumbprint: Option<String>,
    /// Lifecycle state.
    pub state: String,
    /// RFC 3339 UTC.
    pub created_at: Option<String>,
    /// When it started being used.
    pub activated_at: Option<String>,
    /// When it was taken out of use.
    pub ended_at: Option<String>,
    /// The end of its cryptoperiod.
    pub cryptoperiod_end: Option<String>,
    /// Records that use it (token records sealed under a data key, data keys wrapped by the
    /// KEK, authorizations signed by a signing key).
    pub records: Option<u64>,
}

/// The TLS policy in force (requirement 4.2 and 8.3), as the code and configuration make it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFacts {
    /// Protocol versions the listener accepts.
    pub protocol_versions: Vec<String>,
    /// Cipher suites, in the server's order of preference.
    pub cipher_suites: Vec<String>,
    /// How clients are authenticated.
    pub client_authentication: String,
    /// Whether client certificates are checked against revocation lists.
    pub revocation: String,
    /// Application protocols offered.
    pub alpn: Vec<String>,
}

/// How tokens are formed (requirement 3.5), as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenFacts {
    /// Leading PAN digits a token keeps.
    pub keep_first: u8,
    /// Trailing PAN digits a token keeps.
    pub keep_last: u8,
    /// A token has the PAN's length and is digits only.
    pub format_preserving: bool,
    /// Tokens fail the Luhn check, so a token is never mistaken for a PAN.
    pub luhn_invalid: bool,
}

/// What the system is, beside the log and the keys: configuration and code facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemFacts {
    /// Where these facts come from (the serving daemon's configuration, or the defaults of a
    /// data directory read offline).
    pub source: String,
    /// How PANs are stored.
    pub pan_encryption: String,
    /// What an encrypted PAN is bound to.
    pub pan_aad: String,
    /// How the same PAN is found again without decrypting.
    pub pan_fingerprint: String,
    /// How tokens are formed.
    pub tokens: TokenFacts,
    /// The TLS policy.
    pub tls: TlsFacts,
}

/// What the report is derived from, besides the log: carried in the report, so a verifier
/// derives it again from the same inputs and an export of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportInputs {
    /// The period.
    pub period: Period,
    /// When the report was made (RFC 3339 UTC): days remaining are counted from it.
    pub generated_at: String,
    /// The key inventory when the report was made.
    pub inventory: Vec<InventoryKey>,
    /// The system's facts.
    pub facts: SystemFacts,
}

/// The evidence report. Field order is the canonical order of its JSON (which is signed):
/// never reorder fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    /// [`REPORT_KIND`].
    pub kind: String,
    /// First day covered, `YYYY-MM-DD` (UTC).
    pub since: String,
    /// Last day covered, inclusive.
    pub until: String,
    /// When it was made, RFC 3339 UTC.
    pub generated_at: String,
    /// The log it was derived from: records 1 to `records`, ending at `head`.
    pub log: LogScope,
    /// The key inventory when it was made (input).
    pub inventory: Vec<InventoryKey>,
    /// The system's facts (input).
    pub facts: SystemFacts,
    /// Requirement 3.5: PANs secured wherever stored.
    pub pci_dss_3_5: PanStorage,
    /// Requirements 3.6 and 3.7: key management.
    pub pci_dss_3_6_3_7: KeyManagement,
    /// Requirements 10.2 and 10.3: audit logs.
    pub pci_dss_10_2_10_3: AuditTrail,
    /// Requirements 8.3 and 4.2: identities and strong cryptography in transit.
    pub pci_dss_8_3_4_2: Identities,
}

impl Report {
    /// The inputs it was derived from (all but the log).
    pub fn inputs(&self) -> Result<ReportInputs, DeriveError> {
        Ok(ReportInputs {
            period: Period::parse(&self.since, &self.until).map_err(DeriveError::Period)?,
            generated_at: self.generated_at.clone(),
            inventory: self.inventory.clone(),
            facts: self.facts.clone(),
        })
    }

    /// The canonical JSON bytes (what the signature's digest covers).
    pub fn canonical_json(&self) -> Vec<u8> {
        // A struct of strings, numbers and maps with string keys always serializes.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Which part of the log a report was derived from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogScope {
    /// Records 1 to this one (the head when the report was made).
    pub records: u64,
    /// The hash of that last record (hex).
    pub head: String,
    /// Records whose time falls in the period.
    pub records_in_period: u64,
    /// The first of them.
    pub first_seq_in_period: Option<u64>,
    /// The last of them.
    pub last_seq_in_period: Option<u64>,
}

/// Requirement 3.5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanStorage {
    /// How PANs are stored (from the facts).
    pub pan_encryption: String,
    /// The data key versions and how many token records each seals.
    pub data_keys: Vec<VersionCount>,
    /// Token records sealed, over all data key versions.
    pub sealed_records: u64,
    /// Tokenizations in the period that made a new token (outcome `created`).
    pub tokens_created: u64,
    /// Tokenizations that returned an existing token (outcome `existing`).
    pub tokens_existing: u64,
    /// The token format.
    pub tokens: TokenFacts,
}

/// A key version and a count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionCount {
    /// The key's purpose.
    pub purpose: String,
    /// Its version.
    pub version: u32,
    /// Its state.
    pub state: String,
    /// Records that use it.
    pub records: u64,
}

/// Requirements 3.6 and 3.7.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyManagement {
    /// Every key, with its cryptoperiod and the days left of it.
    pub keys: Vec<KeyRow>,
    /// Ceremonies, approvals, key changes, rewraps and the daemon's own key events in the
    /// period, in log order.
    pub events: Vec<KeyEvent>,
    /// Key changes applied in the period (`key_*`, outcome `done`).
    pub changes_applied: u64,
    /// Of them, approved by two distinct custodians.
    pub changes_with_two_custodians: u64,
    /// Second approvals refused because the same custodian approved twice.
    pub same_custodian_refusals: u64,
    /// Rotations applied (seq numbers).
    pub rotations: Vec<u64>,
    /// Rewrap batches (seq numbers).
    pub rewraps: Vec<u64>,
    /// Versions retired or destroyed (from the inventory).
    pub retired_or_destroyed: Vec<VersionCount>,
}

/// One key of the inventory with the days left of its cryptoperiod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyRow {
    /// Purpose.
    pub purpose: String,
    /// Version.
    pub version: Option<u32>,
    /// Algorithm.
    pub algorithm: String,
    /// KCV (`kcv:...`) or thumbprint (`jwk:...`).
    pub check: Option<String>,
    /// State.
    pub state: String,
    /// End of the cryptoperiod.
    pub cryptoperiod_end: Option<String>,
    /// Whole days from `generated_at` to the end of the cryptoperiod (negative: exceeded).
    pub days_remaining: Option<i64>,
    /// Records that use it.
    pub records: Option<u64>,
}

/// A key event of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEvent {
    /// Its record.
    pub seq: u64,
    /// Its time.
    pub time: String,
    /// `ceremony`, `approval`, `change`, `rewrap` or `daemon`.
    pub kind: String,
    /// The action.
    pub action: String,
    /// The custodians (or the daemon) behind it.
    pub custodians: Vec<String>,
    /// The outcome.
    pub outcome: String,
    /// What the record says (versions, KCV or thumbprint).
    pub detail: Option<String>,
}

/// Requirements 10.2 and 10.3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditTrail {
    /// Every day of the period.
    pub days: Vec<String>,
    /// PANs released (detokenize, outcome `ok`) in the period.
    pub detokenized: u64,
    /// Detokenizations per principal.
    pub detokenize_by_principal: Vec<PrincipalDetokenize>,
    /// Refused or failed requests by outcome code.
    pub refusals: Vec<Refusal>,
    /// Requests the policy refused (decision `deny`).
    pub policy_denials: u64,
    /// Requests that failed because a dependency (store, HSM) was down (`*_unavailable`).
    pub dependency_failures: Vec<Refusal>,
    /// Reads of the log (`read_audit`) per principal.
    pub audit_reads: BTreeMap<String, u64>,
    /// The log's integrity.
    pub integrity: Integrity,
}

/// One principal's detokenizations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalDetokenize {
    /// The caller's identity.
    pub principal: String,
    /// PANs released to it.
    pub released: u64,
    /// Its detokenize requests refused or failed.
    pub refused: u64,
    /// PANs released per day (days without any are left out).
    pub per_day: BTreeMap<String, u64>,
}

/// Requests that ended with one outcome code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    /// The outcome code.
    pub outcome: String,
    /// How many.
    pub count: u64,
    /// By action.
    pub by_action: BTreeMap<String, u64>,
    /// The first [`MAX_SEQS`] records.
    pub seqs: Vec<u64>,
}

/// Most seq numbers listed per figure (the count is always whole).
pub const MAX_SEQS: usize = 20;

/// Whether the chain verified over the log the report covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Integrity {
    /// Every record's `prev_hash` and `hash` recomputed from record 1.
    pub chain_verified: bool,
    /// Missing sequence numbers (`from..=to`): none in an intact log.
    pub gaps: Vec<Gap>,
    /// Records whose hash or link does not verify (at most [`MAX_SEQS`]).
    pub broken: Vec<u64>,
    /// Records whose time is not RFC 3339 UTC (so no day could be given).
    pub undated: Vec<u64>,
    /// The latest signed tree head stored in the log (its compact JWS), if any.
    pub latest_signed_tree_head: Option<String>,
    /// Whether that head's size and root are those of the log's first records (RFC 9162
    /// root of their export lines); null without a head.
    pub tree_head_matches_log: Option<bool>,
}

/// Sequence numbers missing from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    /// The first missing.
    pub from: u64,
    /// The last missing.
    pub to: u64,
}

/// Requirements 8.3 and 4.2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identities {
    /// Every principal in the period's records.
    pub principals: Vec<PrincipalSeen>,
    /// The TLS policy in force.
    pub tls: TlsFacts,
}

/// A principal seen in the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSeen {
    /// Its identity (from its certificate; `payhsmd` for the daemon; custodians for a
    /// ceremony).
    pub principal: String,
    /// Its records in the period.
    pub records: u64,
    /// Its first record.
    pub first_seq: u64,
    /// Its last record.
    pub last_seq: u64,
    /// Records by action.
    pub actions: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests;
