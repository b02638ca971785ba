//! Partition logs and metadata files under one data directory.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use herald_format::{
    batch::{BatchHeader, LOG_OVERHEAD},
    records::{self, BatchBuilder, Compression},
};
use herald_log::{Log, LogConfig, LogError};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::meta_file;
use crate::transport::{
    BoxFuture, ConsumedRecord, OutgoingRecord, Result, TopicPartition, TransportError,
    local::{GroupOffsets, Storage},
};

/// Most bytes asked of the log per read; a read returns at least one whole batch anyway.
const READ_BYTES: usize = 1 << 20;
/// Fewest bytes asked of the log per read.
const MIN_READ_BYTES: usize = 16 << 10;
/// Bytes per record assumed before a read has seen any.
const GUESS_RECORD_BYTES: usize = 256;

#[derive(Serialize, Deserialize)]
struct TopicsFile {
    topics: Vec<TopicEntry>,
}

#[derive(Serialize, Deserialize)]
struct TopicEntry {
    name: String,
    partitions: u32,
}

#[derive(Serialize, Deserialize)]
struct OffsetsFile {
    group: String,
    offsets: Vec<OffsetEntry>,
}

#[derive(Serialize, Deserialize)]
struct OffsetEntry {
    topic: String,
    partition: u32,
    offset: u64,
}

pub(crate) struct LogStorage {
    dir: PathBuf,
    config: LogConfig,
    logs: RwLock<HashMap<TopicPartition, Arc<Log>>>,
    changes: Arc<watch::Sender<u64>>,
}

pub(crate) fn log_error(partition: &TopicPartition, e: LogError) -> TransportError {
    match e {
        LogError::OffsetOutOfRange { requested, .. } => TransportError::OffsetOutOfRange {
            partition: partition.clone(),
            offset: requested,
        },
        other => TransportError::Storage(format!("partition {partition}: {other}").into()),
    }
}

fn io_error(op: &str, path: &Path, e: std::io::Error) -> TransportError {
    TransportError::Storage(format!("{op} {}: {e}", path.display()).into())
}

/// `herald serve` keeps `broker/` (its topic catalog) and `herald.lock` in its data
/// directory. Its partition logs have the same layout as ours, but its topics, groups and
/// offsets are kept differently, so opening one here would show the logs without their
/// topics and break it for the broker: refuse, and say what to do.
fn refuse_broker_dir(dir: &Path) -> Result<()> {
    if dir.join("broker").is_dir() || dir.join("herald.lock").exists() {
        return Err(TransportError::Storage(
            format!(
                "{} is a `herald serve` data directory, which EmbeddedTransport cannot open: \
                 give EmbeddedTransport a directory of its own, or connect to that broker with \
                 KafkaTransport",
                dir.display()
            )
            .into(),
        ));
    }
    Ok(())
}

impl LogStorage {
    pub(crate) fn open(
        dir: &Path,
        config: LogConfig,
        changes: Arc<watch::Sender<u64>>,
    ) -> Result<Self> {
        refuse_broker_dir(dir)?;
        for sub in ["topics", "groups"] {
            let path = dir.join(sub);
            fs::create_dir_all(&path).map_err(|e| io_error("create directory", &path, e))?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            logs: RwLock::new(HashMap::new()),
            changes,
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn topics_path(&self) -> PathBuf {
        self.dir.join("topics.meta")
    }

    fn offsets_path(&self, group: &str) -> PathBuf {
        self.dir
            .join("groups")
            .join(format!("{}.offsets", meta_file::encode_name(group)))
    }

    fn open_log(&self, tp: &TopicPartition) -> Result<()> {
        let path = self
            .dir
            .join("topics")
            .join(format!("{}-{}", tp.topic, tp.partition));
        let log = Log::open(&path, self.config.clone()).map_err(|e| log_error(tp, e))?;
        let changes = self.changes.clone();
        log.set_high_watermark_listener(move |_| changes.send_modify(|v| *v = v.wrapping_add(1)));
        self.logs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tp.clone(), Arc::new(log));
        Ok(())
    }

    /// Every open partition log.
    pub(crate) fn logs(&self) -> Vec<(TopicPartition, Arc<Log>)> {
        let logs = self.logs.read().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = logs.iter().map(|(tp, l)| (tp.clone(), l.clone())).collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    pub(crate) fn log(&self, tp: &TopicPartition) -> Result<Arc<Log>> {
        self.logs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(tp)
            .cloned()
            .ok_or_else(|| TransportError::UnknownTopic(tp.topic.clone()))
    }
}

impl Storage for LogStorage {
    const WAKES_READERS: bool = true;

    fn load_topics(&self) -> Result<BTreeMap<String, u32>> {
        let file: Option<TopicsFile> = meta_file::read(&self.topics_path())?;
        let mut topics = BTreeMap::new();
        for t in file.map(|f| f.topics).unwrap_or_default() {
            for p in 0..t.partitions {
                self.open_log(&TopicPartition::new(t.name.clone(), p))?;
            }
            topics.insert(t.name, t.partitions);
        }
        Ok(topics)
    }

    fn create_topic(
        &self,
        topic: &str,
        partitions: u32,
        all: &BTreeMap<String, u32>,
    ) -> Result<()> {
        // Logs first, metadata last: a crash in between leaves directories that the next
        // create of the same topic opens again, never metadata naming missing logs.
        for p in 0..partitions {
            self.open_log(&TopicPartition::new(topic, p))?;
        }
        let file = TopicsFile {
            topics: all
                .iter()
                .map(|(name, partitions)| TopicEntry {
                    name: name.clone(),
                    partitions: *partitions,
                })
                .collect(),
        };
        meta_file::write(&self.topics_path(), &file)
    }

    fn append(
        &self,
        partition: &TopicPartition,
        records: &[OutgoingRecord],
        now_ms: i64,
    ) -> Result<(u64, BoxFuture<'static, Result<()>>)> {
        let log = self.log(partition)?;
        let mut builder = BatchBuilder::new(Compression::None);
        for r in records {
            builder.push(
                r.timestamp.unwrap_or(now_ms),
                r.key.as_deref(),
                r.value.as_deref(),
                &r.headers,
            );
        }
        let mut batch = builder
            .build()
            .map_err(|e| TransportError::Storage(format!("building a batch: {e}").into()))?;
        let pending = log
            .append_deferred(&mut batch)
            .map_err(|e| log_error(partition, e))?;
        let base = pending.info().base_offset;
        let (tx, rx) = oneshot::channel();
        pending.on_durable(move |result| {
            let _ = tx.send(result);
        });
        let tp = partition.clone();
        let durable = async move {
            match rx.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(log_error(&tp, e)),
                Err(_) => Err(TransportError::Closed),
            }
        };
        Ok((base, Box::pin(durable)))
    }

    fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        let log = self.log(partition)?;
        let mut out = Vec::new();
        let mut next = offset;
        let mut record_bytes = GUESS_RECORD_BYTES;
        // Whole batches only: the records of the last batch past `max` are returned too
        // (the consumer keeps them for its next poll) instead of being decoded again.
        while out.len() < max {
            // Ask for about what `max` records take, so a poll copies and checks the
            // bytes it hands out and few more.
            let want = (max - out.len())
                .saturating_mul(record_bytes)
                .clamp(MIN_READ_BYTES, READ_BYTES);
            let read = log.read(next, want).map_err(|e| log_error(partition, e))?;
            if read.bytes.is_empty() {
                break;
            }
            let mut pos = 0;
            let (mut bytes, mut records) = (0, 0);
            while pos + LOG_OVERHEAD <= read.bytes.len() && out.len() < max {
                let header = BatchHeader::parse(&read.bytes[pos..]).map_err(|e| {
                    TransportError::Storage(format!("partition {partition}: {e}").into())
                })?;
                let len = header.total_len();
                let batch = records::decode_batch(&read.bytes[pos..pos + len]).map_err(|e| {
                    TransportError::Storage(format!("partition {partition}: {e}").into())
                })?;
                bytes += len;
                records += batch.records.len();
                out.extend(
                    batch
                        .records
                        .into_iter()
                        .filter(|r| r.offset as u64 >= next)
                        .map(|r| ConsumedRecord::decoded(partition, r)),
                );
                next = next.max(header.last_offset() as u64 + 1);
                pos += len;
            }
            record_bytes = bytes.checked_div(records).unwrap_or(record_bytes).max(1);
            if next >= read.high_watermark {
                break;
            }
        }
        Ok(out)
    }

    fn end_offset(&self, partition: &TopicPartition) -> Result<u64> {
        Ok(self.log(partition)?.high_watermark())
    }

    fn start_offset(&self, partition: &TopicPartition) -> Result<u64> {
        Ok(self.log(partition)?.log_start_offset())
    }

    fn load_offsets(&self, group: &str) -> Result<GroupOffsets> {
        let file: Option<OffsetsFile> = meta_file::read(&self.offsets_path(group))?;
        Ok(file
            .map(|f| {
                f.offsets
                    .into_iter()
                    .map(|o| (TopicPartition::new(o.topic, o.partition), o.offset))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn save_offsets(&self, group: &str, offsets: &GroupOffsets) -> Result<()> {
        let file = OffsetsFile {
            group: group.to_owned(),
            offsets: offsets
                .iter()
                .map(|(tp, offset)| OffsetEntry {
                    topic: tp.topic.clone(),
                    partition: tp.partition,
                    offset: *offset,
                })
                .collect(),
        };
        meta_file::write(&self.offsets_path(group), &file)
    }
}
