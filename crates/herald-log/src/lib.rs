//! herald-log: the durable partition log under Herald.
//!
//! A [`Log`] is one directory of segment files holding Kafka v2 record batches exactly
//! as producers sent them, with offsets assigned by rewriting each batch's base offset.
//! Around them: a sparse offset index and time index per segment, a checkpoint file that
//! tells recovery where to start, and an exclusive lock on the directory.
//!
//! - [`Log::append`] validates framing, magic and CRC-32C, assigns offsets and returns
//!   once the batch is durable under the log's [`Durability`] policy: an fsync per append,
//!   a group commit shared by concurrent writers, or none.
//! - [`Log::read`] returns whole batches starting with the one that holds the offset.
//! - [`Log::open`] recovers after a crash: a torn tail is cut off, damage anywhere else
//!   is refused with an error naming the file and byte.
//! - A failed fsync poisons the log: every later write fails until it is reopened.
//!
//! The byte layout of every file is in `docs/design.md`; the batch format itself (and
//! building and decoding batches) is `herald-format`'s.
//!
//! ```
//! use herald_format::records::{BatchBuilder, Compression};
//! use herald_log::{Log, LogConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let log = Log::open(dir.path(), LogConfig::default())?;
//! let mut batch = BatchBuilder::new(Compression::None)
//!     .push(1_700_000_000_000, Some(b"order-1"), Some(b"placed"), &[])
//!     .build()?;
//! let info = log.append(&mut batch)?;
//! assert_eq!(info.base_offset, 0);
//! let read = log.read(0, 1 << 20)?;
//! assert_eq!(read.bytes, batch);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod checkpoint;
mod clock;
pub mod config;
pub mod error;
mod index;
mod log;
mod recovery;
mod segment;
#[cfg(test)]
mod tests;

pub use config::{Durability, LogConfig};
pub use error::LogError;
pub use log::{AppendInfo, Log, PendingAppend, ReadResult, RetentionOutcome, TimestampOffset};
pub use recovery::RecoveryReport;
