//! The Redis inbox, under a group id of the test's own. Redis cannot share the handler's
//! transaction, so the router marks after the handler and the effect is counted in memory.

use super::*;
use herald::inbox::RedisInbox;

struct RedisStore {
    inbox: Arc<RedisInbox>,
    effects: Counter,
}

impl RedisStore {
    /// A store with `retention`, or `None` when Redis is not configured (skip).
    async fn new(retention: Duration) -> Option<Arc<Self>> {
        let url = herald_test_support::redis_url()?;
        let connect = tokio::time::timeout(
            Duration::from_secs(10),
            RedisInbox::connect(&url, retention),
        );
        let inbox = match connect.await {
            Ok(Ok(inbox)) => inbox,
            Ok(Err(e)) => return skip_or_fail(format!("Redis at {url} unreachable: {e}")),
            Err(_) => return skip_or_fail(format!("Redis at {url} did not answer in 10 s")),
        };
        Some(Arc::new(Self {
            inbox: Arc::new(inbox),
            effects: Counter::default(),
        }))
    }
}

impl Store for RedisStore {
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

const MINUTE: Duration = Duration::from_secs(60);

#[tokio::test]
async fn duplicates_injected_at_the_transport_have_one_effect() {
    let Some(store) = RedisStore::new(MINUTE).await else {
        return;
    };
    duplicates_have_one_effect(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_marks_of_one_id_record_it_once() {
    let Some(store) = RedisStore::new(MINUTE).await else {
        return;
    };
    concurrent_marks_record_once(store.inbox()).await;
}

#[tokio::test]
async fn entries_expire_after_the_retention() {
    let Some(store) = RedisStore::new(Duration::from_millis(300)).await else {
        return;
    };
    let group = unique_name("expiry");
    let inbox = store.inbox();
    assert!(inbox.mark_processed(key(&group, "e")).await.unwrap());
    assert!(inbox.is_processed(key(&group, "e")).await.unwrap());
    assert!(!inbox.mark_processed(key(&group, "e")).await.unwrap());
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        !inbox.is_processed(key(&group, "e")).await.unwrap(),
        "Redis expired the entry"
    );
    assert!(inbox.mark_processed(key(&group, "e")).await.unwrap());
    assert_eq!(
        inbox.purge_before(SystemTime::now()).await.unwrap(),
        0,
        "expiry purges; purge_before has nothing to do"
    );
}

#[tokio::test]
async fn keys_follow_the_documented_layout() {
    let Some(store) = RedisStore::new(MINUTE).await else {
        return;
    };
    assert_eq!(
        store.inbox.redis_key(key("billing", "e-1")),
        "herald:inbox:billing:e-1"
    );
}

#[tokio::test]
async fn a_zero_retention_is_refused() {
    let Some(url) = herald_test_support::redis_url() else {
        return;
    };
    let err = RedisInbox::connect(&url, Duration::ZERO).await.unwrap_err();
    assert!(err.message.contains("retention"), "{err}");
}
