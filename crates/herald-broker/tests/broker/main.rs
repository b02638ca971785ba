//! Integration tests of the broker over the Kafka wire protocol, with a raw client built
//! on kafka-protocol's client-side encoders. Every test starts its own broker on
//! 127.0.0.1:0 with a temporary data directory.

#[path = "../common/mod.rs"]
mod common;

// ApiVersions, framing, malformed and unsupported requests.
mod protocol;
// Produce and Fetch: round trips, long polls, limits, validation.
mod produce_fetch;
// ListOffsets and Metadata.
mod offsets_metadata;
// CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs, IncrementalAlterConfigs,
// DeleteRecords.
mod admin;
// Consumer-group APIs through the dispatcher.
mod groups;
// InitProducerId and idempotent-producer sequence checks.
mod idempotence;
// Restarts and graceful shutdown.
mod restart;
