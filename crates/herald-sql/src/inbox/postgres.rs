//! [`PostgresInbox`]: processed ids in a PostgreSQL table, markable in the handler's
//! transaction.

use std::time::SystemTime;

use sqlx::{
    PgPool, Postgres, Transaction,
    postgres::{PgPoolOptions, PgQueryResult},
};

use herald::inbox::{InboxError, InboxKey};

use super::{
    DEFAULT_TABLE, INBOX, check_table_name,
    sql::{Dialect, SqlInbox, Statements, impl_inbox},
    store_error, unix_seconds,
};

/// An inbox in a PostgreSQL table (`herald_inbox` in the connection's search path unless
/// named otherwise), created on connect if missing.
///
/// Use the same database as the handler's own data, and record the event in the
/// handler's transaction with [`mark_processed_in`](Self::mark_processed_in): the effect
/// and the mark then commit together or not at all. Two transactions recording the same
/// key cannot both succeed: the second waits on the first's row lock and, once the first
/// commits, inserts nothing.
///
/// ```no_run
/// use std::sync::Arc;
/// use herald::{Envelope, HandlerContext, HandlerError, MemoryTransport, Router};
/// use herald_sql::PostgresInbox;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let inbox = PostgresInbox::connect("postgres://postgres@127.0.0.1:5432/shop").await?;
/// let db = inbox.clone();
/// let router = Router::builder(MemoryTransport::new(), "billing")
///     .inbox(Arc::new(inbox))
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
///             sqlx::query("INSERT INTO invoices (order_id) VALUES ($1)")
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
/// # router.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresInbox(SqlInbox<PostgresDialect>);

/// PostgreSQL's SQL: `$n` placeholders, `processed_at` a `TIMESTAMPTZ` bound as seconds
/// since the Unix epoch through `to_timestamp`.
struct PostgresDialect;

impl Dialect for PostgresDialect {
    type Db = Postgres;
    type Stamp = f64;
    const NAME: &'static str = "postgres";

    fn stamp(at: SystemTime) -> f64 {
        unix_seconds(at)
    }

    fn statements(table: &str) -> Statements {
        Statements {
            exists: format!("SELECT 1 FROM {table} WHERE group_id = $1 AND event_id = $2"),
            insert: format!(
                "INSERT INTO {table} (group_id, event_id, processed_at)
                 VALUES ($1, $2, to_timestamp($3))
                 ON CONFLICT DO NOTHING"
            ),
            purge: format!("DELETE FROM {table} WHERE processed_at < to_timestamp($1)"),
        }
    }

    fn rows_affected(done: &PgQueryResult) -> u64 {
        done.rows_affected()
    }
}

impl PostgresInbox {
    /// The table used unless another is named.
    pub const DEFAULT_TABLE: &'static str = DEFAULT_TABLE;

    /// Connects a pool to `url` (`postgres://user@host:port/db`; TLS through rustls when
    /// the URL asks for it) and creates the table.
    pub async fn connect(url: &str) -> Result<Self, InboxError> {
        let pool = PgPoolOptions::new()
            .connect(url)
            .await
            .map_err(|e| store_error("postgres", "connecting", e))?;
        Self::new(pool).await
    }

    /// An inbox in `pool`'s database, table [`DEFAULT_TABLE`](Self::DEFAULT_TABLE).
    pub async fn new(pool: PgPool) -> Result<Self, InboxError> {
        Self::with_table(pool, Self::DEFAULT_TABLE).await
    }

    /// An inbox in table `table` (`name` or `schema.name`, each part
    /// `[A-Za-z_][A-Za-z0-9_]*`, spliced into the SQL unquoted, so folded to lower
    /// case). The schema must exist.
    ///
    /// Creating the table takes a transaction-scoped advisory lock named after it, so
    /// services starting together do not race on `CREATE TABLE IF NOT EXISTS`.
    ///
    /// The default table is created by the migration runner ([`INBOX`](crate::inbox::INBOX));
    /// another is created with `CREATE TABLE IF NOT EXISTS`.
    pub async fn with_table(pool: PgPool, table: &str) -> Result<Self, InboxError> {
        check_table_name(table, true)?;
        if table == DEFAULT_TABLE {
            crate::migrate::apply(&pool, &INBOX)
                .await
                .map_err(|e| store_error("postgres", &format!("creating {table}"), e))?;
            return Ok(Self(SqlInbox::new(pool, table)));
        }
        let name = table.rsplit('.').next().unwrap_or(table);
        let fail = |e| store_error("postgres", &format!("creating {table}"), e);
        let mut tx = pool.begin().await.map_err(fail)?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("herald_inbox_ddl:{table}"))
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                group_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                processed_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (group_id, event_id)
            )"
        );
        let index =
            format!("CREATE INDEX IF NOT EXISTS {name}_processed_at ON {table} (processed_at)");
        for ddl in [create, index] {
            sqlx::query(&ddl).execute(&mut *tx).await.map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
        Ok(Self(SqlInbox::new(pool, table)))
    }

    /// The pool, for the handler's own queries and transactions.
    pub fn pool(&self) -> &PgPool {
        self.0.pool()
    }

    /// Records `key` inside the caller's transaction; `true` if it was not recorded
    /// before. On `false` the event is a duplicate: roll back (or skip the effect) and
    /// return `Ok`. After committing, call
    /// [`HandlerContext::mark_inbox_recorded`](herald::HandlerContext::mark_inbox_recorded).
    ///
    /// A concurrent transaction recording the same key blocks until this one ends, then
    /// gets `false` if it committed (and `true` if it rolled back).
    pub async fn mark_processed_in(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        key: InboxKey<'_>,
    ) -> Result<bool, InboxError> {
        self.0.insert(tx, key).await
    }
}

impl_inbox!(PostgresInbox);
