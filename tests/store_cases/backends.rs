//! The two fixtures: SQLite on a file in a fresh temporary folder, PostgreSQL on a fresh
//! database of the process-wide throwaway cluster (`tests/support/postgres.rs`; it fails
//! loudly when PostgreSQL is not installed, so no case passes without running).

use super::{BoxFuture, Fixture};
use crate::support::postgres::fresh_database;
use payhsm::store::postgres::{PgTls, PostgresOptions};
use payhsm::store::sqlite::SqliteOptions;
use payhsm::store::Store;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A SQLite store file in a temporary folder, removed on drop.
pub struct SqliteFixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl SqliteFixture {
    /// A fresh folder; the file is created by the first [`Fixture::open`].
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vault.db");
        Self { _dir: dir, path }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn connection(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.path).unwrap()
    }
}

impl Fixture for SqliteFixture {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
        let store = payhsm::store::sqlite::open(&self.path, SqliteOptions::default()).unwrap();
        Box::pin(async move { Arc::new(store) as Arc<dyn Store> })
    }

    fn replica(&self, first: &Arc<dyn Store>) -> BoxFuture<'_, Arc<dyn Store>> {
        // One writer per file: the "replica" is the first store itself.
        let same = Arc::clone(first);
        Box::pin(async move { same })
    }

    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let done = self
            .connection()
            .execute_batch(sql)
            .map_err(|e| e.to_string());
        Box::pin(async move { done })
    }

    fn query_i64<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, i64> {
        let value = self.connection().query_row(sql, [], |r| r.get(0)).unwrap();
        Box::pin(async move { value })
    }

    fn fail_audit_inserts<'a>(&'a self, action: &'a str) -> BoxFuture<'a, ()> {
        let sql = format!(
            "CREATE TRIGGER audit_down_{action} BEFORE INSERT ON audit_log
             WHEN NEW.action = '{action}'
             BEGIN SELECT RAISE(ABORT, 'audit down'); END;"
        );
        Box::pin(async move { self.execute(&sql).await.unwrap() })
    }

    fn rolls_back_requests_alone(&self) -> bool {
        true
    }
}

/// A fresh database on the shared PostgreSQL cluster.
pub struct PostgresFixture {
    url: String,
}

impl PostgresFixture {
    /// Creates the database (and starts the shared cluster on first use).
    pub fn new() -> Self {
        Self {
            url: fresh_database(),
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The options the cases open stores with.
    pub fn options(&self) -> PostgresOptions {
        options(&self.url)
    }

    async fn client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

/// Store options for `url`: no TLS (loopback), a small pool, timeouts no case reaches.
pub fn options(url: &str) -> PostgresOptions {
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

impl Fixture for PostgresFixture {
    fn open(&self) -> BoxFuture<'_, Arc<dyn Store>> {
        Box::pin(async move {
            let store = payhsm::store::postgres::open(self.options()).await.unwrap();
            Arc::new(store) as Arc<dyn Store>
        })
    }

    fn replica(&self, _first: &Arc<dyn Store>) -> BoxFuture<'_, Arc<dyn Store>> {
        self.open()
    }

    fn execute<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let client = self.client().await;
            client
                .batch_execute(sql)
                .await
                .map_err(|e| match e.as_db_error() {
                    Some(db) => db.message().to_owned(),
                    None => e.to_string(),
                })
        })
    }

    fn query_i64<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, i64> {
        Box::pin(async move {
            let client = self.client().await;
            let row = client.query_one(sql, &[]).await.unwrap();
            // `COUNT(*)` is a BIGINT, `CASE ... THEN 1` an INTEGER.
            row.try_get::<_, i64>(0)
                .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                .unwrap()
        })
    }

    fn fail_audit_inserts<'a>(&'a self, action: &'a str) -> BoxFuture<'a, ()> {
        let sql = format!(
            "CREATE FUNCTION audit_down_{action}() RETURNS trigger LANGUAGE plpgsql AS $$
                 BEGIN RAISE EXCEPTION 'audit down'; END $$;
             CREATE TRIGGER audit_down_{action} BEFORE INSERT ON audit_log FOR EACH ROW
                 WHEN (NEW.action = '{action}') EXECUTE FUNCTION audit_down_{action}();"
        );
        Box::pin(async move { self.execute(&sql).await.unwrap() })
    }

    fn rolls_back_requests_alone(&self) -> bool {
        false
    }
}
