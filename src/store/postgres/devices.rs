//! Device enrolment rows: single-use challenges and enrolled devices, with the write jobs
//! (create, consume, enrol, counter compare-and-set). Mirrors `sqlite/devices.rs`.

use super::connection::{execute, get, query, query_opt};
use super::writer::JobCtx;
use crate::audit::AuditEvent;
use crate::card::{Domain, Token, TokenStatus};
use crate::store::{
    AndroidBoot, ChallengePurpose, ChallengeRecord, ConsumeOutcome, DeviceOwner, DeviceRecord,
    DeviceState, EnrolOutcome, Revocation, RevokeOutcome, StoreError,
};
use crate::webauthn::attestation::{Format, Trust};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

const CHALLENGE_COLUMNS: &str =
    r#"id, purpose, challenge, rp_id, "user", token, domain, created_at, expires_at, used_at"#;

const DEVICE_COLUMNS: &str = r#"device_id, credential_id, rp_id, "user", public_key_cbor, alg,
     format, trust, aaguid, sign_count, backup_eligible, backup_state, user_verified, token,
     domain, created_at, last_used_at, status, revoked_at, revoke_reason, browser_bound_key,
     android_boot"#;

/// Every attestation format, to map stored names back.
const FORMATS: [Format; 7] = [
    Format::Packed,
    Format::FidoU2f,
    Format::None,
    Format::Tpm,
    Format::AndroidKey,
    Format::Apple,
    Format::AndroidSafetyNet,
];

/// Every trust level, to map stored names back.
const TRUSTS: [Trust; 3] = [Trust::Hardware, Trust::SelfAttested, Trust::None];

fn optional_token(
    row: &Row,
    idx: usize,
    bad: &dyn Fn(&str) -> StoreError,
) -> Result<(Option<Token>, Option<Domain>), StoreError> {
    let token = get::<Option<&str>>(row, idx)?
        .map(|t| Token::parse(t).map_err(|_| bad("token")))
        .transpose()?;
    let domain = get::<Option<&str>>(row, idx + 1)?
        .map(|d| Domain::parse(d).map_err(|_| bad("domain")))
        .transpose()?;
    Ok((token, domain))
}

/// A challenge row, validated.
fn challenge_from_row(row: &Row) -> Result<ChallengeRecord, StoreError> {
    let id: String = get(row, 0)?;
    let bad = |what: &str| StoreError::corrupt(format!("challenge {id}: bad {what}"));
    let purpose = ChallengePurpose::parse(get::<&str>(row, 1)?).ok_or_else(|| bad("purpose"))?;
    let (token, domain) = optional_token(row, 5, &bad)?;
    Ok(ChallengeRecord {
        purpose,
        challenge: get(row, 2)?,
        rp_id: get(row, 3)?,
        user: get(row, 4)?,
        token,
        domain,
        created_at: get(row, 7)?,
        expires_at: get(row, 8)?,
        used_at: get(row, 9)?,
        id,
    })
}

/// A device row, validated.
fn device_from_row(row: &Row) -> Result<DeviceRecord, StoreError> {
    let device_id: String = get(row, 0)?;
    let bad = |what: &str| StoreError::corrupt(format!("device {device_id}: bad {what}"));
    let format: &str = get(row, 6)?;
    let trust: &str = get(row, 7)?;
    let format = FORMATS
        .into_iter()
        .find(|f| f.as_str() == format)
        .ok_or_else(|| bad("format"))?;
    let trust = TRUSTS
        .into_iter()
        .find(|t| t.as_str() == trust)
        .ok_or_else(|| bad("trust"))?;
    let aaguid: [u8; 16] = get::<&[u8]>(row, 8)?
        .try_into()
        .map_err(|_| bad("aaguid"))?;
    let sign_count = u32::try_from(get::<i64>(row, 9)?).map_err(|_| bad("sign_count"))?;
    let (token, domain) = optional_token(row, 13, &bad)?;
    let state = DeviceState::from_columns(
        get::<&str>(row, 17)?,
        get::<Option<String>>(row, 18)?,
        get::<Option<&str>>(row, 19)?,
    )
    .ok_or_else(|| bad("status"))?;
    Ok(DeviceRecord {
        credential_id: get(row, 1)?,
        rp_id: get(row, 2)?,
        user: get(row, 3)?,
        public_key_cbor: get(row, 4)?,
        alg: get(row, 5)?,
        format,
        trust,
        aaguid,
        sign_count,
        backup_eligible: get(row, 10)?,
        backup_state: get(row, 11)?,
        user_verified: get(row, 12)?,
        token,
        domain,
        created_at: get(row, 15)?,
        last_used_at: get(row, 16)?,
        browser_bound_key: get(row, 20)?,
        android_boot: get::<Option<&str>>(row, 21)?
            .map(|t| AndroidBoot::from_column(t).ok_or_else(|| bad("android_boot")))
            .transpose()?,
        state,
        device_id,
    })
}

/// The create-challenge job.
pub(super) async fn create_challenge(
    ctx: &mut JobCtx,
    c: ChallengeRecord,
    audit: AuditEvent,
) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO webauthn_challenges ({CHALLENGE_COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
    );
    execute(
        &ctx.db,
        &sql,
        &[
            &c.id,
            &c.purpose.as_str(),
            &c.challenge,
            &c.rp_id,
            &c.user,
            &c.token.as_ref().map(Token::as_str),
            &c.domain.as_ref().map(Domain::as_str),
            &c.created_at,
            &c.expires_at,
            &c.used_at,
        ],
    )
    .await?;
    ctx.audit(audit).await.map(|_| ())
}

/// The consume job. The conditional UPDATE is the single-use check: a second consumer finds
/// `used_at` set and updates nothing, whichever connection or replica it comes from.
pub(super) async fn consume_challenge(
    ctx: &mut JobCtx,
    id: String,
    purpose: ChallengePurpose,
    now: String,
) -> Result<ConsumeOutcome, StoreError> {
    let sql = format!(
        "UPDATE webauthn_challenges SET used_at = $3
         WHERE id = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3
         RETURNING {CHALLENGE_COLUMNS}"
    );
    let consumed = query_opt(&ctx.db, &sql, &[&id, &purpose.as_str(), &now]).await?;
    if let Some(row) = consumed {
        return Ok(ConsumeOutcome::Consumed(Box::new(challenge_from_row(
            &row,
        )?)));
    }
    let used = query_opt(
        &ctx.db,
        "SELECT used_at FROM webauthn_challenges WHERE id = $1 AND purpose = $2",
        &[&id, &purpose.as_str()],
    )
    .await?
    .map(|r| get::<Option<String>>(&r, 0))
    .transpose()?;
    Ok(match used {
        None => ConsumeOutcome::NotFound,
        Some(Some(_)) => ConsumeOutcome::AlreadyUsed,
        Some(None) => ConsumeOutcome::Expired,
    })
}

/// The enrol job. The credential id is checked first and backed by its UNIQUE constraint.
pub(super) async fn enrol_device(
    ctx: &mut JobCtx,
    d: DeviceRecord,
    audit: AuditEvent,
) -> Result<EnrolOutcome, StoreError> {
    if by_credential(&ctx.db, &d.credential_id).await?.is_some() {
        return Ok(EnrolOutcome::CredentialExists);
    }
    // Bound to a token: it must still be active as this transaction sees it (a suspend or
    // delete may have committed since the service checked).
    if let (Some(token), Some(domain)) = (&d.token, &d.domain) {
        let status = super::authorizations::token_status(&ctx.db, token, domain).await?;
        if status != TokenStatus::Active {
            return Ok(EnrolOutcome::TokenNotActive(status));
        }
    }
    let sql = format!(
        "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES
         ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
          $19, $20, $21, $22)"
    );
    let (revoked_at, reason) = d.state.columns();
    execute(
        &ctx.db,
        &sql,
        &[
            &d.device_id,
            &d.credential_id,
            &d.rp_id,
            &d.user,
            &d.public_key_cbor,
            &d.alg,
            &d.format.as_str(),
            &d.trust.as_str(),
            &d.aaguid.as_slice(),
            &i64::from(d.sign_count),
            &d.backup_eligible,
            &d.backup_state,
            &d.user_verified,
            &d.token.as_ref().map(Token::as_str),
            &d.domain.as_ref().map(Domain::as_str),
            &d.created_at,
            &d.last_used_at,
            &d.state.as_str(),
            &revoked_at,
            &reason,
            &d.browser_bound_key,
            &d.android_boot.as_ref().map(AndroidBoot::to_column),
        ],
    )
    .await?;
    ctx.audit(audit).await?;
    Ok(EnrolOutcome::Enrolled)
}

/// Compare-and-set of a device's counter: whether it moved.
pub(super) async fn move_counter(
    db: &ClientWrapper,
    device_id: &str,
    expected_old: u32,
    new: u32,
) -> Result<bool, StoreError> {
    let changed = execute(
        db,
        "UPDATE devices SET sign_count = $3 WHERE device_id = $1 AND sign_count = $2",
        &[&device_id, &i64::from(expected_old), &i64::from(new)],
    )
    .await?;
    Ok(changed > 0)
}

/// The counter compare-and-set job.
pub(super) async fn update_sign_count(
    ctx: &mut JobCtx,
    device_id: String,
    expected_old: u32,
    new: u32,
    audit: AuditEvent,
) -> Result<bool, StoreError> {
    if !move_counter(&ctx.db, &device_id, expected_old, new).await? {
        return Ok(false);
    }
    ctx.audit(audit).await?;
    Ok(true)
}

/// The revoke job: the row is locked (`FOR UPDATE`), the state machine decides, and the
/// conditional UPDATE backs it (a revoked row is never written again).
pub(super) async fn revoke_device(
    ctx: &mut JobCtx,
    r: Revocation,
    audit: AuditEvent,
) -> Result<RevokeOutcome, StoreError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1 FOR UPDATE");
    let Some(row) = query_opt(&ctx.db, &sql, &[&r.device_id]).await? else {
        return Ok(RevokeOutcome::NotFound);
    };
    let mut device = device_from_row(&row)?;
    let Some(state) = device.state.revoke(r.at, r.reason) else {
        return Ok(RevokeOutcome::AlreadyRevoked);
    };
    let (revoked_at, reason) = state.columns();
    let changed = execute(
        &ctx.db,
        "UPDATE devices SET status = $2, revoked_at = $3, revoke_reason = $4
         WHERE device_id = $1 AND status = 'active'",
        &[&r.device_id, &state.as_str(), &revoked_at, &reason],
    )
    .await?;
    if changed == 0 {
        return Ok(RevokeOutcome::AlreadyRevoked);
    }
    ctx.audit(audit).await?;
    device.state = state;
    Ok(RevokeOutcome::Revoked(Box::new(device)))
}

/// How [`is_active`] locks the device row until the transaction ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum RowLock {
    /// `FOR SHARE`: a revocation waits for this transaction (nothing here writes the row).
    Share,
    /// `FOR UPDATE`: this transaction writes the row next (counter, last use).
    Update,
}

/// Whether the device may still sign, as this transaction sees it (a revoked or vanished
/// device may not). The row lock orders this read against a concurrent revocation on any
/// replica: it waits for that commit and reads the revoked row, or the revocation waits for
/// this transaction.
pub(super) async fn is_active(
    db: &ClientWrapper,
    device_id: &str,
    lock: RowLock,
) -> Result<bool, StoreError> {
    let sql = match lock {
        RowLock::Share => "SELECT status FROM devices WHERE device_id = $1 FOR SHARE",
        RowLock::Update => "SELECT status FROM devices WHERE device_id = $1 FOR UPDATE",
    };
    let row = query_opt(db, sql, &[&device_id]).await?;
    Ok(match row {
        Some(r) => get::<&str>(&r, 0)? == "active",
        None => false,
    })
}

/// Sets a device's last use (an authorization with it commits).
pub(super) async fn touch(
    db: &ClientWrapper,
    device_id: &str,
    now: &str,
) -> Result<(), StoreError> {
    execute(
        db,
        "UPDATE devices SET last_used_at = $2 WHERE device_id = $1",
        &[&device_id, &now],
    )
    .await
    .map(|_| ())
}

/// The devices of a user or a token, oldest first.
pub(super) async fn of_owner(
    db: &ClientWrapper,
    owner: &DeviceOwner,
) -> Result<Vec<DeviceRecord>, StoreError> {
    let rows = match owner {
        DeviceOwner::User(user) => {
            let sql = format!(
                r#"SELECT {DEVICE_COLUMNS} FROM devices WHERE "user" = $1
                 ORDER BY created_at, device_id"#
            );
            query(db, &sql, &[user]).await?
        }
        DeviceOwner::Token(token, domain) => {
            let sql = format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE domain = $1 AND token = $2
                 ORDER BY created_at, device_id"
            );
            query(db, &sql, &[&domain.as_str(), &token.as_str()]).await?
        }
    };
    rows.iter().map(device_from_row).collect()
}

/// Reads a challenge by id.
pub(super) async fn challenge(
    db: &ClientWrapper,
    id: &str,
) -> Result<Option<ChallengeRecord>, StoreError> {
    let sql = format!("SELECT {CHALLENGE_COLUMNS} FROM webauthn_challenges WHERE id = $1");
    query_opt(db, &sql, &[&id])
        .await?
        .as_ref()
        .map(challenge_from_row)
        .transpose()
}

/// Reads a device by id.
pub(super) async fn by_id(
    db: &ClientWrapper,
    device_id: &str,
) -> Result<Option<DeviceRecord>, StoreError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = $1");
    query_opt(db, &sql, &[&device_id])
        .await?
        .as_ref()
        .map(device_from_row)
        .transpose()
}

/// Reads a device by credential id.
pub(super) async fn by_credential(
    db: &ClientWrapper,
    credential_id: &[u8],
) -> Result<Option<DeviceRecord>, StoreError> {
    let sql = format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE credential_id = $1");
    query_opt(db, &sql, &[&credential_id])
        .await?
        .as_ref()
        .map(device_from_row)
        .transpose()
}
