//! The partition log: a directory of segments behind one writer lock.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::{Instant, SystemTime, UNIX_EPOCH},
};

use crate::{
    batch::{self, BatchHeader},
    checkpoint::{Checkpoint, CheckpointData, RecoveryPoint},
    config::{Durability, LogConfig},
    error::{LogError, Result},
    recovery,
    segment::Segment,
};

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset assigned to the first record.
    pub base_offset: u64,
    /// Offset of the last record.
    pub last_offset: u64,
    /// Largest timestamp among the appended batches.
    pub max_timestamp: i64,
    /// Bytes written.
    pub bytes: usize,
}

/// Whole batches returned by [`Log::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Zero or more complete v2 batches. The first one contains the requested offset.
    pub bytes: Vec<u8>,
    /// One past the last readable offset at the time of the read.
    pub high_watermark: u64,
    /// First offset still in the log.
    pub log_start_offset: u64,
}

/// The answer to a timestamp lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Offset of the first record with a timestamp at or after the one asked for.
    pub offset: u64,
    /// That record's timestamp.
    pub timestamp: i64,
}

/// What [`Log::apply_retention`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// Whole segments deleted.
    pub segments_deleted: usize,
    /// Bytes those segments held.
    pub bytes_deleted: u64,
    /// First offset still in the log afterwards.
    pub log_start_offset: u64,
}

/// What opening the log had to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous shutdown was clean and nothing had to be scanned.
    pub clean_shutdown: bool,
    /// Bytes of segment data read and checked.
    pub bytes_scanned: u64,
    /// Bytes of torn tail cut off the last segment.
    pub truncated_bytes: u64,
    /// Segments whose index files were missing or damaged and were rebuilt.
    pub indexes_rebuilt: usize,
    /// Segments found.
    pub segments: usize,
}

type DurableCallback = Box<dyn FnOnce(Result<AppendInfo>) + Send>;
/// Callbacks whose appends became durable, to run once the lock is released.
type Ready = Vec<(AppendInfo, DurableCallback)>;
type WatermarkListener = Arc<dyn Fn(u64) + Send + Sync>;

pub(crate) struct State {
    pub(crate) config: LogConfig,
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) log_start: u64,
    /// Offset after the last written batch.
    pub(crate) next_offset: u64,
    /// Everything before this point is on disk (or, with `Durability::Never`, written).
    pub(crate) durable: RecoveryPoint,
    pub(crate) poisoned: Option<Arc<str>>,
    pub(crate) closed: bool,
    unsynced_bytes: u64,
    unsynced_since: Option<Instant>,
    waiters: Vec<(u64, AppendInfo, DurableCallback)>,
    listener: Option<WatermarkListener>,
    flusher_stop: bool,
}

impl State {
    fn active(&self) -> &Arc<Segment> {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    /// One past the last offset readers may see.
    fn high_watermark(&self) -> u64 {
        self.durable.next_offset
    }

    fn check_writable(&self) -> Result<()> {
        if self.closed {
            return Err(LogError::Closed);
        }
        if let Some(reason) = &self.poisoned {
            return Err(LogError::Poisoned(reason.clone()));
        }
        Ok(())
    }

    fn write_point(&self) -> RecoveryPoint {
        let active = self.active();
        RecoveryPoint {
            segment: active.base,
            position: active.size(),
            next_offset: self.next_offset,
        }
    }

    fn checkpoint_data(&self, clean: bool) -> CheckpointData {
        CheckpointData {
            clean,
            log_start: self.log_start,
            point: self.durable,
        }
    }

    /// Moves the durable point forward and takes the callbacks it satisfies.
    fn advance_durable(&mut self, point: RecoveryPoint) -> Ready {
        if point.next_offset <= self.durable.next_offset {
            return Vec::new();
        }
        self.durable = point;
        // The slot write is not fsynced: losing it only makes recovery start earlier.
        if let Err(e) = self.checkpoint.write(&self.checkpoint_data(false), false) {
            tracing::warn!(error = %e, "could not record the durable point; recovery will scan more");
        }
        let durable = self.durable.next_offset;
        let (ready, waiting) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(needed, _, _)| *needed <= durable);
        self.waiters = waiting;
        ready.into_iter().map(|(_, info, cb)| (info, cb)).collect()
    }

    fn poison(&mut self, reason: String) -> Ready {
        tracing::error!(%reason, "fsync failed; the log refuses further writes until reopened");
        self.poisoned = Some(reason.into());
        std::mem::take(&mut self.waiters)
            .into_iter()
            .map(|(_, info, cb)| (info, cb))
            .collect()
    }
}

pub(crate) struct Shared {
    pub(crate) dir: PathBuf,
    pub(crate) state: Mutex<State>,
    /// Signalled when the durable point moves or the log is poisoned or closed.
    durable_cv: Condvar,
    /// Signalled when there is something for the flusher to do.
    flusher_cv: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs callbacks and the watermark listener outside the lock.
fn notify(ready: Ready, poisoned: Option<Arc<str>>, listener: Option<(WatermarkListener, u64)>) {
    if let Some((listener, hw)) = listener {
        listener(hw);
    }
    for (info, cb) in ready {
        match &poisoned {
            Some(reason) => cb(Err(LogError::Poisoned(reason.clone()))),
            None => cb(Ok(info)),
        }
    }
}

/// A written append whose durability may still be pending (see [`Log::append_deferred`]).
#[must_use = "an append is acknowledged only once it is durable: wait for it"]
pub struct PendingAppend {
    info: AppendInfo,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PendingAppend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAppend")
            .field("info", &self.info)
            .finish()
    }
}

impl PendingAppend {
    /// Where the append landed (not yet necessarily durable).
    pub fn info(&self) -> &AppendInfo {
        &self.info
    }

    /// Blocks until the append is durable under the log's policy.
    pub fn wait(self) -> Result<AppendInfo> {
        let needed = self.info.last_offset + 1;
        let mut state = self.shared.lock();
        loop {
            if state.durable.next_offset >= needed {
                return Ok(self.info);
            }
            if let Some(reason) = &state.poisoned {
                return Err(LogError::Poisoned(reason.clone()));
            }
            if state.closed {
                return Err(LogError::Closed);
            }
            state = self
                .shared
                .durable_cv
                .wait(state)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Calls `f` once the append is durable (or failed), from the thread that made it so;
    /// at once if it already is. `f` must not block for long.
    pub fn on_durable(self, f: impl FnOnce(Result<AppendInfo>) + Send + 'static) {
        let needed = self.info.last_offset + 1;
        let mut state = self.shared.lock();
        if state.durable.next_offset >= needed {
            drop(state);
            f(Ok(self.info));
        } else if let Some(reason) = state.poisoned.clone() {
            drop(state);
            f(Err(LogError::Poisoned(reason)));
        } else if state.closed {
            drop(state);
            f(Err(LogError::Closed));
        } else {
            state.waiters.push((needed, self.info, Box::new(f)));
        }
    }
}

/// A durable, segmented, append-only log of Kafka v2 record batches.
///
/// `Log` is `Send + Sync`: share it behind an `Arc`. Appends are serialised by one lock;
/// reads take it only for a moment and do their I/O outside it.
pub struct Log {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
    _lock: File,
    report: RecoveryReport,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared.dir)
            .finish()
    }
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Log {
    /// Opens the log in `dir`, creating it if needed, and recovers from an unclean
    /// shutdown: a torn tail is truncated; damage anywhere else is refused with
    /// [`LogError::Corrupt`] naming the file and byte.
    pub fn open(dir: impl AsRef<Path>, config: LogConfig) -> Result<Log> {
        config.validate().map_err(LogError::InvalidConfig)?;
        let dir = dir.as_ref().to_path_buf();
        let dir_for_error = dir.clone();
        let lock = recovery::lock_dir(&dir)?;
        let recovered = recovery::recover(&dir, &config)?;
        let report = recovered.report.clone();
        let state = State {
            config,
            segments: recovered.segments,
            checkpoint: recovered.checkpoint,
            log_start: recovered.log_start,
            next_offset: recovered.next_offset,
            durable: recovered.durable,
            poisoned: None,
            closed: false,
            unsynced_bytes: 0,
            unsynced_since: None,
            waiters: Vec::new(),
            listener: None,
            flusher_stop: false,
        };
        let shared = Arc::new(Shared {
            dir,
            state: Mutex::new(state),
            durable_cv: Condvar::new(),
            flusher_cv: Condvar::new(),
        });
        let flusher = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("herald-log-flush".into())
                .spawn(move || flusher_loop(&shared))
                .map_err(|e| LogError::io("spawn flusher thread", dir_for_error, e))?
        };
        Ok(Log {
            shared,
            flusher: Some(flusher),
            _lock: lock,
            report,
        })
    }

    /// The segment appends go to (for fault-injection tests).
    #[cfg(test)]
    pub(crate) fn active_segment(&self) -> Arc<Segment> {
        self.shared.lock().active().clone()
    }

    /// What recovery did when the log was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.report
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The current configuration.
    pub fn config(&self) -> LogConfig {
        self.shared.lock().config.clone()
    }

    /// Replaces the configuration. A change of durability first syncs what is pending.
    pub fn set_config(&self, config: LogConfig) -> Result<()> {
        config.validate().map_err(LogError::InvalidConfig)?;
        let durability_changed = self.shared.lock().config.durability != config.durability;
        if durability_changed {
            self.flush()?;
        }
        self.shared.lock().config = config;
        self.shared.flusher_cv.notify_all();
        Ok(())
    }

    /// Calls `f` with the new high watermark whenever it moves (from the thread that
    /// moved it). Replaces any earlier listener. `f` must not block or call into the log.
    pub fn set_high_watermark_listener(&self, f: impl Fn(u64) + Send + Sync + 'static) {
        self.shared.lock().listener = Some(Arc::new(f));
    }

    /// Appends one or more concatenated v2 batches and waits until they are durable.
    pub fn append(&self, batches: &mut [u8]) -> Result<AppendInfo> {
        self.append_deferred(batches)?.wait()
    }

    /// Validates and writes one or more concatenated v2 batches, assigning offsets by
    /// rewriting each base offset in `batches`. Returns once written; the result says
    /// when the write is durable. Invalid input is rejected whole, with nothing written.
    pub fn append_deferred(&self, batches: &mut [u8]) -> Result<PendingAppend> {
        if batches.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let headers = batch::validate_all(batches)
            .map_err(|(position, source)| LogError::InvalidBatch { position, source })?;
        let mut state = self.shared.lock();
        state.check_writable()?;
        let max = state.config.max_batch_bytes;
        if let Some((_, h)) = headers.iter().find(|(_, h)| h.total_len() > max as usize) {
            return Err(LogError::BatchTooLarge {
                size: h.total_len(),
                max,
            });
        }
        let mut ready = self.maybe_roll(&mut state, batches.len() as u64)?;
        let base_offset = state.next_offset;
        let mut next = base_offset;
        let mut max_timestamp = i64::MIN;
        let mut assigned = Vec::with_capacity(headers.len());
        for (pos, h) in &headers {
            batch::set_base_offset(&mut batches[*pos..], next as i64);
            batch::set_partition_leader_epoch(&mut batches[*pos..], batch::STORED_LEADER_EPOCH);
            let mut h = *h;
            h.base_offset = next as i64;
            next += h.last_offset_delta as u64 + 1;
            max_timestamp = max_timestamp.max(h.max_timestamp);
            assigned.push((*pos, h));
        }
        let active = state.active().clone();
        let start = active.size();
        use std::os::unix::fs::FileExt;
        active
            .file
            .write_all_at(batches, start)
            .map_err(|e| LogError::io("write segment", &active.path, e))?;
        let interval = state.config.index_interval_bytes;
        for (pos, h) in &assigned {
            if let Err(e) = active.on_append(h, start + *pos as u64, interval) {
                // The data is written but the in-memory view is half updated: refuse
                // further writes rather than guess; reopening rebuilds from the file.
                let failed = state.poison(e.to_string());
                return Err(self.fail_after_unlock(&mut state, failed));
            }
        }
        state.next_offset = next;
        let info = AppendInfo {
            base_offset,
            last_offset: next - 1,
            max_timestamp,
            bytes: batches.len(),
        };
        let point = state.write_point();
        ready.extend(match state.config.durability {
            Durability::EveryAppend => match active.sync_data() {
                Ok(()) => state.advance_durable(point),
                Err(e) => state.poison(e.to_string()),
            },
            Durability::Never => state.advance_durable(point),
            Durability::GroupCommit { .. } => {
                state.unsynced_bytes += batches.len() as u64;
                state.unsynced_since.get_or_insert_with(Instant::now);
                self.shared.flusher_cv.notify_all();
                Vec::new()
            }
        });
        let poisoned = state.poisoned.clone();
        let listener = state
            .listener
            .clone()
            .filter(|_| point.next_offset == state.durable.next_offset)
            .map(|l| (l, state.high_watermark()));
        drop(state);
        self.shared.durable_cv.notify_all();
        notify(ready, poisoned.clone(), listener);
        if let Some(reason) = poisoned {
            return Err(LogError::Poisoned(reason));
        }
        Ok(PendingAppend {
            info,
            shared: self.shared.clone(),
        })
    }

    /// Rolls to a new segment when the next `incoming` bytes would overflow the active one
    /// or it is too old. The old segment is synced first, so it is never part of a torn tail.
    fn maybe_roll(&self, state: &mut MutexGuard<'_, State>, incoming: u64) -> Result<Ready> {
        let active = state.active().clone();
        if active.size() == 0 {
            return Ok(Vec::new());
        }
        let too_big = active.size() + incoming > state.config.segment_bytes;
        // Age is wall-clock time since the segment's first append, not record timestamps:
        // producers replaying old events would otherwise roll a segment per append.
        let too_old = state.config.segment_age.is_some_and(|age| {
            let created = active.created_ms();
            created != i64::MIN && now_ms().saturating_sub(created) > age.as_millis() as i64
        });
        if too_big || too_old {
            return self.roll(state);
        }
        Ok(Vec::new())
    }

    /// Seals the active segment and starts a new one. Returns the durability callbacks the
    /// seal satisfied: the caller runs them once it has released the lock.
    fn roll(&self, state: &mut MutexGuard<'_, State>) -> Result<Ready> {
        let active = state.active().clone();
        if let Err(e) = active.seal() {
            let ready = state.poison(e.to_string());
            return Err(self.fail_after_unlock(state, ready));
        }
        let point = state.write_point();
        let ready = state.advance_durable(point);
        let next = state.next_offset;
        let segment = Arc::new(Segment::open(&self.shared.dir, next)?);
        recovery::sync_dir(&self.shared.dir)?;
        state.segments.insert(next, segment);
        let data = CheckpointData {
            clean: false,
            log_start: state.log_start,
            point: RecoveryPoint {
                segment: next,
                position: 0,
                next_offset: next,
            },
        };
        state.durable = data.point;
        state.checkpoint.write(&data, true)?;
        self.shared.durable_cv.notify_all();
        Ok(ready)
    }

    /// Poisoned-path helper: callbacks must see the error, but never under the lock, so
    /// they are handed to a short-lived thread (this path runs once per log at most).
    fn fail_after_unlock(&self, state: &mut MutexGuard<'_, State>, ready: Ready) -> LogError {
        let poisoned = state.poisoned.clone();
        self.shared.durable_cv.notify_all();
        if !ready.is_empty() {
            let poisoned = poisoned.clone();
            std::thread::spawn(move || notify(ready, poisoned, None));
        }
        LogError::Poisoned(poisoned.expect("called after poisoning"))
    }

    /// Reads whole batches starting with the one that contains `offset`, up to
    /// `max_bytes` (but always at least one whole batch). At the high watermark the result
    /// is empty; outside `[log start, high watermark]` it is [`LogError::OffsetOutOfRange`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let (segment, limit, hw, log_start, verify) = {
            let state = self.shared.lock();
            let hw = state.high_watermark();
            let log_start = state.log_start;
            if offset < log_start || offset > hw {
                return Err(LogError::OffsetOutOfRange {
                    requested: offset,
                    log_start,
                    high_watermark: hw,
                });
            }
            if offset == hw {
                return Ok(ReadResult {
                    bytes: Vec::new(),
                    high_watermark: hw,
                    log_start_offset: log_start,
                });
            }
            let (_, segment) = state
                .segments
                .range(..=offset)
                .next_back()
                .expect("offset within the log has a segment");
            let limit = readable_limit(&state, segment);
            (
                segment.clone(),
                limit,
                hw,
                log_start,
                state.config.verify_reads,
            )
        };
        let bytes = read_from_segment(&segment, offset, limit, max_bytes, verify)?;
        Ok(ReadResult {
            bytes,
            high_watermark: hw,
            log_start_offset: log_start,
        })
    }

    /// The first record whose timestamp is at or after `timestamp` (Kafka's ListOffsets).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let (segments, log_start, hw) = {
            let state = self.shared.lock();
            let segments: Vec<_> = state
                .segments
                .values()
                .map(|s| (s.clone(), readable_limit(&state, s)))
                .collect();
            (segments, state.log_start, state.high_watermark())
        };
        for (segment, limit) in segments {
            if segment.next_offset() <= log_start || segment.max_timestamp() < timestamp {
                continue;
            }
            let entry = segment
                .indexes
                .read()
                .expect("index lock")
                .entry_for_time(timestamp);
            let mut pos = u64::from(entry.position);
            let mut expected = segment.base + u64::from(entry.rel_offset);
            while pos < limit {
                let header = segment.read_header(pos)?;
                segment.check_header(&header, pos, expected, limit)?;
                let len = header.total_len() as u64;
                let last = header.last_offset() as u64;
                expected = last + 1;
                if header.max_timestamp >= timestamp && last >= log_start {
                    let raw = segment.read_at(pos, len as usize)?;
                    let decoded = crate::records::decode_batch(&raw)
                        .map_err(|e| segment.corrupt(pos, e.to_string()))?;
                    let found = decoded.records.iter().find(|r| {
                        r.timestamp >= timestamp
                            && r.offset as u64 >= log_start
                            && (r.offset as u64) < hw
                    });
                    if let Some(r) = found {
                        return Ok(Some(TimestampOffset {
                            offset: r.offset as u64,
                            timestamp: r.timestamp,
                        }));
                    }
                }
                pos += len;
            }
        }
        Ok(None)
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> u64 {
        self.shared.lock().log_start
    }

    /// One past the last offset readers can see: the durable end of the log.
    pub fn high_watermark(&self) -> u64 {
        self.shared.lock().high_watermark()
    }

    /// Bytes held in segment files.
    pub fn size_bytes(&self) -> u64 {
        self.shared.lock().segments.values().map(|s| s.size()).sum()
    }

    /// Number of segment files.
    pub fn segment_count(&self) -> usize {
        self.shared.lock().segments.len()
    }

    /// Calls `f` for the header of every readable batch from the one containing
    /// `from_offset` to the high watermark, in order.
    pub fn for_each_batch_header(
        &self,
        from_offset: u64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        let segments: Vec<_> = {
            let state = self.shared.lock();
            state
                .segments
                .values()
                .filter(|s| s.next_offset() > from_offset)
                .map(|s| (s.clone(), readable_limit(&state, s)))
                .collect()
        };
        for (segment, limit) in segments {
            if limit == 0 {
                continue;
            }
            let (mut pos, _) = segment.locate(from_offset.max(segment.base), limit)?;
            let mut expected = None;
            while pos < limit {
                let header = segment.read_header(pos)?;
                let base = expected.unwrap_or(header.base_offset as u64);
                segment.check_header(&header, pos, base, limit)?;
                f(&header);
                expected = Some(header.last_offset() as u64 + 1);
                pos += header.total_len() as u64;
            }
        }
        Ok(())
    }

    /// Makes everything written so far durable.
    pub fn flush(&self) -> Result<()> {
        let mut state = self.shared.lock();
        state.check_writable()?;
        let active = state.active().clone();
        let point = state.write_point();
        let ready = match active.sync_data() {
            Ok(()) => {
                state.unsynced_bytes = 0;
                state.unsynced_since = None;
                state.advance_durable(point)
            }
            Err(e) => state.poison(e.to_string()),
        };
        let poisoned = state.poisoned.clone();
        let listener = state.listener.clone().map(|l| (l, state.high_watermark()));
        drop(state);
        self.shared.durable_cv.notify_all();
        notify(ready, poisoned.clone(), listener);
        match poisoned {
            Some(reason) => Err(LogError::Poisoned(reason)),
            None => Ok(()),
        }
    }

    /// Kafka's DeleteRecords: makes `offset` the new start of the log (durably) and
    /// deletes the segments wholly before it. Returns the new log start offset.
    pub fn delete_records_before(&self, offset: u64) -> Result<u64> {
        let mut state = self.shared.lock();
        state.check_writable()?;
        let hw = state.high_watermark();
        if offset > hw {
            return Err(LogError::OffsetOutOfRange {
                requested: offset,
                log_start: state.log_start,
                high_watermark: hw,
            });
        }
        if offset <= state.log_start {
            return Ok(state.log_start);
        }
        // Deleting everything: roll, so the active segment can go too.
        let ready = if state.active().size() > 0 && state.next_offset <= offset {
            self.roll(&mut state)?
        } else {
            Vec::new()
        };
        let doomed = state
            .segments
            .values()
            .rev()
            .skip(1)
            .filter(|s| s.next_offset() <= offset)
            .count();
        let result = self.drop_segments(&mut state, doomed, offset);
        let log_start = state.log_start;
        drop(state);
        notify(ready, None, None);
        result.map(|_| log_start)
    }

    /// Applies time and size retention now.
    pub fn apply_retention(&self) -> Result<RetentionOutcome> {
        self.apply_retention_at(now_ms())
    }

    /// Applies time and size retention as if the wall clock read `now_ms`: whole segments
    /// go, oldest first, while they are older than the retention age or the log would still
    /// hold at least the retention size without them.
    pub fn apply_retention_at(&self, now_ms: i64) -> Result<RetentionOutcome> {
        let mut state = self.shared.lock();
        state.check_writable()?;
        let cutoff = state
            .config
            .retention_age
            .map(|age| now_ms.saturating_sub(age.as_millis() as i64));
        let limit = state.config.retention_bytes;
        // When everything has expired, the active segment is rolled so it can go too, as
        // Kafka does; otherwise the active segment is never deleted.
        let all_expired = cutoff.is_some_and(|c| {
            state.active().size() > 0 && state.segments.values().all(|s| s.max_timestamp() < c)
        });
        let ready = if all_expired {
            self.roll(&mut state)?
        } else {
            Vec::new()
        };
        let mut total: u64 = state.segments.values().map(|s| s.size()).sum();
        let mut doomed = 0;
        for s in state
            .segments
            .values()
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let by_time = cutoff.is_some_and(|c| s.max_timestamp() < c);
            let by_size = limit.is_some_and(|l| total.saturating_sub(s.size()) >= l);
            if !(by_time || by_size) {
                break;
            }
            total -= s.size();
            doomed += 1;
        }
        let result = self.drop_segments(&mut state, doomed, 0);
        let log_start_offset = state.log_start;
        drop(state);
        notify(ready, None, None);
        let (segments_deleted, bytes_deleted) = result?;
        Ok(RetentionOutcome {
            segments_deleted,
            bytes_deleted,
            log_start_offset,
        })
    }

    /// Deletes the `count` oldest segments (never the active one) and moves the log start
    /// to at least `min_log_start` and past them. The new start is recorded durably before
    /// any file is removed, so a crash in between only leaves files that the next open
    /// deletes.
    fn drop_segments(
        &self,
        state: &mut MutexGuard<'_, State>,
        count: usize,
        min_log_start: u64,
    ) -> Result<(usize, u64)> {
        let doomed: Vec<Arc<Segment>> = state.segments.values().take(count).cloned().collect();
        let past = doomed.last().map_or(0, |s| s.next_offset());
        let log_start = state.log_start.max(min_log_start).max(past);
        if log_start != state.log_start {
            state.log_start = log_start;
            let data = state.checkpoint_data(false);
            state.checkpoint.write(&data, true)?;
        }
        let mut bytes = 0;
        for s in &doomed {
            state.segments.remove(&s.base);
            bytes += s.size();
            s.remove_files()?;
        }
        Ok((doomed.len(), bytes))
    }

    /// Closes the log cleanly: syncs data and indexes and records a clean shutdown, so the
    /// next open scans nothing.
    pub fn close(mut self) -> Result<()> {
        self.shutdown()
    }

    /// Closes the log and deletes its directory.
    pub fn destroy(mut self) -> Result<()> {
        self.shutdown()?;
        let dir = self.shared.dir.clone();
        fs::remove_dir_all(&dir).map_err(|e| LogError::io("delete log directory", &dir, e))
    }

    fn shutdown(&mut self) -> Result<()> {
        {
            let mut state = self.shared.lock();
            if state.closed {
                return Ok(());
            }
            state.flusher_stop = true;
        }
        self.shared.flusher_cv.notify_all();
        if let Some(handle) = self.flusher.take() {
            let _ = handle.join();
        }
        let mut state = self.shared.lock();
        let result = (|| {
            if let Some(reason) = &state.poisoned {
                return Err(LogError::Poisoned(reason.clone()));
            }
            let active = state.active().clone();
            active.seal()?;
            let point = state.write_point();
            let ready = state.advance_durable(point);
            let data = state.checkpoint_data(true);
            state.checkpoint.write(&data, true)?;
            Ok(ready)
        })();
        state.closed = true;
        let waiters = std::mem::take(&mut state.waiters);
        drop(state);
        self.shared.durable_cv.notify_all();
        let result = result.map(|ready| notify(ready, None, None));
        for (_, _, cb) in waiters {
            cb(Err(LogError::Closed));
        }
        result
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(dir = %self.shared.dir.display(), error = %e, "log did not close cleanly");
        }
    }
}

/// How far readers may read in `segment`: all of a sealed segment, up to the durable point
/// in the segment that holds it.
fn readable_limit(state: &State, segment: &Segment) -> u64 {
    use std::cmp::Ordering;
    match segment.base.cmp(&state.durable.segment) {
        Ordering::Less => segment.size(),
        Ordering::Equal => state.durable.position,
        Ordering::Greater => 0,
    }
}

/// Finds the batch containing `offset` and reads whole batches from it, checking each
/// one (CRC when `verify`, and always the header fields the CRC does not cover).
fn read_from_segment(
    segment: &Segment,
    offset: u64,
    limit: u64,
    max_bytes: usize,
    verify: bool,
) -> Result<Vec<u8>> {
    let (pos, first) = segment.locate(offset, limit)?;
    let first_len = first.total_len() as u64;
    let want = (max_bytes as u64).max(first_len).min(limit - pos);
    let mut buf = segment.read_at(pos, want as usize)?;
    let mut end = 0usize;
    let mut expected = first.base_offset as u64;
    while end + batch::HEADER_LEN <= buf.len() {
        let at = pos + end as u64;
        let h = BatchHeader::parse(&buf[end..]).map_err(|e| segment.corrupt(at, e.to_string()))?;
        let len = h.total_len();
        if end + len > buf.len() && end > 0 {
            break; // the next batch does not fit in max_bytes
        }
        segment.check_header(&h, at, expected, limit)?;
        if verify {
            batch::validate(&buf[end..end + len])
                .map_err(|e| segment.corrupt(at, e.to_string()))?;
        }
        expected = h.last_offset() as u64 + 1;
        end += len;
    }
    buf.truncate(end);
    Ok(buf)
}

/// The group-commit flusher: one thread per log that syncs when writes are waiting.
fn flusher_loop(shared: &Shared) {
    let mut state = shared.lock();
    loop {
        if state.flusher_stop {
            return;
        }
        let due = match state.config.durability {
            Durability::GroupCommit {
                max_delay,
                max_bytes,
            } if state.unsynced_bytes > 0 => {
                let waited = state.unsynced_since.map_or(max_delay, |t| t.elapsed());
                if state.unsynced_bytes >= max_bytes || waited >= max_delay {
                    None
                } else {
                    Some(max_delay - waited)
                }
            }
            _ => {
                state = shared
                    .flusher_cv
                    .wait(state)
                    .unwrap_or_else(|p| p.into_inner());
                continue;
            }
        };
        if let Some(remaining) = due {
            state = shared
                .flusher_cv
                .wait_timeout(state, remaining)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            continue;
        }
        if state.poisoned.is_some() || state.closed {
            state.unsynced_bytes = 0;
            continue;
        }
        let active = state.active().clone();
        let point = state.write_point();
        state.unsynced_bytes = 0;
        state.unsynced_since = None;
        drop(state);
        let result = active.sync_data();
        state = shared.lock();
        let ready = match result {
            Ok(()) => state.advance_durable(point),
            Err(e) => state.poison(e.to_string()),
        };
        let poisoned = state.poisoned.clone();
        let listener = state.listener.clone().map(|l| (l, state.high_watermark()));
        drop(state);
        shared.durable_cv.notify_all();
        notify(ready, poisoned, listener);
        state = shared.lock();
    }
}
