//! [`RedisInbox`]: processed ids as Redis keys that expire after a retention.

use std::time::{Duration, SystemTime};

use redis::aio::ConnectionManager;

use super::{Inbox, InboxError, InboxKey};
use crate::transport::BoxFuture;

/// An inbox in Redis: one key per processed event, `herald:inbox:<group>:<event_id>`,
/// set with `SET key 1 NX PX <retention>`, so marking is atomic (of many concurrent
/// marks of one id exactly one returns `true`) and Redis forgets entries by itself.
/// The parts are joined as they are: keep `:` out of group names, or a group `a:b` and
/// a group `a` could share the key of event ids that collide (`b:c` and `c`).
///
/// **Not transactional with the handler.** Redis cannot commit the mark together with
/// the handler's writes elsewhere, so the router marks the event after the handler
/// succeeds. A crash between the effect and the mark, or a handler that fails after its
/// effect and is retried, repeats the effect; copies of one event under different keys
/// can also run at the same time. Make effects idempotent (an upsert, a conditional
/// write), or use a SQL inbox in the database the effects go to.
///
/// The retention is required: keep it longer than any redelivery window (topic
/// retention, replay horizon). [`purge_before`](Inbox::purge_before) does nothing and
/// returns 0, as expiry already purges.
///
/// A connection manager reconnects after a lost connection; commands issued while it is
/// down fail, and the router retries them.
///
/// ```no_run
/// use std::{sync::Arc, time::Duration};
/// use herald::{HandlerContext, HandlerError, MemoryTransport, Router, inbox::RedisInbox};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let week = Duration::from_secs(7 * 24 * 3600);
/// let inbox = RedisInbox::connect("redis://127.0.0.1:6379", week).await?;
/// let router = Router::builder(MemoryTransport::new(), "mailer")
///     .inbox(Arc::new(inbox))
///     .on_type("orders", "shop.order.placed", |_event, _ctx: HandlerContext| async move {
///         // An idempotent effect: a welcome mail keyed by the order, sent at most once
///         // by the mail service even if this handler runs twice.
///         Ok::<(), HandlerError>(())
///     })
///     .start()
///     .await?;
/// # router.shutdown().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisInbox {
    conn: ConnectionManager,
    retention: Duration,
    prefix: String,
}

impl std::fmt::Debug for RedisInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisInbox")
            .field("retention", &self.retention)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisInbox {
    /// The key prefix used unless another is set.
    pub const DEFAULT_PREFIX: &'static str = "herald:inbox";

    /// Connects to `url` (`redis://host:port[/db]`) with a connection manager; entries
    /// expire `retention` after they are recorded.
    pub async fn connect(url: &str, retention: Duration) -> Result<Self, InboxError> {
        let client = redis::Client::open(url)
            .map_err(|e| InboxError::store("redis", &format!("parsing {url:?}"), e))?;
        let conn = ConnectionManager::new(client)
            .await
            .map_err(|e| InboxError::store("redis", "connecting", e))?;
        Self::new(conn, retention)
    }

    /// An inbox on an existing connection manager. `retention` must be at least 1 ms
    /// (Redis refuses a zero expiry).
    pub fn new(conn: ConnectionManager, retention: Duration) -> Result<Self, InboxError> {
        if retention < Duration::from_millis(1) {
            return Err(InboxError {
                message: format!("redis inbox: retention {retention:?} is under 1 ms"),
            });
        }
        Ok(Self {
            conn,
            retention,
            prefix: Self::DEFAULT_PREFIX.to_owned(),
        })
    }

    /// Uses `prefix` instead of `herald:inbox` (for several applications, or tests,
    /// sharing one Redis database).
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// How long entries are kept.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// The Redis key of `key`.
    pub fn redis_key(&self, key: InboxKey<'_>) -> String {
        format!("{}:{}:{}", self.prefix, key.group, key.event_id)
    }
}

impl Inbox for RedisInbox {
    fn is_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move {
            let found: bool = redis::cmd("EXISTS")
                .arg(self.redis_key(key))
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| InboxError::store("redis", "looking up an event", e))?;
            Ok(found)
        })
    }

    fn mark_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>> {
        Box::pin(async move {
            let millis = u64::try_from(self.retention.as_millis()).unwrap_or(u64::MAX);
            let set: Option<String> = redis::cmd("SET")
                .arg(self.redis_key(key))
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(|e| InboxError::store("redis", "recording an event", e))?;
            Ok(set.is_some())
        })
    }

    fn purge_before(&self, _cutoff: SystemTime) -> BoxFuture<'_, Result<u64, InboxError>> {
        Box::pin(std::future::ready(Ok(0)))
    }
}
