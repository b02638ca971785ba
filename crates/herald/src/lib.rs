//! The Herald SDK: events, publishing, and a consumer runtime you can trust.
//!
//! - [`Envelope`]: one event — CloudEvents 1.0 attributes, Herald's correlation and trace
//!   extensions, a partition key and the data — carried as a Kafka record in binary mode.
//!   [`Event`] gives an event type a Rust type (JSON on the wire).
//! - [`transport`]: the [`Publisher`](transport::Publisher),
//!   [`Subscriber`](transport::Subscriber) / [`Consumer`](transport::Consumer),
//!   [`TopicReader`](transport::TopicReader) and [`Admin`](transport::Admin) traits, with
//!   two transports that need no broker: [`MemoryTransport`] for tests and
//!   [`EmbeddedTransport`] on herald-log.
//! - [`Router`]: a consumer-group member that hands events to handlers by type with
//!   bounded concurrency and per-key order, retries ([`RetryPolicy`]), dead-letters
//!   ([`dlq`]), deduplicates through an [`Inbox`], and commits only final outcomes.
//! - [`inbox`]: where the ids of processed events are kept — the [`Inbox`] trait,
//!   [`MemoryInbox`], and behind the cargo feature `redis` (on by default) a Redis store
//!   with a retention. The SQLite and PostgreSQL stores, which record the id in the
//!   handler's own transaction, are herald-sql's: the SDK has no SQL.
//! - [`resequencer`]: events of one entity handed over in the order of their sequence
//!   numbers (a `herald_seq` header), with bounded buffering and gap reports;
//!   [`RouterBuilder::resequence`](router::RouterBuilder::resequence) turns it on per topic.
//! - [`DeadLetterQueue`]: list, replay and discard dead letters.
//! - Events published from a handler ([`HandlerContext::publish_event`]) carry the
//!   handled event's correlation id, its id as causation id and its trace.
//! - Metrics go through the `metrics` facade ([`telemetry`]); each handled event gets a
//!   `tracing` span. With the cargo feature `otel`, that span continues the event's
//!   OpenTelemetry trace and events published inside a span carry its context (`otel`
//!   module: how to export with OTLP).
//!
//! # Quick start
//!
//! ```
//! use std::sync::Arc;
//! use herald::{
//!     Envelope, Event, HandlerContext, HandlerError, MemoryInbox, Router,
//!     transport::{embedded::EmbeddedTransport, Admin, PublisherExt},
//! };
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct OrderPlaced { order_id: String, total_cents: u64 }
//!
//! impl Event for OrderPlaced {
//!     const TYPE: &'static str = "shop.order.placed";
//!     fn key(&self) -> String { self.order_id.clone() }
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct InvoiceIssued { order_id: String }
//!
//! impl Event for InvoiceIssued {
//!     const TYPE: &'static str = "billing.invoice.issued";
//!     fn key(&self) -> String { self.order_id.clone() }
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let bus = EmbeddedTransport::open(dir.path())?;
//! bus.create_topic("orders", 4).await?;
//!
//! // A consumer group "billing" that turns orders into invoices.
//! let router = Router::builder(bus.clone(), "billing")
//!     .source("urn:shop:billing")
//!     .inbox(Arc::new(MemoryInbox::new()))
//!     .on("orders", |order: OrderPlaced, ctx: HandlerContext| async move {
//!         let invoice = InvoiceIssued { order_id: order.order_id };
//!         ctx.publish_event("invoices", &invoice).await?;
//!         Ok::<(), HandlerError>(())
//!     })
//!     .start()
//!     .await?;
//!
//! let placed = Envelope::from_event("urn:shop:orders", &OrderPlaced {
//!     order_id: "o-1".into(),
//!     total_cents: 1250,
//! })?;
//! bus.publish_envelope("orders", &placed).await?;
//!
//! // Wait for the invoice, then stop the router (it drains and commits).
//! let mut invoices = herald::transport::Subscriber::subscribe(&bus, "audit", &["invoices"]).await?;
//! let records = herald::transport::Consumer::poll(&mut invoices, 1).await?;
//! let invoice = Envelope::from_record(&records[0])?;
//! assert_eq!(invoice.causation_id.as_deref(), Some(placed.id.as_str()));
//! assert_eq!(invoice.correlation_id.as_deref(), Some(placed.id.as_str()));
//! let stats = router.shutdown().await?;
//! assert_eq!(stats.handled, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Moving to Kafka or Redpanda
//!
//! Routers, handlers, dead letters and the inbox only see the
//! [`Transport`](transport::Transport) traits. When one process is not enough, run
//! `herald serve` (or use an existing Apache Kafka or Redpanda cluster) and swap the
//! transport; nothing else changes:
//!
//! ```no_run
//! # #[cfg(feature = "kafka")]
//! # fn main() -> Result<(), herald::transport::TransportError> {
//! // let bus = EmbeddedTransport::open(dir.path())?;
//! let bus = herald::KafkaTransport::connect("localhost:9092")?;
//! # let _ = bus;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "kafka"))]
//! # fn main() {}
//! ```
//!
//! [`KafkaConfig`](transport::kafka::KafkaConfig) takes any librdkafka property for
//! SASL, timeouts or compression. The Kafka transport is the cargo feature `kafka` (on by
//! default; it builds the bundled librdkafka with `make`): without it the SDK needs no C
//! toolchain. Keys land on the same partitions with every transport, so the move keeps
//! per-key order.
#![deny(missing_docs)]

pub mod correlation;
pub mod dlq;
/// The CloudEvents envelope and its mapping onto a record; defined in herald-format.
#[doc(inline)]
pub use herald_format::envelope;
/// Typed events: a Rust type per event type, JSON on the wire; defined in herald-format.
#[doc(inline)]
pub use herald_format::event;
pub mod inbox;
#[cfg(feature = "otel")]
pub mod otel;
pub mod resequencer;
pub mod retry;
/// RFC 3339 timestamps, as the envelope's `time` uses them; defined in herald-format.
#[doc(inline)]
pub use herald_format::rfc3339;
pub mod router;
pub mod telemetry;
pub mod transport;

pub use dlq::{DeadLetter, DeadLetterFilter, DeadLetterPolicy, DeadLetterQueue, ReplayTarget};
pub use envelope::{Envelope, EnvelopeError};
pub use event::{Event, EventError};
#[cfg(feature = "redis")]
pub use inbox::RedisInbox;
pub use inbox::{Inbox, InboxKey, MemoryInbox};
pub use retry::{ErrorKind, HandlerError, Jitter, RetryPolicy};
pub use router::{HandlerContext, Router, RouterConfig, RouterHandle, RouterStats};
#[cfg(feature = "kafka")]
pub use transport::kafka::KafkaTransport;
pub use transport::{embedded::EmbeddedTransport, memory::MemoryTransport};
