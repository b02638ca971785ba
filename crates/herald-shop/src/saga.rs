//! The order saga (herald-saga): reserve stock → charge payment → create shipment.
//!
//! | step | command | success | failure | compensation |
//! | --- | --- | --- | --- | --- |
//! | `reserve-stock` | [`ReserveStock`] | [`StockReserved`] | [`StockUnavailable`] | [`ReleaseStock`] → [`StockReleased`] |
//! | `charge-payment` | [`ChargePayment`] | [`PaymentCharged`] | [`PaymentDeclined`] | [`RefundPayment`] → [`PaymentRefunded`] |
//! | `create-shipment` | [`CreateShipment`] | [`ShipmentCreated`] | [`ShipmentRejected`] | — |
//!
//! A declined card releases the stock; a rejected shipment refunds the payment, then
//! releases the stock (reverse order). A step whose replies time out is sent again
//! (three attempts); when they run out, it fails like a failure reply.
//!
//! The saga starts in the order's own transaction ([`OrderSaga::start_in`]), caused by
//! its [`OrderPlaced`] event, so every command carries the order's correlation id. The
//! order service's finisher turns a finished saga into [`OrderCompleted`] or
//! [`OrderCancelled`].
//!
//! [`OrderCompleted`]: crate::events::OrderCompleted
//! [`OrderCancelled`]: crate::events::OrderCancelled

use std::time::Duration;

use herald::{Envelope, transport::Transport};
use herald_saga::{
    Compensation, SagaDefinition, SagaDetails, SagaError, SagaManager, SagaStatus, SagaStore,
    StatusCounts, Step, StepRetry,
};
use herald_sql::{Database, DatabaseTransaction};
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Sqlite};

use crate::{
    ShopError,
    db::{DbError, ServiceDb},
    events::{
        ChargePayment, CreateShipment, INVENTORY_COMMANDS, INVENTORY_EVENTS, ORDER_SOURCE, ORDERS,
        OrderCancelled, OrderCompleted, OrderPlaced, PAYMENT_COMMANDS, PAYMENT_EVENTS,
        PaymentCharged, PaymentDeclined, PaymentRefunded, RefundPayment, ReleaseStock,
        ReserveStock, SHIPPING_COMMANDS, SHIPPING_EVENTS, ShipmentCreated, ShipmentRejected,
        StockReleased, StockReserved, StockUnavailable,
    },
    service::Stop,
    settings::Settings,
};

/// The saga type.
pub const SAGA_TYPE: &str = "order";

/// What the order saga carries from step to step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    /// The order as placed.
    pub order: OrderPlaced,
    /// Set when the payment was charged.
    pub payment_id: Option<String>,
    /// Set when the shipment was created.
    pub shipment_id: Option<String>,
    /// Why the saga failed, for the customer.
    pub failure: Option<String>,
}

/// The order saga's definition.
pub fn definition(settings: &Settings) -> Result<SagaDefinition<OrderData>, SagaError> {
    let timeout = settings.step_timeout;
    SagaDefinition::builder(SAGA_TYPE)
        .source("urn:herald-shop:order-saga")
        .reply_topic(INVENTORY_EVENTS)
        .reply_topic(PAYMENT_EVENTS)
        .reply_topic(SHIPPING_EVENTS)
        .step(
            Step::new("reserve-stock")
                .command(INVENTORY_COMMANDS, |d: &OrderData| ReserveStock {
                    order_id: d.order.order_id.clone(),
                    items: d.order.items.clone(),
                })
                .succeeds_on::<StockReserved>()
                .on_failure(|d: &mut OrderData, e: StockUnavailable| {
                    d.failure = Some(format!(
                        "out of stock: {} ({} requested, {} available)",
                        e.sku, e.requested, e.available
                    ));
                })
                .timeout(timeout)
                .retry(StepRetry::attempts(3))
                .compensation(
                    Compensation::new(INVENTORY_COMMANDS, |d: &OrderData| ReleaseStock {
                        order_id: d.order.order_id.clone(),
                    })
                    .succeeds_on::<StockReleased>()
                    .timeout(timeout),
                ),
        )
        .step(
            Step::new("charge-payment")
                .command(PAYMENT_COMMANDS, |d: &OrderData| ChargePayment {
                    order_id: d.order.order_id.clone(),
                    customer_id: d.order.customer_id.clone(),
                    amount_cents: d.order.total_cents,
                    card: d.order.card.clone(),
                })
                .on_success(|d: &mut OrderData, e: PaymentCharged| {
                    d.payment_id = Some(e.payment_id);
                })
                .on_failure(|d: &mut OrderData, e: PaymentDeclined| {
                    d.failure = Some(format!("payment declined: {}", e.reason));
                })
                .timeout(timeout)
                .retry(StepRetry::attempts(3))
                .compensation(
                    Compensation::new(PAYMENT_COMMANDS, |d: &OrderData| RefundPayment {
                        order_id: d.order.order_id.clone(),
                    })
                    .succeeds_on::<PaymentRefunded>()
                    .timeout(timeout),
                ),
        )
        .step(
            Step::new("create-shipment")
                .command(SHIPPING_COMMANDS, |d: &OrderData| CreateShipment {
                    order_id: d.order.order_id.clone(),
                    address: d.order.address.clone(),
                    items: d.order.items.clone(),
                })
                .on_success(|d: &mut OrderData, e: ShipmentCreated| {
                    d.shipment_id = Some(e.shipment_id);
                })
                .on_failure(|d: &mut OrderData, e: ShipmentRejected| {
                    d.failure = Some(format!("shipment rejected: {}", e.reason));
                })
                .timeout(timeout)
                .retry(StepRetry::attempts(3)),
        )
        .build()
}

/// The order saga on the order service's database.
#[derive(Debug, Clone)]
pub enum OrderSaga {
    /// On SQLite.
    Sqlite(SagaManager<Sqlite, OrderData>),
    /// On PostgreSQL.
    Postgres(SagaManager<Postgres, OrderData>),
}

impl OrderSaga {
    /// Creates herald-saga's tables in the order service's database (if missing) and
    /// the saga's manager.
    pub async fn open(db: &ServiceDb, settings: &Settings) -> Result<Self, SagaError> {
        let definition = definition(settings)?;
        Ok(match db.sql() {
            Database::Sqlite { db, .. } => {
                Self::Sqlite(SagaStore::new(db.clone()).await?.manager(definition))
            }
            Database::Postgres { db, .. } => {
                Self::Postgres(SagaStore::new(db.clone()).await?.manager(definition))
            }
            other => {
                return Err(SagaError::InvalidInput(format!(
                    "herald-saga does not run on {}",
                    other.backend()
                )));
            }
        })
    }
}

fn data(placed: &OrderPlaced) -> OrderData {
    OrderData {
        order: placed.clone(),
        payment_id: None,
        shipment_id: None,
        failure: None,
    }
}

impl OrderSaga {
    /// Starts the saga of `placed` (saga id: the order id) in the order's transaction
    /// `tx`, caused by its `OrderPlaced` envelope `cause`.
    pub async fn start_in(
        &self,
        tx: &mut DatabaseTransaction,
        placed: &OrderPlaced,
        cause: &Envelope,
    ) -> Result<(), SagaError> {
        let id = &placed.order_id;
        match (self, tx) {
            (Self::Sqlite(m), DatabaseTransaction::Sqlite(tx)) => {
                m.start_in_caused_by(tx, id, data(placed), cause).await
            }
            (Self::Postgres(m), DatabaseTransaction::Postgres(tx)) => {
                m.start_in_caused_by(tx, id, data(placed), cause).await
            }
            (_, tx) => Err(SagaError::InvalidInput(format!(
                "the order saga runs on another database than the order's {} transaction",
                tx.backend()
            ))),
        }
    }
}

impl OrderSaga {
    /// Starts the saga runtime (its reply consumers and timeout poller, group
    /// `saga-order`) and the finisher that closes orders whose saga ended. Returns how
    /// to stop both.
    pub(crate) async fn start_runtime<T: Transport>(
        &self,
        transport: T,
        db: ServiceDb,
    ) -> Result<Stop, SagaError> {
        let poll = Duration::from_millis(50);
        let runtime = match self {
            Self::Sqlite(m) => m.runtime(transport).poll_interval(poll).start().await?,
            Self::Postgres(m) => m.runtime(transport).poll_interval(poll).start().await?,
        };
        let finisher = tokio::spawn(finish_orders(self.clone(), db));
        Ok(Box::new(move |crash: bool| {
            Box::pin(async move {
                finisher.abort();
                let _ = finisher.await;
                if crash {
                    runtime.abort().await;
                    Ok(())
                } else {
                    runtime.shutdown().await.map_err(|e| e.to_string())
                }
            })
        }))
    }

    /// The saga of order `order_id`, with its history.
    pub async fn details(&self, order_id: &str) -> Result<Option<SagaDetails>, SagaError> {
        match self {
            Self::Sqlite(m) => m.store().get(SAGA_TYPE, order_id).await,
            Self::Postgres(m) => m.store().get(SAGA_TYPE, order_id).await,
        }
    }

    /// How many order sagas are in each status.
    pub async fn counts(&self) -> Result<StatusCounts, SagaError> {
        match self {
            Self::Sqlite(m) => m.store().counts(Some(SAGA_TYPE)).await,
            Self::Postgres(m) => m.store().counts(Some(SAGA_TYPE)).await,
        }
    }
}

/// Closes orders whose saga ended: `completed` with [`OrderCompleted`], `cancelled` with
/// [`OrderCancelled`] (the event in the same transaction as the status), or `failed`
/// (a compensation could not be done: a person must look; no event). Orders still open
/// are looked at every few milliseconds, oldest first.
async fn finish_orders(saga: OrderSaga, db: ServiceDb) {
    loop {
        if let Err(e) = finish_once(&saga, &db).await {
            tracing::warn!(error = %e, "closing finished orders failed; retrying");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One pass of the finisher; returns the orders closed.
pub(crate) async fn finish_once(saga: &OrderSaga, db: &ServiceDb) -> Result<usize, ShopError> {
    let open = db
        .sql()
        .fetch_all(
            "SELECT order_id FROM orders WHERE status = 'placed' ORDER BY placed_at LIMIT 1000",
            &[],
        )
        .await
        .map_err(DbError::query("reading open orders"))?
        .iter()
        .map(|row| row.get::<String>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DbError::query("reading open orders"))?;
    let mut closed = 0;
    for order_id in open {
        let Some(details) = saga.details(&order_id).await? else {
            continue;
        };
        let instance = details.instance;
        if !instance.status.is_final() {
            continue;
        }
        let data: OrderData = serde_json::from_value(instance.data.clone())
            .map_err(|e| ShopError::Other(format!("saga data of {order_id}: {e}")))?;
        let o = &data.order;
        let (status, event) = match instance.status {
            SagaStatus::Completed => {
                let completed = OrderCompleted {
                    order_id: o.order_id.clone(),
                    customer_id: o.customer_id.clone(),
                    email: o.email.clone(),
                    total_cents: o.total_cents,
                    shipment_id: data.shipment_id.clone().unwrap_or_default(),
                };
                (
                    "completed",
                    Some(Envelope::from_event(ORDER_SOURCE, &completed)),
                )
            }
            SagaStatus::Compensated => {
                let reason = data
                    .failure
                    .clone()
                    .or(instance.error.clone())
                    .unwrap_or_else(|| "the order could not be completed".into());
                let cancelled = OrderCancelled {
                    order_id: o.order_id.clone(),
                    customer_id: o.customer_id.clone(),
                    email: o.email.clone(),
                    reason,
                };
                (
                    "cancelled",
                    Some(Envelope::from_event(ORDER_SOURCE, &cancelled)),
                )
            }
            _ => ("failed", None),
        };
        let event = event
            .transpose()
            .map_err(|e| ShopError::Other(e.to_string()))?
            .map(|e| e.with_correlation_id(instance.correlation_id.clone()));
        let reason = data.failure.clone().or(instance.error.clone());
        let finished_at = millis_since_epoch(instance.updated_at);
        let mut tx = db.sql().begin().await.map_err(DbError::from)?;
        let changed = tx
            .execute(
                "UPDATE orders SET status = $2, reason = $3, finished_at = $4
                 WHERE order_id = $1 AND status = 'placed'",
                &[
                    (&order_id).into(),
                    status.into(),
                    if status == "completed" { None } else { reason }.into(),
                    finished_at.into(),
                ],
            )
            .await
            .map_err(DbError::query("closing an order"))?;
        if changed == 1 {
            if let Some(event) = &event {
                tx.enqueue(ORDERS, event).await.map_err(DbError::from)?;
            }
            tx.commit()
                .await
                .map_err(DbError::query("closing an order"))?;
            closed += 1;
        }
    }
    Ok(closed)
}

fn millis_since_epoch(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
