//! One `tracing` span per handled event, seen by a subscriber set for this test.
//!
//! This is a test binary of its own on purpose: tracing caches each callsite's interest
//! process-wide, and a test running concurrently on another thread without a subscriber
//! can cache "never" for the router's span before this test's subscriber is set.

mod common;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use common::*;
use herald::{
    HandlerContext, HandlerError, MemoryTransport, Router,
    transport::{PublisherExt, TopicPartition},
};

/// Collects the fields of every `herald.handle` span opened on this thread.
#[derive(Default)]
struct SpanCollector {
    spans: Mutex<Vec<HashMap<String, String>>>,
    next: AtomicU64,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for SpanCollector {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        if attrs.metadata().name() == "herald.handle" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.spans.lock().unwrap().push(fields);
        }
        tracing::span::Id::from_u64(self.next.fetch_add(1, Ordering::SeqCst) + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(start_paused = true)]
async fn every_handled_event_gets_a_span_with_its_coordinates() {
    let collector = Arc::new(SpanCollector::default());
    // A current-thread runtime runs every task on this thread, under this default.
    let _guard = tracing::subscriber::set_default(collector.clone());
    let t = MemoryTransport::new();
    let router = Router::builder(t.clone(), "traced")
        .on("orders", |_s: Step, _ctx: HandlerContext| async {
            Ok::<(), HandlerError>(())
        })
        .start()
        .await
        .unwrap();
    let events = [step("a", 0), step("b", 0)];
    t.publish_envelopes("orders", &events).await.unwrap();
    let tp = TopicPartition::new("orders", 0);
    while t.committed("traced", &tp) != Some(2) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    router.shutdown().await.unwrap();
    let spans = collector.spans.lock().unwrap();
    assert_eq!(spans.len(), 2);
    // Different keys are handled concurrently, so spans may open in either order.
    for event in &events {
        let span = spans
            .iter()
            .find(|s| s["event.id"] == event.id)
            .unwrap_or_else(|| panic!("no span for event {}", event.id));
        assert_eq!(span["event.type"], "test.step");
        assert_eq!(span["group"], "traced");
        assert_eq!(span["topic"], "orders");
        assert_eq!(span["partition"], "0");
    }
}
