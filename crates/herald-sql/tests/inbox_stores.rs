//! The SQL inbox stores (SQLite, PostgreSQL) under the SDK's router, on real time (the
//! stores do real I/O); the effect is a row written in the same transaction as the inbox
//! mark:
//!
//! - duplicates injected at the transport (a producer retry, a consumer crash) make each
//!   handler's side effect happen exactly once;
//! - a handler that fails after writing rolls the write and the mark back (the retry
//!   writes once), and copies of one event running at the same time under different keys
//!   write once;
//! - retention purges old entries;
//! - concurrent marks of one id: exactly one `true`.
//!
//! PostgreSQL comes from `HERALD_TEST_POSTGRES_URL` (`source scripts/test-env.sh`).
//! Unset, its tests print why and pass; with `HERALD_REQUIRE_SERVICES=1` a missing
//! variable or an unreachable server fails them (herald-test-support's rule). Each
//! PostgreSQL test works in a schema of its own, dropped at the end.

mod common;

#[path = "inbox_stores/postgres_store.rs"]
mod postgres_store;
#[path = "inbox_stores/sqlite_store.rs"]
mod sqlite_store;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use common::step;
use herald::{
    Envelope, HandlerContext, HandlerError, Inbox, InboxKey, MemoryTransport, RetryPolicy, Router,
    transport::{Admin, PublisherExt, TopicPartition, TopicReader},
};
use herald_test_support::{skip_or_fail, unique_name};
use tokio::sync::Barrier;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An inbox store and the side effect its handlers make.
trait Store: Send + Sync + 'static {
    /// The inbox the router checks and (for non-transactional stores) marks.
    fn inbox(&self) -> Arc<dyn Inbox>;
    /// The handler's unit of work for the handled event: its effect and, for a SQL store,
    /// the inbox mark in the same transaction. With `fail`, it fails after the effect.
    fn handle(
        self: Arc<Self>,
        ctx: HandlerContext,
        fail: bool,
    ) -> BoxFuture<Result<(), HandlerError>>;
    /// How often each event id's effect happened.
    fn effects(self: Arc<Self>) -> BoxFuture<HashMap<String, u64>>;
}

/// Waits until `group` has committed every record of `topic`: all outcomes are final.
async fn settle(t: &MemoryTransport, group: &str, topic: &str) {
    let partitions = t.partitions(topic).await.unwrap().unwrap();
    for _ in 0..3_000 {
        let mut done = true;
        for p in 0..partitions {
            let tp = TopicPartition::new(topic, p);
            let end = t.end_offset(&tp).await.unwrap();
            done &= end == 0 || t.committed(group, &tp) == Some(end);
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{group} never committed all of {topic}");
}

fn key<'a>(group: &'a str, event_id: &'a str) -> InboxKey<'a> {
    InboxKey { group, event_id }
}

/// A producer retry duplicates two records, then a consumer crash replays the partition
/// from 0: every event's effect happened once, and the router counted the copies as
/// duplicates.
async fn duplicates_have_one_effect<S: Store>(store: Arc<S>) {
    let t = MemoryTransport::new();
    t.create_topic("orders", 1).await.unwrap();
    let group = unique_name("dedup");
    let events = [step("a", 0), step("a", 1), step("b", 0), step("c", 0)];
    t.publish_envelopes("orders", &events).await.unwrap();
    let tp = TopicPartition::new("orders", 0);
    t.duplicate(&tp, 1).unwrap();
    t.duplicate(&tp, 2).unwrap();
    let handler_store = store.clone();
    let router = Router::builder(t.clone(), group.as_str())
        .inbox(store.inbox())
        .on_type("orders", "test.step", move |_e: Envelope, ctx| {
            handler_store.clone().handle(ctx, false)
        })
        .start()
        .await
        .unwrap();
    settle(&t, &group, "orders").await;
    t.redeliver(&group, &tp, 0).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    settle(&t, &group, "orders").await;
    let stats = router.shutdown().await.unwrap();
    let expected: HashMap<String, u64> = events.iter().map(|e| (e.id.clone(), 1)).collect();
    assert_eq!(
        store.clone().effects().await,
        expected,
        "one effect per event"
    );
    assert_eq!(stats.handled, 4);
    assert_eq!(
        stats.duplicates,
        2 + 6,
        "two producer copies, six redelivered records"
    );
    for e in &events {
        assert!(
            store
                .inbox()
                .is_processed(key(&group, &e.id))
                .await
                .unwrap()
        );
    }
}

/// Four copies of one event under four keys run at the same time; all of them pass the
/// router's inbox check before any records the event (a barrier holds them), so only the
/// store's mark in the handler's transaction keeps the effect single.
async fn concurrent_copies_write_once<S: Store>(store: Arc<S>) {
    const COPIES: usize = 4;
    let t = MemoryTransport::new();
    t.create_topic("orders", 1).await.unwrap();
    let group = unique_name("copies");
    let event = step("k0", 0);
    let copies: Vec<Envelope> = (0..COPIES)
        .map(|i| event.clone().with_key(format!("k{i}")))
        .collect();
    t.publish_envelopes("orders", &copies).await.unwrap();
    let barrier = Arc::new(Barrier::new(COPIES));
    let handler_store = store.clone();
    let router = Router::builder(t.clone(), group.as_str())
        .concurrency(COPIES)
        .inbox(store.inbox())
        .on_type("orders", "test.step", move |_e: Envelope, ctx| {
            let (store, barrier) = (handler_store.clone(), barrier.clone());
            async move {
                barrier.wait().await;
                store.handle(ctx, false).await
            }
        })
        .start()
        .await
        .unwrap();
    settle(&t, &group, "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!(
        stats.handled, COPIES as u64,
        "every copy's handler returned Ok"
    );
    assert_eq!(
        store.clone().effects().await,
        HashMap::from([(event.id.clone(), 1)]),
        "one committed effect"
    );
}

/// The first attempt writes its effect and the mark, then fails before committing: both
/// roll back, and the second attempt writes once.
async fn a_failure_after_the_write_rolls_back_both<S: Store>(store: Arc<S>) {
    let t = MemoryTransport::new();
    t.create_topic("orders", 1).await.unwrap();
    let group = unique_name("rollback");
    let event = step("a", 0);
    t.publish_envelope("orders", &event).await.unwrap();
    let handler_store = store.clone();
    let attempts = Arc::new(AtomicU64::new(0));
    let seen = attempts.clone();
    let router = Router::builder(t.clone(), group.as_str())
        .retry(RetryPolicy::default().with_max_attempts(3).with_delays(
            Duration::from_millis(10),
            Duration::from_millis(10),
            1.0,
        ))
        .inbox(store.inbox())
        .on_type(
            "orders",
            "test.step",
            move |_e: Envelope, ctx: HandlerContext| {
                seen.fetch_add(1, Ordering::SeqCst);
                let fail = ctx.attempt() == 1;
                handler_store.clone().handle(ctx, fail)
            },
        )
        .start()
        .await
        .unwrap();
    settle(&t, &group, "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!((stats.handled, stats.dead_lettered), (1, 0));
    assert_eq!(
        store.clone().effects().await,
        HashMap::from([(event.id.clone(), 1)])
    );
    assert!(
        store
            .inbox()
            .is_processed(key(&group, &event.id))
            .await
            .unwrap()
    );
}

/// Entries recorded before the cutoff go; later ones stay.
async fn purge_forgets_entries_before_the_cutoff(inbox: Arc<dyn Inbox>) {
    let group = unique_name("purge");
    assert!(inbox.mark_processed(key(&group, "old")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cutoff = SystemTime::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(inbox.mark_processed(key(&group, "new")).await.unwrap());
    assert_eq!(inbox.purge_before(cutoff).await.unwrap(), 1);
    assert!(!inbox.is_processed(key(&group, "old")).await.unwrap());
    assert!(inbox.is_processed(key(&group, "new")).await.unwrap());
    assert!(
        inbox.mark_processed(key(&group, "old")).await.unwrap(),
        "a purged id is new again"
    );
}

/// Of many tasks marking one id at once, exactly one records it.
async fn concurrent_marks_record_once(inbox: Arc<dyn Inbox>) {
    let group = Arc::new(unique_name("race"));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (inbox, group) = (inbox.clone(), group.clone());
            tokio::spawn(async move { inbox.mark_processed(key(&group, "e")).await.unwrap() })
        })
        .collect();
    let mut new = 0;
    for task in tasks {
        new += usize::from(task.await.unwrap());
    }
    assert_eq!(new, 1, "exactly one mark was new");
    assert!(inbox.is_processed(key(&group, "e")).await.unwrap());
    assert!(!inbox.is_processed(key(&group, "other")).await.unwrap());
}
