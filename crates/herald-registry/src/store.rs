//! The registry's durable state: an append-only herald-log log of JSON records in
//! `<data-dir>/registry/`, every append fsynced before it is acknowledged, replayed in
//! full on start (Herald's counterpart of Confluent's `_schemas` topic).
//!
//! Each record's key is its kind and its value one [`LogRecord`] as JSON. A registration
//! that introduces a new id writes its `schema` and `version` records in one batch, so
//! recovery sees both or neither. docs/adr/0010-schema-registry-storage-and-identity.md says why.

use std::{
    path::Path,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use herald_format::{
    batch::BatchHeader,
    records::{BatchBuilder, Compression, decode_batch},
};
use herald_log::{Durability, Log, LogConfig};
use serde::{Deserialize, Serialize};

use crate::{
    error::RegistryError,
    types::{CompatibilityLevel, Mode, SchemaReference, SchemaType},
};

/// Directory of the registry log under the data directory.
pub(crate) const REGISTRY_DIR: &str = "registry";

/// One change to the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum LogRecord {
    /// A schema got a (new) global id.
    Schema {
        id: u32,
        schema_type: SchemaType,
        schema: String,
        #[serde(default)]
        references: Vec<SchemaReference>,
        /// The identity key the schema had when it was registered.
        key: String,
    },
    /// A subject got a version holding schema `id`.
    Version {
        subject: String,
        version: i32,
        id: u32,
    },
    /// A version was soft-deleted.
    SoftDelete { subject: String, version: i32 },
    /// A (soft-deleted) version was removed for good.
    HardDelete { subject: String, version: i32 },
    /// The compatibility level of a subject (`None`: the global one) was set or, with
    /// `level: None`, removed.
    Config {
        subject: Option<String>,
        level: Option<CompatibilityLevel>,
    },
    /// The mode of a subject (`None`: global) was set or removed.
    Mode {
        subject: Option<String>,
        mode: Option<Mode>,
    },
}

impl LogRecord {
    fn kind(&self) -> &'static str {
        match self {
            LogRecord::Schema { .. } => "schema",
            LogRecord::Version { .. } => "version",
            LogRecord::SoftDelete { .. } => "soft_delete",
            LogRecord::HardDelete { .. } => "hard_delete",
            LogRecord::Config { .. } => "config",
            LogRecord::Mode { .. } => "mode",
        }
    }
}

/// The open log.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    log: Arc<Log>,
}

fn store_err(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Store(format!("{what}: {e}"))
}

impl Store {
    /// Opens (or creates) the log in `<data_dir>/registry` and returns every record in it.
    pub(crate) fn open(
        data_dir: &Path,
        max_record_bytes: u32,
    ) -> Result<(Store, Vec<LogRecord>), RegistryError> {
        let dir = data_dir.join(REGISTRY_DIR);
        std::fs::create_dir_all(&dir)
            .map_err(|e| store_err(&format!("cannot create {}", dir.display()), e))?;
        let config = LogConfig {
            durability: Durability::EveryAppend,
            retention_age: None,
            retention_bytes: None,
            segment_age: None,
            segment_bytes: 256 << 20,
            max_batch_bytes: max_record_bytes.max(1 << 20),
            ..LogConfig::default()
        };
        let log = Log::open(&dir, config).map_err(|e| {
            store_err(
                &format!("cannot open the registry log in {}", dir.display()),
                e,
            )
        })?;
        let mut records = Vec::new();
        let mut offset = log.log_start_offset();
        let end = log.high_watermark();
        while offset < end {
            let read = log
                .read(offset, 4 << 20)
                .map_err(|e| store_err("cannot read the registry log", e))?;
            let mut bytes = &read.bytes[..];
            if bytes.is_empty() {
                break;
            }
            while !bytes.is_empty() {
                let header =
                    BatchHeader::parse(bytes).map_err(|e| store_err("damaged registry log", e))?;
                let len = header.total_len();
                let decoded = decode_batch(&bytes[..len])
                    .map_err(|e| store_err("damaged registry log", e))?;
                for r in decoded.records {
                    if r.offset < offset as i64 {
                        continue;
                    }
                    let value = r.value.unwrap_or_default();
                    let record: LogRecord = serde_json::from_slice(&value).map_err(|e| {
                        store_err(
                            &format!(
                                "registry log record at offset {} is not understood",
                                r.offset
                            ),
                            e,
                        )
                    })?;
                    records.push(record);
                }
                offset = header.last_offset() as u64 + 1;
                bytes = &bytes[len..];
            }
        }
        Ok((Store { log: Arc::new(log) }, records))
    }

    /// Appends `records` as one batch and returns once it is durable.
    pub(crate) async fn append(&self, records: &[LogRecord]) -> Result<(), RegistryError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let mut builder = BatchBuilder::new(Compression::None);
        for r in records {
            let value = serde_json::to_vec(r)
                .map_err(|e| store_err("cannot encode a registry record", e))?;
            builder.push(now, Some(r.kind().as_bytes()), Some(value.as_slice()), &[]);
        }
        let mut batch = builder
            .build()
            .map_err(|e| store_err("cannot build a registry batch", e))?;
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.append(&mut batch))
            .await
            .map_err(|e| store_err("registry append task failed", e))?
            .map_err(|e| store_err("cannot write the registry log", e))?;
        Ok(())
    }

    /// Syncs and closes the log (when this is the last handle).
    pub(crate) fn close(self) -> Result<(), RegistryError> {
        match Arc::try_unwrap(self.log) {
            Ok(log) => log
                .close()
                .map_err(|e| store_err("cannot close the registry log", e)),
            Err(shared) => shared
                .flush()
                .map_err(|e| store_err("cannot sync the registry log", e)),
        }
    }
}
