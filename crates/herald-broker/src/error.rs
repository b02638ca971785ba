//! Typed errors of broker operations, and the Kafka error code each one becomes at the
//! wire.

use std::{io, net::SocketAddr, path::PathBuf};

use herald_format::batch::BatchError;
use herald_log::LogError;
use kafka_protocol::ResponseError;
use thiserror::Error;

use crate::producer_state::SequenceError;

/// Errors of starting, running and stopping the broker.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// The configuration is not usable.
    #[error("invalid broker configuration: {0}")]
    Config(String),
    /// The Kafka listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A file operation on the broker's own files failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the broker was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// One of the broker's own files cannot be understood.
    #[error("damaged broker file {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A partition log failed.
    #[error("partition {topic}-{partition}: {source}")]
    Log {
        /// Topic of the partition.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The log's error.
        #[source]
        source: LogError,
    },
    /// The group coordinator failed to open or close.
    #[error("group coordinator: {0}")]
    Groups(String),
    /// A background task panicked or was cancelled.
    #[error("broker task failed: {0}")]
    Task(String),
}

/// Why a topic operation (create, delete, add partitions, alter configs) failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The name breaks Kafka's rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// A topic of that name exists.
    #[error("topic {0:?} already exists")]
    AlreadyExists(String),
    /// No topic of that name.
    #[error("unknown topic {0:?}")]
    Unknown(String),
    /// A partition count that cannot be used.
    #[error("invalid partition count: {0}")]
    InvalidPartitions(String),
    /// A replication factor other than 1 (or -1 for the default).
    #[error("replication factor must be 1 on a single broker, got {0}")]
    InvalidReplicationFactor(i16),
    /// A replica assignment naming another broker.
    #[error("invalid replica assignment: {0}")]
    InvalidReplicaAssignment(String),
    /// A configuration key or value that is refused.
    #[error("invalid config: {0}")]
    InvalidConfig(String),
    /// The broker failed to store the change.
    #[error(transparent)]
    Storage(#[from] BrokerError),
}

impl TopicError {
    /// The Kafka error code for this error.
    pub fn kafka_code(&self) -> i16 {
        match self {
            TopicError::InvalidName { .. } => ResponseError::InvalidTopicException.code(),
            TopicError::AlreadyExists(_) => ResponseError::TopicAlreadyExists.code(),
            TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition.code(),
            TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions.code(),
            TopicError::InvalidReplicationFactor(_) => {
                ResponseError::InvalidReplicationFactor.code()
            }
            TopicError::InvalidReplicaAssignment(_) => {
                ResponseError::InvalidReplicaAssignment.code()
            }
            TopicError::InvalidConfig(_) => ResponseError::InvalidConfig.code(),
            TopicError::Storage(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

/// Why a batch was not appended to a partition.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// No such topic or partition.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// The topic asked for.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// The bytes are not one valid v2 record batch (framing, magic, CRC).
    #[error("corrupt record batch: {0}")]
    Corrupt(#[source] BatchError),
    /// More than one batch, or none, in one partition's records.
    #[error("a produce request must carry exactly one record batch per partition, got {0}")]
    BatchCount(usize),
    /// A control or transactional batch; Herald has no transactions.
    #[error("transactional and control batches are not supported")]
    Transactional,
    /// The batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds max.message.bytes = {max}")]
    TooLarge {
        /// Size of the batch.
        size: usize,
        /// The topic's limit.
        max: u32,
    },
    /// The idempotent-producer sequence check failed.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// A producer id this broker never handed out.
    #[error("unknown producer id {0}")]
    UnknownProducerId(i64),
    /// The log failed to write or sync.
    #[error("storage error: {0}")]
    Storage(#[source] LogError),
    /// A record of a topic with schema validation on does not carry a schema id
    /// registered under the topic's subject (see [`crate::validation`]).
    #[error("schema validation failed: {0}")]
    SchemaValidation(String),
    /// The records had to be read (for the topic's `compression.type` or timestamp
    /// bounds) and could not be: they do not decode, or the codec failed.
    #[error("cannot read the batch's records: {0}")]
    Records(#[source] herald_format::records::RecordError),
    /// A record's timestamp is outside the topic's KIP-937 bounds.
    #[error("{0}")]
    InvalidTimestamp(String),
    /// The principal may not WRITE to the topic (its ACLs); nothing was written.
    #[error("{principal} is not allowed to WRITE to topic {topic:?} (its ACLs)")]
    TopicAuthorizationFailed {
        /// The topic asked for.
        topic: String,
        /// Who asked.
        principal: String,
    },
    /// acks=all to a topic whose `min.insync.replicas` exceeds the replicas in sync.
    #[error(
        "min.insync.replicas is {required} but {in_sync} replica is in sync (Herald keeps one \
         per partition): produce with acks=1, or set the topic's min.insync.replicas to 1"
    )]
    NotEnoughReplicas {
        /// Replicas in sync.
        in_sync: i64,
        /// The topic's `min.insync.replicas`.
        required: i64,
    },
}

impl ProduceError {
    /// The Kafka error code for this error, for a Produce response of `version`.
    pub fn kafka_code(&self, version: i16) -> i16 {
        match self {
            ProduceError::UnknownTopicOrPartition { .. } => {
                ResponseError::UnknownTopicOrPartition.code()
            }
            ProduceError::Corrupt(_) => ResponseError::CorruptMessage.code(),
            // INVALID_RECORD arrived with Produce v8; older clients know only CORRUPT_MESSAGE.
            ProduceError::BatchCount(_)
            | ProduceError::Transactional
            | ProduceError::Records(_)
                if version >= 8 =>
            {
                ResponseError::InvalidRecord.code()
            }
            ProduceError::BatchCount(_)
            | ProduceError::Transactional
            | ProduceError::Records(_) => ResponseError::CorruptMessage.code(),
            ProduceError::TooLarge { .. } => ResponseError::MessageTooLarge.code(),
            ProduceError::Sequence(SequenceError::StaleEpoch { .. }) => {
                ResponseError::InvalidProducerEpoch.code()
            }
            ProduceError::Sequence(_) => ResponseError::OutOfOrderSequenceNumber.code(),
            ProduceError::UnknownProducerId(_) => ResponseError::UnknownProducerId.code(),
            ProduceError::Storage(LogError::InvalidBatch { .. }) => {
                ResponseError::CorruptMessage.code()
            }
            ProduceError::Storage(LogError::BatchTooLarge { .. }) => {
                ResponseError::MessageTooLarge.code()
            }
            ProduceError::Storage(_) => ResponseError::KafkaStorageError.code(),
            ProduceError::InvalidTimestamp(_) => ResponseError::InvalidTimestamp.code(),
            ProduceError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas.code(),
            ProduceError::TopicAuthorizationFailed { .. } => {
                ResponseError::TopicAuthorizationFailed.code()
            }
            // Confluent's broker-side validation answers INVALID_RECORD (87).
            ProduceError::SchemaValidation(_) => ResponseError::InvalidRecord.code(),
        }
    }
}

/// Why a read from a partition failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ReadError {
    /// No such topic or partition.
    #[error("unknown topic or partition {topic}-{partition}")]
    UnknownTopicOrPartition {
        /// The topic asked for.
        topic: String,
        /// The partition asked for.
        partition: i32,
    },
    /// The offset is before the log start or after the high watermark.
    #[error(transparent)]
    OffsetOutOfRange(LogError),
    /// The log failed.
    #[error("storage error: {0}")]
    Storage(#[source] LogError),
}

impl ReadError {
    /// The Kafka error code for this error.
    pub fn kafka_code(&self) -> i16 {
        match self {
            ReadError::UnknownTopicOrPartition { .. } => {
                ResponseError::UnknownTopicOrPartition.code()
            }
            ReadError::OffsetOutOfRange(_) => ResponseError::OffsetOutOfRange.code(),
            ReadError::Storage(_) => ResponseError::KafkaStorageError.code(),
        }
    }
}

impl From<LogError> for ReadError {
    fn from(e: LogError) -> Self {
        match e {
            e @ LogError::OffsetOutOfRange { .. } => ReadError::OffsetOutOfRange(e),
            e => ReadError::Storage(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A blocking task that did not finish and a wait that gave up are storage errors to
    /// a client, as they were when they were dressed as I/O errors, and say what happened.
    #[test]
    fn join_and_timeout_failures_are_storage_errors_that_name_the_operation() {
        let join = ProduceError::Storage(LogError::TaskJoin {
            op: "append a produced batch",
            reason: "task 7 panicked".into(),
        });
        let timeout = ProduceError::Storage(LogError::Timeout {
            op: "wait for the original of a retried batch to become durable",
            after: Duration::from_secs(30),
        });
        for e in [&join, &timeout] {
            assert_eq!(e.kafka_code(9), ResponseError::KafkaStorageError.code());
        }
        assert_eq!(
            join.to_string(),
            "storage error: append a produced batch: the task running it did not finish: task \
             7 panicked"
        );
        assert_eq!(
            timeout.to_string(),
            "storage error: wait for the original of a retried batch to become durable: timed \
             out after 30s"
        );
        let read = ReadError::from(LogError::TaskJoin {
            op: "read a partition",
            reason: "task 8 was cancelled".into(),
        });
        assert_eq!(read.kafka_code(), ResponseError::KafkaStorageError.code());
    }
}
