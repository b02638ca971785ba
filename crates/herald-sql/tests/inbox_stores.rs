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
#[path = "../../herald/tests/inbox_contract/mod.rs"]
mod inbox_contract;

#[path = "inbox_stores/postgres_store.rs"]
mod postgres_store;
#[path = "inbox_stores/sqlite_store.rs"]
mod sqlite_store;

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::step;
use herald::{
    Envelope, HandlerContext, HandlerError, Inbox, MemoryTransport, RetryPolicy, Router,
    transport::{Admin, PublisherExt},
};
use herald_test_support::{skip_or_fail, unique_name};
use tokio::sync::Barrier;

use inbox_contract::*;

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
