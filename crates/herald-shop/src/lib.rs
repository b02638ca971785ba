//! The reference shop: the order system of the event-driven architecture articles, built
//! only from Herald's public APIs, and the driver behind `herald demo`.
//!
//! An order is placed over HTTP ([`order`]); the order saga ([`saga`]) reserves stock
//! ([`inventory`]), charges the card ([`payment`]) and creates the shipment
//! ([`shipping`]), and when a step fails it releases the stock and refunds the payment,
//! last first. Notification (emails), analytics and loyalty ([`reactions`]) react to the
//! order events; a fraud check ([`fraud`]) joins later without a change to any producer.
//! [`events`] lists the topics and messages.
//!
//! Every service owns its database ([`db`]: a SQLite file, or a PostgreSQL schema), writes
//! its events through herald-sql's transactional outbox, and consumes with the SDK's
//! router: an inbox in the service's own transaction makes each consumer idempotent, a
//! dead-letter topic per consumer group catches what cannot be handled, and every event
//! a handler causes carries the order's correlation id and trace ([`service`]).
//!
//! - [`Shop`]: every service in one process on one transport — the embedded default
//!   (herald-log and SQLite files, no external service), or any other transport.
//! - [`start_service`]: one service, for running them as separate processes against
//!   `herald serve` and PostgreSQL (the `herald-shop` binary).
//! - [`demo`]: `herald demo` — places orders over HTTP, injects failures, checks the
//!   invariants and prints a summary.
//! - [`latency`]: the same order flow synchronous and event-driven, with the article's
//!   latencies (the `shop-latency` binary).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_shop::{Shop, Storage, settings::Settings};
//!
//! let dir = tempfile::tempdir()?;
//! let bus = herald::EmbeddedTransport::open(dir.path().join("log"))?;
//! let shop = Shop::start(bus, Storage::Sqlite(dir.path().join("db")), Settings::default()).await?;
//! let (addr, _server) = shop.serve("127.0.0.1:0".parse()?).await?;
//! println!("POST http://{addr}/orders");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod db;
pub mod demo;
pub mod events;
pub mod fraud;
pub mod inventory;
pub mod latency;

pub mod observed;
pub mod order;
pub mod payment;
pub mod reactions;
pub mod saga;
pub mod service;
pub mod settings;
pub mod shipping;
mod shop;

pub use db::{ServiceDb, Storage};
pub use observed::Observed;
pub use service::ServiceHandle;
pub use shop::{SERVICES, Shop, create_topics, start_order, start_service};

/// Why the shop or one of its services could not start or stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShopError {
    /// A service's database.
    #[error(transparent)]
    Db(#[from] db::DbError),
    /// A consumer group could not start.
    #[error(transparent)]
    Router(#[from] herald::router::RouterError),
    /// The transport (creating topics, publishing).
    #[error(transparent)]
    Transport(#[from] herald::transport::TransportError),
    /// The order saga.
    #[error(transparent)]
    Saga(#[from] herald_saga::SagaError),
    /// The HTTP listener.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Anything else, said in words.
    #[error("{0}")]
    Other(String),
}
