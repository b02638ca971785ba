//! The SDK's inbox stores (memory, Redis) under the router, on real time (the stores do
//! real I/O); the SQL stores are herald-sql's, tested in its `tests/inbox_stores.rs`:
//!
//! - duplicates injected at the transport (a producer retry, a consumer crash) make each
//!   handler's side effect happen exactly once;
//! - retention purges old entries;
//! - concurrent marks of one id: exactly one `true`.
//!
//! Redis comes from `HERALD_TEST_REDIS_URL` (`source scripts/test-env.sh`). Unset, its
//! tests print why and pass; with `HERALD_REQUIRE_SERVICES=1` a missing variable or an
//! unreachable service fails them (herald-test-support's rule). Each Redis test uses a
//! group id of its own.

mod common;

#[cfg(feature = "redis")]
#[path = "inbox_stores/redis_store.rs"]
mod redis_store;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use common::*;
use herald::{
    Envelope, HandlerContext, HandlerError, Inbox, InboxKey, MemoryInbox, MemoryTransport, Router,
    transport::{Admin, PublisherExt, TopicPartition, TopicReader},
};
use herald_test_support::{skip_or_fail, unique_name};

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

/// Effects counted in memory, for stores the router marks after the handler.
#[derive(Default)]
struct Counter(Mutex<HashMap<String, u64>>);

impl Counter {
    fn count(&self, event_id: &str) {
        *self.lock().entry(event_id.to_owned()).or_default() += 1;
    }

    fn snapshot(&self) -> HashMap<String, u64> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
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

/// The memory inbox, marked by the router after the handler.
struct MemoryStore {
    inbox: Arc<MemoryInbox>,
    effects: Counter,
}

impl MemoryStore {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            inbox: Arc::new(MemoryInbox::new()),
            effects: Counter::default(),
        })
    }
}

impl Store for MemoryStore {
    fn inbox(&self) -> Arc<dyn Inbox> {
        self.inbox.clone()
    }

    fn handle(
        self: Arc<Self>,
        ctx: HandlerContext,
        fail: bool,
    ) -> BoxFuture<Result<(), HandlerError>> {
        self.effects.count(ctx.inbox_key().event_id);
        Box::pin(std::future::ready(if fail {
            Err(HandlerError::transient(std::io::Error::other(
                "failed after the effect",
            )))
        } else {
            Ok(())
        }))
    }

    fn effects(self: Arc<Self>) -> BoxFuture<HashMap<String, u64>> {
        Box::pin(std::future::ready(self.effects.snapshot()))
    }
}

mod memory {
    use super::*;

    #[tokio::test]
    async fn duplicates_injected_at_the_transport_have_one_effect() {
        duplicates_have_one_effect(MemoryStore::new()).await;
    }

    #[tokio::test]
    async fn purge_before_forgets_older_entries() {
        purge_forgets_entries_before_the_cutoff(MemoryStore::new().inbox()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_marks_of_one_id_record_it_once() {
        concurrent_marks_record_once(MemoryStore::new().inbox()).await;
    }
}
