//! A member of an in-process consumer group.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    fmt,
    sync::Arc,
};

use tokio::sync::watch;

use super::{Engine, Storage};
use crate::transport::{CommitOffset, ConsumedRecord, Result, TopicPartition, TransportError};

/// One member of a group on an in-process engine. Leaves the group when dropped.
pub(crate) struct LocalConsumer<S: Storage> {
    engine: Arc<Engine<S>>,
    group: String,
    member: u64,
    /// Assigned partitions and the next offset to hand out from each.
    positions: BTreeMap<TopicPartition, u64>,
    /// Records read from storage but not handed out yet (the rest of a batch that held
    /// more than a poll asked for), starting at the partition's position.
    ahead: HashMap<TopicPartition, VecDeque<ConsumedRecord>>,
    changes: watch::Receiver<u64>,
    /// Where the next poll starts reading, so no partition starves the others.
    cursor: usize,
}

impl<S: Storage> fmt::Debug for LocalConsumer<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalConsumer")
            .field("group", &self.group)
            .field("member", &self.member)
            .field("positions", &self.positions)
            .finish()
    }
}

impl<S: Storage> LocalConsumer<S> {
    pub(crate) fn join(engine: &Arc<Engine<S>>, group: &str, topics: &[&str]) -> Result<Self> {
        let member = engine.join(group, topics)?;
        let mut consumer = Self {
            engine: engine.clone(),
            group: group.to_owned(),
            member,
            positions: BTreeMap::new(),
            ahead: HashMap::new(),
            changes: engine.changes.subscribe(),
            cursor: 0,
        };
        consumer.refresh();
        Ok(consumer)
    }

    /// Brings the assignment up to date: new partitions start at the committed offset,
    /// kept ones keep their position, injected rewinds apply.
    fn refresh(&mut self) {
        let mut state = self.engine.lock();
        let assigned = state.assignment(&self.group, self.member);
        let Some(g) = state.groups.get_mut(&self.group) else {
            self.positions.clear();
            self.ahead.clear();
            return;
        };
        let mut positions = BTreeMap::new();
        for tp in assigned {
            let position = match self.positions.get(&tp) {
                Some(p) => *p,
                None => g.committed.get(&tp).copied().unwrap_or(0),
            };
            positions.insert(tp, position);
        }
        for (tp, position) in positions.iter_mut() {
            if let Some(offset) = g.rewinds.remove(tp) {
                *position = offset;
                self.ahead.remove(tp);
            }
        }
        self.ahead.retain(|tp, _| positions.contains_key(tp));
        self.positions = positions;
    }

    pub(crate) async fn poll(&mut self, max_records: usize) -> Result<Vec<ConsumedRecord>> {
        let max_records = max_records.max(1);
        loop {
            // Mark the current version seen before looking, so a change that lands
            // while we read wakes the wait below.
            self.changes.borrow_and_update();
            self.refresh();
            let records = self.read_available(max_records)?;
            if !records.is_empty() {
                return Ok(records);
            }
            self.changes
                .changed()
                .await
                .map_err(|_| TransportError::Closed)?;
        }
    }

    fn read_available(&mut self, max_records: usize) -> Result<Vec<ConsumedRecord>> {
        let partitions: Vec<(TopicPartition, u64)> = self
            .positions
            .iter()
            .map(|(tp, p)| (tp.clone(), *p))
            .collect();
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let start = self.cursor % partitions.len();
        self.cursor = self.cursor.wrapping_add(1);
        let mut out = Vec::new();
        for i in 0..partitions.len() {
            let (tp, mut position) = partitions[(start + i) % partitions.len()].clone();
            let mut remaining = max_records - out.len();
            if remaining == 0 {
                break;
            }
            if let Some(ahead) = self.ahead.get_mut(&tp) {
                // Never empty while in the map, so this hands out at least one record.
                let take = remaining.min(ahead.len());
                out.extend(ahead.drain(..take));
                remaining -= take;
                let exhausted = ahead.is_empty();
                if exhausted {
                    self.ahead.remove(&tp);
                }
                if let Some(last) = out.last() {
                    position = last.offset + 1;
                    self.positions.insert(tp.clone(), position);
                }
                if !exhausted || remaining == 0 {
                    continue;
                }
            }
            let (tp, position) = (&tp, &position);
            let mut records = match self.engine.storage.read(tp, *position, remaining) {
                Err(TransportError::OffsetOutOfRange { .. }) => {
                    // Retention removed records this group had not read: resume from the
                    // partition's start (Kafka's auto.offset.reset=earliest).
                    let first = self.engine.storage.start_offset(tp)?;
                    if first <= *position {
                        return Err(TransportError::OffsetOutOfRange {
                            partition: tp.clone(),
                            offset: *position,
                        });
                    }
                    tracing::warn!(group = %self.group, partition = %tp, lost_from = *position, resume_at = first, "records were removed before this group read them");
                    self.positions.insert(tp.clone(), first);
                    self.engine.storage.read(tp, first, remaining)?
                }
                other => other?,
            };
            if records.len() > remaining {
                let rest = records.split_off(remaining);
                self.ahead.insert(tp.clone(), rest.into());
            }
            if let Some(last) = records.last() {
                self.positions.insert(tp.clone(), last.offset + 1);
            }
            out.extend(records);
        }
        Ok(out)
    }

    pub(crate) async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<()> {
        let offsets: Vec<(TopicPartition, u64)> = offsets
            .iter()
            .map(|c| (c.partition.clone(), c.offset))
            .collect();
        self.engine.commit(&self.group, self.member, &offsets).await
    }

    pub(crate) fn assignment(&self) -> Vec<TopicPartition> {
        self.engine.lock().assignment(&self.group, self.member)
    }

    pub(crate) fn group(&self) -> &str {
        &self.group
    }
}

impl<S: Storage> Drop for LocalConsumer<S> {
    fn drop(&mut self) {
        self.engine.leave(&self.group, self.member);
    }
}
