//! [`HeraldDb`]: a pool with herald-sql's schema, and the handles built on it.

use std::{fmt, path::Path, time::Duration};

use herald::transport::Publisher;
use sqlx::{
    Pool, Postgres, Sqlite,
    postgres::PgPoolOptions,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions},
};

use crate::{
    backend::Backend,
    error::{Error, Result},
    migrate::{self, Schema},
    relay::Relay,
    store::EventStore,
};

/// A database with herald-sql's tables: the outbox, the event store, relay slots and
/// projection checkpoints. Creating one applies any missing migrations. Cheap to clone.
pub struct HeraldDb<DB: Backend> {
    pool: Pool<DB>,
}

impl<DB: Backend> Clone for HeraldDb<DB> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<DB: Backend> fmt::Debug for HeraldDb<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HeraldDb")
            .field("backend", &DB::BACKEND)
            .finish_non_exhaustive()
    }
}

impl HeraldDb<Sqlite> {
    /// Opens (creating if missing) the SQLite file at `path` in WAL mode, with writers
    /// waiting up to 5 s for each other, and migrates it.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .map_err(Error::db("sqlite", format!("opening {}", path.display())))?;
        Self::new(pool).await
    }
}

impl HeraldDb<Postgres> {
    /// Connects to `url` (`postgres://user@host:port/db`) and migrates the schema in the
    /// connection's `search_path`.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .connect(url)
            .await
            .map_err(Error::db("postgres", "connecting"))?;
        Self::new(pool).await
    }
}

impl<DB: Backend> HeraldDb<DB> {
    /// Uses `pool` (the service's own, so its transactions can enqueue and append) and
    /// migrates its database.
    pub async fn new(pool: Pool<DB>) -> Result<Self> {
        migrate::apply(&pool, &migrate::HERALD_SQL).await?;
        Ok(Self { pool })
    }

    /// Brings another component's `schema` (the inbox's, herald-saga's, or a service's
    /// own tables) up to date in this database, with the same runner and lock as
    /// herald-sql's own tables.
    pub async fn migrate(&self, schema: &Schema) -> Result<()> {
        migrate::apply(&self.pool, schema).await
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Begins a transaction meant to write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a transaction that reads before it writes would otherwise
    /// fail with `SQLITE_BUSY` when another writer committed in between.
    pub async fn begin(&self) -> Result<sqlx::Transaction<'static, DB>> {
        DB::begin_write(&self.pool)
            .await
            .map_err(Error::db(DB::BACKEND, "beginning a transaction"))
    }

    /// The event store (events not published; see [`EventStore::with_topic`]).
    pub fn event_store(&self) -> EventStore<DB> {
        EventStore::new(self.pool.clone())
    }

    /// A relay publishing through `publisher` (call [`Relay::start`]).
    pub fn relay<P: Publisher>(&self, publisher: P) -> Relay<DB, P> {
        Relay::new(self.pool.clone(), publisher)
    }
}
