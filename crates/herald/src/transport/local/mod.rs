//! The in-process engine shared by the memory and embedded transports: topics, keyed
//! partitioning, consumer groups and wake-ups. Only the storage differs between them.

mod consumer;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU32, Ordering},
    },
    time::SystemTime,
};

use tokio::sync::watch;

pub(crate) use consumer::LocalConsumer;

use super::{
    BoxFuture, ConsumedRecord, OutgoingRecord, RecordPosition, Result, TopicPartition,
    TransportError, validate_topic_name,
};

/// Committed offsets of one group.
pub(crate) type GroupOffsets = BTreeMap<TopicPartition, u64>;

/// Where records and committed offsets live. Calls are synchronous and short; an append
/// assigns offsets at once and returns a future that resolves when they are durable.
pub(crate) trait Storage: Send + Sync + 'static {
    /// Whether the storage bumps [`Engine::changes`] itself when appended records become
    /// readable (the embedded log does, from its high-watermark listener).
    const WAKES_READERS: bool;
    /// Topics that exist when the transport opens.
    fn load_topics(&self) -> Result<BTreeMap<String, u32>>;
    /// Creates a topic's partitions and records its metadata (`all` is every topic,
    /// including the new one).
    fn create_topic(&self, topic: &str, partitions: u32, all: &BTreeMap<String, u32>)
    -> Result<()>;
    /// Appends records to one partition, returning the first offset and a future that
    /// resolves once they are durable (and visible to readers).
    fn append(
        &self,
        partition: &TopicPartition,
        records: &[OutgoingRecord],
        now_ms: i64,
    ) -> Result<(u64, BoxFuture<'static, Result<()>>)>;
    /// Records from `offset` on: `max` of them when that many are readable, or fewer at
    /// the end of the partition. A storage that decodes whole batches may return more
    /// than `max` (the rest of the last batch it decoded) rather than decode it twice.
    fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max: usize,
    ) -> Result<Vec<ConsumedRecord>>;
    /// One past the last readable offset.
    fn end_offset(&self, partition: &TopicPartition) -> Result<u64>;
    /// First offset still stored (retention moves it forward).
    fn start_offset(&self, partition: &TopicPartition) -> Result<u64>;
    /// A group's committed offsets.
    fn load_offsets(&self, group: &str) -> Result<GroupOffsets>;
    /// Replaces a group's committed offsets.
    fn save_offsets(&self, group: &str, offsets: &GroupOffsets) -> Result<()>;
}

/// Settings shared by the in-process transports.
#[derive(Debug, Clone)]
pub(crate) struct EngineConfig {
    pub(crate) default_partitions: u32,
    pub(crate) auto_create_topics: bool,
}

pub(crate) struct Engine<S> {
    pub(crate) storage: S,
    config: EngineConfig,
    state: Mutex<EngineState>,
    /// Bumped whenever records become readable or a group changes; consumers wait on it.
    pub(crate) changes: Arc<watch::Sender<u64>>,
    round_robin: AtomicU32,
    /// Serialises offset saves so an older snapshot never overwrites a newer one.
    save_lock: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub(crate) struct EngineState {
    pub(crate) topics: BTreeMap<String, u32>,
    pub(crate) groups: HashMap<String, GroupState>,
    next_member: u64,
}

#[derive(Default)]
pub(crate) struct GroupState {
    /// Member id to its subscribed topics; ids grow in join order.
    pub(crate) members: BTreeMap<u64, Vec<String>>,
    pub(crate) committed: GroupOffsets,
    /// Injected redeliveries: the owner of the partition moves its position back here.
    pub(crate) rewinds: HashMap<TopicPartition, u64>,
}

impl EngineState {
    /// The partitions `member` owns: each topic's partitions dealt round-robin over the
    /// members subscribed to it, in join order.
    pub(crate) fn assignment(&self, group: &str, member: u64) -> Vec<TopicPartition> {
        let Some(g) = self.groups.get(group) else {
            return Vec::new();
        };
        let Some(mine) = g.members.get(&member) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for topic in mine {
            let Some(&count) = self.topics.get(topic) else {
                continue;
            };
            let subscribed: Vec<u64> = g
                .members
                .iter()
                .filter(|(_, topics)| topics.contains(topic))
                .map(|(id, _)| *id)
                .collect();
            let me = subscribed.iter().position(|id| *id == member).unwrap_or(0);
            out.extend(
                (0..count)
                    .filter(|p| *p as usize % subscribed.len() == me)
                    .map(|p| TopicPartition::new(topic.clone(), p)),
            );
        }
        out
    }
}

pub(crate) fn now_ms() -> i64 {
    crate::envelope::system_time_ms(SystemTime::now())
}

impl<S: Storage> Engine<S> {
    pub(crate) fn new(storage: S, config: EngineConfig) -> Result<Arc<Self>> {
        let (changes, _) = watch::channel(0);
        Self::with_changes(storage, config, Arc::new(changes))
    }

    /// An engine whose storage already holds the wake-up channel.
    pub(crate) fn with_changes(
        storage: S,
        config: EngineConfig,
        changes: Arc<watch::Sender<u64>>,
    ) -> Result<Arc<Self>> {
        let topics = storage.load_topics()?;
        Ok(Arc::new(Self {
            storage,
            config,
            state: Mutex::new(EngineState {
                topics,
                ..EngineState::default()
            }),
            changes,
            round_robin: AtomicU32::new(0),
            save_lock: tokio::sync::Mutex::new(()),
        }))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, EngineState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn notify(&self) {
        self.changes.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub(crate) fn create_topic(&self, topic: &str, partitions: u32) -> Result<u32> {
        validate_topic_name(topic)?;
        if partitions == 0 {
            return Err(TransportError::InvalidTopic {
                name: topic.to_owned(),
                reason: "a topic needs at least one partition",
            });
        }
        let mut state = self.lock();
        if let Some(&existing) = state.topics.get(topic) {
            if existing != partitions {
                return Err(TransportError::TopicExists {
                    topic: topic.to_owned(),
                    existing,
                    requested: partitions,
                });
            }
            return Ok(existing);
        }
        let mut all = state.topics.clone();
        all.insert(topic.to_owned(), partitions);
        self.storage.create_topic(topic, partitions, &all)?;
        state.topics = all;
        drop(state);
        // Members subscribed to a topic that did not exist yet now get its partitions.
        self.notify();
        Ok(partitions)
    }

    pub(crate) fn partitions(&self, topic: &str) -> Option<u32> {
        self.lock().topics.get(topic).copied()
    }

    fn partitions_or_create(&self, topic: &str) -> Result<u32> {
        match self.partitions(topic) {
            Some(n) => Ok(n),
            None if self.config.auto_create_topics => {
                match self.create_topic(topic, self.config.default_partitions) {
                    // Another publisher created it first with its own count.
                    Err(TransportError::TopicExists { existing, .. }) => Ok(existing),
                    other => other,
                }
            }
            None => Err(TransportError::UnknownTopic(topic.to_owned())),
        }
    }

    pub(crate) async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let count = self.partitions_or_create(topic)?;
        let mut targets = Vec::with_capacity(records.len());
        for r in &records {
            let next = || self.round_robin.fetch_add(1, Ordering::Relaxed);
            targets.push(r.partition_in(count, next).map_err(|partition| {
                TransportError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition,
                    partitions: count,
                }
            })?);
        }
        let now = now_ms();
        let mut positions = vec![
            RecordPosition {
                partition: 0,
                offset: 0
            };
            records.len()
        ];
        // One batch per partition, in publish order within it. The common case, every
        // record to one partition, appends the records as they came.
        let mut by_partition: BTreeMap<u32, (Vec<usize>, Vec<OutgoingRecord>)> = BTreeMap::new();
        if targets.windows(2).all(|w| w[0] == w[1]) {
            by_partition.insert(targets[0], ((0..records.len()).collect(), records));
        } else {
            for (i, (r, p)) in records.into_iter().zip(&targets).enumerate() {
                let (indexes, batch) = by_partition.entry(*p).or_default();
                indexes.push(i);
                batch.push(r);
            }
        }
        let mut pending = Vec::with_capacity(by_partition.len());
        for (p, (indexes, batch)) in by_partition {
            let tp = TopicPartition::new(topic, p);
            let (base, durable) = self.storage.append(&tp, &batch, now)?;
            for (n, i) in indexes.into_iter().enumerate() {
                positions[i] = RecordPosition {
                    partition: p,
                    offset: base + n as u64,
                };
            }
            pending.push(durable);
        }
        for durable in pending {
            durable.await?;
        }
        if !S::WAKES_READERS {
            self.notify();
        }
        Ok(positions)
    }

    pub(crate) fn check_partition(&self, tp: &TopicPartition) -> Result<()> {
        match self.partitions(&tp.topic) {
            None => Err(TransportError::UnknownTopic(tp.topic.clone())),
            Some(n) if tp.partition >= n => Err(TransportError::UnknownPartition {
                topic: tp.topic.clone(),
                partition: tp.partition,
                partitions: n,
            }),
            Some(_) => Ok(()),
        }
    }

    pub(crate) fn read(
        &self,
        tp: &TopicPartition,
        offset: u64,
        max: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        self.check_partition(tp)?;
        let end = self.storage.end_offset(tp)?;
        if offset > end {
            return Err(TransportError::OffsetOutOfRange {
                partition: tp.clone(),
                offset,
            });
        }
        let mut records = self.storage.read(tp, offset, max)?;
        records.truncate(max);
        Ok(records)
    }

    pub(crate) fn end_offset(&self, tp: &TopicPartition) -> Result<u64> {
        self.check_partition(tp)?;
        self.storage.end_offset(tp)
    }

    pub(crate) fn start_offset(&self, tp: &TopicPartition) -> Result<u64> {
        self.check_partition(tp)?;
        self.storage.start_offset(tp)
    }

    /// Adds a member to `group`, loading the group's committed offsets on first use.
    pub(crate) fn join(&self, group: &str, topics: &[&str]) -> Result<u64> {
        for t in topics {
            validate_topic_name(t)?;
        }
        let mut state = self.lock();
        if !state.groups.contains_key(group) {
            let committed = self.storage.load_offsets(group)?;
            state.groups.insert(
                group.to_owned(),
                GroupState {
                    committed,
                    ..GroupState::default()
                },
            );
        }
        state.next_member += 1;
        let id = state.next_member;
        let g = state.groups.get_mut(group).expect("inserted above");
        g.members
            .insert(id, topics.iter().map(|t| (*t).to_owned()).collect());
        drop(state);
        self.notify();
        Ok(id)
    }

    pub(crate) fn leave(&self, group: &str, member: u64) {
        if let Some(g) = self.lock().groups.get_mut(group) {
            g.members.remove(&member);
        }
        self.notify();
    }

    /// Records `offsets` for the partitions `member` owns and saves the group's offsets.
    pub(crate) async fn commit(
        self: &Arc<Self>,
        group: &str,
        member: u64,
        offsets: &[(TopicPartition, u64)],
    ) -> Result<()> {
        let _saving = self.save_lock.lock().await;
        let snapshot = {
            let mut state = self.lock();
            let owned = state.assignment(group, member);
            let Some(g) = state.groups.get_mut(group) else {
                return Ok(());
            };
            let mut changed = false;
            for (tp, offset) in offsets {
                if !owned.contains(tp) {
                    tracing::debug!(%group, partition = %tp, offset, "commit for a partition this member does not own; dropped");
                    continue;
                }
                changed |= g.committed.insert(tp.clone(), *offset) != Some(*offset);
            }
            if !changed {
                return Ok(());
            }
            g.committed.clone()
        };
        let engine = self.clone();
        let group = group.to_owned();
        tokio::task::spawn_blocking(move || engine.storage.save_offsets(&group, &snapshot))
            .await
            .map_err(|e| TransportError::Storage(format!("offset save task failed: {e}").into()))?
    }

    /// The group's committed offset for a partition, as this process knows it.
    pub(crate) fn committed(&self, group: &str, tp: &TopicPartition) -> Result<Option<u64>> {
        let mut state = self.lock();
        if let Some(g) = state.groups.get(group) {
            return Ok(g.committed.get(tp).copied());
        }
        let committed = self.storage.load_offsets(group)?;
        let found = committed.get(tp).copied();
        state.groups.insert(
            group.to_owned(),
            GroupState {
                committed,
                ..GroupState::default()
            },
        );
        Ok(found)
    }
}

/// Implements the transport traits for a handle type holding `engine: Arc<Engine<S>>`,
/// with `$consumer` as its public consumer type.
macro_rules! impl_local_transport {
    ($ty:ty, $storage:ty, $consumer:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug)]
        pub struct $consumer($crate::transport::local::LocalConsumer<$storage>);

        impl $crate::transport::Consumer for $consumer {
            async fn poll(
                &mut self,
                max_records: usize,
            ) -> $crate::transport::Result<Vec<$crate::transport::ConsumedRecord>> {
                self.0.poll(max_records).await
            }

            async fn commit(
                &mut self,
                offsets: &[$crate::transport::CommitOffset],
            ) -> $crate::transport::Result<()> {
                self.0.commit(offsets).await
            }

            fn assignment(&self) -> Vec<$crate::transport::TopicPartition> {
                self.0.assignment()
            }

            fn group(&self) -> &str {
                self.0.group()
            }
        }

        impl $crate::transport::Publisher for $ty {
            async fn publish(
                &self,
                topic: &str,
                records: Vec<$crate::transport::OutgoingRecord>,
            ) -> $crate::transport::Result<Vec<$crate::transport::RecordPosition>> {
                self.engine.publish(topic, records).await
            }
        }

        impl $crate::transport::Subscriber for $ty {
            type Consumer = $consumer;

            async fn subscribe(
                &self,
                group: &str,
                topics: &[&str],
            ) -> $crate::transport::Result<Self::Consumer> {
                $crate::transport::local::LocalConsumer::join(&self.engine, group, topics)
                    .map($consumer)
            }
        }

        impl $crate::transport::TopicReader for $ty {
            async fn partitions(&self, topic: &str) -> $crate::transport::Result<Option<u32>> {
                Ok(self.engine.partitions(topic))
            }

            async fn end_offset(
                &self,
                partition: &$crate::transport::TopicPartition,
            ) -> $crate::transport::Result<u64> {
                self.engine.end_offset(partition)
            }

            async fn start_offset(
                &self,
                partition: &$crate::transport::TopicPartition,
            ) -> $crate::transport::Result<u64> {
                self.engine.start_offset(partition)
            }

            async fn read(
                &self,
                partition: &$crate::transport::TopicPartition,
                offset: u64,
                max_records: usize,
            ) -> $crate::transport::Result<Vec<$crate::transport::ConsumedRecord>> {
                self.engine.read(partition, offset, max_records)
            }
        }

        impl $crate::transport::Admin for $ty {
            async fn create_topic(
                &self,
                topic: &str,
                partitions: u32,
            ) -> $crate::transport::Result<()> {
                self.engine.create_topic(topic, partitions).map(|_| ())
            }
        }
    };
}
pub(crate) use impl_local_transport;
