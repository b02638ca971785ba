//! The SQL inbox stores: [`SqliteInbox`] and [`PostgresInbox`], implementations of the
//! SDK's [`herald::Inbox`] that can record an event id inside the handler's own
//! transaction (`mark_processed_in`), so the mark commits with the handler's effect.
//!
//! The router asks the inbox before it calls a handler and skips events already
//! processed. A handler that records the id in its transaction tells the router with
//! [`HandlerContext::mark_inbox_recorded`](herald::HandlerContext::mark_inbox_recorded),
//! so the router does not mark it again; [`Database::handle`](crate::Database::handle)
//! does all of that for a [`TransactionalHandler`](crate::TransactionalHandler).
//!
//! # The table
//!
//! The default table, `herald_inbox`, is created by herald-sql's migration runner
//! ([`INBOX`]: component `herald-inbox`, version table `herald_inbox_migrations`) when
//! the store is created, with `CREATE TABLE IF NOT EXISTS`, so a database whose table an
//! older build created carries on:
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
//! A table of another name (`with_table`) cannot be a migration: the runner's statements
//! are fixed text, and the name is the caller's. Such a table is created with
//! `CREATE TABLE IF NOT EXISTS` directly (on PostgreSQL under an advisory lock named
//! after it), as before; a deployment that manages its schema itself can create it
//! first.
//!
//! Entries are stamped with the application's clock, the same clock
//! [`purge_before`](herald::Inbox::purge_before)'s cutoff comes from.

use std::time::SystemTime;

use herald::inbox::InboxError;

use crate::migrate::{Migration, Schema};

mod postgres;
mod sql;
mod sqlite;

pub use postgres::PostgresInbox;
pub use sqlite::SqliteInbox;

/// The default inbox table, `herald_inbox`, as a migrated schema.
pub const INBOX: Schema = Schema {
    component: "herald-inbox",
    version_table: "herald_inbox_migrations",
    sqlite: &[Migration {
        version: 1,
        description: "herald_inbox",
        statements: &[
            "CREATE TABLE IF NOT EXISTS herald_inbox (
                group_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                processed_at INTEGER NOT NULL,
                PRIMARY KEY (group_id, event_id)
            ) WITHOUT ROWID",
            "CREATE INDEX IF NOT EXISTS herald_inbox_processed_at ON herald_inbox (processed_at)",
        ],
    }],
    postgres: &[Migration {
        version: 1,
        description: "herald_inbox",
        statements: &[
            "CREATE TABLE IF NOT EXISTS herald_inbox (
                group_id TEXT NOT NULL,
                event_id TEXT NOT NULL,
                processed_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (group_id, event_id)
            )",
            "CREATE INDEX IF NOT EXISTS herald_inbox_processed_at ON herald_inbox (processed_at)",
        ],
    }],
};

/// The table used unless another is named.
pub(crate) const DEFAULT_TABLE: &str = "herald_inbox";

/// An error of `store` while `doing` something.
fn store_error(store: &str, doing: &str, e: impl std::fmt::Display) -> InboxError {
    InboxError {
        message: format!("{store} inbox: {doing}: {e}"),
    }
}

/// Checks a table name that is spliced into SQL: `name` or, when `qualified` is allowed,
/// `schema.name`; each part an unquoted identifier of at most 63 bytes.
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
fn unix_millis(at: SystemTime) -> i64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `at` in seconds since the Unix epoch, as PostgreSQL's `to_timestamp` takes it.
fn unix_seconds(at: SystemTime) -> f64 {
    match at.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
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
