//! Each service's own database: SQLite files (the embedded default) or a PostgreSQL
//! schema per service, with herald-sql's outbox and the SDK's inbox in it.
//!
//! The services write their SQL once; [`with_db!`](crate::with_db) instantiates it for
//! whichever database a service runs on (statements use `$1` placeholders, `BIGINT`
//! and `TEXT`, and `ON CONFLICT`, which both databases understand).

use std::{path::PathBuf, sync::Arc, time::Duration};

use herald::{Inbox, transport::Publisher};
use herald_sql::{HeraldDb, PostgresInbox, RelayConfig, RelayHandle, SqliteInbox};
use sqlx::{
    Postgres, Sqlite,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// Why a service's database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// herald-sql failed (opening, migrating, the outbox).
    #[error(transparent)]
    Sql(#[from] herald_sql::Error),
    /// The inbox table could not be created.
    #[error(transparent)]
    Inbox(#[from] herald::inbox::InboxError),
    /// A statement of the service failed.
    #[error("{doing}: {source}")]
    Query {
        /// What the service was doing.
        doing: String,
        /// The driver's error.
        source: sqlx::Error,
    },
}

impl DbError {
    /// A closure that wraps a driver error with what was being done.
    pub fn query(doing: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let doing = doing.into();
        move |source| Self::Query { doing, source }
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

/// One service's database handle: herald-sql (outbox, relay) and the inbox on one pool.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub enum ServiceDb {
    /// SQLite.
    Sqlite {
        /// herald-sql on the service's pool.
        db: HeraldDb<Sqlite>,
        /// The inbox on the same pool.
        inbox: SqliteInbox,
    },
    /// PostgreSQL.
    Postgres {
        /// herald-sql on the service's pool.
        db: HeraldDb<Postgres>,
        /// The inbox on the same pool.
        inbox: PostgresInbox,
    },
}

/// Runs `$body` with `$db` bound to the service's `HeraldDb<Sqlite>` or
/// `HeraldDb<Postgres>` and `$inbox` to its inbox: the body is compiled once per database.
#[macro_export]
macro_rules! with_db {
    ($service_db:expr, |$db:ident, $inbox:ident| $body:expr) => {
        match $service_db {
            $crate::db::ServiceDb::Sqlite {
                db: $db,
                inbox: $inbox,
            } => $body,
            $crate::db::ServiceDb::Postgres {
                db: $db,
                inbox: $inbox,
            } => $body,
        }
    };
}

impl ServiceDb {
    /// Opens the database of `service` in `storage`, creating it (file or schema) and
    /// herald-sql's and the inbox's tables if missing.
    pub async fn open(storage: &Storage, service: &str) -> Result<Self, DbError> {
        match storage {
            Storage::Sqlite(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| DbError::Query {
                    doing: format!("creating {}", dir.display()),
                    source: sqlx::Error::Io(e),
                })?;
                let db = HeraldDb::open(dir.join(format!("{service}.db"))).await?;
                let inbox = SqliteInbox::new(db.pool().clone()).await?;
                Ok(Self::Sqlite { db, inbox })
            }
            Storage::Postgres { url, schema_prefix } => {
                let schema = format!("{schema_prefix}{service}");
                let options: PgConnectOptions = url
                    .parse()
                    .map_err(DbError::query(format!("parsing the database URL {url:?}")))?;
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with(options.clone())
                    .await
                    .map_err(DbError::query(format!("connecting to {url}")))?;
                // Several services may start at once: an advisory lock keeps CREATE
                // SCHEMA IF NOT EXISTS from racing with itself.
                let mut tx = admin
                    .begin()
                    .await
                    .map_err(DbError::query("creating a schema"))?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("herald_shop_schema:{schema}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::query("locking schema creation"))?;
                sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
                    .execute(&mut *tx)
                    .await
                    .map_err(DbError::query(format!("creating schema {schema}")))?;
                tx.commit()
                    .await
                    .map_err(DbError::query("creating a schema"))?;
                admin.close().await;
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .connect_with(options.options([("search_path", schema.as_str())]))
                    .await
                    .map_err(DbError::query(format!("connecting to {url}")))?;
                let db = HeraldDb::new(pool).await?;
                let inbox = PostgresInbox::new(db.pool().clone()).await?;
                Ok(Self::Postgres { db, inbox })
            }
        }
    }

    /// The inbox, for [`herald::router::RouterBuilder::inbox`].
    pub fn inbox(&self) -> Arc<dyn Inbox> {
        match self {
            Self::Sqlite { inbox, .. } => Arc::new(inbox.clone()),
            Self::Postgres { inbox, .. } => Arc::new(inbox.clone()),
        }
    }

    /// Starts the relay that publishes this database's outbox through `publisher`.
    pub fn start_relay<P: Publisher>(&self, publisher: P) -> RelayHandle {
        let config = RelayConfig {
            // SQLite has no notifications: a short poll keeps each hop of an order's
            // flow quick. PostgreSQL is woken by NOTIFY and polls only as a fallback.
            poll_interval: Duration::from_millis(5),
            ..RelayConfig::default()
        };
        with_db!(self, |db, _inbox| db
            .relay(publisher)
            .with_config(config)
            .start())
    }

    /// Runs `statements` (the service's `CREATE TABLE IF NOT EXISTS ...`), in order.
    pub async fn create_tables(&self, statements: &[&str]) -> Result<(), DbError> {
        for ddl in statements {
            with_db!(self, |db, _inbox| sqlx::query(ddl)
                .execute(db.pool())
                .await
                .map(|_| ())
                .map_err(DbError::query("creating tables")))?;
        }
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        with_db!(self, |db, _inbox| db.pool().close().await)
    }

    /// Outbox rows not yet published.
    pub async fn outbox_backlog(&self) -> Result<u64, DbError> {
        // The backlog is read from the database; the relay's publisher is never used.
        let backlog = with_db!(self, |db, _inbox| db
            .relay(herald::MemoryTransport::new())
            .backlog()
            .await)?;
        Ok(backlog.events)
    }
}
