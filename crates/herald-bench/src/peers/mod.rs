//! The systems Herald is compared with, each behind [`Target`](crate::target::Target):
//! NATS JetStream, Redis Streams, RabbitMQ, and herald-log direct (herald-log driven in
//! process by a bench-only client, not the SDK's embedded transport).
//! Herald over the Kafka protocol is [`crate::kafka::HeraldKafka`].
//!
//! Every client that is async inside gets its own small runtime; the benchmark's
//! producer and consumer threads block on it, so all targets are driven by the same
//! plain-thread drivers of [`crate::target`].

pub mod log_direct;
pub mod nats;
pub mod rabbitmq;
pub mod redis;

use crate::{BenchError, Result};

/// Most consumer groups a scenario creates on one stream (the fan-out scenario's four).
pub const MAX_GROUPS: usize = 4;

/// A two-thread runtime for one client library.
pub(crate) fn runtime(name: &str) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("bench-{name}"))
        .enable_all()
        .build()
        .map_err(|e| BenchError::io("start runtime", name, e))
}
