//! [`SagaStore`]: herald-saga's tables in a herald-sql database, and the query API.

use std::{fmt, path::Path};

use herald_sql::HeraldDb;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Sqlite, SqlitePool, postgres::PgPoolOptions, sqlite::SqliteConnectOptions};

use crate::{
    backend::{CommandRow, HistoryRow, InstanceRow, ListQuery, SagaBackend, migrate},
    clock::from_millis,
    error::{Result, SagaError},
    model::{HistoryEntry, SagaDetails, SagaFilter, SagaInstance, SagaPage, StatusCounts},
};

/// A herald-sql database with herald-saga's tables (created or upgraded by
/// [`SagaStore::new`]), and the read side: list and show sagas of every type. Cheap to
/// clone.
pub struct SagaStore<DB: SagaBackend> {
    pub(crate) db: HeraldDb<DB>,
}

impl<DB: SagaBackend> Clone for SagaStore<DB> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
        }
    }
}

impl<DB: SagaBackend> fmt::Debug for SagaStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SagaStore").field("db", &self.db).finish()
    }
}

/// A command a saga sent, as recorded with the transition that sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentCommand {
    /// The command's event id (replies carry it as their causation id).
    pub command_id: String,
    /// The step (index from 0).
    pub step: u32,
    /// Whether it was the step's command or its compensation.
    pub compensation: bool,
    /// The attempt (from 1).
    pub attempt: u32,
    /// Where it was sent.
    pub topic: String,
    /// Its event type.
    pub event_type: String,
    /// When the transition that sent it committed.
    #[serde(with = "crate::model::time")]
    pub sent_at: std::time::SystemTime,
}

impl SagaStore<Sqlite> {
    /// Opens the SQLite database of a service that runs sagas, to read them (tools like
    /// `herald sagas`). Unlike [`SagaStore::new`] it creates nothing: a missing file, or
    /// one without herald-saga's tables, is a [`SagaError::NoSagaDatabase`].
    pub async fn open_existing(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let missing = |reason: String| SagaError::NoSagaDatabase {
            database: path.display().to_string(),
            reason,
        };
        if !path.is_file() {
            return Err(missing(
                "no such file; pass the database file of a service that runs sagas".into(),
            ));
        }
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePool::connect_with(options)
            .await
            .map_err(SagaError::db(
                "sqlite",
                format!("opening {}", path.display()),
            ))?;
        let found: Option<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'herald_saga_migrations'",
        )
        .fetch_optional(&pool)
        .await
        .map_err(SagaError::db("sqlite", format!("reading {}", path.display())))?;
        pool.close().await;
        if found.is_none() {
            return Err(missing(NO_TABLES.into()));
        }
        Self::new(HeraldDb::open(path).await?).await
    }
}

impl SagaStore<Postgres> {
    /// Connects to the PostgreSQL database of a service that runs sagas (herald-saga's
    /// tables in the URL's `search_path`), to read them. Unlike [`SagaStore::new`] it
    /// creates nothing: a schema without herald-saga's tables is a
    /// [`SagaError::NoSagaDatabase`].
    pub async fn connect_existing(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .map_err(SagaError::db("postgres", "connecting"))?;
        let found: bool =
            sqlx::query_scalar("SELECT to_regclass('herald_saga_migrations') IS NOT NULL")
                .fetch_one(&pool)
                .await
                .map_err(SagaError::db(
                    "postgres",
                    "looking for herald-saga's tables",
                ))?;
        if !found {
            pool.close().await;
            return Err(SagaError::NoSagaDatabase {
                database: redact(url),
                reason: NO_TABLES.into(),
            });
        }
        Self::new(HeraldDb::new(pool).await?).await
    }
}

const NO_TABLES: &str = "no herald-saga tables here; pass the database of a service that runs sagas \
     (on PostgreSQL with its schema, e.g. ?options=-csearch_path%3Dshop)";

/// A URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl<DB: SagaBackend> SagaStore<DB> {
    /// Uses `db` (the service's own herald-sql database, so sagas start in its
    /// transactions and send commands through its outbox) and applies herald-saga's
    /// migrations.
    pub async fn new(db: HeraldDb<DB>) -> Result<Self> {
        migrate(&db).await?;
        Ok(Self { db })
    }

    /// The database.
    pub fn db(&self) -> &HeraldDb<DB> {
        &self.db
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<DB>> {
        self.db
            .pool()
            .acquire()
            .await
            .map_err(SagaError::db(DB::BACKEND, "acquiring a connection"))
    }

    /// Sagas matching `filter`, newest first, with the number of all matches.
    pub async fn list(&self, filter: &SagaFilter) -> Result<SagaPage> {
        let limit = filter.limit.unwrap_or(SagaFilter::DEFAULT_LIMIT);
        if limit == 0 || limit > SagaFilter::MAX_LIMIT {
            return Err(SagaError::InvalidInput(format!(
                "limit must be 1 to {}, got {limit}",
                SagaFilter::MAX_LIMIT
            )));
        }
        let offset = i64::try_from(filter.offset.unwrap_or(0))
            .map_err(|_| SagaError::InvalidInput("offset is too large".into()))?;
        let query = ListQuery {
            saga_type: filter.saga_type.as_deref(),
            status: filter.status.map(|s| s.as_str()),
            limit: i64::from(limit),
            offset,
        };
        let mut conn = self.conn().await?;
        let rows = DB::list(&mut conn, &query)
            .await
            .map_err(SagaError::db(DB::BACKEND, "listing sagas"))?;
        let total = DB::count(&mut conn, &query)
            .await
            .map_err(SagaError::db(DB::BACKEND, "counting sagas"))?;
        Ok(SagaPage {
            sagas: rows.into_iter().map(instance).collect::<Result<_>>()?,
            total: total as u64,
        })
    }

    /// The saga `saga_type`/`saga_id` with its history, if it exists.
    pub async fn get(&self, saga_type: &str, saga_id: &str) -> Result<Option<SagaDetails>> {
        let mut conn = self.conn().await?;
        let what = || format!("loading saga {saga_type}/{saga_id}");
        let Some(row) = DB::load_instance(&mut conn, saga_type, saga_id)
            .await
            .map_err(SagaError::db(DB::BACKEND, what()))?
        else {
            return Ok(None);
        };
        let history = DB::load_history(&mut conn, saga_type, saga_id)
            .await
            .map_err(SagaError::db(DB::BACKEND, what()))?;
        Ok(Some(SagaDetails {
            instance: instance(row)?,
            history: history.into_iter().map(entry).collect::<Result<_>>()?,
        }))
    }

    /// Sagas of any type with id `saga_id` (usually one).
    pub async fn find(&self, saga_id: &str) -> Result<Vec<SagaInstance>> {
        let mut conn = self.conn().await?;
        DB::find_instances(&mut conn, saga_id)
            .await
            .map_err(SagaError::db(
                DB::BACKEND,
                format!("finding saga {saga_id}"),
            ))?
            .into_iter()
            .map(instance)
            .collect()
    }

    /// The commands saga `saga_type`/`saga_id` sent, in the order they were sent.
    pub async fn commands(&self, saga_type: &str, saga_id: &str) -> Result<Vec<SentCommand>> {
        let mut conn = self.conn().await?;
        let rows = DB::load_commands(&mut conn, saga_type, saga_id)
            .await
            .map_err(SagaError::db(
                DB::BACKEND,
                format!("loading commands of {saga_type}/{saga_id}"),
            ))?;
        Ok(rows.into_iter().map(command).collect())
    }

    /// How many sagas (of `saga_type`, or of every type) are in each status.
    pub async fn counts(&self, saga_type: Option<&str>) -> Result<StatusCounts> {
        let mut conn = self.conn().await?;
        let pairs = DB::status_counts(&mut conn, saga_type)
            .await
            .map_err(SagaError::db(DB::BACKEND, "counting sagas"))?;
        let mut counts = StatusCounts::default();
        for (status, n) in pairs {
            let status = status.parse().map_err(|reason| SagaError::Corrupt {
                saga_type: saga_type.unwrap_or("*").to_owned(),
                saga_id: "*".to_owned(),
                reason,
            })?;
            counts.add(status, n as u64);
        }
        Ok(counts)
    }
}

pub(crate) fn instance(row: InstanceRow) -> Result<SagaInstance> {
    let corrupt = |reason: String| SagaError::Corrupt {
        saga_type: row.saga_type.clone(),
        saga_id: row.saga_id.clone(),
        reason,
    };
    let status = row.status.parse().map_err(corrupt)?;
    let data = serde_json::from_str(&row.data)
        .map_err(|e| corrupt(format!("its data is not JSON: {e}")))?;
    Ok(SagaInstance {
        status,
        step: row.step as u32,
        step_name: row.step_name,
        attempt: row.attempt as u32,
        data,
        correlation_id: row.correlation_id,
        deadline: row.deadline.map(from_millis),
        error: row.error,
        version: row.version as u64,
        created_at: from_millis(row.created_at),
        updated_at: from_millis(row.updated_at),
        saga_type: row.saga_type,
        saga_id: row.saga_id,
    })
}

fn entry(row: HistoryRow) -> Result<HistoryEntry> {
    let kind = row.kind.parse().map_err(|reason| SagaError::Corrupt {
        saga_type: row.saga_type.clone(),
        saga_id: row.saga_id.clone(),
        reason,
    })?;
    Ok(HistoryEntry {
        seq: row.seq as u64,
        at: from_millis(row.at),
        kind,
        step: row.step.map(|s| s as u32),
        step_name: row.step_name,
        attempt: row.attempt.map(|a| a as u32),
        event_id: row.event_id,
        event_type: row.event_type,
        detail: row.detail,
    })
}

fn command(row: CommandRow) -> SentCommand {
    SentCommand {
        command_id: row.command_id,
        step: row.step as u32,
        compensation: row.phase == crate::transition::Phase::Compensation.as_str(),
        attempt: row.attempt as u32,
        topic: row.topic,
        event_type: row.event_type,
        sent_at: from_millis(row.sent_at),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            super::redact("postgres://app:secret@db:5432/shop"),
            "postgres://app:***@db:5432/shop"
        );
        assert_eq!(
            super::redact("postgres://app@db/shop"),
            "postgres://app@db/shop"
        );
        assert_eq!(super::redact("postgres://db/shop"), "postgres://db/shop");
    }
}
