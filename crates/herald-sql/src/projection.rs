//! Projections: read models kept up to date from the store's global order.
//!
//! A [`Projection`] applies events to its read model inside a transaction the runner
//! gives it. The [`ProjectionRunner`] reads events after the projection's checkpoint (a
//! row of `herald_checkpoints`), applies a batch and saves the new checkpoint in that
//! same transaction: the read model and the checkpoint commit together, so each event
//! is applied exactly once per checkpoint, even across crashes. The checkpoint row is
//! locked for the batch (PostgreSQL `FOR UPDATE`; SQLite's write lock), so two runners
//! of one projection never apply a batch twice. Positions are commit-ordered
//! (`docs/adr/0008-commit-ordered-positions.md`): moving the checkpoint forward never
//! skips an event that commits later.
//!
//! [`ProjectionRunner::start`] catches up, then follows live (LISTEN/NOTIFY on
//! PostgreSQL, polling on SQLite). [`ProjectionRunner::rebuild`] clears the read model
//! ([`Projection::reset`]) and the checkpoint in one transaction and replays from the
//! first event. Metrics, labelled `projection`: `herald_projection_lag_events`
//! (positions between the checkpoint and the last event), `herald_projection_lag_seconds`
//! (age of the oldest event not applied yet; 0 when caught up),
//! `herald_projection_events_total`, `herald_projection_errors_total`.

use std::{fmt, future::Future, sync::Arc, time::Duration};

use herald::RetryPolicy;
use sqlx::Transaction;
use tokio::{sync::watch, task::JoinHandle};
use tracing::Instrument;

use crate::{
    backend::Backend,
    codec::now_ms,
    error::{BoxError, Error, Result},
    store::{EventStore, RecordedEvent},
};

/// Positions between the checkpoint and the last event (gauge).
pub const LAG_EVENTS: &str = "herald_projection_lag_events";
/// Age of the oldest event not applied yet, in seconds (gauge).
pub const LAG_SECONDS: &str = "herald_projection_lag_seconds";
/// Events applied (counter).
pub const EVENTS: &str = "herald_projection_events_total";
/// Failed batches (counter).
pub const ERRORS: &str = "herald_projection_errors_total";

/// A read model built from events.
pub trait Projection<DB: Backend>: Send + Sync + 'static {
    /// The checkpoint's name: unique per projection, stable across restarts.
    fn name(&self) -> &str;

    /// Applies one event to the read model in `tx` (the transaction that will also save
    /// the checkpoint). An error rolls the batch back; the runner retries it.
    fn apply(
        &self,
        tx: &mut Transaction<'static, DB>,
        event: &RecordedEvent,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Empties the read model, for a rebuild from the first event.
    fn reset(
        &self,
        tx: &mut Transaction<'static, DB>,
    ) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// How a runner runs.
#[derive(Debug, Clone)]
pub struct ProjectionConfig {
    /// Events per transaction.
    pub batch_size: usize,
    /// How often to look for events without a notification (SQLite always polls).
    pub poll_interval: Duration,
    /// Delays after a failed batch; never exhausted (a projection must not skip).
    pub retry: RetryPolicy,
}

impl Default for ProjectionConfig {
    /// Batches of 500, polling every 100 ms, retries from 100 ms up to 10 s.
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(100),
            retry: RetryPolicy::default()
                .with_max_attempts(u32::MAX)
                .with_max_elapsed(None)
                .with_delays(Duration::from_millis(100), Duration::from_secs(10), 2.0),
        }
    }
}

/// How far a projection is behind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lag {
    /// Positions between the checkpoint and the store's last event.
    pub events: u64,
    /// Age of the oldest event not applied yet (zero when caught up).
    pub seconds: f64,
}

/// Runs a [`Projection`] over an [`EventStore`] (whose upcasters apply).
pub struct ProjectionRunner<DB: Backend, P> {
    store: EventStore<DB>,
    projection: Arc<P>,
    config: ProjectionConfig,
}

impl<DB: Backend, P> fmt::Debug for ProjectionRunner<DB, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProjectionRunner")
            .field("store", &self.store)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<DB: Backend, P: Projection<DB>> ProjectionRunner<DB, P> {
    /// A runner for `projection` over `store`.
    pub fn new(store: EventStore<DB>, projection: P) -> Self {
        Self {
            store,
            projection: Arc::new(projection),
            config: ProjectionConfig::default(),
        }
    }

    /// Replaces the configuration (a batch size of 0 counts as 1).
    pub fn with_config(mut self, config: ProjectionConfig) -> Self {
        self.config = ProjectionConfig {
            batch_size: config.batch_size.max(1),
            ..config
        };
        self
    }

    /// The projection.
    pub fn projection(&self) -> &P {
        &self.projection
    }

    /// Applies one batch after the checkpoint; returns how many events it applied.
    pub async fn run_batch(&self) -> Result<usize> {
        let name = self.projection.name();
        let span = tracing::debug_span!("herald_sql.projection.batch", projection = name);
        let applied = self.batch().instrument(span).await;
        match &applied {
            Ok(n) => {
                metrics::counter!(EVENTS, "projection" => name.to_owned()).increment(*n as u64);
                if let Ok(lag) = self.lag().await {
                    metrics::gauge!(LAG_EVENTS, "projection" => name.to_owned())
                        .set(lag.events as f64);
                    metrics::gauge!(LAG_SECONDS, "projection" => name.to_owned()).set(lag.seconds);
                }
            }
            Err(_) => metrics::counter!(ERRORS, "projection" => name.to_owned()).increment(1),
        }
        applied
    }

    async fn batch(&self) -> Result<usize> {
        let pool = self.store.pool();
        let name = self.projection.name();
        let fail = |what: &str| Error::db(DB::BACKEND, format!("projection {name}: {what}"));
        let mut tx = DB::begin_write(pool).await.map_err(fail("begin"))?;
        let checkpoint = DB::lock_checkpoint(&mut tx, name, now_ms())
            .await
            .map_err(fail("locking the checkpoint"))?;
        let events = self
            .store
            .read_all_on(&mut tx, checkpoint as u64, self.config.batch_size)
            .await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(0);
        };
        for event in &events {
            self.projection
                .apply(&mut tx, event)
                .await
                .map_err(|source| Error::Projection {
                    projection: name.to_owned(),
                    position: event.position,
                    source,
                })?;
        }
        DB::save_checkpoint(&mut tx, name, last as i64, now_ms())
            .await
            .map_err(fail("saving the checkpoint"))?;
        tx.commit().await.map_err(fail("commit"))?;
        Ok(events.len())
    }

    /// Applies batches until none is left; returns the events applied.
    pub async fn run_until_caught_up(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.run_batch().await?;
            total += n as u64;
            if n < self.config.batch_size {
                return Ok(total);
            }
        }
    }

    /// Clears the read model and the checkpoint (in one transaction), then replays
    /// every event; returns the events applied.
    pub async fn rebuild(&self) -> Result<u64> {
        let pool = self.store.pool();
        let name = self.projection.name();
        let fail = |what: &str| Error::db(DB::BACKEND, format!("rebuilding {name}: {what}"));
        let mut tx = DB::begin_write(pool).await.map_err(fail("begin"))?;
        DB::lock_checkpoint(&mut tx, name, now_ms())
            .await
            .map_err(fail("locking the checkpoint"))?;
        self.projection
            .reset(&mut tx)
            .await
            .map_err(|source| Error::Projection {
                projection: name.to_owned(),
                position: 0,
                source,
            })?;
        DB::save_checkpoint(&mut tx, name, 0, now_ms())
            .await
            .map_err(fail("resetting the checkpoint"))?;
        tx.commit().await.map_err(fail("commit"))?;
        self.run_until_caught_up().await
    }

    /// The projection's checkpoint: position of the last event applied (0: none).
    pub async fn checkpoint(&self) -> Result<u64> {
        let mut conn = self.acquire().await?;
        let cp = DB::read_checkpoint(&mut conn, self.projection.name())
            .await
            .map_err(Error::db(DB::BACKEND, "reading a checkpoint"))?;
        Ok(cp.unwrap_or(0) as u64)
    }

    /// How far the projection is behind.
    pub async fn lag(&self) -> Result<Lag> {
        let checkpoint = self.checkpoint().await?;
        let mut conn = self.acquire().await?;
        let fail = || Error::db(DB::BACKEND, "reading projection lag");
        let last = DB::last_event(&mut conn).await.map_err(fail())?;
        let next = DB::next_event_time(&mut conn, checkpoint as i64)
            .await
            .map_err(fail())?;
        Ok(Lag {
            events: last.map_or(0, |(p, _)| (p as u64).saturating_sub(checkpoint)),
            seconds: next.map_or(0.0, |ms| (now_ms() - ms).max(0) as f64 / 1000.0),
        })
    }

    async fn acquire(&self) -> Result<sqlx::pool::PoolConnection<DB>> {
        self.store
            .pool()
            .acquire()
            .await
            .map_err(Error::db(DB::BACKEND, "connecting"))
    }

    /// Catches up, then follows new events on a task of its own until
    /// [`ProjectionHandle::shutdown`]. Failed batches are retried with backoff.
    pub fn start(self) -> ProjectionHandle {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(self.run(stopped));
        ProjectionHandle { stop, task }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) -> Result<()> {
        let mut waker = crate::relay::waker(self.store.pool(), self.config.poll_interval).await;
        let mut backoff = self.config.retry.backoff();
        while !*stopped.borrow() {
            match self.run_batch().await {
                Ok(n) if n >= self.config.batch_size => backoff = self.config.retry.backoff(),
                Ok(_) => {
                    backoff = self.config.retry.backoff();
                    tokio::select! {
                        _ = waker.wait() => {}
                        _ = stopped.changed() => {}
                    }
                }
                Err(e) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(projection = self.projection.name(), error = %e, retry_in = ?delay, "projection batch failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = stopped.changed() => {}
                    }
                }
            }
        }
        Ok(())
    }
}

/// A running projection.
#[derive(Debug)]
pub struct ProjectionHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<()>>,
}

impl ProjectionHandle {
    /// Stops after the current batch.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Task {
                task: "projection",
                reason: e.to_string(),
            }),
        }
    }
}
