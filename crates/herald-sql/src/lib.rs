//! Herald in a relational database: a transactional outbox and its relay, an event store
//! with optimistic concurrency, aggregates, CQRS projections and upcasters, on SQLite
//! (embedded default) and PostgreSQL (scale) with one API.
//!
//! - [`HeraldDb`]: a pool with herald-sql's schema; migrations are applied on connect.
//! - [`Database`]: SQLite or PostgreSQL chosen at run time from a URL, with its inbox.
//! - [`TransactionalHandler`]: a consumer's inbox mark, own writes and outbox replies in
//!   one transaction ([`Database::handle`], [`UnitOfWork`]).
//! - [`enqueue`]: an event into the outbox, inside the caller's own transaction.
//! - [`Relay`]: publishes committed outbox rows and store events through any
//!   [`herald::transport::Publisher`] (memory, embedded, Kafka), at least once and in
//!   commit order per key; several relays share the work.
//! - [`EventStore`]: streams with versions and a commit-ordered global position;
//!   [`ExpectedVersion`] checks with a typed [`Conflict`]; multi-stream appends,
//!   tombstones, snapshots. With a topic, it is also an outbox.
//! - [`Aggregate`] and [`Repository`]: load (snapshot plus tail), decide, append with
//!   optimistic concurrency; state as of a version or a time.
//! - [`Projection`] and [`ProjectionRunner`]: read models whose checkpoint commits with
//!   them; catch-up, live, rebuild, lag metrics.
//! - [`Upcasters`]: old event versions converted on read.
//! - [`SqliteInbox`] and [`PostgresInbox`]: the SDK's [`herald::Inbox`] in a table of the
//!   service's database, markable inside the handler's transaction.
//!
//! Every type is generic over the database, [`Backend`]: `sqlx::Sqlite` or
//! `sqlx::Postgres`; transactions are sqlx's own. `docs/sql.md` describes the tables, the
//! ordering guarantee and the relay.
//!
//! # Quick start
//!
//! ```
//! use herald::{Envelope, MemoryTransport};
//! use herald_sql::{Direction, ExpectedVersion, HeraldDb, enqueue};
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let db = HeraldDb::open(dir.path().join("shop.db")).await?; // or HeraldDb::connect(pg_url)
//! sqlx::query("CREATE TABLE orders (id TEXT PRIMARY KEY)").execute(db.pool()).await?;
//!
//! // The order and its event commit together, or neither does.
//! let placed = Envelope::new("urn:shop", "shop.order.placed", r#"{"total":1250}"#)
//!     .with_key("order-1");
//! let mut tx = db.begin().await?;
//! sqlx::query("INSERT INTO orders (id) VALUES ($1)").bind("order-1").execute(&mut *tx).await?;
//! enqueue(&mut tx, "orders", &placed).await?;
//! tx.commit().await?;
//!
//! // The relay publishes it (here one pass; `start()` runs it in the background).
//! let bus = MemoryTransport::new();
//! let relay = db.relay(bus.clone());
//! assert_eq!(relay.run_once().await?, 1);
//! assert_eq!(Envelope::from_record(&bus.records("orders")[0])?, placed);
//!
//! // The event store: a second writer with a stale expected version gets a conflict.
//! let store = db.event_store();
//! let opened = Envelope::new("urn:bank", "bank.opened", "{}");
//! store.append("account-1", ExpectedVersion::NoStream, vec![opened.clone()]).await?;
//! let err = store.append("account-1", ExpectedVersion::NoStream, vec![opened]).await.unwrap_err();
//! assert_eq!(err.as_conflict().map(|c| c.actual), Some(Some(1)));
//! let events = store.read_stream("account-1", 1, Direction::Forward, 10).await?;
//! assert_eq!(events[0].version, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod aggregate;
mod backend;
mod codec;
mod database;
mod db;
mod error;
pub mod handler;
pub mod inbox;
pub mod migrate;
pub mod outbox;
pub mod projection;
pub mod relay;
pub mod store;
mod transaction;
pub mod upcast;
mod value;
mod version;
mod wake;

pub use aggregate::{Aggregate, Executed, Loaded, Repository, RepositoryError};
pub use backend::Backend;
pub use codec::RELAY_SLOTS;
pub use database::Database;
pub use db::HeraldDb;
pub use error::{BoxError, Conflict, Error, Result};
pub use handler::{TransactionalHandler, UnitOfWork, UnitOfWorkFuture};
pub use inbox::{PostgresInbox, SqliteInbox};
pub use outbox::{enqueue, enqueue_all, enqueue_event};
pub use projection::{Lag, Projection, ProjectionConfig, ProjectionHandle, ProjectionRunner};
pub use relay::{Backlog, Relay, RelayConfig, RelayHandle, RelayStats};
pub use store::{
    AppendResult, Direction, EventStore, ExpectedVersion, RecordedEvent, Snapshot, StreamAppend,
};
pub use transaction::DatabaseTransaction;
pub use upcast::Upcasters;
pub use value::{FromValue, Row, Value};
