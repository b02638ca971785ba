//! Herald in a relational database: a transactional outbox and its relay, an event store
//! with optimistic concurrency, aggregates, CQRS projections and upcasters, on SQLite
//! (embedded) and PostgreSQL (scale) with one API.
//!
//! - [`HeraldDb`]: a pool with herald-sql's schema (migrations applied on connect).
//! - [`enqueue`]: an event into the outbox, inside the caller's transaction.
//! - [`Relay`]: publishes committed outbox rows and store events through any
//!   [`herald::transport::Publisher`], at least once and in commit order per key.
//! - [`EventStore`]: streams with versions and a commit-ordered global position.
//!
//! Every type is generic over the database, [`Backend`]: `sqlx::Sqlite` or
//! `sqlx::Postgres`. See `docs/sql.md` for the tables and guarantees.
#![deny(missing_docs)]

pub mod aggregate;
mod backend;
mod codec;
mod db;
mod error;
mod migrate;
pub mod outbox;
pub mod projection;
pub mod relay;
pub mod store;
pub mod upcast;
mod wake;

pub use aggregate::{Aggregate, Executed, Loaded, Repository, RepositoryError};
pub use backend::Backend;
pub use codec::RELAY_SLOTS;
pub use db::HeraldDb;
pub use error::{BoxError, Conflict, Error, Result};
pub use outbox::{enqueue, enqueue_all, enqueue_event};
pub use projection::{Lag, Projection, ProjectionConfig, ProjectionHandle, ProjectionRunner};
pub use relay::{Backlog, Relay, RelayConfig, RelayHandle, RelayStats};
pub use store::{
    AppendResult, Direction, EventStore, ExpectedVersion, RecordedEvent, Snapshot, StreamAppend,
};
pub use upcast::Upcasters;
