//! OpenTelemetry (feature `otel`, on for the SDK's tests): a publish → handle → publish →
//! handle chain exports its spans in one trace, each the child of the one before, through
//! a tracing-opentelemetry layer and opentelemetry_sdk's in-memory exporter.
//!
//! A test binary of its own: it installs a global subscriber, and tracing caches callsite
//! interest process-wide.

use std::time::Duration;

use herald::{
    Envelope, Event, HandlerContext, HandlerError, MemoryTransport, Router,
    correlation::TraceParent,
    transport::{Consumer, PublisherExt, Subscriber},
};
use opentelemetry::trace::{SpanId, TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::prelude::*;

#[derive(Serialize, Deserialize)]
struct OrderPlaced {
    order_id: String,
}

impl Event for OrderPlaced {
    const TYPE: &'static str = "shop.order.placed";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

#[derive(Serialize, Deserialize)]
struct InvoiceIssued {
    order_id: String,
}

impl Event for InvoiceIssued {
    const TYPE: &'static str = "billing.invoice.issued";
    fn key(&self) -> String {
        self.order_id.clone()
    }
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_handle_publish_handle_is_one_trace_of_parent_and_child_spans() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("herald-test")))
        .init();

    let bus = MemoryTransport::new();
    let billing = Router::builder(bus.clone(), "billing")
        .on(
            "orders",
            |order: OrderPlaced, ctx: HandlerContext| async move {
                let invoice = InvoiceIssued {
                    order_id: order.order_id,
                };
                // A span of the handler's own: the event published inside it is its child.
                let span = tracing::info_span!("issue invoice");
                ctx.publish_event("invoices", &invoice)
                    .instrument(span)
                    .await?;
                Ok::<(), HandlerError>(())
            },
        )
        .start()
        .await
        .unwrap();
    let (tx, mut seen) = mpsc::unbounded_channel();
    let audit = Router::builder(bus.clone(), "audit")
        .on("invoices", move |_: InvoiceIssued, ctx: HandlerContext| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(ctx.envelope().clone());
                Ok::<(), HandlerError>(())
            }
        })
        .start()
        .await
        .unwrap();

    // The producer's span starts the trace; the event published inside it carries it.
    let producer = tracing::info_span!("place order");
    let producer_cx = producer.context();
    let placed = Envelope::from_event(
        "urn:test",
        &OrderPlaced {
            order_id: "o-1".into(),
        },
    )
    .unwrap();
    bus.publish_envelope("orders", &placed)
        .instrument(producer.clone())
        .await
        .unwrap();
    drop(producer);
    let invoice = tokio::time::timeout(Duration::from_secs(10), seen.recv())
        .await
        .unwrap()
        .unwrap();
    billing.shutdown().await.unwrap();
    audit.shutdown().await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();

    let trace_id = producer_cx.span().span_context().trace_id();
    let [producer] = named(&spans, "place order")[..] else {
        panic!("one producer span: {spans:#?}")
    };
    let [issue] = named(&spans, "issue invoice")[..] else {
        panic!("one invoice span: {spans:#?}")
    };
    let handles = named(&spans, "herald.handle");
    assert_eq!(handles.len(), 2, "{spans:#?}");
    let (order, audited): (Vec<_>, Vec<_>) = handles
        .into_iter()
        .partition(|s| s.parent_span_id == producer.span_context.span_id());
    let ([order], [audited]) = (&order[..], &audited[..]) else {
        panic!("one handle span is the producer's child: {spans:#?}")
    };
    for span in [producer, *order, issue, *audited] {
        assert_eq!(span.span_context.trace_id(), trace_id, "{}", span.name);
    }
    assert_eq!(
        producer.parent_span_id,
        SpanId::INVALID,
        "the producer is the root"
    );
    assert_eq!(issue.parent_span_id, order.span_context.span_id());
    assert_eq!(audited.parent_span_id, issue.span_context.span_id());
    assert!(order.parent_span_is_remote && audited.parent_span_is_remote);

    // The headers say the same: the invoice's traceparent is the span that published it.
    let tp = TraceParent::parse(invoice.traceparent.as_deref().unwrap()).unwrap();
    assert_eq!(tp.trace_id, trace_id.to_bytes());
    assert_eq!(tp.span_id, issue.span_context.span_id().to_bytes());
    assert_eq!(invoice.causation_id.as_deref(), Some(placed.id.as_str()));

    // An envelope with a traceparent of its own keeps it, span or not.
    let own = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut c = bus.subscribe("reader", &["explicit"]).await.unwrap();
    bus.publish_envelope(
        "explicit",
        &Envelope::new("urn:test", "t", "x").with_traceparent(own),
    )
    .instrument(tracing::info_span!("other"))
    .await
    .unwrap();
    let read = Envelope::from_record(&c.poll(1).await.unwrap()[0]).unwrap();
    assert_eq!(read.traceparent.as_deref(), Some(own));
}
