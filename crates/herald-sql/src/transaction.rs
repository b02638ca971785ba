//! [`DatabaseTransaction`]: a writing transaction of a [`Database`](crate::Database),
//! on whichever database it runs, with statements that take [`Value`]s and return
//! [`Row`]s, and the outbox.

use herald::Envelope;
use sqlx::{Postgres, Sqlite, Transaction};

use crate::{
    backend::Backend,
    error::{Error, Result},
    outbox::{enqueue, enqueue_all},
    value::{Row, Value},
};

/// A writing transaction of a [`Database`](crate::Database), from
/// [`Database::begin`](crate::Database::begin): its statements, outbox appends and
/// whatever typed sqlx code runs in it commit together with
/// [`commit`](Self::commit); dropping it rolls back.
///
/// Statements (`$1`, `$2`, ... placeholders; `BIGINT`, `TEXT` and `ON CONFLICT`, which
/// both databases understand) compile once for both. Code for one database matches on
/// the variant for the typed `sqlx::Transaction`.
///
/// ```
/// use herald::Envelope;
/// use herald_sql::Database;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let db = Database::connect(&format!("sqlite:{}", dir.path().join("shop.db").display())).await?;
/// db.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, cents BIGINT)", &[]).await?;
///
/// let mut tx = db.begin().await?;
/// tx.execute("INSERT INTO orders (id, cents) VALUES ($1, $2)", &["o-1".into(), 1250.into()])
///     .await?;
/// tx.enqueue("orders", &Envelope::new("urn:shop", "shop.order.placed", "{}").with_key("o-1"))
///     .await?;
/// tx.commit().await?;
///
/// let row = db.fetch_optional("SELECT id, cents FROM orders", &[]).await?.unwrap();
/// assert_eq!((row.get::<String>(0)?, row.get::<i64>(1)?), ("o-1".to_owned(), 1250));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum DatabaseTransaction {
    /// On SQLite (holding the write lock: `BEGIN IMMEDIATE`).
    Sqlite(Transaction<'static, Sqlite>),
    /// On PostgreSQL.
    Postgres(Transaction<'static, Postgres>),
}

impl DatabaseTransaction {
    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Runs `sql` with `args`; rows affected.
    pub async fn execute(&mut self, sql: &str, args: &[Value]) -> Result<u64> {
        match self {
            Self::Sqlite(tx) => execute::<Sqlite>(tx, sql, args).await,
            Self::Postgres(tx) => execute::<Postgres>(tx, sql, args).await,
        }
    }

    /// Every row of `sql` with `args`.
    pub async fn fetch_all(&mut self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        match self {
            Self::Sqlite(tx) => fetch_all::<Sqlite>(tx, sql, args).await,
            Self::Postgres(tx) => fetch_all::<Postgres>(tx, sql, args).await,
        }
    }

    /// The first row of `sql` with `args`, if any.
    pub async fn fetch_optional(&mut self, sql: &str, args: &[Value]) -> Result<Option<Row>> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    /// The first row of `sql` with `args`; no row is an error (`sqlx::Error::RowNotFound`).
    pub async fn fetch_one(&mut self, sql: &str, args: &[Value]) -> Result<Row> {
        let backend = self.backend();
        first_row(backend, sql, self.fetch_all(sql, args).await?)
    }

    /// Puts `envelope` into the outbox for `topic` ([`enqueue`]); the relay publishes
    /// it once the transaction commits. Returns its position.
    ///
    /// Enqueue last, just before the commit: writers serialise from their first enqueue
    /// to their commit (`docs/sql.md`, the ordering guarantee).
    pub async fn enqueue(&mut self, topic: &str, envelope: &Envelope) -> Result<u64> {
        match self {
            Self::Sqlite(tx) => enqueue(tx, topic, envelope).await,
            Self::Postgres(tx) => enqueue(tx, topic, envelope).await,
        }
    }

    /// Puts `envelopes` into the outbox for `topic`, in order ([`enqueue_all`]).
    pub async fn enqueue_all(&mut self, topic: &str, envelopes: &[Envelope]) -> Result<()> {
        match self {
            Self::Sqlite(tx) => enqueue_all(tx, topic, envelopes).await.map(drop),
            Self::Postgres(tx) => enqueue_all(tx, topic, envelopes).await.map(drop),
        }
    }

    /// Commits.
    pub async fn commit(self) -> Result<()> {
        let backend = self.backend();
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
        .map_err(Error::db(backend, "committing"))
    }

    /// Rolls back (as dropping it does, but waiting for the database).
    pub async fn rollback(self) -> Result<()> {
        let backend = self.backend();
        match self {
            Self::Sqlite(tx) => tx.rollback().await,
            Self::Postgres(tx) => tx.rollback().await,
        }
        .map_err(Error::db(backend, "rolling back"))
    }
}

/// [`DatabaseTransaction::execute`] on a connection of `B`.
pub(crate) async fn execute<B: Backend>(
    conn: &mut B::Connection,
    sql: &str,
    args: &[Value],
) -> Result<u64> {
    B::execute_values(conn, sql, args)
        .await
        .map_err(Error::db(B::BACKEND, statement(sql)))
}

/// [`DatabaseTransaction::fetch_all`] on a connection of `B`.
pub(crate) async fn fetch_all<B: Backend>(
    conn: &mut B::Connection,
    sql: &str,
    args: &[Value],
) -> Result<Vec<Row>> {
    B::fetch_rows(conn, sql, args)
        .await
        .map_err(Error::db(B::BACKEND, statement(sql)))
}

/// The first of `rows`, or `RowNotFound` for `sql`.
pub(crate) fn first_row(backend: &'static str, sql: &str, rows: Vec<Row>) -> Result<Row> {
    rows.into_iter()
        .next()
        .ok_or_else(|| Error::db(backend, statement(sql))(sqlx::Error::RowNotFound))
}

/// A statement, shortened for an error message.
fn statement(sql: &str) -> String {
    let one_line = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(80) {
        Some((cut, _)) => format!("running `{}...`", &one_line[..cut]),
        None => format!("running `{one_line}`"),
    }
}
