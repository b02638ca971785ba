//! The runtime on a transport: replies through the router, timeouts from the poller,
//! many sagas at once, triggers, dead letters — and crashes: a runtime aborted (dropped
//! without shutdown) at several points is replaced by a new one on the same database,
//! and every saga finishes with each command sent once. Every test runs on SQLite and
//! on PostgreSQL.

mod common;

use std::{sync::Arc, time::Duration};

use common::{
    Fixture, Location, TestSql, eventually,
    shop::{
        Answer, COMMAND_TOPICS, ChargePayment, CreateShipment, INVENTORY_EVENTS, Order,
        PAYMENT_COMMANDS, PAYMENT_EVENTS, RefundPayment, ReleaseStock, ReserveStock, Script,
        StockReserved, Timing, history_kinds, order, order_saga, services,
    },
};
use herald::{
    DeadLetterFilter, DeadLetterQueue, Envelope, Event, MemoryTransport, correlation::caused_by,
    router::RouterHandle, transport::PublisherExt,
};
use herald_saga::{
    SagaBackend, SagaDefinition, SagaManager, SagaRuntime, SagaStatus, SagaStore, StepRetry,
};
use herald_sql::{HeraldDb, RelayConfig, RelayHandle};
use serde::{Deserialize, Serialize};

/// The shop: a relay, the saga runtime and the scripted services on one memory bus.
struct Shop<DB: SagaBackend> {
    bus: MemoryTransport,
    store: SagaStore<DB>,
    manager: SagaManager<DB, Order>,
    script: Arc<Script>,
    relay: Option<RelayHandle>,
    /// The runtime, as a process of its own: its own pool on the database.
    runtime: Option<(SagaRuntime, HeraldDb<DB>)>,
    services: Option<RouterHandle>,
    location: Location,
    timing: Timing,
}

impl<DB: SagaBackend + TestSql> Shop<DB> {
    fn new(f: &Fixture<DB>, timing: &Timing) -> Self {
        let bus = MemoryTransport::new();
        let relay =
            f.db.relay(bus.clone())
                .with_config(RelayConfig {
                    poll_interval: Duration::from_millis(10),
                    ..RelayConfig::default()
                })
                .start();
        Self {
            bus,
            store: f.store.clone(),
            manager: f.store.manager(order_saga(timing)),
            script: Script::new(),
            relay: Some(relay),
            runtime: None,
            services: None,
            location: f.location.clone(),
            timing: timing.clone(),
        }
    }

    /// Starts a runtime in a "process" of its own (its own pool on the database).
    async fn start_runtime(&mut self) {
        let runtime = self.runtime_builder().await;
        self.runtime = Some(runtime);
    }

    async fn runtime_builder(&self) -> (SagaRuntime, HeraldDb<DB>) {
        let db = DB::open(&self.location).await;
        let store = SagaStore::new(db.clone()).await.unwrap();
        let runtime = store
            .manager(order_saga(&self.timing))
            .runtime(self.bus.clone())
            .poll_interval(Duration::from_millis(20))
            .start()
            .await
            .unwrap();
        (runtime, db)
    }

    async fn start_services(&mut self) {
        self.services = Some(services(&self.bus, self.script.clone()).await);
    }

    /// Kills the runtime like a crashed process: its tasks stop where they are and its
    /// connections close (the database rolls back what they had not committed).
    async fn crash_runtime(&mut self) {
        let (runtime, db) = self.runtime.take().unwrap();
        runtime.abort().await;
        db.pool().close().await;
    }

    async fn saga(&self, id: &str) -> herald_saga::SagaInstance {
        self.store.get("order", id).await.unwrap().unwrap().instance
    }

    async fn wait_for(
        &self,
        id: &str,
        what: &str,
        check: impl Fn(&herald_saga::SagaDetails) -> bool,
    ) {
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            let details = self.store.get("order", id).await.unwrap();
            if details.as_ref().is_some_and(&check) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {what}: {details:#?}; services received {:?}",
                self.script.received(id)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn wait_final(&self, id: &str) -> SagaStatus {
        self.wait_for(id, &format!("saga {id} to end"), |d| {
            d.instance.status.is_final()
        })
        .await;
        self.saga(id).await.status
    }

    /// Every command of saga `id` was sent once (attempt 1, one per step and phase).
    async fn assert_each_command_once(&self, id: &str) {
        let commands = self.store.commands("order", id).await.unwrap();
        let mut seen = std::collections::HashSet::new();
        for c in &commands {
            assert_eq!(c.attempt, 1, "{id}: {c:?}");
            assert!(
                seen.insert((c.step, c.compensation)),
                "{id}: sent twice: {c:?}"
            );
        }
    }

    /// The reply the script gives to the last command of type `ty` to `id`, published
    /// on the bus (a service answering while the runtime is down).
    async fn answer_last(&self, id: &str, ty: &'static str, answer: Answer) {
        let command = COMMAND_TOPICS
            .iter()
            .flat_map(|t| self.bus.records(t))
            .map(|r| Envelope::from_record(&r).unwrap())
            .filter(|e| e.event_type == ty && e.key_str() == Some(id))
            .last()
            .unwrap();
        let script = Script::new();
        script.set(ty, answer);
        let (topic, reply) = script.answer(&command).unwrap();
        self.bus.publish_envelope(topic, &reply).await.unwrap();
    }

    async fn stop(mut self) {
        if let Some(s) = self.services.take() {
            s.shutdown().await.unwrap();
        }
        if let Some((r, db)) = self.runtime.take() {
            r.shutdown().await.unwrap();
            db.pool().close().await;
        }
        if let Some(r) = self.relay.take() {
            r.shutdown().await.unwrap();
        }
    }
}

async fn many_at_once<DB: TestSql>(f: &Fixture<DB>) {
    let mut shop = Shop::new(f, &Timing::default());
    shop.start_runtime().await;
    shop.start_services().await;
    let n = 120;
    let expected = |i: usize| match i % 4 {
        0 => (SagaStatus::Completed, None),
        1 => (SagaStatus::Compensated, Some(ReserveStock::TYPE)),
        2 => (SagaStatus::Compensated, Some(ChargePayment::TYPE)),
        _ => (SagaStatus::Compensated, Some(CreateShipment::TYPE)),
    };
    for i in 0..n {
        let id = format!("o-{i}");
        if let (_, Some(failing)) = expected(i) {
            shop.script.set_for(&id, failing, Answer::Fail);
        }
    }
    // Started from many tasks at once.
    let mut starts = tokio::task::JoinSet::new();
    for i in 0..n {
        let manager = shop.manager.clone();
        starts.spawn(async move {
            let id = format!("o-{i}");
            manager.start(&id, order(&id)).await.unwrap();
        });
    }
    while let Some(r) = starts.join_next().await {
        r.unwrap();
    }
    eventually("every saga to end", || async {
        shop.store.counts(Some("order")).await.unwrap().active() == 0
    })
    .await;
    let counts = shop.store.counts(Some("order")).await.unwrap();
    assert_eq!(
        (counts.completed, counts.compensated, counts.failed),
        (30, 90, 0)
    );
    for i in 0..n {
        let id = format!("o-{i}");
        let (status, failing) = expected(i);
        assert_eq!(shop.saga(&id).await.status, status, "{id}");
        shop.assert_each_command_once(&id).await;
        let received = shop.script.received(&id);
        let want: Vec<&str> = match failing {
            None => vec![
                ReserveStock::TYPE,
                ChargePayment::TYPE,
                CreateShipment::TYPE,
            ],
            Some(ReserveStock::TYPE) => vec![ReserveStock::TYPE],
            Some(ChargePayment::TYPE) => {
                vec![ReserveStock::TYPE, ChargePayment::TYPE, ReleaseStock::TYPE]
            }
            Some(_) => vec![
                ReserveStock::TYPE,
                ChargePayment::TYPE,
                CreateShipment::TYPE,
                RefundPayment::TYPE,
                ReleaseStock::TYPE,
            ],
        };
        assert_eq!(received, want, "{id}");
    }
    shop.stop().await;
}
both!(many_sagas_at_once_each_end_right, many_at_once);

async fn crash_after_start<DB: TestSql>(f: &Fixture<DB>) {
    let mut shop = Shop::new(f, &Timing::default());
    // Started while no runtime runs: the commands wait in the outbox and the bus.
    for i in 0..5 {
        let id = format!("o-{i}");
        shop.manager.start(&id, order(&id)).await.unwrap();
    }
    shop.start_services().await;
    // A runtime that dies before handling anything it read.
    shop.start_runtime().await;
    shop.crash_runtime().await;
    shop.start_runtime().await;
    for i in 0..5 {
        let id = format!("o-{i}");
        assert_eq!(shop.wait_final(&id).await, SagaStatus::Completed);
        shop.assert_each_command_once(&id).await;
    }
    shop.stop().await;
}
both!(crash_right_after_start_resumes, crash_after_start);

async fn crash_mid_saga<DB: TestSql>(f: &Fixture<DB>) {
    let mut shop = Shop::new(f, &Timing::default());
    shop.script.set(ChargePayment::TYPE, Answer::Silent);
    shop.start_services().await;
    shop.start_runtime().await;
    shop.manager.start("o-1", order("o-1")).await.unwrap();
    shop.wait_for("o-1", "the charge to be awaited", |d| {
        d.instance.step_name.as_deref() == Some("charge-payment")
    })
    .await;
    eventually("the charge to reach payment", || async {
        shop.script.received("o-1").len() == 2
    })
    .await;
    shop.crash_runtime().await;
    // Payment answers while the orchestrator is down.
    shop.answer_last("o-1", ChargePayment::TYPE, Answer::Succeed)
        .await;
    shop.start_runtime().await;
    assert_eq!(shop.wait_final("o-1").await, SagaStatus::Completed);
    assert_eq!(
        shop.script.received("o-1"),
        [
            ReserveStock::TYPE,
            ChargePayment::TYPE,
            CreateShipment::TYPE
        ]
    );
    shop.assert_each_command_once("o-1").await;
    assert_eq!(shop.saga("o-1").await.data["payment_id"], "pay-o-1");
    shop.stop().await;
}
both!(crash_while_awaiting_a_reply_resumes, crash_mid_saga);

async fn crash_before_commit<DB: TestSql>(f: &Fixture<DB>) {
    DB::install_outbox_fault(f.db.pool()).await;
    let mut shop = Shop::new(f, &Timing::default());
    shop.manager.start("o-1", order("o-1")).await.unwrap();
    let started = shop.store.get("order", "o-1").await.unwrap().unwrap();
    // From now on every transition fails at its last statement (the outbox insert), as
    // if the process died before committing.
    DB::set_outbox_fault(f.db.pool(), true).await;
    shop.start_services().await;
    shop.start_runtime().await;
    eventually("the stock reply", || async {
        !shop.bus.records(INVENTORY_EVENTS).is_empty()
    })
    .await;
    // The runtime keeps trying; each attempt rolls back entirely.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        shop.store.get("order", "o-1").await.unwrap().unwrap(),
        started
    );
    assert_eq!(shop.store.commands("order", "o-1").await.unwrap().len(), 1);
    shop.crash_runtime().await;
    DB::set_outbox_fault(f.db.pool(), false).await;
    // The reply was never committed as consumed: the new runtime gets it again.
    shop.start_runtime().await;
    assert_eq!(shop.wait_final("o-1").await, SagaStatus::Completed);
    shop.assert_each_command_once("o-1").await;
    assert_eq!(
        history_kinds(&shop.store, "o-1").await,
        [
            "started",
            "step_started:reserve-stock",
            "step_succeeded:reserve-stock",
            "step_started:charge-payment",
            "step_succeeded:charge-payment",
            "step_started:create-shipment",
            "step_succeeded:create-shipment",
            "completed",
        ]
    );
    shop.stop().await;
}
both!(
    crash_after_a_reply_before_commit_resumes,
    crash_before_commit
);

async fn crash_during_compensation<DB: TestSql>(f: &Fixture<DB>) {
    let mut shop = Shop::new(f, &Timing::default());
    shop.script.set(CreateShipment::TYPE, Answer::Fail);
    shop.script.set(RefundPayment::TYPE, Answer::Silent);
    shop.start_services().await;
    shop.start_runtime().await;
    shop.manager.start("o-1", order("o-1")).await.unwrap();
    shop.wait_for("o-1", "the refund to be awaited", |d| {
        d.instance.status == SagaStatus::Compensating
            && d.instance.step_name.as_deref() == Some("charge-payment")
    })
    .await;
    eventually("the refund to reach payment", || async {
        shop.script.received("o-1").len() == 4
    })
    .await;
    shop.crash_runtime().await;
    shop.answer_last("o-1", RefundPayment::TYPE, Answer::Succeed)
        .await;
    shop.start_runtime().await;
    assert_eq!(shop.wait_final("o-1").await, SagaStatus::Compensated);
    assert_eq!(
        shop.script.received("o-1"),
        [
            ReserveStock::TYPE,
            ChargePayment::TYPE,
            CreateShipment::TYPE,
            RefundPayment::TYPE,
            ReleaseStock::TYPE,
        ]
    );
    shop.assert_each_command_once("o-1").await;
    shop.stop().await;
}
both!(crash_during_compensation_resumes, crash_during_compensation);

async fn timeouts_survive_restart<DB: TestSql>(f: &Fixture<DB>) {
    let timing = Timing {
        timeout: Duration::from_millis(1000),
        retry: StepRetry::attempts(2).backoff(Duration::ZERO, Duration::ZERO, 1.0),
        ..Timing::default()
    };
    let mut shop = Shop::new(f, &timing);
    shop.script.set(ChargePayment::TYPE, Answer::Silent);
    shop.start_services().await;
    shop.start_runtime().await;
    shop.manager.start("o-1", order("o-1")).await.unwrap();
    shop.wait_for("o-1", "the charge to be awaited", |d| {
        d.instance.step_name.as_deref() == Some("charge-payment")
    })
    .await;
    // Down before the deadline, back after it: the stored deadline fires.
    shop.crash_runtime().await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    shop.start_runtime().await;
    assert_eq!(shop.wait_final("o-1").await, SagaStatus::Compensated);
    assert_eq!(
        shop.script.received("o-1"),
        [
            ReserveStock::TYPE,
            ChargePayment::TYPE,
            ChargePayment::TYPE,
            RefundPayment::TYPE,
            ReleaseStock::TYPE,
        ]
    );
    let kinds = history_kinds(&shop.store, "o-1").await;
    assert_eq!(
        kinds
            .iter()
            .filter(|k| *k == "step_timed_out:charge-payment")
            .count(),
        2
    );
    shop.stop().await;
}
both!(
    timeouts_fire_from_stored_deadlines_after_a_restart,
    timeouts_survive_restart
);

async fn poison_reply<DB: TestSql>(f: &Fixture<DB>) {
    let mut shop = Shop::new(f, &Timing::default());
    shop.script.set(ReserveStock::TYPE, Answer::Silent);
    shop.start_services().await;
    shop.start_runtime().await;
    shop.manager.start("o-1", order("o-1")).await.unwrap();
    eventually("the reservation to reach inventory", || async {
        shop.script.received("o-1").len() == 1
    })
    .await;
    let reserve = shop
        .bus
        .records(common::shop::INVENTORY_COMMANDS)
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .next()
        .unwrap();
    let poison = caused_by(
        Envelope::new("urn:x", StockReserved::TYPE, "{ not json")
            .with_key("o-1")
            .with_content_type("application/json"),
        &reserve,
    );
    shop.bus
        .publish_envelope(INVENTORY_EVENTS, &poison)
        .await
        .unwrap();
    shop.answer_last("o-1", ReserveStock::TYPE, Answer::Succeed)
        .await;
    assert_eq!(shop.wait_final("o-1").await, SagaStatus::Completed);
    let dlq = DeadLetterQueue::new(shop.bus.clone(), INVENTORY_EVENTS, "saga-order");
    let letters = dlq.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, poison.id);
    shop.stop().await;
}
both!(an_undecodable_reply_is_dead_lettered, poison_reply);

#[derive(Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
    cents: u64,
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "shop.order.placed";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

async fn triggered<DB: TestSql>(f: &Fixture<DB>) {
    let mut shop = Shop::new(f, &Timing::default());
    shop.start_services().await;
    let db = DB::open(&shop.location).await;
    let runtime = SagaStore::new(db.clone())
        .await
        .unwrap()
        .manager(order_saga(&Timing::default()))
        .runtime(shop.bus.clone())
        .poll_interval(Duration::from_millis(20))
        .trigger("orders", |e: OrderPlaced| {
            let mut data = order(&e.order_id);
            data.cents = e.cents;
            (e.order_id, data)
        })
        .start()
        .await
        .unwrap();
    shop.runtime = Some((runtime, db));
    let placed = Envelope::from_event(
        "urn:shop",
        &OrderPlaced {
            order_id: "o-1".into(),
            cents: 990,
        },
    )
    .unwrap()
    .with_correlation_id("corr-1");
    // Delivered twice: one saga.
    shop.bus.publish_envelope("orders", &placed).await.unwrap();
    shop.bus.publish_envelope("orders", &placed).await.unwrap();
    assert_eq!(shop.wait_final("o-1").await, SagaStatus::Completed);
    let saga = shop.saga("o-1").await;
    assert_eq!(saga.correlation_id, "corr-1");
    assert_eq!(saga.data["cents"], 990);
    shop.assert_each_command_once("o-1").await;
    let charge = shop
        .bus
        .records(PAYMENT_COMMANDS)
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .next()
        .unwrap();
    assert_eq!(charge.decode::<ChargePayment>().unwrap().cents, 990);
    assert_eq!(charge.correlation_id.as_deref(), Some("corr-1"));
    // Replies carry it on too.
    let reply = Envelope::from_record(&shop.bus.records(PAYMENT_EVENTS)[0]).unwrap();
    assert_eq!(reply.correlation_id.as_deref(), Some("corr-1"));
    shop.stop().await;
}
both!(a_trigger_event_starts_one_saga, triggered);

async fn two_runtimes<DB: TestSql>(f: &Fixture<DB>) {
    // Two runtimes share the group and the deadlines: each saga still ends once, right.
    let timing = Timing {
        timeout: Duration::from_millis(500),
        retry: StepRetry::attempts(2).backoff(Duration::ZERO, Duration::ZERO, 1.0),
        ..Timing::default()
    };
    let mut shop = Shop::new(f, &timing);
    shop.start_services().await;
    shop.start_runtime().await;
    let (second, second_db) = shop.runtime_builder().await;
    for i in 0..20 {
        let id = format!("o-{i}");
        if i % 2 == 0 {
            shop.script
                .set_for(&id, ChargePayment::TYPE, Answer::Silent);
        }
        shop.manager.start(&id, order(&id)).await.unwrap();
    }
    for i in 0..20 {
        let id = format!("o-{i}");
        let want = if i % 2 == 0 {
            SagaStatus::Compensated
        } else {
            SagaStatus::Completed
        };
        assert_eq!(shop.wait_final(&id).await, want, "{id}");
        let commands = shop.store.commands("order", &id).await.unwrap();
        let charges: Vec<u32> = commands
            .iter()
            .filter(|c| c.event_type == ChargePayment::TYPE)
            .map(|c| c.attempt)
            .collect();
        if i % 2 == 0 {
            assert_eq!(charges, [1, 2], "{id}: each attempt sent once");
        } else {
            // Answered, but a busy machine may answer after the short timeout: whatever
            // the attempts, each was sent once.
            let want: Vec<u32> = (1..=charges.len() as u32).collect();
            assert_eq!(charges, want, "{id}: each attempt sent once");
        }
    }
    second.shutdown().await.unwrap();
    second_db.pool().close().await;
    shop.stop().await;
}
both!(two_runtimes_share_replies_and_deadlines, two_runtimes);

#[test]
fn definitions_are_cheap_to_share() {
    let def: SagaDefinition<Order> = order_saga(&Timing::default());
    let copy = def.clone();
    assert_eq!(copy.name(), "order");
    assert_eq!(copy.steps().len(), 3);
    assert!(format!("{copy:?}").contains("charge-payment"));
}
