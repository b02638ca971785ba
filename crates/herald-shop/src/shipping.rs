//! The shipping service: creates shipments ([`CreateShipment`]), the last step of the
//! order saga. No carrier serves [`UNSERVED_COUNTRY`]: such shipments are rejected,
//! which makes the saga refund the payment and release the stock.
//!
//! Table `shipments (order_id, shipment_id, country, units)`.
//!
//! [`UNSERVED_COUNTRY`]: crate::settings::UNSERVED_COUNTRY

use herald::{
    HandlerContext, HandlerError, RouterHandle, router::RouterError, transport::Transport,
};

use crate::{
    db::{DbError, ServiceDb},
    events::{
        CreateShipment, SHIPPING_COMMANDS, SHIPPING_EVENTS, ShipmentCreated, ShipmentRejected,
    },
    service::{ServiceHandle, reply, router},
    settings::{Settings, UNSERVED_COUNTRY},
};

/// The service's name, consumer group and database.
pub const NAME: &str = "shipping";
const SOURCE: &str = "urn:herald-shop:shipping";

const TABLES: &[&str] = &["CREATE TABLE IF NOT EXISTS shipments (
        order_id TEXT PRIMARY KEY,
        shipment_id TEXT NOT NULL,
        country TEXT NOT NULL,
        units BIGINT NOT NULL
    )"];

/// Starts the service: its consumer group on [`SHIPPING_COMMANDS`] and its relay.
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
    let create_db = db.clone();
    router(transport, NAME, db, settings.give_up_after)
        .on(SHIPPING_COMMANDS, move |cmd: CreateShipment, ctx| {
            let db = create_db.clone();
            async move { create(&db, cmd, ctx).await }
        })
        .start()
        .await
}

async fn create(
    db: &ServiceDb,
    cmd: CreateShipment,
    ctx: HandlerContext,
) -> Result<(), HandlerError> {
    db.sql()
        .handle_with(&ctx, move |uow| {
            Box::pin(async move {
                if cmd.address.country.eq_ignore_ascii_case(UNSERVED_COUNTRY) {
                    let rejected = ShipmentRejected {
                        order_id: cmd.order_id.clone(),
                        reason: format!("no carrier serves {}", cmd.address.country),
                    };
                    uow.publish(SHIPPING_EVENTS, reply(SOURCE, &rejected)?);
                    return Ok(());
                }
                let units: i64 = cmd.items.iter().map(|l| l.quantity).sum();
                let shipment_id = format!("ship-{}", cmd.order_id);
                uow.execute(
                    "INSERT INTO shipments (order_id, shipment_id, country, units)
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                    &[
                        (&cmd.order_id).into(),
                        (&shipment_id).into(),
                        (&cmd.address.country).into(),
                        units.into(),
                    ],
                )
                .await?;
                let created = ShipmentCreated {
                    order_id: cmd.order_id.clone(),
                    shipment_id,
                };
                uow.publish(SHIPPING_EVENTS, reply(SOURCE, &created)?);
                Ok(())
            })
        })
        .await
}

/// Shipments and the units they carry.
pub async fn shipped(db: &ServiceDb) -> Result<(i64, i64), DbError> {
    let row = db
        .sql()
        .fetch_one(
            "SELECT COUNT(*), CAST(COALESCE(SUM(units), 0) AS BIGINT) FROM shipments",
            &[],
        )
        .await
        .map_err(DbError::query("reading shipments"))?;
    Ok((row.get(0)?, row.get(1)?))
}
