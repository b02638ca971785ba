//! Saga metrics, read back through a recorder installed for this test binary (the
//! recorder is process-wide, so this binary holds one test).

mod common;

use std::time::Duration;

use common::shop::{Answer, ChargePayment, Driver, Timing, order, order_saga};
use herald::Event;
use herald_saga::{ManualClock, StepRetry, telemetry};
use metrics_util::{
    CompositeKey, MetricKind,
    debugging::{DebugValue, DebuggingRecorder},
};

fn value(snapshot: &[(CompositeKey, DebugValue)], name: &str, labels: &[(&str, &str)]) -> f64 {
    snapshot
        .iter()
        .filter(|(k, _)| {
            k.key().name() == name
                && labels
                    .iter()
                    .all(|(lk, lv)| k.key().labels().any(|l| l.key() == *lk && l.value() == *lv))
        })
        .map(|(k, v)| match (k.kind(), v) {
            (MetricKind::Counter, DebugValue::Counter(n)) => *n as f64,
            (MetricKind::Histogram, DebugValue::Histogram(samples)) => samples.len() as f64,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn transitions_count_and_time_steps() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().unwrap();

    let f = common::sqlite().await;
    let timing = Timing {
        timeout: Duration::from_secs(10),
        retry: StepRetry::attempts(1),
        ..Timing::default()
    };
    let clock = ManualClock::default();
    let mut d = Driver::new(&f.db, &f.store, order_saga(&timing));
    d.manager = d.manager.clone().with_clock(clock.clone());
    d.script.set_for("o-2", ChargePayment::TYPE, Answer::Fail);
    d.script.set_for("o-3", ChargePayment::TYPE, Answer::Silent);
    for id in ["o-1", "o-2", "o-3"] {
        d.manager.start(id, order(id)).await.unwrap();
    }
    d.pump().await;
    clock.advance(Duration::from_secs(10));
    assert_eq!(d.manager.fire_timeouts().await.unwrap(), 1);
    d.pump().await;
    // A duplicate reply.
    let reply = d.replies[0].clone();
    d.manager.handle_reply(&reply).await.unwrap();

    let snapshot: Vec<(CompositeKey, DebugValue)> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(k, _, _, v)| (k, v))
        .collect();
    let saga = [("saga", "order")];
    assert_eq!(value(&snapshot, telemetry::STARTED, &saga), 3.0);
    assert_eq!(value(&snapshot, telemetry::COMPLETED, &saga), 1.0);
    assert_eq!(value(&snapshot, telemetry::COMPENSATED, &saga), 2.0);
    assert_eq!(value(&snapshot, telemetry::FAILED, &saga), 0.0);
    assert_eq!(
        value(
            &snapshot,
            telemetry::TIMEOUTS,
            &[("saga", "order"), ("phase", "step")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &snapshot,
            telemetry::IGNORED,
            &[("saga", "order"), ("reason", "stale")]
        ),
        1.0
    );
    let step = |name, outcome| {
        value(
            &snapshot,
            telemetry::STEP_DURATION,
            &[("saga", "order"), ("step", name), ("outcome", outcome)],
        )
    };
    assert_eq!(step("reserve-stock", "succeeded"), 3.0);
    assert_eq!(step("charge-payment", "succeeded"), 1.0);
    assert_eq!(step("charge-payment", "failed"), 1.0);
    assert_eq!(step("charge-payment", "timed_out"), 1.0);
    assert_eq!(step("create-shipment", "succeeded"), 1.0);
}
