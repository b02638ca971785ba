//! Records as a client sees them: one to publish, one consumed, and the topic partition
//! each belongs to. Every SDK transport carries these, and the CloudEvents
//! [`Envelope`](crate::envelope::Envelope) maps onto them; inside a partition each is one
//! record of a v2 batch ([`crate::records`]).

use std::fmt;

use bytes::Bytes;

use crate::records::Header;

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
    /// The record's topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition::new(self.topic.clone(), self.partition)
    }
}
