//! [`Database`]: herald-sql on the database a URL names, chosen at run time.

use std::sync::Arc;

use herald::{Inbox, InboxKey, inbox::InboxError, transport::Publisher};
use sqlx::{Postgres, Sqlite};

use crate::{
    db::HeraldDb,
    error::{Error, Result},
    inbox::{PostgresInbox, SqliteInbox},
    relay::{self, Backlog, RelayConfig, RelayHandle},
    transaction::{self, DatabaseTransaction},
    value::{Row, Value},
};

/// herald-sql and the inbox on SQLite or PostgreSQL, whichever a URL names: for
/// services whose database is configuration, not code. Cheap to clone.
///
/// Its statements ([`execute`](Self::execute), [`fetch_all`](Self::fetch_all),
/// transactions from [`begin`](Self::begin)) take [`Value`]s and return [`Row`]s, so
/// they compile once for both databases; a consumer's unit of work is a
/// [`TransactionalHandler`](crate::TransactionalHandler). Code that needs the typed pool
/// or transaction matches on the variant (each arm is compiled for its database).
///
/// ```
/// use herald_sql::Database;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let db = Database::connect(&format!("sqlite:{}", dir.path().join("shop.db").display())).await?;
/// assert_eq!(db.backend(), "sqlite");
/// assert!(Database::connect("mysql://localhost/shop").await.is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Database {
    /// SQLite.
    Sqlite {
        /// herald-sql on the pool.
        db: HeraldDb<Sqlite>,
        /// The inbox (`herald_inbox`) on the same pool.
        inbox: SqliteInbox,
    },
    /// PostgreSQL.
    Postgres {
        /// herald-sql on the pool.
        db: HeraldDb<Postgres>,
        /// The inbox (`herald_inbox`) on the same pool.
        inbox: PostgresInbox,
    },
}

/// What a URL names: a SQLite file or a PostgreSQL server.
#[derive(Debug, PartialEq, Eq)]
enum Target<'a> {
    Sqlite(&'a str),
    Postgres(&'a str),
}

/// Reads `url`: `postgres://...` or `postgresql://...`; `sqlite://PATH`, `sqlite:PATH` or
/// a plain file path (no `scheme:` part).
fn parse(url: &str) -> Result<Target<'_>> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Target::Postgres(url));
    }
    let path = if let Some(path) = url.strip_prefix("sqlite://") {
        path
    } else if let Some(path) = url.strip_prefix("sqlite:") {
        path
    } else if has_scheme(url) {
        return Err(Error::InvalidInput(format!(
            "database URL {url:?}: expected postgres://..., postgresql://..., sqlite:PATH, \
             sqlite://PATH or a file path"
        )));
    } else {
        url
    };
    if path.is_empty() {
        return Err(Error::InvalidInput(format!(
            "database URL {url:?} names no SQLite file"
        )));
    }
    Ok(Target::Sqlite(path))
}

/// Whether `url` starts with a URL scheme (`letters:`), other than a Windows drive
/// letter (`C:\...`).
fn has_scheme(url: &str) -> bool {
    match url.split_once(':') {
        Some((scheme, _)) => {
            scheme.len() > 1
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

impl Database {
    /// Connects to the database `url` names and migrates herald-sql's tables and the
    /// inbox's: `postgres://user@host:port/db` (or `postgresql://`), or a SQLite file as
    /// `sqlite:PATH`, `sqlite://PATH` or a plain path (opened as
    /// [`HeraldDb::open`] does, created if missing). Anything else is
    /// [`Error::InvalidInput`].
    pub async fn connect(url: &str) -> Result<Self> {
        match parse(url)? {
            Target::Sqlite(path) => Self::sqlite(HeraldDb::open(path).await?).await,
            Target::Postgres(url) => Self::postgres(HeraldDb::connect(url).await?).await,
        }
    }

    /// On an open SQLite `db` (its pool may be the service's own): adds the inbox.
    pub async fn sqlite(db: HeraldDb<Sqlite>) -> Result<Self> {
        let inbox = SqliteInbox::new(db.pool().clone()).await?;
        Ok(Self::Sqlite { db, inbox })
    }

    /// On a PostgreSQL `db` (its pool may be the service's own, e.g. with a
    /// `search_path`): adds the inbox.
    pub async fn postgres(db: HeraldDb<Postgres>) -> Result<Self> {
        let inbox = PostgresInbox::new(db.pool().clone()).await?;
        Ok(Self::Postgres { db, inbox })
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres { .. } => "postgres",
        }
    }

    /// The inbox of this database, for
    /// [`RouterBuilder::inbox`](herald::router::RouterBuilder::inbox).
    pub fn inbox(&self) -> Arc<dyn Inbox> {
        match self {
            Self::Sqlite { inbox, .. } => Arc::new(inbox.clone()),
            Self::Postgres { inbox, .. } => Arc::new(inbox.clone()),
        }
    }

    /// Begins a writing transaction ([`HeraldDb::begin`]: on SQLite it takes the write
    /// lock at once).
    pub async fn begin(&self) -> Result<DatabaseTransaction> {
        Ok(match self {
            Self::Sqlite { db, .. } => DatabaseTransaction::Sqlite(db.begin().await?),
            Self::Postgres { db, .. } => DatabaseTransaction::Postgres(db.begin().await?),
        })
    }

    /// Runs `sql` with `args` on the pool (its own transaction); rows affected.
    pub async fn execute(&self, sql: &str, args: &[Value]) -> Result<u64> {
        match self {
            Self::Sqlite { db, .. } => {
                transaction::execute::<Sqlite>(&mut *acquire(db).await?, sql, args).await
            }
            Self::Postgres { db, .. } => {
                transaction::execute::<Postgres>(&mut *acquire(db).await?, sql, args).await
            }
        }
    }

    /// Every row of `sql` with `args`, read on the pool.
    pub async fn fetch_all(&self, sql: &str, args: &[Value]) -> Result<Vec<Row>> {
        match self {
            Self::Sqlite { db, .. } => {
                transaction::fetch_all::<Sqlite>(&mut *acquire(db).await?, sql, args).await
            }
            Self::Postgres { db, .. } => {
                transaction::fetch_all::<Postgres>(&mut *acquire(db).await?, sql, args).await
            }
        }
    }

    /// The first row of `sql` with `args`, if any.
    pub async fn fetch_optional(&self, sql: &str, args: &[Value]) -> Result<Option<Row>> {
        Ok(self.fetch_all(sql, args).await?.into_iter().next())
    }

    /// The first row of `sql` with `args`; no row is an error (`sqlx::Error::RowNotFound`).
    pub async fn fetch_one(&self, sql: &str, args: &[Value]) -> Result<Row> {
        transaction::first_row(self.backend(), sql, self.fetch_all(sql, args).await?)
    }

    /// Starts a [`Relay`](crate::Relay) that publishes this database's outbox through
    /// `publisher` with `config`.
    pub fn start_relay<P: Publisher>(&self, publisher: P, config: RelayConfig) -> RelayHandle {
        match self {
            Self::Sqlite { db, .. } => db.relay(publisher).with_config(config).start(),
            Self::Postgres { db, .. } => db.relay(publisher).with_config(config).start(),
        }
    }

    /// Outbox rows not yet published, in the whole database.
    pub async fn outbox_backlog(&self) -> Result<Backlog> {
        match self {
            Self::Sqlite { db, .. } => relay::backlog(db.pool()).await,
            Self::Postgres { db, .. } => relay::backlog(db.pool()).await,
        }
    }

    /// Records `key` in the inbox inside `tx`; `false` when it was already there.
    pub(crate) async fn mark_in(
        &self,
        tx: &mut DatabaseTransaction,
        key: InboxKey<'_>,
    ) -> std::result::Result<bool, InboxError> {
        match (self, tx) {
            (Self::Sqlite { inbox, .. }, DatabaseTransaction::Sqlite(tx)) => {
                inbox.mark_processed_in(tx, key).await
            }
            (Self::Postgres { inbox, .. }, DatabaseTransaction::Postgres(tx)) => {
                inbox.mark_processed_in(tx, key).await
            }
            (db, tx) => Err(InboxError {
                message: format!(
                    "a {} transaction given to the {} database's inbox",
                    tx.backend(),
                    db.backend()
                ),
            }),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match self {
            Self::Sqlite { db, .. } => db.pool().close().await,
            Self::Postgres { db, .. } => db.pool().close().await,
        }
    }
}

/// A connection of `db`'s pool.
async fn acquire<B: crate::Backend>(db: &HeraldDb<B>) -> Result<sqlx::pool::PoolConnection<B>> {
    db.pool()
        .acquire()
        .await
        .map_err(Error::db(B::BACKEND, "acquiring a connection"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_a_backend() {
        assert_eq!(
            parse("sqlite:/tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db")
        );
        assert_eq!(
            parse("sqlite:///tmp/a.db").unwrap(),
            Target::Sqlite("/tmp/a.db")
        );
        assert_eq!(parse("sqlite://a.db").unwrap(), Target::Sqlite("a.db"));
        assert_eq!(parse("data/a.db").unwrap(), Target::Sqlite("data/a.db"));
        assert_eq!(
            parse("C:\\data\\a.db").unwrap(),
            Target::Sqlite("C:\\data\\a.db")
        );
        assert_eq!(
            parse("postgres://u@h:5432/d").unwrap(),
            Target::Postgres("postgres://u@h:5432/d")
        );
        assert_eq!(
            parse("postgresql://u@h/d").unwrap(),
            Target::Postgres("postgresql://u@h/d")
        );
    }

    #[test]
    fn other_urls_are_refused_clearly() {
        for bad in [
            "mysql://h/d",
            "redis://h",
            "http://h/x",
            "sqlite:",
            "sqlite://",
            "",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidInput(_)), "{bad:?}: {err}");
        }
        let err = parse("mysql://h/d").unwrap_err().to_string();
        assert!(
            err.contains("mysql://h/d") && err.contains("postgres://"),
            "{err}"
        );
    }
}
