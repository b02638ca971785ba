//! An order service on the transactional outbox.
//!
//! `POST /orders` with `{"customer": "...", "total_cents": 1250}` writes the order row
//! and an `shop.order.placed` event in one PostgreSQL transaction
//! ([`herald_sql::enqueue`]); a [`herald_sql::Relay`] publishes the event to the
//! `orders` topic, keyed by order id, at least once. If the insert fails, nothing is
//! published; if the process dies after committing, the relay publishes on restart.
//!
//! Run it (PostgreSQL on 127.0.0.1:5432, events into an embedded Herald log in
//! `./outbox-data`):
//!
//! ```text
//! cargo run -p outbox-postgres
//! curl -s -XPOST localhost:3000/orders -H 'content-type: application/json' \
//!      -d '{"customer":"ada","total_cents":1250}'
//! ```
//!
//! Settings (environment): `DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), `LISTEN` (default `127.0.0.1:3000`),
//! `HERALD_DATA_DIR` (embedded log, default `./outbox-data`), or `HERALD_BOOTSTRAP`
//! (e.g. `localhost:9092`) to publish to `herald serve` or any Kafka cluster instead.

use axum::{Json, Router, extract::State, http::StatusCode, response::IntoResponse, routing::post};
use herald::{Envelope, Event};
use herald_sql::HeraldDb;
use serde::{Deserialize, Serialize};
use sqlx::Postgres;

/// The topic orders are published to.
pub const TOPIC: &str = "orders";

/// The event a placed order publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order's id.
    pub order_id: String,
    /// Who ordered.
    pub customer: String,
    /// The total, in cents.
    pub total_cents: i64,
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "shop.order.placed";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// `POST /orders` body.
#[derive(Debug, Deserialize)]
pub struct PlaceOrder {
    /// Who orders.
    pub customer: String,
    /// The total, in cents; positive.
    pub total_cents: i64,
}

/// `POST /orders` answer.
#[derive(Debug, Serialize, Deserialize)]
pub struct Placed {
    /// The new order's id.
    pub order_id: String,
    /// The id of its `shop.order.placed` event.
    pub event_id: String,
}

/// Why an order was not placed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// The request is invalid; nothing was written.
    #[error("{0}")]
    Invalid(&'static str),
    /// The database failed; nothing was written.
    #[error(transparent)]
    Store(#[from] herald_sql::Error),
    /// The order row could not be written; nothing was written.
    #[error("writing the order: {0}")]
    Database(#[from] sqlx::Error),
}

impl IntoResponse for OrderError {
    fn into_response(self) -> axum::response::Response {
        let (status, code) = match &self {
            OrderError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_order"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "storage_error"),
        };
        let body = serde_json::json!({ "error_code": code, "message": self.to_string() });
        (status, Json(body)).into_response()
    }
}

/// The service: orders in PostgreSQL, their events in the outbox.
#[derive(Debug, Clone)]
pub struct Orders {
    db: HeraldDb<Postgres>,
}

impl Orders {
    /// Creates the `orders` table if missing (herald-sql's tables come with `db`).
    pub async fn new(db: HeraldDb<Postgres>) -> Result<Self, OrderError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS orders (
                id TEXT PRIMARY KEY,
                customer TEXT NOT NULL,
                total_cents BIGINT NOT NULL CHECK (total_cents > 0)
            )",
        )
        .execute(db.pool())
        .await?;
        Ok(Self { db })
    }

    /// The database.
    pub fn db(&self) -> &HeraldDb<Postgres> {
        &self.db
    }

    /// Writes the order and its event in one transaction.
    pub async fn place(&self, order: PlaceOrder) -> Result<Placed, OrderError> {
        if order.customer.trim().is_empty() {
            return Err(OrderError::Invalid("customer must not be empty"));
        }
        if order.total_cents <= 0 {
            return Err(OrderError::Invalid("total_cents must be positive"));
        }
        let placed = OrderPlaced {
            order_id: format!("order-{}", uuid::Uuid::now_v7()),
            customer: order.customer,
            total_cents: order.total_cents,
        };
        let envelope =
            Envelope::from_event("urn:shop:orders", &placed).map_err(herald_sql::Error::from)?;
        let mut tx = self.db.begin().await?;
        sqlx::query("INSERT INTO orders (id, customer, total_cents) VALUES ($1, $2, $3)")
            .bind(&placed.order_id)
            .bind(&placed.customer)
            .bind(placed.total_cents)
            .execute(&mut *tx)
            .await?;
        // Last in the transaction: enqueueing holds the outbox's position lock to commit.
        herald_sql::enqueue(&mut tx, TOPIC, &envelope).await?;
        tx.commit().await?;
        Ok(Placed {
            order_id: placed.order_id,
            event_id: envelope.id,
        })
    }
}

/// The HTTP API: `POST /orders`.
pub fn router(orders: Orders) -> Router {
    Router::new()
        .route("/orders", post(place_order))
        .with_state(orders)
}

async fn place_order(
    State(orders): State<Orders>,
    Json(order): Json<PlaceOrder>,
) -> Result<(StatusCode, Json<Placed>), OrderError> {
    let placed = orders.place(order).await?;
    Ok((StatusCode::CREATED, Json(placed)))
}
