//! herald-saga's tables and statements, once for SQLite and PostgreSQL.
//!
//! Like herald-sql (`docs/adr/0009-sql-backend-abstraction.md`), the logic is generic
//! over the database and the statements are written once, in `impl_ops!`, which
//! instantiates them for each database's concrete connection type. The schema is the
//! same text on both (SQLite reads `BIGINT` as `INTEGER`) and herald-sql's migration
//! runner applies it, as it does herald-sql's own tables.
// why: the sealed-trait pattern. `Ops` and the row types are `pub` so that `SagaBackend`
// (public) may name them, in a module users cannot reach.
#![allow(unreachable_pub)]

use std::future::Future;

use herald_sql::migrate::{Migration, Schema};
use sqlx::{Postgres, Sqlite};

/// A database sagas run on: [`sqlx::Sqlite`] or [`sqlx::Postgres`]. Sealed.
pub trait SagaBackend: herald_sql::Backend + Ops {}

impl SagaBackend for Sqlite {}
impl SagaBackend for Postgres {}

/// herald-saga's tables, applied by herald-sql's migration runner. Same text on both
/// databases.
pub(crate) const SCHEMA: Schema = Schema {
    component: "herald-saga",
    version_table: "herald_saga_migrations",
    sqlite: MIGRATIONS,
    postgres: MIGRATIONS,
};

/// The schema, oldest first.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "saga instances, history and sent commands",
    statements: &[
        "CREATE TABLE herald_saga_instances (
            saga_type TEXT NOT NULL,
            saga_id TEXT NOT NULL,
            status TEXT NOT NULL,
            step BIGINT NOT NULL,
            step_name TEXT,
            attempt BIGINT NOT NULL,
            command_id TEXT,
            deadline BIGINT,
            data TEXT NOT NULL,
            correlation_id TEXT NOT NULL,
            traceparent TEXT,
            error TEXT,
            version BIGINT NOT NULL,
            history_len BIGINT NOT NULL,
            step_started_at BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (saga_type, saga_id)
        )",
        // The timeout poller's query: due deadlines of one saga type.
        "CREATE INDEX herald_saga_instances_due ON herald_saga_instances (saga_type, deadline)
         WHERE deadline IS NOT NULL",
        "CREATE INDEX herald_saga_instances_created ON herald_saga_instances (created_at)",
        "CREATE INDEX herald_saga_instances_id ON herald_saga_instances (saga_id)",
        "CREATE TABLE herald_saga_history (
            saga_type TEXT NOT NULL,
            saga_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            at BIGINT NOT NULL,
            kind TEXT NOT NULL,
            step BIGINT,
            step_name TEXT,
            attempt BIGINT,
            event_id TEXT,
            event_type TEXT,
            detail TEXT,
            PRIMARY KEY (saga_type, saga_id, seq)
        )",
        // Every command sent: a reply names its command as causation id, and this maps
        // it to the saga, step, phase and attempt it answers.
        "CREATE TABLE herald_saga_commands (
            command_id TEXT PRIMARY KEY,
            saga_type TEXT NOT NULL,
            saga_id TEXT NOT NULL,
            step BIGINT NOT NULL,
            phase TEXT NOT NULL,
            attempt BIGINT NOT NULL,
            topic TEXT NOT NULL,
            event_type TEXT NOT NULL,
            sent_at BIGINT NOT NULL
        )",
        "CREATE INDEX herald_saga_commands_saga ON herald_saga_commands (saga_type, saga_id)",
    ],
}];

/// A saga instance row.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub saga_type: String,
    pub saga_id: String,
    pub status: String,
    pub step: i64,
    pub step_name: Option<String>,
    pub attempt: i64,
    pub command_id: Option<String>,
    pub deadline: Option<i64>,
    pub data: String,
    pub correlation_id: String,
    pub traceparent: Option<String>,
    pub error: Option<String>,
    pub version: i64,
    pub history_len: i64,
    pub step_started_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A history row.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub saga_type: String,
    pub saga_id: String,
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub step: Option<i64>,
    pub step_name: Option<String>,
    pub attempt: Option<i64>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub detail: Option<String>,
}

/// A sent command.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandRow {
    pub command_id: String,
    pub saga_type: String,
    pub saga_id: String,
    pub step: i64,
    pub phase: String,
    pub attempt: i64,
    pub topic: String,
    pub event_type: String,
    pub sent_at: i64,
}

/// Reads typed columns of a row, for both databases.
trait Get {
    fn get<T>(&self, column: &str) -> Result<T, sqlx::Error>
    where
        T: for<'a> sqlx::Decode<'a, Self::Db> + sqlx::Type<Self::Db>;
    type Db: sqlx::Database;
}

impl<R: sqlx::Row> Get for R
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
{
    type Db = R::Database;
    fn get<T>(&self, column: &str) -> Result<T, sqlx::Error>
    where
        T: for<'a> sqlx::Decode<'a, Self::Db> + sqlx::Type<Self::Db>,
    {
        self.try_get(column)
    }
}

fn instance_row<R>(r: &R) -> Result<InstanceRow, sqlx::Error>
where
    R: Get,
    i64: for<'a> sqlx::Decode<'a, R::Db> + sqlx::Type<R::Db>,
    String: for<'a> sqlx::Decode<'a, R::Db> + sqlx::Type<R::Db>,
{
    Ok(InstanceRow {
        saga_type: r.get("saga_type")?,
        saga_id: r.get("saga_id")?,
        status: r.get("status")?,
        step: r.get("step")?,
        step_name: r.get("step_name")?,
        attempt: r.get("attempt")?,
        command_id: r.get("command_id")?,
        deadline: r.get("deadline")?,
        data: r.get("data")?,
        correlation_id: r.get("correlation_id")?,
        traceparent: r.get("traceparent")?,
        error: r.get("error")?,
        version: r.get("version")?,
        history_len: r.get("history_len")?,
        step_started_at: r.get("step_started_at")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

fn history_row<R>(r: &R) -> Result<HistoryRow, sqlx::Error>
where
    R: Get,
    i64: for<'a> sqlx::Decode<'a, R::Db> + sqlx::Type<R::Db>,
    String: for<'a> sqlx::Decode<'a, R::Db> + sqlx::Type<R::Db>,
{
    Ok(HistoryRow {
        saga_type: r.get("saga_type")?,
        saga_id: r.get("saga_id")?,
        seq: r.get("seq")?,
        at: r.get("at")?,
        kind: r.get("kind")?,
        step: r.get("step")?,
        step_name: r.get("step_name")?,
        attempt: r.get("attempt")?,
        event_id: r.get("event_id")?,
        event_type: r.get("event_type")?,
        detail: r.get("detail")?,
    })
}

fn command_row<R>(r: &R) -> Result<CommandRow, sqlx::Error>
where
    R: Get,
    i64: for<'a> sqlx::Decode<'a, R::Db> + sqlx::Type<R::Db>,
    String: for<'a> sqlx::Decode<'a, R::Db> + sqlx::Type<R::Db>,
{
    Ok(CommandRow {
        command_id: r.get("command_id")?,
        saga_type: r.get("saga_type")?,
        saga_id: r.get("saga_id")?,
        step: r.get("step")?,
        phase: r.get("phase")?,
        attempt: r.get("attempt")?,
        topic: r.get("topic")?,
        event_type: r.get("event_type")?,
        sent_at: r.get("sent_at")?,
    })
}

/// Filters of `list`, already validated.
pub struct ListQuery<'a> {
    pub saga_type: Option<&'a str>,
    pub status: Option<&'a str>,
    pub limit: i64,
    pub offset: i64,
}

const INSTANCE_COLUMNS: &str = "saga_type, saga_id, status, step, step_name, attempt, command_id, deadline, data, correlation_id, traceparent, error, version, history_len, step_started_at, created_at, updated_at";

/// The statements, written once and instantiated per database.
pub trait Ops: herald_sql::Backend {
    fn insert_instance(
        conn: &mut Self::Connection,
        row: &InstanceRow,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
    fn load_instance(
        conn: &mut Self::Connection,
        saga_type: &str,
        saga_id: &str,
    ) -> impl Future<Output = Result<Option<InstanceRow>, sqlx::Error>> + Send;
    /// Instances of any type with this id.
    fn find_instances(
        conn: &mut Self::Connection,
        saga_id: &str,
    ) -> impl Future<Output = Result<Vec<InstanceRow>, sqlx::Error>> + Send;
    /// Writes `row` if the stored version is still `expected`; whether it did.
    fn update_instance(
        conn: &mut Self::Connection,
        row: &InstanceRow,
        expected: i64,
    ) -> impl Future<Output = Result<bool, sqlx::Error>> + Send;
    fn insert_history(
        conn: &mut Self::Connection,
        rows: &[HistoryRow],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn load_history(
        conn: &mut Self::Connection,
        saga_type: &str,
        saga_id: &str,
    ) -> impl Future<Output = Result<Vec<HistoryRow>, sqlx::Error>> + Send;
    fn insert_commands(
        conn: &mut Self::Connection,
        rows: &[CommandRow],
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
    fn find_command(
        conn: &mut Self::Connection,
        saga_type: &str,
        command_id: &str,
    ) -> impl Future<Output = Result<Option<CommandRow>, sqlx::Error>> + Send;
    fn load_commands(
        conn: &mut Self::Connection,
        saga_type: &str,
        saga_id: &str,
    ) -> impl Future<Output = Result<Vec<CommandRow>, sqlx::Error>> + Send;
    /// Ids of instances of `saga_type` whose deadline is at or before `now`, earliest
    /// first.
    fn due(
        conn: &mut Self::Connection,
        saga_type: &str,
        now: i64,
        limit: i64,
    ) -> impl Future<Output = Result<Vec<String>, sqlx::Error>> + Send;
    fn list(
        conn: &mut Self::Connection,
        query: &ListQuery<'_>,
    ) -> impl Future<Output = Result<Vec<InstanceRow>, sqlx::Error>> + Send;
    fn count(
        conn: &mut Self::Connection,
        query: &ListQuery<'_>,
    ) -> impl Future<Output = Result<i64, sqlx::Error>> + Send;
    /// `(status, count)` pairs, optionally of one type.
    fn status_counts(
        conn: &mut Self::Connection,
        saga_type: Option<&str>,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, sqlx::Error>> + Send;
}

/// Adds the `WHERE` clause of a list query.
fn push_filters<'a, DB: sqlx::Database>(q: &mut sqlx::QueryBuilder<'a, DB>, query: &ListQuery<'a>)
where
    &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(" WHERE 1 = 1");
    if let Some(t) = query.saga_type {
        q.push(" AND saga_type = ").push_bind(t);
    }
    if let Some(s) = query.status {
        q.push(" AND status = ").push_bind(s);
    }
}

macro_rules! ops_body {
    ($db:ty) => {
        async fn insert_instance(conn: &mut Self::Connection, r: &InstanceRow) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "INSERT INTO herald_saga_instances (saga_type, saga_id, status, step, step_name, attempt, command_id, deadline, data, correlation_id, traceparent, error, version, history_len, step_started_at, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
                 ON CONFLICT (saga_type, saga_id) DO NOTHING",
            )
            .bind(&r.saga_type)
            .bind(&r.saga_id)
            .bind(&r.status)
            .bind(r.step)
            .bind(&r.step_name)
            .bind(r.attempt)
            .bind(&r.command_id)
            .bind(r.deadline)
            .bind(&r.data)
            .bind(&r.correlation_id)
            .bind(&r.traceparent)
            .bind(&r.error)
            .bind(r.version)
            .bind(r.history_len)
            .bind(r.step_started_at)
            .bind(r.created_at)
            .bind(r.updated_at)
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn load_instance(
            conn: &mut Self::Connection,
            saga_type: &str,
            saga_id: &str,
        ) -> Result<Option<InstanceRow>, sqlx::Error> {
            sqlx::query(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM herald_saga_instances WHERE saga_type = $1 AND saga_id = $2"
            ))
            .bind(saga_type)
            .bind(saga_id)
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(instance_row)
            .transpose()
        }

        async fn find_instances(conn: &mut Self::Connection, saga_id: &str) -> Result<Vec<InstanceRow>, sqlx::Error> {
            sqlx::query(&format!(
                "SELECT {INSTANCE_COLUMNS} FROM herald_saga_instances WHERE saga_id = $1 ORDER BY saga_type"
            ))
            .bind(saga_id)
            .fetch_all(conn)
            .await?
            .iter()
            .map(instance_row)
            .collect()
        }

        async fn update_instance(conn: &mut Self::Connection, r: &InstanceRow, expected: i64) -> Result<bool, sqlx::Error> {
            let done = sqlx::query(
                "UPDATE herald_saga_instances SET status = $3, step = $4, step_name = $5, attempt = $6, command_id = $7, deadline = $8, data = $9, error = $10, version = $11, history_len = $12, step_started_at = $13, updated_at = $14
                 WHERE saga_type = $1 AND saga_id = $2 AND version = $15",
            )
            .bind(&r.saga_type)
            .bind(&r.saga_id)
            .bind(&r.status)
            .bind(r.step)
            .bind(&r.step_name)
            .bind(r.attempt)
            .bind(&r.command_id)
            .bind(r.deadline)
            .bind(&r.data)
            .bind(&r.error)
            .bind(r.version)
            .bind(r.history_len)
            .bind(r.step_started_at)
            .bind(r.updated_at)
            .bind(expected)
            .execute(conn)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn insert_history(conn: &mut Self::Connection, rows: &[HistoryRow]) -> Result<(), sqlx::Error> {
            if rows.is_empty() {
                return Ok(());
            }
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO herald_saga_history (saga_type, saga_id, seq, at, kind, step, step_name, attempt, event_id, event_type, detail) ",
            );
            q.push_values(rows, |mut b, r| {
                b.push_bind(&r.saga_type)
                    .push_bind(&r.saga_id)
                    .push_bind(r.seq)
                    .push_bind(r.at)
                    .push_bind(&r.kind)
                    .push_bind(r.step)
                    .push_bind(&r.step_name)
                    .push_bind(r.attempt)
                    .push_bind(&r.event_id)
                    .push_bind(&r.event_type)
                    .push_bind(&r.detail);
            });
            q.build().persistent(false).execute(conn).await.map(drop)
        }

        async fn load_history(
            conn: &mut Self::Connection,
            saga_type: &str,
            saga_id: &str,
        ) -> Result<Vec<HistoryRow>, sqlx::Error> {
            sqlx::query(
                "SELECT saga_type, saga_id, seq, at, kind, step, step_name, attempt, event_id, event_type, detail
                 FROM herald_saga_history WHERE saga_type = $1 AND saga_id = $2 ORDER BY seq",
            )
            .bind(saga_type)
            .bind(saga_id)
            .fetch_all(conn)
            .await?
            .iter()
            .map(history_row)
            .collect()
        }

        async fn insert_commands(conn: &mut Self::Connection, rows: &[CommandRow]) -> Result<(), sqlx::Error> {
            if rows.is_empty() {
                return Ok(());
            }
            let mut q = sqlx::QueryBuilder::<$db>::new(
                "INSERT INTO herald_saga_commands (command_id, saga_type, saga_id, step, phase, attempt, topic, event_type, sent_at) ",
            );
            q.push_values(rows, |mut b, r| {
                b.push_bind(&r.command_id)
                    .push_bind(&r.saga_type)
                    .push_bind(&r.saga_id)
                    .push_bind(r.step)
                    .push_bind(&r.phase)
                    .push_bind(r.attempt)
                    .push_bind(&r.topic)
                    .push_bind(&r.event_type)
                    .push_bind(r.sent_at);
            });
            q.build().persistent(false).execute(conn).await.map(drop)
        }

        async fn find_command(
            conn: &mut Self::Connection,
            saga_type: &str,
            command_id: &str,
        ) -> Result<Option<CommandRow>, sqlx::Error> {
            sqlx::query(
                "SELECT command_id, saga_type, saga_id, step, phase, attempt, topic, event_type, sent_at
                 FROM herald_saga_commands WHERE command_id = $1 AND saga_type = $2",
            )
            .bind(command_id)
            .bind(saga_type)
            .fetch_optional(conn)
            .await?
            .as_ref()
            .map(command_row)
            .transpose()
        }

        async fn load_commands(
            conn: &mut Self::Connection,
            saga_type: &str,
            saga_id: &str,
        ) -> Result<Vec<CommandRow>, sqlx::Error> {
            sqlx::query(
                "SELECT command_id, saga_type, saga_id, step, phase, attempt, topic, event_type, sent_at
                 FROM herald_saga_commands WHERE saga_type = $1 AND saga_id = $2 ORDER BY sent_at, step, attempt",
            )
            .bind(saga_type)
            .bind(saga_id)
            .fetch_all(conn)
            .await?
            .iter()
            .map(command_row)
            .collect()
        }

        async fn due(
            conn: &mut Self::Connection,
            saga_type: &str,
            now: i64,
            limit: i64,
        ) -> Result<Vec<String>, sqlx::Error> {
            sqlx::query_scalar(
                "SELECT saga_id FROM herald_saga_instances
                 WHERE saga_type = $1 AND deadline IS NOT NULL AND deadline <= $2
                 ORDER BY deadline LIMIT $3",
            )
            .bind(saga_type)
            .bind(now)
            .bind(limit)
            .fetch_all(conn)
            .await
        }

        async fn list(conn: &mut Self::Connection, query: &ListQuery<'_>) -> Result<Vec<InstanceRow>, sqlx::Error> {
            let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                "SELECT {INSTANCE_COLUMNS} FROM herald_saga_instances"
            ));
            push_filters(&mut q, query);
            q.push(" ORDER BY created_at DESC, saga_type, saga_id DESC LIMIT ")
                .push_bind(query.limit)
                .push(" OFFSET ")
                .push_bind(query.offset);
            q.build()
                .persistent(false)
                .fetch_all(conn)
                .await?
                .iter()
                .map(instance_row)
                .collect()
        }

        async fn count(conn: &mut Self::Connection, query: &ListQuery<'_>) -> Result<i64, sqlx::Error> {
            let mut q = sqlx::QueryBuilder::<$db>::new("SELECT COUNT(*) FROM herald_saga_instances");
            push_filters(&mut q, query);
            q.build_query_scalar().persistent(false).fetch_one(conn).await
        }

        async fn status_counts(
            conn: &mut Self::Connection,
            saga_type: Option<&str>,
        ) -> Result<Vec<(String, i64)>, sqlx::Error> {
            sqlx::query_as(
                "SELECT status, COUNT(*) FROM herald_saga_instances
                 WHERE $1 IS NULL OR saga_type = $1 GROUP BY status",
            )
            .bind(saga_type)
            .fetch_all(conn)
            .await
        }
    };
}
impl Ops for Sqlite {
    ops_body!(Sqlite);
}

impl Ops for Postgres {
    ops_body!(Postgres);
}

/// Brings herald-saga's schema in `db`'s database up to date (herald-sql's runner: one
/// transaction, under a lock, so services starting together apply each migration once).
pub(crate) async fn migrate<DB: SagaBackend>(db: &herald_sql::HeraldDb<DB>) -> crate::Result<()> {
    Ok(db.migrate(&SCHEMA).await?)
}
