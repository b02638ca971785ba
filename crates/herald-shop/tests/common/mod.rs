//! A shop on the embedded transport in a temporary directory, and orders to place.

#![allow(dead_code)] // why: each test binary uses part of this module

use std::time::{Duration, Instant};

use herald::EmbeddedTransport;
use herald_shop::{
    Shop, Storage,
    events::Address,
    order::{OrderLine, OrderView, PlaceOrder, Placed},
    settings::{GOOD_CARD, Settings},
};

pub(crate) struct Harness {
    pub(crate) shop: Shop<EmbeddedTransport>,
    pub(crate) dir: tempfile::TempDir,
}

pub(crate) async fn start(settings: Settings) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let bus = EmbeddedTransport::open(dir.path().join("log")).unwrap();
    let shop = Shop::start(bus, Storage::Sqlite(dir.path().join("db")), settings)
        .await
        .unwrap();
    Harness { shop, dir }
}

pub(crate) fn order(
    customer: &str,
    sku: &str,
    quantity: i64,
    card: &str,
    country: &str,
) -> PlaceOrder {
    PlaceOrder {
        customer_id: customer.into(),
        email: format!("{customer}@example.com"),
        items: vec![OrderLine {
            sku: sku.into(),
            quantity,
        }],
        card: card.into(),
        address: Address {
            name: customer.into(),
            street: "1 Main St".into(),
            city: "Somewhere".into(),
            country: country.into(),
        },
    }
}

pub(crate) fn good(customer: &str) -> PlaceOrder {
    order(customer, "widget", 1, GOOD_CARD, "GB")
}

impl Harness {
    pub(crate) async fn place(&self, order: PlaceOrder) -> Placed {
        self.shop.orders().place(order, None).await.unwrap()
    }

    /// Waits until the order's saga ended and the order is closed.
    pub(crate) async fn finished(&self, placed: &Placed, within: Duration) -> OrderView {
        let deadline = Instant::now() + within;
        loop {
            let view = self.shop.orders().get(&placed.order_id).await.unwrap();
            if view.status != "placed" {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "order {} did not finish",
                placed.order_id
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
