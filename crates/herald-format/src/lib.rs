//! herald-format: the Kafka data formats Herald speaks, with no I/O.
//!
//! Record batches v2 and the records inside them (encode, decode, validate), record
//! headers, CRC-32C, the compression codecs, Kafka's default partitioner, and the SDK's
//! CloudEvents envelope and typed (JSON) events with their mapping onto a record. The log, the broker and the SDK
//! all build and read batches and events through this crate; it opens no file or socket
//! and runs no async code.
//!
//! ```
//! use herald_format::{batch, records::{BatchBuilder, Compression, decode_batch}};
//!
//! let bytes = BatchBuilder::new(Compression::Zstd)
//!     .push(1_700_000_000_000, Some(b"order-1"), Some(b"placed"), &[])
//!     .build()?;
//! assert_eq!(batch::validate(&bytes)?.record_count, 1);
//! assert_eq!(decode_batch(&bytes)?.records[0].value.as_deref(), Some(&b"placed"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

pub mod batch;
pub mod client;
pub mod envelope;
pub mod event;
pub mod partitioner;
pub mod records;
pub mod rfc3339;

pub use batch::BatchError;
pub use envelope::{Envelope, EnvelopeError};
pub use event::{Event, EventError};
pub use records::{Header, RecordError};
