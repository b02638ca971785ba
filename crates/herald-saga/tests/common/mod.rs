//! Test fixtures: a fresh database on SQLite (a temp file) or PostgreSQL (a schema of the
//! test's own, dropped at the end), the order saga of the docs, scripted services that
//! answer its commands, and a driver that runs a saga step by step without a runtime.
//!
//! PostgreSQL comes from `HERALD_TEST_POSTGRES_URL` (`source scripts/test-env.sh`).
//! Unset, PostgreSQL tests print why and pass; with `HERALD_REQUIRE_SERVICES=1` a
//! missing variable or an unreachable server fails them (herald-test-support's rule).
#![allow(dead_code, unreachable_pub)] // why: each test binary uses a different subset

pub mod shop;

use std::time::Duration;

use herald_saga::{SagaBackend, SagaStore};
use herald_sql::HeraldDb;
use herald_test_support::{postgres_url, skip_or_fail, unique_name};
use sqlx::{
    PgPool, Pool, Postgres, Sqlite,
    postgres::{PgConnectOptions, PgPoolOptions},
};

/// A database for one test, and what to clean up after it.
pub struct Fixture<DB: SagaBackend> {
    pub db: HeraldDb<DB>,
    pub store: SagaStore<DB>,
    /// Where the database is, to open more pools on it (one per simulated process).
    pub location: Location,
    cleanup: Cleanup,
}

/// Where a test database is.
#[derive(Clone, Debug)]
pub enum Location {
    Sqlite(std::path::PathBuf),
    Postgres { url: String, schema: String },
}

enum Cleanup {
    // why: held only so the directory is deleted on drop
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Schema { url: String, schema: String },
}

impl<DB: SagaBackend> Drop for Fixture<DB> {
    fn drop(&mut self) {
        if let Cleanup::Schema { url, schema } = &self.cleanup {
            drop_schema(url.clone(), schema.clone());
        }
    }
}

/// Drops a schema on a thread of its own: `Drop` cannot await.
fn drop_schema(url: String, schema: String) {
    let dropped = std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let pool = PgPool::connect(&url).await?;
                // Whatever connection a test left open (idle in a transaction, say) would
                // make the drop wait for its locks: close the test's connections.
                sqlx::query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                )
                .bind(&schema)
                .execute(&pool)
                .await?;
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
    let path = dir.path().join("herald.db");
    let db = HeraldDb::open(&path).await.unwrap();
    let store = SagaStore::new(db.clone()).await.unwrap();
    Fixture {
        db,
        store,
        location: Location::Sqlite(path),
        cleanup: Cleanup::Dir(dir),
    }
}

pub async fn postgres() -> Option<Fixture<Postgres>> {
    let url = postgres_url()?;
    let admin = match PgPool::connect(&url).await {
        Ok(p) => p,
        Err(e) => return skip_or_fail(format!("PostgreSQL at {url} unreachable: {e}")),
    };
    let schema = unique_name("hsaga");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let db = pg_db(&url, &schema).await;
    let store = SagaStore::new(db.clone()).await.unwrap();
    Some(Fixture {
        db,
        store,
        location: Location::Postgres {
            url: url.clone(),
            schema: schema.clone(),
        },
        cleanup: Cleanup::Schema { url, schema },
    })
}

async fn pg_db(url: &str, schema: &str) -> HeraldDb<Postgres> {
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(60))
        .connect_with(
            options
                .options([("search_path", schema)])
                .application_name(schema),
        )
        .await
        .unwrap();
    HeraldDb::new(pool).await.unwrap()
}

/// Runs the generic test `$case(&Fixture<DB>)` once per database, as `$name::sqlite`
/// and `$name::postgres`.
#[macro_export]
macro_rules! both {
    ($name:ident, $case:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let f = $crate::common::sqlite().await;
                super::$case(&f).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let Some(f) = $crate::common::postgres().await else {
                    return;
                };
                super::$case(&f).await;
            }
        }
    };
}

/// SQL the tests run besides herald-saga's (fault injection), per backend.
pub trait TestSql: SagaBackend {
    /// A new pool on the database at `location`, as another process would open.
    fn open(location: &Location) -> impl std::future::Future<Output = HeraldDb<Self>> + Send;
    /// Makes every insert into the outbox fail while `test_fail_outbox` has a row.
    fn install_outbox_fault(pool: &Pool<Self>) -> impl std::future::Future<Output = ()> + Send;
    /// Turns the fault on or off.
    fn set_outbox_fault(
        pool: &Pool<Self>,
        on: bool,
    ) -> impl std::future::Future<Output = ()> + Send;
}

impl TestSql for Sqlite {
    async fn open(location: &Location) -> HeraldDb<Self> {
        let Location::Sqlite(path) = location else {
            panic!("not a SQLite location: {location:?}")
        };
        HeraldDb::open(path).await.unwrap()
    }

    async fn install_outbox_fault(pool: &Pool<Self>) {
        for sql in [
            "CREATE TABLE test_fail_outbox (on_ INTEGER)",
            "CREATE TRIGGER test_fail_outbox BEFORE INSERT ON herald_events
             WHEN EXISTS (SELECT 1 FROM test_fail_outbox)
             BEGIN SELECT RAISE(ABORT, 'injected outbox failure'); END",
        ] {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
    }

    async fn set_outbox_fault(pool: &Pool<Self>, on: bool) {
        let sql = if on {
            "INSERT INTO test_fail_outbox VALUES (1)"
        } else {
            "DELETE FROM test_fail_outbox"
        };
        sqlx::query(sql).execute(pool).await.unwrap();
    }
}

impl TestSql for Postgres {
    async fn open(location: &Location) -> HeraldDb<Self> {
        let Location::Postgres { url, schema } = location else {
            panic!("not a PostgreSQL location: {location:?}")
        };
        pg_db(url, schema).await
    }

    async fn install_outbox_fault(pool: &Pool<Self>) {
        for sql in [
            "CREATE TABLE test_fail_outbox (on_ INTEGER)",
            "CREATE FUNCTION test_fail_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF EXISTS (SELECT 1 FROM test_fail_outbox) THEN
                     RAISE EXCEPTION 'injected outbox failure';
                 END IF;
                 RETURN NEW;
             END
             $$",
            "CREATE TRIGGER test_fail_outbox BEFORE INSERT ON herald_events
             FOR EACH ROW EXECUTE FUNCTION test_fail_outbox()",
        ] {
            sqlx::query(sql).execute(pool).await.unwrap();
        }
    }

    async fn set_outbox_fault(pool: &Pool<Self>, on: bool) {
        let sql = if on {
            "INSERT INTO test_fail_outbox VALUES (1)"
        } else {
            "DELETE FROM test_fail_outbox"
        };
        sqlx::query(sql).execute(pool).await.unwrap();
    }
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
