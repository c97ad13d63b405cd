//! Key lifecycle rows: data key versions, signing keys, custodian approvals, and the rewrap
//! of token records. Every change runs as one writer job with its audit record.

use super::sql_err;
use super::tokens::{self, COLUMNS};
use super::writer::JobCtx;
use crate::audit::AuditEvent;
use crate::keys::{DataKeyState, KeyVersion, WrappedDataKey};
use crate::store::{
    ApprovalOutcome, DataKeyInfo, KeyApproval, KeyChangeOutcome, Rewrapped, SigningKeyRecord,
    SigningKeyState, StoreError, TokenRecord,
};
use rusqlite::{params, Connection, OptionalExtension};

/// Every data key version with its dates and the number of token records sealed under it.
pub(super) fn data_key_info(conn: &Connection) -> Result<Vec<DataKeyInfo>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT d.version, d.kek_label, d.state, d.created_at, d.activated_at,
                    d.retired_at, d.destroyed_at, d.cryptoperiod_end,
                    (SELECT COUNT(*) FROM tokens t
                     WHERE t.key_version = d.version AND t.ciphertext IS NOT NULL)
             FROM data_keys d ORDER BY d.version",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                DataKeyInfo {
                    version: KeyVersion(0),
                    kek_label: r.get(1)?,
                    state: DataKeyState::Active,
                    created_at: r.get(3)?,
                    activated_at: r.get(4)?,
                    retired_at: r.get(5)?,
                    destroyed_at: r.get(6)?,
                    cryptoperiod_end: r.get(7)?,
                    records: u64::try_from(r.get::<_, i64>(8)?).unwrap_or(0),
                },
                r.get::<_, String>(2)?,
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (version, mut info, state) = row.map_err(sql_err)?;
        let bad = |what: &str| StoreError::corrupt(format!("data key {version}: bad {what}"));
        info.version = KeyVersion(u32::try_from(version).map_err(|_| bad("version"))?);
        info.state = DataKeyState::parse(&state).ok_or_else(|| bad("state"))?;
        out.push(info);
    }
    Ok(out)
}

fn data_key_state(conn: &Connection, version: KeyVersion) -> Result<Option<String>, StoreError> {
    conn.prepare_cached("SELECT state FROM data_keys WHERE version = ?1")
        .and_then(|mut s| s.query_row([version.0], |r| r.get(0)).optional())
        .map_err(sql_err)
}

/// Whether records may be sealed under `version`: not once it is retired or destroyed (a
/// request that read the key ring before the retirement must not add a record under it).
pub(super) fn may_seal(conn: &Connection, version: KeyVersion) -> Result<bool, StoreError> {
    Ok(!matches!(
        data_key_state(conn, version)?.as_deref(),
        Some("retired" | "destroyed")
    ))
}

/// Whether a request's key ring matches the stored data keys: `versions` (the ring's, active
/// first) starts with the active version and holds every version that still opens records,
/// and `sealed_under` (if the request sealed) is the active version.
pub(super) fn ring_is_current(
    conn: &Connection,
    sealed_under: Option<KeyVersion>,
    versions: &[KeyVersion],
) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT version, state FROM data_keys WHERE state IN ('active', 'decrypt_only')",
        )
        .map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, u32>(0)?, r.get::<_, String>(1)?)))
        .map_err(sql_err)?;
    let mut live = Vec::new();
    for row in rows {
        let (version, state) = row.map_err(sql_err)?;
        live.push((KeyVersion(version), state == "active"));
    }
    Ok(crate::store::ring_matches(&live, sealed_under, versions))
}

fn records_under(conn: &Connection, version: KeyVersion) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM tokens WHERE key_version = ?1 AND ciphertext IS NOT NULL",
        )
        .and_then(|mut s| s.query_row([version.0], |r| r.get(0)))
        .map_err(sql_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Stores `key` as the active version; the active one before it becomes decrypt-only. The
/// version must be the next one (one more than the highest stored), else `StateConflict`.
pub(super) fn activate_data_key(
    ctx: &mut JobCtx<'_>,
    key: WrappedDataKey,
    cryptoperiod_end: String,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    let highest: i64 = ctx
        .conn
        .query_row("SELECT COALESCE(MAX(version), 0) FROM data_keys", [], |r| {
            r.get(0)
        })
        .map_err(sql_err)?;
    if i64::from(key.version.0) != highest.saturating_add(1) {
        return Ok(KeyChangeOutcome::StateConflict(format!(
            "version {highest} is the newest, not {}",
            key.version.0.saturating_sub(1)
        )));
    }
    ctx.conn
        .execute(
            "UPDATE data_keys SET state = 'decrypt_only' WHERE state = 'active'",
            [],
        )
        .map_err(sql_err)?;
    ctx.conn
        .execute(
            "INSERT INTO data_keys (version, kek_label, iv, wrapped, state, created_at,
                                    activated_at, cryptoperiod_end)
             VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?5, ?6)",
            params![
                key.version.0,
                key.kek_label,
                key.iv.as_slice(),
                key.wrapped,
                key.created_at,
                cryptoperiod_end
            ],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

/// `decrypt_only -> retired` when no record is sealed under it any more.
pub(super) fn retire_data_key(
    ctx: &mut JobCtx<'_>,
    version: KeyVersion,
    now: &str,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    match data_key_state(ctx.conn, version)?.as_deref() {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some("decrypt_only") => {}
        Some(other) => return Ok(KeyChangeOutcome::StateConflict(other.to_owned())),
    }
    let records = records_under(ctx.conn, version)?;
    if records > 0 {
        return Ok(KeyChangeOutcome::InUse {
            records,
            until: None,
        });
    }
    ctx.conn
        .execute(
            "UPDATE data_keys SET state = 'retired', retired_at = ?2 WHERE version = ?1",
            params![version.0, now],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

/// `retired -> destroyed`: the wrapped key is overwritten, so no KEK can bring it back. Checks
/// again that no record is sealed under it.
pub(super) fn destroy_data_key(
    ctx: &mut JobCtx<'_>,
    version: KeyVersion,
    now: &str,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    let state = data_key_state(ctx.conn, version)?;
    if state.is_none() {
        return Ok(KeyChangeOutcome::NotFound);
    }
    // Records first: whatever its state, a version that still seals a record is never erased.
    let records = records_under(ctx.conn, version)?;
    if records > 0 {
        return Ok(KeyChangeOutcome::InUse {
            records,
            until: None,
        });
    }
    if let Some(other) = state.filter(|s| s != "retired") {
        return Ok(KeyChangeOutcome::StateConflict(other));
    }
    ctx.conn
        .execute(
            "UPDATE data_keys SET state = 'destroyed', destroyed_at = ?2,
                 iv = zeroblob(12), wrapped = zeroblob(0)
             WHERE version = ?1",
            params![version.0, now],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

/// Records one custodian's approval; a second, distinct custodian's approval of the same change
/// within the window grants it (and uses the first one up). Approvals are audited either way.
pub(super) fn approve(
    ctx: &mut JobCtx<'_>,
    approval: KeyApproval,
    mut audit: AuditEvent,
) -> Result<ApprovalOutcome, StoreError> {
    let pending: Vec<(i64, String, String)> = ctx
        .conn
        .prepare_cached(
            "SELECT id, custodian, expires_at FROM key_approvals
             WHERE change = ?1 AND used_at IS NULL AND expires_at > ?2
             ORDER BY id",
        )
        .and_then(|mut s| {
            s.query_map(params![approval.change, approval.now], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?
            .collect()
        })
        .map_err(sql_err)?;
    if let Some((_, _, expires_at)) = pending.iter().find(|p| p.1 == approval.custodian) {
        // The policy allowed the approval; dual control refused it: the outcome says so.
        audit.outcome = "same_custodian".to_owned();
        ctx.audit(audit)?;
        return Ok(ApprovalOutcome::SameCustodian {
            expires_at: expires_at.clone(),
        });
    }
    if let Some((id, first, _)) = pending.into_iter().next() {
        ctx.conn
            .execute(
                "UPDATE key_approvals SET used_at = ?2 WHERE id = ?1",
                params![id, approval.now],
            )
            .map_err(sql_err)?;
        audit.outcome = "granted".to_owned();
        audit.detail = Some(format!(
            "{}; approved by {first} and {}",
            approval.change, approval.custodian
        ));
        ctx.audit(audit)?;
        return Ok(ApprovalOutcome::Granted { first });
    }
    ctx.conn
        .execute(
            "INSERT INTO key_approvals (change, custodian, approved_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![
                approval.change,
                approval.custodian,
                approval.now,
                approval.expires_at
            ],
        )
        .map_err(sql_err)?;
    audit.outcome = "pending".to_owned();
    audit.detail = Some(format!(
        "{}; awaiting a second custodian until {}",
        approval.change, approval.expires_at
    ));
    ctx.audit(audit)?;
    Ok(ApprovalOutcome::Pending {
        expires_at: approval.expires_at,
    })
}

/// Live token records sealed under another version than `active`, at most `limit`.
pub(super) fn to_rewrap(
    conn: &Connection,
    active: KeyVersion,
    limit: usize,
) -> Result<Vec<TokenRecord>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM tokens
         WHERE ciphertext IS NOT NULL AND key_version != ?1
         ORDER BY key_version, domain, token LIMIT ?2"
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map(params![active.0, limit], tokens::RawRow::from_row)
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        out.push(row.map_err(sql_err)?.into_record()?);
    }
    Ok(out)
}

/// How many live records are sealed under another version than `active`.
pub(super) fn count_to_rewrap(conn: &Connection, active: KeyVersion) -> Result<u64, StoreError> {
    let n: i64 = conn
        .prepare_cached(
            "SELECT COUNT(*) FROM tokens WHERE ciphertext IS NOT NULL AND key_version != ?1",
        )
        .and_then(|mut s| s.query_row([active.0], |r| r.get(0)))
        .map_err(sql_err)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Moves records to their new sealing; a record changed since it was read (deleted, or
/// rewrapped by another replica) is left alone. Writes `audit` with the count when any moved.
pub(super) fn rewrap(
    ctx: &mut JobCtx<'_>,
    batch: Vec<Rewrapped>,
    mut audit: AuditEvent,
) -> Result<u64, StoreError> {
    let mut moved = 0u64;
    let mut to = None;
    for r in &batch {
        if !may_seal(ctx.conn, r.sealed.key_version)? {
            return Err(StoreError::unavailable(format!(
                "data key version {} no longer seals records",
                r.sealed.key_version.0
            )));
        }
        to = Some(r.sealed.key_version);
        ctx.touch(&r.domain, &r.token);
        let n = ctx
            .conn
            .prepare_cached(
                // The token was derived from the old fingerprint, if at all: from now on the
                // fingerprint index finds it.
                "UPDATE tokens SET key_version = ?3, nonce = ?4, ciphertext = ?5, fingerprint = ?6,
                     derived = 0
                 WHERE domain = ?1 AND token = ?2 AND key_version = ?7 AND nonce = ?8
                   AND ciphertext IS NOT NULL",
            )
            .and_then(|mut s| {
                s.execute(params![
                    r.domain.as_str(),
                    r.token.as_str(),
                    r.sealed.key_version.0,
                    r.sealed.nonce.as_slice(),
                    r.sealed.ciphertext,
                    r.fingerprint.0.as_slice(),
                    r.old_version.0,
                    r.old_nonce.as_slice(),
                ])
            })
            .map_err(sql_err)?;
        moved = moved.saturating_add(u64::try_from(n).unwrap_or(0));
    }
    if moved > 0 {
        audit.outcome = "rewrapped".to_owned();
        audit.detail = Some(format!(
            "{moved} of {} records moved to data key version {}",
            batch.len(),
            to.map_or(0, |v| v.0)
        ));
        ctx.audit(audit)?;
    }
    Ok(moved)
}

const SIGNING_COLUMNS: &str = "version, label, kid, state, created_at, activated_at, \
                               deactivated_at, retired_at, destroyed_at, cryptoperiod_end";

/// Every authorization signing key, oldest first.
pub(super) fn signing_keys(conn: &Connection) -> Result<Vec<SigningKeyRecord>, StoreError> {
    let sql = format!(
        "SELECT {SIGNING_COLUMNS},
                (SELECT COUNT(*) FROM authorizations a WHERE a.kid = signing_keys.kid)
         FROM signing_keys ORDER BY version"
    );
    let mut stmt = conn.prepare_cached(&sql).map_err(sql_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(3)?,
                SigningKeyRecord {
                    version: 0,
                    label: r.get(1)?,
                    kid: r.get(2)?,
                    state: SigningKeyState::Published,
                    created_at: r.get(4)?,
                    activated_at: r.get(5)?,
                    deactivated_at: r.get(6)?,
                    retired_at: r.get(7)?,
                    destroyed_at: r.get(8)?,
                    cryptoperiod_end: r.get(9)?,
                    authorizations: u64::try_from(r.get::<_, i64>(10)?).unwrap_or(0),
                },
            ))
        })
        .map_err(sql_err)?;
    let mut out = Vec::new();
    for row in rows {
        let (version, state, mut key) = row.map_err(sql_err)?;
        let bad = |what: &str| StoreError::corrupt(format!("signing key {version}: bad {what}"));
        key.version = u32::try_from(version).map_err(|_| bad("version"))?;
        key.state = SigningKeyState::parse(&state).ok_or_else(|| bad("state"))?;
        out.push(key);
    }
    Ok(out)
}

/// Adds a signing key; its version must be the next one.
pub(super) fn add_signing_key(
    ctx: &mut JobCtx<'_>,
    key: SigningKeyRecord,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    let highest: i64 = ctx
        .conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM signing_keys",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    if i64::from(key.version) != highest.saturating_add(1) {
        return Ok(KeyChangeOutcome::StateConflict(format!(
            "signing key version {highest} is the newest"
        )));
    }
    let sql = format!(
        "INSERT INTO signing_keys ({SIGNING_COLUMNS})
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    );
    ctx.conn
        .execute(
            &sql,
            params![
                key.version,
                key.label,
                key.kid,
                key.state.as_str(),
                key.created_at,
                key.activated_at,
                key.deactivated_at,
                key.retired_at,
                key.destroyed_at,
                key.cryptoperiod_end
            ],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

fn signing_key(conn: &Connection, version: u32) -> Result<Option<(String, String)>, StoreError> {
    conn.prepare_cached("SELECT state, kid FROM signing_keys WHERE version = ?1")
        .and_then(|mut s| {
            s.query_row([version], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()
        })
        .map_err(sql_err)
}

/// `published -> active`; the active key before it becomes `retiring`.
pub(super) fn activate_signing_key(
    ctx: &mut JobCtx<'_>,
    version: u32,
    now: &str,
    cryptoperiod_end: &str,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    match signing_key(ctx.conn, version)? {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some((state, _)) if state == "published" => {}
        Some((state, _)) => return Ok(KeyChangeOutcome::StateConflict(state)),
    }
    ctx.conn
        .execute(
            "UPDATE signing_keys SET state = 'retiring', deactivated_at = ?1
             WHERE state = 'active'",
            [now],
        )
        .map_err(sql_err)?;
    ctx.conn
        .execute(
            "UPDATE signing_keys SET state = 'active', activated_at = ?2, cryptoperiod_end = ?3
             WHERE version = ?1",
            params![version, now, cryptoperiod_end],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

/// `retiring -> retired` once every authorization it signed has expired (`now_unix`), or
/// `published -> retired` for a key that never signed.
pub(super) fn retire_signing_key(
    ctx: &mut JobCtx<'_>,
    version: u32,
    now: &str,
    now_unix: i64,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    let kid = match signing_key(ctx.conn, version)? {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some((state, kid)) if state == "retiring" || state == "published" => kid,
        Some((state, _)) => return Ok(KeyChangeOutcome::StateConflict(state)),
    };
    let (records, until) = unexpired_authorizations(ctx.conn, &kid, now_unix)?;
    if records > 0 {
        return Ok(KeyChangeOutcome::InUse { records, until });
    }
    ctx.conn
        .execute(
            "UPDATE signing_keys SET state = 'retired', retired_at = ?2 WHERE version = ?1",
            params![version, now],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

/// Authorizations signed by `kid` still unexpired at `now_unix`, and the last expiry.
pub(super) fn unexpired_authorizations(
    conn: &Connection,
    kid: &str,
    now_unix: i64,
) -> Result<(u64, Option<String>), StoreError> {
    let (records, until): (i64, Option<i64>) = conn
        .prepare_cached("SELECT COUNT(*), MAX(exp) FROM authorizations WHERE kid = ?1 AND exp > ?2")
        .and_then(|mut s| s.query_row(params![kid, now_unix], |r| Ok((r.get(0)?, r.get(1)?))))
        .map_err(sql_err)?;
    let until = until
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map(crate::clock::format_rfc3339);
    Ok((u64::try_from(records).unwrap_or(0), until))
}

/// `retired -> destroyed`, after the key pair has been deleted from the token.
pub(super) fn destroy_signing_key(
    ctx: &mut JobCtx<'_>,
    version: u32,
    now: &str,
    audit: AuditEvent,
) -> Result<KeyChangeOutcome, StoreError> {
    match signing_key(ctx.conn, version)? {
        None => return Ok(KeyChangeOutcome::NotFound),
        Some((state, _)) if state == "retired" => {}
        Some((state, _)) => return Ok(KeyChangeOutcome::StateConflict(state)),
    }
    ctx.conn
        .execute(
            "UPDATE signing_keys SET state = 'destroyed', destroyed_at = ?2 WHERE version = ?1",
            params![version, now],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(KeyChangeOutcome::Done)
}

/// See [`crate::store::KeyStore::pin_kek_kcv`]: kept in `store_settings` as `kek_kcv:<label>`.
pub(super) fn pin_kek_kcv(
    ctx: &mut JobCtx<'_>,
    label: &str,
    kcv: &str,
    audit: AuditEvent,
) -> Result<Option<String>, StoreError> {
    let key = format!("kek_kcv:{label}");
    let recorded: Option<String> = ctx
        .conn
        .query_row(
            "SELECT value FROM store_settings WHERE key = ?1",
            [&key],
            |r| r.get(0),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(e),
        })
        .map_err(sql_err)?;
    if recorded.is_some() {
        return Ok(recorded);
    }
    ctx.conn
        .execute(
            "INSERT INTO store_settings (key, value) VALUES (?1, ?2)",
            params![key, kcv],
        )
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(None)
}
