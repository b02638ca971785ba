//! Errors of log operations.

use std::{io, path::PathBuf, sync::Arc, time::Duration};

use thiserror::Error;

use herald_format::batch::BatchError;

/// What went wrong in a log operation. Each variant carries what a user needs to act.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LogError {
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What the log was doing.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// An appended buffer is not a valid sequence of v2 record batches; nothing was written.
    #[error("invalid record batch at byte {position} of the appended buffer: {source}")]
    InvalidBatch {
        /// Byte position of the bad batch within the appended buffer.
        position: usize,
        /// What is wrong with it.
        #[source]
        source: BatchError,
    },
    /// An appended batch is larger than `max_batch_bytes`; nothing was written.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    BatchTooLarge {
        /// Size of the batch.
        size: usize,
        /// The configured maximum.
        max: u32,
    },
    /// An append of zero bytes.
    #[error("nothing to append: the buffer is empty")]
    EmptyAppend,
    /// Stored data failed validation where it cannot be a torn tail.
    #[error("corrupt log data in {path} at byte {position}: {reason}")]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage within that file.
        position: u64,
        /// What check failed.
        reason: String,
    },
    /// A read asked for an offset the log does not have.
    #[error("offset {requested} is out of range: the log holds [{log_start}, {high_watermark})")]
    OffsetOutOfRange {
        /// The offset asked for.
        requested: u64,
        /// First offset still in the log.
        log_start: u64,
        /// One past the last readable offset.
        high_watermark: u64,
    },
    /// An earlier fsync failed; the log refuses writes until it is reopened, because the
    /// kernel may have dropped the dirty pages that failed.
    #[error("log is poisoned by an earlier failed fsync ({0}); reopen it to recover")]
    Poisoned(Arc<str>),
    /// Another process holds the log directory.
    #[error("log directory {0} is locked by another process; stop it or use another directory")]
    Locked(PathBuf),
    /// The log was closed.
    #[error("log is closed")]
    Closed,
    /// A configuration value is out of range.
    #[error("invalid log configuration: {0}")]
    InvalidConfig(String),
    /// A log operation handed to another thread (a blocking task) panicked or was
    /// cancelled before it returned; whether it took effect is unknown.
    #[error("{op}: the task running it did not finish: {reason}")]
    TaskJoin {
        /// What the task was doing.
        op: &'static str,
        /// Why it did not finish, as the task runtime reports it.
        reason: String,
    },
    /// A wait on the log gave up.
    #[error("{op}: timed out after {after:?}")]
    Timeout {
        /// What was being waited for.
        op: &'static str,
        /// How long it waited.
        after: Duration,
    },
}

impl LogError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        LogError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Result alias for log operations.
pub type Result<T, E = LogError> = std::result::Result<T, E>;
