//! The contract every inbox store keeps under the SDK's router, shared by the SDK's
//! tests (memory, Redis) and herald-sql's (SQLite, PostgreSQL), which include this file:
//! duplicates have one effect, purges forget entries before the cutoff, and concurrent
//! marks of one id record it once. The including test crate provides `step` (the event)
//! and a `Store` for each backend.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, SystemTime},
};

use herald::{
    Envelope, HandlerContext, HandlerError, Inbox, InboxKey, MemoryTransport, Router,
    transport::{Admin, PublisherExt, TopicPartition, TopicReader},
};
use herald_test_support::unique_name;

use super::step;

pub(super) type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An inbox store and the side effect its handlers make.
pub(super) trait Store: Send + Sync + 'static {
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
pub(super) async fn settle(t: &MemoryTransport, group: &str, topic: &str) {
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

pub(super) fn key<'a>(group: &'a str, event_id: &'a str) -> InboxKey<'a> {
    InboxKey { group, event_id }
}

/// A producer retry duplicates two records, then a consumer crash replays the partition
/// from 0: every event's effect happened once, and the router counted the copies as
/// duplicates.
pub(super) async fn duplicates_have_one_effect<S: Store>(store: Arc<S>) {
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
pub(super) async fn purge_forgets_entries_before_the_cutoff(inbox: Arc<dyn Inbox>) {
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
pub(super) async fn concurrent_marks_record_once(inbox: Arc<dyn Inbox>) {
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
