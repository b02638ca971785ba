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
    service::{ServiceHandle, col, reply, router},
    settings::{DECLINED_CARD, Settings},
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
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                let payment_id = format!("pay-{}", cmd.order_id);
                let state = if declined { "declined" } else { "charged" };
                let inserted = uow
                    .execute(
                        "INSERT INTO payments
                             (order_id, payment_id, customer_id, amount_cents, state, reason)
                         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                        &[
                            (&cmd.order_id).into(),
                            (&payment_id).into(),
                            (&cmd.customer_id).into(),
                            cmd.amount_cents.into(),
                            state.into(),
                            declined.then_some("card_declined").into(),
                        ],
                    )
                    .await?;
                let (declined, payment_id, amount_cents) = if inserted == 0 {
                    // A second command for the same order (a saga retry after a timeout;
                    // a redelivery stopped at the inbox): answer as the first time,
                    // charge nothing.
                    let row = uow
                        .fetch_one(
                            "SELECT state, payment_id, amount_cents FROM payments
                             WHERE order_id = $1",
                            &[(&cmd.order_id).into()],
                        )
                        .await?;
                    let state: String = col(&row, 0)?;
                    (state == "declined", col(&row, 1)?, col(&row, 2)?)
                } else {
                    (declined, payment_id, cmd.amount_cents)
                };
                let event = if declined {
                    reply(
                        SOURCE,
                        &PaymentDeclined {
                            order_id: cmd.order_id.clone(),
                            reason: "card_declined".into(),
                        },
                    )?
                } else {
                    reply(
                        SOURCE,
                        &PaymentCharged {
                            order_id: cmd.order_id.clone(),
                            payment_id,
                            amount_cents,
                        },
                    )?
                };
                uow.publish(PAYMENT_EVENTS, event);
                Ok(())
            })
        })
        .await
}

async fn refund(
    db: &ServiceDb,
    settings: &Settings,
    cmd: RefundPayment,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    tokio::time::sleep(settings.payment_latency).await;
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                let amount = uow
                    .fetch_i64(
                        "UPDATE payments SET state = 'refunded'
                         WHERE order_id = $1 AND state = 'charged'
                         RETURNING amount_cents",
                        &[(&cmd.order_id).into()],
                    )
                    .await?;
                let event = PaymentRefunded {
                    order_id: cmd.order_id.clone(),
                    amount_cents: amount.unwrap_or(0),
                };
                uow.publish(PAYMENT_EVENTS, reply(SOURCE, &event)?);
                Ok(())
            })
        })
        .await
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
    let row = db
        .sql()
        .fetch_one(
            "SELECT
                CAST(COALESCE(SUM(CASE WHEN state <> 'declined' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state = 'refunded' THEN amount_cents ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state <> 'declined' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state = 'refunded' THEN 1 ELSE 0 END), 0) AS BIGINT),
                CAST(COALESCE(SUM(CASE WHEN state = 'declined' THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM payments",
            &[],
        )
        .await
        .map_err(DbError::query("reading payments"))?;
    Ok(PaymentBook {
        charged_cents: row.get(0)?,
        refunded_cents: row.get(1)?,
        charges: row.get(2)?,
        refunds: row.get(3)?,
        declines: row.get(4)?,
    })
}
