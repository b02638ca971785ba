//! The Kafka v2 record batch header ("magic 2"), as it travels on the wire and as it is
//! stored in segment files, byte for byte.
//!
//! Layout (all integers big-endian, as Kafka defines them):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 8 | base offset |
//! | 8 | 4 | batch length (bytes after this field) |
//! | 12 | 4 | partition leader epoch |
//! | 16 | 1 | magic (= 2) |
//! | 17 | 4 | CRC-32C of bytes 21..end |
//! | 21 | 2 | attributes |
//! | 23 | 4 | last offset delta |
//! | 27 | 8 | base timestamp |
//! | 35 | 8 | max timestamp |
//! | 43 | 8 | producer id |
//! | 51 | 2 | producer epoch |
//! | 53 | 4 | base sequence |
//! | 57 | 4 | record count |
//! | 61 | .. | records |
//!
//! The CRC does not cover the base offset, the length or the leader epoch, so the log
//! assigns offsets by rewriting the first eight bytes and never re-encodes a batch.

use thiserror::Error;

/// Byte offset of the base offset field.
pub const BASE_OFFSET: usize = 0;
/// Byte offset of the batch length field.
pub const BATCH_LENGTH: usize = BASE_OFFSET + 8;
/// Byte offset of the partition leader epoch field.
pub const PARTITION_LEADER_EPOCH: usize = BATCH_LENGTH + 4;
/// Byte offset of the magic byte.
pub const MAGIC: usize = PARTITION_LEADER_EPOCH + 4;
/// Byte offset of the CRC-32C field.
pub const CRC: usize = MAGIC + 1;
/// Byte offset of the attributes field; the CRC covers from here to the end.
pub const ATTRIBUTES: usize = CRC + 4;
/// Byte offset of the last offset delta field.
pub const LAST_OFFSET_DELTA: usize = ATTRIBUTES + 2;
/// Byte offset of the base timestamp field.
pub const BASE_TIMESTAMP: usize = LAST_OFFSET_DELTA + 4;
/// Byte offset of the max timestamp field.
pub const MAX_TIMESTAMP: usize = BASE_TIMESTAMP + 8;
/// Byte offset of the producer id field.
pub const PRODUCER_ID: usize = MAX_TIMESTAMP + 8;
/// Byte offset of the producer epoch field.
pub const PRODUCER_EPOCH: usize = PRODUCER_ID + 8;
/// Byte offset of the base sequence field.
pub const BASE_SEQUENCE: usize = PRODUCER_EPOCH + 2;
/// Byte offset of the record count field.
pub const RECORD_COUNT: usize = BASE_SEQUENCE + 4;
/// Size of the fixed header; the records follow it.
pub const HEADER_LEN: usize = RECORD_COUNT + 4;
/// Bytes before the part that the batch length counts (base offset and length).
pub const LOG_OVERHEAD: usize = BATCH_LENGTH + 4;
/// The only supported magic value.
pub const MAGIC_V2: u8 = 2;

/// Attribute bits: compression codec (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
pub const ATTR_COMPRESSION_MASK: u16 = 0x07;
/// Attribute bit: timestamps are log-append time.
pub const ATTR_TIMESTAMP_TYPE: u16 = 0x08;
/// Attribute bit: the batch is part of a transaction.
pub const ATTR_TRANSACTIONAL: u16 = 0x10;
/// Attribute bit: the batch is a control batch.
pub const ATTR_CONTROL: u16 = 0x20;

/// Why bytes are not a valid record batch.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum BatchError {
    /// Fewer bytes than a batch header.
    #[error("batch is {len} bytes, shorter than the {HEADER_LEN}-byte v2 header")]
    TooShort {
        /// Bytes available.
        len: usize,
    },
    /// The length field does not match the bytes that are there.
    #[error("batch length field says {declared} bytes but {available} bytes follow it")]
    LengthMismatch {
        /// Length the header declares (after the length field).
        declared: i64,
        /// Bytes actually available after the length field.
        available: usize,
    },
    /// Not a magic v2 batch.
    #[error("unsupported record batch magic {0} (only v2 is supported)")]
    BadMagic(u8),
    /// The CRC-32C does not match the contents.
    #[error("batch CRC mismatch: header says {stored:#010x}, contents give {computed:#010x}")]
    BadCrc {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the contents.
        computed: u32,
    },
    /// Header fields that cannot be right (negative counts or deltas).
    #[error("invalid batch header: {0}")]
    InvalidHeader(&'static str),
}

/// A parsed view of a v2 batch header. Cheap: it copies the fixed fields only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// First offset of the batch.
    pub base_offset: i64,
    /// Bytes after the length field.
    pub batch_length: i32,
    /// Partition leader epoch (not covered by the CRC).
    pub partition_leader_epoch: i32,
    /// Magic byte.
    pub magic: u8,
    /// Stored CRC-32C.
    pub crc: u32,
    /// Attribute bits.
    pub attributes: u16,
    /// Offset of the last record relative to the base offset.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record, or -1.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub record_count: i32,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes(b[at..at + 2].try_into().expect("2 bytes"))
}

impl BatchHeader {
    /// Parses the fixed header at the start of `bytes` without checking anything but the
    /// length of the header itself.
    pub fn parse(bytes: &[u8]) -> Result<Self, BatchError> {
        if bytes.len() < HEADER_LEN {
            return Err(BatchError::TooShort { len: bytes.len() });
        }
        Ok(Self {
            base_offset: be_i64(bytes, BASE_OFFSET),
            batch_length: be_i32(bytes, BATCH_LENGTH),
            partition_leader_epoch: be_i32(bytes, PARTITION_LEADER_EPOCH),
            magic: bytes[MAGIC],
            crc: be_i32(bytes, CRC) as u32,
            attributes: be_i16(bytes, ATTRIBUTES) as u16,
            last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA),
            base_timestamp: be_i64(bytes, BASE_TIMESTAMP),
            max_timestamp: be_i64(bytes, MAX_TIMESTAMP),
            producer_id: be_i64(bytes, PRODUCER_ID),
            producer_epoch: be_i16(bytes, PRODUCER_EPOCH),
            base_sequence: be_i32(bytes, BASE_SEQUENCE),
            record_count: be_i32(bytes, RECORD_COUNT),
        })
    }

    /// Total size of the batch on disk and on the wire, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length.max(0) as usize
    }

    /// The last offset in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Compression codec id from the attributes (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & ATTR_COMPRESSION_MASK) as u8
    }

    /// Whether this is a control batch (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// Whether this batch belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
}

/// Checks that `bytes` is exactly one well-formed v2 batch: header, length, magic, CRC
/// and the header fields that must be non-negative. Returns the parsed header.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    let available = bytes.len() - LOG_OVERHEAD;
    if header.batch_length < (HEADER_LEN - LOG_OVERHEAD) as i32
        || header.batch_length as usize != available
    {
        return Err(BatchError::LengthMismatch {
            declared: i64::from(header.batch_length),
            available,
        });
    }
    if header.magic != MAGIC_V2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    let computed = crc32c::crc32c(&bytes[ATTRIBUTES..]);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    if header.last_offset_delta < 0 {
        return Err(BatchError::InvalidHeader("negative last offset delta"));
    }
    if header.record_count < 0 {
        return Err(BatchError::InvalidHeader("negative record count"));
    }
    Ok(header)
}

/// Splits a buffer of concatenated batches into `(position, header)` pairs, validating each
/// batch. Fails on the first bad batch, reporting its position within `bytes`.
pub fn validate_all(bytes: &[u8]) -> Result<Vec<(usize, BatchHeader)>, (usize, BatchError)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        let header = BatchHeader::parse(rest).map_err(|e| (pos, e))?;
        let len = header.total_len();
        if header.batch_length < 0 || len > rest.len() || len < HEADER_LEN {
            return Err((
                pos,
                BatchError::LengthMismatch {
                    declared: i64::from(header.batch_length),
                    available: rest.len() - LOG_OVERHEAD,
                },
            ));
        }
        let header = validate(&rest[..len]).map_err(|e| (pos, e))?;
        out.push((pos, header));
        pos += len;
    }
    Ok(out)
}

/// Concatenated batches checked in full by [`validate_batches`] (lengths, magic, CRC,
/// header fields), holding the very bytes that were checked.
///
/// A caller that must look at a batch before storing it (a broker checking producer
/// sequences or schema ids) checks it once and hands this on: herald-log's
/// `Log::append_validated` and [`decode_validated`](crate::records::decode_validated)
/// trust it without computing the CRC again. Because it owns (or exclusively borrows) the
/// bytes, they cannot change behind it: the only rewrite it allows is
/// [`assign_offsets`](Self::assign_offsets), of the two fields the CRC does not cover.
/// `B` must give the same bytes from every `as_ref` and `as_mut` call, as `Vec<u8>`,
/// `&mut [u8]` and `bytes::BytesMut` do.
#[derive(Debug, Clone)]
pub struct ValidatedBatches<B> {
    bytes: B,
    headers: Vec<(usize, BatchHeader)>,
}

/// Bytes [`validate_batches`] refused, given back with where and why.
#[derive(Debug, Clone)]
pub struct InvalidBatches<B> {
    /// The bytes that were checked.
    pub bytes: B,
    /// Byte position of the first bad batch within them.
    pub position: usize,
    /// What is wrong with it.
    pub error: BatchError,
}

/// One batch of [`ValidatedBatches`]: its bytes and parsed header.
#[derive(Debug, Clone, Copy)]
pub struct ValidatedBatch<'a> {
    bytes: &'a [u8],
    header: BatchHeader,
}

impl<'a> ValidatedBatch<'a> {
    /// The whole batch, header included.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    /// Its header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }
}

impl<B: AsRef<[u8]>> ValidatedBatches<B> {
    /// Each batch's position in the checked bytes, and its header.
    pub fn headers(&self) -> &[(usize, BatchHeader)] {
        &self.headers
    }

    /// The checked bytes (with the offsets and epoch given by
    /// [`assign_offsets`](Self::assign_offsets), if it was called).
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_ref()
    }

    /// The batches one by one.
    pub fn batches(&self) -> impl ExactSizeIterator<Item = ValidatedBatch<'_>> {
        let bytes = self.bytes.as_ref();
        self.headers
            .iter()
            .map(move |(pos, header)| ValidatedBatch {
                bytes: &bytes[*pos..*pos + header.total_len()],
                header: *header,
            })
    }

    /// The bytes, giving up the check.
    pub fn into_inner(self) -> B {
        self.bytes
    }
}

impl<B: AsRef<[u8]> + AsMut<[u8]>> ValidatedBatches<B> {
    /// Gives the batches consecutive offsets from `base_offset` and the partition leader
    /// epoch `leader_epoch`, in the bytes and in [`headers`](Self::headers). Neither field
    /// is covered by the CRC, so the batches stay valid. Returns one past the last offset
    /// assigned.
    pub fn assign_offsets(&mut self, base_offset: i64, leader_epoch: i32) -> i64 {
        let bytes = self.bytes.as_mut();
        let mut next = base_offset;
        for (pos, header) in &mut self.headers {
            set_base_offset(&mut bytes[*pos..], next);
            set_partition_leader_epoch(&mut bytes[*pos..], leader_epoch);
            header.base_offset = next;
            header.partition_leader_epoch = leader_epoch;
            next += i64::from(header.last_offset_delta) + 1;
        }
        next
    }

    /// Stamps every batch with the broker's append time `now_ms`, as Kafka does for a
    /// topic with `message.timestamp.type=LogAppendTime`: the timestamp-type attribute
    /// is set and the max timestamp becomes `now_ms` (clients then read it as every
    /// record's timestamp); the CRC, which covers both, is computed again, so the
    /// batches stay valid. The records are not touched.
    pub fn stamp_log_append_time(&mut self, now_ms: i64) {
        let bytes = self.bytes.as_mut();
        for (pos, header) in &mut self.headers {
            let batch = &mut bytes[*pos..*pos + header.total_len()];
            let attributes = header.attributes | ATTR_TIMESTAMP_TYPE;
            batch[ATTRIBUTES..ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
            batch[MAX_TIMESTAMP..MAX_TIMESTAMP + 8].copy_from_slice(&now_ms.to_be_bytes());
            let crc = crc32c::crc32c(&batch[ATTRIBUTES..]);
            batch[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
            header.attributes = attributes;
            header.max_timestamp = now_ms;
            header.crc = crc;
        }
    }
}

/// [`validate_all`], keeping the bytes with the result as [`ValidatedBatches`]; refused
/// bytes come back in the error.
pub fn validate_batches<B: AsRef<[u8]>>(
    bytes: B,
) -> Result<ValidatedBatches<B>, InvalidBatches<B>> {
    match validate_all(bytes.as_ref()) {
        Ok(headers) => Ok(ValidatedBatches { bytes, headers }),
        Err((position, error)) => Err(InvalidBatches {
            bytes,
            position,
            error,
        }),
    }
}

/// The partition leader epoch the log stamps on every stored batch. A single node has one
/// leader epoch; stamping it (as Kafka's leader does) lets recovery and reads check the
/// four header bytes the CRC does not cover.
pub const STORED_LEADER_EPOCH: i32 = 0;

/// Rewrites the partition leader epoch of the batch starting at `bytes[0]`. The CRC does
/// not cover it.
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) {
    bytes[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Rewrites the base offset of the batch starting at `bytes[0]`. The CRC does not cover it.
pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) {
    bytes[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}
