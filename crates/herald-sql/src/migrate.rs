//! Versioned schema migrations, applied on connect.
//!
//! `herald_schema_migrations` records each applied version. [`migrate`] runs in one
//! writing transaction under a lock (PostgreSQL: an advisory lock named after the
//! schema; SQLite: the write lock), so services starting together apply each migration
//! once; PostgreSQL and SQLite DDL is transactional, so a failed migration leaves
//! nothing half-applied. A database migrated by a newer herald-sql is refused with
//! [`Error::SchemaTooNew`].

use sqlx::Pool;

use crate::{
    backend::{Backend, Migration},
    codec::now_ms,
    error::{Error, Result},
};

const CREATE_MIGRATIONS: &str = "CREATE TABLE IF NOT EXISTS herald_schema_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at BIGINT NOT NULL
)";

/// The SQLite schema.
pub(crate) const SQLITE: &[Migration] = &[Migration {
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
pub(crate) const POSTGRES: &[Migration] = &[Migration {
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

/// Brings the schema of `pool`'s database up to date.
pub(crate) async fn migrate<DB: Backend>(pool: &Pool<DB>) -> Result<()> {
    let fail = |what: &str| Error::db(DB::BACKEND, format!("migrating the schema: {what}"));
    let mut tx = DB::begin_write(pool).await.map_err(fail("begin"))?;
    DB::lock_migrations(&mut tx).await.map_err(fail("lock"))?;
    DB::run_ddl(&mut tx, CREATE_MIGRATIONS)
        .await
        .map_err(fail("herald_schema_migrations"))?;
    let applied = DB::applied_migrations(&mut tx)
        .await
        .map_err(fail("reading applied versions"))?;
    let supported = DB::MIGRATIONS.last().map_or(0, |m| m.version);
    if let Some(&found) = applied.last()
        && found > supported
    {
        return Err(Error::SchemaTooNew { found, supported });
    }
    for m in DB::MIGRATIONS
        .iter()
        .filter(|m| !applied.contains(&m.version))
    {
        for statement in m.statements {
            DB::run_ddl(&mut tx, statement)
                .await
                .map_err(fail(&format!("version {} ({})", m.version, m.description)))?;
        }
        DB::record_migration(&mut tx, m.version, m.description, now_ms())
            .await
            .map_err(fail("recording a version"))?;
        tracing::info!(
            backend = DB::BACKEND,
            version = m.version,
            "applied herald-sql migration"
        );
    }
    tx.commit().await.map_err(fail("commit"))?;
    Ok(())
}
