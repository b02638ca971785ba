//! The PostgreSQL inbox, in a schema of the test's own (dropped at the end, even when the
//! test fails); the handler's effect is a row in that schema, written in the transaction
//! that records the event.

use super::*;
use herald_sql::PostgresInbox;
use sqlx::PgPool;

struct PostgresStore {
    inbox: PostgresInbox,
    schema: String,
    url: String,
}

impl PostgresStore {
    /// A store in a fresh schema, or `None` when PostgreSQL is not configured (skip).
    async fn new() -> Option<Arc<Self>> {
        let url = herald_test_support::postgres_url()?;
        let pool = match PgPool::connect(&url).await {
            Ok(pool) => pool,
            Err(e) => return skip_or_fail(format!("PostgreSQL at {url} unreachable: {e}")),
        };
        let schema = unique_name("herald_inbox_test");
        for ddl in [
            format!("CREATE SCHEMA {schema}"),
            // No unique constraint: a second write of one event must show, not fail.
            format!("CREATE TABLE {schema}.effects (event_id TEXT NOT NULL)"),
        ] {
            sqlx::query(&ddl).execute(&pool).await.unwrap();
        }
        let inbox = PostgresInbox::with_table(pool, &format!("{schema}.herald_inbox"))
            .await
            .unwrap();
        Some(Arc::new(Self { inbox, schema, url }))
    }
}

impl Drop for PostgresStore {
    /// Drops the schema on a thread of its own: `Drop` cannot await, and the test's
    /// runtime may be the one unwinding.
    fn drop(&mut self) {
        let (url, schema) = (self.url.clone(), self.schema.clone());
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
            eprintln!("could not drop test schema {}: {dropped:?}", self.schema);
        }
    }
}

impl Store for PostgresStore {
    fn inbox(&self) -> Arc<dyn Inbox> {
        Arc::new(self.inbox.clone())
    }

    fn handle(
        self: Arc<Self>,
        ctx: HandlerContext,
        fail: bool,
    ) -> BoxFuture<Result<(), HandlerError>> {
        Box::pin(async move {
            let mut tx = self
                .inbox
                .pool()
                .begin()
                .await
                .map_err(HandlerError::transient)?;
            let new = self
                .inbox
                .mark_processed_in(&mut tx, ctx.inbox_key())
                .await
                .map_err(HandlerError::transient)?;
            if !new {
                return Ok(());
            }
            sqlx::query(&format!(
                "INSERT INTO {}.effects (event_id) VALUES ($1)",
                self.schema
            ))
            .bind(ctx.inbox_key().event_id)
            .execute(&mut *tx)
            .await
            .map_err(HandlerError::transient)?;
            if fail {
                return Err(HandlerError::transient(std::io::Error::other(
                    "failed after writing, before committing",
                )));
            }
            tx.commit().await.map_err(HandlerError::transient)?;
            ctx.mark_inbox_recorded();
            Ok(())
        })
    }

    fn effects(self: Arc<Self>) -> BoxFuture<HashMap<String, u64>> {
        Box::pin(async move {
            let rows: Vec<(String, i64)> = sqlx::query_as(&format!(
                "SELECT event_id, count(*) FROM {}.effects GROUP BY event_id",
                self.schema
            ))
            .fetch_all(self.inbox.pool())
            .await
            .unwrap();
            rows.into_iter().map(|(id, n)| (id, n as u64)).collect()
        })
    }
}

#[tokio::test]
async fn duplicates_injected_at_the_transport_have_one_effect() {
    let Some(store) = PostgresStore::new().await else {
        return;
    };
    duplicates_have_one_effect(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_running_at_once_under_different_keys_write_once() {
    let Some(store) = PostgresStore::new().await else {
        return;
    };
    concurrent_copies_write_once(store).await;
}

#[tokio::test]
async fn a_handler_failing_after_its_write_rolls_back_the_write_and_the_mark() {
    let Some(store) = PostgresStore::new().await else {
        return;
    };
    a_failure_after_the_write_rolls_back_both(store).await;
}

#[tokio::test]
async fn purge_before_forgets_older_entries() {
    let Some(store) = PostgresStore::new().await else {
        return;
    };
    purge_forgets_entries_before_the_cutoff(store.inbox()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_marks_of_one_id_record_it_once() {
    let Some(store) = PostgresStore::new().await else {
        return;
    };
    concurrent_marks_record_once(store.inbox()).await;
}

#[tokio::test]
async fn connecting_twice_to_an_existing_table_keeps_its_entries() {
    let Some(store) = PostgresStore::new().await else {
        return;
    };
    assert!(store.inbox.mark_processed(key("g", "e")).await.unwrap());
    let table = format!("{}.herald_inbox", store.schema);
    let again = PostgresInbox::with_table(store.inbox.pool().clone(), &table)
        .await
        .unwrap();
    assert!(again.is_processed(key("g", "e")).await.unwrap());
}

/// The default table in the connection's schema, through the migration runner: twice
/// is harmless and keeps the entries.
#[tokio::test]
async fn the_default_table_is_migrated_in_the_search_path_schema() {
    let Some((pool, url, schema)) = common::pg_pool(2).await else {
        return;
    };
    let _cleanup = PostgresStore {
        inbox: PostgresInbox::new(pool.clone()).await.unwrap(),
        schema,
        url,
    };
    let inbox = PostgresInbox::new(pool.clone()).await.unwrap();
    assert!(inbox.mark_processed(key("g", "e")).await.unwrap());
    let again = PostgresInbox::new(pool.clone()).await.unwrap();
    assert!(again.is_processed(key("g", "e")).await.unwrap());
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM herald_inbox_migrations")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, [1]);
}
