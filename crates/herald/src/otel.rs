//! OpenTelemetry: one trace from a producer through every handler and the events they
//! publish (cargo feature `otel`, off by default).
//!
//! The SDK's spans are `tracing` spans. With this feature, and a
//! [`tracing-opentelemetry`](https://docs.rs/tracing-opentelemetry) layer in the
//! application's subscriber:
//!
//! - the `herald.handle` span of each handled event gets the event's W3C `traceparent`
//!   (and `tracestate`) as its OpenTelemetry parent, so the exported span sits in the
//!   producer's trace, as a child of the span that published the event;
//! - an event published while a span with an OpenTelemetry context is current (inside a
//!   handler, with [`HandlerContext::publish`](crate::HandlerContext::publish), or anywhere
//!   with [`PublisherExt`](crate::transport::PublisherExt)) carries that span's context as
//!   its `traceparent` and `tracestate`, so its consumers' spans become children of it.
//!
//! An envelope that already has a `traceparent` keeps it. Without a layer (or without the
//! feature) the SDK still continues the trace ids in the envelope headers, as
//! [`crate::correlation`] describes; only the exported spans are missing.
//!
//! # Exporting with OTLP
//!
//! The SDK depends on the OpenTelemetry API only; the application chooses the SDK and the
//! exporter. With `opentelemetry_sdk`, `opentelemetry-otlp` and `tracing-opentelemetry` at
//! versions that match this crate's `opentelemetry` (0.33 with tracing-opentelemetry 0.34):
//!
//! ```toml
//! [dependencies]
//! herald = { version = "...", features = ["otel"] }
//! opentelemetry = "0.33"
//! opentelemetry_sdk = { version = "0.33", features = ["rt-tokio"] }
//! opentelemetry-otlp = { version = "0.33", features = ["grpc-tonic"] }
//! tracing-opentelemetry = "0.34"
//! tracing-subscriber = "0.3"
//! ```
//!
//! ```ignore
//! use opentelemetry::trace::TracerProvider as _;
//! use tracing_subscriber::prelude::*;
//!
//! // Spans go to an OTLP collector (OTEL_EXPORTER_OTLP_ENDPOINT, default localhost:4317).
//! let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().build()?;
//! let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
//!     .with_batch_exporter(exporter)
//!     .build();
//! tracing_subscriber::registry()
//!     .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("billing")))
//!     .with(tracing_subscriber::fmt::layer())
//!     .init();
//! // ... run routers; at exit, flush what is batched:
//! provider.shutdown()?;
//! ```
//!
//! A producer outside any handler starts the trace with a span of its own: publish inside
//! it and the event carries its context.

use herald_format::client::OutgoingRecord;
use opentelemetry::{
    Context,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{correlation::TraceParent, envelope::Envelope};

/// Makes the event's trace context the OpenTelemetry parent of `span` (a span that has
/// not been entered yet). A missing or malformed `traceparent` leaves the span a root;
/// a malformed `tracestate` is dropped.
pub(crate) fn set_parent(
    span: &tracing::Span,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) {
    let Some(parent) = traceparent.and_then(TraceParent::parse) else {
        return;
    };
    let state = tracestate
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    let remote = SpanContext::new(
        TraceId::from_bytes(parent.trace_id),
        SpanId::from_bytes(parent.span_id),
        TraceFlags::new(parent.flags),
        true,
        state,
    );
    // Without an OpenTelemetry layer there is nothing to set: that is not an error.
    let _ = span.set_parent(Context::new().with_remote_span_context(remote));
}

/// The current span's OpenTelemetry context as `traceparent` and `tracestate`, if it has
/// a valid one.
pub(crate) fn current() -> Option<(String, Option<String>)> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let traceparent = TraceParent {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    }
    .to_string();
    let state = sc.trace_state().header();
    Some((traceparent, (!state.is_empty()).then_some(state)))
}

/// Gives `envelope` the current span's context unless it has a `traceparent` of its own.
pub(crate) fn trace_current(envelope: &mut Envelope) {
    if envelope.traceparent.is_none()
        && let Some((traceparent, tracestate)) = current()
    {
        envelope.traceparent = Some(traceparent);
        envelope.tracestate = tracestate;
    }
}

/// The record of `envelope`, with the current span's context unless it has its own.
pub(crate) fn record_of(envelope: &Envelope) -> OutgoingRecord {
    if envelope.traceparent.is_none() && current().is_some() {
        let mut traced = envelope.clone();
        trace_current(&mut traced);
        traced.to_record()
    } else {
        envelope.to_record()
    }
}
