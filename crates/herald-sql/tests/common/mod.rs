//! Test fixtures: a fresh herald-sql database on SQLite (a temp file) or PostgreSQL (a
//! schema of the test's own, dropped at the end), and `both!` to run a generic test on
//! each.
//!
//! PostgreSQL comes from `HERALD_TEST_POSTGRES_URL` (`source scripts/test-env.sh`).
//! Unset, PostgreSQL tests print why and pass; with `HERALD_REQUIRE_SERVICES=1` a
//! missing variable or an unreachable server fails them (herald-test-support's rule).
#![allow(dead_code, unreachable_pub)] // why: each test binary uses a different subset

use std::time::Duration;

use herald::{Envelope, Event};
use herald_sql::{Backend, HeraldDb};
use herald_test_support::{postgres_url, skip_or_fail, unique_name};
use serde::{Deserialize, Serialize};
use sqlx::{
    PgPool, Pool, Postgres, Sqlite,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A database for one test, and what to clean up after it.
pub struct Fixture<DB: Backend> {
    pub db: HeraldDb<DB>,
    cleanup: Cleanup,
}

enum Cleanup {
    // why: held only so the directory is deleted on drop
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { url: String, schema: String },
}

impl<DB: Backend> Drop for Fixture<DB> {
    fn drop(&mut self) {
        if let Cleanup::Schema { url, schema } = &self.cleanup {
            drop_schema(url.clone(), schema.clone());
        }
    }
}

/// Drops a schema on a thread of its own: `Drop` cannot await, and the test's runtime
/// may be the one unwinding.
fn drop_schema(url: String, schema: String) {
    let dropped = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let pool = PgPool::connect(&url).await?;
                sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&pool)
                    .await?;
                pool.close().await;
                Ok::<(), sqlx::Error>(())
            })
    })
    .join();
    if !matches!(dropped, Ok(Ok(()))) {
        eprintln!("could not drop a test schema: {dropped:?}");
    }
}

pub async fn sqlite() -> Fixture<Sqlite> {
    let dir = tempfile::tempdir().unwrap();
    let db = HeraldDb::open(dir.path().join("herald.db")).await.unwrap();
    Fixture {
        db,
        cleanup: Cleanup::Dir(dir),
    }
}

/// A PostgreSQL pool whose connections work in a fresh schema.
pub async fn pg_pool(max: u32) -> Option<(PgPool, String, String)> {
    let url = postgres_url()?;
    let admin = match PgPool::connect(&url).await {
        Ok(p) => p,
        Err(e) => return skip_or_fail(format!("PostgreSQL at {url} unreachable: {e}")),
    };
    let schema = unique_name("hsql");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    Some((pool, url, schema))
}

pub async fn postgres() -> Option<Fixture<Postgres>> {
    postgres_with(10).await
}

pub async fn postgres_with(max: u32) -> Option<Fixture<Postgres>> {
    let (pool, url, schema) = pg_pool(max).await?;
    let cleanup = Cleanup::Schema { url, schema };
    let db = HeraldDb::new(pool).await.unwrap();
    Some(Fixture { db, cleanup })
}

/// Runs the generic test `$case(HeraldDb<DB>)` once per database, as `$name::sqlite`
/// and `$name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let f = $crate::common::sqlite().await;
                super::$case(f.db.clone()).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(f) = $crate::common::postgres().await else {
                    return;
                };
                super::$case(f.db.clone()).await;
            }
        }
    };
}

/// SQL the tests run on the service's side (business tables, read models), per backend.
pub trait TestSql: Backend {
    /// Runs one statement.
    fn exec(pool: &Pool<Self>, sql: &str) -> impl std::future::Future<Output = ()> + Send;
    /// Runs one statement with one text argument in a transaction.
    fn exec_in(
        tx: &mut sqlx::Transaction<'_, Self>,
        sql: &str,
        arg: &str,
    ) -> impl std::future::Future<Output = Result<(), sqlx::Error>> + Send;
    /// Runs a query returning one integer.
    fn scalar(pool: &Pool<Self>, sql: &str) -> impl std::future::Future<Output = i64> + Send;
    /// Rows of `(text, integer)`.
    fn pairs(
        pool: &Pool<Self>,
        sql: &str,
    ) -> impl std::future::Future<Output = Vec<(String, i64)>> + Send;
}

macro_rules! impl_test_sql {
    ($db:ty) => {
        impl TestSql for $db {
            async fn exec(pool: &Pool<Self>, sql: &str) {
                sqlx::query(sql).execute(pool).await.unwrap();
            }
            async fn exec_in(
                tx: &mut sqlx::Transaction<'_, Self>,
                sql: &str,
                arg: &str,
            ) -> Result<(), sqlx::Error> {
                sqlx::query(sql)
                    .bind(arg)
                    .execute(&mut **tx)
                    .await
                    .map(drop)
            }
            async fn scalar(pool: &Pool<Self>, sql: &str) -> i64 {
                sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
            }
            async fn pairs(pool: &Pool<Self>, sql: &str) -> Vec<(String, i64)> {
                sqlx::query_as(sql).fetch_all(pool).await.unwrap()
            }
        }
    };
}
impl_test_sql!(Sqlite);
impl_test_sql!(Postgres);

/// The event the tests write: step `seq` of entity `key`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub key: String,
    pub seq: u32,
}

impl Event for Step {
    const TYPE: &'static str = "test.step";
    fn key(&self) -> String {
        self.key.clone()
    }
}

pub fn step(key: &str, seq: u32) -> Envelope {
    Envelope::from_event(
        "urn:test",
        &Step {
            key: key.to_owned(),
            seq,
        },
    )
    .unwrap()
}

/// Polls `check` until it holds, failing after a generous bound (a hang guard, never a
/// speed assertion).
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
