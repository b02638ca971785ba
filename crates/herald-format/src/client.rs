//! Records as a client sees them: one to publish, one consumed, and the topic partition
//! each belongs to. Every SDK transport carries these, and the CloudEvents
//! [`Envelope`](crate::envelope::Envelope) maps onto them; inside a partition each is one
//! record of a v2 batch ([`crate::records`]).

use std::fmt;

use bytes::Bytes;

use crate::{
    partitioner::partition_for_key,
    records::{DecodedRecord, Header},
};

/// One partition of one topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition number, from 0.
    pub partition: u32,
}

impl TopicPartition {
    /// The partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: u32) -> Self {
        Self {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record to publish.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingRecord {
    /// Partition key; records with the same key go to the same partition, in order.
    /// Records without a key are spread round-robin.
    pub key: Option<Bytes>,
    /// Payload; `None` is a null value.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
    /// Timestamp in milliseconds since the epoch; `None` means now.
    pub timestamp: Option<i64>,
    /// An explicit partition, overriding the key's.
    pub partition: Option<u32>,
}

impl OutgoingRecord {
    /// The partition this record goes to in a topic of `count` partitions, as every SDK
    /// transport places it: its explicit partition, else its key's
    /// ([`partition_for_key`], Kafka's default partitioner), else `next_unkeyed()` (the
    /// transport's round robin) modulo `count`. `Err(p)` for an explicit partition the
    /// topic does not have.
    pub fn partition_in(&self, count: u32, next_unkeyed: impl FnOnce() -> u32) -> Result<u32, u32> {
        match (self.partition, &self.key) {
            (Some(p), _) if p >= count => Err(p),
            (Some(p), _) => Ok(p),
            (None, Some(key)) => Ok(partition_for_key(key, count)),
            (None, None) => Ok(next_unkeyed() % count.max(1)),
        }
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// Topic it was read from.
    pub topic: String,
    /// Partition it was read from.
    pub partition: u32,
    /// Its offset in that partition.
    pub offset: u64,
    /// Timestamp in milliseconds since the epoch.
    pub timestamp: i64,
    /// Key; `None` is null.
    pub key: Option<Bytes>,
    /// Value; `None` is null.
    pub value: Option<Bytes>,
    /// Headers in order.
    pub headers: Vec<Header>,
}

impl ConsumedRecord {
    /// Record `r`, decoded from a batch of partition `tp`.
    pub fn decoded(tp: &TopicPartition, r: DecodedRecord) -> Self {
        Self {
            topic: tp.topic.clone(),
            partition: tp.partition,
            offset: r.offset as u64,
            timestamp: r.timestamp,
            key: r.key.map(Into::into),
            value: r.value.map(Into::into),
            headers: r.headers,
        }
    }

    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_placed_by_partition_then_key_then_round_robin() {
        let explicit = OutgoingRecord {
            partition: Some(2),
            key: Some(Bytes::from_static(b"k")),
            ..OutgoingRecord::default()
        };
        assert_eq!(explicit.partition_in(3, || unreachable!()), Ok(2));
        assert_eq!(
            explicit.partition_in(2, || 0),
            Err(2),
            "no partition 2 of 2"
        );
        let keyed = OutgoingRecord {
            key: Some(Bytes::from_static(b"order-1")),
            ..OutgoingRecord::default()
        };
        assert_eq!(
            keyed.partition_in(6, || 0),
            Ok(partition_for_key(b"order-1", 6))
        );
        let unkeyed = OutgoingRecord::default();
        assert_eq!(unkeyed.partition_in(3, || 7), Ok(1));
    }
}
