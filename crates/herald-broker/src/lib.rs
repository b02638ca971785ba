//! herald-broker: a single-node Kafka-compatible broker on herald-log.
//!
//! - [`BrokerConfig`]: where the data lives, what to listen on, topic defaults. It
//!   deserialises from a configuration file (every field has a default).
//! - [`Broker::start`] opens the data directory, binds the Kafka listener and returns a
//!   [`BrokerHandle`]; [`BrokerHandle::shutdown`] stops gracefully.
//! - [`Broker`] is the core the listener serves and that embedders (the HTTP API, the
//!   CLI) use directly: [`TopicManager`] for topics, [`Broker::produce`] and
//!   [`Broker::read`] for records.
//!
//! Unmodified Kafka clients (librdkafka, kafka-python, aiokafka, Java) talk to it; the
//! APIs and versions it advertises are listed in `docs/protocol.md`.
//!
//! ```no_run
//! # async fn run() -> Result<(), herald_broker::BrokerError> {
//! use herald_broker::{Broker, BrokerConfig};
//!
//! let config = BrokerConfig::new("/tmp/herald-data", "127.0.0.1:0".parse().unwrap());
//! let handle = Broker::start(config).await?;
//! println!("Kafka clients connect to {}", handle.kafka_addr());
//! // ... serve until told to stop ...
//! handle.shutdown().await?;
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]

mod broker;
mod config;
mod connections;
mod error;
mod frame;
#[doc(hidden)] // why: for the fuzz target in fuzz/ and tests/decode_fuzz.rs only
pub mod fuzzing;
pub mod group;
mod handlers;
pub mod http;
mod listener;
mod partition;
mod producer_ids;
mod producer_state;
mod request_budget;
mod server;
mod store;
mod telemetry;
mod topic;
mod topic_config;
mod topics;
pub mod validation;

pub use broker::{Acks, Broker, Produced};
pub use config::{BrokerConfig, ListenerConfig, security_protocol};
pub use error::{BrokerError, ProduceError, ReadError, TopicError};
pub use handlers::sasl::{FAILED_AUTHENTICATION_DELAY, SaslConfig};
pub use server::BrokerHandle;
pub use topics::{NewTopic, Topic, TopicManager};
