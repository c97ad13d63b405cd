//! Payment authorization rows and their write jobs: issue a challenge, and end an attempt
//! (consume + counter compare-and-set + authorization + idempotency key + audit) in one
//! savepoint of the group commit. Mirrors `sqlite/authorizations.rs`.

use super::connection::{execute, get, query_opt};
use super::devices::RowLock;
use super::writer::JobCtx;
use crate::audit::AuditEvent;
use crate::card::{Domain, Token, TokenStatus};
use crate::store::{
    AuthorizationChallengeRecord, AuthorizationCommit, AuthorizationRecord, ChallengeIssue,
    ChallengeState, CommitOutcome, IdempotencyRecord, Idempotent, StoreError,
};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

const CHALLENGE_COLUMNS: &str = "id, challenge, principal, token, domain, device_id, amount, \
     currency, payee, spc_payee_origin, spc_top_origin, spc_instrument_name, \
     spc_instrument_icon, created_at, expires_at, used_at, audience, spc_extra";

fn amount_to_sql(amount: u64) -> Result<i64, StoreError> {
    i64::try_from(amount).map_err(|_| StoreError::unavailable("amount out of range"))
}

/// A challenge row, validated.
fn challenge_from_row(row: &Row) -> Result<AuthorizationChallengeRecord, StoreError> {
    let id: String = get(row, 0)?;
    let bad = |what: &str| StoreError::corrupt(format!("authorization challenge {id}: bad {what}"));
    let token = Token::parse(get::<&str>(row, 3)?).map_err(|_| bad("token"))?;
    let domain = Domain::parse(get::<&str>(row, 4)?).map_err(|_| bad("domain"))?;
    let amount = u64::try_from(get::<i64>(row, 6)?).map_err(|_| bad("amount"))?;
    let spc: [Option<String>; 4] = [get(row, 9)?, get(row, 10)?, get(row, 11)?, get(row, 12)?];
    let spc = crate::store::authorizations::spc_from_columns(spc, get(row, 17)?).map_err(bad)?;
    Ok(AuthorizationChallengeRecord {
        challenge: get(row, 1)?,
        principal: get(row, 2)?,
        token,
        domain,
        device_id: get(row, 5)?,
        amount,
        currency: get(row, 7)?,
        payee: get(row, 8)?,
        spc,
        created_at: get(row, 13)?,
        expires_at: get(row, 14)?,
        used_at: get(row, 15)?,
        audience: get(row, 16)?,
        id,
    })
}

/// Looks the key up: `Some(answer)` if the job must stop here.
async fn check_key<T>(
    db: &ClientWrapper,
    idempotency: Option<&IdempotencyRecord>,
) -> Result<Option<Idempotent<T>>, StoreError> {
    let Some(new) = idempotency else {
        return Ok(None);
    };
    let Some(old) = read_idempotency(db, &new.principal, &new.key).await? else {
        return Ok(None);
    };
    Ok(Some(if old.request_hash == new.request_hash {
        Idempotent::Replayed(old.response)
    } else {
        Idempotent::KeyReused
    }))
}

async fn insert_idempotency(db: &ClientWrapper, r: &IdempotencyRecord) -> Result<(), StoreError> {
    execute(
        db,
        "INSERT INTO idempotency_keys (principal, key, request_hash, response, created_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &r.principal,
            &r.key,
            &r.request_hash.as_slice(),
            &r.response,
            &r.created_at,
        ],
    )
    .await
    .map(|_| ())
}

/// The token's state as this transaction sees it (`Deleted` for a row that is gone).
pub(super) async fn token_status(
    db: &ClientWrapper,
    token: &Token,
    domain: &Domain,
) -> Result<TokenStatus, StoreError> {
    let row = query_opt(
        db,
        "SELECT status FROM tokens WHERE domain = $1 AND token = $2",
        &[&domain.as_str(), &token.as_str()],
    )
    .await?;
    match row {
        None => Ok(TokenStatus::Deleted),
        Some(r) => TokenStatus::parse(get::<&str>(&r, 0)?)
            .ok_or_else(|| StoreError::corrupt(format!("token {}: bad status", token.as_str()))),
    }
}

/// The issue-challenge job: key lookup, the token still active, insert, key, audit.
pub(super) async fn create_challenge(
    ctx: &mut JobCtx,
    c: AuthorizationChallengeRecord,
    audit: AuditEvent,
    idempotency: Option<IdempotencyRecord>,
) -> Result<Idempotent<ChallengeIssue>, StoreError> {
    if let Some(answer) = check_key(&ctx.db, idempotency.as_ref()).await? {
        return Ok(answer);
    }
    // The service checked the token before; a suspend or delete may have committed since.
    let status = token_status(&ctx.db, &c.token, &c.domain).await?;
    if status != TokenStatus::Active {
        return Ok(Idempotent::Fresh(ChallengeIssue::TokenNotActive(status)));
    }
    // Likewise the device; the shared row lock orders this against a revocation on any
    // replica.
    if !super::devices::is_active(&ctx.db, &c.device_id, RowLock::Share).await? {
        return Ok(Idempotent::Fresh(ChallengeIssue::DeviceRevoked));
    }
    let spc = c.spc.as_ref();
    let amount = amount_to_sql(c.amount)?;
    let sql = format!(
        "INSERT INTO authorization_challenges ({CHALLENGE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,
                 $18)"
    );
    execute(
        &ctx.db,
        &sql,
        &[
            &c.id,
            &c.challenge,
            &c.principal,
            &c.token.as_str(),
            &c.domain.as_str(),
            &c.device_id,
            &amount,
            &c.currency,
            &c.payee,
            &spc.and_then(|s| s.payee_origin.as_deref()),
            &spc.map(|s| s.top_origin.as_str()),
            &spc.map(|s| s.instrument_display_name.as_str()),
            &spc.map(|s| s.instrument_icon.as_str()),
            &c.created_at,
            &c.expires_at,
            &c.used_at,
            &c.audience,
            &spc.and_then(crate::store::authorizations::spc_extra_column),
        ],
    )
    .await?;
    if let Some(record) = &idempotency {
        insert_idempotency(&ctx.db, record).await?;
    }
    ctx.audit(audit).await?;
    Ok(Idempotent::Fresh(ChallengeIssue::Issued))
}

/// Consumes the challenge. The conditional UPDATE is the single-use check: a second
/// consumer finds `used_at` set and updates nothing.
async fn consume(
    db: &ClientWrapper,
    id: &str,
    now: &str,
) -> Result<Option<ChallengeState>, StoreError> {
    let changed = execute(
        db,
        "UPDATE authorization_challenges SET used_at = $2
         WHERE id = $1 AND used_at IS NULL AND expires_at > $2",
        &[&id, &now],
    )
    .await?;
    if changed == 1 {
        return Ok(None);
    }
    let used = query_opt(
        db,
        "SELECT used_at FROM authorization_challenges WHERE id = $1",
        &[&id],
    )
    .await?
    .map(|r| get::<Option<String>>(&r, 0))
    .transpose()?;
    Ok(Some(match used {
        None => ChallengeState::NotFound,
        Some(Some(_)) => ChallengeState::AlreadyUsed,
        Some(None) => ChallengeState::Expired,
    }))
}

async fn insert_authorization(
    db: &ClientWrapper,
    a: &AuthorizationRecord,
) -> Result<(), StoreError> {
    let policy_ids = serde_json::to_string(&a.policy_ids)
        .map_err(|e| StoreError::unavailable_from("policy ids encoding", e))?;
    let amount = amount_to_sql(a.amount)?;
    execute(
        db,
        "INSERT INTO authorizations (authorization_id, challenge_id, token, domain, amount,
             currency, payee, device_id, credential_id, decision, policy_ids, kid, iat, exp, jws)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        &[
            &a.authorization_id,
            &a.challenge_id,
            &a.token.as_str(),
            &a.domain.as_str(),
            &amount,
            &a.currency,
            &a.payee,
            &a.device_id,
            &a.credential_id,
            &a.decision,
            &policy_ids,
            &a.kid,
            &a.iat,
            &a.exp,
            &a.jws,
        ],
    )
    .await
    .map(|_| ())
}

/// The end-of-attempt job: key lookup, for an approval the token still active, consume,
/// counter CAS, authorization, key, audit.
pub(super) async fn commit(
    ctx: &mut JobCtx,
    c: AuthorizationCommit,
) -> Result<Idempotent<CommitOutcome>, StoreError> {
    if let Some(answer) = check_key(&ctx.db, c.idempotency.as_ref()).await? {
        return Ok(answer);
    }
    // The service checked the token before verifying and signing; a suspend or delete may
    // have committed since, and so may the device's revocation (the row lock orders this read
    // against one on any replica).
    if let Some(a) = &c.authorization {
        let status = token_status(&ctx.db, &a.token, &a.domain).await?;
        if status != TokenStatus::Active {
            return Ok(Idempotent::Fresh(CommitOutcome::TokenNotActive(status)));
        }
        if !super::devices::is_active(&ctx.db, &a.device_id, RowLock::Update).await? {
            return Ok(Idempotent::Fresh(CommitOutcome::DeviceRevoked));
        }
    }
    if let Some(state) = consume(&ctx.db, &c.challenge_id, &c.now).await? {
        return Ok(Idempotent::Fresh(CommitOutcome::Challenge(state)));
    }
    if let Some(counter) = &c.counter {
        let moved = super::devices::move_counter(
            &ctx.db,
            &counter.device_id,
            counter.expected_old,
            counter.new,
        )
        .await?;
        if !moved {
            // The consumption stands: the challenge is used up either way.
            return Ok(Idempotent::Fresh(CommitOutcome::CounterConflict));
        }
    }
    if let Some(a) = &c.authorization {
        insert_authorization(&ctx.db, a).await?;
        super::devices::touch(&ctx.db, &a.device_id, &c.now).await?;
    }
    if let Some(record) = &c.idempotency {
        insert_idempotency(&ctx.db, record).await?;
    }
    ctx.audit(c.audit).await?;
    Ok(Idempotent::Fresh(CommitOutcome::Committed))
}

/// Reads a challenge by id.
pub(super) async fn challenge(
    db: &ClientWrapper,
    id: &str,
) -> Result<Option<AuthorizationChallengeRecord>, StoreError> {
    let sql = format!("SELECT {CHALLENGE_COLUMNS} FROM authorization_challenges WHERE id = $1");
    query_opt(db, &sql, &[&id])
        .await?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
}

const AUTHORIZATION_COLUMNS: &str = "authorization_id, challenge_id, token, domain, amount, \
     currency, payee, device_id, credential_id, decision, policy_ids, kid, iat, exp, jws";

/// An authorization row, validated.
fn authorization_from_row(row: &Row) -> Result<AuthorizationRecord, StoreError> {
    let id: String = get(row, 0)?;
    let bad = |what: &str| StoreError::corrupt(format!("authorization {id}: bad {what}"));
    let token = Token::parse(get::<&str>(row, 2)?).map_err(|_| bad("token"))?;
    let domain = Domain::parse(get::<&str>(row, 3)?).map_err(|_| bad("domain"))?;
    let amount = u64::try_from(get::<i64>(row, 4)?).map_err(|_| bad("amount"))?;
    let policy_ids: Vec<String> =
        serde_json::from_str(get::<&str>(row, 10)?).map_err(|_| bad("policy ids"))?;
    Ok(AuthorizationRecord {
        challenge_id: get(row, 1)?,
        token,
        domain,
        amount,
        currency: get(row, 5)?,
        payee: get(row, 6)?,
        device_id: get(row, 7)?,
        credential_id: get(row, 8)?,
        decision: get(row, 9)?,
        policy_ids,
        kid: get(row, 11)?,
        iat: get(row, 12)?,
        exp: get(row, 13)?,
        jws: get(row, 14)?,
        authorization_id: id,
    })
}

/// Reads an authorization by id.
pub(super) async fn authorization(
    db: &ClientWrapper,
    id: &str,
) -> Result<Option<AuthorizationRecord>, StoreError> {
    let sql =
        format!("SELECT {AUTHORIZATION_COLUMNS} FROM authorizations WHERE authorization_id = $1");
    query_opt(db, &sql, &[&id])
        .await?
        .as_ref()
        .map(authorization_from_row)
        .transpose()
}

/// Reads an idempotency key.
pub(super) async fn read_idempotency(
    db: &ClientWrapper,
    principal: &str,
    key: &str,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    let Some(row) = query_opt(
        db,
        "SELECT request_hash, response, created_at FROM idempotency_keys
         WHERE principal = $1 AND key = $2",
        &[&principal, &key],
    )
    .await?
    else {
        return Ok(None);
    };
    let request_hash = <[u8; 32]>::try_from(get::<&[u8]>(&row, 0)?)
        .map_err(|_| StoreError::corrupt(format!("idempotency key {key}: bad request hash")))?;
    Ok(Some(IdempotencyRecord {
        principal: principal.to_owned(),
        key: key.to_owned(),
        request_hash,
        response: get(&row, 1)?,
        created_at: get(&row, 2)?,
    }))
}
