//! The SQLite inbox in a file in a temporary directory; the handler's effect is a row
//! in the same database, written in the transaction that records the event.

use super::*;
use herald_sql::SqliteInbox;

struct SqliteStore {
    inbox: SqliteInbox,
    _dir: tempfile::TempDir,
}

impl SqliteStore {
    async fn new() -> Arc<Self> {
        let dir = tempfile::tempdir().unwrap();
        let inbox = SqliteInbox::open(dir.path().join("app.db")).await.unwrap();
        // No unique constraint: a second write of one event must show, not fail.
        sqlx::query("CREATE TABLE effects (event_id TEXT NOT NULL)")
            .execute(inbox.pool())
            .await
            .unwrap();
        Arc::new(Self { inbox, _dir: dir })
    }
}

impl Store for SqliteStore {
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
            sqlx::query("INSERT INTO effects (event_id) VALUES (?)")
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
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT event_id, count(*) FROM effects GROUP BY event_id")
                    .fetch_all(self.inbox.pool())
                    .await
                    .unwrap();
            rows.into_iter().map(|(id, n)| (id, n as u64)).collect()
        })
    }
}

#[tokio::test]
async fn duplicates_injected_at_the_transport_have_one_effect() {
    duplicates_have_one_effect(SqliteStore::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_running_at_once_under_different_keys_write_once() {
    concurrent_copies_write_once(SqliteStore::new().await).await;
}

#[tokio::test]
async fn a_handler_failing_after_its_write_rolls_back_the_write_and_the_mark() {
    a_failure_after_the_write_rolls_back_both(SqliteStore::new().await).await;
}

#[tokio::test]
async fn purge_before_forgets_older_entries() {
    purge_forgets_entries_before_the_cutoff(SqliteStore::new().await.inbox()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_marks_of_one_id_record_it_once() {
    concurrent_marks_record_once(SqliteStore::new().await.inbox()).await;
}

#[tokio::test]
async fn entries_survive_reopening_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.db");
    let inbox = SqliteInbox::open(&path).await.unwrap();
    assert!(inbox.mark_processed(key("g", "e")).await.unwrap());
    inbox.pool().close().await;
    let reopened = SqliteInbox::open(&path).await.unwrap();
    assert!(reopened.is_processed(key("g", "e")).await.unwrap());
    assert!(!reopened.mark_processed(key("g", "e")).await.unwrap());
}

#[tokio::test]
async fn a_table_name_that_is_not_an_identifier_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("x.db").display()
    ))
    .await
    .unwrap();
    let err = SqliteInbox::with_table(pool, "inbox; DROP TABLE effects")
        .await
        .unwrap_err();
    assert!(err.message.contains("unquoted SQL identifier"), "{err}");
}

/// The default table goes through the migration runner: a table an older build created
/// by itself is adopted with its entries, and the version is recorded once.
#[tokio::test]
async fn the_default_table_is_migrated_and_an_existing_one_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("old.db").display()
    ))
    .await
    .unwrap();
    for ddl in [
        "CREATE TABLE herald_inbox (group_id TEXT NOT NULL, event_id TEXT NOT NULL,
         processed_at INTEGER NOT NULL, PRIMARY KEY (group_id, event_id)) WITHOUT ROWID",
        "INSERT INTO herald_inbox VALUES ('g', 'old', 0)",
    ] {
        sqlx::query(ddl).execute(&pool).await.unwrap();
    }
    let inbox = SqliteInbox::new(pool.clone()).await.unwrap();
    assert!(inbox.is_processed(key("g", "old")).await.unwrap());
    SqliteInbox::new(pool.clone()).await.unwrap();
    let versions: Vec<i64> = sqlx::query_scalar("SELECT version FROM herald_inbox_migrations")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(versions, [1]);
}

/// A table of another name is created directly, beside the default one.
#[tokio::test]
async fn a_custom_table_is_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = SqliteInbox::open(dir.path().join("app.db")).await.unwrap();
    let other = SqliteInbox::with_table(inbox.pool().clone(), "billing_inbox")
        .await
        .unwrap();
    assert!(other.mark_processed(key("g", "e")).await.unwrap());
    assert!(!inbox.is_processed(key("g", "e")).await.unwrap());
    assert!(other.is_processed(key("g", "e")).await.unwrap());
}
