//! Retention by time and size, and DeleteRecords.

use std::sync::{Arc, MutexGuard};

use super::{
    Log,
    state::{State, notify},
};
use crate::{
    clock::now_ms,
    error::{LogError, Result},
    segment::Segment,
};

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

impl Log {
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
}
