//! Per-log configuration.

use std::time::Duration;

/// When an append counts as durable, and so when it is acknowledged and becomes visible
/// to readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Every append is followed by its own `fdatasync` before it returns.
    EveryAppend,
    /// Appends are written at once and acknowledged after a shared `fdatasync` that
    /// covers their bytes. A sync starts when the oldest unsynced write is `max_delay`
    /// old or `max_bytes` are waiting, whichever comes first; with a zero delay a sync
    /// starts as soon as the previous one finished and anything is waiting, so concurrent
    /// writers share fsyncs without any added latency.
    GroupCommit {
        /// Longest an unsynced write waits for company before a sync starts.
        max_delay: Duration,
        /// Pending bytes that start a sync at once.
        max_bytes: u64,
    },
    /// Never fsync on the write path: data reaches the page cache and survives a process
    /// crash but not a power loss. Segments are still synced when they roll and on close.
    Never,
}

impl Durability {
    /// Group commit with no added delay: the default.
    pub const fn group_commit() -> Self {
        Durability::GroupCommit {
            max_delay: Duration::ZERO,
            max_bytes: 4 << 20,
        }
    }

    /// Whether acknowledged writes are on stable storage.
    pub fn is_durable(&self) -> bool {
        !matches!(self, Durability::Never)
    }
}

impl Default for Durability {
    fn default() -> Self {
        Self::group_commit()
    }
}

/// Settings of one log. All can be changed on an open log with [`crate::Log::set_config`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// A segment rolls when the next batch would make it larger than this (bytes).
    /// At most [`MAX_SEGMENT_BYTES`], because index positions are 32-bit.
    pub segment_bytes: u64,
    /// A segment rolls when its first append was longer ago than this (wall-clock time,
    /// not record timestamps; see docs/adr/0003-segment-age-by-wall-clock.md).
    pub segment_age: Option<Duration>,
    /// Retention keeps at most this many bytes (whole segments are deleted, oldest first).
    pub retention_bytes: Option<u64>,
    /// Retention deletes segments whose newest timestamp is older than this.
    pub retention_age: Option<Duration>,
    /// When appends are acknowledged.
    pub durability: Durability,
    /// Bytes between two offset-index entries (and time-index entries).
    pub index_interval_bytes: u32,
    /// Largest batch accepted by `append`, in bytes (Kafka's `max.message.bytes`).
    pub max_batch_bytes: u32,
    /// Check the CRC of every batch returned by a read.
    pub verify_reads: bool,
    /// Stamp every appended batch with the append time (Kafka's
    /// `message.timestamp.type=LogAppendTime`): records then carry the broker's clock,
    /// which the time index and age retention use, instead of the producer's timestamps.
    pub log_append_time: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_age: Some(Duration::from_secs(7 * 24 * 3600)),
            retention_bytes: None,
            retention_age: Some(Duration::from_secs(7 * 24 * 3600)),
            durability: Durability::default(),
            index_interval_bytes: 4096,
            max_batch_bytes: 1024 * 1024 + 12,
            verify_reads: true,
            log_append_time: false,
        }
    }
}

/// Largest `segment_bytes`. A segment may exceed its target by one batch (a batch larger
/// than a segment gets a segment of its own), so the two limits together keep every
/// position below 3 GiB, inside the index format's 32-bit positions.
pub const MAX_SEGMENT_BYTES: u64 = 1 << 31;
/// Largest `max_batch_bytes`.
pub const MAX_BATCH_BYTES: u64 = 1 << 30;

impl LogConfig {
    /// Checks the settings, returning what is wrong in words a user can act on.
    pub fn validate(&self) -> Result<(), String> {
        if self.segment_bytes < 1024 || self.segment_bytes > MAX_SEGMENT_BYTES {
            return Err(format!(
                "segment_bytes must be between 1024 and {MAX_SEGMENT_BYTES}, got {}",
                self.segment_bytes
            ));
        }
        if self.index_interval_bytes == 0 {
            return Err("index_interval_bytes must be at least 1".into());
        }
        if self.max_batch_bytes == 0 || u64::from(self.max_batch_bytes) > MAX_BATCH_BYTES {
            return Err(format!(
                "max_batch_bytes must be between 1 and {MAX_BATCH_BYTES}, got {}",
                self.max_batch_bytes
            ));
        }
        Ok(())
    }
}
