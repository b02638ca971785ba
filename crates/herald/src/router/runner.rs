//! The router's loop: poll, keep per-key order, track which offsets are final, commit.

use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    sync::Arc,
};

use bytes::Bytes;
use tokio::{
    sync::watch,
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

struct Runner<C> {
    shared: Arc<Shared>,
    consumer: C,
    tracks: HashMap<TopicPartition, Track>,
    /// Keys with a record being processed, and the records waiting behind it.
    busy: HashMap<KeyId, VecDeque<Job>>,
    /// Records of resequenced topics waiting for their predecessors (polled, in flight).
    stage: Option<Stage>,
    workers: JoinSet<(KeyId, TopicPartition, u64, Outcome)>,
    in_flight: usize,
    stats: RouterStats,
}

pub(super) async fn run<C: Consumer>(
    shared: Arc<Shared>,
    consumer: C,
    stage: Option<Stage>,
    mut stop: watch::Receiver<bool>,
) -> Result<RouterStats, RouterError> {
    let mut runner = Runner {
        shared: shared.clone(),
        consumer,
        tracks: HashMap::new(),
        busy: HashMap::new(),
        stage,
        workers: JoinSet::new(),
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
            Some(done) = runner.workers.join_next(), if !runner.workers.is_empty() => {
                let done = done.map_err(|e| RouterError::Task(e.to_string()))?;
                runner.complete(done, true);
            }
            _ = tokio::time::sleep_until(gap_deadline.unwrap_or_else(Instant::now)), if gap_deadline.is_some() => {
                runner.expire_gaps();
            }
            _ = tick.tick() => runner.commit().await,
            polled = runner.consumer.poll(config.poll_batch.min(room)), if room > 0 => {
                runner.dispatch(polled?);
            }
        }
    }
    runner.drain().await;
    Ok(runner.stats)
}

impl<C: Consumer> Runner<C> {
    fn dispatch(&mut self, records: Vec<ConsumedRecord>) {
        let assigned: HashSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
        self.forget_revoked(&assigned);
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

    /// Starts `job` now, or queues it behind its key.
    fn enqueue(&mut self, job: Job) {
        let key = KeyId::of(&job.0);
        match self.busy.get_mut(&key) {
            Some(waiting) => waiting.push_back(job),
            None => {
                self.busy.insert(key.clone(), VecDeque::new());
                self.spawn(key, job);
            }
        }
    }

    /// Drops what this member no longer owns: the tracks (their commits would be refused)
    /// and the records waiting that never started (the new owner reads them again).
    fn forget_revoked(&mut self, assigned: &HashSet<TopicPartition>) {
        self.tracks.retain(|tp, _| assigned.contains(tp));
        let mut dropped = 0;
        for (key, waiting) in self.busy.iter_mut() {
            if !assigned.contains(&key.partition) {
                dropped += waiting.len();
                waiting.clear();
            }
        }
        if let Some(stage) = &mut self.stage {
            dropped += stage.forget(|topic, partition| {
                !assigned.contains(&TopicPartition::new(topic, partition))
            });
        }
        self.in_flight -= dropped;
    }

    fn spawn(&mut self, key: KeyId, (record, reject): Job) {
        let shared = self.shared.clone();
        self.workers.spawn(async move {
            let partition = record.topic_partition();
            let offset = record.offset;
            let outcome = process::process(shared, record, reject).await;
            (key, partition, offset, outcome)
        });
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
        if let Some(track) = self.tracks.get_mut(tp)
            && let Some(count) = track.pending.get_mut(&offset)
        {
            *count -= 1;
            if *count == 0 {
                track.pending.remove(&offset);
            }
        }
    }

    /// Records a final outcome and starts the key's next record (unless stopping).
    fn complete(
        &mut self,
        (key, tp, offset, outcome): (KeyId, TopicPartition, u64, Outcome),
        go_on: bool,
    ) {
        self.settle(&tp, offset, outcome);
        match self.busy.get_mut(&key).and_then(VecDeque::pop_front) {
            Some(job) if go_on => self.spawn(key, job),
            popped => {
                let waiting = self.busy.remove(&key).map_or(0, |w| w.len());
                self.in_flight -= waiting + usize::from(popped.is_some());
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
        for waiting in self.busy.values_mut() {
            self.in_flight -= waiting.len();
            waiting.clear();
        }
        if let Some(stage) = &mut self.stage {
            self.in_flight -= stage.forget(|_, _| true);
        }
        let grace = self.shared.config.shutdown_grace;
        let finished = tokio::time::timeout(grace, async {
            while let Some(done) = self.workers.join_next().await {
                match done {
                    Ok(done) => self.complete(done, false),
                    Err(e) => tracing::error!(error = %e, "router worker failed"),
                }
            }
        })
        .await;
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
