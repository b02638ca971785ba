//! [`MemoryInbox`]: processed ids in a map, for tests and single-process services.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use super::{Inbox, InboxError, InboxKey};

type Entries = HashMap<String, HashMap<String, SystemTime>>;
use crate::transport::BoxFuture;

/// An inbox in memory, for tests and single-process services whose handlers are
/// idempotent across restarts anyway. Entries older than the retention are dropped as new
/// ones are recorded. The router marks events after their handler succeeds.
///
/// ```
/// use std::{sync::Arc, time::Duration};
/// use herald::{HandlerError, Inbox, InboxKey, MemoryInbox, MemoryTransport, Router};
///
/// # tokio::runtime::Runtime::new()?.block_on(async {
/// let inbox = Arc::new(MemoryInbox::with_retention(Duration::from_secs(24 * 3600)));
/// let key = InboxKey { group: "billing", event_id: "e-1" };
/// assert!(inbox.mark_processed(key).await?);
/// assert!(!inbox.mark_processed(key).await?, "a second mark finds the first");
/// assert!(inbox.is_processed(key).await?);
///
/// let router = Router::builder(MemoryTransport::new(), "billing")
///     .inbox(inbox.clone())
///     .on_type("orders", "shop.order.placed", |_event, _ctx| async {
///         Ok::<(), HandlerError>(())
///     })
///     .start()
///     .await?;
/// router.shutdown().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct MemoryInbox {
    /// Group to event id to when it was recorded (nested, so a lookup needs no owned key).
    entries: Mutex<Entries>,
    retention: Option<Duration>,
}

impl Default for MemoryInbox {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryInbox {
    /// An inbox that keeps entries until purged.
    pub fn new() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            retention: None,
        }
    }

    /// An inbox that forgets entries older than `retention`.
    pub fn with_retention(retention: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            retention: Some(retention),
        }
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.lock().values().map(HashMap::len).sum()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.lock().values().all(HashMap::is_empty)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn purge(entries: &mut Entries, cutoff: SystemTime) -> u64 {
        let mut purged = 0;
        entries.retain(|_, ids| {
            let before = ids.len();
            ids.retain(|_, at| *at >= cutoff);
            purged += before - ids.len();
            !ids.is_empty()
        });
        purged as u64
    }
}

impl Inbox for MemoryInbox {
    fn is_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>> {
        let entries = self.lock();
        let found = entries
            .get(key.group)
            .and_then(|ids| ids.get(key.event_id))
            .is_some_and(|at| self.retention.is_none_or(|r| SystemTime::now() < *at + r));
        Box::pin(std::future::ready(Ok(found)))
    }

    fn mark_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>> {
        let now = SystemTime::now();
        let mut entries = self.lock();
        if let Some(r) = self.retention {
            Self::purge(&mut entries, now - r);
        }
        if !entries.contains_key(key.group) {
            entries.insert(key.group.to_owned(), HashMap::new());
        }
        let new = entries
            .get_mut(key.group)
            .expect("inserted above")
            .insert(key.event_id.to_owned(), now)
            .is_none();
        Box::pin(std::future::ready(Ok(new)))
    }

    fn purge_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, InboxError>> {
        let purged = Self::purge(&mut self.lock(), cutoff);
        Box::pin(std::future::ready(Ok(purged)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(group: &'a str, id: &'a str) -> InboxKey<'a> {
        InboxKey {
            group,
            event_id: id,
        }
    }

    #[tokio::test]
    async fn records_ids_per_group() {
        let inbox = MemoryInbox::new();
        assert!(!inbox.is_processed(key("g1", "e1")).await.unwrap());
        assert!(inbox.mark_processed(key("g1", "e1")).await.unwrap());
        assert!(!inbox.mark_processed(key("g1", "e1")).await.unwrap());
        assert!(inbox.is_processed(key("g1", "e1")).await.unwrap());
        assert!(!inbox.is_processed(key("g2", "e1")).await.unwrap());
    }

    #[tokio::test]
    async fn purges_entries_older_than_the_cutoff() {
        let inbox = MemoryInbox::new();
        inbox.mark_processed(key("g", "old")).await.unwrap();
        let cutoff = SystemTime::now() + Duration::from_secs(1);
        assert_eq!(inbox.purge_before(cutoff).await.unwrap(), 1);
        assert!(!inbox.is_processed(key("g", "old")).await.unwrap());
    }

    #[tokio::test]
    async fn retention_expires_entries() {
        let inbox = MemoryInbox::with_retention(Duration::ZERO);
        inbox.mark_processed(key("g", "e")).await.unwrap();
        assert!(!inbox.is_processed(key("g", "e")).await.unwrap());
        inbox.mark_processed(key("g", "f")).await.unwrap();
        assert_eq!(inbox.len(), 1, "the expired entry was purged on insert");
    }
}
