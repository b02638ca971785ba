//! [`SqliteInbox`]: processed ids in a SQLite table, markable in the handler's transaction.

use std::{path::Path, time::SystemTime};

use sqlx::{
    Sqlite, SqlitePool, Transaction,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteQueryResult},
};

use herald::inbox::{InboxError, InboxKey};

use super::{
    DEFAULT_TABLE, INBOX, check_table_name,
    sql::{Dialect, SqlInbox, Statements, impl_inbox},
    store_error, unix_millis,
};

/// An inbox in a SQLite table (`herald_inbox` unless named otherwise), created on
/// connect if missing. `processed_at` holds milliseconds since the Unix epoch.
///
/// Use the same database as the handler's own data, and record the event in the
/// handler's transaction with [`mark_processed_in`](Self::mark_processed_in): the effect
/// and the mark then commit together or not at all, so a crash, a failed handler or a
/// concurrent copy of the event cannot produce the effect twice.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use herald::{
///     Envelope, HandlerContext, HandlerError, MemoryTransport, Router,
///     transport::{Admin, PublisherExt, TopicPartition},
/// };
/// use herald_sql::SqliteInbox;
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let dir = tempfile::tempdir()?;
/// let inbox = SqliteInbox::open(dir.path().join("billing.db")).await?;
/// sqlx::query("CREATE TABLE invoices (order_id TEXT NOT NULL)")
///     .execute(inbox.pool())
///     .await?;
///
/// let bus = MemoryTransport::new();
/// bus.create_topic("orders", 1).await?;
/// let db = inbox.clone();
/// let router = Router::builder(bus.clone(), "billing")
///     .inbox(Arc::new(inbox.clone()))
///     .on_type("orders", "shop.order.placed", move |event: Envelope, ctx: HandlerContext| {
///         let db = db.clone();
///         async move {
///             let mut tx = db.pool().begin().await.map_err(HandlerError::transient)?;
///             let new = db
///                 .mark_processed_in(&mut tx, ctx.inbox_key())
///                 .await
///                 .map_err(HandlerError::transient)?;
///             if !new {
///                 return Ok(()); // a copy already committed; dropping `tx` rolls back
///             }
///             sqlx::query("INSERT INTO invoices (order_id) VALUES (?)")
///                 .bind(event.key_str())
///                 .execute(&mut *tx)
///                 .await
///                 .map_err(HandlerError::transient)?;
///             tx.commit().await.map_err(HandlerError::transient)?;
///             ctx.mark_inbox_recorded();
///             Ok(())
///         }
///     })
///     .start()
///     .await?;
///
/// // The same event twice, as a producer retry would publish it.
/// let placed = Envelope::new("urn:shop", "shop.order.placed", "{}").with_key("o-1");
/// bus.publish_envelopes("orders", &[placed.clone(), placed]).await?;
/// while bus.committed("billing", &TopicPartition::new("orders", 0)) != Some(2) {
///     tokio::time::sleep(Duration::from_millis(10)).await;
/// }
/// router.shutdown().await?;
///
/// let invoices: i64 = sqlx::query_scalar("SELECT count(*) FROM invoices")
///     .fetch_one(inbox.pool())
///     .await?;
/// assert_eq!(invoices, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SqliteInbox(SqlInbox<SqliteDialect>);

/// SQLite's SQL: `?` placeholders, `processed_at` in ms since the Unix epoch.
struct SqliteDialect;

impl Dialect for SqliteDialect {
    type Db = Sqlite;
    type Stamp = i64;
    const NAME: &'static str = "sqlite";

    fn stamp(at: SystemTime) -> i64 {
        unix_millis(at)
    }

    fn statements(table: &str) -> Statements {
        Statements {
            exists: format!("SELECT 1 FROM {table} WHERE group_id = ? AND event_id = ?"),
            insert: format!(
                "INSERT INTO {table} (group_id, event_id, processed_at) VALUES (?, ?, ?)
                 ON CONFLICT DO NOTHING"
            ),
            purge: format!("DELETE FROM {table} WHERE processed_at < ?"),
        }
    }

    fn rows_affected(done: &SqliteQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl SqliteInbox {
    /// The table used unless another is named.
    pub const DEFAULT_TABLE: &'static str = DEFAULT_TABLE;

    /// Opens (creating if missing) the database file at `path` in WAL mode, with a pool
    /// of connections that wait up to 5 s for another writer, and creates the table.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, InboxError> {
        let options = SqliteConnectOptions::new()
            .filename(path.as_ref())
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(std::time::Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .connect_with(options)
            .await
            .map_err(|e| {
                store_error("sqlite", &format!("opening {}", path.as_ref().display()), e)
            })?;
        Self::new(pool).await
    }

    /// An inbox in `pool`'s database, table [`DEFAULT_TABLE`](Self::DEFAULT_TABLE).
    pub async fn new(pool: SqlitePool) -> Result<Self, InboxError> {
        Self::with_table(pool, Self::DEFAULT_TABLE).await
    }

    /// An inbox in table `table` of `pool`'s database: a plain identifier
    /// (`[A-Za-z_][A-Za-z0-9_]*`), spliced into the SQL unquoted.
    ///
    /// The default table is created by the migration runner ([`INBOX`](crate::inbox::INBOX));
    /// another is created with `CREATE TABLE IF NOT EXISTS`.
    pub async fn with_table(pool: SqlitePool, table: &str) -> Result<Self, InboxError> {
        check_table_name(table, false)?;
        if table == DEFAULT_TABLE {
            crate::migrate::apply(&pool, &INBOX)
                .await
                .map_err(|e| store_error("sqlite", &format!("creating {table}"), e))?;
            return Ok(Self(SqlInbox::new(pool, table)));
        }
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                group_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                processed_at INTEGER NOT NULL,
                PRIMARY KEY (group_id, event_id)
            ) WITHOUT ROWID"
        );
        let index =
            format!("CREATE INDEX IF NOT EXISTS {table}_processed_at ON {table} (processed_at)");
        for ddl in [create, index] {
            sqlx::query(&ddl)
                .execute(&pool)
                .await
                .map_err(|e| store_error("sqlite", &format!("creating {table}"), e))?;
        }
        Ok(Self(SqlInbox::new(pool, table)))
    }

    /// The pool, for the handler's own queries and transactions.
    pub fn pool(&self) -> &SqlitePool {
        self.0.pool()
    }

    /// Records `key` inside the caller's transaction; `true` if it was not recorded
    /// before. On `false` the event is a duplicate: roll back (or skip the effect) and
    /// return `Ok`. After committing, call
    /// [`HandlerContext::mark_inbox_recorded`](herald::HandlerContext::mark_inbox_recorded).
    ///
    /// A concurrent transaction recording the same key waits for the first to finish
    /// (SQLite has one writer at a time) and then gets `false`.
    pub async fn mark_processed_in(
        &self,
        tx: &mut Transaction<'_, Sqlite>,
        key: InboxKey<'_>,
    ) -> Result<bool, InboxError> {
        self.0.insert(tx, key).await
    }
}

impl_inbox!(SqliteInbox);
