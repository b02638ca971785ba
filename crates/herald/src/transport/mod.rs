//! Transports: how records reach a topic and come back to a consumer group.
//!
//! The SDK talks to a log-based broker through four small traits, so the same router runs
//! on the in-process [`memory`] transport in tests, on the [`embedded`] herald-log
//! transport on one machine, and on a Kafka client when an application outgrows it:
//!
//! - [`Publisher`]: append keyed records to a topic, learn their partition and offset.
//! - [`Subscriber`]: join a consumer group on some topics; the returned [`Consumer`] polls
//!   records of the partitions assigned to it and commits offsets per partition.
//! - [`TopicReader`]: read any partition from any offset, outside any group (DLQ tools).
//! - [`Admin`]: create topics with a partition count.
//!
//! The `kafka` transport (cargo feature `kafka`, on by default) implements the same
//! traits on librdkafka, against `herald serve`, Apache Kafka or Redpanda.
//!
//! [`Transport`] is all four, implemented for every type that implements them.
//!
//! Keyed records go to `murmur2(key) mod partitions`, Kafka's default partitioner
//! ([`partition_for_key`]), so a key lands on the same partition whichever transport
//! (or Kafka client) published it.

pub mod embedded;
#[cfg(feature = "kafka")]
pub mod kafka;
mod local;
pub mod memory;

use std::{future::Future, pin::Pin, sync::Arc};

use thiserror::Error;

pub use herald_format::{
    Header,
    client::{ConsumedRecord, OutgoingRecord, TopicPartition},
    partitioner::{murmur2, partition_for_key},
    records::header_str,
};

/// A boxed future, for the object-safe corners of the API.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where a published record landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordPosition {
    /// Partition it was appended to.
    pub partition: u32,
    /// Offset it was given.
    pub offset: u64,
}

/// An offset to commit: the next offset the group should read from `partition`, i.e. one
/// past the last record whose outcome is final (Kafka's convention).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CommitOffset {
    /// The partition.
    pub partition: TopicPartition,
    /// Next offset to read.
    pub offset: u64,
}

/// What went wrong in a transport operation.
#[derive(Debug, Error, Clone)]
#[non_exhaustive]
pub enum TransportError {
    /// The topic does not exist (and the transport does not create topics on publish).
    #[error("topic {0:?} does not exist")]
    UnknownTopic(String),
    /// A record names a partition the topic does not have.
    #[error("topic {topic:?} has {partitions} partitions; there is no partition {partition}")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many the topic has.
        partitions: u32,
    },
    /// A topic name Kafka would refuse.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopic {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A topic exists with another partition count.
    #[error("topic {topic:?} already exists with {existing} partitions, not {requested}")]
    TopicExists {
        /// The topic.
        topic: String,
        /// Its partition count.
        existing: u32,
        /// The count asked for.
        requested: u32,
    },
    /// A read asked for an offset the partition does not have.
    #[error("offset {offset} is out of range for {partition}")]
    OffsetOutOfRange {
        /// The partition.
        partition: TopicPartition,
        /// The offset asked for.
        offset: u64,
    },
    /// The storage under the transport failed (I/O, corruption, a poisoned log).
    #[error("storage error: {0}")]
    Storage(Arc<str>),
    /// The transport was shut down.
    #[error("the transport is closed")]
    Closed,
    /// A Kafka client request failed (the `kafka` transport): the broker refused it, it
    /// timed out, or the client configuration is wrong.
    #[error("{operation}: {message}")]
    Kafka {
        /// What the transport was doing, e.g. `publishing to orders`.
        operation: Arc<str>,
        /// The client's description of the failure, with the Kafka error name.
        message: Arc<str>,
    },
}

/// Result alias for transport operations.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Appends records to topics.
pub trait Publisher: Send + Sync + 'static {
    /// Appends `records` to `topic` and returns where each landed, in input order, once
    /// they are durable by the transport's standard. Records for one partition keep their
    /// order; the whole call either succeeds or reports an error.
    fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> impl Future<Output = Result<Vec<RecordPosition>>> + Send;
}

/// Publishing envelopes, for every [`Publisher`].
pub trait PublisherExt: Publisher {
    /// Publishes one envelope, keyed by its partition key. With the `otel` feature, an
    /// envelope without a `traceparent` gets the current span's OpenTelemetry context.
    fn publish_envelope(
        &self,
        topic: &str,
        envelope: &crate::Envelope,
    ) -> impl Future<Output = Result<RecordPosition>> + Send {
        async move {
            // Built when first polled, so a span the future runs in (`.instrument`) is
            // the current one.
            let record = record_of(envelope);
            let positions = self.publish(topic, vec![record]).await?;
            Ok(positions[0])
        }
    }

    /// Publishes envelopes in order (per partition) in one call (with the `otel` feature,
    /// each without a `traceparent` gets the current span's context).
    fn publish_envelopes(
        &self,
        topic: &str,
        envelopes: &[crate::Envelope],
    ) -> impl Future<Output = Result<Vec<RecordPosition>>> + Send {
        async move {
            let records = envelopes.iter().map(record_of).collect();
            self.publish(topic, records).await
        }
    }
}

impl<P: Publisher> PublisherExt for P {}

/// The record of an envelope, traced by the current span when `otel` is on.
fn record_of(envelope: &crate::Envelope) -> OutgoingRecord {
    #[cfg(feature = "otel")]
    return crate::otel::record_of(envelope);
    #[cfg(not(feature = "otel"))]
    envelope.to_record()
}

/// Joins consumer groups.
pub trait Subscriber: Send + Sync + 'static {
    /// The group member this transport hands out.
    type Consumer: Consumer;

    /// Joins `group` as a new member subscribed to `topics`. The group's partitions of
    /// those topics are spread over its members; a member reads each of its partitions
    /// from the group's committed offset (or the start of the partition if none).
    fn subscribe(
        &self,
        group: &str,
        topics: &[&str],
    ) -> impl Future<Output = Result<Self::Consumer>> + Send;
}

/// One member of a consumer group. Dropping it leaves the group without committing:
/// whatever it read after its last commit is delivered again to the next owner.
pub trait Consumer: Send + 'static {
    /// Waits until records are available on an assigned partition and returns up to
    /// `max_records` of them, in offset order per partition. Cancel-safe: a poll that
    /// is dropped before it returns consumes nothing.
    fn poll(
        &mut self,
        max_records: usize,
    ) -> impl Future<Output = Result<Vec<ConsumedRecord>>> + Send;

    /// Commits offsets for the group. Commits for partitions this member does not own
    /// any more are dropped: their new owner resumes from the last commit that counted.
    fn commit(&mut self, offsets: &[CommitOffset]) -> impl Future<Output = Result<()>> + Send;

    /// The partitions currently assigned to this member.
    fn assignment(&self) -> Vec<TopicPartition>;

    /// The consumer group's name.
    fn group(&self) -> &str;
}

/// Reads partitions directly, outside any consumer group.
pub trait TopicReader: Send + Sync + 'static {
    /// The topic's partition count, or `None` if it does not exist.
    fn partitions(&self, topic: &str) -> impl Future<Output = Result<Option<u32>>> + Send;

    /// One past the last readable offset of a partition.
    fn end_offset(&self, partition: &TopicPartition) -> impl Future<Output = Result<u64>> + Send;

    /// First offset still in a partition (retention and deletes move it forward).
    fn start_offset(&self, partition: &TopicPartition) -> impl Future<Output = Result<u64>> + Send;

    /// Up to `max_records` records from `offset` on (fewer at the end of the partition).
    fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max_records: usize,
    ) -> impl Future<Output = Result<Vec<ConsumedRecord>>> + Send;
}

/// Manages topics.
pub trait Admin: Send + Sync + 'static {
    /// Creates `topic` with `partitions` partitions; succeeds if it already exists with
    /// that many.
    fn create_topic(&self, topic: &str, partitions: u32)
    -> impl Future<Output = Result<()>> + Send;
}

/// Everything the SDK needs from a transport. Implemented for every type that has the
/// four parts; transports are cheap handles, so it is also `Clone`.
pub trait Transport: Publisher + Subscriber + TopicReader + Admin + Clone {}

impl<T: Publisher + Subscriber + TopicReader + Admin + Clone> Transport for T {}

/// An object-safe [`Publisher`], for handler contexts that must not be generic.
pub trait DynPublisher: Send + Sync {
    /// [`Publisher::publish`], boxed.
    fn publish_boxed<'a>(
        &'a self,
        topic: &'a str,
        records: Vec<OutgoingRecord>,
    ) -> BoxFuture<'a, Result<Vec<RecordPosition>>>;
}

impl<P: Publisher> DynPublisher for P {
    fn publish_boxed<'a>(
        &'a self,
        topic: &'a str,
        records: Vec<OutgoingRecord>,
    ) -> BoxFuture<'a, Result<Vec<RecordPosition>>> {
        Box::pin(self.publish(topic, records))
    }
}

/// Checks a topic name against Kafka's rules: 1 to 249 characters of `[A-Za-z0-9._-]`,
/// and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |reason| {
        Err(TransportError::InvalidTopic {
            name: name.to_owned(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 249 {
        return invalid("it is longer than 249 characters");
    }
    if name == "." || name == ".." {
        return invalid("'.' and '..' are reserved");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return invalid("only ASCII letters, digits, '.', '_' and '-' are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        for good in ["orders", "orders.billing.dlq", "a_b-c.9", &"x".repeat(249)] {
            validate_topic_name(good).unwrap();
        }
        for bad in ["", ".", "..", "orders/1", "ordérs", "a b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
