//! The router's resequencing stage: between polling and the per-key queues, records of
//! resequenced topics wait for their predecessors.
//!
//! A held record is polled but not final, so the commit cannot pass it: a crash
//! redelivers it, and the next member resequences it again.

use std::{collections::HashMap, sync::Arc};

use tokio::time::Instant;

use super::process::Outcome;
use crate::{
    dlq::headers,
    resequencer::{
        self, EntityKey, GapPolicy, GapReport, Released, Resequencer, ResequencerConfig,
        sequence_of,
    },
    transport::{ConsumedRecord, header_str},
};

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
}

impl Stage {
    pub(crate) fn new(
        group: Arc<str>,
        configs: &HashMap<String, ResequencerConfig>,
        on_gap: Option<GapCallback>,
    ) -> Self {
        let topics = configs
            .iter()
            .map(|(topic, config)| (topic.clone(), Resequencer::new(config.clone())))
            .collect();
        Self {
            group,
            topics,
            on_gap,
        }
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
        self.topics
            .values_mut()
            .map(|b| b.forget(|e| revoked(&e.topic, e.partition)).len())
            .sum()
    }

    fn apply(
        &self,
        released: Released<EntityKey, ConsumedRecord>,
        policy: GapPolicy,
        out: &mut Decisions,
    ) {
        for gap in &released.gaps {
            self.emit_gap(gap);
        }
        out.queue
            .extend(released.deliver.into_iter().map(|record| (record, None)));
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
