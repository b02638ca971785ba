//! herald-broker: a single-node Kafka-compatible broker on herald-log.
#![deny(missing_docs)]

pub mod group;
