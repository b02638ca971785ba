//! The inventory service: holds stock for orders ([`ReserveStock`]) and gives it back
//! ([`ReleaseStock`], the saga's compensation).
//!
//! Tables: `stock (sku, on_hand)` — units free to reserve — and `reservations
//! (order_id, sku, quantity, released)`. A reservation is all or nothing: if one line is
//! short, nothing is held and the reply is [`StockUnavailable`].

use herald::{
    HandlerContext, HandlerError, RouterHandle, router::RouterError, transport::Transport,
};

use crate::{
    db::{DbError, ServiceDb},
    events::{
        INVENTORY_COMMANDS, INVENTORY_EVENTS, ReleaseStock, ReserveStock, StockReleased,
        StockReserved, StockUnavailable,
    },
    service::{ServiceHandle, col, reply, router},
    settings::Settings,
};

/// The service's name, consumer group and database.
pub const NAME: &str = "inventory";
const SOURCE: &str = "urn:herald-shop:inventory";

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS stock (
        sku TEXT PRIMARY KEY,
        on_hand BIGINT NOT NULL CHECK (on_hand >= 0),
        initial BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS reservations (
        order_id TEXT NOT NULL,
        sku TEXT NOT NULL,
        quantity BIGINT NOT NULL,
        released BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (order_id, sku)
    )",
];

/// Creates the tables and stocks the catalogue (products already stocked keep their
/// count).
pub async fn prepare(db: &ServiceDb, settings: &Settings) -> Result<(), DbError> {
    db.create_tables(TABLES).await?;
    for product in &settings.catalogue {
        db.sql()
            .execute(
                "INSERT INTO stock (sku, on_hand, initial) VALUES ($1, $2, $2)
                 ON CONFLICT DO NOTHING",
                &[product.sku.into(), product.initial_stock.into()],
            )
            .await
            .map_err(DbError::query("stocking the catalogue"))?;
    }
    Ok(())
}

/// Starts the service: its consumer group on [`INVENTORY_COMMANDS`] and its relay.
pub async fn start<T: Transport>(
    transport: T,
    db: ServiceDb,
    settings: &Settings,
) -> Result<ServiceHandle, crate::ShopError> {
    prepare(&db, settings).await?;
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
    let (reserve_db, release_db) = (db.clone(), db.clone());
    router(transport, NAME, db, settings.give_up_after)
        .on(INVENTORY_COMMANDS, move |cmd: ReserveStock, ctx| {
            let db = reserve_db.clone();
            async move { reserve(&db, cmd, ctx).await }
        })
        .on(INVENTORY_COMMANDS, move |cmd: ReleaseStock, ctx| {
            let db = release_db.clone();
            async move { release(&db, cmd, ctx).await }
        })
        .start()
        .await
}

async fn reserve(
    db: &ServiceDb,
    cmd: ReserveStock,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                // Take each line with a conditional update; if one is short, put back the
                // lines already taken (in this same transaction) and reply unavailable.
                // A second command for the same order (a saga retry after a timeout; a
                // redelivery stopped at the inbox) answers as the first did and holds
                // nothing.
                let order: herald_sql::Value = (&cmd.order_id).into();
                let row = uow
                    .fetch_one(
                        "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT), COUNT(*)
                         FROM reservations WHERE order_id = $1",
                        std::slice::from_ref(&order),
                    )
                    .await?;
                let (held, already): (i64, i64) = (col(&row, 0)?, col(&row, 1)?);
                if already > 0 {
                    let reserved = StockReserved {
                        order_id: cmd.order_id.clone(),
                        units: held,
                    };
                    uow.publish(INVENTORY_EVENTS, reply(SOURCE, &reserved)?);
                    return Ok(());
                }
                let mut taken: Vec<(&str, i64)> = Vec::new();
                let mut short = None;
                for line in &cmd.items {
                    let done = uow
                        .execute(
                            "UPDATE stock SET on_hand = on_hand - $2
                             WHERE sku = $1 AND on_hand >= $2",
                            &[(&line.sku).into(), line.quantity.into()],
                        )
                        .await?;
                    if done == 1 {
                        taken.push((&line.sku, line.quantity));
                    } else {
                        let available = uow
                            .fetch_i64(
                                "SELECT on_hand FROM stock WHERE sku = $1",
                                &[(&line.sku).into()],
                            )
                            .await?;
                        short = Some(StockUnavailable {
                            order_id: cmd.order_id.clone(),
                            sku: line.sku.clone(),
                            requested: line.quantity,
                            available: available.unwrap_or(0),
                        });
                        break;
                    }
                }
                if let Some(unavailable) = short {
                    for (sku, quantity) in taken {
                        uow.execute(
                            "UPDATE stock SET on_hand = on_hand + $2 WHERE sku = $1",
                            &[sku.into(), quantity.into()],
                        )
                        .await?;
                    }
                    uow.publish(INVENTORY_EVENTS, reply(SOURCE, &unavailable)?);
                    return Ok(());
                }
                let mut units = 0;
                for line in &cmd.items {
                    uow.execute(
                        "INSERT INTO reservations (order_id, sku, quantity) VALUES ($1, $2, $3)",
                        &[order.clone(), (&line.sku).into(), line.quantity.into()],
                    )
                    .await?;
                    units += line.quantity;
                }
                let reserved = StockReserved {
                    order_id: cmd.order_id.clone(),
                    units,
                };
                uow.publish(INVENTORY_EVENTS, reply(SOURCE, &reserved)?);
                Ok(())
            })
        })
        .await
}

async fn release(
    db: &ServiceDb,
    cmd: ReleaseStock,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                let order: herald_sql::Value = (&cmd.order_id).into();
                let held = uow
                    .fetch_all(
                        "SELECT sku, quantity FROM reservations
                         WHERE order_id = $1 AND released = 0",
                        std::slice::from_ref(&order),
                    )
                    .await?;
                let mut units = 0;
                for row in &held {
                    let (sku, quantity): (String, i64) = (col(row, 0)?, col(row, 1)?);
                    uow.execute(
                        "UPDATE stock SET on_hand = on_hand + $2 WHERE sku = $1",
                        &[sku.into(), quantity.into()],
                    )
                    .await?;
                    units += quantity;
                }
                uow.execute(
                    "UPDATE reservations SET released = 1 WHERE order_id = $1",
                    &[order],
                )
                .await?;
                let released = StockReleased {
                    order_id: cmd.order_id.clone(),
                    units,
                };
                uow.publish(INVENTORY_EVENTS, reply(SOURCE, &released)?);
                Ok(())
            })
        })
        .await
}

/// The inventory's books, for the demo's invariants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StockBook {
    /// Units stocked initially, over all products.
    pub initial: i64,
    /// Units free now.
    pub on_hand: i64,
    /// Units ever reserved.
    pub reserved: i64,
    /// Units of those given back.
    pub released: i64,
    /// Orders holding a reservation (released or not).
    pub orders: i64,
}

/// Reads the inventory's books.
pub async fn book(db: &ServiceDb) -> Result<StockBook, DbError> {
    let stock = db
        .sql()
        .fetch_one(
            "SELECT CAST(COALESCE(SUM(initial), 0) AS BIGINT),
                    CAST(COALESCE(SUM(on_hand), 0) AS BIGINT)
             FROM stock",
            &[],
        )
        .await
        .map_err(DbError::query("reading stock"))?;
    let held = db
        .sql()
        .fetch_one(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN released = 1 THEN quantity ELSE 0 END), 0) AS BIGINT),
                    COUNT(DISTINCT order_id)
             FROM reservations",
            &[],
        )
        .await
        .map_err(DbError::query("reading reservations"))?;
    Ok(StockBook {
        initial: stock.get(0)?,
        on_hand: stock.get(1)?,
        reserved: held.get(0)?,
        released: held.get(1)?,
        orders: held.get(2)?,
    })
}
