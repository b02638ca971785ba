//! The inbox: which event ids a consumer group has already processed.
//!
//! Transports deliver at least once, so a handler may see an event twice (a producer retry,
//! a consumer that crashed before committing). The router asks the group's inbox before it
//! calls a handler and skips events already processed; after the handler succeeds it marks
//! the event processed.
//!
//! For exactly-once *effects* the mark must commit together with the handler's own writes.
//! A store backed by the same database as the handler offers a method that records the
//! id inside the handler's transaction; the handler calls it, then tells the router with
//! [`HandlerContext::mark_inbox_recorded`](crate::router::HandlerContext::mark_inbox_recorded)
//! so the router does not mark it again. The SQL stores that do this, `SqliteInbox` and
//! `PostgresInbox`, live in `herald-sql` (the SDK has no SQL): they implement [`Inbox`].
//! Stores that cannot share a transaction (memory, Redis) are marked by the router after
//! the handler returns: a crash between the two replays the handler once.
//!
//! The router's check and mark are race-free for copies of an event with the same key
//! (they are handled one after the other). Copies published under different keys can run
//! concurrently; only a store whose mark is atomic and checked in the handler's unit of
//! work (`INSERT ... ON CONFLICT DO NOTHING`, then roll back if nothing was inserted)
//! keeps their effect single.
//!
//! # Stores
//!
//! | store | where | shares the handler's transaction | forgets entries |
//! | --- | --- | --- | --- |
//! | [`MemoryInbox`] | always | no | [`purge_before`](Inbox::purge_before), or a retention |
//! | `RedisInbox` | feature `redis` | no | its retention (a key TTL) |
//! | `herald_sql::SqliteInbox` | crate `herald-sql` | yes: `mark_processed_in` | [`purge_before`](Inbox::purge_before) |
//! | `herald_sql::PostgresInbox` | crate `herald-sql` | yes: `mark_processed_in` | [`purge_before`](Inbox::purge_before) |
//!
//! Each store's type documentation has a complete example.
//!
//! Entries are stamped with the application's clock, the same clock
//! [`purge_before`](Inbox::purge_before)'s cutoff comes from.

use std::time::SystemTime;

use thiserror::Error;

use crate::transport::BoxFuture;

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::RedisInbox;
pub use memory::MemoryInbox;

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

impl InboxError {
    /// An error of `store` while `doing` something.
    #[cfg(feature = "redis")]
    fn store(store: &str, doing: &str, e: impl std::fmt::Display) -> Self {
        Self {
            message: format!("{store} inbox: {doing}: {e}"),
        }
    }
}
