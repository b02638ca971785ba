//! The shared state behind the log lock, durability tracking, and the group-commit flusher.

use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Instant,
};

use super::AppendInfo;
use crate::{
    checkpoint::{Checkpoint, CheckpointData, RecoveryPoint},
    config::{Durability, LogConfig},
    error::{LogError, Result},
    segment::Segment,
};

pub(super) type DurableCallback = Box<dyn FnOnce(Result<AppendInfo>) + Send>;
/// Callbacks whose appends became durable, to run once the lock is released.
pub(super) type Ready = Vec<(AppendInfo, DurableCallback)>;
pub(super) type WatermarkListener = Arc<dyn Fn(u64) + Send + Sync>;

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
    pub(super) unsynced_bytes: u64,
    pub(super) unsynced_since: Option<Instant>,
    pub(super) waiters: Vec<(u64, AppendInfo, DurableCallback)>,
    pub(super) listener: Option<WatermarkListener>,
    pub(super) flusher_stop: bool,
}

impl State {
    pub(super) fn active(&self) -> &Arc<Segment> {
        self.segments
            .values()
            .next_back()
            .expect("a log always has a segment")
    }

    /// One past the last offset readers may see.
    pub(super) fn high_watermark(&self) -> u64 {
        self.durable.next_offset
    }

    pub(super) fn check_writable(&self) -> Result<()> {
        if self.closed {
            return Err(LogError::Closed);
        }
        if let Some(reason) = &self.poisoned {
            return Err(LogError::Poisoned(reason.clone()));
        }
        Ok(())
    }

    pub(super) fn write_point(&self) -> RecoveryPoint {
        let active = self.active();
        RecoveryPoint {
            segment: active.base,
            position: active.size(),
            next_offset: self.next_offset,
        }
    }

    pub(super) fn checkpoint_data(&self, clean: bool) -> CheckpointData {
        CheckpointData {
            clean,
            log_start: self.log_start,
            point: self.durable,
        }
    }

    /// Moves the durable point forward and takes the callbacks it satisfies.
    pub(super) fn advance_durable(&mut self, point: RecoveryPoint) -> Ready {
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

    pub(super) fn poison(&mut self, reason: String) -> Ready {
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
    pub(super) durable_cv: Condvar,
    /// Signalled when there is something for the flusher to do.
    pub(super) flusher_cv: Condvar,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs callbacks and the watermark listener outside the lock.
pub(super) fn notify(
    ready: Ready,
    poisoned: Option<Arc<str>>,
    listener: Option<(WatermarkListener, u64)>,
) {
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

/// A written append whose durability may still be pending (see
/// [`Log::append_deferred`](super::Log::append_deferred)).
#[must_use = "an append is acknowledged only once it is durable: wait for it"]
pub struct PendingAppend {
    pub(super) info: AppendInfo,
    pub(super) shared: Arc<Shared>,
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

/// The group-commit flusher: one thread per log that syncs when writes are waiting.
pub(super) fn flusher_loop(shared: &Shared) {
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
