//! Committed offsets: an in-memory table backed by the `__consumer_offsets-0` log.
//!
//! Writes go to the log first; the table changes only once the write is durable, so a
//! reader never sees an offset that a crash could take back, and an OffsetCommit is
//! answered only after its batch is durable. Appends are serialised (their log order is
//! the order they are applied in); durability is awaited with
//! [`PendingAppend::on_durable`](herald_log::PendingAppend::on_durable), so no thread
//! waits for an fsync. Because the log's durable end only moves forward, when one append
//! is durable every earlier one is too: the callback applies all pending appends up to its
//! own in log order, whichever callback runs first.
//!
//! Growth is bounded by snapshots: when the log holds many more records than the table
//! has live entries (at least [`GroupConfig::offsets_compaction_min_records`] and more than
//! twice the live count), every live entry is appended again as a fresh snapshot and
//! `delete_records_before(snapshot start)` drops everything older. This runs on open and
//! from the coordinator's periodic maintenance. A crash in the middle is harmless: the
//! snapshot repeats values that are already current, and the old records are only
//! dropped after the whole snapshot is durable.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use herald_format::batch::BatchHeader;
use herald_log::{Log, LogConfig, LogError};
use tokio::sync::oneshot;

use super::{
    GroupConfig, GroupError,
    codec::{self, Decoded, OffsetKey, OffsetOp, OffsetValue},
};

/// Directory name of the offsets log inside the coordinator directory.
pub(crate) const OFFSETS_LOG_DIR: &str = "__consumer_offsets-0";

/// Records per snapshot batch are bounded by this many uncompressed bytes.
const SNAPSHOT_BATCH_BYTES: usize = 512 * 1024;
/// Bytes read per call while replaying the log.
const LOAD_READ_BYTES: usize = 4 << 20;

/// Why a write to the offsets log failed.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The batch is larger than the log accepts.
    TooLarge,
    /// The coordinator is shut down.
    Closed,
    /// The log failed (I/O, poisoned).
    Log(LogError),
}

#[derive(Default)]
struct Table {
    /// group → (topic, partition) → value.
    groups: BTreeMap<String, BTreeMap<(String, i32), OffsetValue>>,
    /// Written but not yet durable: base offset → (last offset, ops).
    pending: BTreeMap<u64, (u64, Vec<OffsetOp>)>,
    /// Records in the log from its start, for the compaction decision.
    records_in_log: u64,
}

impl Table {
    fn apply(&mut self, op: OffsetOp) {
        let OffsetKey {
            group,
            topic,
            partition,
        } = op.key;
        match op.value {
            Some(value) => {
                self.groups
                    .entry(group)
                    .or_default()
                    .insert((topic, partition), value);
            }
            None => {
                if let Some(offsets) = self.groups.get_mut(&group) {
                    offsets.remove(&(topic, partition));
                    if offsets.is_empty() {
                        self.groups.remove(&group);
                    }
                }
            }
        }
    }

    /// Applies every pending append whose base offset is at most `durable_last`.
    fn apply_durable(&mut self, durable_last: u64) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > durable_last {
                break;
            }
            let (_, ops) = entry.remove();
            for op in ops {
                self.apply(op);
            }
        }
    }

    fn live(&self) -> u64 {
        self.groups.values().map(|o| o.len() as u64).sum()
    }
}

fn lock(table: &Mutex<Table>) -> MutexGuard<'_, Table> {
    table.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The committed-offset store of one coordinator.
pub(crate) struct OffsetStore {
    log: Mutex<Option<Arc<Log>>>,
    /// Serialises appends so that log order is registration order in `pending`, and keeps
    /// appends out while a snapshot is written.
    append_lock: tokio::sync::Mutex<()>,
    table: Arc<Mutex<Table>>,
    dir: PathBuf,
    compaction_min_records: u64,
}

impl OffsetStore {
    /// Opens (or creates) the log in `<dir>/__consumer_offsets-0`, replays it and writes a
    /// snapshot if the log has grown much larger than the live table.
    pub(crate) fn open(dir: &Path, config: &GroupConfig) -> Result<Self, GroupError> {
        let dir = dir.join(OFFSETS_LOG_DIR);
        let log_config = LogConfig {
            segment_bytes: config.offsets_segment_bytes,
            segment_age: None,
            // Offsets expire by the coordinator's own rules, never by log retention.
            retention_bytes: None,
            retention_age: None,
            durability: config.offsets_durability,
            max_batch_bytes: config.offsets_max_batch_bytes,
            ..LogConfig::default()
        };
        let log = Log::open(&dir, log_config).map_err(|source| GroupError::OpenLog {
            path: dir.clone(),
            source,
        })?;
        let mut table = Table::default();
        load(&log, &dir, &mut table)?;
        let store = OffsetStore {
            log: Mutex::new(Some(Arc::new(log))),
            append_lock: tokio::sync::Mutex::new(()),
            table: Arc::new(Mutex::new(table)),
            dir,
            compaction_min_records: config.offsets_compaction_min_records,
        };
        let log = store.log().ok_or(GroupError::Closed)?;
        store
            .compact_locked(&log)
            .map_err(|source| GroupError::Snapshot {
                path: store.dir.clone(),
                source,
            })?;
        Ok(store)
    }

    fn log(&self) -> Option<Arc<Log>> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Appends `ops` as one batch and returns once it is durable and applied.
    pub(crate) async fn write(&self, ops: Vec<OffsetOp>, now_ms: i64) -> Result<(), WriteError> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut batch = codec::encode_batch(&ops, now_ms).map_err(|_| WriteError::TooLarge)?;
        let (tx, rx) = oneshot::channel();
        {
            let _order = self.append_lock.lock().await;
            let log = self.log().ok_or(WriteError::Closed)?;
            let count = ops.len() as u64;
            let pending = log.append_deferred(&mut batch).map_err(|e| match e {
                LogError::BatchTooLarge { .. } => WriteError::TooLarge,
                LogError::Closed => WriteError::Closed,
                other => WriteError::Log(other),
            })?;
            let info = *pending.info();
            {
                let mut table = lock(&self.table);
                table
                    .pending
                    .insert(info.base_offset, (info.last_offset, ops));
                table.records_in_log += count;
            }
            let table = Arc::clone(&self.table);
            pending.on_durable(move |result| {
                let mut table = lock(&table);
                match &result {
                    Ok(info) => table.apply_durable(info.last_offset),
                    Err(_) => {
                        table.pending.remove(&info.base_offset);
                    }
                }
                drop(table);
                let _ = tx.send(result);
            });
        }
        match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(LogError::Closed)) | Err(_) => Err(WriteError::Closed),
            Ok(Err(e)) => Err(WriteError::Log(e)),
        }
    }

    /// The committed offset of one partition.
    pub(crate) fn get(&self, group: &str, topic: &str, partition: i32) -> Option<OffsetValue> {
        lock(&self.table)
            .groups
            .get(group)?
            .get(&(topic.to_owned(), partition))
            .cloned()
    }

    /// All committed offsets of one group, ordered by topic and partition.
    pub(crate) fn group_offsets(&self, group: &str) -> Vec<((String, i32), OffsetValue)> {
        lock(&self.table)
            .groups
            .get(group)
            .map(|o| o.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    }

    /// Every committed offset: (key, value).
    pub(crate) fn all(&self) -> Vec<(OffsetKey, OffsetValue)> {
        let table = lock(&self.table);
        let mut out = Vec::with_capacity(table.live() as usize);
        for (group, offsets) in &table.groups {
            for ((topic, partition), value) in offsets {
                out.push((
                    OffsetKey {
                        group: group.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    },
                    value.clone(),
                ));
            }
        }
        out
    }

    /// Ids of the groups that have at least one committed offset.
    pub(crate) fn group_ids(&self) -> Vec<String> {
        lock(&self.table).groups.keys().cloned().collect()
    }

    /// Whether `group` has any committed offset.
    pub(crate) fn has_offsets(&self, group: &str) -> bool {
        lock(&self.table).groups.contains_key(group)
    }

    /// Tombstones for every offset of `group`.
    pub(crate) fn tombstones_for(&self, group: &str) -> Vec<OffsetOp> {
        self.group_offsets(group)
            .into_iter()
            .map(|((topic, partition), _)| OffsetOp {
                key: OffsetKey {
                    group: group.to_owned(),
                    topic,
                    partition,
                },
                value: None,
            })
            .collect()
    }

    /// Writes a snapshot if the log is much larger than the live table. Waits for appends
    /// in flight and keeps new ones out meanwhile; the file work runs on a blocking thread.
    pub(crate) async fn compact_if_needed(&self) -> Result<(), LogError> {
        let _order = self.append_lock.lock().await;
        let Some(log) = self.log() else {
            return Ok(());
        };
        if !self.needs_compaction() {
            return Ok(());
        }
        let table = Arc::clone(&self.table);
        let min = self.compaction_min_records;
        tokio::task::spawn_blocking(move || {
            let store = Compactor { table: &table, min };
            store.run(&log)
        })
        .await
        .map_err(|e| LogError::TaskJoin {
            op: "snapshot committed offsets",
            reason: e.to_string(),
        })?
    }

    fn needs_compaction(&self) -> bool {
        let table = lock(&self.table);
        needs_compaction(&table, self.compaction_min_records)
    }

    fn compact_locked(&self, log: &Log) -> Result<(), LogError> {
        Compactor {
            table: &self.table,
            min: self.compaction_min_records,
        }
        .run(log)
    }

    /// Flushes and closes the log. Later writes fail with [`WriteError::Closed`].
    pub(crate) async fn close(&self) {
        let _order = self.append_lock.lock().await;
        let log = self
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(log) = log else { return };
        let dir = self.dir.clone();
        let result = tokio::task::spawn_blocking(move || match Arc::try_unwrap(log) {
            Ok(log) => log.close(),
            // A write still holds a reference: make everything durable; the last
            // reference closes the log when it is dropped.
            Err(shared) => shared.flush(),
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(dir = %dir.display(), error = %e, "offsets log did not close cleanly");
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "closing the offsets log panicked");
            }
        }
    }
}

fn needs_compaction(table: &Table, min: u64) -> bool {
    table.records_in_log >= min.max(1) && table.records_in_log > 2 * table.live()
}

struct Compactor<'a> {
    table: &'a Mutex<Table>,
    min: u64,
}

impl Compactor<'_> {
    /// Caller holds the append order lock (or is `open`), so nothing is appended meanwhile.
    fn run(&self, log: &Log) -> Result<(), LogError> {
        if !needs_compaction(&lock(self.table), self.min) {
            return Ok(());
        }
        // Everything written is durable after this, so every pending op can be applied.
        log.flush()?;
        let entries = {
            let mut table = lock(self.table);
            table.apply_durable(u64::MAX);
            let mut entries = Vec::with_capacity(table.live() as usize);
            for (group, offsets) in &table.groups {
                for ((topic, partition), value) in offsets {
                    entries.push(OffsetOp {
                        key: OffsetKey {
                            group: group.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                        },
                        value: Some(value.clone()),
                    });
                }
            }
            entries
        };
        let before = log.size_bytes();
        let snapshot_start = log.high_watermark();
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0;
        for op in entries.iter() {
            chunk_bytes += 64 + op.key.group.len() + op.key.topic.len();
            chunk_bytes += op.value.as_ref().map_or(0, |v| v.metadata.len());
            chunk.push(op.clone());
            if chunk_bytes >= SNAPSHOT_BATCH_BYTES {
                append_snapshot_chunk(log, &chunk)?;
                chunk.clear();
                chunk_bytes = 0;
            }
        }
        if !chunk.is_empty() {
            append_snapshot_chunk(log, &chunk)?;
        }
        log.delete_records_before(snapshot_start)?;
        let records = entries.len() as u64;
        lock(self.table).records_in_log = records;
        tracing::info!(
            live_offsets = records,
            bytes_before = before,
            bytes_after = log.size_bytes(),
            "rewrote the committed-offsets snapshot"
        );
        Ok(())
    }
}

fn append_snapshot_chunk(log: &Log, ops: &[OffsetOp]) -> Result<(), LogError> {
    let now = super::now_ms();
    let mut batch = codec::encode_batch(ops, now)
        .map_err(|e| LogError::InvalidConfig(format!("cannot encode the offsets snapshot: {e}")))?;
    log.append(&mut batch)?;
    Ok(())
}

/// Replays the log from its start into `table`.
fn load(log: &Log, dir: &Path, table: &mut Table) -> Result<(), GroupError> {
    let corrupt = |offset: u64, reason: String| GroupError::CorruptOffsets {
        path: dir.to_path_buf(),
        offset,
        reason,
    };
    let mut next = log.log_start_offset();
    let end = log.high_watermark();
    let mut records = 0u64;
    let mut skipped = 0u64;
    while next < end {
        let read = log
            .read(next, LOAD_READ_BYTES)
            .map_err(|source| GroupError::OpenLog {
                path: dir.to_path_buf(),
                source,
            })?;
        if read.bytes.is_empty() {
            break;
        }
        let mut pos = 0;
        while pos < read.bytes.len() {
            let header =
                BatchHeader::parse(&read.bytes[pos..]).map_err(|e| corrupt(next, e.to_string()))?;
            let len = header.total_len();
            let Some(batch) = read.bytes.get(pos..pos + len) else {
                return Err(corrupt(next, format!("batch of {len} bytes is cut short")));
            };
            let decoded = codec::decode_records(batch).map_err(|e| corrupt(next, e.0))?;
            for (offset, record) in decoded {
                if offset < next as i64 {
                    continue;
                }
                records += 1;
                match record {
                    Decoded::Op(op) => table.apply(op),
                    Decoded::UnknownKind(_) => skipped += 1,
                }
            }
            let last = u64::try_from(header.last_offset()).unwrap_or(0);
            next = next.max(last + 1);
            pos += len;
        }
    }
    table.records_in_log = records;
    if skipped > 0 {
        tracing::warn!(
            skipped,
            "offsets log holds records of unknown kinds; skipped"
        );
    }
    tracing::debug!(records, live = table.live(), "loaded committed offsets");
    Ok(())
}
