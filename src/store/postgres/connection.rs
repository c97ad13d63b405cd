//! Connections: the settings every connection shares (TLS, timeouts, keepalives), the
//! writer's own connections, and the prepared-statement helpers every query goes through,
//! with the one mapping of PostgreSQL errors to [`StoreError`].

use super::tls;
use super::{PgTls, PostgresOptions};
use crate::store::StoreError;
use deadpool_postgres::ClientWrapper;
use std::time::Duration;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::Row;

/// Opens connections (the writer's, and the migration's) the way the pool does.
pub(super) struct Connector {
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: tls::MakeRustls,
    pub(super) timeout: Duration,
}

impl Connector {
    /// A new connection, its driver task spawned, within the connect timeout.
    pub(super) async fn connect(&self) -> Result<ClientWrapper, StoreError> {
        let connecting = self.config.connect(self.tls.clone());
        let (client, connection) = tokio::time::timeout(self.timeout, connecting)
            .await
            .map_err(|_| {
                StoreError::unavailable(format!(
                    "postgres: no connection within {} ms",
                    self.timeout.as_millis()
                ))
            })?
            .map_err(pg_err)?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %crate::fault::Chain(&pg_err(e)), "postgres connection ended");
            }
        });
        Ok(ClientWrapper::new(client, driver))
    }
}

/// Idle time before the first keepalive probe.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
/// Time between unanswered probes.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
/// Unanswered probes before the connection is dropped.
const KEEPALIVE_RETRIES: u32 = 3;

/// The connection settings every connection shares, and the TLS maker.
pub(super) fn pg_config(
    options: &PostgresOptions,
) -> Result<(tokio_postgres::Config, tls::MakeRustls), StoreError> {
    // The parse error is not shown: the URL may carry a password.
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|_| StoreError::unavailable("postgres url is not a valid connection URL"))?;
    let tls = match &options.tls {
        PgTls::Disable => {
            let remote_host = config.get_hosts().iter().find(|h| !is_local(h));
            let remote_addr = config.get_hostaddrs().iter().find(|a| !a.is_loopback());
            if remote_host.is_some() || remote_addr.is_some() {
                return Err(StoreError::unavailable(
                    "postgres TLS is disabled but the server is not on a loopback address or \
                     a Unix socket: use verify-full",
                ));
            }
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            tls::MakeRustls::disabled()
        }
        PgTls::VerifyFull { ca_file } => {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            tls::MakeRustls::verify_full(ca_file)?
        }
    };
    if let Some(password) = &options.password {
        config.password(password.as_bytes());
    }
    config
        .connect_timeout(options.connect_timeout)
        // statement_timeout is the server's: a silent network partition would leave the
        // client waiting on a response forever. Keepalive probes (sent while the connection
        // waits, answered by the peer's kernel) and the TCP user timeout (sent data left
        // unacknowledged) end such a connection within about half a minute; the writer and
        // the pool then connect again.
        .keepalives(true)
        .keepalives_idle(KEEPALIVE_IDLE)
        .keepalives_interval(KEEPALIVE_INTERVAL)
        .keepalives_retries(KEEPALIVE_RETRIES)
        .tcp_user_timeout(
            options
                .statement_timeout
                .saturating_add(options.connect_timeout),
        )
        .application_name("payhsmd")
        // Set at connection start-up, so every connection of the pool and the writer has it.
        .options(format!(
            "-c statement_timeout={}",
            options.statement_timeout.as_millis().max(1)
        ));
    Ok((config, tls))
}

fn is_local(host: &tokio_postgres::config::Host) -> bool {
    match host {
        tokio_postgres::config::Host::Unix(_) => true,
        tokio_postgres::config::Host::Tcp(name) => {
            name == "localhost"
                || name
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        }
    }
}

/// A PostgreSQL error as the store reports it: the SQLSTATE and the server's message, never
/// its DETAIL (which quotes key values), or the client's own error text.
pub(super) fn pg_err(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => {
            StoreError::unavailable(format!("postgres {}: {}", db.code().code(), db.message()))
        }
        None => StoreError::unavailable_from("postgres", e),
    }
}

/// A pool error: exhaustion says so (and fast: the wait is bounded by the connect timeout).
pub(super) fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Timeout(_) => StoreError::unavailable(
            "pool exhausted or postgres unreachable (no connection within the connect timeout)",
        ),
        deadpool_postgres::PoolError::Backend(e) => pg_err(e),
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => StoreError::unavailable_from("postgres pool", other),
    }
}

/// A column of a row, or [`StoreError::Corrupt`] naming the column (never the value).
pub(super) fn get<'a, T: FromSql<'a>>(row: &'a Row, idx: usize) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|_| {
        let name = row.columns().get(idx).map_or("?", |c| c.name());
        StoreError::corrupt(format!("column {name} does not decode"))
    })
}

/// The parameters of a prepared statement.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Runs a prepared (cached per connection) statement returning at most one row.
pub(super) async fn query_opt(
    db: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let stmt = db.prepare_cached(sql).await.map_err(pg_err)?;
    db.query_opt(&stmt, params).await.map_err(pg_err)
}

/// Runs a prepared statement returning exactly one row.
pub(super) async fn query_one(
    db: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<Row, StoreError> {
    let stmt = db.prepare_cached(sql).await.map_err(pg_err)?;
    db.query_one(&stmt, params).await.map_err(pg_err)
}

/// Runs a prepared statement returning rows.
pub(super) async fn query(
    db: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let stmt = db.prepare_cached(sql).await.map_err(pg_err)?;
    db.query(&stmt, params).await.map_err(pg_err)
}

/// Runs a prepared statement; the number of rows it changed.
pub(super) async fn execute(
    db: &ClientWrapper,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StoreError> {
    let stmt = db.prepare_cached(sql).await.map_err(pg_err)?;
    db.execute(&stmt, params).await.map_err(pg_err)
}

/// A count as `u64` (never negative).
pub(super) fn count(row: &Row, idx: usize) -> Result<u64, StoreError> {
    Ok(u64::try_from(get::<i64>(row, idx)?).unwrap_or(0))
}
