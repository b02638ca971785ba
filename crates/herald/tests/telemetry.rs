//! The router's metrics, read back through a recorder installed for this test binary.
//! (Spans are tested in `tracing_spans.rs`, a binary of their own: tracing caches each
//! callsite's interest process-wide, so a span test must not share its process.)

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use herald::{
    HandlerContext, HandlerError, Jitter, MemoryTransport, RetryPolicy, Router, telemetry,
    transport::{PublisherExt, TopicPartition},
};
use metrics::{Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder, SharedString, Unit};

/// Counts per metric name and `group` label; histograms count their samples.
#[derive(Default)]
struct TestRecorder {
    values: Mutex<HashMap<(String, String), Arc<AtomicU64>>>,
}

struct Samples(Arc<AtomicU64>);

impl metrics::HistogramFn for Samples {
    fn record(&self, _value: f64) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl TestRecorder {
    fn slot(&self, key: &Key) -> Arc<AtomicU64> {
        let group = key
            .labels()
            .find(|l| l.key() == "group")
            .map(|l| l.value().to_owned())
            .unwrap_or_default();
        self.values
            .lock()
            .unwrap()
            .entry((key.name().to_owned(), group))
            .or_default()
            .clone()
    }

    fn get(&self, name: &str, group: &str) -> u64 {
        self.values
            .lock()
            .unwrap()
            .get(&(name.to_owned(), group.to_owned()))
            .map_or(0, |v| v.load(Ordering::SeqCst))
    }
}

impl Recorder for TestRecorder {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}

    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.slot(key))
    }

    fn register_gauge(&self, _: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::noop()
    }

    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Samples(self.slot(key))))
    }
}

fn recorder() -> &'static TestRecorder {
    static RECORDER: OnceLock<&'static TestRecorder> = OnceLock::new();
    RECORDER.get_or_init(|| {
        let r: &'static TestRecorder = Box::leak(Box::default());
        metrics::set_global_recorder(r).expect("only this binary installs a recorder");
        r
    })
}

#[tokio::test(start_paused = true)]
async fn handled_failed_retried_and_dead_lettered_are_counted() {
    let rec = recorder();
    let t = MemoryTransport::new();
    let router = Router::builder(t.clone(), "metered")
        .retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_jitter(Jitter::None)
                .with_delays(Duration::from_millis(10), Duration::from_millis(10), 1.0),
        )
        .on("orders", |s: Step, _ctx: HandlerContext| async move {
            if s.key == "bad" {
                return Err(HandlerError::transient(std::io::Error::other("nope")));
            }
            Ok(())
        })
        .start()
        .await
        .unwrap();
    t.publish_envelopes("orders", &[step("ok", 0), step("bad", 0), step("ok", 1)])
        .await
        .unwrap();
    let tp = TopicPartition::new("orders", 0);
    while t.committed("metered", &tp) != Some(3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    router.shutdown().await.unwrap();
    assert_eq!(rec.get(telemetry::HANDLED, "metered"), 2);
    assert_eq!(rec.get(telemetry::FAILED, "metered"), 3);
    assert_eq!(rec.get(telemetry::RETRIED, "metered"), 2);
    assert_eq!(rec.get(telemetry::DEAD_LETTERED, "metered"), 1);
    assert_eq!(
        rec.get(telemetry::HANDLER_SECONDS, "metered"),
        5,
        "one sample per attempt"
    );
    assert_eq!(telemetry::HANDLED, "herald_sdk_handled_total");
}
