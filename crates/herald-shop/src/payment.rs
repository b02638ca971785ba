//! The payment service: charges orders ([`ChargePayment`]) through a simulated card
//! gateway and refunds them ([`RefundPayment`], the saga's compensation).
//!
//! Table `payments (order_id, payment_id, customer_id, amount_cents, state)` with
//! `state` one of `charged`, `refunded`, `declined`. The gateway takes
//! [`Settings::payment_latency`] per call and declines [`DECLINED_CARD`].
//!
//! [`DECLINED_CARD`]: crate::settings::DECLINED_CARD

use std::sync::Arc;

use herald::{
    HandlerContext, HandlerError, RouterHandle, router::RouterError, transport::Transport,
};

use crate::{
    db::{DbError, ServiceDb},
    events::{
        ChargePayment, PAYMENT_COMMANDS, PAYMENT_EVENTS, PaymentCharged, PaymentDeclined,
        PaymentRefunded, RefundPayment,
    },
    service::{ServiceHandle, reply, router},
    settings::{DECLINED_CARD, Settings},
    unit_of_work, with_db,
};

/// The service's name, consumer group and database.
pub const NAME: &str = "payment";
const SOURCE: &str = "urn:herald-shop:payment";

const TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS payments (
        order_id TEXT PRIMARY KEY,
        payment_id TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        amount_cents BIGINT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT
    )"];

/// Starts the service: its consumer group on [`PAYMENT_COMMANDS`] and its relay.
pub async fn start<T: Transport>(
    transport: T,
    db: ServiceDb,
    settings: &Settings,
) -> Result<ServiceHandle, crate::ShopError> {
    db.create_tables(TABLES).await?;
    let relay = db.start_relay(transport.clone());
    let consumers = start_consumers(transport, &db, settings).await?;
    Ok(ServiceHandle::new(NAME, db)
        .with_relay(relay)
        .with_router(consumers))
}

/// Starts the service's consumer group (again, after a crash).
pub async fn start_consumers<T: Transport>(
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, RouterError> {
    let settings = Arc::new(settings.clone());
    let (charge_db, refund_db) = (db.clone(), db.clone());
    let (charge_settings, refund_settings) = (settings.clone(), settings.clone());
    router(transport, NAME, db, settings.give_up_after)
        .on(PAYMENT_COMMANDS, move |cmd: ChargePayment, ctx| {
            let (db, settings) = (charge_db.clone(), charge_settings.clone());
            async move { charge(&db, &settings, cmd, ctx).await }
        })
        .on(PAYMENT_COMMANDS, move |cmd: RefundPayment, ctx| {
            let (db, settings) = (refund_db.clone(), refund_settings.clone());
            async move { refund(&db, &settings, cmd, ctx).await }
        })
        .start()
        .await
}

async fn charge(
    db: &ServiceDb,
    settings: &Settings,
    cmd: ChargePayment,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    // The gateway call, outside the transaction: the database is not held while the
    // gateway thinks. A redelivered command reaches the gateway again; a real gateway
    // takes the order id as idempotency key, and the row below records one charge.
    tokio::time::sleep(settings.payment_latency).await;
    let declined = cmd.card == DECLINED_CARD;
    unit_of_work!(db, ctx, |tx| {
        let payment_id = format!("pay-{}", cmd.order_id);
        let state = if declined { "declined" } else { "charged" };
        let inserted = sqlx::query(
            "INSERT INTO payments (order_id, payment_id, customer_id, amount_cents, state, reason)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
        )
        .bind(&cmd.order_id)
        .bind(&payment_id)
        .bind(&cmd.customer_id)
        .bind(cmd.amount_cents)
        .bind(state)
        .bind(declined.then_some("card_declined"))
        .execute(&mut *tx)
        .await
        .map_err(HandlerError::transient)?
        .rows_affected();
        let (declined, payment_id, amount_cents) = if inserted == 0 {
            // A second command for the same order (a saga retry after a timeout; a
            // redelivery stopped at the inbox): answer as the first time, charge nothing.
            let (state, payment_id, amount): (String, String, i64) = sqlx::query_as(
                "SELECT state, payment_id, amount_cents FROM payments WHERE order_id = $1",
            )
            .bind(&cmd.order_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(HandlerError::transient)?;
            (state == "declined", payment_id, amount)
        } else {
            (declined, payment_id, cmd.amount_cents)
        };
        if declined {
            let event = PaymentDeclined {
                order_id: cmd.order_id.clone(),
                reason: "card_declined".into(),
            };
            vec![(PAYMENT_EVENTS, reply(SOURCE, &event)?)]
        } else {
            let event = PaymentCharged {
                order_id: cmd.order_id.clone(),
                payment_id,
                amount_cents,
            };
            vec![(PAYMENT_EVENTS, reply(SOURCE, &event)?)]
        }
    })
}

async fn refund(
    db: &ServiceDb,
    settings: &Settings,
    cmd: RefundPayment,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    tokio::time::sleep(settings.payment_latency).await;
    unit_of_work!(db, ctx, |tx| {
        let amount: Option<i64> = sqlx::query_scalar(
            "UPDATE payments SET state = 'refunded' WHERE order_id = $1 AND state = 'charged'
             RETURNING amount_cents",
        )
        .bind(&cmd.order_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(HandlerError::transient)?;
        let event = PaymentRefunded {
            order_id: cmd.order_id.clone(),
            amount_cents: amount.unwrap_or(0),
        };
        vec![(PAYMENT_EVENTS, reply(SOURCE, &event)?)]
    })
}

/// The payment service's books, for the demo's invariants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PaymentBook {
    /// Cents ever charged (including later refunds).
    pub charged_cents: i64,
    /// Cents of those refunded.
    pub refunded_cents: i64,
    /// Charges.
    pub charges: i64,
    /// Refunds.
    pub refunds: i64,
    /// Declined charges.
    pub declines: i64,
}

/// Reads the payment service's books.
pub async fn book(db: &ServiceDb) -> Result<PaymentBook, DbError> {
    with_db!(db, |d, _inbox| {
        let row: (i64, i64, i64, i64, i64) = sqlx::query_as(
            "SELECT
                CAST(COALESCE(SUM(CASE WHEN state <> 'declined' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state = 'refunded' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state <> 'declined' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state = 'refunded' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state = 'declined' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM payments",
        )
        .fetch_one(d.pool())
        .await
        .map_err(DbError::query("reading payments"))?;
        Ok(PaymentBook {
            charged_cents: row.0,
            refunded_cents: row.1,
            charges: row.2,
            refunds: row.3,
            declines: row.4,
        })
    })
}
