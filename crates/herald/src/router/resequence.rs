//! The router's resequencing stage: between polling and the per-key queues, records of
//! resequenced topics wait for their predecessors.
//!
//! A held record is polled but not final, so the commit cannot pass it: a crash
//! redelivers it, and the next member resequences it again.
//!
//! What an entity has *finished* survives the member: for each entity the stage tracks
//! one past the highest number whose record reached a final outcome after being delivered
//! in order (the records of a key finish in delivery order, so every lower number is
//! final too), and writes it with the entity's remembered gaps to the state topic
//! `<topic>.<group>.seq` (keyed by entity, in the entity's partition) before the runner
//! commits offsets. A member assigned a partition reads that partition of the state topic
//! before handing over its records. docs/adr/0011-resequencer-state-topic.md.

use std::{
    collections::{HashMap, HashSet},
    ops::RangeInclusive,
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::process::Outcome;
use crate::{
    dlq::{dlq_topic, headers},
    envelope::system_time_ms,
    resequencer::{
        self, EntityKey, GapPolicy, GapReport, Released, Resequencer, ResequencerConfig,
        sequence_of,
    },
    transport::{
        Admin, BoxFuture, ConsumedRecord, OutgoingRecord, TopicPartition, TopicReader,
        TransportError, header_str,
    },
};

/// The state topic of `group` for the resequenced topic `topic`: `<topic>.<group>.seq`.
pub(crate) fn state_topic(topic: &str, group: &str) -> String {
    let dlq = dlq_topic(topic, group);
    format!("{}.seq", dlq.strip_suffix(".dlq").unwrap_or(&dlq))
}

/// One entity's saved state: the value of its record in the state topic (JSON).
#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    /// Every number below it is final.
    next: u64,
    /// Gaps given up on below `next`, oldest first, as `[first, last]`.
    gaps: Vec<(u64, u64)>,
    /// When it was written, in ms since the Unix epoch (idle entities are not restored).
    at: i64,
}

/// Creates and reads state topics.
pub(crate) trait StateReader: Send + Sync {
    /// Every record of `partition` of the state topic of `source`, creating the state
    /// topic (partitioned like `source`) if it does not exist.
    fn read_all<'a>(
        &'a self,
        source: &'a str,
        partition: TopicPartition,
    ) -> BoxFuture<'a, Result<Vec<ConsumedRecord>, TransportError>>;
}

impl<T: TopicReader + Admin> StateReader for T {
    fn read_all<'a>(
        &'a self,
        source: &'a str,
        partition: TopicPartition,
    ) -> BoxFuture<'a, Result<Vec<ConsumedRecord>, TransportError>> {
        Box::pin(async move {
            if self.partitions(&partition.topic).await?.is_none() {
                let Some(n) = self.partitions(source).await? else {
                    return Ok(Vec::new());
                };
                match self.create_topic(&partition.topic, n).await {
                    Ok(()) | Err(TransportError::TopicExists { .. }) => {}
                    Err(e) => return Err(e),
                }
                return Ok(Vec::new());
            }
            let mut at = self.start_offset(&partition).await?;
            let end = self.end_offset(&partition).await?;
            let mut out = Vec::new();
            while at < end {
                let records = self.read(&partition, at, 1024).await?;
                let Some(last) = records.last() else { break };
                at = last.offset + 1;
                out.extend(records);
            }
            Ok(out)
        })
    }
}

/// Called with every gap given up on; runs on the router's task, so it must be quick and
/// must not block.
pub(crate) type GapCallback = Arc<dyn Fn(&GapReport<EntityKey>) + Send + Sync>;

/// What the runner does with records that leave the stage.
#[derive(Default)]
pub(crate) struct Decisions {
    /// To the key queues, in this order: to be handled, or dead-lettered for the reason
    /// given.
    pub(crate) queue: Vec<(ConsumedRecord, Option<String>)>,
    /// Final without a handler.
    pub(crate) settle: Vec<(ConsumedRecord, Outcome)>,
}

/// One resequencer per resequenced topic.
pub(crate) struct Stage {
    group: Arc<str>,
    topics: HashMap<String, Resequencer<EntityKey, ConsumedRecord>>,
    on_gap: Option<GapCallback>,
    reader: Arc<dyn StateReader>,
    /// Records delivered in order and not final yet: their entity and number, by
    /// (topic, partition, offset).
    delivered: HashMap<(String, u32, u64), (EntityKey, u64)>,
    /// Per entity, one past its highest final number.
    finished: HashMap<EntityKey, u64>,
    /// Entities whose `finished` moved since the last save.
    dirty: HashSet<EntityKey>,
    /// Partitions whose saved state has been read.
    loaded: HashSet<TopicPartition>,
}

impl Stage {
    pub(crate) fn new(
        group: Arc<str>,
        configs: &HashMap<String, ResequencerConfig>,
        on_gap: Option<GapCallback>,
        reader: Arc<dyn StateReader>,
    ) -> Self {
        let topics = configs
            .iter()
            .map(|(topic, config)| (topic.clone(), Resequencer::new(config.clone())))
            .collect();
        Self {
            group,
            topics,
            on_gap,
            reader,
            delivered: HashMap::new(),
            finished: HashMap::new(),
            dirty: HashSet::new(),
            loaded: HashSet::new(),
        }
    }

    /// Reads the saved state of the resequenced partitions among `assigned` that this
    /// member has not read yet, before any of their records is offered.
    pub(crate) async fn load(
        &mut self,
        assigned: &HashSet<TopicPartition>,
    ) -> Result<(), TransportError> {
        let now = Instant::now();
        let now_ms = system_time_ms(std::time::SystemTime::now());
        for tp in assigned {
            if self.loaded.contains(tp) {
                continue;
            }
            let Some(buffer) = self.topics.get_mut(&tp.topic) else {
                continue;
            };
            let state = TopicPartition::new(state_topic(&tp.topic, &self.group), tp.partition);
            let mut latest: HashMap<bytes::Bytes, Saved> = HashMap::new();
            for record in self.reader.read_all(&tp.topic, state).await? {
                let (Some(key), Some(value)) = (record.key, record.value) else {
                    continue;
                };
                match serde_json::from_slice::<Saved>(&value) {
                    Ok(saved) => {
                        latest.insert(key, saved);
                    }
                    Err(e) => {
                        tracing::warn!(group = %self.group, topic = %record.topic, offset = record.offset, error = %e, "unreadable resequencer state record; ignored")
                    }
                }
            }
            let idle = buffer.config().forget_idle_after;
            for (key, saved) in latest {
                // An entity idle for longer is forgotten in memory too.
                let age = now_ms.saturating_sub(saved.at).max(0) as u128;
                if age >= idle.as_millis() {
                    continue;
                }
                let entity = EntityKey {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    key,
                };
                let gaps = saved.gaps.iter().map(|&(a, b)| a..=b).collect();
                if buffer.restore(entity.clone(), saved.next, gaps, now) {
                    self.finished.insert(entity, saved.next);
                }
            }
            self.loaded.insert(tp.clone());
        }
        Ok(())
    }

    /// A record reached its final outcome: if it was delivered in order, its entity has
    /// finished everything up to its number.
    pub(crate) fn settled(&mut self, tp: &TopicPartition, offset: u64) {
        let Some((entity, seq)) = self
            .delivered
            .remove(&(tp.topic.clone(), tp.partition, offset))
        else {
            return;
        };
        if !self.loaded.contains(tp) {
            return; // revoked meanwhile: the partition's new owner keeps its state
        }
        let finished = self.finished.entry(entity.clone()).or_insert(0);
        if seq.saturating_add(1) > *finished {
            *finished = seq.saturating_add(1);
            self.dirty.insert(entity);
        }
    }

    /// The state records to write before the next commit, by state topic; call
    /// [`saved`](Self::saved) once they are durable.
    pub(crate) fn unsaved(&self) -> Vec<(String, OutgoingRecord)> {
        let at = system_time_ms(std::time::SystemTime::now());
        self.dirty
            .iter()
            .filter_map(|entity| {
                let next = *self.finished.get(entity)?;
                let gaps: Vec<(u64, u64)> = self
                    .topics
                    .get(&entity.topic)?
                    .gaps(entity)
                    .into_iter()
                    .filter(|g: &RangeInclusive<u64>| *g.end() < next)
                    .map(|g| (*g.start(), *g.end()))
                    .collect();
                let value = serde_json::to_vec(&Saved { next, gaps, at }).ok()?;
                Some((
                    state_topic(&entity.topic, &self.group),
                    OutgoingRecord {
                        key: Some(entity.key.clone()),
                        value: Some(value.into()),
                        partition: Some(entity.partition),
                        ..OutgoingRecord::default()
                    },
                ))
            })
            .collect()
    }

    /// The records of [`unsaved`](Self::unsaved) are durable.
    pub(crate) fn saved(&mut self) {
        self.dirty.clear();
    }

    /// Passes `record` through, or holds it until its predecessors arrive.
    pub(crate) fn offer(&mut self, record: ConsumedRecord, now: Instant, out: &mut Decisions) {
        let Some(buffer) = self.topics.get_mut(&record.topic) else {
            return out.queue.push((record, None));
        };
        // Control records and replays are not part of the entity's stream: an operator
        // replaying a dead letter wants it handled, whatever its number.
        let bypass = header_str(&record.headers, headers::CONTROL).is_some()
            || header_str(&record.headers, headers::REPLAY_OF).is_some();
        let seq = match (&record.key, bypass) {
            (Some(_), false) => sequence_of(&record.headers),
            _ => None,
        };
        let (seq, key) = match (seq, &record.key) {
            (Some(Ok(seq)), Some(key)) => (seq, key.clone()),
            (Some(Err(e)), _) => {
                tracing::warn!(group = %self.group, topic = %record.topic, offset = record.offset, error = %e, "malformed sequence number; dead-lettering the event");
                return out.queue.push((record, Some(e.to_string())));
            }
            _ => return out.queue.push((record, None)),
        };
        let entity = EntityKey {
            topic: record.topic.clone(),
            partition: record.partition,
            key,
        };
        let released = buffer.push(entity, seq, record, now);
        let policy = buffer.config().policy;
        self.apply(released, policy, out);
    }

    /// Drops every held record at shutdown (they are not final: the next member reads
    /// them again) and keeps what is finished, for the last save; returns how many.
    pub(crate) fn drop_held(&mut self) -> usize {
        self.topics
            .values_mut()
            .map(|b| b.forget(|_| true).len())
            .sum()
    }

    /// Gives up the gaps that have waited their timeout.
    pub(crate) fn expire(&mut self, now: Instant, out: &mut Decisions) {
        let mut all = Vec::new();
        for buffer in self.topics.values_mut() {
            if buffer.next_deadline().is_some_and(|at| at <= now) {
                all.push((buffer.expire(now), buffer.config().policy));
            }
        }
        for (released, policy) in all {
            self.apply(released, policy, out);
        }
    }

    /// When [`expire`](Self::expire) next has work.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.topics.values().filter_map(|b| b.next_deadline()).min()
    }

    /// Forgets the entities of partitions `revoked` selects; returns how many held records
    /// were dropped (the partitions' new owners read them again).
    pub(crate) fn forget(&mut self, mut revoked: impl FnMut(&str, u32) -> bool) -> usize {
        self.loaded.retain(|tp| !revoked(&tp.topic, tp.partition));
        self.delivered.retain(|(t, p, _), _| !revoked(t, *p));
        self.finished.retain(|e, _| !revoked(&e.topic, e.partition));
        self.dirty.retain(|e| !revoked(&e.topic, e.partition));
        self.topics
            .values_mut()
            .map(|b| b.forget(|e| revoked(&e.topic, e.partition)).len())
            .sum()
    }

    fn apply(
        &mut self,
        released: Released<EntityKey, ConsumedRecord>,
        policy: GapPolicy,
        out: &mut Decisions,
    ) {
        for gap in &released.gaps {
            self.emit_gap(gap);
        }
        for record in released.deliver {
            if let (Some(key), Some(Ok(seq))) = (&record.key, sequence_of(&record.headers)) {
                let entity = EntityKey {
                    topic: record.topic.clone(),
                    partition: record.partition,
                    key: key.clone(),
                };
                self.delivered.insert(
                    (record.topic.clone(), record.partition, record.offset),
                    (entity, seq),
                );
            }
            out.queue.push((record, None));
        }
        for record in released.duplicates {
            tracing::debug!(group = %self.group, topic = %record.topic, offset = record.offset, "sequence number already delivered; dropped");
            self.count(resequencer::DUPLICATES, &record.topic);
            out.settle.push((record, Outcome::Duplicate));
        }
        for record in released.late {
            self.count(resequencer::LATE, &record.topic);
            let seq = sequence_of(&record.headers).and_then(Result::ok);
            let reason = format!(
                "sequence number {} arrived after its gap was given up on",
                seq.map_or_else(|| "?".to_owned(), |s| s.to_string())
            );
            match policy {
                GapPolicy::Skip => {
                    tracing::warn!(group = %self.group, topic = %record.topic, offset = record.offset, "{reason}; dropped");
                    out.settle.push((record, Outcome::Skipped));
                }
                GapPolicy::DeadLetter => {
                    tracing::warn!(group = %self.group, topic = %record.topic, offset = record.offset, "{reason}; dead-lettering the event");
                    out.queue.push((record, Some(reason)));
                }
            }
        }
    }

    /// The log line, the metric and the callback of one gap, together.
    fn emit_gap(&self, gap: &GapReport<EntityKey>) {
        let e = &gap.entity;
        tracing::warn!(
            group = %self.group,
            topic = %e.topic,
            partition = e.partition,
            key = %String::from_utf8_lossy(&e.key),
            missing_from = *gap.missing.start(),
            missing_to = *gap.missing.end(),
            reason = gap.reason.as_str(),
            released = gap.released,
            waited = ?gap.waited,
            "sequence gap given up on; delivery continues after it"
        );
        metrics::counter!(
            resequencer::GAPS,
            "group" => self.group.to_string(),
            "topic" => e.topic.clone(),
            "reason" => gap.reason.as_str(),
        )
        .increment(1);
        if let Some(on_gap) = &self.on_gap {
            on_gap(gap);
        }
    }

    fn count(&self, name: &'static str, topic: &str) {
        metrics::counter!(name, "group" => self.group.to_string(), "topic" => topic.to_owned())
            .increment(1);
    }
}
