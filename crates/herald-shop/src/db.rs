//! Each service's own database: SQLite files (the embedded default) or a PostgreSQL
//! schema per service, with herald-sql's outbox and inbox in it.
//!
//! A service's database is a [`herald_sql::Database`], chosen at run time: the services
//! write their SQL once, with `$1` placeholders, `BIGINT` and `TEXT`, and `ON CONFLICT`,
//! which both databases understand, and run it through herald-sql's run-time statements
//! and its transactional handler ([`Database::handle_with`]).

use std::{path::PathBuf, sync::Arc, time::Duration};

use herald::{Inbox, transport::Publisher};
use herald_sql::{Database, HeraldDb, RelayConfig, RelayHandle};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

/// Why a service's database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// herald-sql failed (opening, migrating, the outbox).
    #[error(transparent)]
    Sql(#[from] herald_sql::Error),
    /// A statement of the service failed.
    #[error("{doing}: {source}")]
    Query {
        /// What the service was doing.
        doing: String,
        /// What herald-sql reported (it names the statement).
        source: herald_sql::Error,
    },
    /// The database could not be reached or prepared (PostgreSQL's schema).
    #[error("{doing}: {source}")]
    Connect {
        /// What the service was doing.
        doing: String,
        /// The driver's error.
        source: sqlx::Error,
    },
}

impl DbError {
    /// A closure that wraps a statement's error with what was being done.
    pub fn query(doing: impl Into<String>) -> impl FnOnce(herald_sql::Error) -> Self {
        let doing = doing.into();
        move |source| Self::Query { doing, source }
    }

    fn connect(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let doing = doing.into();
        move |source| Self::Connect { doing, source }
    }
}

/// Where services keep their data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// One SQLite file per service in this directory (`<service>.db`).
    Sqlite(PathBuf),
    /// A PostgreSQL database; each service works in schema `<prefix><service>`.
    Postgres {
        /// `postgres://user@host:port/db`.
        url: String,
        /// Prefix of the services' schemas, e.g. `shop_`.
        schema_prefix: String,
    },
}

/// One service's database: herald-sql (outbox, relay, inbox, run-time statements) on
/// its pool. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ServiceDb {
    sql: Database,
}

impl ServiceDb {
    /// Opens the database of `service` in `storage`, creating it (file or schema) and
    /// herald-sql's and the inbox's tables if missing.
    pub async fn open(storage: &Storage, service: &str) -> Result<Self, DbError> {
        let sql = match storage {
            Storage::Sqlite(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Connect {
                    doing: format!("creating {}", dir.display()),
                    source: sqlx::Error::Io(e),
                })?;
                Database::sqlite(HeraldDb::open(dir.join(format!("{service}.db"))).await?).await?
            }
            Storage::Postgres { url, schema_prefix } => {
                let schema = format!("{schema_prefix}{service}");
                let options: PgConnectOptions = url.parse().map_err(DbError::connect(format!(
                    "parsing the database URL {url:?}"
                )))?;
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(DbError::connect(format!("connecting to {url}")))?;
                // Several services may start at once: an advisory lock keeps CREATE
                // SCHEMA IF NOT EXISTS from racing with itself.
                let mut tx = admin
                    .begin()
                    .await
                    .map_err(DbError::connect("creating a schema"))?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("herald_shop_schema:{schema}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::connect("locking schema creation"))?;
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::connect(format!("creating schema {schema}")))?;
                tx.commit()
                    .await
                    .map_err(DbError::connect("creating a schema"))?;
                admin.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .connect_with(options.options([("search_path", schema.as_str())]))
                    .await
                    .map_err(DbError::connect(format!("connecting to {url}")))?;
                Database::postgres(HeraldDb::new(pool).await?).await?
            }
        };
        Ok(Self { sql })
    }

    /// herald-sql on this database: statements, transactions, units of work.
    pub fn sql(&self) -> &Database {
        &self.sql
    }

    /// The inbox, for [`herald::router::RouterBuilder::inbox`].
    pub fn inbox(&self) -> Arc<dyn Inbox> {
        self.sql.inbox()
    }

    /// Starts the relay that publishes this database's outbox through `publisher`.
    pub fn start_relay<P: Publisher>(&self, publisher: P) -> RelayHandle {
        let config = RelayConfig {
            // SQLite has no notifications: a short poll keeps each hop of an order's
            // flow quick. PostgreSQL is woken by NOTIFY and polls only as a fallback.
            poll_interval: Duration::from_millis(5),
            ..RelayConfig::default()
        };
        self.sql.start_relay(publisher, config)
    }

    /// Runs `statements` (the service's `CREATE TABLE IF NOT EXISTS ...`), in order.
    pub async fn create_tables(&self, statements: &[&str]) -> Result<(), DbError> {
        for ddl in statements {
            self.sql
                .execute(ddl, &[])
                .await
                .map_err(DbError::query("creating tables"))?;
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.sql.close().await
    }

    /// Outbox rows not yet published.
    pub async fn outbox_backlog(&self) -> Result<u64, DbError> {
        Ok(self.sql.outbox_backlog().await?.events)
    }
}
