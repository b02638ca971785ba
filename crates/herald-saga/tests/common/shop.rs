//! The order saga (reserve stock → charge payment → create shipment; release stock and
//! refund as compensations) and scripted services answering its commands.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use herald::{
    Envelope, Event, HandlerContext, HandlerError, MemoryTransport, Router, correlation::caused_by,
    router::RouterHandle,
};
use herald_saga::{
    Compensation, SagaBackend, SagaDefinition, SagaManager, SagaStatus, SagaStore, Step, StepRetry,
};
use herald_sql::{HeraldDb, Relay};
use serde::{Deserialize, Serialize};

pub const INVENTORY_COMMANDS: &str = "inventory-commands";
pub const PAYMENT_COMMANDS: &str = "payment-commands";
pub const SHIPPING_COMMANDS: &str = "shipping-commands";
pub const COMMAND_TOPICS: [&str; 3] = [INVENTORY_COMMANDS, PAYMENT_COMMANDS, SHIPPING_COMMANDS];
pub const INVENTORY_EVENTS: &str = "inventory-events";
pub const PAYMENT_EVENTS: &str = "payment-events";
pub const SHIPPING_EVENTS: &str = "shipping-events";

/// The saga's data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Order {
    pub order_id: String,
    pub cents: u64,
    pub payment_id: Option<String>,
    pub decline_reason: Option<String>,
}

pub fn order(id: &str) -> Order {
    Order {
        order_id: id.to_owned(),
        cents: 2_500,
        payment_id: None,
        decline_reason: None,
    }
}

macro_rules! events {
    ($($name:ident = $type:literal { $($field:ident: $ty:ty),* })*) => {$(
        #[derive(Serialize, Deserialize, Debug, Clone)]
        pub struct $name { pub order_id: String, $(pub $field: $ty),* }
        impl Event for $name {
            const TYPE: &'static str = $type;
            fn key(&self) -> String { self.order_id.clone() }
        }
    )*};
}

events! {
    ReserveStock = "inventory.reserve-stock" {}
    StockReserved = "inventory.stock-reserved" {}
    OutOfStock = "inventory.out-of-stock" {}
    ReleaseStock = "inventory.release-stock" {}
    StockReleased = "inventory.stock-released" {}
    ReleaseRefused = "inventory.release-refused" {}
    ChargePayment = "payment.charge" { cents: u64 }
    PaymentCharged = "payment.charged" { payment_id: String }
    PaymentDeclined = "payment.declined" { reason: String }
    RefundPayment = "payment.refund" { payment_id: Option<String> }
    PaymentRefunded = "payment.refunded" {}
    CreateShipment = "shipping.create-shipment" {}
    ShipmentCreated = "shipping.shipment-created" {}
    ShipmentImpossible = "shipping.shipment-impossible" {}
}

/// Timeouts and retries of the test saga.
#[derive(Clone, Debug)]
pub struct Timing {
    pub timeout: Duration,
    pub retry: StepRetry,
    pub compensation_timeout: Duration,
    pub compensation_retry: StepRetry,
}

impl Default for Timing {
    /// Long enough never to fire in a test that does not want them to.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(600),
            retry: StepRetry::attempts(3),
            compensation_timeout: Duration::from_secs(600),
            compensation_retry: StepRetry::attempts(3),
        }
    }
}

pub fn order_saga(timing: &Timing) -> SagaDefinition<Order> {
    let t = timing.clone();
    SagaDefinition::builder("order")
        .reply_topic(INVENTORY_EVENTS)
        .reply_topic(PAYMENT_EVENTS)
        .reply_topic(SHIPPING_EVENTS)
        .step(
            Step::new("reserve-stock")
                .command(INVENTORY_COMMANDS, |o: &Order| ReserveStock {
                    order_id: o.order_id.clone(),
                })
                .succeeds_on::<StockReserved>()
                .fails_on::<OutOfStock>()
                .timeout(t.timeout)
                .retry(t.retry.clone())
                .compensation(
                    Compensation::new(INVENTORY_COMMANDS, |o: &Order| ReleaseStock {
                        order_id: o.order_id.clone(),
                    })
                    .succeeds_on::<StockReleased>()
                    .fails_on::<ReleaseRefused>()
                    .timeout(t.compensation_timeout)
                    .retry(t.compensation_retry.clone()),
                ),
        )
        .step(
            Step::new("charge-payment")
                .command(PAYMENT_COMMANDS, |o: &Order| ChargePayment {
                    order_id: o.order_id.clone(),
                    cents: o.cents,
                })
                .on_success(|o: &mut Order, r: PaymentCharged| o.payment_id = Some(r.payment_id))
                .on_failure(|o: &mut Order, r: PaymentDeclined| o.decline_reason = Some(r.reason))
                .timeout(t.timeout)
                .retry(t.retry.clone())
                .compensation(
                    Compensation::new(PAYMENT_COMMANDS, |o: &Order| RefundPayment {
                        order_id: o.order_id.clone(),
                        payment_id: o.payment_id.clone(),
                    })
                    .succeeds_on::<PaymentRefunded>()
                    .timeout(t.compensation_timeout)
                    .retry(t.compensation_retry.clone()),
                ),
        )
        .step(
            Step::new("create-shipment")
                .command(SHIPPING_COMMANDS, |o: &Order| CreateShipment {
                    order_id: o.order_id.clone(),
                })
                .succeeds_on::<ShipmentCreated>()
                .fails_on::<ShipmentImpossible>()
                .timeout(t.timeout)
                .retry(t.retry),
        )
        .build()
        .unwrap()
}

/// How a service answers a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Succeed,
    Fail,
    Silent,
}

/// What the services answer, and what they received.
#[derive(Default)]
pub struct Script {
    /// By command type; `Succeed` when absent.
    answers: Mutex<HashMap<&'static str, Answer>>,
    /// By (order id, command type); beats `answers`.
    per_order: Mutex<HashMap<(String, &'static str), Answer>>,
    /// (order id, command type) of every command received, in order.
    received: Mutex<Vec<(String, String)>>,
}

impl Script {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn set(&self, command: &'static str, answer: Answer) {
        self.answers.lock().unwrap().insert(command, answer);
    }

    pub fn set_for(&self, order: &str, command: &'static str, answer: Answer) {
        self.per_order
            .lock()
            .unwrap()
            .insert((order.to_owned(), command), answer);
    }

    /// Command types order `order` received, in order.
    pub fn received(&self, order: &str) -> Vec<String> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(o, _)| o == order)
            .map(|(_, t)| t.clone())
            .collect()
    }

    pub fn received_all(&self) -> Vec<(String, String)> {
        self.received.lock().unwrap().clone()
    }

    /// The reply to `command` (topic and event, caused by the command), if any.
    pub fn answer(&self, command: &Envelope) -> Option<(&'static str, Envelope)> {
        let order = command.key_str().unwrap_or_default().to_owned();
        self.received
            .lock()
            .unwrap()
            .push((order.clone(), command.event_type.clone()));
        let ty = command.event_type.as_str();
        let answer = self
            .per_order
            .lock()
            .unwrap()
            .iter()
            .find(|((o, t), _)| *o == order && *t == ty)
            .map(|(_, a)| *a)
            .or_else(|| self.answers.lock().unwrap().get(ty).copied())
            .unwrap_or(Answer::Succeed);
        let o = order.clone();
        let reply = match (ty, answer) {
            (_, Answer::Silent) => return None,
            (ReserveStock::TYPE, Answer::Succeed) => {
                ev(INVENTORY_EVENTS, &StockReserved { order_id: o })
            }
            (ReserveStock::TYPE, Answer::Fail) => ev(INVENTORY_EVENTS, &OutOfStock { order_id: o }),
            (ReleaseStock::TYPE, Answer::Succeed) => {
                ev(INVENTORY_EVENTS, &StockReleased { order_id: o })
            }
            (ReleaseStock::TYPE, Answer::Fail) => {
                ev(INVENTORY_EVENTS, &ReleaseRefused { order_id: o })
            }
            (ChargePayment::TYPE, Answer::Succeed) => ev(
                PAYMENT_EVENTS,
                &PaymentCharged {
                    payment_id: format!("pay-{o}"),
                    order_id: o,
                },
            ),
            (ChargePayment::TYPE, Answer::Fail) => ev(
                PAYMENT_EVENTS,
                &PaymentDeclined {
                    order_id: o,
                    reason: "card declined".into(),
                },
            ),
            (RefundPayment::TYPE, _) => ev(PAYMENT_EVENTS, &PaymentRefunded { order_id: o }),
            (CreateShipment::TYPE, Answer::Succeed) => {
                ev(SHIPPING_EVENTS, &ShipmentCreated { order_id: o })
            }
            (CreateShipment::TYPE, Answer::Fail) => {
                ev(SHIPPING_EVENTS, &ShipmentImpossible { order_id: o })
            }
            (other, _) => panic!("no service takes {other}"),
        };
        Some((reply.0, caused_by(reply.1, command)))
    }
}

fn ev<E: Event>(topic: &'static str, event: &E) -> (&'static str, Envelope) {
    (
        topic,
        Envelope::from_event("urn:test:service", event).unwrap(),
    )
}

/// The services as a consumer group on `bus`, answering by `script`.
pub async fn services(bus: &MemoryTransport, script: Arc<Script>) -> RouterHandle {
    let mut router = Router::builder(bus.clone(), "services").source("urn:test:service");
    for topic in COMMAND_TOPICS {
        for ty in [
            ReserveStock::TYPE,
            ReleaseStock::TYPE,
            ChargePayment::TYPE,
            RefundPayment::TYPE,
            CreateShipment::TYPE,
        ] {
            let script = script.clone();
            router = router.on_type(topic, ty, move |command: Envelope, ctx: HandlerContext| {
                let script = script.clone();
                async move {
                    if let Some((topic, reply)) = script.answer(&command) {
                        ctx.publish(topic, reply)
                            .await
                            .map_err(HandlerError::transient)?;
                    }
                    Ok(())
                }
            });
        }
    }
    router.start().await.unwrap()
}

/// Runs sagas without a runtime: publishes the outbox, hands each new command to the
/// script and each reply to the manager, until nothing moves.
pub struct Driver<DB: SagaBackend> {
    pub bus: MemoryTransport,
    pub relay: Relay<DB, MemoryTransport>,
    pub manager: SagaManager<DB, Order>,
    pub script: Arc<Script>,
    /// Every reply handed over, in order.
    pub replies: Vec<Envelope>,
    cursors: HashMap<&'static str, usize>,
}

impl<DB: SagaBackend> Driver<DB> {
    pub fn new(
        db: &HeraldDb<DB>,
        store: &SagaStore<DB>,
        definition: SagaDefinition<Order>,
    ) -> Self {
        let bus = MemoryTransport::new();
        Self {
            relay: db.relay(bus.clone()),
            bus,
            manager: store.manager(definition),
            script: Script::new(),
            replies: Vec::new(),
            cursors: HashMap::new(),
        }
    }

    /// Commands published since the last call.
    pub async fn new_commands(&mut self) -> Vec<Envelope> {
        self.relay.run_once().await.unwrap();
        let mut out = Vec::new();
        for topic in COMMAND_TOPICS {
            let records = self.bus.records(topic);
            let cursor = self.cursors.entry(topic).or_default();
            for r in &records[*cursor..] {
                out.push(Envelope::from_record(r).unwrap());
            }
            *cursor = records.len();
        }
        out
    }

    /// Answers commands and hands replies over until nothing moves.
    pub async fn pump(&mut self) {
        loop {
            let commands = self.new_commands().await;
            if commands.is_empty() {
                return;
            }
            for command in commands {
                if let Some((_, reply)) = self.script.answer(&command) {
                    self.manager.handle_reply(&reply).await.unwrap();
                    self.replies.push(reply);
                }
            }
        }
    }

    pub async fn status(&self, id: &str) -> SagaStatus {
        self.manager
            .store()
            .get("order", id)
            .await
            .unwrap()
            .unwrap()
            .instance
            .status
    }

    pub async fn kinds(&self, id: &str) -> Vec<String> {
        history_kinds(self.manager.store(), id).await
    }
}

/// The kinds of a saga's history, each with its step name where it has one
/// (`step_started:reserve-stock`).
pub async fn history_kinds<DB: SagaBackend>(store: &SagaStore<DB>, id: &str) -> Vec<String> {
    store
        .get("order", id)
        .await
        .unwrap()
        .unwrap()
        .history
        .iter()
        .map(|h| match &h.step_name {
            Some(s) => format!("{}:{s}", h.kind),
            None => h.kind.to_string(),
        })
        .collect()
}
