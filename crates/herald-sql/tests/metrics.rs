//! Metrics, read back through a recorder installed for this test binary: the outbox
//! backlog and its age while the broker is down, and a projection's lag.

mod common;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use common::*;
use herald::transport::{OutgoingRecord, Publisher, RecordPosition, TransportError};
use herald_sql::{
    BoxError, ExpectedVersion, Projection, ProjectionConfig, ProjectionRunner, RecordedEvent,
    RelayConfig, enqueue_all, projection, relay,
};
use metrics::{
    Counter, Gauge, GaugeFn, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit,
};

/// The last value of every gauge, by name and label values.
#[derive(Default)]
struct Gauges(Mutex<HashMap<String, f64>>);

struct Slot(String);

impl GaugeFn for Slot {
    fn increment(&self, _: f64) {}
    fn decrement(&self, _: f64) {}
    fn set(&self, value: f64) {
        recorder().0.lock().unwrap().insert(self.0.clone(), value);
    }
}

impl Recorder for &'static Gauges {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, _: &Key, _: &Metadata<'_>) -> Counter {
        Counter::noop()
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        let labels: Vec<String> = key.labels().map(|l| l.value().to_owned()).collect();
        Gauge::from_arc(Arc::new(Slot(format!("{}{labels:?}", key.name()))))
    }
    fn register_histogram(&self, _: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::noop()
    }
}

fn recorder() -> &'static Gauges {
    static R: OnceLock<&'static Gauges> = OnceLock::new();
    R.get_or_init(|| {
        let r: &'static Gauges = Box::leak(Box::default());
        metrics::set_global_recorder(r).expect("one recorder per test binary");
        r
    })
}

fn gauge(name: &str) -> Option<f64> {
    recorder().0.lock().unwrap().get(name).copied()
}

struct Down;

impl Publisher for Down {
    async fn publish(
        &self,
        _: &str,
        _: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>, TransportError> {
        Err(TransportError::Storage("broker down".into()))
    }
}

struct Nothing;

impl<DB: TestSql> Projection<DB> for Nothing {
    fn name(&self) -> &str {
        "nothing"
    }
    async fn apply(
        &self,
        _: &mut sqlx::Transaction<'static, DB>,
        _: &RecordedEvent,
    ) -> Result<(), BoxError> {
        Ok(())
    }
    async fn reset(&self, _: &mut sqlx::Transaction<'static, DB>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlog_age_and_projection_lag_are_exported() {
    recorder();
    let f = sqlite().await;
    let mut tx = f.db.begin().await.unwrap();
    enqueue_all(
        &mut tx,
        "orders",
        &[step("a", 1), step("b", 1), step("c", 1)],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let relay =
        f.db.relay(Down)
            .with_config(RelayConfig {
                metrics_interval: Duration::ZERO,
                poll_interval: Duration::from_millis(10),
                ..RelayConfig::default()
            })
            .start();
    eventually("the backlog gauge", || async {
        gauge(&format!("{}[]", relay::BACKLOG)) == Some(3.0)
    })
    .await;
    let age = gauge(&format!("{}[]", relay::OLDEST_AGE)).unwrap();
    assert!(
        age >= 0.02,
        "oldest unsent row is at least 20 ms old: {age}"
    );
    let stats = relay.shutdown().await.unwrap();
    assert!(stats.errors >= 1 && stats.published == 0, "{stats:?}");

    let store = f.db.event_store();
    store
        .append(
            "s",
            ExpectedVersion::NoStream,
            vec![step("s", 1), step("s", 2), step("s", 3)],
        )
        .await
        .unwrap();
    let runner = ProjectionRunner::new(store, Nothing).with_config(ProjectionConfig {
        batch_size: 1,
        ..ProjectionConfig::default()
    });
    assert_eq!(runner.run_batch().await.unwrap(), 1);
    // Positions 1-3 are the outbox rows; the store's events are 4-6; one applied.
    assert_eq!(
        gauge(&format!("{}[\"nothing\"]", projection::LAG_EVENTS)),
        Some(2.0)
    );
    assert!(gauge(&format!("{}[\"nothing\"]", projection::LAG_SECONDS)).unwrap() >= 0.0);
    runner.run_until_caught_up().await.unwrap();
    assert_eq!(
        gauge(&format!("{}[\"nothing\"]", projection::LAG_EVENTS)),
        Some(0.0)
    );
    assert_eq!(
        gauge(&format!("{}[\"nothing\"]", projection::LAG_SECONDS)),
        Some(0.0)
    );
}
