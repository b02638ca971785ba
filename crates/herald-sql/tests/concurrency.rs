//! The ordering proof, on SQLite and PostgreSQL: many writers whose transactions sleep
//! a random time before and after writing (so they commit in another order than they
//! started), some rolling back, with two live relays and a live projection running at
//! the same time. Every committed event is delivered and projected, no rolled-back one
//! is, no event is projected twice, and each key's events reach the bus in order.
//!
//! On PostgreSQL, sequence values would be drawn in one order and committed in another;
//! herald-sql's positions come from a row locked until commit, so a reader that has
//! seen position p has seen every position below it (docs/adr/0008).

mod common;

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use herald::MemoryTransport;
use herald_sql::{
    BoxError, ExpectedVersion, HeraldDb, Projection, ProjectionConfig, ProjectionRunner,
    RecordedEvent, RelayConfig, enqueue,
};
use rand::Rng;
use sqlx::Transaction;

struct Seen;

impl<DB: TestSql> Projection<DB> for Seen {
    fn name(&self) -> &str {
        "seen"
    }
    async fn apply(
        &self,
        tx: &mut Transaction<'static, DB>,
        e: &RecordedEvent,
    ) -> Result<(), BoxError> {
        DB::exec_in(
            tx,
            "INSERT INTO seen (event_id, n) VALUES ($1, 1)
             ON CONFLICT (event_id) DO UPDATE SET n = seen.n + 1",
            &e.envelope.id,
        )
        .await?;
        Ok(())
    }
    async fn reset(&self, tx: &mut Transaction<'static, DB>) -> Result<(), BoxError> {
        DB::exec_in(tx, "DELETE FROM seen WHERE event_id <> $1", "").await?;
        Ok(())
    }
}

async fn pause(max_ms: u64) {
    let ms = rand::rng().random_range(0..=max_ms);
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

both!(concurrent_writers_lose_and_duplicate_nothing, proof_case);
async fn proof_case<DB: TestSql>(db: HeraldDb<DB>) {
    DB::exec(
        db.pool(),
        "CREATE TABLE seen (event_id TEXT PRIMARY KEY, n BIGINT NOT NULL)",
    )
    .await;
    let bus = MemoryTransport::with_default_partitions(4);
    let relay_config = RelayConfig {
        batch_size: 10,
        poll_interval: Duration::from_millis(10),
        ..RelayConfig::default()
    };
    let relays: Vec<_> = (0..2)
        .map(|_| {
            db.relay(bus.clone())
                .with_config(relay_config.clone())
                .start()
        })
        .collect();
    let store = db.event_store().with_topic("accounts").unwrap();
    let projection = ProjectionRunner::new(store.clone(), Seen)
        .with_config(ProjectionConfig {
            batch_size: 7,
            poll_interval: Duration::from_millis(10),
            ..ProjectionConfig::default()
        })
        .start();

    let committed = Arc::new(Mutex::new(Vec::<(String, String, u32)>::new())); // (id, key, seq)
    let rolled_back = Arc::new(Mutex::new(HashSet::<String>::new()));
    let writers = 12;
    let per_writer = 15u32;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (db, store) = (db.clone(), store.clone());
            let (committed, rolled_back) = (committed.clone(), rolled_back.clone());
            tokio::spawn(async move {
                let key = format!("k{w}");
                let mut seq = 0;
                for i in 0..per_writer {
                    // A plain BEGIN: transactions overlap until their first write.
                    let mut tx = db.pool().begin().await.unwrap();
                    pause(5).await;
                    let event = step(&key, seq + 1);
                    if i % 2 == 0 {
                        enqueue(&mut tx, "orders", &event).await.unwrap();
                    } else {
                        store
                            .append_in(&mut tx, &key, ExpectedVersion::Any, vec![event.clone()])
                            .await
                            .unwrap();
                    }
                    pause(10).await;
                    if rand::rng().random_bool(0.1) {
                        tx.rollback().await.unwrap();
                        rolled_back.lock().unwrap().insert(event.id);
                    } else {
                        tx.commit().await.unwrap();
                        seq += 1;
                        committed.lock().unwrap().push((event.id, key.clone(), seq));
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let committed = committed.lock().unwrap().clone();
    let rolled_back = rolled_back.lock().unwrap().clone();
    let store_events = store.read_all(0, 10_000).await.unwrap().len();

    let delivered = || {
        let mut ids = HashSet::new();
        for topic in ["orders", "accounts"] {
            for r in bus.records(topic) {
                ids.insert(herald::Envelope::from_record(&r).unwrap().id);
            }
        }
        ids
    };
    eventually("every committed event on the bus", || async {
        let ids = delivered();
        committed.iter().all(|(id, _, _)| ids.contains(id))
    })
    .await;
    eventually("every store event projected", || async {
        DB::scalar(db.pool(), "SELECT count(*) FROM seen").await == store_events as i64
    })
    .await;
    projection.shutdown().await.unwrap();
    for r in relays {
        r.shutdown().await.unwrap();
    }

    let ids = delivered();
    assert!(
        rolled_back.iter().all(|id| !ids.contains(id)),
        "a rolled-back event was published"
    );
    assert_eq!(
        ids.len(),
        committed.len(),
        "only committed events were published"
    );
    let twice = DB::scalar(db.pool(), "SELECT count(*) FROM seen WHERE n <> 1").await;
    assert_eq!(twice, 0, "an event was projected twice");
    // Per key: the bus holds each key's events in the order they committed.
    let mut per_key: HashMap<String, Vec<u32>> = HashMap::new();
    for topic in ["orders", "accounts"] {
        for r in bus.records(topic) {
            let s: Step = herald::Envelope::from_record(&r).unwrap().decode().unwrap();
            per_key
                .entry(format!("{topic}/{}", s.key))
                .or_default()
                .push(s.seq);
        }
    }
    for (key, seqs) in per_key {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{key}: {seqs:?}");
    }
    let expected: HashMap<&str, u32> = committed.iter().fold(HashMap::new(), |mut m, (_, k, s)| {
        m.insert(
            k.as_str(),
            (*s).max(m.get(k.as_str()).copied().unwrap_or(0)),
        );
        m
    });
    assert_eq!(expected.len(), writers);
}
