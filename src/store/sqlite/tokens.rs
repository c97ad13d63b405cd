//! Token rows: mapping to [`TokenRecord`] and the write jobs (tokenize, detokenize,
//! transition), each run by the writer inside its own savepoint.

use super::sql_err;
use super::writer::JobCtx;
use crate::audit::{AuditEvent, Receipt};
use crate::card::{Domain, Last4, StatusChange, Token, TokenFormat, TokenStatus};
use crate::keys::{Fingerprint, KeyVersion, SealedPan};
use crate::store::{
    DetokenizeOutcome, Lookup, NewToken, StoreError, TokenRecord, TokenizeOutcome,
    TransitionOutcome,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

pub(super) const COLUMNS: &str =
    "domain, token, fingerprint, key_version, nonce, ciphertext, last4, \
                       status, created_at, updated_at";

/// A row as stored, before validation.
pub(super) struct RawRow {
    domain: String,
    token: String,
    fingerprint: Option<Vec<u8>>,
    key_version: Option<i64>,
    nonce: Option<Vec<u8>>,
    ciphertext: Option<Vec<u8>>,
    last4: String,
    status: String,
    created_at: String,
    updated_at: String,
}

impl RawRow {
    pub(super) fn from_row(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            domain: r.get(0)?,
            token: r.get(1)?,
            fingerprint: r.get(2)?,
            key_version: r.get(3)?,
            nonce: r.get(4)?,
            ciphertext: r.get(5)?,
            last4: r.get(6)?,
            status: r.get(7)?,
            created_at: r.get(8)?,
            updated_at: r.get(9)?,
        })
    }

    /// Validates the row. Error texts name the token and the column, never the bytes.
    pub(super) fn into_record(self) -> Result<TokenRecord, StoreError> {
        let bad = |what: &str| StoreError::corrupt(format!("token {}: bad {what}", self.token));
        let fingerprint = match &self.fingerprint {
            None => None,
            Some(b) => Some(Fingerprint(
                b.as_slice().try_into().map_err(|_| bad("fingerprint"))?,
            )),
        };
        let sealed = match (self.key_version, &self.nonce, &self.ciphertext) {
            (None, None, None) => None,
            (Some(v), Some(n), Some(c)) => Some(SealedPan {
                key_version: KeyVersion(u32::try_from(v).map_err(|_| bad("key_version"))?),
                nonce: n.as_slice().try_into().map_err(|_| bad("nonce"))?,
                ciphertext: c.clone(),
            }),
            _ => return Err(bad("sealed PAN (partly NULL)")),
        };
        Ok(TokenRecord {
            token: Token::parse(&self.token).map_err(|_| bad("token"))?,
            domain: Domain::parse(&self.domain).map_err(|_| bad("domain"))?,
            fingerprint,
            sealed,
            last4: Last4::parse(&self.last4).ok_or_else(|| bad("last4"))?,
            status: TokenStatus::parse(&self.status).ok_or_else(|| bad("status"))?,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Reads a token in any state.
pub(super) fn read(
    conn: &Connection,
    token: &Token,
    domain: &Domain,
) -> Result<Option<TokenRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tokens WHERE domain = ?1 AND token = ?2");
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![domain.as_str(), token.as_str()], RawRow::from_row)
                .optional()
        })
        .map_err(sql_err)?;
    raw.map(RawRow::into_record).transpose()
}

/// The live token of the PAN `l` describes in the domain: the row of its derived token if
/// that row is the PAN's, else a token the fingerprint index holds.
fn live_token(
    conn: &Connection,
    domain: &Domain,
    l: &Lookup,
) -> Result<Option<TokenRecord>, StoreError> {
    if let Some(r) = read(conn, &l.derived, domain)? {
        if r.status != TokenStatus::Deleted && r.fingerprint.as_ref() == Some(&l.fingerprint) {
            return Ok(Some(r));
        }
    }
    by_fingerprint(conn, domain, &l.fingerprint)
}

/// The live token with this fingerprint in the domain among those not derived from it (the
/// fingerprint index holds only those).
fn by_fingerprint(
    conn: &Connection,
    domain: &Domain,
    fp: &Fingerprint,
) -> Result<Option<TokenRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens
         WHERE domain = ?1 AND fingerprint = ?2 AND derived = 0 AND status != 'deleted'"
    );
    let raw = conn
        .prepare_cached(&sql)
        .and_then(|mut s| {
            s.query_row(params![domain.as_str(), fp.0.as_slice()], RawRow::from_row)
                .optional()
        })
        .map_err(sql_err)?;
    raw.map(RawRow::into_record).transpose()
}

/// Makes the derived tokens findable under `format`: if they were derived under another one
/// (the configuration changed), the rows derived before move to the fingerprint index, since
/// deriving again would not arrive at them. A full-table update, once per change.
fn adopt_format(conn: &Connection, format: TokenFormat) -> Result<(), StoreError> {
    let want = format!("{}+{}", format.keep_first(), format.keep_last());
    let have: Option<String> = conn
        .prepare_cached("SELECT value FROM store_settings WHERE key = 'token_format'")
        .and_then(|mut s| s.query_row([], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    if have.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    if have.is_some() {
        conn.execute("UPDATE tokens SET derived = 0 WHERE derived = 1", [])
            .map_err(sql_err)?;
    }
    conn.execute(
        "INSERT OR REPLACE INTO store_settings (key, value) VALUES ('token_format', ?1)",
        [&want],
    )
    .map_err(sql_err)?;
    Ok(())
}

fn insert(conn: &Connection, r: &TokenRecord, derived: bool) -> rusqlite::Result<usize> {
    let sealed = r.sealed.as_ref();
    conn.prepare_cached(&format!(
        "INSERT INTO tokens ({COLUMNS}, derived)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
    ))?
    .execute(params![
        r.domain.as_str(),
        r.token.as_str(),
        r.fingerprint.as_ref().map(|f| f.0.as_slice()),
        sealed.map(|s| s.key_version.0),
        sealed.map(|s| s.nonce.as_slice()),
        sealed.map(|s| s.ciphertext.as_slice()),
        r.last4.as_str(),
        r.status.as_str(),
        r.created_at,
        r.updated_at,
        derived,
    ])
}

/// Fills in what the store knows about the token.
fn annotate(mut audit: AuditEvent, r: &TokenRecord, outcome: &str) -> AuditEvent {
    audit.token = Some(r.token.as_str().to_owned());
    audit.last4 = Some(r.last4.as_str().to_owned());
    audit
        .domain
        .get_or_insert_with(|| r.domain.as_str().to_owned());
    audit.outcome = outcome.to_owned();
    audit
}

/// Audits a request for a token that does not exist (or is deleted).
fn not_found(mut audit: AuditEvent, token: &Token, domain: &Domain) -> AuditEvent {
    // It names nothing: it may be a card number with padding digits (see `Token::masked`).
    audit.token = Some(token.masked());
    audit
        .domain
        .get_or_insert_with(|| domain.as_str().to_owned());
    audit.outcome = "token_not_found".to_owned();
    audit
}

fn existing(
    ctx: &mut JobCtx<'_>,
    r: TokenRecord,
    audit: AuditEvent,
) -> Result<TokenizeOutcome, StoreError> {
    ctx.audit(annotate(audit, &r, "existing"))?;
    Ok(TokenizeOutcome::Existing(r))
}

/// The tokenize job.
pub(super) fn tokenize(
    ctx: &mut JobCtx<'_>,
    new: NewToken,
    audit: AuditEvent,
) -> Result<TokenizeOutcome, StoreError> {
    let domain = &new.record.domain;
    if ctx.carried.token_format != Some(new.format) {
        adopt_format(ctx.conn, new.format)?;
        ctx.carried.token_format = Some(new.format);
    }
    for l in &new.lookup {
        if let Some(r) = live_token(ctx.conn, domain, l)? {
            return existing(ctx, r, audit);
        }
    }
    // A taken token needs no lookup first: the insert's primary key refuses it (below).
    // A ring read before a key change (here or on another replica) must neither seal under a
    // version that is no longer active nor miss a version a live record may be under.
    let sealed_under = new.record.sealed.as_ref().map(|s| s.key_version);
    let versions: Vec<_> = new.lookup.iter().map(|l| l.version).collect();
    if !super::keys::ring_is_current(ctx.conn, sealed_under, &versions)? {
        return Ok(TokenizeOutcome::KeysChanged);
    }
    // The record is the derived token (found by reading its row, kept out of the index) when
    // it is the one derived from its own fingerprint, the current key version's.
    let derived = new.lookup.first().is_some_and(|l| {
        l.derived == new.record.token && new.record.fingerprint == Some(l.fingerprint)
    });
    match insert(ctx.conn, &new.record, derived) {
        Ok(_) => {
            ctx.audit(annotate(audit, &new.record, "created"))?;
            Ok(TokenizeOutcome::Created(new.record))
        }
        Err(e) if is_constraint(&e) => {
            // A record with this fingerprint that `lookup` did not find (one not derived
            // under it) holds the index entry: converge on its token.
            if let Some(fp) = &new.record.fingerprint {
                if let Some(r) = by_fingerprint(ctx.conn, domain, fp)? {
                    return existing(ctx, r, audit);
                }
            }
            if read(ctx.conn, &new.record.token, domain)?.is_some() {
                return Ok(TokenizeOutcome::TokenTaken);
            }
            Err(sql_err(e))
        }
        Err(e) => Err(sql_err(e)),
    }
}

fn is_constraint(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// The detokenize job: the sealed PAN only for an active token, after its audit record is
/// written.
pub(super) fn detokenize(
    ctx: &mut JobCtx<'_>,
    token: &Token,
    domain: &Domain,
    audit: AuditEvent,
) -> Result<DetokenizeOutcome, StoreError> {
    match read(ctx.conn, token, domain)? {
        Some(r) if r.status == TokenStatus::Active => {
            // An active token always has its sealed PAN; without one the row is damaged.
            let sealed = r.sealed.clone().ok_or_else(|| {
                StoreError::corrupt(format!("token {}: active without a PAN", r.token.masked()))
            })?;
            let record = ctx.audit(annotate(audit, &r, "ok"))?;
            Ok(DetokenizeOutcome::Active(sealed, Receipt::from(&record)))
        }
        Some(r) if r.status == TokenStatus::Suspended => {
            ctx.audit(annotate(audit, &r, "token_suspended"))?;
            Ok(DetokenizeOutcome::Suspended)
        }
        _ => {
            ctx.audit(not_found(audit, token, domain))?;
            Ok(DetokenizeOutcome::NotFound)
        }
    }
}

/// The transition job. Delete wipes the fingerprint and the sealed PAN.
pub(super) fn transition(
    ctx: &mut JobCtx<'_>,
    token: &Token,
    domain: &Domain,
    change: StatusChange,
    audit: AuditEvent,
) -> Result<TransitionOutcome, StoreError> {
    let current = match read(ctx.conn, token, domain)? {
        Some(r) if r.status != TokenStatus::Deleted => r,
        _ => {
            ctx.audit(not_found(audit, token, domain))?;
            return Ok(TransitionOutcome::NotFound);
        }
    };
    let Ok(next) = current.status.apply(change) else {
        ctx.audit(annotate(audit, &current, "token_state_conflict"))?;
        return Ok(TransitionOutcome::Conflict(current.status));
    };
    let now = crate::clock::now_rfc3339();
    ctx.touch(domain, token);
    let sql = if next == TokenStatus::Deleted {
        "UPDATE tokens SET status = ?3, updated_at = ?4, fingerprint = NULL,
             key_version = NULL, nonce = NULL, ciphertext = NULL
         WHERE domain = ?1 AND token = ?2"
    } else {
        "UPDATE tokens SET status = ?3, updated_at = ?4 WHERE domain = ?1 AND token = ?2"
    };
    ctx.conn
        .prepare_cached(sql)
        .and_then(|mut s| s.execute(params![domain.as_str(), token.as_str(), next.as_str(), now]))
        .map_err(sql_err)?;
    let mut done = current;
    done.status = next;
    done.updated_at = now;
    if next == TokenStatus::Deleted {
        done.fingerprint = None;
        done.sealed = None;
    }
    ctx.audit(annotate(audit, &done, "ok"))?;
    Ok(TransitionOutcome::Done(done))
}
