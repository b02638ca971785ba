//! A fraud check added after the fact: a new consumer group on [`ORDERS`] that looks
//! at every placed order and flags suspicious ones. No producer changes: the order
//! service does not know it exists (`tests/fraud.rs` shows it joining a running shop and
//! reading the orders placed before it joined).
//!
//! An order is suspicious when its total is above
//! [`Settings::fraud_threshold_cents`], or when it ships to another country than the
//! customer's previous order (the one checked before it: orders of different ids may be
//! checked in any order). Table `fraud_checks (order_id, customer_id, country,
//! flagged, reason)`.

use herald::{
    HandlerContext, HandlerError, RouterHandle, router::RouterError, transport::Transport,
};

use crate::{
    db::{DbError, ServiceDb},
    events::{ORDERS, OrderPlaced},
    service::router,
    settings::Settings,
};

/// The fraud check's name, consumer group and database.
pub const NAME: &str = "fraud";

const TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS fraud_checks (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        country TEXT NOT NULL,
        seq BIGINT NOT NULL,
        flagged BIGINT NOT NULL,
        reason TEXT
    )"];

/// A flagged order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag {
    /// The order.
    pub order_id: String,
    /// Why it was flagged.
    pub reason: String,
}

/// Starts the fraud check's consumer group: it reads [`ORDERS`] from the start.
pub async fn start<T: Transport>(
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, crate::ShopError> {
    db.create_tables(TABLES).await?;
    Ok(consumers(transport, db, settings).await?)
}

async fn consumers<T: Transport>(
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, RouterError> {
    let (check_db, threshold) = (db.clone(), settings.fraud_threshold_cents);
    router(transport, NAME, db, settings.give_up_after)
        .on(ORDERS, move |order: OrderPlaced, ctx| {
            let db = check_db.clone();
            async move { check(&db, threshold, order, ctx).await }
        })
        .start()
        .await
}

async fn check(
    db: &ServiceDb,
    threshold: i64,
    order: OrderPlaced,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                let previous = uow
                    .fetch_text(
                        "SELECT country FROM fraud_checks WHERE customer_id = $1
                         ORDER BY seq DESC LIMIT 1",
                        &[(&order.customer_id).into()],
                    )
                    .await?;
                let reason = if order.total_cents > threshold {
                    Some(format!(
                        "total {} cents is above {threshold}",
                        order.total_cents
                    ))
                } else {
                    previous
                        .filter(|c| *c != order.address.country)
                        .map(|c| format!("ships to {} after {c}", order.address.country))
                };
                uow.execute(
                    "INSERT INTO fraud_checks (order_id, customer_id, country, seq, flagged, reason)
                     VALUES ($1, $2, $3, (SELECT COUNT(*) FROM fraud_checks), $4, $5)",
                    &[
                        (&order.order_id).into(),
                        (&order.customer_id).into(),
                        (&order.address.country).into(),
                        i64::from(reason.is_some()).into(),
                        reason.into(),
                    ],
                )
                .await?;
                Ok(())
            })
        })
        .await
}

/// Orders checked, and the flagged ones.
pub async fn results(db: &ServiceDb) -> Result<(i64, Vec<Flag>), DbError> {
    let reading = || DbError::query("reading fraud checks");
    let checked = db
        .sql()
        .fetch_optional("SELECT COUNT(*) FROM fraud_checks", &[])
        .await
        .map_err(reading())?
        .map_or(Ok(0), |row| row.get(0))
        .map_err(reading())?;
    let flags = db
        .sql()
        .fetch_all(
            "SELECT order_id, reason FROM fraud_checks WHERE flagged = 1 ORDER BY order_id",
            &[],
        )
        .await
        .map_err(reading())?
        .iter()
        .map(|row| {
            Ok(Flag {
                order_id: row.get(0)?,
                reason: row.get(1)?,
            })
        })
        .collect::<Result<_, herald_sql::Error>>()
        .map_err(reading())?;
    Ok((checked, flags))
}
