//! Device enrolment rows: single-use challenges and enrolled devices, with the write jobs
//! (create, consume, enrol, counter compare-and-set) run by the writer in their savepoints.

use super::sql_err;
use super::writer::JobCtx;
use crate::audit::AuditEvent;
use crate::card::{Domain, Token, TokenStatus};
use crate::store::{
    AndroidBoot, ChallengePurpose, ChallengeRecord, ConsumeOutcome, DeviceOwner, DeviceRecord,
    DeviceState, EnrolOutcome, Revocation, RevokeOutcome, StoreError,
};
use crate::webauthn::attestation::{Format, Trust};
use rusqlite::{params, Connection, OptionalExtension, Row};

const CHALLENGE_COLUMNS: &str =
    "id, purpose, challenge, rp_id, user, token, domain, created_at, expires_at, used_at";

const DEVICE_COLUMNS: &str = "device_id, credential_id, rp_id, user, public_key_cbor, alg, \
     format, trust, aaguid, sign_count, backup_eligible, backup_state, user_verified, token, \
     domain, created_at, last_used_at, status, revoked_at, revoke_reason, browser_bound_key, \
     android_boot";

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
    token: Option<String>,
    domain: Option<String>,
    bad: &dyn Fn(&str) -> StoreError,
) -> Result<(Option<Token>, Option<Domain>), StoreError> {
    let token = token
        .map(|t| Token::parse(&t).map_err(|_| bad("token")))
        .transpose()?;
    let domain = domain
        .map(|d| Domain::parse(&d).map_err(|_| bad("domain")))
        .transpose()?;
    Ok((token, domain))
}

/// A challenge row, validated.
fn challenge_from_row(r: &Row<'_>) -> rusqlite::Result<Result<ChallengeRecord, StoreError>> {
    let id: String = r.get(0)?;
    let purpose: String = r.get(1)?;
    let (token, domain): (Option<String>, Option<String>) = (r.get(5)?, r.get(6)?);
    let bad = |what: &str| StoreError::corrupt(format!("challenge {id}: bad {what}"));
    let Some(purpose) = ChallengePurpose::parse(&purpose) else {
        return Ok(Err(bad("purpose")));
    };
    let (token, domain) = match optional_token(token, domain, &bad) {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(ChallengeRecord {
        purpose,
        challenge: r.get(2)?,
        rp_id: r.get(3)?,
        user: r.get(4)?,
        token,
        domain,
        created_at: r.get(7)?,
        expires_at: r.get(8)?,
        used_at: r.get(9)?,
        id,
    }))
}

/// A device row, validated.
fn device_from_row(r: &Row<'_>) -> rusqlite::Result<Result<DeviceRecord, StoreError>> {
    let device_id: String = r.get(0)?;
    let format: String = r.get(6)?;
    let trust: String = r.get(7)?;
    let aaguid: Vec<u8> = r.get(8)?;
    let sign_count: i64 = r.get(9)?;
    let (token, domain): (Option<String>, Option<String>) = (r.get(13)?, r.get(14)?);
    let status: String = r.get(17)?;
    let revoked_at: Option<String> = r.get(18)?;
    let reason: Option<String> = r.get(19)?;
    let android_boot: Option<String> = r.get(21)?;
    let bad = |what: &str| StoreError::corrupt(format!("device {device_id}: bad {what}"));
    let checked = (|| {
        let format = FORMATS
            .into_iter()
            .find(|f| f.as_str() == format)
            .ok_or_else(|| bad("format"))?;
        let trust = TRUSTS
            .into_iter()
            .find(|t| t.as_str() == trust)
            .ok_or_else(|| bad("trust"))?;
        let aaguid: [u8; 16] = aaguid.as_slice().try_into().map_err(|_| bad("aaguid"))?;
        let sign_count = u32::try_from(sign_count).map_err(|_| bad("sign_count"))?;
        let (token, domain) = optional_token(token, domain, &bad)?;
        let state = DeviceState::from_columns(&status, revoked_at, reason.as_deref())
            .ok_or_else(|| bad("status"))?;
        let android_boot = android_boot
            .map(|t| AndroidBoot::from_column(&t).ok_or_else(|| bad("android_boot")))
            .transpose()?;
        Ok((
            format,
            trust,
            aaguid,
            sign_count,
            token,
            domain,
            state,
            android_boot,
        ))
    })();
    let (format, trust, aaguid, sign_count, token, domain, state, android_boot) = match checked {
        Ok(v) => v,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(DeviceRecord {
        credential_id: r.get(1)?,
        rp_id: r.get(2)?,
        user: r.get(3)?,
        public_key_cbor: r.get(4)?,
        alg: r.get(5)?,
        format,
        trust,
        aaguid,
        sign_count,
        backup_eligible: r.get(10)?,
        backup_state: r.get(11)?,
        user_verified: r.get(12)?,
        token,
        domain,
        created_at: r.get(15)?,
        last_used_at: r.get(16)?,
        browser_bound_key: r.get(20)?,
        android_boot,
        state,
        device_id,
    }))
}

/// The create-challenge job.
pub(super) fn create_challenge(
    ctx: &mut JobCtx<'_>,
    c: ChallengeRecord,
    audit: AuditEvent,
) -> Result<(), StoreError> {
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO webauthn_challenges ({CHALLENGE_COLUMNS})
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        ))
        .and_then(|mut s| {
            s.execute(params![
                c.id,
                c.purpose.as_str(),
                c.challenge,
                c.rp_id,
                c.user,
                c.token.as_ref().map(Token::as_str),
                c.domain.as_ref().map(Domain::as_str),
                c.created_at,
                c.expires_at,
                c.used_at,
            ])
        })
        .map_err(sql_err)?;
    ctx.audit(audit).map(|_| ())
}

/// The consume job. The conditional UPDATE is the single-use check: a second consumer finds
/// `used_at` set and updates nothing, whichever connection or replica it comes from.
pub(super) fn consume_challenge(
    ctx: &mut JobCtx<'_>,
    id: &str,
    purpose: ChallengePurpose,
    now: &str,
) -> Result<ConsumeOutcome, StoreError> {
    let consumed = ctx
        .conn
        .prepare_cached(&format!(
            "UPDATE webauthn_challenges SET used_at = ?3
             WHERE id = ?1 AND purpose = ?2 AND used_at IS NULL AND expires_at > ?3
             RETURNING {CHALLENGE_COLUMNS}"
        ))
        .and_then(|mut s| {
            s.query_row(params![id, purpose.as_str(), now], challenge_from_row)
                .optional()
        })
        .map_err(sql_err)?;
    if let Some(record) = consumed {
        return Ok(ConsumeOutcome::Consumed(Box::new(record?)));
    }
    let used: Option<Option<String>> = ctx
        .conn
        .prepare_cached("SELECT used_at FROM webauthn_challenges WHERE id = ?1 AND purpose = ?2")
        .and_then(|mut s| {
            s.query_row(params![id, purpose.as_str()], |r| r.get(0))
                .optional()
        })
        .map_err(sql_err)?;
    Ok(match used {
        None => ConsumeOutcome::NotFound,
        Some(Some(_)) => ConsumeOutcome::AlreadyUsed,
        Some(None) => ConsumeOutcome::Expired,
    })
}

/// The enrol job. The credential id is checked first and backed by its UNIQUE constraint.
pub(super) fn enrol_device(
    ctx: &mut JobCtx<'_>,
    d: DeviceRecord,
    audit: AuditEvent,
) -> Result<EnrolOutcome, StoreError> {
    if by_credential(ctx.conn, &d.credential_id)?.is_some() {
        return Ok(EnrolOutcome::CredentialExists);
    }
    // Bound to a token: it must still be active as this transaction sees it (a suspend or
    // delete may have committed since the service checked).
    if let (Some(token), Some(domain)) = (&d.token, &d.domain) {
        let status = super::authorizations::token_status(ctx.conn, token, domain)?;
        if status != TokenStatus::Active {
            return Ok(EnrolOutcome::TokenNotActive(status));
        }
    }
    ctx.conn
        .prepare_cached(&format!(
            "INSERT INTO devices ({DEVICE_COLUMNS}) VALUES
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
              ?19, ?20, ?21, ?22)"
        ))
        .and_then(|mut s| {
            let (revoked_at, reason) = d.state.columns();
            s.execute(params![
                d.device_id,
                d.credential_id,
                d.rp_id,
                d.user,
                d.public_key_cbor,
                d.alg,
                d.format.as_str(),
                d.trust.as_str(),
                d.aaguid.as_slice(),
                i64::from(d.sign_count),
                d.backup_eligible,
                d.backup_state,
                d.user_verified,
                d.token.as_ref().map(Token::as_str),
                d.domain.as_ref().map(Domain::as_str),
                d.created_at,
                d.last_used_at,
                d.state.as_str(),
                revoked_at,
                reason,
                d.browser_bound_key,
                d.android_boot.as_ref().map(AndroidBoot::to_column),
            ])
        })
        .map_err(sql_err)?;
    ctx.audit(audit)?;
    Ok(EnrolOutcome::Enrolled)
}

/// The counter compare-and-set job.
pub(super) fn update_sign_count(
    ctx: &mut JobCtx<'_>,
    device_id: &str,
    expected_old: u32,
    new: u32,
    audit: AuditEvent,
) -> Result<bool, StoreError> {
    let changed = ctx
        .conn
        .prepare_cached(
            "UPDATE devices SET sign_count = ?3 WHERE device_id = ?1 AND sign_count = ?2",
        )
        .and_then(|mut s| s.execute(params![device_id, i64::from(expected_old), i64::from(new)]))
        .map_err(sql_err)?;
    if changed == 0 {
        return Ok(false);
    }
    ctx.audit(audit)?;
    Ok(true)
}

/// The revoke job: the state machine decides on the row as this transaction sees it, and the
/// conditional UPDATE backs it (a revoked row is never written again).
pub(super) fn revoke_device(
    ctx: &mut JobCtx<'_>,
    r: Revocation,
    audit: AuditEvent,
) -> Result<RevokeOutcome, StoreError> {
    let Some(mut device) = by_id(ctx.conn, &r.device_id)? else {
        return Ok(RevokeOutcome::NotFound);
    };
    let Some(state) = device.state.revoke(r.at, r.reason) else {
        return Ok(RevokeOutcome::AlreadyRevoked);
    };
    let (revoked_at, reason) = state.columns();
    let changed = ctx
        .conn
        .prepare_cached(
            "UPDATE devices SET status = ?2, revoked_at = ?3, revoke_reason = ?4
             WHERE device_id = ?1 AND status = 'active'",
        )
        .and_then(|mut s| s.execute(params![r.device_id, state.as_str(), revoked_at, reason]))
        .map_err(sql_err)?;
    if changed == 0 {
        return Ok(RevokeOutcome::AlreadyRevoked);
    }
    ctx.audit(audit)?;
    device.state = state;
    Ok(RevokeOutcome::Revoked(Box::new(device)))
}

/// Whether the device may still sign, as this transaction sees it (a revoked or vanished
/// device may not). Read here, never from a cache: the revocation may be in this very batch.
pub(super) fn is_active(conn: &Connection, device_id: &str) -> Result<bool, StoreError> {
    let status: Option<String> = conn
        .prepare_cached("SELECT status FROM devices WHERE device_id = ?1")
        .and_then(|mut s| s.query_row(params![device_id], |r| r.get(0)).optional())
        .map_err(sql_err)?;
    Ok(status.as_deref() == Some("active"))
}

/// Sets a device's last use (an authorization with it commits).
pub(super) fn touch(conn: &Connection, device_id: &str, now: &str) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE devices SET last_used_at = ?2 WHERE device_id = ?1")
        .and_then(|mut s| s.execute(params![device_id, now]))
        .map_err(sql_err)
        .map(|_| ())
}

/// The devices of a user or a token, oldest first.
pub(super) fn of_owner(
    conn: &Connection,
    owner: &DeviceOwner,
) -> Result<Vec<DeviceRecord>, StoreError> {
    let rows = match owner {
        DeviceOwner::User(user) => conn
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE user = ?1
                 ORDER BY created_at, device_id"
            ))
            .and_then(|mut s| {
                s.query_map(params![user], device_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
        DeviceOwner::Token(token, domain) => conn
            .prepare_cached(&format!(
                "SELECT {DEVICE_COLUMNS} FROM devices WHERE domain = ?1 AND token = ?2
                 ORDER BY created_at, device_id"
            ))
            .and_then(|mut s| {
                s.query_map(params![domain.as_str(), token.as_str()], device_from_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            }),
    };
    rows.map_err(sql_err)?.into_iter().collect()
}

/// Reads a challenge by id.
pub(super) fn challenge(
    conn: &Connection,
    id: &str,
) -> Result<Option<ChallengeRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {CHALLENGE_COLUMNS} FROM webauthn_challenges WHERE id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![id], challenge_from_row).optional())
    .map_err(sql_err)?
    .transpose()
}

/// Reads a device by id.
pub(super) fn by_id(
    conn: &Connection,
    device_id: &str,
) -> Result<Option<DeviceRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE device_id = ?1"
    ))
    .and_then(|mut s| s.query_row(params![device_id], device_from_row).optional())
    .map_err(sql_err)?
    .transpose()
}

/// Reads a device by credential id.
pub(super) fn by_credential(
    conn: &Connection,
    credential_id: &[u8],
) -> Result<Option<DeviceRecord>, StoreError> {
    conn.prepare_cached(&format!(
        "SELECT {DEVICE_COLUMNS} FROM devices WHERE credential_id = ?1"
    ))
    .and_then(|mut s| {
        s.query_row(params![credential_id], device_from_row)
            .optional()
    })
    .map_err(sql_err)?
    .transpose()
}
