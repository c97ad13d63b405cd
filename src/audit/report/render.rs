//! The report as Markdown or as one self-contained HTML page: no script, no external resource,
//! inline SVG charts. Both embed the signed report (base64url of its JSON, in an HTML comment)
//! so a verifier can render it again and compare: a visible figure that differs from the signed
//! one fails. Every text from the log (principals come from certificates) is escaped.

use super::file::SignedReport;
use super::{Report, TlsFacts};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::fmt::Write as _;

/// Opens the comment that embeds the signed report.
pub const EMBED_OPEN: &str = "<!-- payhsm-signed-report:v1 ";
/// Closes it.
pub const EMBED_CLOSE: &str = " -->";

/// The embedded form of a signed report.
fn embedded(signed: &SignedReport) -> String {
    // base64url holds no `-->` and no `--`, so the comment cannot be closed early.
    let json = serde_json::to_vec(signed).unwrap_or_default();
    format!(
        "{EMBED_OPEN}{}{EMBED_CLOSE}\n",
        URL_SAFE_NO_PAD.encode(json)
    )
}

/// Text for HTML: `&<>"'` escaped, control characters replaced.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// Text for Markdown: every ASCII punctuation character backslash-escaped (so no markup, link,
/// HTML or table cell boundary can come from it), control characters replaced.
pub fn markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            out.push('\u{fffd}');
        } else {
            out.push(c);
        }
    }
    out
}

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref()
        .map_or_else(|| "-".to_owned(), ToString::to_string)
}

/// A table: header cells, then rows of cells, each already escaped for its format.
struct Table {
    head: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&'static str]) -> Self {
        Self {
            head: head.to_vec(),
            rows: Vec::new(),
        }
    }
}

/// A format's writer: Markdown or HTML.
trait Sink {
    fn esc(&self, s: &str) -> String;
    fn heading(&mut self, level: u8, text: &str);
    fn para(&mut self, text: &str);
    fn table(&mut self, t: Table);
}

struct Md(String);

impl Sink for Md {
    fn esc(&self, s: &str) -> String {
        markdown(s)
    }
    fn heading(&mut self, level: u8, text: &str) {
        let hashes = "#".repeat(usize::from(level));
        let _ = write!(self.0, "{hashes} {text}\n\n");
    }
    fn para(&mut self, text: &str) {
        let _ = write!(self.0, "{text}\n\n");
    }
    fn table(&mut self, t: Table) {
        let _ = writeln!(self.0, "| {} |", t.head.join(" | "));
        let _ = writeln!(self.0, "|{}", "---|".repeat(t.head.len()));
        if t.rows.is_empty() {
            let none: Vec<&str> = t.head.iter().map(|_| "-").collect();
            let _ = writeln!(self.0, "| {} |", none.join(" | "));
        }
        for row in t.rows {
            let _ = writeln!(self.0, "| {} |", row.join(" | "));
        }
        self.0.push('\n');
    }
}

struct Html(String);

impl Sink for Html {
    fn esc(&self, s: &str) -> String {
        html(s)
    }
    fn heading(&mut self, level: u8, text: &str) {
        let _ = writeln!(self.0, "<h{level}>{text}</h{level}>");
    }
    fn para(&mut self, text: &str) {
        let _ = writeln!(self.0, "<p>{text}</p>");
    }
    fn table(&mut self, t: Table) {
        self.0.push_str("<table>\n<tr>");
        for h in &t.head {
            let _ = write!(self.0, "<th>{h}</th>");
        }
        self.0.push_str("</tr>\n");
        if t.rows.is_empty() {
            let _ = writeln!(
                self.0,
                "<tr><td colspan=\"{}\">none</td></tr>",
                t.head.len()
            );
        }
        for row in t.rows {
            self.0.push_str("<tr>");
            for cell in row {
                let _ = write!(self.0, "<td>{cell}</td>");
            }
            self.0.push_str("</tr>\n");
        }
        self.0.push_str("</table>\n");
    }
}

/// The report as Markdown, the signed report embedded at the end.
pub fn render_markdown(signed: &SignedReport) -> String {
    let mut md = Md(String::new());
    body(&mut md, &signed.report, &signed.jws, |_, _| {});
    md.0.push_str(&embedded(signed));
    md.0
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1100px}\
table{border-collapse:collapse;margin:0 0 1em 0}td,th{border:1px solid #bbb;padding:2px 6px;\
text-align:left;font-size:13px}th{background:#eee}h2{border-bottom:2px solid #345;margin-top:1.5em}\
code{font-size:12px}p{overflow-wrap:anywhere}svg{display:block;margin:0.5em 0 1em 0}";

/// The report as one HTML page with inline SVG charts, the signed report embedded in a comment.
pub fn render_html(signed: &SignedReport) -> String {
    let r = &signed.report;
    let mut page = Html(String::new());
    let _ = write!(
        page.0,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; \
         style-src 'unsafe-inline'\">\n<title>payhsm PCI DSS evidence report {} to {}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n",
        html(&r.since),
        html(&r.until)
    );
    body(&mut page, r, &signed.jws, |out, chart| {
        out.push_str(&match chart {
            Chart::Detokenize => detokenize_chart(r),
            Chart::KeyRecords => key_records_chart(r),
        });
    });
    page.0.push_str(&embedded(signed));
    page.0.push_str("</body>\n</html>\n");
    page.0
}

/// Where a format may draw a chart.
enum Chart {
    Detokenize,
    KeyRecords,
}

trait Out {
    fn out(&mut self) -> &mut String;
}
impl Out for Md {
    fn out(&mut self) -> &mut String {
        &mut self.0
    }
}
impl Out for Html {
    fn out(&mut self) -> &mut String {
        &mut self.0
    }
}

fn seqs(list: &[u64]) -> String {
    let v: Vec<String> = list.iter().map(u64::to_string).collect();
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(", ")
    }
}

fn map_cell<S: Sink>(s: &S, m: &std::collections::BTreeMap<String, u64>) -> String {
    let v: Vec<String> = m.iter().map(|(k, n)| format!("{} {n}", s.esc(k))).collect();
    if v.is_empty() {
        "-".to_owned()
    } else {
        v.join(", ")
    }
}

fn body<S: Sink + Out>(s: &mut S, r: &Report, jws: &str, chart: impl Fn(&mut String, Chart)) {
    s.heading(1, "payhsm PCI DSS v4.0 evidence report");
    let log = &r.log;
    let intro = format!(
        "Period {} to {} (UTC days, inclusive). Generated at {}. Derived from audit records 1 \
         to {} (head {}); {} records fall in the period{}. Facts from: {}.",
        s.esc(&r.since),
        s.esc(&r.until),
        s.esc(&r.generated_at),
        log.records,
        s.esc(&log.head),
        log.records_in_period,
        match (log.first_seq_in_period, log.last_seq_in_period) {
            (Some(a), Some(b)) => format!(" (seq {a} to {b})"),
            _ => String::new(),
        },
        s.esc(&r.facts.source),
    );
    s.para(&intro);

    let p = &r.pci_dss_3_5;
    s.heading(2, "Requirement 3.5: stored PANs are secured");
    s.para(&format!(
        "PANs are stored only as {}, bound to {}; found again by {}. Tokens keep the first {} \
         and last {} digits; format preserving: {}; Luhn-invalid: {}.",
        s.esc(&p.pan_encryption),
        s.esc(&r.facts.pan_aad),
        s.esc(&r.facts.pan_fingerprint),
        p.tokens.keep_first,
        p.tokens.keep_last,
        yes(p.tokens.format_preserving),
        yes(p.tokens.luhn_invalid),
    ));
    s.para(&format!(
        "Token records sealed: {}. Tokenizations in the period: {} new, {} existing.",
        p.sealed_records, p.tokens_created, p.tokens_existing
    ));
    let mut t = Table::new(&["data key version", "state", "records sealed"]);
    for k in &p.data_keys {
        t.rows.push(vec![
            k.version.to_string(),
            s.esc(&k.state),
            k.records.to_string(),
        ]);
    }
    s.table(t);

    let k = &r.pci_dss_3_6_3_7;
    s.heading(2, "Requirements 3.6 and 3.7: key management");
    let mut t = Table::new(&[
        "purpose",
        "version",
        "algorithm",
        "KCV or thumbprint",
        "state",
        "cryptoperiod end",
        "days remaining",
        "records",
    ]);
    for row in &k.keys {
        t.rows.push(vec![
            s.esc(&row.purpose),
            opt(&row.version),
            s.esc(&row.algorithm),
            s.esc(&opt(&row.check)),
            s.esc(&row.state),
            s.esc(&opt(&row.cryptoperiod_end)),
            opt(&row.days_remaining),
            opt(&row.records),
        ]);
    }
    s.table(t);
    chart(s.out(), Chart::KeyRecords);
    s.para(&format!(
        "Key changes applied in the period: {}, of which approved by two distinct custodians: \
         {}. Second approvals refused as the same custodian: {}. Rotations (seq): {}. Rewrap \
         batches (seq): {}.",
        k.changes_applied,
        k.changes_with_two_custodians,
        k.same_custodian_refusals,
        seqs(&k.rotations),
        seqs(&k.rewraps)
    ));
    let mut t = Table::new(&[
        "seq",
        "time",
        "kind",
        "action",
        "custodians",
        "outcome",
        "detail",
    ]);
    for e in &k.events {
        t.rows.push(vec![
            e.seq.to_string(),
            s.esc(&e.time),
            s.esc(&e.kind),
            s.esc(&e.action),
            s.esc(&e.custodians.join(", ")),
            s.esc(&e.outcome),
            s.esc(&opt(&e.detail)),
        ]);
    }
    s.table(t);
    let mut t = Table::new(&["retired or destroyed", "version", "state", "records"]);
    for v in &k.retired_or_destroyed {
        t.rows.push(vec![
            s.esc(&v.purpose),
            v.version.to_string(),
            s.esc(&v.state),
            v.records.to_string(),
        ]);
    }
    s.table(t);

    let a = &r.pci_dss_10_2_10_3;
    s.heading(2, "Requirements 10.2 and 10.3: audit logs");
    s.para(&format!(
        "PANs released by detokenization in the period: {}. Requests the policy refused: {}.",
        a.detokenized, a.policy_denials
    ));
    chart(s.out(), Chart::Detokenize);
    let mut t = Table::new(&["principal", "PANs released", "refused", "per day"]);
    for d in &a.detokenize_by_principal {
        t.rows.push(vec![
            s.esc(&d.principal),
            d.released.to_string(),
            d.refused.to_string(),
            map_cell(s, &d.per_day),
        ]);
    }
    s.table(t);
    for (title, list) in [
        ("refused or failed: outcome", &a.refusals),
        ("dependency down: outcome", &a.dependency_failures),
    ] {
        let mut t = Table::new(&[title, "count", "by action", "first records (seq)"]);
        for f in list {
            t.rows.push(vec![
                s.esc(&f.outcome),
                f.count.to_string(),
                map_cell(s, &f.by_action),
                seqs(&f.seqs),
            ]);
        }
        s.table(t);
    }
    s.para(&format!(
        "Reads of the audit log: {}.",
        map_cell(s, &a.audit_reads)
    ));
    let i = &a.integrity;
    let gaps: Vec<String> = i
        .gaps
        .iter()
        .map(|g| format!("{} to {}", g.from, g.to))
        .collect();
    s.para(&format!(
        "Integrity: chain verified from record 1 to {}: {}. Gaps: {}. Records that do not \
         verify: {}. Records without an RFC 3339 time: {}. Latest signed tree head: {}. Its \
         root is the log's: {}.",
        log.records,
        yes(i.chain_verified),
        if gaps.is_empty() {
            "none".to_owned()
        } else {
            gaps.join(", ")
        },
        if i.broken.is_empty() {
            "none".to_owned()
        } else {
            seqs(&i.broken)
        },
        if i.undated.is_empty() {
            "none".to_owned()
        } else {
            seqs(&i.undated)
        },
        i.latest_signed_tree_head
            .as_deref()
            .map_or_else(|| "none (not signed yet)".to_owned(), |h| s.esc(h)),
        i.tree_head_matches_log
            .map_or_else(|| "no head".to_owned(), |m| yes(m).to_owned()),
    ));

    let id = &r.pci_dss_8_3_4_2;
    s.heading(2, "Requirements 8.3 and 4.2: identities and TLS");
    let mut t = Table::new(&["principal", "records", "first seq", "last seq", "actions"]);
    for p in &id.principals {
        t.rows.push(vec![
            s.esc(&p.principal),
            p.records.to_string(),
            p.first_seq.to_string(),
            p.last_seq.to_string(),
            map_cell(s, &p.actions),
        ]);
    }
    s.table(t);
    s.para(&tls_text(s, &id.tls));

    s.heading(2, "Signature");
    s.para(&format!(
        "Signed by the HSM audit key as a compact JWS over the SHA-256 of this report's canonical \
         JSON (key set: payhsm audit jwks). Check with payhsm audit verify-report. JWS: {}",
        s.esc(jws)
    ));
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn tls_text<S: Sink>(s: &S, tls: &TlsFacts) -> String {
    let list = |v: &[String]| v.iter().map(|x| s.esc(x)).collect::<Vec<_>>().join(", ");
    format!(
        "TLS in force: protocol versions {}; cipher suites {}; client authentication: {}; \
         revocation: {}; ALPN {}.",
        list(&tls.protocol_versions),
        list(&tls.cipher_suites),
        s.esc(&tls.client_authentication),
        s.esc(&tls.revocation),
        list(&tls.alpn),
    )
}

const COLORS: [&str; 8] = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];

fn color(i: usize) -> &'static str {
    COLORS.get(i % COLORS.len()).copied().unwrap_or("#444")
}

/// Stacked bars: PANs released per day, one colour per principal. Each bar is one line
/// (`class="bar"`).
fn detokenize_chart(r: &Report) -> String {
    let a = &r.pci_dss_10_2_10_3;
    let days = &a.days;
    let n = days.len().max(1);
    let bw = (900 / n).clamp(3, 40);
    let (left, top, h) = (50usize, 20usize, 200usize);
    // Wide enough for the title and the legend, however few the days.
    let width = (left + n * bw + 20).max(640);
    let legend_h = 18 * a.detokenize_by_principal.len();
    let height = top + h + 40 + legend_h;
    let totals: Vec<u64> = days
        .iter()
        .map(|d| {
            a.detokenize_by_principal
                .iter()
                .map(|p| p.per_day.get(d).copied().unwrap_or(0))
                .sum()
        })
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0).max(1);
    let mut svg = format!(
        "<svg id=\"chart-detokenize\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{width}\" height=\"{height}\" role=\"img\" aria-label=\"PANs released per \
         principal per day\">\n<text x=\"{left}\" y=\"14\" font-size=\"13\">PANs released per \
         day, by principal (max {max})</text>\n<line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" \
         y2=\"{y0}\" stroke=\"#333\"/>\n<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" \
         y2=\"{y0}\" stroke=\"#333\"/>\n<text x=\"4\" y=\"{ty}\" font-size=\"11\">{max}</text>\n\
         <text x=\"4\" y=\"{y0}\" font-size=\"11\">0</text>\n",
        y0 = top + h,
        x1 = left + n * bw,
        ty = top + 10,
    );
    for (i, d) in days.iter().enumerate() {
        let x = left + i * bw;
        let mut y = top + h;
        for (j, p) in a.detokenize_by_principal.iter().enumerate() {
            let v = p.per_day.get(d).copied().unwrap_or(0);
            if v == 0 {
                continue;
            }
            let bh = usize::try_from(v.saturating_mul(h as u64) / max)
                .unwrap_or(h)
                .max(1);
            y = y.saturating_sub(bh);
            let _ = writeln!(
                svg,
                "<rect class=\"bar\" x=\"{x}\" y=\"{y}\" width=\"{}\" height=\"{bh}\" \
                 fill=\"{}\"><title>{} {}: {v}</title></rect>",
                bw.saturating_sub(1).max(1),
                color(j),
                html(&p.principal),
                html(d),
            );
        }
    }
    let label_y = top + h + 14;
    if let (Some(first), Some(last)) = (days.first(), days.last().filter(|_| n > 1)) {
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"{label_y}\" font-size=\"11\">{}</text>\n<text x=\"{}\" \
             y=\"{label_y}\" font-size=\"11\" text-anchor=\"end\">{}</text>",
            html(first),
            left + n * bw,
            html(last)
        );
    } else if let Some(first) = days.first() {
        let _ = writeln!(
            svg,
            "<text x=\"{left}\" y=\"{label_y}\" font-size=\"11\">{}</text>",
            html(first)
        );
    }
    for (j, p) in a.detokenize_by_principal.iter().enumerate() {
        let y = top + h + 30 + 18 * j;
        let _ = writeln!(
            svg,
            "<rect x=\"{left}\" y=\"{y}\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" \
             y=\"{}\" font-size=\"12\">{} ({})</text>",
            color(j),
            left + 18,
            y + 11,
            html(&p.principal),
            p.released
        );
    }
    svg.push_str("</svg>\n");
    svg
}

/// Horizontal bars: records per versioned key (token records per data key version,
/// authorizations per signing key version). Each bar is one line (`class="bar"`).
fn key_records_chart(r: &Report) -> String {
    let rows: Vec<(String, u64)> = r
        .pci_dss_3_6_3_7
        .keys
        .iter()
        .filter_map(|k| {
            Some((
                format!("{} v{} ({})", k.purpose, k.version?, k.state),
                k.records.unwrap_or(0),
            ))
        })
        .collect();
    let max = rows.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let (left, bar_w, row_h) = (300usize, 500u64, 22usize);
    let height = 30 + row_h * rows.len().max(1);
    let mut svg = format!(
        "<svg id=\"chart-key-records\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" \
         width=\"{}\" height=\"{height}\" role=\"img\" aria-label=\"records per key version\">\n\
         <text x=\"4\" y=\"14\" font-size=\"13\">Records per key version (max {max})</text>\n",
        left + 600
    );
    for (i, (label, n)) in rows.iter().enumerate() {
        let y = 24 + row_h * i;
        let w = usize::try_from(n.saturating_mul(bar_w) / max).unwrap_or(0);
        let _ = writeln!(
            svg,
            "<text x=\"4\" y=\"{}\" font-size=\"12\">{}</text>",
            y + 13,
            html(label)
        );
        if *n > 0 {
            let _ = writeln!(
                svg,
                "<rect class=\"bar\" x=\"{left}\" y=\"{y}\" width=\"{}\" height=\"16\" \
                 fill=\"{}\"><title>{}: {n}</title></rect>",
                w.max(1),
                color(i),
                html(label)
            );
        }
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\">{n}</text>",
            left + w.max(1) + 6,
            y + 13
        );
    }
    svg.push_str("</svg>\n");
    svg
}
