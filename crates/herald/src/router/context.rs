//! What a handler knows about the event it handles, and how it publishes follow-ups.

use std::sync::{
    Arc,
    atomic::{AtomicBool, Ordering},
};

use crate::{
    correlation,
    envelope::Envelope,
    event::{Event, EventError},
    inbox::InboxKey,
    transport::{DynPublisher, RecordPosition, TransportError},
};

/// Why a handler could not publish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The event did not serialize.
    #[error(transparent)]
    Event(#[from] EventError),
    /// The transport failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Handed to a handler with each event: where it came from, which attempt this is, and a
/// publisher whose events inherit the handled event's correlation and trace.
#[derive(Clone)]
pub struct HandlerContext {
    pub(crate) group: Arc<str>,
    pub(crate) source: Arc<str>,
    pub(crate) topic: String,
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    pub(crate) attempt: u32,
    pub(crate) cause: Arc<Envelope>,
    pub(crate) publisher: Arc<dyn DynPublisher>,
    pub(crate) inbox_recorded: Arc<AtomicBool>,
}

impl std::fmt::Debug for HandlerContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandlerContext")
            .field("group", &self.group)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("attempt", &self.attempt)
            .field("event_id", &self.cause.id)
            .finish()
    }
}

impl HandlerContext {
    /// The consumer group.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The topic the event was read from.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The partition the event was read from.
    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// The event's offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Which attempt this is, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The handled event.
    pub fn envelope(&self) -> &Envelope {
        &self.cause
    }

    /// The identity the inbox records for this event. A handler that records it in its
    /// own transaction (a SQL inbox) calls [`mark_inbox_recorded`](Self::mark_inbox_recorded)
    /// after committing.
    pub fn inbox_key(&self) -> InboxKey<'_> {
        InboxKey {
            group: &self.group,
            event_id: &self.cause.id,
        }
    }

    /// Tells the router the handler recorded the inbox entry itself, as part of its own
    /// unit of work, so the router must not record it again.
    pub fn mark_inbox_recorded(&self) {
        self.inbox_recorded.store(true, Ordering::SeqCst);
    }

    /// `next` with correlation id, causation id and trace context taken from the handled
    /// event (attributes `next` already has are kept). With the `otel` feature and an
    /// OpenTelemetry layer, the trace context is the current span's (the handler's span
    /// or one inside it), so the next consumer's span is its child.
    pub fn caused(&self, next: Envelope) -> Envelope {
        #[cfg(feature = "otel")]
        let next = {
            let mut next = next;
            crate::otel::trace_current(&mut next);
            next
        };
        correlation::caused_by(next, &self.cause)
    }

    /// Publishes `next` as caused by the handled event.
    pub async fn publish(
        &self,
        topic: &str,
        next: Envelope,
    ) -> Result<RecordPosition, PublishError> {
        let record = self.caused(next).to_record();
        let positions = self.publisher.publish_boxed(topic, vec![record]).await?;
        Ok(positions[0])
    }

    /// Publishes a typed event as caused by the handled event, with the router's source.
    pub async fn publish_event<E: Event>(
        &self,
        topic: &str,
        event: &E,
    ) -> Result<RecordPosition, PublishError> {
        let envelope = Envelope::from_event(self.source.as_ref(), event)?;
        self.publish(topic, envelope).await
    }
}
