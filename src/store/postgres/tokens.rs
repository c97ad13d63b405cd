//! Token rows: mapping to [`TokenRecord`] and the write jobs (tokenize, detokenize,
//! transition), each run by the writer inside its own savepoint. Mirrors `sqlite/tokens.rs`.

use super::connection::{execute, get, query_opt};
use super::writer::JobCtx;
use crate::audit::{AuditEvent, Receipt};
use crate::card::{Domain, Last4, StatusChange, Token, TokenFormat, TokenStatus};
use crate::keys::{Fingerprint, KeyVersion, SealedPan};
use crate::store::{
    DetokenizeOutcome, Lookup, NewToken, StoreError, TokenRecord, TokenizeOutcome,
    TransitionOutcome,
};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

pub(super) const COLUMNS: &str =
    "domain, token, fingerprint, key_version, nonce, ciphertext, last4, status, created_at, \
     updated_at";

/// Validates a row selected with [`COLUMNS`]. Error texts name the token and the column,
/// never the bytes.
pub(super) fn from_row(row: &Row) -> Result<TokenRecord, StoreError> {
    let token: String = get(row, 1)?;
    let bad = |what: &str| StoreError::corrupt(format!("token {token}: bad {what}"));
    let fingerprint = match get::<Option<&[u8]>>(row, 2)? {
        None => None,
        Some(b) => Some(Fingerprint(b.try_into().map_err(|_| bad("fingerprint"))?)),
    };
    let key_version: Option<i64> = get(row, 3)?;
    let nonce: Option<&[u8]> = get(row, 4)?;
    let ciphertext: Option<&[u8]> = get(row, 5)?;
    let sealed = match (key_version, nonce, ciphertext) {
        (None, None, None) => None,
        (Some(v), Some(n), Some(c)) => Some(SealedPan {
            key_version: KeyVersion(u32::try_from(v).map_err(|_| bad("key_version"))?),
            nonce: n.try_into().map_err(|_| bad("nonce"))?,
            ciphertext: c.to_vec(),
        }),
        _ => return Err(bad("sealed PAN (partly NULL)")),
    };
    let domain: &str = get(row, 0)?;
    let last4: &str = get(row, 6)?;
    let status: &str = get(row, 7)?;
    Ok(TokenRecord {
        token: Token::parse(&token).map_err(|_| bad("token"))?,
        domain: Domain::parse(domain).map_err(|_| bad("domain"))?,
        fingerprint,
        sealed,
        last4: Last4::parse(last4).ok_or_else(|| bad("last4"))?,
        status: TokenStatus::parse(status).ok_or_else(|| bad("status"))?,
        created_at: get(row, 8)?,
        updated_at: get(row, 9)?,
    })
}

/// Reads a token in any state.
pub(super) async fn read(
    db: &ClientWrapper,
    token: &Token,
    domain: &Domain,
) -> Result<Option<TokenRecord>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM tokens WHERE domain = $1 AND token = $2");
    query_opt(db, &sql, &[&domain.as_str(), &token.as_str()])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// The live token of the PAN `l` describes in the domain: the row of its derived token if
/// that row is the PAN's, else a token the fingerprint index holds.
async fn live_token(
    db: &ClientWrapper,
    domain: &Domain,
    l: &Lookup,
) -> Result<Option<TokenRecord>, StoreError> {
    if let Some(r) = read(db, &l.derived, domain).await? {
        if r.status != TokenStatus::Deleted && r.fingerprint.as_ref() == Some(&l.fingerprint) {
            return Ok(Some(r));
        }
    }
    by_fingerprint(db, domain, &l.fingerprint).await
}

/// The live token with this fingerprint in the domain among those not derived from it (the
/// fingerprint index holds only those).
async fn by_fingerprint(
    db: &ClientWrapper,
    domain: &Domain,
    fp: &Fingerprint,
) -> Result<Option<TokenRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens
         WHERE domain = $1 AND fingerprint = $2 AND NOT derived AND status != 'deleted'"
    );
    query_opt(db, &sql, &[&domain.as_str(), &fp.0.as_slice()])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

/// Makes the derived tokens findable under `format`: if they were derived under another one
/// (the configuration changed), the rows derived before move to the fingerprint index, since
/// deriving again would not arrive at them. A full-table update, once per change.
async fn adopt_format(db: &ClientWrapper, format: TokenFormat) -> Result<(), StoreError> {
    let want = format!("{}+{}", format.keep_first(), format.keep_last());
    let have = query_opt(
        db,
        "SELECT value FROM store_settings WHERE key = 'token_format'",
        &[],
    )
    .await?
    .map(|r| get::<String>(&r, 0))
    .transpose()?;
    if have.as_deref() == Some(want.as_str()) {
        return Ok(());
    }
    if have.is_some() {
        execute(db, "UPDATE tokens SET derived = false WHERE derived", &[]).await?;
    }
    execute(
        db,
        "INSERT INTO store_settings (key, value) VALUES ('token_format', $1)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&want],
    )
    .await?;
    Ok(())
}

/// Inserts the record unless a unique key (token, or an indexed fingerprint) is taken: then
/// nothing is inserted and `false` returned. `ON CONFLICT DO NOTHING` rather than catching
/// the error, which would abort the transaction up to the job's savepoint.
async fn insert(db: &ClientWrapper, r: &TokenRecord, derived: bool) -> Result<bool, StoreError> {
    let sealed = r.sealed.as_ref();
    let sql = format!(
        "INSERT INTO tokens ({COLUMNS}, derived)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT DO NOTHING"
    );
    let n = execute(
        db,
        &sql,
        &[
            &r.domain.as_str(),
            &r.token.as_str(),
            &r.fingerprint.as_ref().map(|f| f.0.as_slice()),
            &sealed.map(|s| i64::from(s.key_version.0)),
            &sealed.map(|s| s.nonce.as_slice()),
            &sealed.map(|s| s.ciphertext.as_slice()),
            &r.last4.as_str(),
            &r.status.as_str(),
            &r.created_at,
            &r.updated_at,
            &derived,
        ],
    )
    .await?;
    Ok(n == 1)
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

async fn existing(
    ctx: &mut JobCtx,
    r: TokenRecord,
    audit: AuditEvent,
) -> Result<TokenizeOutcome, StoreError> {
    ctx.audit(annotate(audit, &r, "existing")).await?;
    Ok(TokenizeOutcome::Existing(r))
}

/// The tokenize job.
pub(super) async fn tokenize(
    ctx: &mut JobCtx,
    new: NewToken,
    audit: AuditEvent,
) -> Result<TokenizeOutcome, StoreError> {
    let domain = &new.record.domain;
    if ctx.carried.token_format != Some(new.format) {
        adopt_format(&ctx.db, new.format).await?;
        ctx.carried.token_format = Some(new.format);
    }
    for l in &new.lookup {
        if let Some(r) = live_token(&ctx.db, domain, l).await? {
            return existing(ctx, r, audit).await;
        }
    }
    // A ring read before a key change (here or on another replica) must neither seal under a
    // version that is no longer active nor miss a version a live record may be under.
    let sealed_under = new.record.sealed.as_ref().map(|s| s.key_version);
    let versions: Vec<_> = new.lookup.iter().map(|l| l.version).collect();
    if !super::keys::ring_is_current(ctx, sealed_under, &versions).await? {
        return Ok(TokenizeOutcome::KeysChanged);
    }
    // The record is the derived token (found by reading its row, kept out of the index) when
    // it is the one derived from its own fingerprint, the current key version's.
    let derived = new.lookup.first().is_some_and(|l| {
        l.derived == new.record.token && new.record.fingerprint == Some(l.fingerprint)
    });
    if insert(&ctx.db, &new.record, derived).await? {
        ctx.audit(annotate(audit, &new.record, "created")).await?;
        return Ok(TokenizeOutcome::Created(new.record));
    }
    // A record with this fingerprint that `lookup` did not find (one not derived under it)
    // holds the index entry: converge on its token.
    if let Some(fp) = &new.record.fingerprint {
        if let Some(r) = by_fingerprint(&ctx.db, domain, fp).await? {
            return existing(ctx, r, audit).await;
        }
    }
    if read(&ctx.db, &new.record.token, domain).await?.is_some() {
        return Ok(TokenizeOutcome::TokenTaken);
    }
    Err(StoreError::unavailable(
        "token insert conflicted with no row to show for it",
    ))
}

/// The detokenize job: the sealed PAN only for an active token, after its audit record is
/// written.
pub(super) async fn detokenize(
    ctx: &mut JobCtx,
    token: Token,
    domain: Domain,
    audit: AuditEvent,
) -> Result<DetokenizeOutcome, StoreError> {
    match read(&ctx.db, &token, &domain).await? {
        Some(r) if r.status == TokenStatus::Active => {
            // An active token always has its sealed PAN; without one the row is damaged.
            let sealed = r.sealed.clone().ok_or_else(|| {
                StoreError::corrupt(format!("token {}: active without a PAN", r.token.masked()))
            })?;
            let record = ctx.audit(annotate(audit, &r, "ok")).await?;
            Ok(DetokenizeOutcome::Active(sealed, Receipt::from(&record)))
        }
        Some(r) if r.status == TokenStatus::Suspended => {
            ctx.audit(annotate(audit, &r, "token_suspended")).await?;
            Ok(DetokenizeOutcome::Suspended)
        }
        _ => {
            ctx.audit(not_found(audit, &token, &domain)).await?;
            Ok(DetokenizeOutcome::NotFound)
        }
    }
}

/// The transition job. Delete wipes the fingerprint and the sealed PAN.
pub(super) async fn transition(
    ctx: &mut JobCtx,
    token: Token,
    domain: Domain,
    change: StatusChange,
    audit: AuditEvent,
) -> Result<TransitionOutcome, StoreError> {
    let current = match read(&ctx.db, &token, &domain).await? {
        Some(r) if r.status != TokenStatus::Deleted => r,
        _ => {
            ctx.audit(not_found(audit, &token, &domain)).await?;
            return Ok(TransitionOutcome::NotFound);
        }
    };
    let Ok(next) = current.status.apply(change) else {
        ctx.audit(annotate(audit, &current, "token_state_conflict"))
            .await?;
        return Ok(TransitionOutcome::Conflict(current.status));
    };
    let now = crate::clock::now_rfc3339();
    let sql = if next == TokenStatus::Deleted {
        "UPDATE tokens SET status = $3, updated_at = $4, fingerprint = NULL,
             key_version = NULL, nonce = NULL, ciphertext = NULL
         WHERE domain = $1 AND token = $2"
    } else {
        "UPDATE tokens SET status = $3, updated_at = $4 WHERE domain = $1 AND token = $2"
    };
    execute(
        &ctx.db,
        sql,
        &[&domain.as_str(), &token.as_str(), &next.as_str(), &now],
    )
    .await?;
    let mut done = current;
    done.status = next;
    done.updated_at = now;
    if next == TokenStatus::Deleted {
        done.fingerprint = None;
        done.sealed = None;
    }
    ctx.audit(annotate(audit, &done, "ok")).await?;
    Ok(TransitionOutcome::Done(done))
}
