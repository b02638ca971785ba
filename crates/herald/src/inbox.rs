//! The inbox: which event ids a consumer group has already processed.
//!
//! Transports deliver at least once, so a handler may see an event twice (a producer retry,
//! a consumer that crashed before committing). The router asks the group's inbox before it
//! calls a handler and skips events already processed; after the handler succeeds it marks
//! the event processed.
//!
//! For exactly-once *effects* the mark must commit together with the handler's own writes.
//! A store backed by the same database as the handler (SQLite, PostgreSQL) offers a method
//! that records the id inside the handler's transaction; the handler calls it, then tells
//! the router with [`HandlerContext::mark_inbox_recorded`](crate::router::HandlerContext::mark_inbox_recorded)
//! so the router does not mark it again. Stores that cannot share a transaction (memory,
//! Redis) are marked by the router after the handler returns: a crash between the two
//! replays the handler once.
//!
//! The router's check and mark are race-free for copies of an event with the same key
//! (they are handled one after the other). Copies published under different keys can run
//! concurrently; only a store whose mark is atomic and checked in the handler's unit of
//! work (`INSERT ... ON CONFLICT DO NOTHING`, then roll back if nothing was inserted)
//! keeps their effect single.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, SystemTime},
};

use thiserror::Error;

use crate::transport::BoxFuture;

/// The identity the inbox records: an event id within a consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InboxKey<'a> {
    /// Consumer group.
    pub group: &'a str,
    /// Event id (`ce_id`).
    pub event_id: &'a str,
}

/// An inbox store failed.
#[derive(Debug, Error)]
#[error("inbox store error: {message}")]
pub struct InboxError {
    /// What went wrong.
    pub message: String,
}

/// Where processed event ids are kept. Object-safe, so routers hold `Arc<dyn Inbox>`.
pub trait Inbox: Send + Sync + 'static {
    /// Whether `key` was processed.
    fn is_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// Records `key` as processed; `true` if it was not recorded before.
    fn mark_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>>;

    /// Forgets entries recorded before `cutoff`; returns how many. Duplicates that
    /// arrive later than the retention are processed again, so keep it longer than any
    /// redelivery window (topic retention, replay horizon).
    fn purge_before(&self, cutoff: SystemTime) -> BoxFuture<'_, Result<u64, InboxError>>;
}

/// An inbox in memory, for tests and single-process services whose handlers are
/// idempotent across restarts anyway. Entries older than the retention are dropped as new
/// ones are recorded.
#[derive(Debug)]
pub struct MemoryInbox {
    entries: Mutex<HashMap<(String, String), SystemTime>>,
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
        self.lock().len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), SystemTime>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn purge(entries: &mut HashMap<(String, String), SystemTime>, cutoff: SystemTime) -> u64 {
        let before = entries.len();
        entries.retain(|_, at| *at >= cutoff);
        (before - entries.len()) as u64
    }
}

impl Inbox for MemoryInbox {
    fn is_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>> {
        let entries = self.lock();
        let found = entries
            .get(&(key.group.to_owned(), key.event_id.to_owned()))
            .is_some_and(|at| self.retention.is_none_or(|r| SystemTime::now() < *at + r));
        Box::pin(std::future::ready(Ok(found)))
    }

    fn mark_processed<'a>(&'a self, key: InboxKey<'a>) -> BoxFuture<'a, Result<bool, InboxError>> {
        let now = SystemTime::now();
        let mut entries = self.lock();
        if let Some(r) = self.retention {
            Self::purge(&mut entries, now - r);
        }
        let new = entries
            .insert((key.group.to_owned(), key.event_id.to_owned()), now)
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
