//! herald-bench: workloads that drive Herald and its peers with the same load.
//!
//! Absolute numbers on a shared machine mean little and ratios against a peer measured
//! alongside mean a lot, so every benchmark here runs its contestants in one process,
//! interleaved, and reports medians and ratios (results: `docs/benchmarks.md`).
//!
//! The herald-log benchmark compares the log with the disk it runs on:
//!
//! - [`workload`]: the cases (record sizes, batch sizes, durability policies, writer
//!   counts), the pre-built batches, and the timed appends and reads against a [`Log`].
//! - [`disk`]: the same bytes through a plain [`std::fs::File`]: sequential writes with a
//!   `sync_data` per chunk, a write-and-`sync_data` loop, and sequential reads.
//! - [`stats`]: samples, medians and the markdown table of every case.
//! - [`summary`]: the two targets of the log, each run interleaved with its baseline.
//!
//! The broker benchmark ([`broker`], binary `broker-bench`) compares `herald serve`,
//! driven by librdkafka ([`kafka`]), with herald-log appending the very batches the broker
//! stored, and measures end-to-end latency ([`latency`]: HDR percentiles, paced
//! producers).
//!
//! The comparison suite ([`suite`], binary `herald-bench`, command line in [`cli`]) runs
//! one workload definition ([`target`]: the `Target`/`Producer`/`Consumer` traits and
//! the scenario drivers) against Herald over Kafka, herald-log direct and the [`peers`]
//! (NATS JetStream, Redis Streams, RabbitMQ; servers it starts itself live in [`child`]),
//! and renders markdown, JSON and an SVG chart ([`report`], [`chart`]).
//!
//! `cargo bench -p herald-bench --bench log` runs the log benchmark (criterion groups,
//! the table of medians, then the target check); `cargo run --release -p herald-bench
//! --bin log-bench-summary` runs only its target check.
//!
//! ```no_run
//! use herald_bench::{summary, workload::Scratch};
//!
//! let scratch = Scratch::new("target/tmp")?;
//! let report = summary::run(&scratch, &summary::SummaryConfig::default())?;
//! println!("{}", report.markdown());
//! # Ok::<(), herald_bench::BenchError>(())
//! ```
//!
//! [`Log`]: herald_log::Log
#![deny(missing_docs)]

pub mod broker;
pub mod chart;
pub mod child;
pub mod cli;
pub mod disk;
pub mod kafka;
pub mod latency;
pub mod peers;
pub mod report;
pub mod stats;
pub mod suite;
pub mod summary;
pub mod target;
pub mod workload;

use std::{io, path::PathBuf};

/// What stopped a benchmark.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// The log under test failed.
    #[error(transparent)]
    Log(#[from] herald_log::LogError),
    /// The in-process broker failed to start, create a topic or stop.
    #[error(transparent)]
    Broker(#[from] herald_broker::BrokerError),
    /// A system under test (or its client library) refused or failed an operation.
    #[error("{system}: {op}: {message}")]
    Client {
        /// Which system: `herald-kafka`, `nats`, `redis`, `rabbitmq`, ...
        system: String,
        /// What the benchmark asked of it.
        op: String,
        /// The client's error, as text.
        message: String,
    },
    /// A scenario did not finish within its bound (messages lost or a system stalled).
    #[error("{what}: not finished after {after:?}")]
    Timeout {
        /// What was waited for.
        what: String,
        /// How long.
        after: std::time::Duration,
    },
    /// A file operation of the benchmark itself (scratch directory, baseline file) failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the benchmark was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl BenchError {
    /// A [`BenchError::Client`] from any displayable client error.
    pub fn client(
        system: impl Into<String>,
        op: impl Into<String>,
        e: impl std::fmt::Display,
    ) -> Self {
        BenchError::Client {
            system: system.into(),
            op: op.into(),
            message: e.to_string(),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        BenchError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result of a benchmark operation.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;
