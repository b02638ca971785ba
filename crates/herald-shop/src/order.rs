//! The order service: the HTTP API customers call, the `orders` table, and the order
//! saga that runs each order through inventory, payment and shipping.
//!
//! `POST /orders` validates the order, prices it from the catalogue, and in one
//! transaction stores it, puts [`OrderPlaced`] in the outbox and starts its saga; then
//! it answers `201`. Nothing else happens in the request: the saga and every other
//! service work from events. `GET /orders/{id}` shows where an order is.
//!
//! When the saga ends, the order becomes `completed` ([`OrderCompleted`](crate::events::OrderCompleted)) or
//! `cancelled` ([`OrderCancelled`](crate::events::OrderCancelled)), again with the event in the same transaction.

use std::{sync::Arc, time::SystemTime};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use herald::Envelope;
use serde::{Deserialize, Serialize};

use crate::{
    db::{DbError, ServiceDb},
    events::{Address, LineItem, ORDER_SOURCE, ORDERS, OrderPlaced},
    settings::Settings,
};

/// The service's name and database.
pub const NAME: &str = "order";
/// `ce_source` of order events.
pub const SOURCE: &str = ORDER_SOURCE;

pub(crate) const TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS orders (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        email TEXT NOT NULL,
        total_cents BIGINT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        correlation_id TEXT NOT NULL,
        placed_at BIGINT NOT NULL,
        finished_at BIGINT
    )"];

/// `POST /orders` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlaceOrder {
    /// Who orders.
    pub customer_id: String,
    /// Where confirmations go.
    pub email: String,
    /// What: products of the catalogue and quantities.
    pub items: Vec<OrderLine>,
    /// The card token to charge.
    pub card: String,
    /// Where it ships.
    pub address: Address,
}

/// One line of a [`PlaceOrder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// A product of the catalogue.
    pub sku: String,
    /// 1 to 1000.
    pub quantity: i64,
}

/// `POST /orders` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placed {
    /// The new order.
    pub order_id: String,
    /// `placed`: the saga has started.
    pub status: String,
    /// The priced total, in cents.
    pub total_cents: i64,
    /// The id of its [`OrderPlaced`] event.
    pub event_id: String,
    /// The correlation id every event and command of this order carries.
    pub correlation_id: String,
}

/// `GET /orders/{id}` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// `placed`, `completed` or `cancelled`.
    pub status: String,
    /// Why it was cancelled.
    pub reason: Option<String>,
    /// The total, in cents.
    pub total_cents: i64,
    /// The correlation id of its events.
    pub correlation_id: String,
    /// When it was placed (ms since the epoch).
    pub placed_at_ms: i64,
    /// When its saga ended (ms since the epoch).
    pub finished_at_ms: Option<i64>,
}

/// Why an order was refused or could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// The request is invalid; nothing was written.
    #[error("{0}")]
    Invalid(String),
    /// No such order.
    #[error("no order {0:?}")]
    NotFound(String),
    /// The database failed; nothing was written.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The outbox or the saga failed; nothing was written.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for OrderError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            OrderError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_order"),
            OrderError::NotFound(_) => (StatusCode::NOT_FOUND, "order_not_found"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
        };
        let body = serde_json::json!({ "error_code": code, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// Checks and prices an order: the [`OrderPlaced`] it becomes (with a new id).
pub fn validate(order: PlaceOrder, settings: &Settings) -> Result<OrderPlaced, OrderError> {
    let invalid = |m: String| Err(OrderError::Invalid(m));
    if order.customer_id.trim().is_empty() || order.customer_id.len() > 100 {
        return invalid("customer_id must be 1 to 100 characters".into());
    }
    let email_ok = order.email.len() <= 254
        && order
            .email
            .split_once('@')
            .is_some_and(|(user, host)| !user.is_empty() && host.contains('.'));
    if !email_ok {
        return invalid(format!("email {:?} is not an email address", order.email));
    }
    if order.items.is_empty() || order.items.len() > 50 {
        return invalid("an order has 1 to 50 lines".into());
    }
    let mut items = Vec::with_capacity(order.items.len());
    for line in &order.items {
        let Some(product) = settings.product(&line.sku) else {
            return invalid(format!("unknown product {:?}", line.sku));
        };
        if !(1..=1000).contains(&line.quantity) {
            return invalid(format!("quantity of {:?} must be 1 to 1000", line.sku));
        }
        if items.iter().any(|i: &LineItem| i.sku == line.sku) {
            return invalid(format!("product {:?} is on two lines", line.sku));
        }
        items.push(LineItem {
            sku: line.sku.clone(),
            quantity: line.quantity,
            unit_price_cents: product.price_cents,
        });
    }
    if order.card.len() < 12
        || order.card.len() > 19
        || !order.card.bytes().all(|b| b.is_ascii_digit())
    {
        return invalid("card must be 12 to 19 digits".into());
    }
    let a = &order.address;
    if [&a.name, &a.street, &a.city]
        .iter()
        .any(|f| f.trim().is_empty())
    {
        return invalid("address needs a name, a street and a city".into());
    }
    if a.country.len() != 2 || !a.country.bytes().all(|b| b.is_ascii_alphabetic()) {
        return invalid("address country must be a two-letter ISO code".into());
    }
    let total_cents = items.iter().map(|l| l.quantity * l.unit_price_cents).sum();
    Ok(OrderPlaced {
        order_id: format!("order-{}", uuid::Uuid::now_v7()),
        customer_id: order.customer_id,
        email: order.email,
        items,
        total_cents,
        card: order.card,
        address: Address {
            country: a.country.to_ascii_uppercase(),
            ..order.address
        },
    })
}

/// The order service's state behind its HTTP API.
#[derive(Clone)]
pub struct Orders {
    db: ServiceDb,
    settings: Arc<Settings>,
    saga: crate::saga::OrderSaga,
}

impl std::fmt::Debug for Orders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Orders")
            .field("db", &self.db)
            .finish_non_exhaustive()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Orders {
    pub(crate) fn new(
        db: ServiceDb,
        settings: Arc<Settings>,
        saga: crate::saga::OrderSaga,
    ) -> Self {
        Self { db, settings, saga }
    }

    /// The service's database.
    pub fn db(&self) -> &ServiceDb {
        &self.db
    }

    /// The order saga (its instances: state and history).
    pub fn saga(&self) -> &crate::saga::OrderSaga {
        &self.saga
    }

    /// Places an order: validates and prices it, then stores it, enqueues its
    /// [`OrderPlaced`] and starts its saga in one transaction. `correlation_id` is the
    /// caller's (a new one if `None`).
    pub async fn place(
        &self,
        order: PlaceOrder,
        correlation_id: Option<String>,
    ) -> Result<Placed, OrderError> {
        let placed = validate(order, &self.settings)?;
        let correlation_id =
            correlation_id.unwrap_or_else(|| format!("corr-{}", uuid::Uuid::now_v7()));
        let envelope = Envelope::from_event(SOURCE, &placed)
            .map_err(|e| OrderError::Internal(e.to_string()))?
            .with_correlation_id(correlation_id.clone());
        let internal = |e: &dyn std::fmt::Display| OrderError::Internal(e.to_string());
        let mut tx = self.db.sql().begin().await.map_err(|e| internal(&e))?;
        tx.execute(
            "INSERT INTO orders (order_id, customer_id, email, total_cents, status,
                                 correlation_id, placed_at)
             VALUES ($1, $2, $3, $4, 'placed', $5, $6)",
            &[
                (&placed.order_id).into(),
                (&placed.customer_id).into(),
                (&placed.email).into(),
                placed.total_cents.into(),
                (&correlation_id).into(),
                now_ms().into(),
            ],
        )
        .await
        .map_err(DbError::query("storing the order"))?;
        self.saga
            .start_in(&mut tx, &placed, &envelope)
            .await
            .map_err(|e| internal(&e))?;
        // Last: enqueueing holds the outbox's position lock until the commit.
        tx.enqueue(ORDERS, &envelope)
            .await
            .map_err(|e| internal(&e))?;
        tx.commit().await.map_err(|e| internal(&e))?;
        Ok(Placed {
            order_id: placed.order_id,
            status: "placed".into(),
            total_cents: placed.total_cents,
            event_id: envelope.id,
            correlation_id,
        })
    }

    /// The order `order_id`.
    pub async fn get(&self, order_id: &str) -> Result<OrderView, OrderError> {
        let reading = || DbError::query("reading an order");
        let row = self
            .db
            .sql()
            .fetch_optional(
                "SELECT order_id, customer_id, status, reason, total_cents, correlation_id,
                        placed_at, finished_at
                 FROM orders WHERE order_id = $1",
                &[order_id.into()],
            )
            .await
            .map_err(reading())?;
        let Some(r) = row else {
            return Err(OrderError::NotFound(order_id.to_owned()));
        };
        let view = || -> Result<OrderView, herald_sql::Error> {
            Ok(OrderView {
                order_id: r.get(0)?,
                customer_id: r.get(1)?,
                status: r.get(2)?,
                reason: r.get(3)?,
                total_cents: r.get(4)?,
                correlation_id: r.get(5)?,
                placed_at_ms: r.get(6)?,
                finished_at_ms: r.get(7)?,
            })
        };
        Ok(view().map_err(reading())?)
    }

    /// Orders by status, and the totals of completed orders.
    pub async fn book(&self) -> Result<OrderBook, DbError> {
        let rows = self
            .db
            .sql()
            .fetch_all(
                "SELECT status, COUNT(*), CAST(COALESCE(SUM(total_cents), 0) AS BIGINT)
                 FROM orders GROUP BY status",
                &[],
            )
            .await
            .map_err(DbError::query("reading orders"))?;
        let mut book = OrderBook::default();
        for row in rows {
            let (status, n, cents): (String, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            match status.as_str() {
                "placed" => book.open = n,
                "completed" => {
                    book.completed = n;
                    book.completed_cents = cents;
                }
                "cancelled" => book.cancelled = n,
                _ => {}
            }
        }
        Ok(book)
    }

    /// When each finished order was placed and finished (ms since the epoch).
    pub async fn timings(&self) -> Result<Vec<(i64, i64)>, DbError> {
        self.db
            .sql()
            .fetch_all(
                "SELECT placed_at, finished_at FROM orders WHERE finished_at IS NOT NULL",
                &[],
            )
            .await
            .map_err(DbError::query("reading orders"))?
            .iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect()
    }
}

/// Orders by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OrderBook {
    /// Placed, saga still running.
    pub open: i64,
    /// Completed.
    pub completed: i64,
    /// Totals of completed orders, in cents.
    pub completed_cents: i64,
    /// Cancelled (the saga compensated).
    pub cancelled: i64,
}

/// The HTTP API: `POST /orders`, `GET /orders/{id}`. A request may carry its
/// correlation id in `x-correlation-id`.
pub fn http(orders: Orders) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .route("/orders/{id}", get(get_order))
        .with_state(orders)
}

async fn place_order(
    State(orders): State<Orders>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Placed>), OrderError> {
    let order: PlaceOrder = serde_json::from_slice(&body)
        .map_err(|e| OrderError::Invalid(format!("the body is not an order: {e}")))?;
    let correlation_id = headers
        .get("x-correlation-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 200)
        .map(str::to_owned);
    let placed = orders.place(order, correlation_id).await?;
    Ok((StatusCode::CREATED, Json(placed)))
}

async fn get_order(
    State(orders): State<Orders>,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, OrderError> {
    Ok(Json(orders.get(&id).await?))
}
