//! Key lifecycle rows: data key versions, signing keys, custodian approvals, and the rewrap
//! of token records. Every change runs as one writer job with its audit record. Mirrors
//! `sqlite/keys.rs` (and `sqlite/readers.rs` for the data keys).

use super::connection::{count, execute, get, query, query_one, query_opt};
use super::tokens::{self, COLUMNS};
use super::writer::JobCtx;
use crate::audit::AuditEvent;
use crate::keys::{DataKeyState, KeyVersion, WrappedDataKey};
use crate::store::{
    ApprovalOutcome, DataKeyInfo, KeyApproval, KeyChangeOutcome, Rewrapped, SigningKeyRecord,
    SigningKeyState, StoreError, TokenRecord,
};
use deadpool_postgres::ClientWrapper;

/// All wrapped data keys, oldest first.
pub(super) async fn data_keys(db: &ClientWrapper) -> Result<Vec<WrappedDataKey>, StoreError> {
    let rows = query(
        db,
        "SELECT version, kek_label, iv, wrapped, state, created_at
         FROM data_keys ORDER BY version",
        &[],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let version: i64 = get(&row, 0)?;
        let bad = |what: &str| StoreError::corrupt(format!("data key {version}: bad {what}"));
        out.push(WrappedDataKey {
            version: KeyVersion(u32::try_from(version).map_err(|_| bad("version"))?),
            kek_label: get(&row, 1)?,
            iv: get::<&[u8]>(&row, 2)?.try_into().map_err(|_| bad("iv"))?,
            wrapped: get(&row, 3)?,
            state: DataKeyState::parse(get::<&str>(&row, 4)?).ok_or_else(|| bad("state"))?,
            created_at: get(&row, 5)?,
        });
    }
    Ok(out)
}

/// Every data key version with its dates and the number of token records sealed under it.
pub(super) async fn data_key_info(db: &ClientWrapper) -> Result<Vec<DataKeyInfo>, StoreError> {
    let rows = query(
        db,
        "SELECT d.version, d.kek_label, d.state, d.created_at, d.activated_at,
                d.retired_at, d.destroyed_at, d.cryptoperiod_end,
                (SELECT COUNT(*) FROM tokens t
                 WHERE t.key_version = d.version AND t.ciphertext IS NOT NULL)
         FROM data_keys d ORDER BY d.version",
        &[],
    )
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let version: i64 = get(&row, 0)?;
        let bad = |what: &str| StoreError::corrupt(format!("data key {version}: bad {what}"));
        out.push(DataKeyInfo {
            version: KeyVersion(u32::try_from(version).map_err(|_| bad("version"))?),
            kek_label: get(&row, 1)?,
            state: DataKeyState::parse(get::<&str>(&row, 2)?).ok_or_else(|| bad("state"))?,
            created_at: get(&row, 3)?,
            activated_at: get(&row, 4)?,
            retired_at: get(&row, 5)?,
            destroyed_at: get(&row, 6)?,
            cryptoperiod_end: get(&row, 7)?,
            records: count(&row, 8)?,
        });
    }
    Ok(out)
}

async fn data_key_state(
    db: &ClientWrapper,
    version: KeyVersion,
) -> Result<Option<String>, StoreError> {
    query_opt(
        db,
        "SELECT state FROM data_keys WHERE version = $1",
        &[&i64::from(version.0)],
    )
    .await?
    .map(|r| get::<String>(&r, 0))
    .transpose()
}

/// Whether records may be sealed under `version`: not once it is retired or destroyed.
pub(super) async fn may_seal(db: &ClientWrapper, version: KeyVersion) -> Result<bool, StoreError> {
    Ok(!matches!(
        data_key_state(db, version).await?.as_deref(),
        Some("retired" | "destroyed")
    ))
}

/// Whether a request's key ring matches the stored data keys
/// ([`crate::store::ring_matches`]). Read once per batch, inside the transaction that holds
/// the chain head lock, so no other replica changes the keys before the commit; a job of this
/// batch that changes them forgets what was read ([`forget_keys`]).
pub(super) async fn ring_is_current(
    ctx: &mut JobCtx,
    sealed_under: Option<KeyVersion>,
    versions: &[KeyVersion],
) -> Result<bool, StoreError> {
    if ctx.carried.live_keys.is_none() {
        let rows = query(
            &ctx.db,
            "SELECT version, state FROM data_keys WHERE state IN ('active', 'decrypt_only')",
            &[],
        )
        .await?;
        let mut live = Vec::with_capacity(rows.len());
        for row in &rows {
            let version = u32::try_from(get::<i64>(row, 0)?)
                .map_err(|_| StoreError::corrupt("data_keys.version out of range"))?;
            live.push((KeyVersion(version), get::<&str>(row, 1)? == "active"));
        }
        ctx.carried.live_keys = Some(live);
    }
    let live = ctx.carried.live_keys.as_deref().unwrap_or_default();
    Ok(crate::store::ring_matches(live, sealed_under, versions))
}

/// Drops the data keys a job of this batch read: the job running changes them.
fn forget_keys(ctx: &mut JobCtx) {
    ctx.carried.live_keys = None;
}

/// See [`crate::store::KeyStore::pin_kek_kcv`]: kept in `store_settings` as `kek_kcv:<label>`.
/// The insert-if-absent is one statement, so two replicas starting at once record one value.
pub(super) async fn pin_kek_kcv(
    ctx: &mut JobCtx,
    label: &str,
    kcv: &str,
    audit: AuditEvent,
) -> Result<Option<String>, StoreError> {
    let key = format!("kek_kcv:{label}");
    let inserted = execute(
        &ctx.db,
        "INSERT INTO store_settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&key, &kcv],
    )
    .await?;
    if inserted == 1 {
        ctx.audit(audit).await?;
        return Ok(None);
    }
    let row = query_one(
        &ctx.db,
        "SELECT value FROM store_settings WHERE key = $1",
        &[&key],
    )
    .await?;
    Ok(Some(get::<String>(&row, 0)?))
}

async fn records_under(db: &ClientWrapper, version: KeyVersion) -> Result<u64, StoreError> {
    let row = query_one(
        db,
        "SELECT COUNT(*) FROM tokens WHERE key_version = $1 AND ciphertext IS NOT NULL",
        &[&i64::from(version.0)],
    )
    .await?;
    count(&row, 0)
}

/// Stores `key` as the active version; the active one before it becomes decrypt-only. The
/// version must be the next one (one more than the highest stored), else `StateConflict`.
pub(super) async fn activate_data_key(
    ctx: &mut JobCtx,
    key: WrappedDataKey,
    cryptoperiod_end: String,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    forget_keys(ctx);
    let row = query_one(
        &ctx.db,
        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM data_keys",
        &[],
    )
    .await?;
    let highest: i64 = get(&row, 0)?;
    if i64::from(key.version.0) != highest.saturating_add(1) {
        return Ok(KeyChangeOutcome::StateConflict(format!(
            "version {highest} is the newest, not {}",
            key.version.0.saturating_sub(1)
        )));
    }
    execute(
        &ctx.db,
        "UPDATE data_keys SET state = 'decrypt_only' WHERE state = 'active'",
        &[],
    )
    .await?;
    execute(
        &ctx.db,
        "INSERT INTO data_keys (version, kek_label, iv, wrapped, state, created_at,
                                activated_at, cryptoperiod_end)
         VALUES ($1, $2, $3, $4, 'active', $5, $5, $6)",
        &[
            &i64::from(key.version.0),
            &key.kek_label,
            &key.iv.as_slice(),
            &key.wrapped,
            &key.created_at,
            &cryptoperiod_end,
        ],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}

/// `decrypt_only -> retired` when no record is sealed under it any more.
pub(super) async fn retire_data_key(
    ctx: &mut JobCtx,
    version: KeyVersion,
    now: String,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    forget_keys(ctx);
    match data_key_state(&ctx.db, version).await?.as_deref() {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some("decrypt_only") => {}
        Some(other) => return Ok(KeyChangeOutcome::StateConflict(other.to_owned())),
    }
    let records = records_under(&ctx.db, version).await?;
    if records > 0 {
        return Ok(KeyChangeOutcome::InUse {
            records,
            until: None,
        });
    }
    execute(
        &ctx.db,
        "UPDATE data_keys SET state = 'retired', retired_at = $2 WHERE version = $1",
        &[&i64::from(version.0), &now],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}

/// `retired -> destroyed`: the wrapped key is overwritten, so no KEK can bring it back. Checks
/// again that no record is sealed under it.
pub(super) async fn destroy_data_key(
    ctx: &mut JobCtx,
    version: KeyVersion,
    now: String,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    forget_keys(ctx);
    let state = data_key_state(&ctx.db, version).await?;
    if state.is_none() {
        return Ok(KeyChangeOutcome::NotFound);
    }
    // Records first: whatever its state, a version that still seals a record is never erased.
    let records = records_under(&ctx.db, version).await?;
    if records > 0 {
        return Ok(KeyChangeOutcome::InUse {
            records,
            until: None,
        });
    }
    if let Some(other) = state.filter(|s| s != "retired") {
        return Ok(KeyChangeOutcome::StateConflict(other));
    }
    execute(
        &ctx.db,
        "UPDATE data_keys SET state = 'destroyed', destroyed_at = $2,
             iv = decode('000000000000000000000000', 'hex'), wrapped = ''::BYTEA
         WHERE version = $1",
        &[&i64::from(version.0), &now],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}

/// Records one custodian's approval; a second, distinct custodian's approval of the same change
/// within the window grants it (and uses the first one up). Approvals are audited either way.
/// Batches of all replicas are serialized on the chain head, and the use is a conditional
/// update besides: a pending approval grants one change only.
pub(super) async fn approve(
    ctx: &mut JobCtx,
    approval: KeyApproval,
    mut audit: AuditEvent,
) -> Result<ApprovalOutcome, StoreError> {
    let rows = query(
        &ctx.db,
        "SELECT id, custodian, expires_at FROM key_approvals
         WHERE change = $1 AND used_at IS NULL AND expires_at > $2
         ORDER BY id",
        &[&approval.change, &approval.now],
    )
    .await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        pending.push((
            get::<i64>(row, 0)?,
            get::<String>(row, 1)?,
            get::<String>(row, 2)?,
        ));
    }
    if let Some((_, _, expires_at)) = pending.iter().find(|p| p.1 == approval.custodian) {
        // The policy allowed the approval; dual control refused it: the outcome says so.
        audit.outcome = "same_custodian".to_owned();
        ctx.audit(audit).await?;
        return Ok(ApprovalOutcome::SameCustodian {
            expires_at: expires_at.clone(),
        });
    }
    if let Some((id, first, _)) = pending.into_iter().next() {
        let used = execute(
            &ctx.db,
            "UPDATE key_approvals SET used_at = $2 WHERE id = $1 AND used_at IS NULL",
            &[&id, &approval.now],
        )
        .await?;
        if used != 1 {
            return Err(StoreError::unavailable(
                "the pending approval was used in between",
            ));
        }
        audit.outcome = "granted".to_owned();
        audit.detail = Some(format!(
            "{}; approved by {first} and {}",
            approval.change, approval.custodian
        ));
        ctx.audit(audit).await?;
        return Ok(ApprovalOutcome::Granted { first });
    }
    execute(
        &ctx.db,
        "INSERT INTO key_approvals (change, custodian, approved_at, expires_at)
         VALUES ($1, $2, $3, $4)",
        &[
            &approval.change,
            &approval.custodian,
            &approval.now,
            &approval.expires_at,
        ],
    )
    .await?;
    audit.outcome = "pending".to_owned();
    audit.detail = Some(format!(
        "{}; awaiting a second custodian until {}",
        approval.change, approval.expires_at
    ));
    ctx.audit(audit).await?;
    Ok(ApprovalOutcome::Pending {
        expires_at: approval.expires_at,
    })
}

/// Live token records sealed under another version than `active`, at most `limit`.
pub(super) async fn to_rewrap(
    db: &ClientWrapper,
    active: KeyVersion,
    limit: usize,
) -> Result<Vec<TokenRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens
         WHERE ciphertext IS NOT NULL AND key_version != $1
         ORDER BY key_version, domain, token LIMIT $2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = query(db, &sql, &[&i64::from(active.0), &limit]).await?;
    rows.iter().map(tokens::from_row).collect()
}

/// How many live records are sealed under another version than `active`.
pub(super) async fn count_to_rewrap(
    db: &ClientWrapper,
    active: KeyVersion,
) -> Result<u64, StoreError> {
    let row = query_one(
        db,
        "SELECT COUNT(*) FROM tokens WHERE ciphertext IS NOT NULL AND key_version != $1",
        &[&i64::from(active.0)],
    )
    .await?;
    count(&row, 0)
}

/// Moves records to their new sealing; a record changed since it was read (deleted, or
/// rewrapped by another replica) is left alone. Writes `audit` with the count when any moved.
pub(super) async fn rewrap(
    ctx: &mut JobCtx,
    batch: Vec<Rewrapped>,
    mut audit: AuditEvent,
) -> Result<u64, StoreError> {
    let mut moved = 0u64;
    let mut to = None;
    for r in &batch {
        if !may_seal(&ctx.db, r.sealed.key_version).await? {
            return Err(StoreError::unavailable(format!(
                "data key version {} no longer seals records",
                r.sealed.key_version.0
            )));
        }
        to = Some(r.sealed.key_version);
        let n = execute(
            &ctx.db,
            // The token was derived from the old fingerprint, if at all: from now on the
            // fingerprint index finds it.
            "UPDATE tokens SET key_version = $3, nonce = $4, ciphertext = $5, fingerprint = $6,
                 derived = false
             WHERE domain = $1 AND token = $2 AND key_version = $7 AND nonce = $8
               AND ciphertext IS NOT NULL",
            &[
                &r.domain.as_str(),
                &r.token.as_str(),
                &i64::from(r.sealed.key_version.0),
                &r.sealed.nonce.as_slice(),
                &r.sealed.ciphertext,
                &r.fingerprint.0.as_slice(),
                &i64::from(r.old_version.0),
                &r.old_nonce.as_slice(),
            ],
        )
        .await?;
        moved = moved.saturating_add(n);
    }
    if moved > 0 {
        audit.outcome = "rewrapped".to_owned();
        audit.detail = Some(format!(
            "{moved} of {} records moved to data key version {}",
            batch.len(),
            to.map_or(0, |v| v.0)
        ));
        ctx.audit(audit).await?;
    }
    Ok(moved)
}

const SIGNING_COLUMNS: &str = "version, label, kid, state, created_at, activated_at, \
                               deactivated_at, retired_at, destroyed_at, cryptoperiod_end";

/// Every authorization signing key, oldest first.
pub(super) async fn signing_keys(db: &ClientWrapper) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let sql = format!(
        "SELECT {SIGNING_COLUMNS},
                (SELECT COUNT(*) FROM authorizations a WHERE a.kid = signing_keys.kid)
         FROM signing_keys ORDER BY version"
    );
    let rows = query(db, &sql, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let version: i64 = get(&row, 0)?;
        let bad = |what: &str| StoreError::corrupt(format!("signing key {version}: bad {what}"));
        out.push(SigningKeyRecord {
            version: u32::try_from(version).map_err(|_| bad("version"))?,
            label: get(&row, 1)?,
            kid: get(&row, 2)?,
            state: SigningKeyState::parse(get::<&str>(&row, 3)?).ok_or_else(|| bad("state"))?,
            created_at: get(&row, 4)?,
            activated_at: get(&row, 5)?,
            deactivated_at: get(&row, 6)?,
            retired_at: get(&row, 7)?,
            destroyed_at: get(&row, 8)?,
            cryptoperiod_end: get(&row, 9)?,
            authorizations: count(&row, 10)?,
        });
    }
    Ok(out)
}

/// Adds a signing key; its version must be the next one.
pub(super) async fn add_signing_key(
    ctx: &mut JobCtx,
    key: SigningKeyRecord,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    let row = query_one(
        &ctx.db,
        "SELECT COALESCE(MAX(version), 0)::BIGINT FROM signing_keys",
        &[],
    )
    .await?;
    let highest: i64 = get(&row, 0)?;
    if i64::from(key.version) != highest.saturating_add(1) {
        return Ok(KeyChangeOutcome::StateConflict(format!(
            "signing key version {highest} is the newest"
        )));
    }
    let sql = format!(
        "INSERT INTO signing_keys ({SIGNING_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    execute(
        &ctx.db,
        &sql,
        &[
            &i64::from(key.version),
            &key.label,
            &key.kid,
            &key.state.as_str(),
            &key.created_at,
            &key.activated_at,
            &key.deactivated_at,
            &key.retired_at,
            &key.destroyed_at,
            &key.cryptoperiod_end,
        ],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}

async fn signing_key(
    db: &ClientWrapper,
    version: u32,
) -> Result<Option<(String, String)>, StoreError> {
    query_opt(
        db,
        "SELECT state, kid FROM signing_keys WHERE version = $1",
        &[&i64::from(version)],
    )
    .await?
    .map(|r| Ok((get(&r, 0)?, get(&r, 1)?)))
    .transpose()
}

/// `published -> active`; the active key before it becomes `retiring`.
pub(super) async fn activate_signing_key(
    ctx: &mut JobCtx,
    version: u32,
    now: String,
    cryptoperiod_end: String,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    match signing_key(&ctx.db, version).await? {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some((state, _)) if state == "published" => {}
        Some((state, _)) => return Ok(KeyChangeOutcome::StateConflict(state)),
    }
    execute(
        &ctx.db,
        "UPDATE signing_keys SET state = 'retiring', deactivated_at = $1
         WHERE state = 'active'",
        &[&now],
    )
    .await?;
    execute(
        &ctx.db,
        "UPDATE signing_keys SET state = 'active', activated_at = $2, cryptoperiod_end = $3
         WHERE version = $1",
        &[&i64::from(version), &now, &cryptoperiod_end],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}

/// `retiring -> retired` once every authorization it signed has expired (`now_unix`), or
/// `published -> retired` for a key that never signed.
pub(super) async fn retire_signing_key(
    ctx: &mut JobCtx,
    version: u32,
    now: String,
    now_unix: i64,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    let kid = match signing_key(&ctx.db, version).await? {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some((state, kid)) if state == "retiring" || state == "published" => kid,
        Some((state, _)) => return Ok(KeyChangeOutcome::StateConflict(state)),
    };
    let (records, until) = unexpired_authorizations(&ctx.db, &kid, now_unix).await?;
    if records > 0 {
        return Ok(KeyChangeOutcome::InUse { records, until });
    }
    execute(
        &ctx.db,
        "UPDATE signing_keys SET state = 'retired', retired_at = $2 WHERE version = $1",
        &[&i64::from(version), &now],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}

/// Authorizations signed by `kid` still unexpired at `now_unix`, and the last expiry.
pub(super) async fn unexpired_authorizations(
    db: &ClientWrapper,
    kid: &str,
    now_unix: i64,
) -> Result<(u64, Option<String>), StoreError> {
    let row = query_one(
        db,
        "SELECT COUNT(*), MAX(exp) FROM authorizations WHERE kid = $1 AND exp > $2",
        &[&kid, &now_unix],
    )
    .await?;
    let until = get::<Option<i64>>(&row, 1)?
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(crate::clock::format_rfc3339);
    Ok((count(&row, 0)?, until))
}

/// `retired -> destroyed`, after the key pair has been deleted from the token.
pub(super) async fn destroy_signing_key(
    ctx: &mut JobCtx,
    version: u32,
    now: String,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    match signing_key(&ctx.db, version).await? {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some((state, _)) if state == "retired" => {}
        Some((state, _)) => return Ok(KeyChangeOutcome::StateConflict(state)),
    }
    execute(
        &ctx.db,
        "UPDATE signing_keys SET state = 'destroyed', destroyed_at = $2 WHERE version = $1",
        &[&i64::from(version), &now],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(KeyChangeOutcome::Done)
}
