//! [`SagaRuntime`]: replies consumed by a herald [`Router`], timeouts fired by a poller.
//!
//! The router is a member of the consumer group `saga-{name}` on the definition's reply
//! topics, with a handler per reply type; it hands each event to
//! [`SagaManager::handle_reply`]. Database errors are retried (with backoff, without
//! end: a reply must not be dropped because the database was away); a reply that does
//! not decode into its declared type is dead-lettered. The poller calls
//! [`SagaManager::fire_timeouts`] every [`SagaConfig::poll_interval`]. Neither holds
//! state of its own: everything is in the database, so a runtime that dies (or is
//! [`abort`](SagaRuntime::abort)ed) is replaced by starting another one.

use std::{sync::Arc, time::Duration};

use herald::{
    Envelope, Event, HandlerContext, HandlerError, RetryPolicy, Router,
    router::{RouterBuilder, RouterHandle},
    transport::Transport,
};
use tokio::{sync::watch, task::JoinHandle};

use crate::{
    backend::SagaBackend,
    definition::SagaData,
    error::{Result, SagaError},
    manager::SagaManager,
};

/// How a runtime runs.
#[derive(Debug, Clone)]
pub struct SagaConfig {
    /// The consumer group of the reply router; `saga-{name}` when `None`.
    pub group: Option<String>,
    /// How often due deadlines are looked for. A timeout fires at most this late.
    pub poll_interval: Duration,
    /// Replies handled at once (different sagas; one saga's replies are in order by
    /// key).
    pub concurrency: usize,
    /// Retries of a reply whose transition failed (the database was unreachable, a
    /// conflict that kept repeating).
    pub retry: RetryPolicy,
    /// `ce_source` of events the router publishes (dead letters).
    pub source: String,
}

impl Default for SagaConfig {
    /// Group `saga-{name}`, deadlines polled every 250 ms, 16 replies at once, failed
    /// transitions retried from 50 ms up to every 5 s without end.
    fn default() -> Self {
        Self {
            group: None,
            poll_interval: Duration::from_millis(250),
            concurrency: 16,
            retry: RetryPolicy::default()
                .with_max_attempts(u32::MAX)
                .with_max_elapsed(None)
                .with_delays(Duration::from_millis(50), Duration::from_secs(5), 2.0),
            source: "urn:herald:saga".to_owned(),
        }
    }
}

type Trigger<T> = Box<dyn FnOnce(RouterBuilder<T>) -> RouterBuilder<T> + Send>;

/// Builds a [`SagaRuntime`]: [`SagaManager::runtime`].
pub struct SagaRuntimeBuilder<DB: SagaBackend, D, T> {
    manager: SagaManager<DB, D>,
    transport: T,
    config: SagaConfig,
    triggers: Vec<Trigger<T>>,
}

impl<DB: SagaBackend, D: SagaData, T: Transport> SagaRuntimeBuilder<DB, D, T> {
    pub(crate) fn new(manager: SagaManager<DB, D>, transport: T) -> Self {
        Self {
            manager,
            transport,
            config: SagaConfig::default(),
            triggers: Vec::new(),
        }
    }

    /// Replaces the whole configuration.
    pub fn config(mut self, config: SagaConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets how often due deadlines are looked for.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.config.poll_interval = interval;
        self
    }

    /// Sets the reply router's consumer group.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.config.group = Some(group.into());
        self
    }

    /// Starts a saga for every event of type `E` on `topic`: `start` gives its id and
    /// data. The saga is caused by the event (correlation id and trace carried on). An
    /// event whose saga exists already (a redelivery) changes nothing.
    pub fn trigger<E, F>(mut self, topic: &str, start: F) -> Self
    where
        E: Event,
        F: Fn(E) -> (String, D) + Send + Sync + 'static,
    {
        let manager = self.manager.clone();
        let start = Arc::new(start);
        let topic = topic.to_owned();
        self.triggers
            .push(Box::new(move |router: RouterBuilder<T>| {
                router.on(&topic, move |event: E, ctx: HandlerContext| {
                    let manager = manager.clone();
                    let start = start.clone();
                    async move {
                        let (saga_id, data) = start(event);
                        match manager
                            .start_caused_by(&saga_id, data, ctx.envelope())
                            .await
                        {
                            Ok(()) | Err(SagaError::AlreadyExists { .. }) => Ok(()),
                            Err(e) => Err(handler_error(e)),
                        }
                    }
                })
            }));
        self
    }

    /// Subscribes the reply router and starts the timeout poller on the current Tokio
    /// runtime.
    pub async fn start(self) -> Result<SagaRuntime> {
        let definition = self.manager.definition().clone();
        let group = self
            .config
            .group
            .clone()
            .unwrap_or_else(|| format!("saga-{}", definition.name()));
        let mut router = Router::builder(self.transport, group)
            .concurrency(self.config.concurrency)
            .retry(self.config.retry.clone())
            .source(self.config.source.clone());
        for topic in definition.reply_topics() {
            for event_type in definition.reply_types() {
                let manager = self.manager.clone();
                router = router.on_type(topic, &event_type, move |reply: Envelope, _| {
                    let manager = manager.clone();
                    async move {
                        manager
                            .handle_reply(&reply)
                            .await
                            .map(drop)
                            .map_err(handler_error)
                    }
                });
            }
        }
        for trigger in self.triggers {
            router = trigger(router);
        }
        let router = router.start().await?;
        let (stop, stopped) = watch::channel(false);
        let poller = tokio::spawn(poll(self.manager, self.config.poll_interval, stopped));
        Ok(SagaRuntime {
            router,
            poller,
            stop,
        })
    }
}

/// A reply that cannot be read is permanent (dead letter); everything else is retried.
fn handler_error(e: SagaError) -> HandlerError {
    match e {
        SagaError::Event(_) | SagaError::InvalidInput(_) => HandlerError::permanent(e),
        e => HandlerError::transient(e),
    }
}

async fn poll<DB: SagaBackend, D: SagaData>(
    manager: SagaManager<DB, D>,
    interval: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        if let Err(e) = manager.fire_timeouts().await {
            tracing::warn!(saga = manager.definition().name(), error = %e, "firing saga timeouts failed; retrying");
        }
        tokio::select! {
            _ = stopped.changed() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

/// A running saga runtime. Dropping it leaves it running in the background.
#[derive(Debug)]
pub struct SagaRuntime {
    router: RouterHandle,
    poller: JoinHandle<()>,
    stop: watch::Sender<bool>,
}

impl SagaRuntime {
    /// Stops the poller, lets the router finish the replies it is handling and commit,
    /// and leaves the group.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let polled = self.poller.await;
        self.router.shutdown().await?;
        polled.map_err(|e| SagaError::Task {
            task: "timeout poller",
            reason: e.to_string(),
        })
    }

    /// Stops at once, like a crashed process: transitions in flight roll back, replies
    /// not committed are delivered again to the group. Another runtime on the same
    /// database carries on from the stored state.
    pub async fn abort(self) {
        self.poller.abort();
        let _ = self.poller.await;
        self.router.abort().await;
    }

    /// Whether the reply router stopped by itself (a fatal transport error).
    pub fn is_finished(&self) -> bool {
        self.router.is_finished()
    }
}

impl<DB: SagaBackend, D: SagaData> SagaManager<DB, D> {
    /// A runtime consuming this saga's replies from `transport` and firing its
    /// timeouts; see [`SagaRuntimeBuilder`].
    pub fn runtime<T: herald::transport::Transport>(
        &self,
        transport: T,
    ) -> SagaRuntimeBuilder<DB, D, T> {
        SagaRuntimeBuilder::new(self.clone(), transport)
    }
}
