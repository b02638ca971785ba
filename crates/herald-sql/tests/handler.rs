//! The transactional handler on each database: the inbox mark, the handler's own row and
//! its outbox replies commit together; a handler error or a future dropped before the
//! commit leaves none of them (so the redelivery runs the handler again); a duplicate
//! does nothing.

mod common;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::{TestSql, step};
use herald::{
    Envelope, HandlerContext, HandlerError, MemoryTransport, RetryPolicy, Router,
    transport::{Admin, PublisherExt, TopicPartition},
};
use herald_sql::{Backend, Database, HeraldDb, Row, TransactionalHandler, UnitOfWork, Value};
use sqlx::{Postgres, Sqlite};

/// A `Database` on the fixture's pool.
trait IntoDatabase: Backend + TestSql {
    fn database(db: HeraldDb<Self>) -> impl std::future::Future<Output = Database> + Send;
}

impl IntoDatabase for Sqlite {
    async fn database(db: HeraldDb<Self>) -> Database {
        Database::sqlite(db).await.unwrap()
    }
}

impl IntoDatabase for Postgres {
    async fn database(db: HeraldDb<Self>) -> Database {
        Database::postgres(db).await.unwrap()
    }
}

/// Writes a row per event, publishes a reply; on attempt 1 fails after that, on attempt
/// 2 never finishes (the caller's timeout drops it).
#[derive(Default)]
struct Writer {
    calls: AtomicU64,
    misbehave: bool,
}

impl TransactionalHandler for Writer {
    async fn handle(&self, uow: &mut UnitOfWork<'_>) -> Result<(), HandlerError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let id = uow.event().id.clone();
        let n = uow
            .execute(
                "INSERT INTO effects (event_id) VALUES ($1)",
                &[id.as_str().into()],
            )
            .await?;
        assert_eq!(n, 1);
        let seen = uow
            .fetch_i64(
                "SELECT count(*) FROM effects WHERE event_id = $1",
                &[id.into()],
            )
            .await?;
        assert_eq!(seen, Some(1), "the handler sees its own write");
        uow.publish(
            "replies",
            Envelope::new("urn:test", "test.reply", "{}").with_key("r"),
        );
        match (self.misbehave, uow.context().attempt()) {
            (true, 1) => Err(HandlerError::transient(std::io::Error::other(
                "failed after writing and publishing",
            ))),
            (true, 2) => std::future::pending().await,
            _ => Ok(()),
        }
    }
}

async fn counts<DB: TestSql>(db: &HeraldDb<DB>) -> (i64, i64, i64) {
    (
        DB::scalar(db.pool(), "SELECT count(*) FROM effects").await,
        DB::scalar(db.pool(), "SELECT count(*) FROM herald_inbox").await,
        DB::scalar(db.pool(), "SELECT count(*) FROM herald_events").await,
    )
}

async fn settle(t: &MemoryTransport, group: &str) {
    let tp = TopicPartition::new("orders", 0);
    for _ in 0..1_000 {
        if t.committed(group, &tp) == Some(1) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{group} never committed the event");
}

/// Runs `handler` for one published event through a router whose handler is
/// `per_attempt`; returns the transport and the event.
async fn run_once<F, Fut>(db: &Database, per_attempt: F) -> (MemoryTransport, Envelope)
where
    F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    let t = MemoryTransport::new();
    t.create_topic("orders", 1).await.unwrap();
    let event = step("a", 0);
    t.publish_envelope("orders", &event).await.unwrap();
    let router = Router::builder(t.clone(), "billing")
        .inbox(db.inbox())
        .retry(RetryPolicy::default().with_max_attempts(5).with_delays(
            Duration::from_millis(10),
            Duration::from_millis(10),
            1.0,
        ))
        .on_type("orders", "test.step", move |_e: Envelope, ctx| {
            per_attempt(ctx)
        })
        .start()
        .await
        .unwrap();
    settle(&t, "billing").await;
    router.shutdown().await.unwrap();
    (t, event)
}

async fn commits_together_and_a_duplicate_does_nothing<DB: IntoDatabase>(hdb: HeraldDb<DB>) {
    DB::exec(hdb.pool(), "CREATE TABLE effects (event_id TEXT NOT NULL)").await;
    let db = DB::database(hdb.clone()).await;
    let handler = Arc::new(Writer::default());
    let (h, d) = (handler.clone(), db.clone());
    let (_t, event) = run_once(&db, move |ctx| {
        let (h, d) = (h.clone(), d.clone());
        async move {
            d.handle(&*h, &ctx).await?;
            // The same event again, as a concurrent copy would arrive: the inbox mark
            // in the transaction stops it before the handler.
            d.handle(&*h, &ctx).await
        }
    })
    .await;
    assert_eq!(handler.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        counts(&hdb).await,
        (1, 1, 1),
        "effect, inbox mark, one reply"
    );
    let bus = MemoryTransport::new();
    assert_eq!(hdb.relay(bus.clone()).run_once().await.unwrap(), 1);
    let reply = Envelope::from_record(&bus.records("replies")[0]).unwrap();
    assert_eq!(reply.causation_id.as_deref(), Some(event.id.as_str()));
    assert_eq!(
        reply.correlation_id.as_deref(),
        Some(event.correlation_id.as_deref().unwrap_or(event.id.as_str()))
    );
}
both!(
    commits_together,
    commits_together_and_a_duplicate_does_nothing
);

async fn an_error_or_a_drop_before_commit_leaves_nothing<DB: IntoDatabase>(hdb: HeraldDb<DB>) {
    DB::exec(hdb.pool(), "CREATE TABLE effects (event_id TEXT NOT NULL)").await;
    let db = DB::database(hdb.clone()).await;
    let handler = Arc::new(Writer {
        misbehave: true,
        ..Writer::default()
    });
    let (h, d, c) = (handler.clone(), db.clone(), hdb.clone());
    run_once(&db, move |ctx| {
        let (h, d, c) = (h.clone(), d.clone(), c.clone());
        async move {
            let attempt = ctx.attempt();
            let result = if attempt == 2 {
                // A crash-like stop: the future is dropped before it commits.
                match tokio::time::timeout(Duration::from_millis(200), d.handle(&*h, &ctx)).await {
                    Ok(r) => r,
                    Err(e) => Err(HandlerError::transient(e)),
                }
            } else {
                d.handle(&*h, &ctx).await
            };
            if attempt <= 2 {
                assert!(result.is_err(), "attempt {attempt} fails");
                assert_eq!(
                    counts(&c).await,
                    (0, 0, 0),
                    "attempt {attempt} left nothing"
                );
            }
            result
        }
    })
    .await;
    assert_eq!(
        handler.calls.load(Ordering::SeqCst),
        3,
        "run again each time"
    );
    assert_eq!(counts(&hdb).await, (1, 1, 1));
}
both!(rolls_back, an_error_or_a_drop_before_commit_leaves_nothing);

async fn a_closure_is_a_unit_of_work_too<DB: IntoDatabase>(hdb: HeraldDb<DB>) {
    DB::exec(hdb.pool(), "CREATE TABLE effects (event_id TEXT NOT NULL)").await;
    let db = DB::database(hdb.clone()).await;
    let calls = Arc::new(AtomicU64::new(0));
    let (d, n) = (db.clone(), calls.clone());
    run_once(&db, move |ctx| {
        let (d, n) = (d.clone(), n.clone());
        async move {
            let id = ctx.envelope().id.clone();
            d.handle_with(&ctx, move |uow| {
                Box::pin(async move {
                    n.fetch_add(1, Ordering::SeqCst);
                    uow.execute("INSERT INTO effects (event_id) VALUES ($1)", &[id.into()])
                        .await?;
                    uow.publish("replies", Envelope::new("urn:test", "test.reply", "{}"));
                    Ok(())
                })
            })
            .await
        }
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(counts(&hdb).await, (1, 1, 1), "effect, inbox mark, reply");
}
both!(closure, a_closure_is_a_unit_of_work_too);

/// Statements with run-time values read back each column type the same way on both
/// databases; a rolled-back transaction leaves nothing and a committed one its rows and
/// outbox entries.
async fn run_time_statements_read_and_write_alike<DB: IntoDatabase>(hdb: HeraldDb<DB>) {
    let db = DB::database(hdb.clone()).await;
    db.execute(
        "CREATE TABLE kinds (id TEXT PRIMARY KEY, n BIGINT NOT NULL, small INTEGER, \
         f DOUBLE PRECISION, b BYTEA, note TEXT)",
        &[],
    )
    .await
    .unwrap();
    let insert = "INSERT INTO kinds (id, n, small, f, b, note) VALUES ($1, $2, $3, $4, $5, $6)";
    let args: Vec<Value> = vec![
        "k1".into(),
        i64::MAX.into(),
        7_i32.into(),
        1.5_f64.into(),
        vec![0_u8, 255].into(),
        None::<String>.into(),
    ];
    let mut tx = db.begin().await.unwrap();
    assert_eq!(tx.execute(insert, &args).await.unwrap(), 1);
    tx.enqueue("kinds", &Envelope::new("urn:test", "test.kind", "{}"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        db.fetch_all("SELECT id FROM kinds", &[])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(db.outbox_backlog().await.unwrap().events, 0);

    let mut tx = db.begin().await.unwrap();
    tx.execute(insert, &args).await.unwrap();
    let seen = tx
        .fetch_one("SELECT count(*) FROM kinds", &[])
        .await
        .unwrap();
    assert_eq!(
        seen.get::<i64>(0).unwrap(),
        1,
        "a transaction sees its own write"
    );
    tx.enqueue("kinds", &Envelope::new("urn:test", "test.kind", "{}"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(db.outbox_backlog().await.unwrap().events, 1);

    let row: Row = db
        .fetch_optional(
            "SELECT id, n, small, f, b, note, count(*) OVER () FROM kinds WHERE id = $1",
            &["k1".into()],
        )
        .await
        .unwrap()
        .expect("the row");
    assert_eq!(row.get::<String>(0).unwrap(), "k1");
    assert_eq!(row.get::<i64>(1).unwrap(), i64::MAX);
    assert_eq!(
        row.get::<i64>(2).unwrap(),
        7,
        "a 32-bit column is an integer"
    );
    assert_eq!(row.get::<f64>(3).unwrap(), 1.5);
    assert_eq!(row.get::<Vec<u8>>(4).unwrap(), vec![0, 255]);
    assert_eq!(row.get::<Option<String>>(5).unwrap(), None);
    assert_eq!(row.get::<i64>(6).unwrap(), 1, "count(*) is an integer");
    let err = row.get::<i64>(0).unwrap_err().to_string();
    assert!(err.contains("column 0 is text"), "{err}");

    // NULL goes into a column of any type, on both databases.
    db.execute(
        "INSERT INTO kinds (id, n, small, f, b, note) VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            "k2".into(),
            2.into(),
            Value::Null,
            Value::Null,
            Value::Null,
            Value::Null,
        ],
    )
    .await
    .unwrap();
    let nulls = db
        .fetch_one(
            "SELECT small, f, b, note FROM kinds WHERE id = $1",
            &["k2".into()],
        )
        .await
        .unwrap();
    assert!(
        nulls.columns().iter().all(|v| *v == Value::Null),
        "{nulls:?}"
    );

    let none = db
        .fetch_one("SELECT id FROM kinds WHERE id = $1", &["nope".into()])
        .await;
    assert!(
        none.unwrap_err().to_string().contains("no rows"),
        "fetch_one without a row"
    );

    let bad = db
        .execute("INSERT INTO nowhere VALUES ($1)", &[1.into()])
        .await;
    let err = bad.unwrap_err().to_string();
    assert!(
        err.contains("INSERT INTO nowhere"),
        "the error names the statement: {err}"
    );
}
both!(
    run_time_statements,
    run_time_statements_read_and_write_alike
);
