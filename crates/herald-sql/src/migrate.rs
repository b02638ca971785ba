//! Versioned schema migrations: the one runner every Herald component on SQL uses
//! (herald-sql's own tables, the inbox, herald-saga), and that a service may use for
//! its own tables.
//!
//! A component's [`Schema`] names its version table and lists its [`Migration`]s per
//! database. [`apply`] (or [`HeraldDb::migrate`](crate::HeraldDb::migrate)) runs in one
//! writing transaction under a lock (PostgreSQL: an advisory lock named after the
//! component and the schema; SQLite: the write lock), so services starting together
//! apply each migration once; PostgreSQL and SQLite DDL is transactional, so a failed
//! migration leaves nothing half-applied. A database migrated by a newer build is
//! refused with [`Error::SchemaTooNew`].

use sqlx::Pool;

use crate::{
    backend::Backend,
    codec::now_ms,
    error::{Error, Result},
};

/// One schema migration: a version, what it does, and its statements.
#[derive(Debug)]
pub struct Migration {
    /// Versions start at 1 and only grow; an applied version is never edited.
    pub version: i64,
    /// What the migration does, recorded beside its version.
    pub description: &'static str,
    /// The statements, run in order in the migration's transaction.
    pub statements: &'static [&'static str],
}

/// One component's schema: its name (for the lock, logs and errors), the table that
/// records its applied versions, and its migrations on each database, oldest first.
#[derive(Debug)]
pub struct Schema {
    /// The component, e.g. `herald-sql` or `herald-saga`.
    pub component: &'static str,
    /// The table of applied versions, e.g. `herald_schema_migrations`. A fixed name of
    /// the component's, never user input: it is part of the SQL text.
    pub version_table: &'static str,
    /// The migrations on SQLite.
    pub sqlite: &'static [Migration],
    /// The migrations on PostgreSQL (often the same list as `sqlite`).
    pub postgres: &'static [Migration],
}

impl Schema {
    /// The migrations for `backend` (`sqlite` or `postgres`, [`Backend`]'s name).
    fn migrations(&self, backend: &str) -> &'static [Migration] {
        if backend == "postgres" {
            self.postgres
        } else {
            self.sqlite
        }
    }
}

/// herald-sql's own tables: the event log, streams, snapshots, checkpoints, relay slots.
pub const HERALD_SQL: Schema = Schema {
    component: "herald-sql",
    version_table: "herald_schema_migrations",
    sqlite: SQLITE,
    postgres: POSTGRES,
};

/// The SQLite schema.
const SQLITE: &[Migration] = &[Migration {
    version: 1,
    description: "event log, streams, snapshots, checkpoints, relay slots",
    statements: &[
        "CREATE TABLE herald_log_head (id INTEGER PRIMARY KEY CHECK (id = 1), position INTEGER NOT NULL)",
        "INSERT INTO herald_log_head (id, position) VALUES (1, 0)",
        "CREATE TABLE herald_events (
            position INTEGER PRIMARY KEY,
            slot INTEGER NOT NULL,
            topic TEXT,
            stream_id TEXT,
            version INTEGER,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            msg_key BLOB,
            headers BLOB NOT NULL,
            data BLOB NOT NULL,
            recorded_at INTEGER NOT NULL,
            UNIQUE (stream_id, version)
        )",
        "CREATE INDEX herald_events_slot ON herald_events (slot, position)",
        "CREATE TABLE herald_streams (
            stream_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            deleted BOOLEAN NOT NULL DEFAULT FALSE,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID",
        "CREATE TABLE herald_snapshots (
            stream_id TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            schema_version INTEGER NOT NULL,
            state BLOB NOT NULL,
            taken_at INTEGER NOT NULL
        ) WITHOUT ROWID",
        "CREATE TABLE herald_checkpoints (
            name TEXT PRIMARY KEY,
            position INTEGER NOT NULL,
            updated_at INTEGER NOT NULL
        ) WITHOUT ROWID",
        "CREATE TABLE herald_relay_slots (
            slot INTEGER PRIMARY KEY,
            checkpoint INTEGER NOT NULL DEFAULT 0,
            owner TEXT,
            lease_until INTEGER NOT NULL DEFAULT 0
        )",
        "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 15)
         INSERT INTO herald_relay_slots (slot) SELECT n FROM s",
        "CREATE TABLE herald_relay_members (
            owner TEXT PRIMARY KEY,
            lease_until INTEGER NOT NULL
        ) WITHOUT ROWID",
    ],
}];

/// The PostgreSQL schema.
const POSTGRES: &[Migration] = &[Migration {
    version: 1,
    description: "event log, streams, snapshots, checkpoints, relay slots, notify trigger",
    statements: &[
        "CREATE TABLE herald_log_head (id BIGINT PRIMARY KEY CHECK (id = 1), position BIGINT NOT NULL)",
        "INSERT INTO herald_log_head (id, position) VALUES (1, 0)",
        "CREATE TABLE herald_events (
            position BIGINT PRIMARY KEY,
            slot BIGINT NOT NULL,
            topic TEXT,
            stream_id TEXT,
            version BIGINT,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            msg_key BYTEA,
            headers BYTEA NOT NULL,
            data BYTEA NOT NULL,
            recorded_at BIGINT NOT NULL,
            UNIQUE (stream_id, version)
        )",
        "CREATE INDEX herald_events_slot ON herald_events (slot, position)",
        "CREATE TABLE herald_streams (
            stream_id TEXT PRIMARY KEY,
            version BIGINT NOT NULL,
            deleted BOOLEAN NOT NULL DEFAULT FALSE,
            updated_at BIGINT NOT NULL
        )",
        "CREATE TABLE herald_snapshots (
            stream_id TEXT PRIMARY KEY,
            version BIGINT NOT NULL,
            schema_version BIGINT NOT NULL,
            state BYTEA NOT NULL,
            taken_at BIGINT NOT NULL
        )",
        "CREATE TABLE herald_checkpoints (
            name TEXT PRIMARY KEY,
            position BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        )",
        "CREATE TABLE herald_relay_slots (
            slot BIGINT PRIMARY KEY,
            checkpoint BIGINT NOT NULL DEFAULT 0,
            owner TEXT,
            lease_until BIGINT NOT NULL DEFAULT 0
        )",
        "INSERT INTO herald_relay_slots (slot) SELECT generate_series(0, 15)",
        "CREATE TABLE herald_relay_members (
            owner TEXT PRIMARY KEY,
            lease_until BIGINT NOT NULL
        )",
        // One notification per inserting statement (and PostgreSQL folds equal ones of a
        // transaction into one, sent at commit): relays and projections wake on it. The
        // payload is the schema, so services sharing a database wake only their own.
        "CREATE FUNCTION herald_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             PERFORM pg_notify('herald_events', TG_TABLE_SCHEMA);
             RETURN NULL;
         END
         $$",
        "CREATE TRIGGER herald_events_notify AFTER INSERT ON herald_events
         FOR EACH STATEMENT EXECUTE FUNCTION herald_events_notify()",
    ],
}];

/// Brings `schema` in `pool`'s database up to date.
pub async fn apply<DB: Backend>(pool: &Pool<DB>, schema: &Schema) -> Result<()> {
    let component = schema.component;
    let fail = |what: &str| {
        Error::db(
            DB::BACKEND,
            format!("migrating the {component} schema: {what}"),
        )
    };
    let table = schema.version_table;
    let migrations = schema.migrations(DB::BACKEND);
    let mut tx = DB::begin_write(pool).await.map_err(fail("begin"))?;
    DB::lock_migrations(&mut tx, component)
        .await
        .map_err(fail("lock"))?;
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            version BIGINT PRIMARY KEY,
            description TEXT NOT NULL,
            applied_at BIGINT NOT NULL
        )"
    );
    DB::run_ddl(&mut tx, &create).await.map_err(fail(table))?;
    let applied = DB::applied_migrations(&mut tx, table)
        .await
        .map_err(fail("reading applied versions"))?;
    let supported = migrations.last().map_or(0, |m| m.version);
    if let Some(&found) = applied.last()
        && found > supported
    {
        return Err(Error::SchemaTooNew {
            component,
            found,
            supported,
        });
    }
    for m in migrations.iter().filter(|m| !applied.contains(&m.version)) {
        for statement in m.statements {
            DB::run_ddl(&mut tx, statement)
                .await
                .map_err(fail(&format!("version {} ({})", m.version, m.description)))?;
        }
        DB::record_migration(&mut tx, table, m.version, m.description, now_ms())
            .await
            .map_err(fail("recording a version"))?;
        tracing::info!(
            backend = DB::BACKEND,
            component,
            version = m.version,
            "applied migration"
        );
    }
    tx.commit().await.map_err(fail("commit"))?;
    Ok(())
}
