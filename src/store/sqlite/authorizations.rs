//! Payment authorization rows and their write jobs: issue a challenge, and end an attempt
//! (consume + counter compare-and-set + authorization + idempotency key + audit) in one
//! savepoint of the group commit.

use super::sql_err;
use super::writer::JobCtx;
use crate::audit::AuditEvent;
use crate::card::{Domain, Token, TokenStatus};
use crate::store::{
    AuthorizationChallengeRecord, AuthorizationCommit, AuthorizationRecord, ChallengeIssue,
    ChallengeState, CommitOutcome, IdempotencyRecord, Idempotent, StoreError,
};
use rusqlite::{params, Connection, OptionalExtension, Row};

const CHALLENGE_COLUMNS: &str = "id, challenge, principal, token, domain, device_id, amount, \
     currency, payee, spc_payee_origin, spc_top_origin, spc_instrument_name, \
     spc_instrument_icon, created_at, expires_at, used_at, audience, spc_extra";

fn amount_to_sql(amount: u64) -> Result<i64, StoreError> {
    i64::try_from(amount).map_err(|_| StoreError::unavailable("amount out of range"))
}

/// A challenge row, validated.
fn challenge_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<Result<AuthorizationChallengeRecord, StoreError>> {
    let id: String = r.get(0)?;
    let token: String = r.get(3)?;
    let domain: String = r.get(4)?;
    let amount: i64 = r.get(6)?;
    let spc: [Option<String>; 4] = [r.get(9)?, r.get(10)?, r.get(11)?, r.get(12)?];
    let spc_extra: Option<String> = r.get(17)?;
    let bad = |what: &str| StoreError::corrupt(format!("authorization challenge {id}: bad {what}"));
    let checked = (|| {
        let token = Token::parse(&token).map_err(|_| bad("token"))?;
        let domain = Domain::parse(&domain).map_err(|_| bad("domain"))?;
        let amount = u64::try_from(amount).map_err(|_| bad("amount"))?;
        let spc = crate::store::authorizations::spc_from_columns(spc, spc_extra.as_deref())
            .map_err(bad)?;
        Ok((token, domain, amount, spc))
    })();
    let (token, domain, amount, spc) = match checked {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(AuthorizationChallengeRecord {
        challenge: r.get(1)?,
        principal: r.get(2)?,
        token,
        domain,
        device_id: r.get(5)?,
        amount,
        currency: r.get(7)?,
        payee: r.get(8)?,
        spc,
        created_at: r.get(13)?,
        expires_at: r.get(14)?,
        used_at: r.get(15)?,
        audience: r.get(16)?,
        id,
    }))
}

/// Looks the key up: `Some(answer)` if the job must stop here.
fn check_key<T>(
    conn: &Connection,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<Option<Idempotent<T>>, StoreError> {
    let Some(new) = idempotency else {
        return Ok(None);
    };
    let Some(old) = read_idempotency(conn, &new.principal, &new.key)? else {
        return Ok(None);
    };
    Ok(Some(if old.request_hash == new.request_hash {
        Idempotent::Replayed(old.response)
    } else {
        Idempotent::KeyReused
    }))
}

fn insert_idempotency(conn: &Connection, r: &IdempotencyRecord) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (principal, key, request_hash, response, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )
    .and_then(|mut s| {
        s.execute(params![
            r.principal,
            r.key,
            r.request_hash.as_slice(),
            r.response,
            r.created_at
        ])
    })
    .map_err(sql_err)
    .map(|_| ())
}

/// The token's state as this transaction sees it (`Deleted` for a row that is gone). Read
/// here, not from the token cache: the write that changes it may be in this very batch.
pub(super) fn token_status(
    conn: &Connection,
    token: &Token,
    domain: &Domain,
) -> Result<TokenStatus, StoreError> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM tokens WHERE domain = ?1 AND token = ?2")
        .and_then(|mut s| {
            s.query_row(params![domain.as_str(), token.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(sql_err)?;
    match status {
        None => Ok(TokenStatus::Deleted),
        Some(s) => TokenStatus::parse(&s)
            .ok_or_else(|| StoreError::corrupt(format!("token {}: bad status", token.as_str()))),
    }
}

/// The issue-challenge job: key lookup, the token still active, insert, key, audit.
pub(super) fn create_challenge(
    ctx: &mut JobCtx<'_>,
    c: AuthorizationChallengeRecord,
    audit: AuditEvent,
    idempotency: Option<IdempotencyRecord>,
) -> Result<Idempotent<ChallengeIssue>, StoreError> {
    if let Some(answer) = check_key(ctx.conn, idempotency.as_ref())? {
        return Ok(answer);
    }
    // The service checked the token before; a suspend or delete may have committed since.
    let status = token_status(ctx.conn, &c.token, &c.domain)?;
    if status != TokenStatus::Active {
        return Ok(Idempotent::Fresh(ChallengeIssue::TokenNotActive(status)));
    }
    // Likewise the device: a revocation committed since is final.
    if !super::devices::is_active(ctx.conn, &c.device_id)? {
        return Ok(Idempotent::Fresh(ChallengeIssue::DeviceRevoked));
    }
    let spc = c.spc.as_ref();
    let amount = amount_to_sql(c.amount)?;
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO authorization_challenges ({CHALLENGE_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18)"
        ))
        .and_then(|mut s| {
            s.execute(params![
                c.id,
                c.challenge,
                c.principal,
                c.token.as_str(),
                c.domain.as_str(),
                c.device_id,
                amount,
                c.currency,
                c.payee,
                spc.and_then(|s| s.payee_origin.as_ref()),
                spc.map(|s| &s.top_origin),
                spc.map(|s| &s.instrument_display_name),
                spc.map(|s| &s.instrument_icon),
                c.created_at,
                c.expires_at,
                c.used_at,
                c.audience,
                spc.and_then(crate::store::authorizations::spc_extra_column),
            ])
        })
        .map_err(sql_err)?;
    if let Some(record) = &idempotency {
        insert_idempotency(ctx.conn, record)?;
    }
    ctx.audit(audit)?;
    Ok(Idempotent::Fresh(ChallengeIssue::Issued))
}

/// Consumes the challenge. The conditional UPDATE is the single-use check: a second
/// consumer finds `used_at` set and updates nothing.
fn consume(conn: &Connection, id: &str, now: &str) -> Result<Option<ChallengeState>, StoreError> {
    let changed = conn
        .prepare_cached(
            "UPDATE authorization_challenges SET used_at = ?2
             WHERE id = ?1 AND used_at IS NULL AND expires_at > ?2",
        )
        .and_then(|mut s| s.execute(params![id, now]))
        .map_err(sql_err)?;
    if changed == 1 {
        return Ok(None);
    }
    let used: Option<Option<String>> = conn
        .prepare_cached("SELECT used_at FROM authorization_challenges WHERE id = ?1")
        .and_then(|mut s| s.query_row(params![id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    Ok(Some(match used {
        None => ChallengeState::NotFound,
        Some(Some(_)) => ChallengeState::AlreadyUsed,
        Some(None) => ChallengeState::Expired,
    }))
}

fn insert_authorization(conn: &Connection, a: &AuthorizationRecord) -> Result<(), StoreError> {
    let policy_ids = serde_json::to_string(&a.policy_ids)
        .map_err(|e| StoreError::unavailable_from("policy ids encoding", e))?;
    let amount = amount_to_sql(a.amount)?;
    conn.prepare_cached(&format!(
        "INSERT INTO authorizations ({AUTHORIZATION_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
    ))
    .and_then(|mut s| {
        s.execute(params![
            a.authorization_id,
            a.challenge_id,
            a.token.as_str(),
            a.domain.as_str(),
            amount,
            a.currency,
            a.payee,
            a.device_id,
            a.credential_id,
            a.decision,
            policy_ids,
            a.kid,
            a.iat,
            a.exp,
            a.jws,
        ])
    })
    .map_err(sql_err)
    .map(|_| ())
}

/// The end-of-attempt job: key lookup, for an approval the token and device still active, consume,
/// counter CAS, authorization, key, audit.
pub(super) fn commit(
    ctx: &mut JobCtx<'_>,
    c: AuthorizationCommit,
) -> Result<Idempotent<CommitOutcome>, StoreError> {
    if let Some(answer) = check_key(ctx.conn, c.idempotency.as_ref())? {
        return Ok(answer);
    }
    // The service checked the token before verifying and signing; a suspend or delete may
    // have committed since, and so may the device's revocation.
    if let Some(a) = &c.authorization {
        let status = token_status(ctx.conn, &a.token, &a.domain)?;
        if status != TokenStatus::Active {
            return Ok(Idempotent::Fresh(CommitOutcome::TokenNotActive(status)));
        }
        if !super::devices::is_active(ctx.conn, &a.device_id)? {
            return Ok(Idempotent::Fresh(CommitOutcome::DeviceRevoked));
        }
    }
    if let Some(state) = consume(ctx.conn, &c.challenge_id, &c.now)? {
        return Ok(Idempotent::Fresh(CommitOutcome::Challenge(state)));
    }
    if let Some(counter) = &c.counter {
        let moved = ctx
            .conn
            .prepare_cached(
                "UPDATE devices SET sign_count = ?3 WHERE device_id = ?1 AND sign_count = ?2",
            )
            .and_then(|mut s| {
                s.execute(params![
                    counter.device_id,
                    i64::from(counter.expected_old),
                    i64::from(counter.new)
                ])
            })
            .map_err(sql_err)?;
        if moved == 0 {
            // The consumption stands: the challenge is used up either way.
            return Ok(Idempotent::Fresh(CommitOutcome::CounterConflict));
        }
    }
    if let Some(a) = &c.authorization {
        insert_authorization(ctx.conn, a)?;
        super::devices::touch(ctx.conn, &a.device_id, &c.now)?;
    }
    if let Some(record) = &c.idempotency {
        insert_idempotency(ctx.conn, record)?;
    }
    ctx.audit(c.audit)?;
    Ok(Idempotent::Fresh(CommitOutcome::Committed))
}

/// Reads a challenge by id.
pub(super) fn challenge(
    conn: &Connection,
    id: &str,
) -> Result<Option<AuthorizationChallengeRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM authorization_challenges WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id], challenge_from_row).optional())
    .map_err(sql_err)?
    .transpose()
}

const AUTHORIZATION_COLUMNS: &str = "authorization_id, challenge_id, token, domain, amount, \
     currency, payee, device_id, credential_id, decision, policy_ids, kid, iat, exp, jws";

/// An authorization row, validated.
fn authorization_from_row(
    r: &Row<'_>,
) -> rusqlite::Result<Result<AuthorizationRecord, StoreError>> {
    let id: String = r.get(0)?;
    let token: String = r.get(2)?;
    let domain: String = r.get(3)?;
    let amount: i64 = r.get(4)?;
    let policy_ids: String = r.get(10)?;
    let bad = |what: &str| StoreError::corrupt(format!("authorization {id}: bad {what}"));
    let checked = (|| {
        let token = Token::parse(&token).map_err(|_| bad("token"))?;
        let domain = Domain::parse(&domain).map_err(|_| bad("domain"))?;
        let amount = u64::try_from(amount).map_err(|_| bad("amount"))?;
        let policy_ids: Vec<String> =
            serde_json::from_str(&policy_ids).map_err(|_| bad("policy ids"))?;
        Ok((token, domain, amount, policy_ids))
    })();
    let (token, domain, amount, policy_ids) = match checked {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(AuthorizationRecord {
        challenge_id: r.get(1)?,
        token,
        domain,
        amount,
        currency: r.get(5)?,
        payee: r.get(6)?,
        device_id: r.get(7)?,
        credential_id: r.get(8)?,
        decision: r.get(9)?,
        policy_ids,
        kid: r.get(11)?,
        iat: r.get(12)?,
        exp: r.get(13)?,
        jws: r.get(14)?,
        authorization_id: id,
    }))
}

/// Reads an authorization by id.
pub(super) fn authorization(
    conn: &Connection,
    id: &str,
) -> Result<Option<AuthorizationRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE authorization_id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id], authorization_from_row).optional())
    .map_err(sql_err)?
    .transpose()
}

/// Reads an idempotency key.
pub(super) fn read_idempotency(
    conn: &Connection,
    principal: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let row: Option<(Vec<u8>, String, String)> = conn
        .prepare_cached(
            "SELECT request_hash, response, created_at FROM idempotency_keys
             WHERE principal = ?1 AND key = ?2",
        )
        .and_then(|mut s| {
            s.query_row(params![principal, key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()
        })
        .map_err(sql_err)?;
    let Some((hash, response, created_at)) = row else {
        return Ok(None);
    };
    let request_hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| StoreError::corrupt(format!("idempotency key {key}: bad request hash")))?;
    Ok(Some(IdempotencyRecord {
        principal: principal.to_owned(),
        key: key.to_owned(),
        request_hash,
        response,
        created_at,
    }))
}
