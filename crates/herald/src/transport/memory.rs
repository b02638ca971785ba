//! A deterministic in-process transport for tests.
//!
//! Topics, partitions, keyed partitioning, consumer groups and committed offsets behave
//! like the embedded and Kafka transports, with nothing on disk. On top, a test can make
//! the transport misbehave the way real ones do: [`MemoryTransport::duplicate`] appends a
//! copy of a record (a producer retry), and [`MemoryTransport::redeliver`] moves a group
//! back to an offset (a consumer that crashed before committing).
//!
//! ```
//! use herald::transport::{memory::MemoryTransport, Consumer, OutgoingRecord, Publisher, Subscriber};
//!
//! # tokio_test_block(async {
//! let transport = MemoryTransport::new();
//! let record = OutgoingRecord { key: Some("k".into()), value: Some("v".into()), ..Default::default() };
//! transport.publish("orders", vec![record]).await?;
//! let mut consumer = transport.subscribe("billing", &["orders"]).await?;
//! let records = consumer.poll(10).await?;
//! assert_eq!(records[0].value.as_deref(), Some(&b"v"[..]));
//! # Ok::<(), herald::transport::TransportError>(())
//! # }).unwrap();
//! # fn tokio_test_block<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use super::{
    ConsumedRecord, OutgoingRecord, Result, TopicPartition, TransportError,
    local::{Engine, EngineConfig, GroupOffsets, Storage, impl_local_transport},
};

/// The in-memory transport. Clones share the same topics and groups.
#[derive(Clone)]
pub struct MemoryTransport {
    engine: Arc<Engine<MemoryStorage>>,
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport").finish_non_exhaustive()
    }
}

impl Default for MemoryTransport {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryTransport {
    /// A transport that creates unknown topics on first publish with one partition.
    pub fn new() -> Self {
        Self::with_default_partitions(1)
    }

    /// A transport that creates unknown topics on first publish with `partitions`
    /// partitions.
    pub fn with_default_partitions(partitions: u32) -> Self {
        let engine = Engine::new(
            MemoryStorage::default(),
            EngineConfig {
                default_partitions: partitions.max(1),
                auto_create_topics: true,
            },
        )
        .expect("memory storage cannot fail to open");
        Self { engine }
    }

    /// Appends a copy of the record at `offset` to the same partition, as a producer retry
    /// would after a lost acknowledgement. Returns the copy's offset.
    pub fn duplicate(&self, partition: &TopicPartition, offset: u64) -> Result<u64> {
        let record = self
            .engine
            .read(partition, offset, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| TransportError::OffsetOutOfRange {
                partition: partition.clone(),
                offset,
            })?;
        let copy = OutgoingRecord {
            key: record.key,
            value: record.value,
            headers: record.headers,
            timestamp: Some(record.timestamp),
            partition: Some(partition.partition),
        };
        let (new_offset, _) = self
            .engine
            .storage
            .append(partition, &[copy], record.timestamp)?;
        self.engine.notify();
        Ok(new_offset)
    }

    /// Makes `group` read `partition` again from `offset`, as if its member had crashed
    /// after processing without committing. Applies to the member that owns the
    /// partition at its next poll (or the next owner).
    pub fn redeliver(&self, group: &str, partition: &TopicPartition, offset: u64) -> Result<()> {
        self.engine.check_partition(partition)?;
        self.engine.committed(group, partition)?;
        if let Some(g) = self.engine.lock().groups.get_mut(group) {
            g.rewinds.insert(partition.clone(), offset);
        }
        self.engine.notify();
        Ok(())
    }

    /// Every record of `topic`, partition by partition.
    pub fn records(&self, topic: &str) -> Vec<ConsumedRecord> {
        let partitions = self.engine.partitions(topic).unwrap_or(0);
        (0..partitions)
            .flat_map(|p| {
                self.engine
                    .storage
                    .read(&TopicPartition::new(topic, p), 0, usize::MAX)
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The group's committed offset for `partition`.
    pub fn committed(&self, group: &str, partition: &TopicPartition) -> Option<u64> {
        self.engine.committed(group, partition).ok().flatten()
    }
}

impl_local_transport!(
    MemoryTransport,
    MemoryStorage,
    MemoryConsumer,
    "A consumer-group member of a [`MemoryTransport`]."
);

/// Records and offsets in memory.
#[derive(Default)]
pub(crate) struct MemoryStorage {
    partitions: Mutex<HashMap<TopicPartition, Vec<ConsumedRecord>>>,
    offsets: Mutex<HashMap<String, GroupOffsets>>,
}

impl Storage for MemoryStorage {
    const WAKES_READERS: bool = false;

    fn load_topics(&self) -> Result<BTreeMap<String, u32>> {
        Ok(BTreeMap::new())
    }

    fn create_topic(&self, topic: &str, partitions: u32, _: &BTreeMap<String, u32>) -> Result<()> {
        let mut all = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        for p in 0..partitions {
            all.entry(TopicPartition::new(topic, p)).or_default();
        }
        Ok(())
    }

    fn append(
        &self,
        partition: &TopicPartition,
        records: &[OutgoingRecord],
        now_ms: i64,
    ) -> Result<(u64, super::BoxFuture<'static, Result<()>>)> {
        let mut all = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        let log = all.entry(partition.clone()).or_default();
        let base = log.len() as u64;
        for (i, r) in records.iter().enumerate() {
            log.push(ConsumedRecord {
                topic: partition.topic.clone(),
                partition: partition.partition,
                offset: base + i as u64,
                timestamp: r.timestamp.unwrap_or(now_ms),
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r.headers.clone(),
            });
        }
        Ok((base, Box::pin(std::future::ready(Ok(())))))
    }

    fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        let all = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all
            .get(partition)
            .map(|log| {
                log.iter()
                    .skip(offset as usize)
                    .take(max)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn end_offset(&self, partition: &TopicPartition) -> Result<u64> {
        let all = self.partitions.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all.get(partition).map_or(0, |log| log.len() as u64))
    }

    fn start_offset(&self, _: &TopicPartition) -> Result<u64> {
        Ok(0)
    }

    fn load_offsets(&self, group: &str) -> Result<GroupOffsets> {
        let all = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
        Ok(all.get(group).cloned().unwrap_or_default())
    }

    fn save_offsets(&self, group: &str, offsets: &GroupOffsets) -> Result<()> {
        let mut all = self.offsets.lock().unwrap_or_else(|p| p.into_inner());
        all.insert(group.to_owned(), offsets.clone());
        Ok(())
    }
}
