//! herald-sql throughput against a plain batched INSERT loop on the same database, in
//! the same run: event-store appends (one stream; 1,000 streams) and the outbox relay
//! publishing into the embedded transport. SQLite always; PostgreSQL when
//! `HERALD_TEST_POSTGRES_URL` is set (in a schema of its own, dropped at the end).
//!
//! Every measured transaction writes `BATCH` events: the plain peer inserts `BATCH` rows
//! of the same size (id, stream, version, 200-byte payload) in one transaction; an
//! append writes `BATCH` events to one stream in one transaction (expected version
//! `Any`). The relay benchmark enqueues `RELAY_ROWS` rows untimed, then times one relay
//! pass that publishes them all and marks them sent.
// why: criterion_group! generates an undocumented `pub fn`.
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald::{EmbeddedTransport, Envelope, transport::Admin};
use herald_sql::{Backend, ExpectedVersion, HeraldDb, enqueue_all};
use sqlx::{Pool, Postgres, Sqlite, postgres::PgConnectOptions};
use tokio::runtime::Runtime;

const BATCH: usize = 10;
const RELAY_ROWS: usize = 2_000;
const WRITERS: usize = 8;

trait Plain: Backend {
    fn setup(pool: &Pool<Self>) -> impl std::future::Future<Output = ()> + Send;
    fn insert(pool: &Pool<Self>, base: i64) -> impl std::future::Future<Output = ()> + Send;
}

macro_rules! impl_plain {
    ($db:ty) => {
        impl Plain for $db {
            async fn setup(pool: &Pool<Self>) {
                sqlx::query("CREATE TABLE IF NOT EXISTS plain_events (id TEXT PRIMARY KEY, stream TEXT NOT NULL, version BIGINT NOT NULL, data TEXT NOT NULL)")
                    .execute(pool)
                    .await
                    .unwrap();
            }
            async fn insert(pool: &Pool<Self>, base: i64) {
                let mut tx = pool.begin().await.unwrap();
                let mut q = sqlx::QueryBuilder::<$db>::new("INSERT INTO plain_events (id, stream, version, data) ");
                q.push_values(0..BATCH as i64, |mut b, i| {
                    b.push_bind(uuid_like(base + i))
                        .push_bind("stream")
                        .push_bind(base + i)
                        .push_bind(payload());
                });
                q.build().execute(&mut *tx).await.unwrap();
                tx.commit().await.unwrap();
            }
        }
    };
}
impl_plain!(Sqlite);
impl_plain!(Postgres);

/// Runs the futures concurrently on the runtime's threads and waits for all.
async fn futures_join<F>(futures: impl Iterator<Item = F>)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    for t in tasks {
        t.await.unwrap();
    }
}

fn uuid_like(n: i64) -> String {
    format!("{n:032x}")
}

fn payload() -> String {
    format!("{{\"pad\":\"{}\"}}", "x".repeat(188))
}

fn event(stream: &str) -> Envelope {
    Envelope::new("urn:bench", "bench.happened", payload()).with_key(stream.to_owned())
}

fn bench_backend<DB: Plain>(c: &mut Criterion, rt: &Runtime, name: &str, db: HeraldDb<DB>) {
    rt.block_on(DB::setup(db.pool()));
    let store = db.event_store();
    let mut group = c.benchmark_group(format!("herald-sql/{name}"));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.throughput(Throughput::Elements(BATCH as u64));

    let mut next = 0i64;
    group.bench_function("plain_insert", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    DB::insert(db.pool(), next).await;
                    next += BATCH as i64;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("append_one_stream", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let events = (0..BATCH).map(|_| event("one")).collect();
                    store
                        .append("one", ExpectedVersion::Any, events)
                        .await
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });
    let mut n = 0usize;
    group.bench_function("append_1000_streams", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let stream = format!("s-{}", n % 1000);
                    n += 1;
                    let events = (0..BATCH).map(|_| event(&stream)).collect();
                    store
                        .append(&stream, ExpectedVersion::Any, events)
                        .await
                        .unwrap();
                }
                start.elapsed()
            })
        })
    });

    // The cost of commit-ordered positions: WRITERS transactions at once, each on its
    // own stream (appends) or its own rows (plain), so only the log head is shared.
    group.throughput(Throughput::Elements((BATCH * WRITERS) as u64));
    let mut base = 1_000_000_000i64;
    group.bench_function(format!("plain_insert_{WRITERS}_writers"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let writes = (0..WRITERS).map(|w| {
                        let pool = db.pool().clone();
                        async move { DB::insert(&pool, base + (w * BATCH) as i64).await }
                    });
                    futures_join(writes).await;
                    base += (WRITERS * BATCH) as i64;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function(format!("append_{WRITERS}_writers"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let writes = (0..WRITERS).map(|w| {
                        let store = store.clone();
                        async move {
                            let stream = format!("w-{w}");
                            let events = (0..BATCH).map(|_| event(&stream)).collect();
                            store
                                .append(&stream, ExpectedVersion::Any, events)
                                .await
                                .unwrap();
                        }
                    });
                    futures_join(writes).await;
                }
                start.elapsed()
            })
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedTransport::open(dir.path()).unwrap();
    rt.block_on(bus.create_topic("orders", 4)).unwrap();
    let relay = db.relay(bus);
    // Drain what the append benchmarks left (they have no topic: nothing to publish).
    rt.block_on(relay.run_once()).unwrap();
    group.throughput(Throughput::Elements(RELAY_ROWS as u64));
    group.bench_function("relay_to_embedded", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut took = Duration::ZERO;
                for _ in 0..iters {
                    for chunk in 0..RELAY_ROWS / 100 {
                        let mut tx = db.begin().await.unwrap();
                        let events: Vec<_> = (0..100)
                            .map(|i| event(&format!("k{}", chunk * 100 + i)))
                            .collect();
                        enqueue_all(&mut tx, "orders", &events).await.unwrap();
                        tx.commit().await.unwrap();
                    }
                    let start = Instant::now();
                    let published = relay.run_once().await.unwrap();
                    took += start.elapsed();
                    assert_eq!(published, RELAY_ROWS as u64);
                }
                took
            })
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = rt
        .block_on(HeraldDb::<Sqlite>::open(dir.path().join("bench.db")))
        .unwrap();
    bench_backend(c, &rt, "sqlite", sqlite);

    let Ok(url) = std::env::var("HERALD_TEST_POSTGRES_URL") else {
        eprintln!("HERALD_TEST_POSTGRES_URL is not set: skipping the PostgreSQL benchmarks");
        return;
    };
    let schema = format!("herald_sql_bench_{}", std::process::id());
    let pg = rt.block_on(async {
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {schema}"))
            .execute(&admin)
            .await
            .unwrap();
        let options: PgConnectOptions = url.parse().unwrap();
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_with(options.options([("search_path", schema.as_str())]))
            .await
            .unwrap();
        HeraldDb::new(pool).await.unwrap()
    });
    bench_backend(c, &rt, "postgres", pg);
    rt.block_on(async {
        let admin = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    });
}

criterion_group!(sql, benches);
criterion_main!(sql);
