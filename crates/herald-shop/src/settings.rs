//! The shop's business settings: its catalogue and stock, the payment gateway's and the
//! mail server's behaviour, and how long consumers retry.

use std::time::Duration;

/// A product the shop sells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// Stock-keeping unit.
    pub sku: &'static str,
    /// Price in cents.
    pub price_cents: i64,
    /// Units in stock when the inventory service first starts.
    pub initial_stock: i64,
}

/// The card the simulated gateway always declines (Stripe's generic decline test card).
pub const DECLINED_CARD: &str = "4000000000000002";
/// A card the gateway accepts.
pub const GOOD_CARD: &str = "4242424242424242";
/// A country no carrier serves: shipments there are rejected (Antarctica).
pub const UNSERVED_COUNTRY: &str = "AQ";

/// Settings shared by the services.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The catalogue; the inventory service stocks it on first start.
    pub catalogue: Vec<Product>,
    /// How long the payment gateway takes per charge or refund.
    pub payment_latency: Duration,
    /// How long the mail server takes per email.
    pub email_latency: Duration,
    /// How long a consumer retries an event that fails transiently before it is
    /// dead-lettered.
    pub give_up_after: Duration,
    /// How long the order saga waits for a reply before the step times out.
    pub step_timeout: Duration,
    /// Orders above this total are flagged by the fraud check (cents).
    pub fraud_threshold_cents: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            catalogue: vec![
                Product {
                    sku: "widget",
                    price_cents: 1_250,
                    initial_stock: 1_000_000,
                },
                Product {
                    sku: "gadget",
                    price_cents: 4_999,
                    initial_stock: 1_000_000,
                },
                Product {
                    sku: "gizmo",
                    price_cents: 19_900,
                    initial_stock: 1_000_000,
                },
                // The limited edition runs out: orders for it beyond its stock fail at
                // the first step of the saga.
                Product {
                    sku: "limited-edition",
                    price_cents: 99_900,
                    initial_stock: 5,
                },
            ],
            payment_latency: Duration::from_millis(2),
            email_latency: Duration::from_millis(2),
            give_up_after: Duration::from_secs(60),
            step_timeout: Duration::from_secs(30),
            fraud_threshold_cents: 200_000,
        }
    }
}

impl Settings {
    /// The product with `sku`.
    pub fn product(&self, sku: &str) -> Option<&Product> {
        self.catalogue.iter().find(|p| p.sku == sku)
    }
}
