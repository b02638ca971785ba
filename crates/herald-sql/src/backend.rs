//! One API over SQLite and PostgreSQL: [`Backend`], implemented for [`sqlx::Sqlite`] and
//! [`sqlx::Postgres`].
//!
//! The logic of the outbox, relay, event store and projections is written once, generic
//! over `DB: Backend`. What differs between the databases is small and lives here: the
//! schema (column types, PostgreSQL's NOTIFY trigger), how a writing transaction starts
//! (SQLite's `BEGIN IMMEDIATE`), row locks (`FOR UPDATE` on PostgreSQL; SQLite has one
//! writer) and waking up (LISTEN/NOTIFY or polling). Every statement is written once, in
//! the `impl_ops!` macro below, which instantiates it for each database's concrete types;
//! see `docs/adr/0009-sql-backend-abstraction.md`.
// why: the sealed-trait pattern. `Ops` and the row types are `pub` so that `Backend`
// (public) may name them, in a module users cannot reach.
#![allow(unreachable_pub)]

use std::{future::Future, time::Duration};

use sqlx::{Pool, Postgres, Sqlite, Transaction};

use crate::{
    value::{Row as ValueRow, Value},
    version::ExpectedVersion,
    wake::Waker,
};

mod coordination;

/// A database herald-sql runs on: [`sqlx::Sqlite`] or [`sqlx::Postgres`]. Sealed.
///
/// Every herald-sql type is generic over it, and users hold the database's own
/// transaction type: `&mut sqlx::Transaction<'_, Sqlite>` or `<'_, Postgres>`.
pub trait Backend: Ops + coordination::Coordination + HandlerSql {}

impl Backend for Sqlite {}
impl Backend for Postgres {}

/// A row to insert into `herald_events`.
pub struct NewRow {
    pub slot: i64,
    pub topic: Option<String>,
    pub stream_id: Option<String>,
    pub version: Option<i64>,
    pub event_id: String,
    pub event_type: String,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<u8>,
    pub data: Vec<u8>,
    pub recorded_at: i64,
}

/// A row read from `herald_events`.
pub struct Row {
    pub position: i64,
    pub slot: i64,
    pub topic: Option<String>,
    pub stream_id: Option<String>,
    pub version: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<u8>,
    pub data: Vec<u8>,
    pub recorded_at: i64,
}

/// What differs between the databases beyond SQL text.
pub trait Dialect: sqlx::Database {
    /// `sqlite` or `postgres`, for errors and metrics.
    const BACKEND: &'static str;
    /// `SELECT position FROM herald_checkpoints WHERE name = $1`, locking the row where
    /// the database has row locks.
    const LOCK_CHECKPOINT: &'static str;

    /// Begins a transaction that will write: on SQLite `BEGIN IMMEDIATE`, so it takes the
    /// write lock up front instead of failing to upgrade a read snapshot later.
    fn begin_write(
        pool: &Pool<Self>,
    ) -> impl Future<Output = Result<Transaction<'static, Self>, sqlx::Error>> + Send;

    /// Serialises migrations of one component's schema across processes (PostgreSQL: an
    /// advisory transaction lock on `"<component> migrate <schema>"`; SQLite: the write
    /// lock `begin_write` already holds).
    fn lock_migrations(
        conn: &mut Self::Connection,
        component: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// What wakes a relay or projection when events are appended: on PostgreSQL a
    /// LISTEN on `herald_events` (polling every `poll` as a fallback), on SQLite polling.
    fn waker(
        pool: &Pool<Self>,
        poll: Duration,
    ) -> impl Future<Output = Result<Waker, sqlx::Error>> + Send;
}

impl Dialect for Sqlite {
    const BACKEND: &'static str = "sqlite";
    const LOCK_CHECKPOINT: &'static str = "SELECT position FROM herald_checkpoints WHERE name = $1";

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin_with("BEGIN IMMEDIATE").await
    }

    async fn lock_migrations(_: &mut Self::Connection, _: &str) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn waker(_: &Pool<Self>, poll: Duration) -> Result<Waker, sqlx::Error> {
        Ok(Waker::poll(poll))
    }
}

impl Dialect for Postgres {
    const BACKEND: &'static str = "postgres";
    const LOCK_CHECKPOINT: &'static str =
        "SELECT position FROM herald_checkpoints WHERE name = $1 FOR UPDATE";

    async fn begin_write(pool: &Pool<Self>) -> Result<Transaction<'static, Self>, sqlx::Error> {
        pool.begin().await
    }

    async fn lock_migrations(
        conn: &mut Self::Connection,
        component: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1 || ' migrate ' || current_schema()))")
            .bind(component)
            .execute(conn)
            .await
            .map(drop)
    }

    async fn waker(pool: &Pool<Self>, poll: Duration) -> Result<Waker, sqlx::Error> {
        Waker::listen(pool, poll).await
    }
}

/// Columns of a [`Row`], in its field order.
pub(crate) const COLUMNS: &str =
    "position, slot, topic, stream_id, version, msg_key, headers, data, recorded_at";

/// The statements, written once and instantiated per database.
pub trait Ops: Dialect {
    fn run_ddl(
        conn: &mut Self::Connection,
        sql: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn applied_migrations(
        conn: &mut Self::Connection,
        table: &str,
    ) -> impl Future<Output = Result<Vec<i64>, sqlx::Error>> + Send;
    fn record_migration(
        conn: &mut Self::Connection,
        table: &str,
        version: i64,
        description: &str,
        now: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// Takes `n` global positions; returns the last. The `herald_log_head` row stays
    /// locked until the transaction ends, which makes positions commit-ordered.
    fn allocate(
        conn: &mut Self::Connection,
        n: i64,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    fn insert_rows(
        conn: &mut Self::Connection,
        first: i64,
        rows: &[NewRow],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    /// Moves a stream `n` versions on if `expected` holds; the new version, or `None`.
    fn bump_stream(
        conn: &mut Self::Connection,
        stream: &str,
        expected: ExpectedVersion,
        n: i64,
        now: i64,
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;
    /// `(version, deleted)` of a stream.
    fn stream_state(
        conn: &mut Self::Connection,
        stream: &str,
    ) -> impl Future<Output = Result<Option<(i64, bool)>, sqlx::Error>> + Send;
    /// Tombstones a stream if `expected` holds; whether it did.
    fn tombstone(
        conn: &mut Self::Connection,
        stream: &str,
        expected: ExpectedVersion,
        now: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
    fn read_stream(
        conn: &mut Self::Connection,
        stream: &str,
        from: i64,
        backward: bool,
        until_ms: i64,
        max: i64,
    ) -> impl Future<Output = Result<Vec<Row>, sqlx::Error>> + Send;
    fn read_all(
        conn: &mut Self::Connection,
        after: i64,
        max: i64,
    ) -> impl Future<Output = Result<Vec<Row>, sqlx::Error>> + Send;
    /// Position and time of the last event-store event.
    fn last_event(
        conn: &mut Self::Connection,
    ) -> impl Future<Output = Result<Option<(i64, i64)>, sqlx::Error>> + Send;
    /// The time of the first event-store event after `after`.
    fn next_event_time(
        conn: &mut Self::Connection,
        after: i64,
    ) -> impl Future<Output = Result<Option<i64>, sqlx::Error>> + Send;
    fn head(conn: &mut Self::Connection) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    fn save_snapshot(
        conn: &mut Self::Connection,
        stream: &str,
        version: i64,
        schema: i64,
        state: &[u8],
        now: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn load_snapshot(
        conn: &mut Self::Connection,
        stream: &str,
    ) -> impl Future<Output = Result<Option<(i64, i64, Vec<u8>)>, sqlx::Error>> + Send;
}

pub(crate) fn to_row<R: sqlx::Row>(r: &R) -> Result<Row, sqlx::Error>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    i64: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    String: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: for<'a> sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Row {
        position: r.try_get("position")?,
        slot: r.try_get("slot")?,
        topic: r.try_get("topic")?,
        stream_id: r.try_get("stream_id")?,
        version: r.try_get("version")?,
        key: r.try_get("msg_key")?,
        headers: r.try_get("headers")?,
        data: r.try_get("data")?,
        recorded_at: r.try_get("recorded_at")?,
    })
}

macro_rules! impl_ops {
    ($db:ty) => {
        impl Ops for $db {
            async fn run_ddl(conn: &mut Self::Connection, sql: &str) -> Result<(), sqlx::Error> {
                sqlx::query(sql).persistent(false).execute(conn).await.map(drop)
            }

            async fn applied_migrations(conn: &mut Self::Connection, table: &str) -> Result<Vec<i64>, sqlx::Error> {
                sqlx::query_scalar(&format!("SELECT version FROM {table} ORDER BY version"))
                    .persistent(false)
                    .fetch_all(conn)
                    .await
            }

            async fn record_migration(conn: &mut Self::Connection, table: &str, version: i64, description: &str, now: i64) -> Result<(), sqlx::Error> {
                sqlx::query(&format!("INSERT INTO {table} (version, description, applied_at) VALUES ($1, $2, $3)"))
                    .persistent(false)
                    .bind(version)
                    .bind(description)
                    .bind(now)
                    .execute(conn)
                    .await
                    .map(drop)
            }

            async fn allocate(conn: &mut Self::Connection, n: i64) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar("UPDATE herald_log_head SET position = position + $1 WHERE id = 1 RETURNING position")
                    .bind(n)
                    .fetch_one(conn)
                    .await
            }

            async fn insert_rows(conn: &mut Self::Connection, first: i64, rows: &[NewRow]) -> Result<(), sqlx::Error> {
                // Bounded by SQLite's 32,766 bound parameters per statement (11 a row).
                const CHUNK: usize = 1000;
                for (c, chunk) in rows.chunks(CHUNK).enumerate() {
                    let base = first + (c * CHUNK) as i64;
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO herald_events (position, slot, topic, stream_id, version, event_id, event_type, msg_key, headers, data, recorded_at) ",
                    );
                    q.push_values(chunk.iter().enumerate(), |mut b, (i, r)| {
                        b.push_bind(base + i as i64)
                            .push_bind(r.slot)
                            .push_bind(r.topic.as_deref())
                            .push_bind(r.stream_id.as_deref())
                            .push_bind(r.version)
                            .push_bind(r.event_id.as_str())
                            .push_bind(r.event_type.as_str())
                            .push_bind(r.key.as_deref())
                            .push_bind(r.headers.as_slice())
                            .push_bind(r.data.as_slice())
                            .push_bind(r.recorded_at);
                    });
                    q.build().execute(&mut *conn).await?;
                }
                Ok(())
            }

            async fn bump_stream(conn: &mut Self::Connection, stream: &str, expected: ExpectedVersion, n: i64, now: i64) -> Result<Option<i64>, sqlx::Error> {
                let query = match expected {
                    ExpectedVersion::Any => sqlx::query_scalar(
                        "INSERT INTO herald_streams (stream_id, version, deleted, updated_at) VALUES ($1, $2, FALSE, $3)
                         ON CONFLICT (stream_id) DO UPDATE
                         SET version = herald_streams.version + excluded.version, updated_at = excluded.updated_at
                         WHERE NOT herald_streams.deleted
                         RETURNING version",
                    ),
                    ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => sqlx::query_scalar(
                        "INSERT INTO herald_streams (stream_id, version, deleted, updated_at) VALUES ($1, $2, FALSE, $3)
                         ON CONFLICT (stream_id) DO NOTHING
                         RETURNING version",
                    ),
                    ExpectedVersion::Exact(v) => {
                        return sqlx::query_scalar(
                            "UPDATE herald_streams SET version = version + $2, updated_at = $3
                             WHERE stream_id = $1 AND version = $4 AND NOT deleted
                             RETURNING version",
                        )
                        .bind(stream)
                        .bind(n)
                        .bind(now)
                        .bind(v as i64)
                        .fetch_optional(conn)
                        .await;
                    }
                };
                query.bind(stream).bind(n).bind(now).fetch_optional(conn).await
            }

            async fn stream_state(conn: &mut Self::Connection, stream: &str) -> Result<Option<(i64, bool)>, sqlx::Error> {
                sqlx::query_as("SELECT version, deleted FROM herald_streams WHERE stream_id = $1")
                    .bind(stream)
                    .fetch_optional(conn)
                    .await
            }

            async fn tombstone(conn: &mut Self::Connection, stream: &str, expected: ExpectedVersion, now: i64) -> Result<bool, sqlx::Error> {
                let done = match expected {
                    ExpectedVersion::Any => sqlx::query(
                        "INSERT INTO herald_streams (stream_id, version, deleted, updated_at) VALUES ($1, 0, TRUE, $2)
                         ON CONFLICT (stream_id) DO UPDATE SET deleted = TRUE, updated_at = excluded.updated_at
                         WHERE NOT herald_streams.deleted",
                    )
                    .bind(stream)
                    .bind(now),
                    ExpectedVersion::NoStream | ExpectedVersion::Exact(0) => sqlx::query(
                        "INSERT INTO herald_streams (stream_id, version, deleted, updated_at) VALUES ($1, 0, TRUE, $2)
                         ON CONFLICT (stream_id) DO NOTHING",
                    )
                    .bind(stream)
                    .bind(now),
                    ExpectedVersion::Exact(v) => sqlx::query(
                        "UPDATE herald_streams SET deleted = TRUE, updated_at = $2
                         WHERE stream_id = $1 AND version = $3 AND NOT deleted",
                    )
                    .bind(stream)
                    .bind(now)
                    .bind(v as i64),
                }
                .execute(conn)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn read_stream(conn: &mut Self::Connection, stream: &str, from: i64, backward: bool, until_ms: i64, max: i64) -> Result<Vec<Row>, sqlx::Error> {
                let sql = if backward {
                    const_format!("SELECT {COLUMNS} FROM herald_events WHERE stream_id = $1 AND version <= $2 AND recorded_at <= $3 ORDER BY version DESC LIMIT $4")
                } else {
                    const_format!("SELECT {COLUMNS} FROM herald_events WHERE stream_id = $1 AND version >= $2 AND recorded_at <= $3 ORDER BY version LIMIT $4")
                };
                let rows = sqlx::query(sql).bind(stream).bind(from).bind(until_ms).bind(max).fetch_all(conn).await?;
                rows.iter().map(to_row).collect()
            }

            async fn read_all(conn: &mut Self::Connection, after: i64, max: i64) -> Result<Vec<Row>, sqlx::Error> {
                let rows = sqlx::query(const_format!("SELECT {COLUMNS} FROM herald_events WHERE position > $1 AND stream_id IS NOT NULL ORDER BY position LIMIT $2"))
                    .bind(after)
                    .bind(max)
                    .fetch_all(conn)
                    .await?;
                rows.iter().map(to_row).collect()
            }

            async fn last_event(conn: &mut Self::Connection) -> Result<Option<(i64, i64)>, sqlx::Error> {
                sqlx::query_as("SELECT position, recorded_at FROM herald_events WHERE stream_id IS NOT NULL ORDER BY position DESC LIMIT 1")
                    .fetch_optional(conn)
                    .await
            }

            async fn next_event_time(conn: &mut Self::Connection, after: i64) -> Result<Option<i64>, sqlx::Error> {
                sqlx::query_scalar("SELECT recorded_at FROM herald_events WHERE position > $1 AND stream_id IS NOT NULL ORDER BY position LIMIT 1")
                    .bind(after)
                    .fetch_optional(conn)
                    .await
            }

            async fn head(conn: &mut Self::Connection) -> Result<i64, sqlx::Error> {
                sqlx::query_scalar("SELECT position FROM herald_log_head WHERE id = 1").fetch_one(conn).await
            }

            async fn save_snapshot(conn: &mut Self::Connection, stream: &str, version: i64, schema: i64, state: &[u8], now: i64) -> Result<(), sqlx::Error> {
                sqlx::query(
                    "INSERT INTO herald_snapshots (stream_id, version, schema_version, state, taken_at) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (stream_id) DO UPDATE
                     SET version = excluded.version, schema_version = excluded.schema_version, state = excluded.state, taken_at = excluded.taken_at
                     WHERE excluded.version >= herald_snapshots.version OR excluded.schema_version <> herald_snapshots.schema_version",
                )
                .bind(stream)
                .bind(version)
                .bind(schema)
                .bind(state)
                .bind(now)
                .execute(conn)
                .await
                .map(drop)
            }

            async fn load_snapshot(conn: &mut Self::Connection, stream: &str) -> Result<Option<(i64, i64, Vec<u8>)>, sqlx::Error> {
                sqlx::query_as("SELECT version, schema_version, state FROM herald_snapshots WHERE stream_id = $1")
                    .bind(stream)
                    .fetch_optional(conn)
                    .await
            }

        }
    };
}

/// `format!` of a constant string, computed once.
macro_rules! const_format {
    ($fmt:literal) => {{
        static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| format!($fmt));
        SQL.as_str()
    }};
}
pub(crate) use const_format;

impl_ops!(Sqlite);
impl_ops!(Postgres);

/// Statements with [`Value`] arguments and [`ValueRow`] results, for code that picks
/// its database at run time ([`DatabaseTransaction`](crate::DatabaseTransaction),
/// [`UnitOfWork`](crate::UnitOfWork)): written once below for each database's concrete
/// types, so such code needs no sqlx bounds.
pub trait HandlerSql: Dialect {
    /// Runs `sql` with `args`; rows affected.
    fn execute_values(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Value],
    ) -> impl Future<Output = Result<u64, sqlx::Error>> + Send;
    /// Every row of `sql` with `args`, each column as the [`Value`] it holds.
    fn fetch_rows(
        conn: &mut Self::Connection,
        sql: &str,
        args: &[Value],
    ) -> impl Future<Output = Result<Vec<ValueRow>, sqlx::Error>> + Send;
}

/// SQL `NULL` of no type on PostgreSQL (OID 0, "unspecified"): the server takes the
/// type from where the parameter is used, so one `Value::Null` fits a column of any
/// type. (A typed null, e.g. `Option<String>`, is refused by a `BIGINT` column.)
struct UntypedNull;

impl sqlx::Type<Postgres> for UntypedNull {
    fn type_info() -> sqlx::postgres::PgTypeInfo {
        sqlx::postgres::PgTypeInfo::with_oid(sqlx::postgres::types::Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for UntypedNull {
    fn encode_by_ref(
        &self,
        _: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        Ok(sqlx::encode::IsNull::Yes)
    }
}

/// The `NULL` each database binds for [`Value::Null`].
trait NullOf: sqlx::Database {
    type Null: for<'q> sqlx::Encode<'q, Self> + sqlx::Type<Self> + Send;
}

impl NullOf for Sqlite {
    // SQLite's columns take any value: the type of a null does not matter.
    type Null = Option<String>;
}

impl NullOf for Postgres {
    type Null = Option<UntypedNull>;
}

/// Binds `args` to `query`, in order.
macro_rules! bind_values {
    ($db:ty, $query:expr, $args:expr) => {{
        let mut q = $query;
        for a in $args {
            q = match a {
                Value::Null => q.bind(<$db as NullOf>::Null::default()),
                Value::Text(v) => q.bind(v.as_str()),
                Value::Int(v) => q.bind(*v),
                Value::Float(v) => q.bind(*v),
                Value::Bool(v) => q.bind(*v),
                Value::Bytes(v) => q.bind(v.as_slice()),
            };
        }
        q
    }};
}

/// Column `i` of `row` as the [`Value`] it holds: tries each type a column can have
/// (sqlx checks the column's type before decoding, so the first that fits is the one).
fn column_value<R>(row: &R, i: usize) -> Result<Value, sqlx::Error>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i32: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> f64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> bool: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    use sqlx::{TypeInfo, ValueRef};
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(Value::Null);
    }
    let type_name = raw.type_info().name().to_owned();
    if let Ok(v) = row.try_get::<i64, _>(i) {
        return Ok(Value::Int(v));
    }
    if let Ok(v) = row.try_get::<i32, _>(i) {
        return Ok(Value::Int(v.into()));
    }
    if let Ok(v) = row.try_get::<f64, _>(i) {
        return Ok(Value::Float(v));
    }
    if let Ok(v) = row.try_get::<bool, _>(i) {
        return Ok(Value::Bool(v));
    }
    if let Ok(v) = row.try_get::<String, _>(i) {
        return Ok(Value::Text(v));
    }
    if let Ok(v) = row.try_get::<Vec<u8>, _>(i) {
        return Ok(Value::Bytes(v));
    }
    Err(sqlx::Error::ColumnDecode {
        index: i.to_string(),
        source: format!(
            "a {type_name} column has no herald_sql::Value: CAST it to BIGINT, DOUBLE \
             PRECISION or TEXT"
        )
        .into(),
    })
}

macro_rules! impl_handler_sql {
    ($db:ty) => {
        impl HandlerSql for $db {
            async fn execute_values(
                conn: &mut Self::Connection,
                sql: &str,
                args: &[Value],
            ) -> Result<u64, sqlx::Error> {
                let q = bind_values!($db, sqlx::query(sql), args);
                Ok(q.execute(conn).await?.rows_affected())
            }

            async fn fetch_rows(
                conn: &mut Self::Connection,
                sql: &str,
                args: &[Value],
            ) -> Result<Vec<ValueRow>, sqlx::Error> {
                let q = bind_values!($db, sqlx::query(sql), args);
                let rows = q.fetch_all(conn).await?;
                rows.iter()
                    .map(|row| {
                        (0..sqlx::Row::len(row))
                            .map(|i| column_value(row, i))
                            .collect::<Result<Vec<_>, _>>()
                            .map(ValueRow::new)
                    })
                    .collect()
            }
        }
    };
}

impl_handler_sql!(Sqlite);
impl_handler_sql!(Postgres);
