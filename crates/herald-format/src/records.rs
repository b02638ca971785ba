//! Records inside a v2 batch: encoding, decoding, compression.
//!
//! After the 61-byte batch header (see [`crate::batch`]) come `record count` records,
//! compressed together as one block when the batch attributes name a codec. Each record
//! is (varint = zig-zag, as in protobuf):
//!
//! | field | type |
//! | --- | --- |
//! | length | varint: bytes of the record after this field |
//! | attributes | i8, unused (0) |
//! | timestamp delta | varlong, from the batch base timestamp |
//! | offset delta | varint, from the batch base offset |
//! | key length, key | varint (-1 = null), bytes |
//! | value length, value | varint (-1 = null), bytes |
//! | header count | varint |
//! | per header: key length, key, value length, value | varint, UTF-8; varint (-1 = null), bytes |
//!
//! Everything here reads untrusted bytes: lengths and counts are checked against the bytes
//! actually present before they are used, decompression is capped
//! ([`DEFAULT_MAX_UNCOMPRESSED`]), and every malformation is a [`RecordError`].
//!
//! ```
//! use herald_format::records::{decode_batch, BatchBuilder, Compression, Header};
//!
//! let batch = BatchBuilder::new(Compression::Lz4)
//!     .push(1_000, Some(b"k".as_slice()), Some(b"v1".as_slice()), &[Header::new("h", "x")])
//!     .push(1_005, None, Some(b"v2".as_slice()), &[])
//!     .build()
//!     .unwrap();
//! let decoded = decode_batch(&batch).unwrap();
//! assert_eq!(decoded.records[1].offset, 1);
//! assert_eq!(decoded.records[1].timestamp, 1_005);
//! ```

mod builder;
mod compression;
mod varint;

use std::io;

use thiserror::Error;

use crate::batch::{
    self, ATTR_TIMESTAMP_TYPE, BatchError, BatchHeader, HEADER_LEN, ValidatedBatch,
};
pub use builder::BatchBuilder;
pub use compression::{Compression, DEFAULT_MAX_UNCOMPRESSED};
use varint::{Reader, put_varint, put_varlong, varint_len, varlong_len};

/// The smallest possible record: seven one-byte fields. Bounds preallocation by the bytes
/// present rather than by the count a batch claims.
const MIN_RECORD_LEN: usize = 7;

/// Why bytes are not valid records, or records cannot be encoded.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The batch header is invalid (length, magic, CRC, negative counts).
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The attributes name a codec id that Kafka does not define (5 to 7).
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// The compressed records section is corrupt.
    #[error("{codec:?} records section is corrupt: {source}")]
    Decompress {
        /// The batch's codec.
        codec: Compression,
        /// What the codec reported.
        #[source]
        source: io::Error,
    },
    /// The records section inflates past the allowed size (a likely zip bomb).
    #[error("{codec:?} records section inflates past the {limit}-byte limit")]
    TooLarge {
        /// The batch's codec.
        codec: Compression,
        /// The limit in bytes.
        limit: usize,
    },
    /// Compression failed while building a batch.
    #[error("{codec:?} compression failed: {source}")]
    Compress {
        /// The codec in use.
        codec: Compression,
        /// What the codec reported.
        #[source]
        source: io::Error,
    },
    /// The input ends in the middle of a field.
    #[error("input ends inside {field}: {needed} bytes needed, {remaining} left")]
    Truncated {
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes that were left.
        remaining: usize,
    },
    /// A varint runs past 5 bytes or a varlong past 10.
    #[error("{field} is an over-long varint")]
    VarintTooLong {
        /// The field being read.
        field: &'static str,
    },
    /// A length or count is negative (below -1 where -1 means null).
    #[error("{field} is {value}, which is not a valid length")]
    InvalidLength {
        /// The field being read.
        field: &'static str,
        /// The value found.
        value: i64,
    },
    /// A record's fields do not fill exactly the length the record declares.
    #[error("record declares {declared} bytes but its fields end after {used}")]
    RecordLength {
        /// Bytes the length prefix declares.
        declared: usize,
        /// Bytes the fields took.
        used: usize,
    },
    /// The records section holds fewer records than the header's record count.
    #[error("batch declares {declared} records but holds only {found}")]
    MissingRecords {
        /// The header's record count.
        declared: i32,
        /// Records found before the section ended.
        found: usize,
    },
    /// Bytes remain after the header's record count of records.
    #[error("{count} bytes follow the last of the batch's declared records")]
    TrailingBytes {
        /// How many bytes are left over.
        count: usize,
    },
    /// A record in a batch is malformed.
    #[error("record {index} of the batch: {source}")]
    InRecord {
        /// Position of the record in the batch, from 0.
        index: usize,
        /// What is wrong with it.
        #[source]
        source: Box<RecordError>,
    },
    /// Something to encode does not fit the format's i32 lengths and counts.
    #[error("{what} of {len} does not fit in a record batch")]
    Oversized {
        /// What is too large (key, value, header, record, record count, batch).
        what: &'static str,
        /// Its size.
        len: usize,
    },
    /// A batch was built without records; Kafka batches hold at least one.
    #[error("a record batch needs at least one record")]
    EmptyBatch,
}

/// A record header. Keys may repeat; order is kept. The one header type of Herald: the
/// batch codec, the broker and the SDK (`herald::transport::Header`) all use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Header {
    /// Header key.
    pub key: String,
    /// Header value; `None` is a null value, distinct from an empty one.
    pub value: Option<Vec<u8>>,
}

impl Header {
    /// A header with a value.
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self {
            key: key.into(),
            value: Some(value.into()),
        }
    }

    /// A header with a null value.
    pub fn null(key: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            value: None,
        }
    }

    /// The value as UTF-8 text, if it is present and valid.
    pub fn value_str(&self) -> Option<&str> {
        self.value
            .as_deref()
            .and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// The value of the last header named `key`, as text.
pub fn header_str<'a>(headers: &'a [Header], key: &str) -> Option<&'a str> {
    headers
        .iter()
        .rev()
        .find(|h| h.key == key)
        .and_then(Header::value_str)
}

/// One record as encoded inside a batch: positions relative to the batch header.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Record {
    /// Offset relative to the batch base offset.
    pub offset_delta: i32,
    /// Timestamp relative to the batch base timestamp, in milliseconds.
    pub timestamp_delta: i64,
    /// Key; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is null (a tombstone in compacted topics).
    pub value: Option<Vec<u8>>,
    /// Headers in order, duplicates kept.
    pub headers: Vec<Header>,
}

impl Record {
    /// Appends the record's v2 encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        encode_record(
            out,
            self.offset_delta,
            self.timestamp_delta,
            self.key.as_deref(),
            self.value.as_deref(),
            &self.headers,
        )
        .map_err(RecordError::from)
    }

    /// Decodes one record from the start of `bytes`; returns it with the bytes it took.
    pub fn decode(bytes: &[u8]) -> Result<(Record, usize), RecordError> {
        let mut reader = Reader::new(bytes);
        let raw = RawRecord::parse(&mut reader)?;
        let record = Record {
            offset_delta: raw.offset_delta,
            timestamp_delta: raw.timestamp_delta,
            key: raw.key.map(<[u8]>::to_vec),
            value: raw.value.map(<[u8]>::to_vec),
            headers: raw.headers()?,
        };
        Ok((record, reader.position()))
    }
}

/// A record read from a batch, at its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DecodedRecord {
    /// Absolute offset: batch base offset plus offset delta.
    pub offset: i64,
    /// Timestamp in ms: base timestamp plus delta, or the batch max timestamp when the
    /// batch uses log-append time.
    pub timestamp: i64,
    /// Key; `None` is null.
    pub key: Option<Vec<u8>>,
    /// Value; `None` is null.
    pub value: Option<Vec<u8>>,
    /// Headers in order, duplicates kept.
    pub headers: Vec<Header>,
}

/// A whole batch read back: its header and its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedBatch {
    /// The parsed batch header.
    pub header: BatchHeader,
    /// The records in batch order.
    pub records: Vec<DecodedRecord>,
}

impl DecodedBatch {
    /// The batch codec (the header's id was checked while decoding).
    pub fn compression(&self) -> Compression {
        Compression::from_id(self.header.compression()).unwrap_or_default()
    }

    /// Whether record timestamps are the broker's log-append time.
    pub fn is_log_append_time(&self) -> bool {
        self.header.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
}

/// One whole batch `batch` with its records compressed with `target` instead, as a
/// broker rewrites a produced batch for a topic whose `compression.type` is not
/// `producer`: the same producer id, epoch and base sequence, transactional flag,
/// leader epoch, record timestamps, keys, values and headers, in the same order. `None`
/// when there is nothing to do: the batch already uses `target`, or it is a control
/// batch (which Kafka never recompresses). The input is checked in full first (CRC
/// included), as [`decode_batch`] checks it.
pub fn recompress(batch: &[u8], target: Compression) -> Result<Option<Vec<u8>>, RecordError> {
    let decoded = decode_batch(batch)?;
    let header = &decoded.header;
    if decoded.compression() == target || header.is_control() {
        return Ok(None);
    }
    let mut builder = BatchBuilder::new(target);
    builder
        .producer(
            header.producer_id,
            header.producer_epoch,
            header.base_sequence,
        )
        .transactional(header.is_transactional())
        .partition_leader_epoch(header.partition_leader_epoch);
    if decoded.is_log_append_time() {
        builder.log_append_time(header.max_timestamp);
    }
    for r in &decoded.records {
        builder.push(
            r.timestamp,
            r.key.as_deref(),
            r.value.as_deref(),
            &r.headers,
        );
    }
    builder.build().map(Some)
}

/// Decodes the whole batches at the front of `bytes` (a log read: whole batches, maybe
/// followed by a partial one, which is skipped), in order. Each is checked as
/// [`decode_batch`] checks it.
pub fn decode_batches(
    bytes: &[u8],
) -> impl Iterator<Item = Result<DecodedBatch, RecordError>> + '_ {
    let mut rest = bytes;
    std::iter::from_fn(move || {
        let header = BatchHeader::parse(rest).ok()?;
        let len = header.total_len();
        if len == 0 || len > rest.len() {
            return None;
        }
        let (batch, after) = rest.split_at(len);
        rest = after;
        Some(decode_batch(batch))
    })
}

/// Validates one complete batch (length, magic, CRC) and decodes all its records,
/// decompressing up to [`DEFAULT_MAX_UNCOMPRESSED`] bytes.
pub fn decode_batch(batch: &[u8]) -> Result<DecodedBatch, RecordError> {
    decode_batch_with_limit(batch, DEFAULT_MAX_UNCOMPRESSED)
}

/// [`decode_batch`] with a caller-chosen cap on the uncompressed records section.
pub fn decode_batch_with_limit(
    batch: &[u8],
    max_uncompressed: usize,
) -> Result<DecodedBatch, RecordError> {
    let header = batch::validate(batch)?;
    decode_records(header, batch, max_uncompressed)
}

/// [`decode_batch`] of one batch that [`validate_batches`](batch::validate_batches)
/// already checked: the framing and CRC are not checked again; the records section is, in
/// full, as always.
pub fn decode_validated(batch: ValidatedBatch<'_>) -> Result<DecodedBatch, RecordError> {
    decode_records(*batch.header(), batch.bytes(), DEFAULT_MAX_UNCOMPRESSED)
}

/// Decodes the records of `batch`, whose `header` is checked.
fn decode_records(
    header: BatchHeader,
    batch: &[u8],
    max_uncompressed: usize,
) -> Result<DecodedBatch, RecordError> {
    let codec = Compression::from_id(header.compression())?;
    let section = codec.decompress_cow(&batch[HEADER_LEN..], max_uncompressed)?;
    let declared = usize::try_from(header.record_count).unwrap_or(0);
    let mut records = Vec::with_capacity(declared.min(section.len() / MIN_RECORD_LEN));
    for item in RawRecords::new(&header, &section) {
        let (index, offset, timestamp, raw) = item?;
        let headers = raw.headers().map_err(|e| in_record(index, e))?;
        records.push(DecodedRecord {
            offset,
            timestamp,
            key: raw.key.map(<[u8]>::to_vec),
            value: raw.value.map(<[u8]>::to_vec),
            headers,
        });
    }
    Ok(DecodedBatch { header, records })
}

/// The offset and timestamp of the batch's first record (in batch order) whose timestamp
/// is at or after `timestamp`, as Kafka's ListOffsets answers it; `None` if there is none.
///
/// Like Kafka, a batch whose max timestamp is below `timestamp` is skipped without
/// decompressing it; a log-append-time batch answers with its first record.
pub fn first_record_at_or_after(
    batch: &[u8],
    timestamp: i64,
) -> Result<Option<(i64, i64)>, RecordError> {
    let (header, codec) = open(batch)?;
    if header.max_timestamp < timestamp {
        return Ok(None);
    }
    let section = codec.decompress_cow(&batch[HEADER_LEN..], DEFAULT_MAX_UNCOMPRESSED)?;
    for item in RawRecords::new(&header, &section) {
        let (_, offset, ts, _) = item?;
        if ts >= timestamp {
            return Ok(Some((offset, ts)));
        }
    }
    Ok(None)
}

fn open(batch: &[u8]) -> Result<(BatchHeader, Compression), RecordError> {
    let header = batch::validate(batch)?;
    let codec = Compression::from_id(header.compression())?;
    Ok((header, codec))
}

fn in_record(index: usize, source: RecordError) -> RecordError {
    RecordError::InRecord {
        index,
        source: Box::new(source),
    }
}

/// The part of [`RecordError::Oversized`] that the builder keeps until `build`.
#[derive(Debug, Clone, Copy)]
struct Oversized(&'static str, usize);

impl From<Oversized> for RecordError {
    fn from(Oversized(what, len): Oversized) -> Self {
        RecordError::Oversized { what, len }
    }
}

/// Encodes from borrowed parts so the builder never copies keys and values into a
/// [`Record`] first.
fn encode_record(
    out: &mut Vec<u8>,
    offset_delta: i32,
    timestamp_delta: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[Header],
) -> Result<(), Oversized> {
    let mut body = 1 + varlong_len(timestamp_delta) + varint_len(offset_delta);
    body += nullable_len("key", key)? + nullable_len("value", value)?;
    body += varint_len(len_i32("header count", headers.len())?);
    for h in headers {
        body += nullable_len("header key", Some(h.key.as_bytes()))?;
        body += nullable_len("header value", h.value.as_deref())?;
    }
    let body_i32 = len_i32("record", body)?;
    out.reserve(varint_len(body_i32) + body);
    put_varint(out, body_i32);
    out.push(0);
    put_varlong(out, timestamp_delta);
    put_varint(out, offset_delta);
    put_nullable(out, key);
    put_nullable(out, value);
    put_varint(out, headers.len() as i32);
    for h in headers {
        put_nullable(out, Some(h.key.as_bytes()));
        put_nullable(out, h.value.as_deref());
    }
    Ok(())
}

fn len_i32(what: &'static str, len: usize) -> Result<i32, Oversized> {
    i32::try_from(len).map_err(|_| Oversized(what, len))
}

fn nullable_len(what: &'static str, bytes: Option<&[u8]>) -> Result<usize, Oversized> {
    Ok(match bytes {
        None => varint_len(-1),
        Some(b) => varint_len(len_i32(what, b.len())?) + b.len(),
    })
}

fn put_nullable(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
    match bytes {
        None => put_varint(out, -1),
        Some(b) => {
            put_varint(out, b.len() as i32);
            out.extend_from_slice(b);
        }
    }
}

/// A record parsed in place. Headers are checked for well-formedness but kept as bytes,
/// so scanning timestamps allocates nothing.
struct RawRecord<'a> {
    timestamp_delta: i64,
    offset_delta: i32,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
    header_count: usize,
    header_bytes: &'a [u8],
}

impl<'a> RawRecord<'a> {
    fn parse(reader: &mut Reader<'a>) -> Result<Self, RecordError> {
        let declared = reader.length("record length")?;
        let body = reader.take(declared, "record")?;
        let mut r = Reader::new(body);
        r.i8("record attributes")?;
        let timestamp_delta = r.varlong("timestamp delta")?;
        let offset_delta = r.varint("offset delta")?;
        let key = r.nullable_bytes("record key")?;
        let value = r.nullable_bytes("record value")?;
        let header_count = r.length("header count")?;
        let headers_start = r.position();
        // Each header takes at least two bytes, so a huge count fails on the bytes
        // actually present; nothing is allocated from it.
        for _ in 0..header_count {
            let key_len = r.length("header key length")?;
            r.take(key_len, "header key")?;
            r.nullable_bytes("header value")?;
        }
        let used = r.position();
        if r.remaining() != 0 {
            return Err(RecordError::RecordLength { declared, used });
        }
        let header_bytes = &body[headers_start..used];
        Ok(Self {
            timestamp_delta,
            offset_delta,
            key,
            value,
            header_count,
            header_bytes,
        })
    }

    fn headers(&self) -> Result<Vec<Header>, RecordError> {
        let mut r = Reader::new(self.header_bytes);
        let mut headers = Vec::with_capacity(self.header_count.min(self.header_bytes.len() / 2));
        for _ in 0..self.header_count {
            let key_len = r.length("header key length")?;
            // Lossy like Java's consumer, which decodes keys with String(bytes, UTF_8):
            // a client that sends a non-UTF-8 key should not make the batch unreadable.
            let key = String::from_utf8_lossy(r.take(key_len, "header key")?).into_owned();
            let value = r.nullable_bytes("header value")?.map(<[u8]>::to_vec);
            headers.push(Header { key, value });
        }
        Ok(headers)
    }
}

/// Iterates the records of a (decompressed) records section, yielding
/// `(index, absolute offset, timestamp, record)` and checking the header's record count.
struct RawRecords<'h, 'a> {
    header: &'h BatchHeader,
    reader: Reader<'a>,
    index: usize,
    done: bool,
}

impl<'h, 'a> RawRecords<'h, 'a> {
    fn new(header: &'h BatchHeader, section: &'a [u8]) -> Self {
        Self {
            header,
            reader: Reader::new(section),
            index: 0,
            done: false,
        }
    }
}

impl<'a> Iterator for RawRecords<'_, 'a> {
    type Item = Result<(usize, i64, i64, RawRecord<'a>), RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let declared = self.header.record_count;
        let result = if self.index as i64 >= i64::from(declared) {
            self.done = true;
            match self.reader.remaining() {
                0 => return None,
                count => Err(RecordError::TrailingBytes { count }),
            }
        } else if self.reader.remaining() == 0 {
            Err(RecordError::MissingRecords {
                declared,
                found: self.index,
            })
        } else {
            RawRecord::parse(&mut self.reader)
                .map(|raw| {
                    let h = self.header;
                    let offset = h.base_offset.wrapping_add(i64::from(raw.offset_delta));
                    // Deltas wrap as in Java, so any i64 timestamp round-trips.
                    let timestamp = if h.attributes & ATTR_TIMESTAMP_TYPE != 0 {
                        h.max_timestamp
                    } else {
                        h.base_timestamp.wrapping_add(raw.timestamp_delta)
                    };
                    (self.index, offset, timestamp, raw)
                })
                .map_err(|e| in_record(self.index, e))
        };
        self.done |= result.is_err();
        self.index += 1;
        Some(result)
    }
}
