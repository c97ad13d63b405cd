//! The PostgreSQL store against a real server: a throwaway cluster started by the test
//! (PostgreSQL server binaries required, see `PAYHSM_PG_BIN`), two stores on it as two
//! replicas: tokenization converges across them, a challenge is consumed once, and the one
//! audit chain they share links up.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)] // test crate

use payhsm::audit::{link, AuditEvent, AuditRecord, PolicyVerdict, GENESIS};
use payhsm::card::{Domain, Last4, Token, TokenFormat, TokenStatus};
use payhsm::keys::{Fingerprint, KeyVersion, SealedPan};
use payhsm::store::postgres::{open, PgTls, PostgresOptions, PostgresStore};
use payhsm::store::prelude::*;
use payhsm::store::{
    ChallengePurpose, ChallengeRecord, ConsumeOutcome, DetokenizeOutcome, Lookup, NewToken, Store,
    StoreError, TokenRecord, TokenizeOutcome,
};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// A PostgreSQL cluster in a temporary directory under `target/`, stopped on drop.
struct Cluster {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    /// Run the server binaries as this user (initdb refuses root).
    as_user: Option<&'static str>,
    /// Server settings beyond the port and socket (`-c name=value ...`).
    settings: String,
}

impl Cluster {
    /// A cluster without TLS.
    fn start() -> Self {
        Self::start_with(|_| String::new())
    }

    /// A cluster with TLS on, its certificate from a fresh dev PKI (`localhost`, `127.0.0.1`)
    /// whose CA is `<dir>/pki/ca.pem`.
    fn start_tls() -> Self {
        Self::start_with(|dir| {
            let pki = dir.join("pki");
            payhsm::pki::generate_dev_pki(&pki).unwrap();
            format!(
                "-c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
                pki.join("server.pem").display(),
                pki.join("server.key").display()
            )
        })
    }

    /// `prepare` writes what the server needs into its directory and returns its settings.
    fn start_with(prepare: impl FnOnce(&std::path::Path) -> String) -> Self {
        let bin = std::env::var_os("PAYHSM_PG_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"));
        assert!(
            bin.join("initdb").exists(),
            "PostgreSQL server binaries not found in {} (apt-get install postgresql, or set \
             PAYHSM_PG_BIN)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("pg-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .unwrap();
        let settings = prepare(dir.path());
        let root = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
            .unwrap()
            .trim()
            == "0";
        let as_user = root.then_some("postgres");
        if let Some(user) = as_user {
            let ok = Command::new("chown")
                .args(["-R", user])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(ok.success(), "chown to {user}");
        }
        // A free port: bound and released (a race with another process is unlikely enough).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self {
            dir,
            bin,
            port,
            as_user,
            settings,
        };
        let data = cluster.data();
        cluster.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "payhsm",
                "--no-sync",
            ],
        );
        cluster.server_start();
        cluster
    }

    /// Starts the server (again) and waits until it accepts connections.
    fn server_start(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50 {}",
            self.port,
            self.dir.path().display(),
            self.settings
        );
        let data = self.data();
        let log = self.dir.path().join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }

    /// Stops the server at once (a crash, as far as clients can tell).
    fn server_kill(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &["-D", data.to_str().unwrap(), "-m", "immediate", "stop"],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs a server tool; its output is shown only if it fails.
    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let out = match self.as_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        }
        .unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?}: {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A fresh database on the cluster, and the URL to it.
    fn database(&self, name: &str) -> String {
        self.run(
            "createdb",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "payhsm",
                name,
            ],
        );
        format!("postgres://payhsm@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.data();
        let args = ["-D", data.to_str().unwrap_or(""), "-m", "immediate", "stop"];
        let program = self.bin.join("pg_ctl");
        let _ = match self.as_user {
            Some(user) => Command::new("runuser")
                .args(["-u", user, "--"])
                .arg(&program)
                .args(args)
                .output(),
            None => Command::new(&program).args(args).output(),
        };
    }
}

fn options(url: &str) -> PostgresOptions {
    PostgresOptions {
        url: url.to_owned(),
        password: None,
        tls: PgTls::Disable,
        pool_size: 4,
        connect_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(10),
        max_batch: 64,
    }
}

async fn store(url: &str) -> PostgresStore {
    open(options(url)).await.unwrap()
}

fn event(action: &str) -> AuditEvent {
    AuditEvent::new(
        "2026-01-01T00:00:00.000Z".into(),
        "req".into(),
        "spiffe://gw".into(),
        action.into(),
        PolicyVerdict::NotAsked,
    )
}

fn fp(n: u32) -> Fingerprint {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    Fingerprint(b)
}

/// A 16-digit token whose middle encodes `n`, never Luhn-valid.
fn tok(n: u32) -> Token {
    let t = format!("411111{n:06}1111");
    if payhsm::card::luhn_valid(t.as_bytes()) {
        return Token::parse(&format!("411111{n:06}1112")).unwrap();
    }
    Token::parse(&t).unwrap()
}

/// The tokenization of PAN number `n` as a replica offers it: the token derived from its
/// fingerprint first.
fn derived_token(n: u32) -> NewToken {
    let fingerprint = fp(n);
    let token = tok(500_000 + n);
    NewToken {
        format: TokenFormat::default(),
        record: TokenRecord {
            token: token.clone(),
            domain: Domain::parse("shop").unwrap(),
            fingerprint: Some(fingerprint),
            sealed: Some(SealedPan {
                key_version: KeyVersion(1),
                nonce: [7; 12],
                ciphertext: vec![n as u8; 40],
            }),
            last4: Last4::parse("1111").unwrap(),
            status: TokenStatus::Active,
            created_at: "2026-01-01T00:00:00.000Z".into(),
            updated_at: "2026-01-01T00:00:00.000Z".into(),
        },
        lookup: vec![Lookup {
            version: KeyVersion(1),
            fingerprint,
            derived: token,
        }],
    }
}

/// Recomputes the chain with `link`: gapless from 1 and every hash reproduced.
fn assert_chain(records: &[AuditRecord]) {
    let mut prev = GENESIS;
    for (i, r) in records.iter().enumerate() {
        let (again, h) = link(&prev, i as u64 + 1, r.event.clone());
        assert_eq!(&again, r, "record {}", i + 1);
        prev = h;
    }
}

fn challenge(id: &str) -> ChallengeRecord {
    let t0 = time::macros::datetime!(2026-01-01 00:00:00 UTC);
    ChallengeRecord {
        id: id.into(),
        purpose: ChallengePurpose::Enrol,
        challenge: vec![0x5a; 32],
        rp_id: "localhost".into(),
        user: "alice".into(),
        token: None,
        domain: None,
        created_at: payhsm::clock::format_rfc3339(t0),
        expires_at: payhsm::clock::format_rfc3339(t0 + time::Duration::seconds(120)),
        used_at: None,
    }
}

/// Runs a statement beside the store.
async fn sql(url: &str, statement: &str) -> Result<(), tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(conn);
    client.batch_execute(statement).await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_postgres_share_tokens_single_use_and_one_audit_chain() {
    let cluster = Cluster::start();
    let url = cluster.database("replicas");
    // Two opens at once: the migration lock lets one migrate and the other find it done.
    let (a, b) = tokio::join!(store(&url), store(&url));
    let (a, b) = (Arc::new(a), Arc::new(b));

    // Tokenize and detokenize on one replica; the other reads the same row.
    let TokenizeOutcome::Created(created) = a
        .tokenize(derived_token(1), event("tokenize"))
        .await
        .unwrap()
    else {
        panic!("not created")
    };
    let got = b
        .detokenize(&created.token, &created.domain, event("detokenize"))
        .await
        .unwrap();
    assert_eq!(
        got,
        DetokenizeOutcome::Active(created.sealed.clone().unwrap())
    );
    assert_eq!(
        b.token(&created.token, &created.domain).await.unwrap(),
        Some(created.clone())
    );

    // Both replicas tokenize the same PANs at once: one token per PAN.
    let mut tasks = Vec::new();
    for n in 100..140u32 {
        for s in [a.clone(), b.clone()] {
            tasks.push(tokio::spawn(async move {
                let out = s.tokenize(derived_token(n), event("tokenize")).await;
                (n, out.unwrap())
            }));
        }
    }
    // A third replica starts while the two write: its open-time check of the chain head
    // sees one snapshot, and its records join the same chain.
    let late = store(&url).await;
    late.record(event("late_replica")).await.unwrap();
    let mut tokens = std::collections::HashMap::new();
    let (mut made, mut found) = (0, 0);
    for t in tasks {
        let (n, out) = t.await.unwrap();
        let record = match out {
            TokenizeOutcome::Created(r) => {
                made += 1;
                r
            }
            TokenizeOutcome::Existing(r) => {
                found += 1;
                r
            }
            other => panic!("PAN {n}: {other:?}"),
        };
        let first = tokens.entry(n).or_insert_with(|| record.token.clone());
        assert_eq!(*first, record.token, "PAN {n} got two tokens");
    }
    assert_eq!((made, found), (40, 40));

    // One challenge consumed from both replicas at once: exactly one wins.
    a.create_challenge(challenge("race"), event("create_device_challenge"))
        .await
        .unwrap();
    let now = time::macros::datetime!(2026-01-01 00:00:10 UTC);
    let (x, y) = tokio::join!(
        a.consume_challenge("race", ChallengePurpose::Enrol, now),
        b.consume_challenge("race", ChallengePurpose::Enrol, now)
    );
    let outcomes = [x.unwrap(), y.unwrap()];
    let won = outcomes
        .iter()
        .filter(|o| matches!(o, ConsumeOutcome::Consumed(_)))
        .count();
    assert_eq!(won, 1, "{outcomes:?}");
    assert!(outcomes.contains(&ConsumeOutcome::AlreadyUsed));

    // One chain, gapless, whichever replica wrote: 1 + 1 + 80 + 1 + 1 records.
    let records = b.audit_records(0, 10_000).await.unwrap();
    assert_eq!(records.len(), 84);
    assert_chain(&records);
    assert_eq!(a.audit_records(0, 10_000).await.unwrap(), records);

    // The log is append-only in the database itself.
    let refused = sql(&url, "UPDATE audit_log SET action = 'x' WHERE seq = 1").await;
    assert!(refused.is_err(), "audit_log accepted an UPDATE");
    let refused = sql(&url, "DELETE FROM audit_log").await;
    assert!(refused.is_err(), "audit_log accepted a DELETE");

    a.ping().await.unwrap();
    b.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_schema_newer_than_the_build_is_refused() {
    let cluster = Cluster::start();
    let url = cluster.database("newer");
    drop(store(&url).await);
    sql(
        &url,
        "INSERT INTO schema_version (version, applied_at) VALUES (99, 'later')",
    )
    .await
    .unwrap();
    match open(options(&url)).await {
        Err(StoreError::Corrupt(m)) => assert!(m.contains("99"), "{m}"),
        other => panic!("opened a newer schema: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_fail_fast_while_postgres_is_down_and_recover_when_it_is_back() {
    let cluster = Cluster::start();
    let url = cluster.database("outage");
    let s = store(&url).await;
    s.record(event("before")).await.unwrap();

    cluster.server_kill();
    let started = std::time::Instant::now();
    let err = s.record(event("during")).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(s.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    cluster.server_start();
    // The writer reconnects by itself (after its backoff); readiness follows.
    let mut recovered = false;
    for _ in 0..100 {
        if s.ping().await.is_ok() && s.record(event("after")).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the store did not recover");
    let records = s.audit_records(0, 100).await.unwrap();
    assert_eq!(records.first().unwrap().event.action, "before");
    assert_eq!(records.last().unwrap().event.action, "after");
    assert_chain(&records);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blocked_statement_times_out_and_an_exhausted_pool_answers_at_once() {
    let cluster = Cluster::start();
    let url = cluster.database("timeouts");
    let s = Arc::new(
        open(PostgresOptions {
            pool_size: 1,
            connect_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(3),
            ..options(&url)
        })
        .await
        .unwrap(),
    );
    // Another session locks the table the read needs, and keeps it locked.
    let (locker, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    locker
        .batch_execute("BEGIN; LOCK TABLE tokens IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();

    let shop = Domain::parse("shop").unwrap();
    let blocked = {
        let (s, shop) = (s.clone(), shop.clone());
        tokio::spawn(async move { s.token(&tok(1), &shop).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The one pooled connection is taken: the next read waits no longer than the timeout.
    let started = std::time::Instant::now();
    let err = s.token(&tok(2), &shop).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("pool exhausted")),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The blocked read ends with the statement timeout (57014), not never.
    let err = blocked.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("57014")),
        "{err:?}"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(s.token(&tok(1), &shop).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_full_checks_the_servers_chain_and_name() {
    let cluster = Cluster::start_tls();
    let plain = cluster.database("tls");
    let verify_full = |url: &str, ca_file: PathBuf| PostgresOptions {
        tls: PgTls::VerifyFull { ca_file },
        ..options(url)
    };
    let ca = cluster.dir.path().join("pki/ca.pem");

    // The right CA and a name the certificate holds: the store works over TLS.
    let s = open(verify_full(&plain, ca.clone())).await.unwrap();
    s.record(event("over_tls")).await.unwrap();
    s.ping().await.unwrap();
    let over_tls = s.audit_records(0, 10).await.unwrap();
    assert_eq!(over_tls.len(), 1);
    drop(s);

    // Another CA: the chain does not verify.
    let other = tempfile::tempdir().unwrap();
    payhsm::pki::generate_dev_pki(other.path()).unwrap();
    let err = open(verify_full(&plain, other.path().join("ca.pem")))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("invalid peer certificate")),
        "{err:?}"
    );

    // The right CA, but the host name is not the certificate's (the address is).
    let misnamed = format!(
        "host=db.example.com hostaddr=127.0.0.1 port={} user=payhsm dbname=tls",
        cluster.port
    );
    let err = open(verify_full(&misnamed, ca.clone())).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("not valid for name")),
        "{err:?}"
    );

    // A CA file without a certificate is refused before any connection.
    let empty = other.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let err = open(verify_full(&plain, empty)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Unavailable(m) if m.contains("no certificate")),
        "{err:?}"
    );
}

#[test]
fn tls_disable_is_refused_for_a_remote_host() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for url in [
        "postgres://payhsm@db.example.com:5432/vault",
        // A loopback name does not help when the address connected to is remote.
        "host=localhost hostaddr=192.0.2.7 user=payhsm dbname=vault",
    ] {
        let err = rt.block_on(open(options(url))).unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable(m) if m.contains("verify-full")),
            "{url}: {err:?}"
        );
    }
}
