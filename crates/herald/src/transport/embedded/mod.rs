//! The embedded transport: herald-log in process, no broker.
//!
//! A data directory holds
//!
//! ```text
//! <dir>/topics.meta                 topic names and partition counts (checksummed file)
//! <dir>/topics/<topic>-<p>/         one herald-log Log per topic-partition
//! <dir>/groups/<group>.offsets      a consumer group's committed offsets (checksummed file)
//! ```
//!
//! Records are stored as real Kafka v2 batches built with herald-format's `BatchBuilder`, one
//! batch per partition per publish call, so the same bytes could be served by the broker.
//! A publish returns once the log's durability policy is met; consumers are woken by each
//! log's high-watermark listener, not by polling. Committed offsets are rewritten whole and
//! atomically on every commit (see `docs/adr/0005-embedded-consumer-offsets-file.md`).
//!
//! The directory is not a `herald serve` one, nor the other way round: the broker keeps
//! its topics in `broker/` and its offsets in its own log, so each refuses the other's
//! directory with an error that says so (opening a broker's directory here fails).
//!
//! ```
//! use herald::transport::{embedded::EmbeddedTransport, Admin, Consumer, OutgoingRecord, Publisher, Subscriber};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let dir = tempfile::tempdir()?;
//! let transport = EmbeddedTransport::open(dir.path())?;
//! transport.create_topic("orders", 3).await?;
//! let record = OutgoingRecord { key: Some("order-1".into()), value: Some("placed".into()), ..Default::default() };
//! let positions = transport.publish("orders", vec![record]).await?;
//! let mut consumer = transport.subscribe("billing", &["orders"]).await?;
//! let records = consumer.poll(10).await?;
//! assert_eq!(records[0].partition, positions[0].partition);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod meta_file;
mod storage;

use std::{path::Path, sync::Arc};

use herald_log::LogConfig;

use super::{
    Result, TopicPartition,
    local::{Engine, EngineConfig, impl_local_transport},
};
pub(crate) use storage::LogStorage;

/// Settings of an embedded transport.
#[derive(Debug, Clone)]
pub struct EmbeddedConfig {
    /// Configuration of every partition log (durability, segment size, retention).
    pub log: LogConfig,
    /// Partitions of a topic created by its first publish.
    pub default_partitions: u32,
    /// Whether publishing to an unknown topic creates it (Kafka's
    /// `auto.create.topics.enable`). Dead-letter topics are created this way.
    pub auto_create_topics: bool,
}

impl Default for EmbeddedConfig {
    fn default() -> Self {
        Self {
            log: LogConfig::default(),
            default_partitions: 1,
            auto_create_topics: true,
        }
    }
}

/// herald-log in process. Clones share the same open logs and groups; the directory is
/// locked by the first open, so only one transport per process may use it.
#[derive(Clone)]
pub struct EmbeddedTransport {
    engine: Arc<Engine<LogStorage>>,
}

impl std::fmt::Debug for EmbeddedTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedTransport")
            .field("dir", &self.engine.storage.dir())
            .finish()
    }
}

impl EmbeddedTransport {
    /// Opens (or creates) a data directory with the default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, EmbeddedConfig::default())
    }

    /// Opens (or creates) a data directory, recovering every partition log.
    pub fn open_with(dir: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Self> {
        let (changes, _) = tokio::sync::watch::channel(0u64);
        let changes = Arc::new(changes);
        let storage = LogStorage::open(dir.as_ref(), config.log.clone(), changes.clone())?;
        let engine = Engine::with_changes(
            storage,
            EngineConfig {
                default_partitions: config.default_partitions.max(1),
                auto_create_topics: config.auto_create_topics,
            },
            changes,
        )?;
        Ok(Self { engine })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        self.engine.storage.dir()
    }

    /// Applies every partition log's time and size retention now (see
    /// [`LogConfig::retention_age`] and [`LogConfig::retention_bytes`]); returns the
    /// segments deleted. Run it periodically: nothing else does. Consumers whose position
    /// falls before a partition's new start resume from that start.
    pub fn apply_retention(&self) -> Result<usize> {
        let mut deleted = 0;
        for (tp, log) in self.engine.storage.logs() {
            deleted += log
                .apply_retention()
                .map_err(|e| storage::log_error(&tp, e))?
                .segments_deleted;
        }
        Ok(deleted)
    }

    /// Kafka's DeleteRecords: makes `offset` the first offset of `partition`; returns the
    /// new start.
    pub fn delete_records_before(&self, partition: &TopicPartition, offset: u64) -> Result<u64> {
        self.engine.check_partition(partition)?;
        self.engine
            .storage
            .log(partition)?
            .delete_records_before(offset)
            .map_err(|e| storage::log_error(partition, e))
    }
}

impl_local_transport!(
    EmbeddedTransport,
    LogStorage,
    EmbeddedConsumer,
    "A consumer-group member of an [`EmbeddedTransport`]."
);
