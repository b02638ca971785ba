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
mod inbox_contract;

#[cfg(feature = "redis")]
#[path = "inbox_stores/redis_store.rs"]
mod redis_store;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use common::*;
use herald::{HandlerContext, HandlerError, Inbox, MemoryInbox};
use herald_test_support::{skip_or_fail, unique_name};

use inbox_contract::*;

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
