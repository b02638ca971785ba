//! The services that react to order events and that nobody waits for: notification
//! (emails), analytics and loyalty. Each is its own consumer group on [`ORDERS`] with
//! its own database, inbox and dead-letter topic (`shop.orders.<service>.dlq`).
//!
//! - **notification**: an email per event — confirmation when placed, shipping notice
//!   when completed, apology when cancelled — through a mail server that takes
//!   [`Settings::email_latency`] per email. Table `emails (order_id, kind, recipient)`.
//! - **analytics**: counts and revenue per event type. Table `order_stats (event_type,
//!   orders, cents)`.
//! - **loyalty**: one point per whole currency unit of a completed order. Tables
//!   `awards (order_id, customer_id, points)`, `points (customer_id, points)`.

use std::sync::Arc;

use herald::{
    HandlerContext, HandlerError, RouterHandle, router::RouterError, transport::Transport,
};

use crate::{
    db::{DbError, ServiceDb},
    events::{ORDERS, OrderCancelled, OrderCompleted, OrderPlaced},
    service::{ServiceHandle, router},
    settings::Settings,
};

/// The notification service's name, consumer group and database.
pub const NOTIFICATION: &str = "notification";
/// The analytics service's name, consumer group and database.
pub const ANALYTICS: &str = "analytics";
/// The loyalty service's name, consumer group and database.
pub const LOYALTY: &str = "loyalty";

const NOTIFICATION_TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS emails (
        order_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        recipient TEXT NOT NULL,
        PRIMARY KEY (order_id, kind)
    )"];

const ANALYTICS_TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS order_stats (
        event_type TEXT PRIMARY KEY,
        orders BIGINT NOT NULL,
        cents BIGINT NOT NULL
    )"];

const LOYALTY_TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS awards (
        order_id TEXT PRIMARY KEY,
        customer_id TEXT NOT NULL,
        points BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS points (
        customer_id TEXT PRIMARY KEY,
        points BIGINT NOT NULL
    )",
];

/// Starts the notification service.
pub async fn start_notification<T: Transport>(
    transport: T,
    db: ServiceDb,
    settings: &Settings,
) -> Result<ServiceHandle, crate::ShopError> {
    db.create_tables(NOTIFICATION_TABLES).await?;
    let consumers = notification_consumers(transport, &db, settings).await?;
    Ok(ServiceHandle::new(NOTIFICATION, db).with_router(consumers))
}

/// Starts the notification service's consumer group (again, after a crash).
pub async fn notification_consumers<T: Transport>(
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, RouterError> {
    let settings = Arc::new(settings.clone());
    let (a, b, c) = (db.clone(), db.clone(), db.clone());
    let (sa, sb, sc) = (settings.clone(), settings.clone(), settings.clone());
    router(transport, NOTIFICATION, db, settings.give_up_after)
        .on(ORDERS, move |e: OrderPlaced, ctx| {
            let (db, settings) = (a.clone(), sa.clone());
            async move { email(&db, &settings, &e.order_id, "confirmation", &e.email, ctx).await }
        })
        .on(ORDERS, move |e: OrderCompleted, ctx| {
            let (db, settings) = (b.clone(), sb.clone());
            async move { email(&db, &settings, &e.order_id, "shipped", &e.email, ctx).await }
        })
        .on(ORDERS, move |e: OrderCancelled, ctx| {
            let (db, settings) = (c.clone(), sc.clone());
            async move { email(&db, &settings, &e.order_id, "cancelled", &e.email, ctx).await }
        })
        .start()
        .await
}

async fn email(
    db: &ServiceDb,
    settings: &Settings,
    order_id: &str,
    kind: &str,
    recipient: &str,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    // The mail server (SMTP) is slow; the order does not wait for it.
    tokio::time::sleep(settings.email_latency).await;
    let args = [order_id.into(), kind.into(), recipient.into()];
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                uow.execute(
                    "INSERT INTO emails (order_id, kind, recipient) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                    &args,
                )
                .await?;
                Ok(())
            })
        })
        .await
}

/// Starts the analytics service.
pub async fn start_analytics<T: Transport>(
    transport: T,
    db: ServiceDb,
    settings: &Settings,
) -> Result<ServiceHandle, crate::ShopError> {
    db.create_tables(ANALYTICS_TABLES).await?;
    let consumers = analytics_consumers(transport, &db, settings).await?;
    Ok(ServiceHandle::new(ANALYTICS, db).with_router(consumers))
}

/// Starts the analytics service's consumer group (again, after a crash).
pub async fn analytics_consumers<T: Transport>(
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, RouterError> {
    let (a, b, c) = (db.clone(), db.clone(), db.clone());
    router(transport, ANALYTICS, db, settings.give_up_after)
        .on(ORDERS, move |e: OrderPlaced, ctx| {
            let db = a.clone();
            async move { count(&db, "placed", e.total_cents, ctx).await }
        })
        .on(ORDERS, move |e: OrderCompleted, ctx| {
            let db = b.clone();
            async move { count(&db, "completed", e.total_cents, ctx).await }
        })
        .on(ORDERS, move |_: OrderCancelled, ctx| {
            let db = c.clone();
            async move { count(&db, "cancelled", 0, ctx).await }
        })
        .start()
        .await
}

async fn count(
    db: &ServiceDb,
    kind: &str,
    cents: i64,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    let args = [kind.into(), cents.into()];
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                uow.execute(
                    "INSERT INTO order_stats (event_type, orders, cents) VALUES ($1, 1, $2)
                     ON CONFLICT (event_type) DO UPDATE
                     SET orders = order_stats.orders + 1,
                         cents = order_stats.cents + excluded.cents",
                    &args,
                )
                .await?;
                Ok(())
            })
        })
        .await
}

/// Starts the loyalty service.
pub async fn start_loyalty<T: Transport>(
    transport: T,
    db: ServiceDb,
    settings: &Settings,
) -> Result<ServiceHandle, crate::ShopError> {
    db.create_tables(LOYALTY_TABLES).await?;
    let consumers = loyalty_consumers(transport, &db, settings).await?;
    Ok(ServiceHandle::new(LOYALTY, db).with_router(consumers))
}

/// Starts the loyalty service's consumer group (again, after a crash).
pub async fn loyalty_consumers<T: Transport>(
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, RouterError> {
    let award_db = db.clone();
    router(transport, LOYALTY, db, settings.give_up_after)
        .on(ORDERS, move |e: OrderCompleted, ctx| {
            let db = award_db.clone();
            async move { award(&db, e, ctx).await }
        })
        .start()
        .await
}

async fn award(db: &ServiceDb, e: OrderCompleted, ctx: HandlerContext) -> Result<(), HandlerError> {
    let points = e.total_cents / 100;
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                let new = uow
                    .execute(
                        "INSERT INTO awards (order_id, customer_id, points) VALUES ($1, $2, $3)
                         ON CONFLICT DO NOTHING",
                        &[(&e.order_id).into(), (&e.customer_id).into(), points.into()],
                    )
                    .await?;
                if new == 1 {
                    uow.execute(
                        "INSERT INTO points (customer_id, points) VALUES ($1, $2)
                         ON CONFLICT (customer_id)
                         DO UPDATE SET points = points.points + excluded.points",
                        &[(&e.customer_id).into(), points.into()],
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .await
}

/// What the reacting services recorded, for the demo's invariants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reactions {
    /// Emails sent, by kind (`confirmation`, `shipped`, `cancelled`).
    pub emails: Vec<(String, i64)>,
    /// Analytics counts by event (`placed`, `completed`, `cancelled`): orders, cents.
    pub stats: Vec<(String, i64, i64)>,
    /// Loyalty awards and the points in all accounts.
    pub awards: i64,
    /// Points over all customers.
    pub points: i64,
    /// Points the awards add up to (equal to `points` when nothing was awarded twice).
    pub awarded_points: i64,
}

impl Reactions {
    /// Emails of `kind`.
    pub fn emails(&self, kind: &str) -> i64 {
        self.emails
            .iter()
            .find(|(k, _)| k == kind)
            .map_or(0, |(_, n)| *n)
    }

    /// Analytics' count of `event`.
    pub fn counted(&self, event: &str) -> i64 {
        self.stats
            .iter()
            .find(|(k, _, _)| k == event)
            .map_or(0, |(_, n, _)| *n)
    }
}

/// Reads what the three services recorded.
pub async fn reactions(
    notification: &ServiceDb,
    analytics: &ServiceDb,
    loyalty: &ServiceDb,
) -> Result<Reactions, DbError> {
    let emails = notification
        .sql()
        .fetch_all(
            "SELECT kind, COUNT(*) FROM emails GROUP BY kind ORDER BY kind",
            &[],
        )
        .await
        .map_err(DbError::query("reading emails"))?
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?)))
        .collect::<Result<_, DbError>>()?;
    let stats = analytics
        .sql()
        .fetch_all(
            "SELECT event_type, orders, cents FROM order_stats ORDER BY event_type",
            &[],
        )
        .await
        .map_err(DbError::query("reading order stats"))?
        .iter()
        .map(|row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .collect::<Result<_, DbError>>()?;
    let row = loyalty
        .sql()
        .fetch_one(
            "SELECT (SELECT COUNT(*) FROM awards),
                CAST((SELECT COALESCE(SUM(points), 0) FROM awards) AS BIGINT),
                CAST((SELECT COALESCE(SUM(points), 0) FROM points) AS BIGINT)",
            &[],
        )
        .await
        .map_err(DbError::query("reading loyalty points"))?;
    let (awards, awarded_points, points) = (row.get(0)?, row.get(1)?, row.get(2)?);
    Ok(Reactions {
        emails,
        stats,
        awards,
        points,
        awarded_points,
    })
}
