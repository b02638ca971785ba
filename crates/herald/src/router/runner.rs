//! The router's loop: poll, keep per-key order, track which offsets are final, commit.
//!
//! Each key with records to process has a *lane*: a queue of its records and one worker
//! task that takes them one at a time, so a key's records run in offset order and
//! different keys run in parallel. The worker reports each final outcome to the loop over
//! a channel and ends when its lane is empty; the loop starts a new worker when the key
//! gets records again. (A task per key run, not per record: spawning is the costliest
//! step of handing a record over.)

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

use bytes::Bytes;
use tokio::{
    sync::{mpsc, watch},
    task::JoinSet,
    time::{Instant, MissedTickBehavior},
};

use super::{
    RouterError, RouterStats,
    process::{self, Outcome, Shared},
    resequence::{Decisions, Stage},
};
use crate::transport::{CommitOffset, ConsumedRecord, Consumer, TopicPartition};

/// What must be handled in order: a key within a partition. Records without a key have
/// no order to keep, so each is its own "key".
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct KeyId {
    partition: TopicPartition,
    key: Option<Bytes>,
    /// The offset, for records without a key; 0 otherwise.
    unkeyed_offset: u64,
}

impl KeyId {
    fn of(record: &ConsumedRecord) -> Self {
        Self {
            partition: record.topic_partition(),
            key: record.key.clone(),
            unkeyed_offset: if record.key.is_some() {
                0
            } else {
                record.offset
            },
        }
    }
}

/// Offsets of one partition that are polled but not final yet.
#[derive(Debug, Default)]
struct Track {
    /// Offset to count of copies in flight (a redelivery can bring an offset twice).
    pending: BTreeMap<u64, u32>,
    /// One past the highest offset polled.
    next: u64,
    /// Last offset committed by this router.
    committed: Option<u64>,
}

impl Track {
    /// The offset that may be committed: the lowest one not final, or everything polled.
    fn committable(&self) -> Option<u64> {
        let at = self.pending.keys().next().copied().unwrap_or(self.next);
        (self.committed.is_none_or(|c| at > c) && at > 0).then_some(at)
    }
}

/// A record on its way to a final outcome, with the reason to dead-letter it instead of
/// handling it (a malformed or late sequence number).
type Job = (ConsumedRecord, Option<String>);

/// A final outcome, reported by a worker.
type Done = (TopicPartition, u64, Outcome);

/// The records of one key waiting for its worker.
#[derive(Default)]
struct Lane(Mutex<LaneState>);

#[derive(Default)]
struct LaneState {
    jobs: VecDeque<Job>,
    /// Set by the worker when it found no job and ended: the lane takes no more.
    closed: bool,
}

impl Lane {
    fn lock(&self) -> MutexGuard<'_, LaneState> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `job`; gives it back if the lane's worker has ended.
    fn offer(&self, job: Job) -> Option<Job> {
        let mut state = self.lock();
        if state.closed {
            return Some(job);
        }
        state.jobs.push_back(job);
        None
    }

    /// The worker's next job; `None` closes the lane.
    fn next(&self) -> Option<Job> {
        let mut state = self.lock();
        let job = state.jobs.pop_front();
        state.closed = job.is_none();
        job
    }

    /// Drops the jobs not started; returns how many.
    fn clear(&self) -> usize {
        let mut state = self.lock();
        let n = state.jobs.len();
        state.jobs.clear();
        n
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }
}

/// A key's worker: processes the lane's records in order, reporting each outcome.
async fn work(
    shared: Arc<Shared>,
    lane: Arc<Lane>,
    key: KeyId,
    done: mpsc::UnboundedSender<Done>,
) -> KeyId {
    while let Some((record, reject)) = lane.next() {
        let partition = record.topic_partition();
        let offset = record.offset;
        // Boxed: a task's future is allocated whole, and most of this one's size is
        // the handler and dead-letter paths.
        let outcome = Box::pin(process::process(shared.clone(), record, reject)).await;
        if done.send((partition, offset, outcome)).is_err() {
            break;
        }
    }
    key
}

struct Runner<C> {
    shared: Arc<Shared>,
    consumer: C,
    tracks: HashMap<TopicPartition, Track>,
    /// Keys with records being processed or waiting, and their lanes.
    busy: HashMap<KeyId, Arc<Lane>>,
    /// Records of resequenced topics waiting for their predecessors (polled, in flight).
    stage: Option<Stage>,
    /// One worker per busy key; each returns its key when its lane is empty.
    workers: JoinSet<KeyId>,
    done_tx: mpsc::UnboundedSender<Done>,
    done_rx: mpsc::UnboundedReceiver<Done>,
    in_flight: usize,
    stats: RouterStats,
}

pub(super) async fn run<C: Consumer>(
    shared: Arc<Shared>,
    consumer: C,
    stage: Option<Stage>,
    mut stop: watch::Receiver<bool>,
) -> Result<RouterStats, RouterError> {
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut runner = Runner {
        shared: shared.clone(),
        consumer,
        tracks: HashMap::new(),
        busy: HashMap::new(),
        stage,
        workers: JoinSet::new(),
        done_tx,
        done_rx,
        in_flight: 0,
        stats: RouterStats::default(),
    };
    let config = &shared.config;
    let mut tick = tokio::time::interval(config.commit_interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // A dropped handle is not a stop request: the router then runs until the process ends.
    let mut handle_alive = true;
    loop {
        let room = config.max_in_flight.saturating_sub(runner.in_flight);
        let gap_deadline = runner.stage.as_ref().and_then(Stage::next_deadline);
        tokio::select! {
            biased;
            changed = stop.changed(), if handle_alive => {
                match changed {
                    Ok(()) if *stop.borrow() => break,
                    Ok(()) => {}
                    Err(_) => handle_alive = false,
                }
            }
            Some(done) = runner.done_rx.recv() => runner.settle_all(done),
            Some(ended) = runner.workers.join_next(), if !runner.workers.is_empty() => {
                let key = ended.map_err(|e| RouterError::Task(e.to_string()))?;
                runner.retire(key);
            }
            _ = tokio::time::sleep_until(gap_deadline.unwrap_or_else(Instant::now)), if gap_deadline.is_some() => {
                runner.expire_gaps();
            }
            _ = tick.tick() => runner.commit().await,
            polled = runner.consumer.poll(config.poll_batch.min(room)), if room > 0 => {
                runner.dispatch(polled?).await?;
            }
        }
    }
    runner.drain().await;
    Ok(runner.stats)
}

impl<C: Consumer> Runner<C> {
    async fn dispatch(&mut self, records: Vec<ConsumedRecord>) -> Result<(), RouterError> {
        let assigned: HashSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
        self.forget_revoked(&assigned);
        if let Some(stage) = &mut self.stage {
            // Saved sequence state first, so an entity's records meet its numbering.
            stage.load(&assigned).await?;
        }
        let now = Instant::now();
        let mut decisions = Decisions::default();
        for record in records {
            let track = self.tracks.entry(record.topic_partition()).or_default();
            *track.pending.entry(record.offset).or_default() += 1;
            track.next = track.next.max(record.offset + 1);
            self.in_flight += 1;
            match &mut self.stage {
                Some(stage) => stage.offer(record, now, &mut decisions),
                None => self.enqueue((record, None)),
            }
        }
        self.apply(decisions);
        Ok(())
    }

    /// Gives up the sequence gaps that waited their timeout.
    fn expire_gaps(&mut self) {
        let mut decisions = Decisions::default();
        if let Some(stage) = &mut self.stage {
            stage.expire(Instant::now(), &mut decisions);
        }
        self.apply(decisions);
    }

    fn apply(&mut self, decisions: Decisions) {
        for job in decisions.queue {
            self.enqueue(job);
        }
        for (record, outcome) in decisions.settle {
            self.settle(&record.topic_partition(), record.offset, outcome);
        }
    }

    /// Queues `job` behind its key, starting the key's worker if it has none.
    fn enqueue(&mut self, job: Job) {
        let key = KeyId::of(&job.0);
        let job = match self.busy.get(&key) {
            Some(lane) => match lane.offer(job) {
                None => return,
                // The key's worker ended after its last job: start another.
                Some(job) => job,
            },
            None => job,
        };
        let lane = Arc::new(Lane::default());
        lane.lock().jobs.push_back(job);
        self.busy.insert(key.clone(), lane.clone());
        self.workers
            .spawn(work(self.shared.clone(), lane, key, self.done_tx.clone()));
    }

    /// Forgets the lane of a worker that ended, unless the key has a newer one.
    fn retire(&mut self, key: KeyId) {
        if self.busy.get(&key).is_some_and(|lane| lane.is_closed()) {
            self.busy.remove(&key);
        }
    }

    /// Settles `first` and every other outcome already reported.
    fn settle_all(&mut self, first: Done) {
        let mut next = Some(first);
        while let Some((tp, offset, outcome)) = next {
            self.settle(&tp, offset, outcome);
            next = self.done_rx.try_recv().ok();
        }
    }

    /// Drops what this member no longer owns: the tracks (their commits would be refused)
    /// and the records waiting that never started (the new owner reads them again).
    fn forget_revoked(&mut self, assigned: &HashSet<TopicPartition>) {
        self.tracks.retain(|tp, _| assigned.contains(tp));
        let mut dropped = 0;
        for (key, lane) in &self.busy {
            if !assigned.contains(&key.partition) {
                dropped += lane.clear();
            }
        }
        if let Some(stage) = &mut self.stage {
            dropped += stage.forget(|topic, partition| {
                !assigned.contains(&TopicPartition::new(topic, partition))
            });
        }
        self.in_flight -= dropped;
    }

    /// Counts a final outcome and lets its offset be committed.
    fn settle(&mut self, tp: &TopicPartition, offset: u64, outcome: Outcome) {
        self.in_flight -= 1;
        match outcome {
            Outcome::Handled => self.stats.handled += 1,
            Outcome::Duplicate => self.stats.duplicates += 1,
            Outcome::Skipped | Outcome::Control => self.stats.skipped += 1,
            Outcome::DeadLettered => self.stats.dead_lettered += 1,
            Outcome::Parked => self.stats.parked += 1,
        }
        if let Some(stage) = &mut self.stage {
            stage.settled(tp, offset);
        }
        if let Some(track) = self.tracks.get_mut(tp)
            && let Some(count) = track.pending.get_mut(&offset)
        {
            *count -= 1;
            if *count == 0 {
                track.pending.remove(&offset);
            }
        }
    }

    async fn commit(&mut self) {
        let offsets: Vec<CommitOffset> = self
            .tracks
            .iter()
            .filter_map(|(tp, t)| {
                t.committable().map(|offset| CommitOffset {
                    partition: tp.clone(),
                    offset,
                })
            })
            .collect();
        // Sequence state before offsets: what it says is final is final whether or not
        // the commit that follows lands.
        if let Some(stage) = &mut self.stage {
            let unsaved = stage.unsaved();
            if !unsaved.is_empty() {
                let mut by_topic: BTreeMap<String, Vec<_>> = BTreeMap::new();
                for (topic, record) in unsaved {
                    by_topic.entry(topic).or_default().push(record);
                }
                for (topic, records) in by_topic {
                    if let Err(e) = self.shared.publisher.publish_boxed(&topic, records).await {
                        tracing::warn!(group = %self.shared.group, topic, error = %e, "saving resequencer state failed; offsets not committed, will retry");
                        return;
                    }
                }
                stage.saved();
            }
        }
        if offsets.is_empty() {
            return;
        }
        match self.consumer.commit(&offsets).await {
            Ok(()) => {
                for c in offsets {
                    if let Some(t) = self.tracks.get_mut(&c.partition) {
                        t.committed = Some(c.offset);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(group = %self.shared.group, error = %e, "offset commit failed; will retry")
            }
        }
    }

    /// Lets running handlers finish (within the grace period), then commits.
    async fn drain(&mut self) {
        // Records waiting behind their key or for their predecessors never started:
        // leave them uncommitted.
        for lane in self.busy.values() {
            self.in_flight -= lane.clear();
        }
        if let Some(stage) = &mut self.stage {
            self.in_flight -= stage.drop_held();
        }
        let grace = self.shared.config.shutdown_grace;
        let finished = tokio::time::timeout(grace, async {
            loop {
                tokio::select! {
                    Some(done) = self.done_rx.recv() => self.settle_all(done),
                    ended = self.workers.join_next() => match ended {
                        None => break,
                        Some(Ok(_)) => {}
                        Some(Err(e)) => tracing::error!(error = %e, "router worker failed"),
                    },
                }
            }
        })
        .await;
        // Outcomes reported by workers that ended since the last receive.
        while let Ok((tp, offset, outcome)) = self.done_rx.try_recv() {
            self.settle(&tp, offset, outcome);
        }
        if finished.is_err() {
            tracing::warn!(
                group = %self.shared.group,
                running = self.workers.len(),
                "shutdown grace elapsed; abandoning running handlers (their events will be redelivered)"
            );
            self.workers.abort_all();
        }
        self.commit().await;
    }
}
