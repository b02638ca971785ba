//! Saga orchestration for Herald: a saga is a persisted state machine of steps, each a
//! command sent to a service and the reply it waits for, with a compensation that undoes
//! it if a later step fails.
//!
//! - [`SagaDefinition`]: the steps, in order. A [`Step`] has a command (a typed
//!   [`herald::Event`] made from the saga's data, sent to a topic keyed by the saga id),
//!   the reply types meaning success or failure, a timeout, a [`StepRetry`] policy
//!   (re-send after a timeout, with backoff) and an optional [`Compensation`].
//! - [`SagaStore`]: herald-saga's tables in a herald-sql [`HeraldDb`](herald_sql::HeraldDb)
//!   (SQLite or PostgreSQL, migrated on creation), and the query API: [`SagaStore::list`],
//!   [`SagaStore::get`] (state and history), [`SagaStore::counts`].
//! - [`SagaManager`]: starts sagas — alone, or inside the caller's transaction
//!   ([`SagaManager::start_in`]) so that e.g. the order, its `OrderPlaced` event and its
//!   saga commit together — and runs transitions: every state change commits in one
//!   transaction with its history and the commands it sends (through herald-sql's
//!   outbox), so no command is lost or sent for a state that never committed.
//! - [`SagaRuntime`]: consumes replies with a herald [`Router`](herald::Router)
//!   (consumer group `saga-{name}`) and fires timeouts from the stored deadlines. It
//!   keeps no state of its own: after a crash, a new runtime carries on from the
//!   database.
//! - [`http::routes`]: `GET /sagas` and `GET /sagas/{id}` for a service to mount;
//!   `herald sagas list|show` in the CLI reads the same.
//!
//! How a saga moves: the first step's command is sent when it starts. A success reply
//! sends the next step's command (or completes the saga); a failure reply runs the
//! compensations of the completed steps, last first, each awaiting its own reply; a
//! timeout re-sends the command per the step's policy, and when attempts run out the
//! step fails — and is compensated too, since it may have taken effect late. The saga
//! ends [`Completed`](SagaStatus::Completed), [`Compensated`](SagaStatus::Compensated),
//! or [`Failed`](SagaStatus::Failed) when a compensation cannot complete.
//!
//! A reply is matched to its saga by its causation id: the id of the command it
//! answers, which is what [`HandlerContext::publish_event`](herald::HandlerContext::publish_event)
//! sets. Replies are idempotent: a duplicate, or a reply to a step the saga has left,
//! changes nothing. Services must be idempotent too (a retried command arrives again,
//! with a new id), and compensations must accept undoing what never happened.
//!
//! `docs/sagas.md` has the model, the tables, the guarantees and the same example done
//! by choreography.
//!
//! # Example: the order saga
//!
//! Reserve stock, charge the payment, create the shipment; if the payment is declined,
//! release the stock.
//!
//! ```
//! use std::time::Duration;
//! use herald::{Event, HandlerContext, HandlerError, MemoryTransport, Router};
//! use herald_saga::{Compensation, SagaDefinition, SagaStatus, SagaStore, Step, StepRetry};
//! use herald_sql::HeraldDb;
//! use serde::{Deserialize, Serialize};
//!
//! /// The saga's data: what the commands are made from.
//! #[derive(Serialize, Deserialize, Clone)]
//! struct Order { order_id: String, sku: String, quantity: u32, cents: u64, payment_id: Option<String> }
//!
//! // Commands and replies: plain herald events.
//! macro_rules! events {
//!     ($($name:ident = $type:literal { $($field:ident: $ty:ty),* })*) => {$(
//!         #[derive(Serialize, Deserialize)]
//!         struct $name { order_id: String, $($field: $ty),* }
//!         impl Event for $name {
//!             const TYPE: &'static str = $type;
//!             fn key(&self) -> String { self.order_id.clone() }
//!         }
//!     )*};
//! }
//! events! {
//!     ReserveStock = "inventory.reserve-stock" { sku: String, quantity: u32 }
//!     StockReserved = "inventory.stock-reserved" {}
//!     OutOfStock = "inventory.out-of-stock" {}
//!     ReleaseStock = "inventory.release-stock" {}
//!     StockReleased = "inventory.stock-released" {}
//!     ChargePayment = "payment.charge" { cents: u64 }
//!     PaymentCharged = "payment.charged" { payment_id: String }
//!     PaymentDeclined = "payment.declined" { reason: String }
//!     RefundPayment = "payment.refund" { payment_id: String }
//!     PaymentRefunded = "payment.refunded" {}
//!     CreateShipment = "shipping.create-shipment" {}
//!     ShipmentCreated = "shipping.shipment-created" {}
//! }
//!
//! fn order_saga() -> Result<SagaDefinition<Order>, herald_saga::SagaError> {
//!     SagaDefinition::builder("order")
//!         .reply_topic("inventory-events")
//!         .reply_topic("payment-events")
//!         .reply_topic("shipping-events")
//!         .step(
//!             Step::new("reserve-stock")
//!                 .command("inventory-commands", |o: &Order| ReserveStock {
//!                     order_id: o.order_id.clone(), sku: o.sku.clone(), quantity: o.quantity,
//!                 })
//!                 .succeeds_on::<StockReserved>()
//!                 .fails_on::<OutOfStock>()
//!                 .timeout(Duration::from_secs(5))
//!                 .compensation(
//!                     Compensation::new("inventory-commands", |o: &Order| ReleaseStock {
//!                         order_id: o.order_id.clone(),
//!                     })
//!                     .succeeds_on::<StockReleased>(),
//!                 ),
//!         )
//!         .step(
//!             Step::new("charge-payment")
//!                 .command("payment-commands", |o: &Order| ChargePayment {
//!                     order_id: o.order_id.clone(), cents: o.cents,
//!                 })
//!                 // The refund needs the payment id: keep it in the saga's data.
//!                 .on_success(|o: &mut Order, r: PaymentCharged| o.payment_id = Some(r.payment_id))
//!                 .fails_on::<PaymentDeclined>()
//!                 .timeout(Duration::from_secs(5))
//!                 .retry(StepRetry::attempts(3))
//!                 .compensation(
//!                     Compensation::new("payment-commands", |o: &Order| RefundPayment {
//!                         order_id: o.order_id.clone(),
//!                         payment_id: o.payment_id.clone().unwrap_or_default(),
//!                     })
//!                     .succeeds_on::<PaymentRefunded>(),
//!                 ),
//!         )
//!         .step(
//!             Step::new("create-shipment")
//!                 .command("shipping-commands", |o: &Order| CreateShipment { order_id: o.order_id.clone() })
//!                 .succeeds_on::<ShipmentCreated>(),
//!         )
//!         .build()
//! }
//!
//! # tokio::runtime::Runtime::new()?.block_on(async {
//! let dir = tempfile::tempdir()?;
//! let db = HeraldDb::open(dir.path().join("shop.db")).await?; // or HeraldDb::connect(pg_url)
//! let bus = MemoryTransport::new();
//! let relay = db.relay(bus.clone()).start(); // publishes the commands from the outbox
//!
//! let store = SagaStore::new(db.clone()).await?;
//! let orders = store.manager(order_saga()?);
//! let runtime = orders.runtime(bus.clone()).start().await?;
//!
//! // The services: each answers its commands with `publish_event`, which makes the
//! // command's id the reply's causation id. Payment declines orders above 100.00.
//! let services = Router::builder(bus.clone(), "services")
//!     .on("inventory-commands", |c: ReserveStock, ctx: HandlerContext| async move {
//!         ctx.publish_event("inventory-events", &StockReserved { order_id: c.order_id }).await?;
//!         Ok::<_, HandlerError>(())
//!     })
//!     .on("inventory-commands", |c: ReleaseStock, ctx: HandlerContext| async move {
//!         ctx.publish_event("inventory-events", &StockReleased { order_id: c.order_id }).await?;
//!         Ok(())
//!     })
//!     .on("payment-commands", |c: ChargePayment, ctx: HandlerContext| async move {
//!         if c.cents > 10_000 {
//!             let declined = PaymentDeclined { order_id: c.order_id, reason: "limit".into() };
//!             ctx.publish_event("payment-events", &declined).await?;
//!         } else {
//!             let charged = PaymentCharged { payment_id: format!("pay-{}", c.order_id), order_id: c.order_id };
//!             ctx.publish_event("payment-events", &charged).await?;
//!         }
//!         Ok(())
//!     })
//!     .on("shipping-commands", |c: CreateShipment, ctx: HandlerContext| async move {
//!         ctx.publish_event("shipping-events", &ShipmentCreated { order_id: c.order_id }).await?;
//!         Ok(())
//!     })
//!     .start()
//!     .await?;
//!
//! let order = |id: &str, cents| Order {
//!     order_id: id.into(), sku: "book".into(), quantity: 1, cents, payment_id: None,
//! };
//! orders.start("o-1", order("o-1", 2_500)).await?;
//! orders.start("o-2", order("o-2", 50_000)).await?;
//!
//! let mut o1 = store.get("order", "o-1").await?.unwrap();
//! let mut o2 = store.get("order", "o-2").await?.unwrap();
//! while !(o1.instance.status.is_final() && o2.instance.status.is_final()) {
//!     tokio::time::sleep(Duration::from_millis(10)).await;
//!     o1 = store.get("order", "o-1").await?.unwrap();
//!     o2 = store.get("order", "o-2").await?.unwrap();
//! }
//! assert_eq!(o1.instance.status, SagaStatus::Completed);
//! assert_eq!(o1.instance.data["payment_id"], "pay-o-1");
//! assert_eq!(o2.instance.status, SagaStatus::Compensated);
//! // The history says what happened, in order.
//! let kinds: Vec<String> = o2.history.iter().map(|h| h.kind.to_string()).collect();
//! assert_eq!(kinds, [
//!     "started", "step_started", "step_succeeded", "step_started", "step_failed",
//!     "compensating", "compensation_started", "compensation_succeeded", "compensated",
//! ]);
//!
//! services.shutdown().await?;
//! runtime.shutdown().await?;
//! relay.shutdown().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod backend;
mod clock;
pub mod definition;
mod error;
pub mod http;
mod manager;
pub mod model;
mod runtime;
mod store;
pub mod telemetry;
mod transition;

pub use backend::SagaBackend;
pub use clock::{Clock, ManualClock, SystemClock};
pub use definition::{
    Compensation, SagaData, SagaDefinition, SagaDefinitionBuilder, Step, StepRetry,
};
pub use error::{Result, SagaError};
pub use manager::{IgnoreReason, ReplyOutcome, SagaManager};
pub use model::{
    HistoryEntry, HistoryKind, SAGA_ID_HEADER, SAGA_STEP_HEADER, SAGA_TYPE_HEADER, SagaDetails,
    SagaFilter, SagaInstance, SagaPage, SagaStatus, StatusCounts,
};
pub use runtime::{SagaConfig, SagaRuntime, SagaRuntimeBuilder};
pub use store::{SagaStore, SentCommand};
