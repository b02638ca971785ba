//! The relay: publishes what the outbox and the event store committed.
//!
//! Every row of `herald_events` with a topic belongs to one of [`RELAY_SLOTS`] slots
//! (by its key). A relay leases slots in `herald_relay_slots`; for each slot it holds,
//! it reads the rows after the slot's checkpoint in position order, publishes them
//! (consecutive rows of one topic in one `publish` call), then moves the checkpoint past
//! them: that is what marks rows sent. Positions are commit-ordered
//! (`docs/adr/0008-commit-ordered-positions.md`), so the checkpoint never passes a row
//! that commits later, and since a key always maps to one slot and a slot has one owner
//! at a time, each key's events reach the bus in commit order.
//!
//! - **At least once.** A relay that dies after publishing and before moving the
//!   checkpoint leaves it where it was; the next owner of the slot (after the lease
//!   runs out) publishes those rows again. Consumers deduplicate by event id (the SDK's
//!   inbox). Nothing committed is ever skipped.
//! - **Several relays.** Relays register in `herald_relay_members` and each takes a
//!   fair share of the slots (`ceil(slots / live relays)`), releasing surplus slots
//!   between batches. A relay whose lease ran out (paused or cut off) cannot move a
//!   checkpoint any more: each move checks the lease in the same statement.
//! - **Broker errors** are retried with exponential backoff ([`RelayConfig::retry`]),
//!   from the checkpoint, so order is kept.
//! - **Retention.** Sent outbox messages are deleted once older than
//!   [`RelayConfig::retention`]; event-store events are never deleted.
//! - **Waking.** On PostgreSQL the relay LISTENs for the insert trigger's notification;
//!   on SQLite it polls every [`RelayConfig::poll_interval`].
//!
//! Metrics: `herald_outbox_backlog` (unsent rows), `herald_outbox_oldest_age_seconds`
//! (age of the oldest unsent row), `herald_outbox_published_total`,
//! `herald_outbox_publish_errors_total`, `herald_outbox_purged_total`. Each published
//! batch runs in a `herald_sql.relay.batch` tracing span.

use std::{
    fmt,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use herald::{
    RetryPolicy,
    transport::{OutgoingRecord, Publisher},
};
use sqlx::Pool;
use tokio::{sync::watch, task::JoinHandle};
use tracing::Instrument;

use crate::{
    backend::{Backend, Row},
    codec::{self, RELAY_SLOTS, now_ms},
    error::{Error, Result},
    wake::Waker,
};

/// Unsent rows (gauge).
pub const BACKLOG: &str = "herald_outbox_backlog";
/// Age of the oldest unsent row, in seconds (gauge; 0 when there is none).
pub const OLDEST_AGE: &str = "herald_outbox_oldest_age_seconds";
/// Rows published (counter).
pub const PUBLISHED: &str = "herald_outbox_published_total";
/// Failed publish calls (counter).
pub const PUBLISH_ERRORS: &str = "herald_outbox_publish_errors_total";
/// Sent outbox messages deleted by retention (counter).
pub const PURGED: &str = "herald_outbox_purged_total";

/// How a relay runs.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Rows read and published per slot per batch.
    pub batch_size: usize,
    /// How often to look for new rows without a notification (SQLite always polls).
    pub poll_interval: Duration,
    /// How long a slot lease lasts without renewal; a relay that dies holds its slots
    /// this long. Each batch must finish well within it.
    pub lease: Duration,
    /// Delays between attempts after a failed publish or database error; attempts are
    /// never exhausted (the relay keeps trying), only the delays grow.
    pub retry: RetryPolicy,
    /// How long sent outbox messages are kept.
    pub retention: Duration,
    /// How often retention runs.
    pub purge_interval: Duration,
    /// How often the backlog metrics are refreshed.
    pub metrics_interval: Duration,
}

impl Default for RelayConfig {
    /// Batches of 500, polling every 100 ms (a fallback on PostgreSQL), 30 s leases,
    /// retries from 100 ms up to 10 s, sent messages kept 1 h, purged every minute,
    /// metrics every 5 s.
    fn default() -> Self {
        Self {
            batch_size: 500,
            poll_interval: Duration::from_millis(100),
            lease: Duration::from_secs(30),
            retry: RetryPolicy::default()
                .with_max_attempts(u32::MAX)
                .with_max_elapsed(None)
                .with_delays(Duration::from_millis(100), Duration::from_secs(10), 2.0),
            retention: Duration::from_secs(3600),
            purge_interval: Duration::from_secs(60),
            metrics_interval: Duration::from_secs(5),
        }
    }
}

/// Unsent rows right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backlog {
    /// How many rows with a topic are past their slot's checkpoint.
    pub events: u64,
    /// How long ago the oldest of them was recorded.
    pub oldest_age: Option<Duration>,
}

/// What a relay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Rows published (a row published twice after a failure counts twice).
    pub published: u64,
    /// Failed cycles (publish or database errors), each followed by a backoff.
    pub errors: u64,
}

/// Publishes committed outbox rows and event-store events through `P`.
pub struct Relay<DB: Backend, P> {
    pool: Pool<DB>,
    publisher: Arc<P>,
    config: RelayConfig,
    owner: String,
    stats: Arc<Counters>,
}

impl<DB: Backend, P> fmt::Debug for Relay<DB, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("backend", &DB::BACKEND)
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Counters {
    published: AtomicU64,
    errors: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RelayStats {
        RelayStats {
            published: self.published.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
        }
    }
}

impl<DB: Backend, P: Publisher> Relay<DB, P> {
    pub(crate) fn new(pool: Pool<DB>, publisher: P) -> Self {
        Self {
            pool,
            publisher: Arc::new(publisher),
            config: RelayConfig::default(),
            owner: format!("relay-{}", uuid::Uuid::now_v7()),
            stats: Arc::default(),
        }
    }

    /// Replaces the configuration (a batch size of 0 counts as 1).
    pub fn with_config(mut self, config: RelayConfig) -> Self {
        self.config = RelayConfig {
            batch_size: config.batch_size.max(1),
            ..config
        };
        self
    }

    /// This relay's id in `herald_relay_slots.owner`.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// One pass: renews and balances leases, then publishes every slot it holds up to
    /// its end. Returns the rows published. [`start`](Self::start) runs this in a loop.
    pub async fn run_once(&self) -> Result<u64> {
        let slots = self.lease_slots().await?;
        let mut published = 0;
        for (slot, checkpoint) in slots {
            published += self.drain_slot(slot, checkpoint).await?;
        }
        Ok(published)
    }

    /// Unsent rows in the whole database (every slot, whoever holds it).
    pub async fn backlog(&self) -> Result<Backlog> {
        backlog(&self.pool).await
    }

    /// Deletes sent outbox messages older than the retention; returns how many.
    pub async fn purge(&self) -> Result<u64> {
        let before = now_ms() - self.config.retention.as_millis() as i64;
        let mut total = 0;
        loop {
            let mut conn = self.pool.acquire().await.map_err(db::<DB>("purging"))?;
            let n = DB::purge(&mut conn, before, 10_000)
                .await
                .map_err(db::<DB>("purging sent outbox messages"))?;
            total += n;
            if n < 10_000 {
                break;
            }
        }
        metrics::counter!(PURGED).increment(total);
        Ok(total)
    }

    /// Runs the relay on a task of its own until [`RelayHandle::shutdown`].
    pub fn start(self) -> RelayHandle {
        let (stop, stopped) = watch::channel(false);
        let stats = self.stats.clone();
        let task = tokio::spawn(self.run(stopped));
        RelayHandle { stop, task, stats }
    }

    /// Takes this relay's fair share of slots; returns those held with checkpoints.
    async fn lease_slots(&self) -> Result<Vec<(i64, i64)>> {
        let now = now_ms();
        let until = now + self.config.lease.as_millis() as i64;
        let mut tx = DB::begin_write(&self.pool)
            .await
            .map_err(db::<DB>("leasing slots"))?;
        let live = DB::relay_heartbeat(&mut tx, &self.owner, until, now)
            .await
            .map_err(db::<DB>("registering the relay"))?;
        let share = (i64::from(RELAY_SLOTS) + live - 1) / live.max(1);
        let mut held = DB::relay_renew(&mut tx, &self.owner, until, now)
            .await
            .map_err(db::<DB>("renewing slot leases"))?;
        held.sort_unstable();
        while held.len() as i64 > share {
            let (slot, _) = held.pop().expect("more than share");
            DB::relay_release(&mut tx, &self.owner, Some(slot))
                .await
                .map_err(db::<DB>("releasing a slot"))?;
        }
        if (held.len() as i64) < share {
            let more = DB::relay_claim(&mut tx, &self.owner, until, now, share - held.len() as i64)
                .await
                .map_err(db::<DB>("claiming slots"))?;
            held.extend(more);
        }
        tx.commit().await.map_err(db::<DB>("leasing slots"))?;
        Ok(held)
    }

    /// Publishes one slot from `checkpoint` to its end.
    async fn drain_slot(&self, slot: i64, mut checkpoint: i64) -> Result<u64> {
        let mut published = 0;
        loop {
            let rows = {
                let mut conn = self
                    .pool
                    .acquire()
                    .await
                    .map_err(db::<DB>("reading the outbox"))?;
                DB::relay_fetch(&mut conn, slot, checkpoint, self.config.batch_size as i64)
                    .await
                    .map_err(db::<DB>("reading the outbox"))?
            };
            let Some(last) = rows.last().map(|r| r.position) else {
                return Ok(published);
            };
            let full = rows.len() >= self.config.batch_size;
            let span = tracing::info_span!(
                "herald_sql.relay.batch",
                slot,
                rows = rows.len(),
                first = checkpoint + 1,
                last
            );
            let sent = self.publish(rows).instrument(span).await?;
            published += sent;
            let now = now_ms();
            let until = now + self.config.lease.as_millis() as i64;
            let mut conn = self
                .pool
                .acquire()
                .await
                .map_err(db::<DB>("marking rows sent"))?;
            let moved = DB::relay_advance(&mut conn, &self.owner, slot, last, until, now)
                .await
                .map_err(db::<DB>("marking rows sent"))?;
            if !moved {
                // The lease ran out and another relay may own the slot: stop here; the
                // rows just published will be published again by the owner.
                tracing::warn!(slot, owner = %self.owner, "lost the lease of a relay slot");
                return Ok(published);
            }
            checkpoint = last;
            if !full {
                return Ok(published);
            }
        }
    }

    /// Publishes rows in order, one `publish` call per run of one topic.
    async fn publish(&self, rows: Vec<Row>) -> Result<u64> {
        let mut published = 0u64;
        let mut batch: Vec<OutgoingRecord> = Vec::new();
        let mut topic: Option<String> = None;
        for row in rows {
            let Some(row_topic) = row.topic.clone() else {
                continue;
            };
            if topic.as_deref() != Some(row_topic.as_str()) {
                if let Some(t) = topic.take() {
                    published += self.publish_batch(&t, std::mem::take(&mut batch)).await?;
                }
                topic = Some(row_topic);
            }
            let position = row.position as u64;
            let envelope = codec::envelope(position, row.key, &row.headers, row.data)?;
            batch.push(envelope.to_record());
        }
        if let Some(t) = topic {
            published += self.publish_batch(&t, batch).await?;
        }
        Ok(published)
    }

    async fn publish_batch(&self, topic: &str, records: Vec<OutgoingRecord>) -> Result<u64> {
        let n = records.len() as u64;
        match self.publisher.publish(topic, records).await {
            Ok(_) => {
                metrics::counter!(PUBLISHED).increment(n);
                self.stats.published.fetch_add(n, Ordering::Relaxed);
                Ok(n)
            }
            Err(source) => {
                metrics::counter!(PUBLISH_ERRORS).increment(1);
                Err(Error::Publish {
                    topic: topic.to_owned(),
                    source,
                })
            }
        }
    }

    async fn run(self, mut stopped: watch::Receiver<bool>) -> Result<RelayStats> {
        let mut waker = waker(&self.pool, self.config.poll_interval).await;
        let mut backoff = self.config.retry.backoff();
        let mut last_purge = Instant::now();
        let mut last_metrics: Option<Instant> = None;
        // Idle passes are skipped: nothing is new while the log head has not moved, and
        // leases only need renewing a few times per lease period.
        let mut drained: Option<(i64, Instant)> = None;
        while !*stopped.borrow() {
            let head = self.head().await;
            let idle = match (&head, drained) {
                (Ok(head), Some((seen, at))) => {
                    *head == seen && at.elapsed() < self.config.lease / 3
                }
                _ => false,
            };
            let outcome = if idle {
                Ok(0)
            } else {
                let started = Instant::now();
                let outcome = match head {
                    Ok(head) => self.run_once().await.map(|n| (n, head)),
                    Err(e) => Err(e),
                };
                drained = outcome.as_ref().ok().map(|&(_, head)| (head, started));
                outcome.map(|(n, _)| n)
            };
            // The backlog matters most when publishing fails: refresh it either way.
            if last_metrics.is_none_or(|t| t.elapsed() >= self.config.metrics_interval) {
                last_metrics = Some(Instant::now());
                if let Err(e) = self.record_metrics().await {
                    tracing::warn!(error = %e, "reading the outbox backlog");
                }
            }
            let pause = match outcome {
                Ok(_) => {
                    backoff = self.config.retry.backoff();
                    if last_purge.elapsed() >= self.config.purge_interval {
                        last_purge = Instant::now();
                        if let Err(e) = self.purge().await {
                            tracing::warn!(error = %e, "outbox retention failed");
                        }
                    }
                    None
                }
                Err(e) => {
                    self.stats.errors.fetch_add(1, Ordering::Relaxed);
                    let delay = backoff.next_delay();
                    tracing::warn!(error = %e, retry_in = ?delay, "relay cycle failed");
                    Some(delay)
                }
            };
            tokio::select! {
                _ = async {
                    match pause {
                        Some(delay) => tokio::time::sleep(delay).await,
                        None => waker.wait().await,
                    }
                } => {}
                _ = stopped.changed() => {}
            }
        }
        // Hand the slots over now rather than after the lease runs out.
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db::<DB>("releasing slots"))?;
        DB::relay_release(&mut conn, &self.owner, None)
            .await
            .map_err(db::<DB>("releasing slots"))?;
        Ok(self.stats.snapshot())
    }

    /// The last position handed out.
    async fn head(&self) -> Result<i64> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db::<DB>("reading the log head"))?;
        DB::head(&mut conn)
            .await
            .map_err(db::<DB>("reading the log head"))
    }

    async fn record_metrics(&self) -> Result<()> {
        let b = backlog(&self.pool).await?;
        metrics::gauge!(BACKLOG).set(b.events as f64);
        metrics::gauge!(OLDEST_AGE).set(b.oldest_age.map_or(0.0, |a| a.as_secs_f64()));
        Ok(())
    }
}

pub(crate) async fn backlog<DB: Backend>(pool: &Pool<DB>) -> Result<Backlog> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(db::<DB>("reading the backlog"))?;
    let (events, oldest) = DB::backlog(&mut conn)
        .await
        .map_err(db::<DB>("reading the backlog"))?;
    Ok(Backlog {
        events: events as u64,
        oldest_age: oldest.map(|ms| Duration::from_millis((now_ms() - ms).max(0) as u64)),
    })
}

/// The database's waker; polling if LISTEN cannot be set up (it is only an optimisation).
pub(crate) async fn waker<DB: Backend>(pool: &Pool<DB>, poll: Duration) -> Waker {
    match DB::waker(pool, poll).await {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!(error = %e, "cannot LISTEN for new events; polling");
            Waker::poll(poll)
        }
    }
}

fn db<DB: Backend>(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Error {
    Error::db(DB::BACKEND, operation)
}

/// A running relay.
#[derive(Debug)]
pub struct RelayHandle {
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<RelayStats>>,
    stats: Arc<Counters>,
}

impl fmt::Debug for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.snapshot().fmt(f)
    }
}

impl RelayHandle {
    /// What the relay did so far.
    pub fn stats(&self) -> RelayStats {
        self.stats.snapshot()
    }

    /// Stops after the current batch, releases the relay's slots and returns its stats.
    pub async fn shutdown(self) -> Result<RelayStats> {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::Task {
                task: "relay",
                reason: e.to_string(),
            }),
        }
    }

    /// Stops the relay at once, wherever it is, without releasing its slots: what a
    /// crash looks like to the other relays (they take the slots when the leases run
    /// out).
    pub fn abort(self) {
        self.task.abort();
    }
}
