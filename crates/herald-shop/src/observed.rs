//! [`Observed`]: any transport, with the offsets each consumer group commits recorded,
//! so that the demo can report consumer lag on the embedded transport (which keeps its
//! committed offsets to itself). Built only on the SDK's public transport traits.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use herald::transport::{
    Admin, CommitOffset, ConsumedRecord, Consumer, OutgoingRecord, Publisher, RecordPosition,
    Result, Subscriber, TopicPartition, TopicReader,
};

type Commits = Arc<Mutex<HashMap<(String, TopicPartition), u64>>>;

/// A transport whose consumers report the offsets they commit. Cheap to clone; clones
/// share what was recorded.
#[derive(Debug, Clone)]
pub struct Observed<T> {
    inner: T,
    commits: Commits,
}

impl<T: TopicReader> Observed<T> {
    /// Wraps `inner`.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            commits: Arc::default(),
        }
    }

    /// The wrapped transport.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// The offset `group` last committed on `partition` through this transport.
    pub fn committed(&self, group: &str, partition: &TopicPartition) -> Option<u64> {
        self.commits
            .lock()
            .expect("commits lock")
            .get(&(group.to_owned(), partition.clone()))
            .copied()
    }

    /// Records of `topics` that `group` has not committed yet: the group's lag.
    pub async fn lag(&self, group: &str, topics: &[&str]) -> Result<u64> {
        let mut lag = 0;
        for topic in topics {
            let Some(partitions) = self.inner.partitions(topic).await? else {
                continue;
            };
            for p in 0..partitions {
                let tp = TopicPartition::new(*topic, p);
                let end = self.inner.end_offset(&tp).await?;
                let from = match self.committed(group, &tp) {
                    Some(offset) => offset,
                    None => self.inner.start_offset(&tp).await?,
                };
                lag += end.saturating_sub(from);
            }
        }
        Ok(lag)
    }
}

impl<T: Publisher> Publisher for Observed<T> {
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>> {
        self.inner.publish(topic, records).await
    }
}

impl<T: Subscriber> Subscriber for Observed<T> {
    type Consumer = ObservedConsumer<T::Consumer>;

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<Self::Consumer> {
        Ok(ObservedConsumer {
            inner: self.inner.subscribe(group, topics).await?,
            commits: self.commits.clone(),
        })
    }
}

impl<T: TopicReader> TopicReader for Observed<T> {
    async fn partitions(&self, topic: &str) -> Result<Option<u32>> {
        self.inner.partitions(topic).await
    }

    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64> {
        self.inner.end_offset(partition).await
    }

    async fn start_offset(&self, partition: &TopicPartition) -> Result<u64> {
        self.inner.start_offset(partition).await
    }

    async fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max_records: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        self.inner.read(partition, offset, max_records).await
    }
}

impl<T: Admin> Admin for Observed<T> {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        self.inner.create_topic(topic, partitions).await
    }
}

/// A group member of an [`Observed`] transport.
#[derive(Debug)]
pub struct ObservedConsumer<C> {
    inner: C,
    commits: Commits,
}

impl<C: Consumer> Consumer for ObservedConsumer<C> {
    async fn poll(&mut self, max_records: usize) -> Result<Vec<ConsumedRecord>> {
        self.inner.poll(max_records).await
    }

    async fn commit(&mut self, offsets: &[CommitOffset]) -> Result<()> {
        self.inner.commit(offsets).await?;
        let owned = self.inner.assignment();
        let mut commits = self.commits.lock().expect("commits lock");
        for c in offsets.iter().filter(|c| owned.contains(&c.partition)) {
            let slot = commits
                .entry((self.inner.group().to_owned(), c.partition.clone()))
                .or_insert(c.offset);
            *slot = (*slot).max(c.offset);
        }
        Ok(())
    }

    fn assignment(&self) -> Vec<TopicPartition> {
        self.inner.assignment()
    }

    fn group(&self) -> &str {
        self.inner.group()
    }
}
