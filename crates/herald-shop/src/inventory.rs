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
    service::{ServiceHandle, reply, router},
    settings::Settings,
    unit_of_work, with_db,
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
        with_db!(db, |d, _inbox| sqlx::query(
            "INSERT INTO stock (sku, on_hand, initial) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING"
        )
        .bind(product.sku)
        .bind(product.initial_stock)
        .execute(d.pool())
        .await
        .map(|_| ())
        .map_err(DbError::query("stocking the catalogue")))?;
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
    unit_of_work!(db, ctx, |tx| {
        // Take each line with a conditional update; if one is short, put back the
        // lines already taken (in this same transaction) and reply unavailable.
        // A second command for the same order (a saga retry after a timeout; a
        // redelivery stopped at the inbox) answers as the first did and holds nothing.
        let (held, already): (i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT), COUNT(*)
             FROM reservations WHERE order_id = $1",
        )
        .bind(&cmd.order_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(HandlerError::transient)?;
        if already > 0 {
            let reserved = StockReserved {
                order_id: cmd.order_id.clone(),
                units: held,
            };
            vec![(INVENTORY_EVENTS, reply(SOURCE, &reserved)?)]
        } else {
            let mut taken: Vec<(&str, i64)> = Vec::new();
            let mut short = None;
            for line in &cmd.items {
                let done = sqlx::query(
                    "UPDATE stock SET on_hand = on_hand - $2 WHERE sku = $1 AND on_hand >= $2",
                )
                .bind(&line.sku)
                .bind(line.quantity)
                .execute(&mut *tx)
                .await
                .map_err(HandlerError::transient)?;
                if done.rows_affected() == 1 {
                    taken.push((&line.sku, line.quantity));
                } else {
                    let available: Option<i64> =
                        sqlx::query_scalar("SELECT on_hand FROM stock WHERE sku = $1")
                            .bind(&line.sku)
                            .fetch_optional(&mut *tx)
                            .await
                            .map_err(HandlerError::transient)?;
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
                    sqlx::query("UPDATE stock SET on_hand = on_hand + $2 WHERE sku = $1")
                        .bind(sku)
                        .bind(quantity)
                        .execute(&mut *tx)
                        .await
                        .map_err(HandlerError::transient)?;
                }
                vec![(INVENTORY_EVENTS, reply(SOURCE, &unavailable)?)]
            } else {
                let mut units = 0;
                for line in &cmd.items {
                    sqlx::query(
                        "INSERT INTO reservations (order_id, sku, quantity) VALUES ($1, $2, $3)",
                    )
                    .bind(&cmd.order_id)
                    .bind(&line.sku)
                    .bind(line.quantity)
                    .execute(&mut *tx)
                    .await
                    .map_err(HandlerError::transient)?;
                    units += line.quantity;
                }
                let reserved = StockReserved {
                    order_id: cmd.order_id.clone(),
                    units,
                };
                vec![(INVENTORY_EVENTS, reply(SOURCE, &reserved)?)]
            }
        }
    })
}

async fn release(
    db: &ServiceDb,
    cmd: ReleaseStock,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    unit_of_work!(db, ctx, |tx| {
        let held: Vec<(String, i64)> = sqlx::query_as(
            "SELECT sku, quantity FROM reservations WHERE order_id = $1 AND released = 0",
        )
        .bind(&cmd.order_id)
        .fetch_all(&mut *tx)
        .await
        .map_err(HandlerError::transient)?;
        let mut units = 0;
        for (sku, quantity) in held {
            sqlx::query("UPDATE stock SET on_hand = on_hand + $2 WHERE sku = $1")
                .bind(&sku)
                .bind(quantity)
                .execute(&mut *tx)
                .await
                .map_err(HandlerError::transient)?;
            units += quantity;
        }
        sqlx::query("UPDATE reservations SET released = 1 WHERE order_id = $1")
            .bind(&cmd.order_id)
            .execute(&mut *tx)
            .await
            .map_err(HandlerError::transient)?;
        let released = StockReleased {
            order_id: cmd.order_id.clone(),
            units,
        };
        vec![(INVENTORY_EVENTS, reply(SOURCE, &released)?)]
    })
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
    with_db!(db, |d, _inbox| {
        let (initial, on_hand): (i64, i64) =
            sqlx::query_as("SELECT CAST(COALESCE(SUM(initial), 0) AS BIGINT), CAST(COALESCE(SUM(on_hand), 0) AS BIGINT) FROM stock")
                .fetch_one(d.pool())
                .await
                .map_err(DbError::query("reading stock"))?;
        let (reserved, released, orders): (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN released = 1 THEN quantity ELSE 0 END), 0) AS BIGINT),
                    COUNT(DISTINCT order_id)
             FROM reservations",
        )
        .fetch_one(d.pool())
        .await
        .map_err(DbError::query("reading reservations"))?;
        Ok(StockBook {
            initial,
            on_hand,
            reserved,
            released,
            orders,
        })
    })
}
