//! The consumer runtime: handlers by event type, bounded concurrency, per-key order,
//! retries, dead letters, the inbox, and offsets committed only for final outcomes.
//!
//! A router is one member of a consumer group. It polls records, decodes each into an
//! [`Envelope`] and calls the handler registered for its topic and type:
//!
//! - **Order.** Records with the same key (in the same partition) are handled one after
//!   the other, in offset order; records with different keys run in parallel, at most
//!   [`RouterConfig::concurrency`] handlers at once.
//! - **Failures.** A failed attempt is retried by the [`RetryPolicy`]; a permanent error or
//!   an exhausted policy sends the event to the group's dead-letter topic (see
//!   [`crate::dlq`]). Records that are not CloudEvents are dead-lettered at once.
//! - **Duplicates.** With an [`Inbox`], an event id the group processed before is skipped.
//! - **Offsets.** A partition's committed offset never passes a record whose outcome is not
//!   final (handled, skipped, dead-lettered or parked), so a crash redelivers instead of
//!   losing anything.
//! - **Shutdown.** [`RouterHandle::shutdown`] stops polling, lets running handlers finish
//!   (up to [`RouterConfig::shutdown_grace`]) and commits.
//! - **Sequence order.** For a topic given to [`RouterBuilder::resequence`], events that
//!   carry a per-entity sequence number are handed to handlers in that order; see
//!   [`crate::resequencer`].
//! - **Rebalances.** When the group takes a partition away, records of it that had not
//!   started are dropped (the new owner reads them from the last commit); handlers already
//!   running finish. For that moment a key can run on two members, as with any Kafka
//!   consumer using eager rebalancing; the inbox keeps the effect single.

mod context;
mod process;
mod resequence;
mod runner;

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use thiserror::Error;
use tokio::{sync::watch, task::JoinHandle};

pub use context::{HandlerContext, PublishError};

use crate::{
    dlq::{DeadLetterFilter, DeadLetterPolicy, DeadLetterQueue, DlqError, dlq_topic},
    envelope::Envelope,
    event::Event,
    inbox::Inbox,
    resequencer::{EntityKey, GapReport, ResequencerConfig},
    retry::{HandlerError, RetryPolicy},
    transport::{BoxFuture, Transport, TransportError},
};
use process::Shared;
use resequence::{GapCallback, Stage};

/// A registered handler, type-erased. It finds the event in the context
/// ([`HandlerContext::envelope`]), so a typed handler decodes it without copying it.
pub(crate) type Handler =
    Arc<dyn Fn(HandlerContext) -> BoxFuture<'static, Result<(), HandlerError>> + Send + Sync>;

/// Tuning of a router.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Handlers running at once.
    pub concurrency: usize,
    /// Records polled but not final yet (running or waiting behind their key); polling
    /// pauses at this many.
    pub max_in_flight: usize,
    /// Records asked for per poll.
    pub poll_batch: usize,
    /// How often offsets are committed while running.
    pub commit_interval: Duration,
    /// How long shutdown waits for running handlers before abandoning them (their
    /// records are redelivered).
    pub shutdown_grace: Duration,
    /// Retries of failed handlers.
    pub retry: RetryPolicy,
    /// What dead letters do to the rest of their key.
    pub dead_letter_policy: DeadLetterPolicy,
    /// `ce_source` of events published with [`HandlerContext::publish_event`].
    pub source: String,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_in_flight: 1024,
            poll_batch: 256,
            commit_interval: Duration::from_millis(200),
            shutdown_grace: Duration::from_secs(30),
            retry: RetryPolicy::default(),
            dead_letter_policy: DeadLetterPolicy::Skip,
            source: "urn:herald".to_owned(),
        }
    }
}

/// A router failed to start or stopped with an error.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RouterError {
    /// The transport failed (subscribing, polling).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// Reading the dead-letter topics at start failed.
    #[error("loading dead letters: {0}")]
    Dlq(#[from] DlqError),
    /// No handler was registered.
    #[error("a router needs at least one handler")]
    NoHandlers,
    /// The router's task panicked or was cancelled.
    #[error("router task ended abnormally: {0}")]
    Task(String),
}

/// Counts of final outcomes since the router started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterStats {
    /// Handled successfully.
    pub handled: u64,
    /// Skipped as duplicates by the inbox.
    pub duplicates: u64,
    /// Skipped (no handler, replay for another group, control records, redeliveries of
    /// dead letters).
    pub skipped: u64,
    /// Dead-lettered as failed.
    pub dead_lettered: u64,
    /// Parked behind a dead letter of their key.
    pub parked: u64,
}

/// Builds a router for one consumer group.
pub struct RouterBuilder<T> {
    transport: T,
    group: String,
    routes: HashMap<String, HashMap<String, Handler>>,
    config: RouterConfig,
    inbox: Option<Arc<dyn Inbox>>,
    resequence: HashMap<String, ResequencerConfig>,
    on_gap: Option<GapCallback>,
}

/// Entry point: `Router::builder(transport, group)`.
#[derive(Debug)]
pub struct Router;

impl Router {
    /// A builder for a member of `group` on `transport`.
    pub fn builder<T: Transport>(transport: T, group: impl Into<String>) -> RouterBuilder<T> {
        RouterBuilder {
            transport,
            group: group.into(),
            routes: HashMap::new(),
            config: RouterConfig::default(),
            inbox: None,
            resequence: HashMap::new(),
            on_gap: None,
        }
    }
}

impl<T: Transport> RouterBuilder<T> {
    /// Handles events of type `E::TYPE` on `topic`, decoded into `E`. An event that does
    /// not decode (another schema version, bad JSON) fails permanently.
    pub fn on<E, F, Fut>(self, topic: &str, handler: F) -> Self
    where
        E: Event,
        F: Fn(E, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let erased: Handler =
            Arc::new(
                move |ctx: HandlerContext| match ctx.envelope().decode::<E>() {
                    Ok(event) => Box::pin(handler(event, ctx)),
                    Err(e) => Box::pin(std::future::ready(Err(HandlerError::permanent(e)))),
                },
            );
        self.route(topic, E::TYPE, erased)
    }

    /// Handles events of `event_type` on `topic` as raw envelopes.
    pub fn on_type<F, Fut>(self, topic: &str, event_type: &str, handler: F) -> Self
    where
        F: Fn(Envelope, HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let erased: Handler = Arc::new(move |ctx: HandlerContext| {
            let envelope = Envelope::clone(ctx.envelope());
            Box::pin(handler(envelope, ctx))
        });
        self.route(topic, event_type, erased)
    }

    fn route(mut self, topic: &str, event_type: &str, handler: Handler) -> Self {
        self.routes
            .entry(topic.to_owned())
            .or_default()
            .insert(event_type.to_owned(), handler);
        self
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: RouterConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets how many handlers run at once (at least 1).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.config.concurrency = n.max(1);
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.config.retry = policy;
        self
    }

    /// Sets the dead-letter policy.
    pub fn dead_letter_policy(mut self, policy: DeadLetterPolicy) -> Self {
        self.config.dead_letter_policy = policy;
        self
    }

    /// Deduplicates by event id through `inbox`.
    pub fn inbox(mut self, inbox: Arc<dyn Inbox>) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// Hands the events of `topic` to handlers in the order of their sequence numbers
    /// (the `herald_seq` header), per key within a partition, buffering early arrivals as
    /// `config` allows. Events without the header, without a key, and replays of dead
    /// letters are handed over as they come. Each entity's numbering survives restarts
    /// and rebalances in the state topic `<topic>.<group>.seq`. See
    /// [`crate::resequencer`].
    pub fn resequence(mut self, topic: &str, config: ResequencerConfig) -> Self {
        self.resequence.insert(topic.to_owned(), config);
        self
    }

    /// Calls `on_gap` with every sequence gap a resequenced topic gives up on (each is
    /// also logged and counted). It runs on the router's task: keep it quick, never block.
    pub fn on_sequence_gap<F>(mut self, on_gap: F) -> Self
    where
        F: Fn(&GapReport<EntityKey>) + Send + Sync + 'static,
    {
        self.on_gap = Some(Arc::new(on_gap));
        self
    }

    /// Sets the source of events published from handlers.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.config.source = source.into();
        self
    }

    /// Subscribes and starts the router on the current Tokio runtime.
    pub async fn start(self) -> Result<RouterHandle, RouterError> {
        if self.routes.is_empty() {
            return Err(RouterError::NoHandlers);
        }
        let mut topics: Vec<&str> = self.routes.keys().map(String::as_str).collect();
        topics.sort_unstable();
        for topic in &topics {
            // Give the dead-letter topic as many partitions as its source, so letters of
            // one key stay in order there too.
            if let Some(n) = self.transport.partitions(topic).await? {
                match self
                    .transport
                    .create_topic(&dlq_topic(topic, &self.group), n)
                    .await
                {
                    Ok(()) | Err(TransportError::TopicExists { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let shared = Arc::new(Shared {
            group: self.group.as_str().into(),
            source: self.config.source.as_str().into(),
            permits: tokio::sync::Semaphore::new(self.config.concurrency.max(1)),
            routes: self.routes.clone(),
            config: self.config.clone(),
            inbox: self.inbox.clone(),
            publisher: Arc::new(self.transport.clone()),
            blocked: Default::default(),
        });
        if self.config.dead_letter_policy == DeadLetterPolicy::Sequenced {
            for topic in &topics {
                let dlq = DeadLetterQueue::new(self.transport.clone(), topic, &self.group);
                for letter in dlq.list(&DeadLetterFilter::all()).await? {
                    if let Some(key) = &letter.key {
                        shared.block(topic, key, &letter.event_id);
                    }
                }
            }
        }
        let stage = (!self.resequence.is_empty()).then(|| {
            Stage::new(
                shared.group.clone(),
                &self.resequence,
                self.on_gap.clone(),
                Arc::new(self.transport.clone()),
            )
        });
        let consumer = self.transport.subscribe(&self.group, &topics).await?;
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(runner::run(shared, consumer, stage, stopped));
        Ok(RouterHandle { stop, task })
    }
}

/// A running router. Dropping the handle leaves the router running in the background.
#[derive(Debug)]
pub struct RouterHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<RouterStats, RouterError>>,
}

impl RouterHandle {
    /// Stops polling, waits for running handlers (up to the shutdown grace), commits the
    /// offsets of final outcomes and leaves the group.
    pub async fn shutdown(self) -> Result<RouterStats, RouterError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| RouterError::Task(e.to_string()))?
    }

    /// Stops at once without draining or committing, like a crashed process: whatever was
    /// not committed is delivered again to the group.
    pub async fn abort(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    /// Whether the router stopped by itself (a fatal transport error).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}
