//! The partition log: a directory of segments behind one writer lock.

mod read;
mod retention;
mod state;

pub use read::{ReadResult, TimestampOffset};
pub use retention::RetentionOutcome;
pub use state::PendingAppend;
use state::{Ready, Shared, State, flusher_loop, notify};

use std::{
    fs::{self, File},
    path::Path,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    thread::JoinHandle,
    time::Instant,
};

use herald_format::batch;

use crate::{
    checkpoint::{CheckpointData, RecoveryPoint},
    clock::now_ms,
    config::{Durability, LogConfig},
    error::{LogError, Result},
    recovery::{self, RecoveryReport},
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
    /// The append time stamped on the batches, when the log stamps them
    /// ([`LogConfig::log_append_time`](crate::LogConfig::log_append_time)).
    pub log_append_time: Option<i64>,
}

/// A durable, segmented, append-only log of Kafka v2 record batches.
///
/// `Log` is `Send + Sync`: share it behind an `Arc`. Appends are serialised by one lock;
/// reads take it only for a moment and do their I/O outside it.
pub struct Log {
    pub(super) shared: Arc<Shared>,
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
        let mut checked = batch::validate_batches(batches).map_err(|e| LogError::InvalidBatch {
            position: e.position,
            source: e.error,
        })?;
        self.append_validated(&mut checked)
    }

    /// [`append_deferred`](Self::append_deferred) for batches the caller already checked
    /// with [`batch::validate_batches`]: their CRCs are not computed again. The check
    /// holds the bytes it checked, so nothing else can be passed in its place; offsets
    /// are assigned in them as in `append_deferred`.
    pub fn append_validated<B: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        batches: &mut batch::ValidatedBatches<B>,
    ) -> Result<PendingAppend> {
        if batches.bytes().is_empty() {
            return Err(LogError::EmptyAppend);
        }
        let mut state = self.shared.lock();
        state.check_writable()?;
        let max = state.config.max_batch_bytes;
        if let Some((_, h)) = batches
            .headers()
            .iter()
            .find(|(_, h)| h.total_len() > max as usize)
        {
            return Err(LogError::BatchTooLarge {
                size: h.total_len(),
                max,
            });
        }
        let len = batches.bytes().len();
        let mut ready = self.maybe_roll(&mut state, len as u64)?;
        let base_offset = state.next_offset;
        let next = batches.assign_offsets(base_offset as i64, batch::STORED_LEADER_EPOCH) as u64;
        if state.config.log_append_time {
            // The broker's wall clock, as Kafka stamps it.
            batches.stamp_log_append_time(now_ms());
        }
        let max_timestamp = batches
            .headers()
            .iter()
            .map(|(_, h)| h.max_timestamp)
            .fold(i64::MIN, i64::max);
        let active = state.active().clone();
        let start = active.size();
        use std::os::unix::fs::FileExt;
        active
            .file
            .write_all_at(batches.bytes(), start)
            .map_err(|e| LogError::io("write segment", &active.path, e))?;
        let interval = state.config.index_interval_bytes;
        for (pos, h) in batches.headers() {
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
            bytes: len,
            log_append_time: state.config.log_append_time.then_some(max_timestamp),
        };
        let point = state.write_point();
        ready.extend(match state.config.durability {
            Durability::EveryAppend => match active.sync_data() {
                Ok(()) => state.advance_durable(point),
                Err(e) => state.poison(e.to_string()),
            },
            Durability::Never => state.advance_durable(point),
            Durability::GroupCommit { .. } => {
                state.unsynced_bytes += len as u64;
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
    pub(super) fn roll(&self, state: &mut MutexGuard<'_, State>) -> Result<Ready> {
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
