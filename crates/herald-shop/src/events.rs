//! The shop's topics, events and commands: the contracts between its services.
//!
//! Every message is a typed [`Event`] (JSON data in a CloudEvents envelope), keyed by the
//! order id so that everything about one order stays in order on one partition.
//!
//! | topic | written by | messages |
//! | --- | --- | --- |
//! | [`ORDERS`] | order service (outbox) | [`OrderPlaced`], [`OrderCompleted`], [`OrderCancelled`] |
//! | [`INVENTORY_COMMANDS`] | order saga | [`ReserveStock`], [`ReleaseStock`] |
//! | [`PAYMENT_COMMANDS`] | order saga | [`ChargePayment`], [`RefundPayment`] |
//! | [`SHIPPING_COMMANDS`] | order saga | [`CreateShipment`] |
//! | [`INVENTORY_EVENTS`] | inventory service (outbox) | [`StockReserved`], [`StockUnavailable`], [`StockReleased`] |
//! | [`PAYMENT_EVENTS`] | payment service (outbox) | [`PaymentCharged`], [`PaymentDeclined`], [`PaymentRefunded`] |
//! | [`SHIPPING_EVENTS`] | shipping service (outbox) | [`ShipmentCreated`], [`ShipmentRejected`] |
//!
//! Consumers of [`ORDERS`]: notification (emails), analytics, loyalty, and any service
//! added later (the fraud check in [`crate::fraud`]) without a change to a producer.

use herald::Event;
use serde::{Deserialize, Serialize};

/// Order events: placed, completed, cancelled.
pub const ORDERS: &str = "shop.orders";
/// `ce_source` of order events (the order service's and its saga's).
pub const ORDER_SOURCE: &str = "urn:herald-shop:order";
/// Commands to the inventory service.
pub const INVENTORY_COMMANDS: &str = "shop.inventory.commands";
/// Commands to the payment service.
pub const PAYMENT_COMMANDS: &str = "shop.payment.commands";
/// Commands to the shipping service.
pub const SHIPPING_COMMANDS: &str = "shop.shipping.commands";
/// Replies of the inventory service.
pub const INVENTORY_EVENTS: &str = "shop.inventory.events";
/// Replies of the payment service.
pub const PAYMENT_EVENTS: &str = "shop.payment.events";
/// Replies of the shipping service.
pub const SHIPPING_EVENTS: &str = "shop.shipping.events";

/// Every topic of the shop, created with [`PARTITIONS`] partitions at start.
pub const TOPICS: [&str; 7] = [
    ORDERS,
    INVENTORY_COMMANDS,
    PAYMENT_COMMANDS,
    SHIPPING_COMMANDS,
    INVENTORY_EVENTS,
    PAYMENT_EVENTS,
    SHIPPING_EVENTS,
];

/// Partitions per topic: orders are spread over them by id.
pub const PARTITIONS: u32 = 4;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// The product.
    pub sku: String,
    /// How many; positive.
    pub quantity: i64,
    /// Price of one, in cents; positive.
    pub unit_price_cents: i64,
}

/// Where an order ships to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    /// Recipient.
    pub name: String,
    /// Street and number.
    pub street: String,
    /// City.
    pub city: String,
    /// ISO 3166 alpha-2 country code, e.g. `DE`.
    pub country: String,
}

/// An order was accepted and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderPlaced {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Where confirmations go.
    pub email: String,
    /// What was ordered.
    pub items: Vec<LineItem>,
    /// Sum of the lines, in cents.
    pub total_cents: i64,
    /// The card to charge (a token; test cards decide the gateway's answer).
    pub card: String,
    /// Where it ships.
    pub address: Address,
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "shop.order.placed";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// The order saga finished every step: stock reserved, paid, shipment created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCompleted {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Where confirmations go.
    pub email: String,
    /// What was charged, in cents.
    pub total_cents: i64,
    /// The shipment that carries it.
    pub shipment_id: String,
}

impl Event for OrderCompleted {
    const TYPE: &'static str = "shop.order.completed";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// The order saga failed and compensated the steps it had completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderCancelled {
    /// The order.
    pub order_id: String,
    /// Who ordered.
    pub customer_id: String,
    /// Where confirmations go.
    pub email: String,
    /// Why, for the customer.
    pub reason: String,
}

impl Event for OrderCancelled {
    const TYPE: &'static str = "shop.order.cancelled";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Command: hold stock for an order's lines, all or nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReserveStock {
    /// The order.
    pub order_id: String,
    /// The lines to reserve.
    pub items: Vec<LineItem>,
}

impl Event for ReserveStock {
    const TYPE: &'static str = "shop.inventory.reserve";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Command (compensation): give an order's reserved stock back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseStock {
    /// The order.
    pub order_id: String,
}

impl Event for ReleaseStock {
    const TYPE: &'static str = "shop.inventory.release";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Command: charge an order's total to its card.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargePayment {
    /// The order.
    pub order_id: String,
    /// Who pays.
    pub customer_id: String,
    /// How much, in cents.
    pub amount_cents: i64,
    /// The card token.
    pub card: String,
}

impl Event for ChargePayment {
    const TYPE: &'static str = "shop.payment.charge";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Command (compensation): refund an order's charge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundPayment {
    /// The order.
    pub order_id: String,
}

impl Event for RefundPayment {
    const TYPE: &'static str = "shop.payment.refund";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Command: create the shipment of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateShipment {
    /// The order.
    pub order_id: String,
    /// Where to.
    pub address: Address,
    /// What.
    pub items: Vec<LineItem>,
}

impl Event for CreateShipment {
    const TYPE: &'static str = "shop.shipping.create";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: the stock of every line is held for the order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReserved {
    /// The order.
    pub order_id: String,
    /// Units held, over all lines.
    pub units: i64,
}

impl Event for StockReserved {
    const TYPE: &'static str = "shop.inventory.reserved";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: a line could not be reserved; nothing was held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockUnavailable {
    /// The order.
    pub order_id: String,
    /// The first line that was short.
    pub sku: String,
    /// Units asked for.
    pub requested: i64,
    /// Units in stock.
    pub available: i64,
}

impl Event for StockUnavailable {
    const TYPE: &'static str = "shop.inventory.unavailable";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: an order's reservation was given back (`units` is 0 if it held none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockReleased {
    /// The order.
    pub order_id: String,
    /// Units returned to stock.
    pub units: i64,
}

impl Event for StockReleased {
    const TYPE: &'static str = "shop.inventory.released";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: the card was charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCharged {
    /// The order.
    pub order_id: String,
    /// The payment.
    pub payment_id: String,
    /// Charged, in cents.
    pub amount_cents: i64,
}

impl Event for PaymentCharged {
    const TYPE: &'static str = "shop.payment.charged";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: the gateway declined the card; nothing was charged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentDeclined {
    /// The order.
    pub order_id: String,
    /// The gateway's reason.
    pub reason: String,
}

impl Event for PaymentDeclined {
    const TYPE: &'static str = "shop.payment.declined";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: an order's charge was refunded (`amount_cents` is 0 if it had none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRefunded {
    /// The order.
    pub order_id: String,
    /// Refunded, in cents.
    pub amount_cents: i64,
}

impl Event for PaymentRefunded {
    const TYPE: &'static str = "shop.payment.refunded";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: a carrier accepted the shipment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentCreated {
    /// The order.
    pub order_id: String,
    /// The shipment.
    pub shipment_id: String,
}

impl Event for ShipmentCreated {
    const TYPE: &'static str = "shop.shipping.created";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

/// Reply: no carrier serves the address; nothing ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipmentRejected {
    /// The order.
    pub order_id: String,
    /// Why.
    pub reason: String,
}

impl Event for ShipmentRejected {
    const TYPE: &'static str = "shop.shipping.rejected";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}
