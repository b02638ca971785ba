//! The saga state machine, driven step by step (no runtime): success, every failure path
//! with its compensations in reverse order, timeouts with retries, duplicate and late
//! replies, starting in the caller's transaction, and what is refused. Every test runs on
//! SQLite and on PostgreSQL.

mod common;

use std::time::Duration;

use common::{
    Fixture,
    shop::{
        Answer, ChargePayment, CreateShipment, Driver, Order, PaymentCharged, RefundPayment,
        ReleaseStock, ReserveStock, StockReserved, Timing, order, order_saga,
    },
};
use herald::{Envelope, Event, correlation::caused_by};
use herald_saga::{
    IgnoreReason, ManualClock, ReplyOutcome, SAGA_ID_HEADER, SAGA_STEP_HEADER, SAGA_TYPE_HEADER,
    SagaBackend, SagaError, SagaStatus, StepRetry,
};

fn driver<DB: SagaBackend>(f: &Fixture<DB>) -> Driver<DB> {
    Driver::new(&f.db, &f.store, order_saga(&Timing::default()))
}

async fn success<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    assert_eq!(d.status("o-1").await, SagaStatus::Completed);
    assert_eq!(
        d.kinds("o-1").await,
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
    assert_eq!(
        d.script.received("o-1"),
        [
            ReserveStock::TYPE,
            ChargePayment::TYPE,
            CreateShipment::TYPE
        ]
    );
    let details = f.store.get("order", "o-1").await.unwrap().unwrap();
    assert_eq!(details.instance.data["payment_id"], "pay-o-1");
    assert_eq!(details.instance.step, 3);
    assert_eq!(details.instance.deadline, None);
    assert_eq!(details.instance.error, None);
    // One command per step, each sent once.
    let commands = f.store.commands("order", "o-1").await.unwrap();
    assert_eq!(commands.len(), 3);
    assert!(commands.iter().all(|c| c.attempt == 1 && !c.compensation));
    let counts = f.store.counts(Some("order")).await.unwrap();
    assert_eq!((counts.completed, counts.active()), (1, 0));
}
both!(success_completes_every_step, success);

async fn fails_at_step_1<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.script.set(ReserveStock::TYPE, Answer::Fail);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    assert_eq!(d.status("o-1").await, SagaStatus::Compensated);
    assert_eq!(
        d.kinds("o-1").await,
        [
            "started",
            "step_started:reserve-stock",
            "step_failed:reserve-stock",
            "compensating",
            "compensated",
        ]
    );
    // The failed step did nothing, so nothing is undone.
    assert_eq!(d.script.received("o-1"), [ReserveStock::TYPE]);
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert!(saga.error.unwrap().contains("inventory.out-of-stock"));
}
both!(failure_at_step_1_compensates_nothing, fails_at_step_1);

async fn fails_at_step_2<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.script.set(ChargePayment::TYPE, Answer::Fail);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    assert_eq!(d.status("o-1").await, SagaStatus::Compensated);
    assert_eq!(
        d.kinds("o-1").await,
        [
            "started",
            "step_started:reserve-stock",
            "step_succeeded:reserve-stock",
            "step_started:charge-payment",
            "step_failed:charge-payment",
            "compensating:reserve-stock",
            "compensation_started:reserve-stock",
            "compensation_succeeded:reserve-stock",
            "compensated",
        ]
    );
    assert_eq!(
        d.script.received("o-1"),
        [ReserveStock::TYPE, ChargePayment::TYPE, ReleaseStock::TYPE]
    );
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    // The failure handler recorded the reason in the data.
    assert_eq!(saga.data["decline_reason"], "card declined");
    assert_eq!(saga.data["payment_id"], serde_json::Value::Null);
}
both!(failure_at_step_2_releases_the_stock, fails_at_step_2);

async fn fails_at_step_3<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.script.set(CreateShipment::TYPE, Answer::Fail);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.manager.start("o-2", order("o-2")).await.unwrap();
    d.pump().await;
    for id in ["o-1", "o-2"] {
        assert_eq!(d.status(id).await, SagaStatus::Compensated);
        // Compensations in reverse order: refund (step 2) before release (step 1).
        assert_eq!(
            d.script.received(id),
            [
                ReserveStock::TYPE,
                ChargePayment::TYPE,
                CreateShipment::TYPE,
                RefundPayment::TYPE,
                ReleaseStock::TYPE,
            ]
        );
        assert_eq!(
            d.kinds(id).await[6..],
            [
                "step_failed:create-shipment",
                "compensating:charge-payment",
                "compensation_started:charge-payment",
                "compensation_succeeded:charge-payment",
                "compensation_started:reserve-stock",
                "compensation_succeeded:reserve-stock",
                "compensated",
            ]
        );
    }
    // The refund was made from data a reply added: the payment id.
    let refund = d
        .bus
        .records(common::shop::PAYMENT_COMMANDS)
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .find(|e| e.event_type == RefundPayment::TYPE && e.key_str() == Some("o-1"))
        .unwrap();
    assert_eq!(
        refund
            .decode::<RefundPayment>()
            .unwrap()
            .payment_id
            .as_deref(),
        Some("pay-o-1")
    );
}
both!(failure_at_step_3_refunds_then_releases, fails_at_step_3);

async fn duplicates<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    // The first reply, handed over twice: the second changes nothing.
    let reserve = d.new_commands().await.remove(0);
    let (_, reserved) = d.script.answer(&reserve).unwrap();
    let applied = d.manager.handle_reply(&reserved).await.unwrap();
    assert_eq!(
        applied,
        ReplyOutcome::Applied {
            saga_id: "o-1".into(),
            status: SagaStatus::Running
        }
    );
    let before = f.store.get("order", "o-1").await.unwrap().unwrap();
    assert_eq!(
        d.manager.handle_reply(&reserved).await.unwrap(),
        ReplyOutcome::Ignored(IgnoreReason::Stale)
    );
    assert_eq!(f.store.get("order", "o-1").await.unwrap().unwrap(), before);
    // A second, different success reply to the same command (the service answered
    // twice): also stale.
    let (_, again) = d.script.answer(&reserve).unwrap();
    assert_ne!(again.id, reserved.id);
    assert_eq!(
        d.manager.handle_reply(&again).await.unwrap(),
        ReplyOutcome::Ignored(IgnoreReason::Stale)
    );
    d.pump().await;
    assert_eq!(d.status("o-1").await, SagaStatus::Completed);
    let done = f.store.get("order", "o-1").await.unwrap().unwrap();
    // Every reply again, after the end: nothing moves, no command is sent.
    for reply in d.replies.clone() {
        assert_eq!(
            d.manager.handle_reply(&reply).await.unwrap(),
            ReplyOutcome::Ignored(IgnoreReason::Stale)
        );
    }
    assert!(d.new_commands().await.is_empty());
    assert_eq!(f.store.get("order", "o-1").await.unwrap().unwrap(), done);
    assert_eq!(f.store.commands("order", "o-1").await.unwrap().len(), 3);
}
both!(duplicate_and_late_replies_change_nothing, duplicates);

fn timing(attempts: u32, backoff: Duration) -> Timing {
    Timing {
        timeout: Duration::from_secs(10),
        retry: StepRetry::attempts(attempts).backoff(backoff, backoff * 4, 2.0),
        compensation_timeout: Duration::from_secs(10),
        compensation_retry: StepRetry::attempts(2).backoff(Duration::ZERO, Duration::ZERO, 1.0),
    }
}

async fn timeout_retry_then_compensate<DB: SagaBackend>(f: &Fixture<DB>) {
    let clock = ManualClock::default();
    let mut d = Driver::new(
        &f.db,
        &f.store,
        order_saga(&timing(2, Duration::from_secs(1))),
    );
    d.manager = d.manager.clone().with_clock(clock.clone());
    d.script.set(ChargePayment::TYPE, Answer::Silent);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    assert_eq!(
        d.script.received("o-1"),
        [ReserveStock::TYPE, ChargePayment::TYPE]
    );
    // Not due yet.
    clock.advance(Duration::from_millis(9_999));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 0);
    // Timed out: waits 1 s (backoff), then sends attempt 2.
    clock.advance(Duration::from_millis(1));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 1);
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert_eq!((saga.status, saga.attempt), (SagaStatus::Running, 2));
    d.pump().await;
    assert_eq!(
        d.script.received("o-1").len(),
        2,
        "no re-send before the backoff"
    );
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 1);
    d.pump().await;
    assert_eq!(
        d.script.received("o-1"),
        [ReserveStock::TYPE, ChargePayment::TYPE, ChargePayment::TYPE]
    );
    // Attempt 2 times out too: attempts are exhausted. The payment may have gone
    // through late, so it is refunded, then the stock released.
    clock.advance(Duration::from_secs(10));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 1);
    d.pump().await;
    assert_eq!(d.status("o-1").await, SagaStatus::Compensated);
    assert_eq!(
        d.script.received("o-1")[3..],
        [RefundPayment::TYPE, ReleaseStock::TYPE]
    );
    let kinds = d.kinds("o-1").await;
    assert_eq!(
        kinds[3..],
        [
            "step_started:charge-payment",
            "step_timed_out:charge-payment",
            "step_started:charge-payment",
            "step_timed_out:charge-payment",
            "compensating:charge-payment",
            "compensation_started:charge-payment",
            "compensation_succeeded:charge-payment",
            "compensation_started:reserve-stock",
            "compensation_succeeded:reserve-stock",
            "compensated",
        ]
    );
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert_eq!(
        saga.error.as_deref(),
        Some("step \"charge-payment\" timed out after 2 attempts")
    );
    let attempts: Vec<u32> = f
        .store
        .commands("order", "o-1")
        .await
        .unwrap()
        .iter()
        .filter(|c| c.event_type == ChargePayment::TYPE)
        .map(|c| c.attempt)
        .collect();
    assert_eq!(attempts, [1, 2]);
}
both!(
    step_timeout_retries_then_compensates,
    timeout_retry_then_compensate
);

async fn late_reply_counts<DB: SagaBackend>(f: &Fixture<DB>) {
    let clock = ManualClock::default();
    let mut d = Driver::new(&f.db, &f.store, order_saga(&timing(3, Duration::ZERO)));
    d.manager = d.manager.clone().with_clock(clock.clone());
    d.script.set(ChargePayment::TYPE, Answer::Silent);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    let charge_1 = d
        .bus
        .records(common::shop::PAYMENT_COMMANDS)
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .next()
        .unwrap();
    clock.advance(Duration::from_secs(10));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 1);
    d.pump().await;
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert_eq!(saga.attempt, 2, "zero backoff re-sends at once");
    // The service answers attempt 1 after all: the step succeeded.
    let reply = caused_by(
        Envelope::from_event(
            "urn:test",
            &PaymentCharged {
                order_id: "o-1".into(),
                payment_id: "late".into(),
            },
        )
        .unwrap(),
        &charge_1,
    );
    assert!(matches!(
        d.manager.handle_reply(&reply).await.unwrap(),
        ReplyOutcome::Applied { .. }
    ));
    d.pump().await;
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert_eq!(saga.status, SagaStatus::Completed);
    assert_eq!(saga.data["payment_id"], "late");
}
both!(late_reply_to_an_earlier_attempt_counts, late_reply_counts);

async fn compensation_times_out<DB: SagaBackend>(f: &Fixture<DB>) {
    let clock = ManualClock::default();
    let mut d = Driver::new(&f.db, &f.store, order_saga(&timing(1, Duration::ZERO)));
    d.manager = d.manager.clone().with_clock(clock.clone());
    d.script.set(CreateShipment::TYPE, Answer::Fail);
    d.script.set(RefundPayment::TYPE, Answer::Silent);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    assert_eq!(d.status("o-1").await, SagaStatus::Compensating);
    for _ in 0..2 {
        clock.advance(Duration::from_secs(10));
        assert_eq!(d.manager.fire_timeouts().await.unwrap(), 1);
        d.pump().await;
    }
    // The refund never answered: the saga stops, failed, and says why.
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap();
    assert_eq!(saga.instance.status, SagaStatus::Failed);
    assert_eq!(
        saga.instance.error.as_deref(),
        Some("compensation of step \"charge-payment\" timed out after 2 attempts")
    );
    assert_eq!(saga.instance.deadline, None);
    assert_eq!(
        d.script.received("o-1")[3..],
        [RefundPayment::TYPE, RefundPayment::TYPE]
    );
    let last = saga.history.last().unwrap();
    assert_eq!(last.kind.as_str(), "failed");
    assert!(last.detail.as_deref().unwrap().contains("timed out"));
    assert_eq!(f.store.counts(None).await.unwrap().failed, 1);
    // Nothing is due any more.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 0);
}
both!(
    compensation_out_of_attempts_fails_the_saga,
    compensation_times_out
);

async fn compensation_refused<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.script.set(ChargePayment::TYPE, Answer::Fail);
    d.script.set(ReleaseStock::TYPE, Answer::Fail);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.pump().await;
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert_eq!(saga.status, SagaStatus::Failed);
    assert_eq!(
        saga.error.as_deref(),
        Some("compensation of step \"reserve-stock\" failed: inventory.release-refused")
    );
    assert_eq!(
        d.kinds("o-1").await[5..],
        [
            "compensating:reserve-stock",
            "compensation_started:reserve-stock",
            "compensation_failed:reserve-stock",
            "failed",
        ]
    );
}
both!(
    compensation_failure_reply_fails_the_saga,
    compensation_refused
);

async fn in_callers_transaction<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    let placed = Envelope::new("urn:shop", "shop.order.placed", "{}")
        .with_key("o-1")
        .with_correlation_id("corr-1")
        .with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    // Rolled back: no saga, no command.
    let mut tx = f.db.begin().await.unwrap();
    herald_sql::enqueue(&mut tx, "orders", &placed)
        .await
        .unwrap();
    d.manager
        .start_in_caused_by(&mut tx, "o-1", order("o-1"), &placed)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(f.store.get("order", "o-1").await.unwrap().is_none());
    assert!(d.new_commands().await.is_empty());
    assert!(d.bus.records("orders").is_empty());

    // Committed: the event, the saga and its first command, together.
    let mut tx = f.db.begin().await.unwrap();
    herald_sql::enqueue(&mut tx, "orders", &placed)
        .await
        .unwrap();
    d.manager
        .start_in_caused_by(&mut tx, "o-1", order("o-1"), &placed)
        .await
        .unwrap();
    // A second start of the same saga is refused, and the transaction stays usable.
    let err = d
        .manager
        .start_in(&mut tx, "o-1", order("o-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, SagaError::AlreadyExists { .. }), "{err}");
    tx.commit().await.unwrap();
    let commands = d.new_commands().await;
    assert_eq!(d.bus.records("orders").len(), 1);
    assert_eq!(commands.len(), 1);
    let reserve = &commands[0];
    assert_eq!(reserve.event_type, ReserveStock::TYPE);
    assert_eq!(reserve.key_str(), Some("o-1"));
    assert_eq!(reserve.source, "urn:herald:saga:order");
    // Correlated with the order's event, continuing its trace.
    assert_eq!(reserve.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(reserve.causation_id.as_deref(), Some(placed.id.as_str()));
    assert!(
        reserve
            .traceparent
            .as_deref()
            .unwrap()
            .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
    );
    let header = |k: &str| {
        reserve
            .extensions
            .iter()
            .find(|h| h.key == k)
            .and_then(|h| h.value_str())
            .map(str::to_owned)
    };
    assert_eq!(header(SAGA_ID_HEADER).as_deref(), Some("o-1"));
    assert_eq!(header(SAGA_TYPE_HEADER).as_deref(), Some("order"));
    assert_eq!(header(SAGA_STEP_HEADER).as_deref(), Some("reserve-stock"));
    // Later commands carry the same correlation id, caused by the replies.
    let (_, reserved) = d.script.answer(reserve).unwrap();
    d.manager.handle_reply(&reserved).await.unwrap();
    d.pump().await;
    let charge = d
        .bus
        .records(common::shop::PAYMENT_COMMANDS)
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .next()
        .unwrap();
    assert_eq!(charge.correlation_id.as_deref(), Some("corr-1"));
    assert_eq!(charge.causation_id.as_deref(), Some(reserved.id.as_str()));
    assert_eq!(d.status("o-1").await, SagaStatus::Completed);
    // Outside a transaction, a duplicate start is refused too.
    let err = d.manager.start("o-1", order("o-1")).await.unwrap_err();
    assert!(
        err.to_string().contains("order/o-1 already exists"),
        "{err}"
    );
}
both!(
    start_commits_with_the_callers_transaction,
    in_callers_transaction
);

async fn unrelated_events<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.manager.start("o-1", order("o-1")).await.unwrap();
    d.new_commands().await;
    let before = f.store.get("order", "o-1").await.unwrap().unwrap();
    // A type no step waits for.
    let other = Envelope::new("urn:x", "shop.order.placed", "{}").with_causation_id("x");
    assert_eq!(
        d.manager.handle_reply(&other).await.unwrap(),
        ReplyOutcome::Ignored(IgnoreReason::NotAReply)
    );
    // A reply type, but not answering any command of this saga type.
    let stray = Envelope::from_event(
        "urn:x",
        &StockReserved {
            order_id: "o-1".into(),
        },
    )
    .unwrap()
    .with_causation_id("not-a-command");
    assert_eq!(
        d.manager.handle_reply(&stray).await.unwrap(),
        ReplyOutcome::Ignored(IgnoreReason::Unmatched)
    );
    // Another saga type's header: not ours.
    let foreign = stray
        .clone()
        .with_extension(SAGA_ID_HEADER, "o-1")
        .with_extension(SAGA_TYPE_HEADER, "invoice");
    assert_eq!(
        d.manager.handle_reply(&foreign).await.unwrap(),
        ReplyOutcome::Ignored(IgnoreReason::Unmatched)
    );
    // The right saga, but a reply type the awaited step does not take.
    let wrong = Envelope::from_event(
        "urn:x",
        &PaymentCharged {
            order_id: "o-1".into(),
            payment_id: "p".into(),
        },
    )
    .unwrap()
    .with_extension(SAGA_ID_HEADER, "o-1");
    assert_eq!(
        d.manager.handle_reply(&wrong).await.unwrap(),
        ReplyOutcome::Ignored(IgnoreReason::Unexpected)
    );
    assert_eq!(f.store.get("order", "o-1").await.unwrap().unwrap(), before);
    // Without a causation id, the saga id header is enough.
    let by_header = Envelope::from_event(
        "urn:x",
        &StockReserved {
            order_id: "o-1".into(),
        },
    )
    .unwrap()
    .with_extension(SAGA_ID_HEADER, "o-1");
    assert!(matches!(
        d.manager.handle_reply(&by_header).await.unwrap(),
        ReplyOutcome::Applied { .. }
    ));
    let saga = f.store.get("order", "o-1").await.unwrap().unwrap().instance;
    assert_eq!(saga.step_name.as_deref(), Some("charge-payment"));
}
both!(events_that_answer_nothing_are_ignored, unrelated_events);

async fn undecodable_reply<DB: SagaBackend>(f: &Fixture<DB>) {
    let mut d = driver(f);
    d.manager.start("o-2", order("o-2")).await.unwrap();
    let commands = d.new_commands().await;
    let reserve = &commands[0];
    // A reply of the right type whose data does not decode: an error, nothing changed.
    let broken = caused_by(
        Envelope::new("urn:x", StockReserved::TYPE, "not json")
            .with_content_type("application/json"),
        reserve,
    );
    let before = f.store.get("order", "o-2").await.unwrap().unwrap();
    let err = d.manager.handle_reply(&broken).await.unwrap_err();
    assert!(matches!(err, SagaError::Event(_)), "{err}");
    assert_eq!(f.store.get("order", "o-2").await.unwrap().unwrap(), before);
}
both!(
    an_undecodable_reply_is_an_error_and_changes_nothing,
    undecodable_reply
);

async fn bad_ids<DB: SagaBackend>(f: &Fixture<DB>) {
    let d = driver(f);
    for id in [String::new(), "x".repeat(513)] {
        let err = d.manager.start(&id, order("o")).await.unwrap_err();
        assert!(matches!(err, SagaError::InvalidInput(_)), "{err}");
    }
    assert_eq!(f.store.list(&Default::default()).await.unwrap().total, 0);
}
both!(invalid_saga_ids_are_refused, bad_ids);

#[test]
fn invalid_definitions_are_refused() {
    use herald_saga::{Compensation, SagaDefinition, Step};
    let step = |name: &str| {
        Step::new(name)
            .command("c", |o: &Order| ReserveStock {
                order_id: o.order_id.clone(),
            })
            .succeeds_on::<StockReserved>()
    };
    let cases: Vec<(herald_saga::SagaDefinitionBuilder<Order>, &str)> = vec![
        (
            SagaDefinition::builder("o").step(step("a")),
            "no reply topic",
        ),
        (
            SagaDefinition::builder("o").reply_topic("r"),
            "at least one step",
        ),
        (
            SagaDefinition::builder("bad name")
                .reply_topic("r")
                .step(step("a")),
            "the name must be",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("bad topic!")
                .step(step("a")),
            "reply topic",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("r")
                .step(step("a"))
                .step(step("a")),
            "two steps are called \"a\"",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("r")
                .step(Step::new("a").succeeds_on::<StockReserved>()),
            "has no command",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("r")
                .step(Step::new("a").command("c", |o: &Order| ReserveStock {
                    order_id: o.order_id.clone(),
                })),
            "no success reply",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("r")
                .step(step("a").fails_on::<StockReserved>()),
            "declared twice",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("r")
                .step(step("a").timeout(Duration::ZERO)),
            "timeout must be above zero",
        ),
        (
            SagaDefinition::builder("o")
                .reply_topic("r")
                .step(
                    step("a").compensation(Compensation::new("c", |o: &Order| ReleaseStock {
                        order_id: o.order_id.clone(),
                    })),
                ),
            "compensation of step \"a\": no success reply",
        ),
    ];
    for (builder, expected) in cases {
        let err = builder.build().unwrap_err().to_string();
        assert!(
            err.contains(expected),
            "{err:?} should mention {expected:?}"
        );
    }
}

#[test]
fn retry_delays_grow_to_their_cap() {
    let r =
        StepRetry::attempts(5).backoff(Duration::from_millis(100), Duration::from_millis(350), 2.0);
    let delays: Vec<u128> = (0..4).map(|n| r.delay(n).as_millis()).collect();
    assert_eq!(delays, [100, 200, 350, 350]);
    assert_eq!(StepRetry::attempts(0).max_attempts, 1);
    assert_eq!(StepRetry::none().max_attempts, 1);
}

// Keeps the data type's fields in use across test binaries.
#[test]
fn order_data_round_trips() {
    let o: Order = serde_json::from_value(serde_json::to_value(order("o")).unwrap()).unwrap();
    assert_eq!(o, order("o"));
}
