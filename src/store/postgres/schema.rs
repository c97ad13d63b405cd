//! Versioned migrations, applied at open under an advisory lock so replicas starting together
//! do not race.
//!
//! The schema is SQLite's (`sqlite/schema.rs`) in PostgreSQL types: version 1 is SQLite's
//! version 5, and each later one names the SQLite version it mirrors. Text columns
//! compare bytewise (`COLLATE "C"`) like SQLite's: times are fixed-width RFC 3339 text
//! compared as text (`expires_at > $now`), and the rewrap orders by domain and token.

use super::connection::pg_err;
use crate::store::StoreError;
use tokio_postgres::Client;

/// The advisory lock key migrations hold (`pg_advisory_xact_lock`): "payhsm" in ASCII.
const MIGRATION_LOCK: i64 = 0x7061_7968_736d;

/// Migrations in order; `MIGRATIONS[i]` brings the schema to version `i + 1`. Append only:
/// never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: everything SQLite has at its version 5, and the chain head.
    r#"CREATE TABLE tokens (
        domain TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NOT NULL,
        fingerprint BYTEA NULL,
        key_version BIGINT NULL,
        nonce BYTEA NULL,
        ciphertext BYTEA NULL,
        last4 TEXT COLLATE "C" NOT NULL,
        status TEXT COLLATE "C" NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        updated_at TEXT COLLATE "C" NOT NULL,
        derived BOOLEAN NOT NULL DEFAULT false,
        PRIMARY KEY (domain, token)
    );
    CREATE UNIQUE INDEX tokens_domain_fingerprint ON tokens (domain, fingerprint)
        WHERE NOT derived;
    CREATE INDEX tokens_key_version ON tokens (key_version);
    CREATE TABLE data_keys (
        version BIGINT PRIMARY KEY,
        kek_label TEXT COLLATE "C" NOT NULL,
        iv BYTEA NOT NULL,
        wrapped BYTEA NOT NULL,
        state TEXT COLLATE "C" NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        activated_at TEXT COLLATE "C" NULL,
        retired_at TEXT COLLATE "C" NULL,
        destroyed_at TEXT COLLATE "C" NULL,
        cryptoperiod_end TEXT COLLATE "C" NULL
    );
    CREATE TABLE audit_log (
        seq BIGINT PRIMARY KEY,
        action TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NULL,
        record TEXT COLLATE "C" NOT NULL,
        prev_hash TEXT COLLATE "C" NOT NULL,
        hash TEXT COLLATE "C" NOT NULL
    );
    CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$;
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
        FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
    CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
    CREATE TABLE audit_head (
        id BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
        seq BIGINT NOT NULL,
        hash TEXT COLLATE "C" NOT NULL
    );
    INSERT INTO audit_head (seq, hash)
        VALUES (0, '0000000000000000000000000000000000000000000000000000000000000000');
    CREATE TABLE webauthn_challenges (
        id TEXT COLLATE "C" PRIMARY KEY,
        purpose TEXT COLLATE "C" NOT NULL,
        challenge BYTEA NOT NULL,
        rp_id TEXT COLLATE "C" NOT NULL,
        "user" TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NULL,
        domain TEXT COLLATE "C" NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        used_at TEXT COLLATE "C" NULL
    );
    CREATE INDEX webauthn_challenges_expires_at ON webauthn_challenges (expires_at);
    CREATE TABLE devices (
        device_id TEXT COLLATE "C" PRIMARY KEY,
        credential_id BYTEA NOT NULL UNIQUE,
        rp_id TEXT COLLATE "C" NOT NULL,
        "user" TEXT COLLATE "C" NOT NULL,
        public_key_cbor BYTEA NOT NULL,
        alg BIGINT NOT NULL,
        format TEXT COLLATE "C" NOT NULL,
        trust TEXT COLLATE "C" NOT NULL,
        aaguid BYTEA NOT NULL,
        sign_count BIGINT NOT NULL,
        backup_eligible BOOLEAN NOT NULL,
        backup_state BOOLEAN NOT NULL,
        user_verified BOOLEAN NOT NULL,
        token TEXT COLLATE "C" NULL,
        domain TEXT COLLATE "C" NULL,
        created_at TEXT COLLATE "C" NOT NULL
    );
    CREATE TABLE authorization_challenges (
        id TEXT COLLATE "C" PRIMARY KEY,
        challenge BYTEA NOT NULL,
        principal TEXT COLLATE "C" NOT NULL,
        token TEXT COLLATE "C" NOT NULL,
        domain TEXT COLLATE "C" NOT NULL,
        device_id TEXT COLLATE "C" NOT NULL,
        amount BIGINT NOT NULL CHECK (amount > 0),
        currency TEXT COLLATE "C" NOT NULL,
        payee TEXT COLLATE "C" NOT NULL,
        spc_payee_origin TEXT COLLATE "C" NULL,
        spc_top_origin TEXT COLLATE "C" NULL,
        spc_instrument_name TEXT COLLATE "C" NULL,
        spc_instrument_icon TEXT COLLATE "C" NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        used_at TEXT COLLATE "C" NULL
    );
    CREATE INDEX authorization_challenges_expires_at ON authorization_challenges (expires_at);
    CREATE TABLE authorizations (
        authorization_id TEXT COLLATE "C" PRIMARY KEY,
        challenge_id TEXT COLLATE "C" NOT NULL UNIQUE,
        token TEXT COLLATE "C" NOT NULL,
        domain TEXT COLLATE "C" NOT NULL,
        amount BIGINT NOT NULL,
        currency TEXT COLLATE "C" NOT NULL,
        payee TEXT COLLATE "C" NOT NULL,
        device_id TEXT COLLATE "C" NOT NULL,
        credential_id BYTEA NOT NULL,
        decision TEXT COLLATE "C" NOT NULL,
        policy_ids TEXT COLLATE "C" NOT NULL,
        kid TEXT COLLATE "C" NOT NULL,
        iat BIGINT NOT NULL,
        exp BIGINT NOT NULL,
        jws TEXT COLLATE "C" NOT NULL
    );
    CREATE INDEX authorizations_kid_exp ON authorizations (kid, exp);
    CREATE TABLE idempotency_keys (
        principal TEXT COLLATE "C" NOT NULL,
        key TEXT COLLATE "C" NOT NULL,
        request_hash BYTEA NOT NULL,
        response TEXT COLLATE "C" NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (principal, key)
    );
    CREATE TABLE signing_keys (
        version BIGINT PRIMARY KEY,
        label TEXT COLLATE "C" NOT NULL UNIQUE,
        kid TEXT COLLATE "C" NOT NULL UNIQUE,
        state TEXT COLLATE "C" NOT NULL,
        created_at TEXT COLLATE "C" NOT NULL,
        activated_at TEXT COLLATE "C" NULL,
        deactivated_at TEXT COLLATE "C" NULL,
        retired_at TEXT COLLATE "C" NULL,
        destroyed_at TEXT COLLATE "C" NULL,
        cryptoperiod_end TEXT COLLATE "C" NULL
    );
    CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
    CREATE TABLE key_approvals (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        change TEXT COLLATE "C" NOT NULL,
        custodian TEXT COLLATE "C" NOT NULL,
        approved_at TEXT COLLATE "C" NOT NULL,
        expires_at TEXT COLLATE "C" NOT NULL,
        used_at TEXT COLLATE "C" NULL
    );
    CREATE INDEX key_approvals_change ON key_approvals (change, used_at);
    CREATE TABLE store_settings (
        key TEXT COLLATE "C" PRIMARY KEY,
        value TEXT COLLATE "C" NOT NULL
    );"#,
    // 2: the audience a payment challenge names, signed as the authorization's `aud`
    // (SQLite's version 6).
    r#"ALTER TABLE authorization_challenges ADD COLUMN audience TEXT COLLATE "C" NULL;"#,
    // 3: device lifecycle (SQLite's version 7): last use, revocation (final), and the
    // lookups by user and token.
    r#"ALTER TABLE devices ADD COLUMN last_used_at TEXT COLLATE "C" NULL;
    ALTER TABLE devices ADD COLUMN status TEXT COLLATE "C" NOT NULL DEFAULT 'active';
    ALTER TABLE devices ADD COLUMN revoked_at TEXT COLLATE "C" NULL;
    ALTER TABLE devices ADD COLUMN revoke_reason TEXT COLLATE "C" NULL;
    CREATE INDEX devices_user ON devices ("user", created_at);
    CREATE INDEX devices_token ON devices (domain, token, created_at);"#,
    // 4: the SPC browser-bound public key (COSE_Key) a device enrolled with, if any
    // (SQLite's version 8).
    r#"ALTER TABLE devices ADD COLUMN browser_bound_key BYTEA NULL;"#,
    // 5: the SPC display members of 2025 a payment challenge asks for (instrument details,
    // payment entities' logos), as JSON (SQLite's version 9).
    r#"ALTER TABLE authorization_challenges ADD COLUMN spc_extra TEXT COLLATE "C" NULL;"#,
    // 6: what an Android TEE attested of an android-key device's boot (SQLite's version 10).
    r#"ALTER TABLE devices ADD COLUMN android_boot TEXT COLLATE "C" NULL;"#,
];

/// The newest version this build knows.
fn known() -> i64 {
    i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX)
}

/// Brings the schema to the newest version in one transaction holding the migration lock;
/// refuses a database written by newer code.
pub(super) async fn migrate(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(pg_err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(pg_err)?;
    tx.batch_execute(
        r#"CREATE TABLE IF NOT EXISTS schema_version (
            version BIGINT PRIMARY KEY,
            applied_at TEXT COLLATE "C" NOT NULL
        )"#,
    )
    .await
    .map_err(pg_err)?;
    let current: i64 = tx
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
        .await
        .and_then(|r| r.try_get(0))
        .map_err(pg_err)?;
    let known = known();
    if current > known {
        return Err(StoreError::corrupt(format!(
            "schema version {current} is newer than this build ({known})"
        )));
    }
    for (version, sql) in (1i64..)
        .zip(MIGRATIONS.iter())
        .skip_while(|(v, _)| *v <= current)
    {
        tx.batch_execute(sql).await.map_err(pg_err)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
            &[&version, &crate::clock::now_rfc3339()],
        )
        .await
        .map_err(pg_err)?;
    }
    tx.commit().await.map_err(pg_err)
}
