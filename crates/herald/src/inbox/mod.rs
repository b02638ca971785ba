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
//!
//! # Stores
//!
//! | store | feature | shares the handler's transaction | forgets entries |
//! | --- | --- | --- | --- |
//! | [`MemoryInbox`] | always | no | [`purge_before`](Inbox::purge_before), or a retention |
//! | `SqliteInbox` | `sqlite` | yes: `mark_processed_in` | [`purge_before`](Inbox::purge_before) |
//! | `PostgresInbox` | `postgres` | yes: `mark_processed_in` | [`purge_before`](Inbox::purge_before) |
//! | `RedisInbox` | `redis` | no | its retention (a key TTL) |
//!
//! Each store's type documentation has a complete example. The SQL stores create their
//! table on connect with `CREATE TABLE IF NOT EXISTS` (there is nothing to migrate by
//! hand, and a deployment that manages its schema itself can create the same table
//! first):
//!
//! ```sql
//! CREATE TABLE herald_inbox (
//!     group_id     TEXT NOT NULL,
//!     event_id     TEXT NOT NULL,
//!     processed_at ...  NOT NULL, -- SQLite: INTEGER ms since the Unix epoch; PostgreSQL: TIMESTAMPTZ
//!     PRIMARY KEY (group_id, event_id)
//! );
//! CREATE INDEX herald_inbox_processed_at ON herald_inbox (processed_at);
//! ```
//!
//! Entries are stamped with the application's clock, the same clock
//! [`purge_before`](Inbox::purge_before)'s cutoff comes from.

use std::time::SystemTime;

use thiserror::Error;

use crate::transport::BoxFuture;

mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

#[cfg(feature = "redis")]
pub use self::redis::RedisInbox;
pub use memory::MemoryInbox;
#[cfg(feature = "postgres")]
pub use postgres::PostgresInbox;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteInbox;

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
    #[cfg(any(feature = "sqlite", feature = "postgres", feature = "redis"))]
    fn store(store: &str, doing: &str, e: impl std::fmt::Display) -> Self {
        Self {
            message: format!("{store} inbox: {doing}: {e}"),
        }
    }
}

/// Checks a table name that is spliced into SQL: `name` or, when `qualified` is allowed,
/// `schema.name`; each part an unquoted identifier of at most 63 bytes.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn check_table_name(name: &str, qualified: bool) -> Result<(), InboxError> {
    let parts: Vec<&str> = name.split('.').collect();
    let identifier = |p: &&str| {
        !p.is_empty()
            && p.len() <= 63
            && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if parts.len() <= if qualified { 2 } else { 1 } && parts.iter().all(identifier) {
        Ok(())
    } else {
        Err(InboxError {
            message: format!(
                "inbox table name {name:?} is not {}an unquoted SQL identifier",
                if qualified {
                    "`name` or `schema.name` with "
                } else {
                    ""
                }
            ),
        })
    }
}

/// `at` in milliseconds since the Unix epoch (negative before it).
#[cfg(feature = "sqlite")]
fn unix_millis(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `at` in seconds since the Unix epoch, as PostgreSQL's `to_timestamp` takes it.
#[cfg(feature = "postgres")]
fn unix_seconds(at: SystemTime) -> f64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(all(test, any(feature = "sqlite", feature = "postgres")))]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers() {
        assert!(check_table_name("herald_inbox", false).is_ok());
        assert!(check_table_name("_t2", false).is_ok());
        assert!(check_table_name("app.herald_inbox", true).is_ok());
        for bad in ["", "2t", "a-b", "t; DROP TABLE x", "a.b", "\"t\"", "a.b.c"] {
            assert!(check_table_name(bad, false).is_err(), "{bad:?} accepted");
        }
        assert!(check_table_name("a.b.c", true).is_err());
        assert!(check_table_name(".t", true).is_err());
        assert!(check_table_name(&"x".repeat(64), false).is_err());
    }
}
