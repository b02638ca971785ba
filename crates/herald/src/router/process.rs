//! Taking one record to a final outcome: handled, skipped, dead-lettered or parked.
//!
//! Called for one key at a time, so everything a key's events share (the sequenced
//! policy's parked ids) changes in the key's order.

use std::{
    any::Any,
    collections::{HashMap, VecDeque},
    fmt::Display,
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, SystemTime},
};

use bytes::Bytes;
use tokio::{sync::Semaphore, time::Instant};
use tracing::Instrument;

use super::{Handler, HandlerContext, RouterConfig};
use crate::{
    dlq::{DeadLetterKind, DeadLetterPolicy, Failure, LetterParts, dlq_topic, headers},
    envelope::Envelope,
    inbox::{Inbox, InboxKey},
    retry::{Decision, HandlerError},
    telemetry::{self, Labels},
    transport::{BoxFuture, ConsumedRecord, DynPublisher, header_str},
};

/// How a record's processing ended. Every outcome is final: its offset may be committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// A handler succeeded.
    Handled,
    /// The inbox had seen the event id.
    Duplicate,
    /// No handler for the type, a replay for another group, or a redelivery of an
    /// event already in the dead-letter topic.
    Skipped,
    /// Written to the dead-letter topic as failed.
    DeadLettered,
    /// Written to the dead-letter topic as parked behind an earlier failure.
    Parked,
    /// A control record, applied.
    Control,
}

/// Where an event stands relative to its key's unresolved dead letters.
enum Blocked {
    /// The key has none.
    Free,
    /// The event is the oldest one.
    Front,
    /// The event is among them, behind `front`.
    Queued { front: String },
    /// The event is new and the key is blocked by `front`.
    Behind { front: String },
}

/// State shared by the router loop and its workers.
pub(crate) struct Shared {
    pub(crate) group: Arc<str>,
    pub(crate) source: Arc<str>,
    pub(crate) routes: HashMap<String, HashMap<String, Handler>>,
    pub(crate) config: RouterConfig,
    pub(crate) inbox: Option<Arc<dyn Inbox>>,
    pub(crate) publisher: Arc<dyn DynPublisher>,
    pub(crate) permits: Semaphore,
    /// Sequenced policy: per (topic, key), ids of unresolved dead letters, oldest first.
    pub(crate) blocked: Mutex<HashMap<(String, Bytes), VecDeque<String>>>,
}

/// A handler's future with its panics caught: a panic while polling ends it with the
/// panic's payload instead of unwinding through the router.
struct CatchUnwind(BoxFuture<'static, Result<(), HandlerError>>);

impl Future for CatchUnwind {
    type Output = Result<Result<(), HandlerError>, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        // why AssertUnwindSafe: after a panic the future is never polled again (the
        // caller drops it), so no state it left half-updated is observed.
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => Poll::Ready(Ok(result)),
            Err(panic) => Poll::Ready(Err(panic)),
        }
    }
}

/// The message of a panic payload (`panic!` with a literal or a formatted string).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a non-text panic payload")
}

impl Shared {
    fn blocked_lock(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<(String, Bytes), VecDeque<String>>> {
        self.blocked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn blocked_state(&self, topic: &str, key: &Bytes, id: &str) -> Blocked {
        let blocked = self.blocked_lock();
        let Some(queue) = blocked.get(&(topic.to_owned(), key.clone())) else {
            return Blocked::Free;
        };
        match queue.front() {
            None => Blocked::Free,
            Some(front) if front == id => Blocked::Front,
            Some(front) if queue.contains(&id.to_owned()) => Blocked::Queued {
                front: front.clone(),
            },
            Some(front) => Blocked::Behind {
                front: front.clone(),
            },
        }
    }

    /// Adds `id` at the back of its key's queue unless it is there.
    pub(crate) fn block(&self, topic: &str, key: &Bytes, id: &str) {
        let mut blocked = self.blocked_lock();
        let queue = blocked.entry((topic.to_owned(), key.clone())).or_default();
        if !queue.iter().any(|q| q == id) {
            queue.push_back(id.to_owned());
        }
    }

    /// Removes `id` from its key's queue; the key is free once the queue is empty.
    fn unblock(&self, topic: &str, key: &Bytes, id: &str) {
        let mut blocked = self.blocked_lock();
        let k = (topic.to_owned(), key.clone());
        if let Some(queue) = blocked.get_mut(&k) {
            queue.retain(|q| q != id);
            if queue.is_empty() {
                blocked.remove(&k);
            }
        }
    }

    fn sequenced(&self) -> bool {
        self.config.dead_letter_policy == DeadLetterPolicy::Sequenced
    }
}

/// Runs `op` until it succeeds, backing off up to 30 s. For infrastructure the outcome
/// depends on (dead-letter topic, inbox): an event is never given up because of them.
async fn until_ok<T, E: Display, F, Fut>(what: &str, mut op: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut delay = Duration::from_millis(100);
    loop {
        match op().await {
            Ok(v) => return v,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Takes `record` to a final outcome: handled, or dead-lettered for `reject` when given
/// (the resequencer refused its sequence number).
pub(crate) async fn process(
    shared: Arc<Shared>,
    record: ConsumedRecord,
    reject: Option<String>,
) -> Outcome {
    let get = |k| header_str(&record.headers, k);
    if get(headers::CONTROL) == Some("unblock") {
        if get(headers::CONTROL_GROUP) == Some(&*shared.group)
            && let (Some(key), Some(id)) = (&record.key, get(headers::CONTROL_EVENT_ID))
        {
            shared.unblock(&record.topic, key, id);
        }
        return Outcome::Control;
    }
    if get(headers::REPLAY_GROUP).is_some_and(|g| g != &*shared.group) {
        return Outcome::Skipped;
    }
    let decoded = Envelope::from_record(&record);
    let event_id = match &decoded {
        Ok(e) => e.id.clone(),
        Err(_) => get(headers::REPLAY_ID).map_or_else(
            || format!("{}/{}/{}", record.topic, record.partition, record.offset),
            str::to_owned,
        ),
    };
    let event_type = decoded
        .as_ref()
        .map_or("unknown", |e| e.event_type.as_str());
    let span = tracing::info_span!(
        "herald.handle",
        group = %shared.group,
        topic = %record.topic,
        partition = record.partition,
        offset = record.offset,
        event.id = %event_id,
        event.r#type = %event_type,
    );
    #[cfg(feature = "otel")]
    if let Ok(e) = &decoded {
        crate::otel::set_parent(&span, e.traceparent.as_deref(), e.tracestate.as_deref());
    }
    let labels = Labels::new(shared.group.clone(), &record.topic, event_type);
    let work = Work {
        shared: &shared,
        record: &record,
        event_id: &event_id,
        labels: &labels,
        replay: get(headers::REPLAY_OF).is_some(),
        reject: reject.as_deref(),
    };
    work.run(decoded).instrument(span).await
}

struct Work<'a> {
    shared: &'a Arc<Shared>,
    record: &'a ConsumedRecord,
    event_id: &'a str,
    labels: &'a Labels,
    replay: bool,
    reject: Option<&'a str>,
}

impl Work<'_> {
    async fn run(&self, decoded: Result<Envelope, crate::EnvelopeError>) -> Outcome {
        let shared = self.shared;
        let key = self.record.key.as_ref().filter(|_| shared.sequenced());
        let mut releases = false;
        if let Some(key) = key {
            match shared.blocked_state(&self.record.topic, key, self.event_id) {
                Blocked::Free => {}
                // A redelivery of an event that is already a dead letter.
                Blocked::Front | Blocked::Queued { .. } if !self.replay => {
                    return Outcome::Skipped;
                }
                Blocked::Front => releases = true,
                Blocked::Queued { front } => return Box::pin(self.park(&front, false)).await,
                Blocked::Behind { front } => return Box::pin(self.park(&front, true)).await,
            }
        }
        if let Some(reason) = self.reject {
            let now = SystemTime::now();
            let failure = Failure {
                reason: reason.to_owned(),
                error_chain: vec![reason.to_owned()],
                attempts: 0,
                first_failure: now,
                last_failure: now,
            };
            let traceparent = decoded.ok().and_then(|e| e.traceparent);
            return Box::pin(self.dead_letter(failure, traceparent.as_deref())).await;
        }
        let envelope = match decoded {
            Ok(e) => e,
            Err(e) => {
                let now = SystemTime::now();
                let failure = Failure {
                    reason: format!("not a CloudEvent: {e}"),
                    error_chain: vec![e.to_string()],
                    attempts: 0,
                    first_failure: now,
                    last_failure: now,
                };
                return Box::pin(self.dead_letter(failure, None)).await;
            }
        };
        let outcome = self.handle(envelope).await;
        if releases
            && outcome != Outcome::DeadLettered
            && let Some(key) = key
        {
            shared.unblock(&self.record.topic, key, self.event_id);
        }
        outcome
    }

    async fn handle(&self, envelope: Envelope) -> Outcome {
        let shared = self.shared;
        let Some(handler) = shared
            .routes
            .get(&self.record.topic)
            .and_then(|m| m.get(&envelope.event_type))
            .cloned()
        else {
            tracing::debug!("no handler for this event type; skipped");
            return Outcome::Skipped;
        };
        let inbox_key = InboxKey {
            group: &shared.group,
            event_id: self.event_id,
        };
        if let Some(inbox) = &shared.inbox
            && until_ok("inbox lookup", || inbox.is_processed(inbox_key)).await
        {
            tracing::debug!("event already processed by this group; skipped");
            self.labels.count(telemetry::DUPLICATES);
            return Outcome::Duplicate;
        }
        let traceparent = envelope.traceparent.clone();
        let cause = Arc::new(envelope);
        // Made at the first failure: seeding its random jitter costs a system call.
        let mut backoff = None;
        let started = Instant::now();
        let mut first_failure = None;
        let mut attempt = 1;
        loop {
            let recorded = Arc::new(AtomicBool::new(false));
            let ctx = HandlerContext {
                group: shared.group.clone(),
                source: shared.source.clone(),
                topic: self.record.topic.clone(),
                partition: self.record.partition,
                offset: self.record.offset,
                attempt,
                cause: cause.clone(),
                publisher: shared.publisher.clone(),
                inbox_recorded: recorded.clone(),
            };
            let result = {
                let _permit = shared.permits.acquire().await.expect("never closed");
                let t = Instant::now();
                // The handler runs on the key's worker task, a panic caught and treated
                // as a transient failure. Calling it runs its synchronous part (a typed
                // handler decodes the event there), so that part is guarded too.
                let called = std::panic::catch_unwind(AssertUnwindSafe(|| handler(ctx)));
                let finished = match called {
                    Ok(future) => CatchUnwind(future).await,
                    Err(panic) => Err(panic),
                };
                let result = match finished {
                    Ok(r) => r,
                    Err(panic) => Err(HandlerError::transient(format!(
                        "handler panicked: {}",
                        panic_message(&*panic)
                    ))),
                };
                self.labels.handler_latency(t.elapsed());
                result
            };
            let error = match result {
                Ok(()) => {
                    if let Some(inbox) = &shared.inbox
                        && !recorded.load(Ordering::SeqCst)
                    {
                        until_ok("inbox mark", || inbox.mark_processed(inbox_key)).await;
                    }
                    self.labels.count(telemetry::HANDLED);
                    return Outcome::Handled;
                }
                Err(e) => e,
            };
            self.labels.count(telemetry::FAILED);
            let now = SystemTime::now();
            let first = *first_failure.get_or_insert(now);
            let backoff = backoff.get_or_insert_with(|| shared.config.retry.backoff());
            match backoff.decide(attempt, error.kind(), started.elapsed()) {
                Decision::RetryAfter(delay) => {
                    tracing::warn!(attempt, error = %error, retry_in = ?delay, "handler failed; retrying");
                    self.labels.count(telemetry::RETRIED);
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Decision::GiveUp(why) => {
                    tracing::error!(attempt, error = %error, "{why}; dead-lettering the event");
                    let chain = error.chain();
                    let failure = Failure {
                        reason: format!("{why}: {}", chain[0]),
                        error_chain: chain,
                        attempts: attempt,
                        first_failure: first,
                        last_failure: now,
                    };
                    return Box::pin(self.dead_letter(failure, traceparent.as_deref())).await;
                }
            }
        }
    }

    async fn dead_letter(&self, failure: Failure, traceparent: Option<&str>) -> Outcome {
        let shared = self.shared;
        let record = LetterParts {
            record: self.record,
            group: &shared.group,
            policy: shared.config.dead_letter_policy,
            kind: DeadLetterKind::Failed,
            event_id: self.event_id,
            traceparent,
            blocked_by: None,
            failure: &failure,
        }
        .to_record();
        self.write_letter(record).await;
        if let Some(key) = self.record.key.as_ref().filter(|_| shared.sequenced()) {
            shared.block(&self.record.topic, key, self.event_id);
        }
        self.labels.count(telemetry::DEAD_LETTERED);
        Outcome::DeadLettered
    }

    /// Parks the event behind `front`; `enqueue` when it is not in the key's queue yet.
    async fn park(&self, front: &str, enqueue: bool) -> Outcome {
        let shared = self.shared;
        let now = SystemTime::now();
        let traceparent = Envelope::from_record(self.record)
            .ok()
            .and_then(|e| e.traceparent);
        let failure = Failure {
            reason: format!("parked behind failed event {front}"),
            error_chain: Vec::new(),
            attempts: 0,
            first_failure: now,
            last_failure: now,
        };
        let record = LetterParts {
            record: self.record,
            group: &shared.group,
            policy: shared.config.dead_letter_policy,
            kind: DeadLetterKind::Parked,
            event_id: self.event_id,
            traceparent: traceparent.as_deref(),
            blocked_by: Some(front),
            failure: &failure,
        }
        .to_record();
        self.write_letter(record).await;
        if enqueue && let Some(key) = &self.record.key {
            shared.block(&self.record.topic, key, self.event_id);
        }
        tracing::info!(
            blocked_by = front,
            "key is blocked by a dead letter; event parked"
        );
        self.labels.count(telemetry::PARKED);
        Outcome::Parked
    }

    async fn write_letter(&self, record: crate::transport::OutgoingRecord) {
        let topic = dlq_topic(&self.record.topic, &self.shared.group);
        until_ok("dead-letter publish", || {
            self.shared
                .publisher
                .publish_boxed(&topic, vec![record.clone()])
        })
        .await;
    }
}
