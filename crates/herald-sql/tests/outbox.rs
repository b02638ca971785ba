//! The transactional outbox and its relay, on SQLite and PostgreSQL:
//!
//! - events enqueued in a committed transaction are published with their ids, keys and
//!   headers intact; a rolled-back transaction publishes nothing;
//! - a relay killed between publishing and marking sent: the next relay publishes the
//!   batch again (at least once), nothing is lost;
//! - broker errors are retried with backoff, keeping order;
//! - several relays at once (one stopping, one crashing) keep each key's order;
//! - retention purges sent outbox rows only; the backlog counts unsent rows;
//! - PostgreSQL: the relay wakes on NOTIFY, not on its poll interval.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, Ordering},
    },
    time::Duration,
};

use common::*;
use herald::{
    Envelope, MemoryTransport,
    transport::{OutgoingRecord, Publisher, RecordPosition, TransportError},
};
use herald_sql::{Error, ExpectedVersion, HeraldDb, RelayConfig, enqueue, enqueue_all};

fn fast() -> RelayConfig {
    RelayConfig {
        poll_interval: Duration::from_millis(20),
        lease: Duration::from_millis(500),
        retry: RelayConfig::default().retry.with_delays(
            Duration::from_millis(5),
            Duration::from_millis(50),
            2.0,
        ),
        ..RelayConfig::default()
    }
}

/// Every envelope published to `topic`, in partition then offset order.
fn published(bus: &MemoryTransport, topic: &str) -> Vec<Envelope> {
    bus.records(topic)
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .collect()
}

both!(
    committed_events_are_published_intact,
    committed_events_are_published_intact_case
);
async fn committed_events_are_published_intact_case<DB: TestSql>(db: HeraldDb<DB>) {
    DB::exec(db.pool(), "CREATE TABLE orders (id TEXT PRIMARY KEY)").await;
    let placed = step("order-1", 1)
        .with_correlation_id("corr-1")
        .with_causation_id("cause-1")
        .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .with_extension("x-tenant", "acme");
    let mut tx = db.begin().await.unwrap();
    DB::exec_in(&mut tx, "INSERT INTO orders (id) VALUES ($1)", "order-1")
        .await
        .unwrap();
    let position = enqueue(&mut tx, "orders", &placed).await.unwrap();
    let more = enqueue_all(&mut tx, "orders", &[step("order-1", 2), step("order-1", 3)])
        .await
        .unwrap();
    assert_eq!(*more.start(), position + 1);
    assert_eq!(*more.end(), position + 2);
    tx.commit().await.unwrap();

    let bus = MemoryTransport::new();
    // A batch size of 0 counts as 1: three batches, in order.
    let relay = db.relay(bus.clone()).with_config(RelayConfig {
        batch_size: 0,
        ..fast()
    });
    assert_eq!(relay.backlog().await.unwrap().events, 3);
    assert_eq!(relay.run_once().await.unwrap(), 3);
    let out = published(&bus, "orders");
    assert_eq!(out.len(), 3);
    assert_eq!(out[0], placed, "id, key, attributes and headers unchanged");
    let seqs: Vec<u32> = out
        .iter()
        .map(|e| e.decode::<Step>().unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    // Marked sent: a second pass publishes nothing.
    assert_eq!(relay.run_once().await.unwrap(), 0);
    assert_eq!(relay.backlog().await.unwrap().events, 0);
}

both!(rolled_back_transactions_publish_nothing, rolled_back_case);
async fn rolled_back_case<DB: TestSql>(db: HeraldDb<DB>) {
    DB::exec(db.pool(), "CREATE TABLE orders (id TEXT PRIMARY KEY)").await;
    let mut tx = db.begin().await.unwrap();
    DB::exec_in(&mut tx, "INSERT INTO orders (id) VALUES ($1)", "o-1")
        .await
        .unwrap();
    enqueue(&mut tx, "orders", &step("o-1", 1)).await.unwrap();
    tx.rollback().await.unwrap();
    // Dropped without commit is a rollback too.
    {
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, "orders", &step("o-2", 1)).await.unwrap();
    }
    let mut tx = db.begin().await.unwrap();
    enqueue(&mut tx, "orders", &step("o-3", 1)).await.unwrap();
    tx.commit().await.unwrap();

    let bus = MemoryTransport::new();
    let relay = db.relay(bus.clone());
    assert_eq!(relay.run_once().await.unwrap(), 1);
    let out = published(&bus, "orders");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].key_str(), Some("o-3"));
    assert_eq!(
        DB::scalar(db.pool(), "SELECT count(*) FROM orders").await,
        0
    );
}

both!(
    invalid_input_is_refused_and_writes_nothing,
    invalid_input_case
);
async fn invalid_input_case<DB: TestSql>(db: HeraldDb<DB>) {
    let mut tx = db.begin().await.unwrap();
    let err = enqueue(&mut tx, "bad topic!", &step("k", 1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    let err = enqueue_all(&mut tx, "orders", &[]).await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    tx.commit().await.unwrap();
    assert_eq!(
        DB::scalar(db.pool(), "SELECT count(*) FROM herald_events").await,
        0
    );
}

/// Publishes to a memory bus; when armed, the first publish after arming never returns
/// (the relay is stuck after publishing, before marking sent, until it is killed).
#[derive(Clone)]
struct HangAfterPublish {
    bus: MemoryTransport,
    armed: Arc<AtomicBool>,
    hung: Arc<AtomicBool>,
}

impl Publisher for HangAfterPublish {
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>, TransportError> {
        let positions = self.bus.publish(topic, records).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.hung.store(true, Ordering::SeqCst);
            std::future::pending::<()>().await;
        }
        Ok(positions)
    }
}

both!(relay_killed_after_publish_redelivers, relay_killed_case);
async fn relay_killed_case<DB: TestSql>(db: HeraldDb<DB>) {
    let mut tx = db.begin().await.unwrap();
    enqueue_all(
        &mut tx,
        "orders",
        &(1..=5).map(|i| step("k", i)).collect::<Vec<_>>(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let bus = MemoryTransport::new();
    let hanging = HangAfterPublish {
        bus: bus.clone(),
        armed: Arc::new(AtomicBool::new(true)),
        hung: Arc::new(AtomicBool::new(false)),
    };
    let first = db.relay(hanging.clone()).with_config(fast()).start();
    eventually("the publish", || async {
        hanging.hung.load(Ordering::SeqCst)
    })
    .await;
    first.abort(); // killed between publish and mark-sent
    assert_eq!(
        published(&bus, "orders").len(),
        5,
        "published once before the kill"
    );

    // More events while no relay runs.
    let mut tx = db.begin().await.unwrap();
    enqueue(&mut tx, "orders", &step("k", 6)).await.unwrap();
    tx.commit().await.unwrap();

    let second = db.relay(bus.clone()).with_config(fast()).start();
    eventually("redelivery", || async {
        published(&bus, "orders").len() == 11
    })
    .await;
    second.shutdown().await.unwrap();
    let seqs: Vec<u32> = published(&bus, "orders")
        .iter()
        .map(|e| e.decode::<Step>().unwrap().seq)
        .collect();
    // At least once: the unmarked batch again, then the rest; nothing lost.
    assert_eq!(seqs, [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 6]);
    assert_eq!(db.relay(bus.clone()).backlog().await.unwrap().events, 0);
}

/// Fails the first `failures` publish calls like an unreachable broker.
#[derive(Clone)]
struct Flaky {
    bus: MemoryTransport,
    failures: Arc<AtomicU32>,
}

impl Publisher for Flaky {
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>, TransportError> {
        let left = self.failures.load(Ordering::SeqCst);
        if left > 0 {
            self.failures.store(left - 1, Ordering::SeqCst);
            return Err(TransportError::Storage("broker unreachable".into()));
        }
        self.bus.publish(topic, records).await
    }
}

both!(broker_errors_are_retried_in_order, broker_errors_case);
async fn broker_errors_case<DB: TestSql>(db: HeraldDb<DB>) {
    let bus = MemoryTransport::new();
    let flaky = Flaky {
        bus: bus.clone(),
        failures: Arc::new(AtomicU32::new(4)),
    };
    let relay = db.relay(flaky).with_config(fast()).start();
    for i in 1..=10 {
        let mut tx = db.begin().await.unwrap();
        enqueue(&mut tx, "orders", &step("k", i)).await.unwrap();
        tx.commit().await.unwrap();
    }
    eventually("all ten", || async {
        published(&bus, "orders").len() >= 10
    })
    .await;
    let stats = relay.shutdown().await.unwrap();
    assert!(stats.errors >= 4, "{stats:?}");
    let seqs: Vec<u32> = published(&bus, "orders")
        .iter()
        .map(|e| e.decode::<Step>().unwrap().seq)
        .collect();
    assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
}

both!(several_relays_keep_per_key_order, several_relays_case);
async fn several_relays_case<DB: TestSql>(db: HeraldDb<DB>) {
    let bus = MemoryTransport::with_default_partitions(4);
    let config = RelayConfig {
        batch_size: 7,
        ..fast()
    };
    let relays: Vec<_> = (0..3)
        .map(|_| db.relay(bus.clone()).with_config(config.clone()).start())
        .collect();
    let keys = 12;
    let per_key = 25u32;
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let db = db.clone();
            tokio::spawn(async move {
                // Writer w owns keys w, w+4, w+8: each key's events in order.
                for seq in 1..=per_key {
                    let mut tx = db.begin().await.unwrap();
                    let events: Vec<_> = (w..keys)
                        .step_by(4)
                        .map(|k| step(&format!("key-{k}"), seq))
                        .collect();
                    enqueue_all(&mut tx, "orders", &events).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    let mut relays = relays.into_iter();
    tokio::time::sleep(Duration::from_millis(100)).await;
    relays.next().unwrap().shutdown().await.unwrap(); // hands its slots over
    tokio::time::sleep(Duration::from_millis(100)).await;
    relays.next().unwrap().abort(); // its slots wait for the lease to run out
    for w in writers {
        w.await.unwrap();
    }
    let total = keys * per_key as usize;
    eventually("every event", || async {
        let mut seen = std::collections::HashSet::new();
        published(&bus, "orders").iter().for_each(|e| {
            seen.insert(e.id.clone());
        });
        seen.len() == total
    })
    .await;
    relays.next().unwrap().shutdown().await.unwrap();
    let mut per_key_seqs: HashMap<String, Vec<u32>> = HashMap::new();
    for e in published(&bus, "orders") {
        let s = e.decode::<Step>().unwrap();
        per_key_seqs.entry(s.key).or_default().push(s.seq);
    }
    assert_eq!(per_key_seqs.len(), keys);
    for (key, seqs) in per_key_seqs {
        // A crashed relay's unmarked batch may come again, as a replay from an earlier
        // point; what a deduplicating consumer sees (first copies) is in order.
        let mut first_copies = Vec::new();
        for s in seqs {
            if !first_copies.contains(&s) {
                first_copies.push(s);
            }
        }
        assert_eq!(first_copies, (1..=per_key).collect::<Vec<_>>(), "{key}");
    }
}

both!(retention_purges_sent_outbox_rows_only, retention_case);
async fn retention_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store().with_topic("accounts").unwrap();
    store
        .append(
            "account-1",
            ExpectedVersion::NoStream,
            vec![step("account-1", 1)],
        )
        .await
        .unwrap();
    let mut tx = db.begin().await.unwrap();
    enqueue_all(&mut tx, "orders", &[step("a", 1), step("b", 1)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let bus = MemoryTransport::new();
    let relay = db.relay(bus.clone()).with_config(RelayConfig {
        retention: Duration::ZERO,
        ..fast()
    });
    // Nothing is sent yet: nothing to purge.
    assert_eq!(relay.purge().await.unwrap(), 0);
    let backlog = relay.backlog().await.unwrap();
    assert_eq!(backlog.events, 3);
    assert!(backlog.oldest_age.is_some());
    relay.run_once().await.unwrap();
    assert_eq!(published(&bus, "accounts").len(), 1);
    assert_eq!(published(&bus, "orders").len(), 2);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(relay.purge().await.unwrap(), 2);
    assert_eq!(relay.backlog().await.unwrap().events, 0);
    assert_eq!(relay.backlog().await.unwrap().oldest_age, None);
    // The store's event stays.
    assert_eq!(
        store
            .read_stream("account-1", 1, herald_sql::Direction::Forward, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_relay_wakes_on_notify() {
    let Some(f) = postgres().await else { return };
    let bus = MemoryTransport::new();
    let relay =
        f.db.relay(bus.clone())
            .with_config(RelayConfig {
                poll_interval: Duration::from_secs(600),
                ..fast()
            })
            .start();
    // Let the relay finish its first (empty) pass and wait.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = f.db.begin().await.unwrap();
    enqueue(&mut tx, "orders", &step("k", 1)).await.unwrap();
    tx.commit().await.unwrap();
    let started = std::time::Instant::now();
    while published(&bus, "orders").is_empty() {
        // Far below the 600 s poll interval: only the notification can have woken it.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "relay not woken"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    relay.shutdown().await.unwrap();
}
