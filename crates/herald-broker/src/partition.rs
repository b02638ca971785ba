//! One partition: its log, its idempotent-producer state, and a notifier that wakes
//! long-polling fetches when the high watermark moves.
//!
//! Every method here does blocking file I/O; async code calls them through
//! `tokio::task::spawn_blocking`.

use std::sync::{
    Arc, Mutex, RwLock, RwLockReadGuard,
    atomic::{AtomicU64, Ordering},
};

use herald_format::batch::{self, BatchHeader, ValidatedBatches};
use herald_log::{Log, LogConfig, LogError, PendingAppend, ReadResult, TimestampOffset};
use tokio::sync::Notify;

use crate::{
    error::{ProduceError, ReadError},
    producer_state::{ProducerStates, SequenceCheck},
};

/// Where a produced batch went.
#[derive(Debug)]
pub enum AppendOutcome {
    /// Written; durability may still be pending.
    Written(PendingAppend),
    /// A retry of a batch already written at `base_offset`; nothing was written.
    Duplicate {
        /// Offset of the original batch.
        base_offset: i64,
    },
}

/// One partition of a topic.
pub struct Partition {
    topic: String,
    index: i32,
    /// `None` once the partition is closed or deleted.
    log: RwLock<Option<Log>>,
    /// Held across the sequence check and the write, so that both see the same state.
    producers: Mutex<ProducerStates>,
    /// One past the last offset written, durable or not. A fetch between the high
    /// watermark and here is not out of range: the data is on its way to disk.
    log_end: AtomicU64,
    watermark: Arc<Notify>,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partition")
            .field("topic", &self.topic)
            .field("index", &self.index)
            .finish()
    }
}

impl Partition {
    /// Wraps an open log, rebuilding idempotent-producer state from the batch headers of
    /// the last `scan_offsets` offsets.
    pub(crate) fn new(
        topic: &str,
        index: i32,
        log: Log,
        scan_offsets: u64,
    ) -> Result<Self, LogError> {
        let watermark = Arc::new(Notify::new());
        let notify = watermark.clone();
        log.set_high_watermark_listener(move |_| notify.notify_waiters());
        let mut producers = ProducerStates::new();
        let from = log
            .high_watermark()
            .saturating_sub(scan_offsets)
            .max(log.log_start_offset());
        log.for_each_batch_header(from, |h| producers.record(h, h.base_offset))?;
        let log_end = AtomicU64::new(log.high_watermark());
        Ok(Self {
            topic: topic.to_string(),
            index,
            log_end,
            log: RwLock::new(Some(log)),
            producers: Mutex::new(producers),
            watermark,
        })
    }

    /// Topic name.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Partition index.
    pub fn index(&self) -> i32 {
        self.index
    }

    /// Largest idempotent producer id this partition has state for.
    pub(crate) fn max_producer_id(&self) -> Option<i64> {
        self.producers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .max_producer_id()
    }

    /// Notified whenever the high watermark moves.
    pub fn watermark_notify(&self) -> &Arc<Notify> {
        &self.watermark
    }

    fn log(&self) -> Result<RwLockReadGuard<'_, Option<Log>>, ()> {
        let guard = self.log.read().unwrap_or_else(|p| p.into_inner());
        if guard.is_some() { Ok(guard) } else { Err(()) }
    }

    fn with_log<T, E>(
        &self,
        gone: impl FnOnce() -> E,
        f: impl FnOnce(&Log) -> Result<T, E>,
    ) -> Result<T, E> {
        match self.log() {
            Ok(guard) => f(guard.as_ref().expect("checked by log()")),
            Err(()) => Err(gone()),
        }
    }

    fn unknown_read(&self) -> ReadError {
        ReadError::UnknownTopicOrPartition {
            topic: self.topic.clone(),
            partition: self.index,
        }
    }

    /// Validates and appends one produced batch, with the idempotent-producer checks.
    /// `known_producer` says whether this broker ever handed out a producer id.
    pub fn append(
        &self,
        records: &mut [u8],
        known_producer: impl Fn(i64) -> bool,
    ) -> Result<AppendOutcome, ProduceError> {
        let mut checked =
            batch::validate_batches(records).map_err(|e| ProduceError::Corrupt(e.error))?;
        self.append_validated(&mut checked, known_producer)
    }

    /// [`append`](Self::append) of bytes already checked in full (CRC included), which
    /// are not checked again: the rest of the produce checks (one batch, not
    /// transactional, size, producer id and sequence) run as in `append`.
    pub fn append_validated<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        checked: &mut ValidatedBatches<B>,
        known_producer: impl Fn(i64) -> bool,
    ) -> Result<AppendOutcome, ProduceError> {
        let header = one_batch(checked)?;
        let mut producers = self.producers.lock().unwrap_or_else(|p| p.into_inner());
        self.with_log(
            || ProduceError::UnknownTopicOrPartition {
                topic: self.topic.clone(),
                partition: self.index,
            },
            |log| {
                let max = log.config().max_batch_bytes;
                let size = checked.bytes().len();
                if size > max as usize {
                    return Err(ProduceError::TooLarge { size, max });
                }
                if header.producer_id >= 0 && !known_producer(header.producer_id) {
                    return Err(ProduceError::UnknownProducerId(header.producer_id));
                }
                match producers.check(&header)? {
                    SequenceCheck::Duplicate { base_offset } => {
                        Ok(AppendOutcome::Duplicate { base_offset })
                    }
                    SequenceCheck::Append => {
                        let pending = log
                            .append_validated(checked)
                            .map_err(ProduceError::Storage)?;
                        producers.record(&header, pending.info().base_offset as i64);
                        self.log_end
                            .fetch_max(pending.info().last_offset + 1, Ordering::AcqRel);
                        Ok(AppendOutcome::Written(pending))
                    }
                }
            },
        )
    }

    /// Reads whole batches from `offset` (see [`Log::read`]).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadResult, ReadError> {
        self.with_log(
            || self.unknown_read(),
            |log| {
                let offset = u64::try_from(offset).map_err(|_| {
                    ReadError::OffsetOutOfRange(LogError::OffsetOutOfRange {
                        requested: 0,
                        log_start: log.log_start_offset(),
                        high_watermark: log.high_watermark(),
                    })
                })?;
                match log.read(offset, max_bytes) {
                    Err(LogError::OffsetOutOfRange {
                        log_start,
                        high_watermark,
                        ..
                    }) if offset > high_watermark
                        && offset <= self.log_end.load(Ordering::Acquire) =>
                    {
                        Ok(ReadResult {
                            bytes: Vec::new(),
                            high_watermark,
                            log_start_offset: log_start,
                        })
                    }
                    other => Ok(other?),
                }
            },
        )
    }

    /// `(log start offset, high watermark)`.
    pub fn offsets(&self) -> Result<(i64, i64), ReadError> {
        self.with_log(
            || self.unknown_read(),
            |log| Ok((log.log_start_offset() as i64, log.high_watermark() as i64)),
        )
    }

    /// Bytes of segment data on disk.
    pub fn size_bytes(&self) -> Result<u64, ReadError> {
        self.with_log(|| self.unknown_read(), |log| Ok(log.size_bytes()))
    }

    /// The first record with a timestamp at or after `timestamp`.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<TimestampOffset>, ReadError> {
        self.with_log(
            || self.unknown_read(),
            |log| Ok(log.offset_for_timestamp(timestamp)?),
        )
    }

    /// The record with the largest timestamp (the first such), for ListOffsets' -3.
    pub fn max_timestamp_offset(&self) -> Result<Option<TimestampOffset>, ReadError> {
        self.with_log(
            || self.unknown_read(),
            |log| {
                let mut best: Option<BatchHeader> = None;
                log.for_each_batch_header(log.log_start_offset(), |h| {
                    if best.is_none_or(|b| h.max_timestamp > b.max_timestamp) {
                        best = Some(*h);
                    }
                })?;
                let Some(best) = best else { return Ok(None) };
                let raw = log.read(best.base_offset as u64, 1)?;
                let decoded = herald_format::records::decode_batch(&raw.bytes).map_err(|e| {
                    ReadError::Storage(LogError::Corrupt {
                        path: log.dir().to_path_buf(),
                        position: 0,
                        reason: format!("batch at offset {}: {e}", best.base_offset),
                    })
                })?;
                Ok(decoded
                    .records
                    .iter()
                    .find(|r| r.timestamp == best.max_timestamp)
                    .map(|r| TimestampOffset {
                        offset: r.offset as u64,
                        timestamp: r.timestamp,
                    }))
            },
        )
    }

    /// Kafka's DeleteRecords: `offset` becomes the log start. Returns the new start.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64, ReadError> {
        self.with_log(
            || self.unknown_read(),
            |log| Ok(log.delete_records_before(offset)?),
        )
    }

    /// Applies new log settings.
    pub(crate) fn set_config(&self, config: LogConfig) -> Result<(), LogError> {
        match self.log() {
            Ok(guard) => guard.as_ref().expect("checked").set_config(config),
            Err(()) => Err(LogError::Closed),
        }
    }

    /// Runs retention now.
    pub(crate) fn apply_retention(&self) -> Result<(), LogError> {
        match self.log() {
            Ok(guard) => guard
                .as_ref()
                .expect("checked")
                .apply_retention()
                .map(|_| ()),
            Err(()) => Ok(()),
        }
    }

    /// Takes the log out, waiting for operations in flight; later calls see the
    /// partition as unknown.
    pub(crate) fn take_log(&self) -> Option<Log> {
        self.log.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// Closes the log cleanly.
    pub(crate) fn close(&self) -> Result<(), LogError> {
        let result = self.take_log().map_or(Ok(()), Log::close);
        self.watermark.notify_waiters();
        result
    }

    /// Closes the log and deletes its directory.
    pub(crate) fn destroy(&self) -> Result<(), LogError> {
        let result = self.take_log().map_or(Ok(()), Log::destroy);
        self.watermark.notify_waiters();
        result
    }
}

/// Checks that checked bytes are exactly one non-transactional v2 batch; its header.
fn one_batch<B: AsRef<[u8]>>(checked: &ValidatedBatches<B>) -> Result<BatchHeader, ProduceError> {
    let [(_, header)] = checked.headers() else {
        return Err(ProduceError::BatchCount(checked.headers().len()));
    };
    if header.is_transactional() || header.is_control() {
        return Err(ProduceError::Transactional);
    }
    Ok(*header)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use herald_format::records::{BatchBuilder, Compression};
    use herald_log::Durability;

    use super::*;

    fn one_record() -> Vec<u8> {
        BatchBuilder::new(Compression::None)
            .push(1, None, Some(b"v"), &[])
            .build()
            .unwrap()
    }

    #[test]
    fn a_fetch_between_the_high_watermark_and_the_written_end_is_empty_not_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        // A group commit that waits long: written data stays invisible for the test.
        let config = LogConfig {
            durability: Durability::GroupCommit {
                max_delay: Duration::from_secs(60),
                max_bytes: u64::MAX,
            },
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config).unwrap();
        let p = Partition::new("t", 0, log, 1000).unwrap();
        for _ in 0..2 {
            let AppendOutcome::Written(pending) = p.append(&mut one_record(), |_| true).unwrap()
            else {
                panic!("plain batches are written");
            };
            drop(pending);
        }
        assert_eq!(p.offsets().unwrap(), (0, 0), "nothing durable yet");
        let read = p.read(1, 1 << 20).unwrap();
        assert!(read.bytes.is_empty());
        assert_eq!(read.high_watermark, 0);
        assert!(matches!(
            p.read(3, 1 << 20),
            Err(ReadError::OffsetOutOfRange(_))
        ));
        p.close().unwrap();
        assert!(matches!(
            p.read(0, 1),
            Err(ReadError::UnknownTopicOrPartition { .. })
        ));
    }

    #[test]
    fn producer_state_is_rebuilt_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let batch = |seq| {
            BatchBuilder::new(Compression::None)
                .producer(7, 0, seq)
                .push(1, None, Some(b"v"), &[])
                .build()
                .unwrap()
        };
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let p = Partition::new("t", 0, log, 1000).unwrap();
        for seq in 0..3 {
            match p.append(&mut batch(seq), |_| true).unwrap() {
                AppendOutcome::Written(pending) => {
                    pending.wait().unwrap();
                }
                AppendOutcome::Duplicate { .. } => panic!("new batch"),
            }
        }
        p.close().unwrap();
        let log = Log::open(dir.path(), LogConfig::default()).unwrap();
        let p = Partition::new("t", 0, log, 1000).unwrap();
        assert_eq!(p.max_producer_id(), Some(7));
        assert!(matches!(
            p.append(&mut batch(2), |_| true).unwrap(),
            AppendOutcome::Duplicate { base_offset: 2 }
        ));
        assert!(matches!(
            p.append(&mut batch(4), |_| true),
            Err(ProduceError::Sequence(_))
        ));
        assert!(matches!(
            p.append(&mut batch(3), |_| false),
            Err(ProduceError::UnknownProducerId(7))
        ));
        p.close().unwrap();
    }
}
