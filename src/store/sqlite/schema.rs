//! Connection settings and versioned migrations.

use super::sql_err;
use crate::store::StoreError;
use rusqlite::Connection;
use std::time::Duration;

/// How long a connection waits on a lock before reporting the store busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations in order; `MIGRATIONS[i]` brings the schema to version `i + 1`. Append only:
/// never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: tokens, data keys, the audit log (append-only by trigger).
    "CREATE TABLE tokens (
        domain TEXT NOT NULL,
        token TEXT NOT NULL,
        fingerprint BLOB NULL,
        key_version INTEGER NULL,
        nonce BLOB NULL,
        ciphertext BLOB NULL,
        last4 TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (domain, token)
    );
    CREATE UNIQUE INDEX tokens_domain_fingerprint ON tokens (domain, fingerprint);
    CREATE TABLE data_keys (
        version INTEGER PRIMARY KEY,
        kek_label TEXT NOT NULL,
        iv BLOB NOT NULL,
        wrapped BLOB NOT NULL,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY,
        action TEXT NOT NULL,
        token TEXT NULL,
        record TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;",
    // 2: device enrolment: single-use WebAuthn challenges and enrolled devices.
    "CREATE TABLE webauthn_challenges (
        id TEXT PRIMARY KEY,
        purpose TEXT NOT NULL,
        challenge BLOB NOT NULL,
        rp_id TEXT NOT NULL,
        user TEXT NOT NULL,
        token TEXT NULL,
        domain TEXT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT NULL
    );
    CREATE INDEX webauthn_challenges_expires_at ON webauthn_challenges (expires_at);
    CREATE TABLE devices (
        device_id TEXT PRIMARY KEY,
        credential_id BLOB NOT NULL UNIQUE,
        rp_id TEXT NOT NULL,
        user TEXT NOT NULL,
        public_key_cbor BLOB NOT NULL,
        alg INTEGER NOT NULL,
        format TEXT NOT NULL,
        trust TEXT NOT NULL,
        aaguid BLOB NOT NULL,
        sign_count INTEGER NOT NULL,
        backup_eligible INTEGER NOT NULL,
        backup_state INTEGER NOT NULL,
        user_verified INTEGER NOT NULL,
        token TEXT NULL,
        domain TEXT NULL,
        created_at TEXT NOT NULL
    );",
    // 3: payment authorizations: challenges bound to one transaction, signed authorizations,
    // idempotency keys (scoped per principal) with the answer they stand for.
    "CREATE TABLE authorization_challenges (
        id TEXT PRIMARY KEY,
        challenge BLOB NOT NULL,
        principal TEXT NOT NULL,
        token TEXT NOT NULL,
        domain TEXT NOT NULL,
        device_id TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount > 0),
        currency TEXT NOT NULL,
        payee TEXT NOT NULL,
        spc_payee_origin TEXT NULL,
        spc_top_origin TEXT NULL,
        spc_instrument_name TEXT NULL,
        spc_instrument_icon TEXT NULL,
        created_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT NULL
    );
    CREATE INDEX authorization_challenges_expires_at ON authorization_challenges (expires_at);
    CREATE TABLE authorizations (
        authorization_id TEXT PRIMARY KEY,
        challenge_id TEXT NOT NULL UNIQUE,
        token TEXT NOT NULL,
        domain TEXT NOT NULL,
        amount INTEGER NOT NULL,
        currency TEXT NOT NULL,
        payee TEXT NOT NULL,
        device_id TEXT NOT NULL,
        credential_id BLOB NOT NULL,
        decision TEXT NOT NULL,
        policy_ids TEXT NOT NULL,
        kid TEXT NOT NULL,
        iat INTEGER NOT NULL,
        exp INTEGER NOT NULL,
        jws TEXT NOT NULL
    );
    CREATE TABLE idempotency_keys (
        principal TEXT NOT NULL,
        key TEXT NOT NULL,
        request_hash BLOB NOT NULL,
        response TEXT NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (principal, key)
    );",
    // 4: key lifecycle: data key dates, signing key versions, custodian approvals (dual
    // control), and an index to find the records a data key version still seals.
    "ALTER TABLE data_keys ADD COLUMN activated_at TEXT NULL;
    ALTER TABLE data_keys ADD COLUMN retired_at TEXT NULL;
    ALTER TABLE data_keys ADD COLUMN destroyed_at TEXT NULL;
    ALTER TABLE data_keys ADD COLUMN cryptoperiod_end TEXT NULL;
    UPDATE data_keys SET activated_at = created_at;
    CREATE INDEX tokens_key_version ON tokens (key_version);
    CREATE TABLE signing_keys (
        version INTEGER PRIMARY KEY,
        label TEXT NOT NULL UNIQUE,
        kid TEXT NOT NULL UNIQUE,
        state TEXT NOT NULL,
        created_at TEXT NOT NULL,
        activated_at TEXT NULL,
        deactivated_at TEXT NULL,
        retired_at TEXT NULL,
        destroyed_at TEXT NULL,
        cryptoperiod_end TEXT NULL
    );
    CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';
    CREATE INDEX authorizations_kid_exp ON authorizations (kid, exp);
    CREATE TABLE key_approvals (
        id INTEGER PRIMARY KEY,
        change TEXT NOT NULL,
        custodian TEXT NOT NULL,
        approved_at TEXT NOT NULL,
        expires_at TEXT NOT NULL,
        used_at TEXT NULL
    );
    CREATE INDEX key_approvals_change ON key_approvals (change, used_at);",
    // 5: derived tokens (a PAN's first token derived from its fingerprint, found by reading
    // that row) leave the fingerprint index, which keeps only the others; the format the
    // derived tokens were formed with.
    "ALTER TABLE tokens ADD COLUMN derived INTEGER NOT NULL DEFAULT 0;
    DROP INDEX tokens_domain_fingerprint;
    CREATE UNIQUE INDEX tokens_domain_fingerprint ON tokens (domain, fingerprint)
        WHERE derived = 0;
    CREATE TABLE store_settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;",
    // 6: the audience a payment challenge names, signed as the authorization's `aud`.
    "ALTER TABLE authorization_challenges ADD COLUMN audience TEXT NULL;",
    // 7: device lifecycle: last use, revocation (final), and the lookups by user and token.
    "ALTER TABLE devices ADD COLUMN last_used_at TEXT NULL;
    ALTER TABLE devices ADD COLUMN status TEXT NOT NULL DEFAULT 'active';
    ALTER TABLE devices ADD COLUMN revoked_at TEXT NULL;
    ALTER TABLE devices ADD COLUMN revoke_reason TEXT NULL;
    CREATE INDEX devices_user ON devices (user, created_at);
    CREATE INDEX devices_token ON devices (domain, token, created_at);",
    // 8: the SPC browser-bound public key (COSE_Key) a device enrolled with, if any.
    "ALTER TABLE devices ADD COLUMN browser_bound_key BLOB NULL;",
    // 9: the SPC display members of 2025 a payment challenge asks for (instrument details,
    // payment entities' logos), as JSON.
    "ALTER TABLE authorization_challenges ADD COLUMN spc_extra TEXT NULL;",
    // 10: what an Android TEE attested of an android-key device's boot.
    "ALTER TABLE devices ADD COLUMN android_boot TEXT NULL;",
];

/// Page cache of the writer connection (KiB): the B-tree pages random token and fingerprint
/// keys land on stay in memory instead of being read back with a system call.
const WRITER_CACHE_KIB: i64 = 8 * 1024;
/// Page cache of each reader connection (KiB).
const READER_CACHE_KIB: i64 = 8 * 1024;
/// The WAL file is truncated back to this size after a checkpoint that lets it restart. Under
/// load the WAL restarts about once a second and peaks at a few hundred MB; kept at that
/// size, each restart overwrites blocks the file already has. Truncated to 64 MiB, every cycle
/// gave the blocks back and allocated them again (ext4 block reservation in every `pwrite`,
/// metadata in every `fsync`). Five A/B pairs of tokenize-new on fresh stores: +7 to +40 %
/// (the VM's noise), p99.9 about a third lower (`docs/benchmarks.md`).
const WAL_SIZE_LIMIT: i64 = 512 * 1024 * 1024;

/// Sorts and temporary tables stay in memory: SQLite would otherwise create their files in
/// `/var/tmp` or `/tmp`, outside the data directory the confined daemon may write (they are
/// small: a rewrap batch, an index build).
const TEMP_IN_MEMORY: &str = "PRAGMA temp_store=MEMORY;";

/// Settings for the writer connection: durable commits (WAL, synchronous=FULL). SQLite does
/// not checkpoint inside commits: the writer does between batches
/// ([`checkpointer`](super::checkpointer)), after the callers have their answers.
pub(super) fn configure_writer(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(sql_err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::unavailable(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA wal_autocheckpoint=0;
         PRAGMA cache_size=-{WRITER_CACHE_KIB}; PRAGMA journal_size_limit={WAL_SIZE_LIMIT};
         {TEMP_IN_MEMORY}"
    ))
    .map_err(sql_err)
}

/// Settings for a reader connection: it never writes.
pub(super) fn configure_reader(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_err)?;
    conn.execute_batch(&format!(
        "PRAGMA foreign_keys=ON; PRAGMA query_only=ON; PRAGMA cache_size=-{READER_CACHE_KIB};
         {TEMP_IN_MEMORY}"
    ))
    .map_err(sql_err)
}

/// Refuses a database this build cannot read: no schema, or one written by newer code.
pub(super) fn check_readable(conn: &Connection) -> Result<(), StoreError> {
    if version(conn)? < 1 {
        return Err(StoreError::corrupt("no payhsm schema in this database"));
    }
    Ok(())
}

/// The schema version applied (0 for none); refuses one newer than this build knows.
fn version(conn: &Connection) -> Result<i64, StoreError> {
    let current: i64 = conn
        .query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |r| r.get(0),
        )
        .map_err(sql_err)?;
    let known = i64::try_from(MIGRATIONS.len()).unwrap_or(i64::MAX);
    if current > known {
        return Err(StoreError::corrupt(format!(
            "schema version {current} is newer than this build knows ({known})"
        )));
    }
    Ok(current)
}

/// Brings the schema to the newest version in one transaction; refuses a database written
/// by newer code.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql_err)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL
        )",
    )
    .map_err(sql_err)?;
    let current = version(&tx)?;
    for (version, sql) in (1..)
        .zip(MIGRATIONS.iter())
        .skip_while(|(v, _)| *v <= current)
    {
        tx.execute_batch(sql).map_err(sql_err)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
            rusqlite::params![version, crate::clock::now_rfc3339()],
        )
        .map_err(sql_err)?;
    }
    tx.commit().map_err(sql_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as version 4 left it, with one token.
    fn at_version_4() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .unwrap();
        for (v, sql) in (1..).zip(MIGRATIONS.iter()).take(4) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, 'then')",
                [v],
            )
            .unwrap();
        }
        insert(&conn, "4111110000001111", 1, None).unwrap();
        conn
    }

    fn insert(
        conn: &Connection,
        token: &str,
        fp: u8,
        derived: Option<i64>,
    ) -> rusqlite::Result<usize> {
        let (cols, val) = match derived {
            Some(d) => (", derived", format!(", {d}")),
            None => ("", String::new()),
        };
        conn.execute(
            &format!(
                "INSERT INTO tokens (domain, token, fingerprint, last4, status, created_at,
                     updated_at{cols})
                 VALUES ('shop', ?1, ?2, '1111', 'active', 't', 't'{val})"
            ),
            rusqlite::params![token, vec![fp; 32]],
        )
    }

    #[test]
    fn migration_5_keeps_existing_tokens_in_the_index_and_leaves_derived_ones_out() {
        let mut conn = at_version_4();
        migrate(&mut conn).unwrap();
        assert_eq!(
            version(&conn).unwrap(),
            i64::try_from(MIGRATIONS.len()).unwrap()
        );
        let derived: i64 = conn
            .query_row("SELECT derived FROM tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(derived, 0, "tokens from before are found through the index");
        // The index still refuses a second indexed token for the fingerprint...
        assert!(insert(&conn, "4111110000021111", 1, Some(0)).is_err());
        // ...and holds no derived token.
        insert(&conn, "4111110000031111", 1, Some(1)).unwrap();
        let plan: String = conn
            .query_row(
                "EXPLAIN QUERY PLAN SELECT token FROM tokens
                 WHERE domain = 'shop' AND fingerprint = x'01' AND derived = 0",
                [],
                |r| r.get(3),
            )
            .unwrap();
        assert!(plan.contains("tokens_domain_fingerprint"), "{plan}");
    }

    #[test]
    fn migration_6_leaves_devices_enrolled_before_it_active_and_unused() {
        let mut conn = at_version_4();
        conn.execute_batch(MIGRATIONS[4]).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (5, 'then')", [])
            .unwrap();
        conn.execute(
            "INSERT INTO devices (device_id, credential_id, rp_id, user, public_key_cbor, alg,
                 format, trust, aaguid, sign_count, backup_eligible, backup_state,
                 user_verified, token, domain, created_at)
             VALUES ('dev-1', x'01', 'localhost', 'alice', x'a5', -7, 'packed', 'self',
                 zeroblob(16), 3, 0, 0, 1, NULL, NULL, '2026-01-01T00:00:00.000Z')",
            [],
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let device = super::super::devices::by_id(&conn, "dev-1")
            .unwrap()
            .unwrap();
        assert_eq!(device.state, crate::store::DeviceState::Active);
        assert_eq!(device.last_used_at, None);
        assert_eq!(device.sign_count, 3);
    }
}
