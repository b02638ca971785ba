//! The order flow of `docs/sagas.md` done by choreography instead of a saga: no
//! orchestrator and no saga tables, each service reacts to the others' events with plain
//! herald handlers and publishes its own; compensation is a reaction to a failure event.
//! This test is the example the document quotes: it runs it and checks that stock and
//! payments balance for orders that ship, are declined, or cannot ship.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use herald::{
    Envelope, Event, HandlerContext, HandlerError, MemoryTransport, Router, transport::PublisherExt,
};
use serde::{Deserialize, Serialize};

macro_rules! events {
    ($($name:ident = $type:literal),* $(,)?) => {$(
        #[derive(Serialize, Deserialize)]
        struct $name { order_id: String }
        impl Event for $name {
            const TYPE: &'static str = $type;
            fn key(&self) -> String { self.order_id.clone() }
        }
    )*};
}

events! {
    OrderPlaced = "shop.order.placed",
    StockReserved = "inventory.stock-reserved",
    OutOfStock = "inventory.out-of-stock",
    StockReleased = "inventory.stock-released",
    PaymentCharged = "payment.charged",
    PaymentDeclined = "payment.declined",
    PaymentRefunded = "payment.refunded",
    ShipmentCreated = "shipping.shipment-created",
    ShipmentFailed = "shipping.shipment-failed",
}

/// What each service did, to check the books balance.
#[derive(Default)]
struct Books {
    reserved: Mutex<HashMap<String, i32>>,
    charged: Mutex<HashMap<String, i32>>,
    orders: Mutex<HashMap<String, &'static str>>,
}

fn bump(map: &Mutex<HashMap<String, i32>>, id: &str, by: i32) {
    *map.lock().unwrap().entry(id.to_owned()).or_default() += by;
}

type Handled = Result<(), HandlerError>;

#[tokio::test]
async fn choreographed_order_flow_balances() {
    let bus = MemoryTransport::new();
    let books = Arc::new(Books::default());

    // Inventory reserves on OrderPlaced, and releases when payment or shipping fails.
    let b = books.clone();
    let inventory = Router::builder(bus.clone(), "inventory")
        .on("orders", move |e: OrderPlaced, ctx: HandlerContext| {
            let b = b.clone();
            async move {
                if e.order_id.starts_with("nostock") {
                    ctx.publish_event(
                        "inventory",
                        &OutOfStock {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                } else {
                    bump(&b.reserved, &e.order_id, 1);
                    ctx.publish_event(
                        "inventory",
                        &StockReserved {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                }
                Handled::Ok(())
            }
        })
        .on("payments", {
            let b = books.clone();
            move |e: PaymentDeclined, ctx: HandlerContext| {
                let b = b.clone();
                async move {
                    bump(&b.reserved, &e.order_id, -1);
                    ctx.publish_event(
                        "inventory",
                        &StockReleased {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                    Handled::Ok(())
                }
            }
        })
        .on("shipping", {
            let b = books.clone();
            move |e: ShipmentFailed, ctx: HandlerContext| {
                let b = b.clone();
                async move {
                    bump(&b.reserved, &e.order_id, -1);
                    ctx.publish_event(
                        "inventory",
                        &StockReleased {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                    Handled::Ok(())
                }
            }
        })
        .start()
        .await
        .unwrap();

    // Payment charges once stock is reserved, and refunds when shipping fails.
    let b = books.clone();
    let payment = Router::builder(bus.clone(), "payment")
        .on("inventory", move |e: StockReserved, ctx: HandlerContext| {
            let b = b.clone();
            async move {
                if e.order_id.starts_with("decline") {
                    ctx.publish_event(
                        "payments",
                        &PaymentDeclined {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                } else {
                    bump(&b.charged, &e.order_id, 1);
                    ctx.publish_event(
                        "payments",
                        &PaymentCharged {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                }
                Handled::Ok(())
            }
        })
        .on("shipping", {
            let b = books.clone();
            move |e: ShipmentFailed, ctx: HandlerContext| {
                let b = b.clone();
                async move {
                    bump(&b.charged, &e.order_id, -1);
                    ctx.publish_event(
                        "payments",
                        &PaymentRefunded {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                    Handled::Ok(())
                }
            }
        })
        .start()
        .await
        .unwrap();

    // Shipping ships what is paid for.
    let shipping = Router::builder(bus.clone(), "shipping")
        .on(
            "payments",
            |e: PaymentCharged, ctx: HandlerContext| async move {
                if e.order_id.starts_with("noship") {
                    ctx.publish_event(
                        "shipping",
                        &ShipmentFailed {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                } else {
                    ctx.publish_event(
                        "shipping",
                        &ShipmentCreated {
                            order_id: e.order_id,
                        },
                    )
                    .await?;
                }
                Handled::Ok(())
            },
        )
        .start()
        .await
        .unwrap();

    // The order service follows the outcome.
    let status = |outcome: &'static str| {
        let b = books.clone();
        move |id: String| {
            b.orders.lock().unwrap().insert(id, outcome);
        }
    };
    let (done, declined, no_stock, no_ship) = (
        status("completed"),
        status("cancelled: declined"),
        status("cancelled: out of stock"),
        status("cancelled: cannot ship"),
    );
    let orders = Router::builder(bus.clone(), "orders")
        .on("shipping", move |e: ShipmentCreated, _| {
            done(e.order_id);
            async { Handled::Ok(()) }
        })
        .on("payments", move |e: PaymentDeclined, _| {
            declined(e.order_id);
            async { Handled::Ok(()) }
        })
        .on("inventory", move |e: OutOfStock, _| {
            no_stock(e.order_id);
            async { Handled::Ok(()) }
        })
        .on("payments", move |e: PaymentRefunded, _| {
            no_ship(e.order_id);
            async { Handled::Ok(()) }
        })
        .start()
        .await
        .unwrap();

    let ids = ["ok-1", "ok-2", "decline-1", "nostock-1", "noship-1"];
    for id in ids {
        let placed = Envelope::from_event(
            "urn:shop",
            &OrderPlaced {
                order_id: id.into(),
            },
        )
        .unwrap();
        bus.publish_envelope("orders", &placed).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while books.orders.lock().unwrap().len() < ids.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "orders did not settle"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let orders_seen = books.orders.lock().unwrap().clone();
    assert_eq!(orders_seen["ok-1"], "completed");
    assert_eq!(orders_seen["decline-1"], "cancelled: declined");
    assert_eq!(orders_seen["nostock-1"], "cancelled: out of stock");
    assert_eq!(orders_seen["noship-1"], "cancelled: cannot ship");
    // The refund for noship-1 is in; its stock release may still be on its way.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reserved = books.reserved.lock().unwrap().clone();
        let charged = books.charged.lock().unwrap().clone();
        let balanced = ids.iter().all(|id| {
            let shipped = i32::from(orders_seen[*id] == "completed");
            reserved.get(*id).copied().unwrap_or(0) == shipped
                && charged.get(*id).copied().unwrap_or(0) == shipped
        });
        if balanced {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "books do not balance: {reserved:?} {charged:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for router in [inventory, payment, shipping, orders] {
        router.shutdown().await.unwrap();
    }
}
