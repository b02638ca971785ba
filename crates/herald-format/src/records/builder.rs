//! Building one complete v2 batch, as a Kafka producer would send it.

use super::{Compression, Header, Oversized, RecordError, encode_record};
use crate::batch::{
    ATTR_TIMESTAMP_TYPE, ATTR_TRANSACTIONAL, ATTRIBUTES, CRC, HEADER_LEN, LOG_OVERHEAD, MAGIC_V2,
};

/// Builds one v2 record batch with base offset 0, the way a producer does.
///
/// Records are encoded as they are pushed; [`build`](Self::build) compresses them and
/// writes the header with its CRC-32C. The base timestamp is the first record's, as in
/// Kafka's producer, so later records may carry negative timestamp deltas.
///
/// ```
/// use herald_format::records::{BatchBuilder, Compression};
///
/// let mut builder = BatchBuilder::new(Compression::Zstd);
/// builder.producer(7, 0, 42);
/// for i in 0..3u8 {
///     builder.push(1_000 + i64::from(i), None, Some(&[i][..]), &[]);
/// }
/// let batch = builder.build().unwrap();
/// assert_eq!(herald_format::batch::validate(&batch).unwrap().record_count, 3);
/// ```
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    compression: Compression,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    partition_leader_epoch: i32,
    transactional: bool,
    log_append_time: Option<i64>,
    records: Vec<u8>,
    count: usize,
    base_timestamp: i64,
    max_timestamp: i64,
    /// First push that could not be encoded; `build` reports it.
    oversized: Option<Oversized>,
}

impl BatchBuilder {
    /// An empty builder for a non-idempotent, non-transactional batch (producer id, epoch
    /// and base sequence all -1).
    pub fn new(compression: Compression) -> Self {
        Self {
            compression,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            partition_leader_epoch: -1,
            transactional: false,
            log_append_time: None,
            records: Vec::new(),
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
            oversized: None,
        }
    }

    /// Sets the idempotent producer id, epoch and the sequence of the first record.
    pub fn producer(&mut self, id: i64, epoch: i16, base_sequence: i32) -> &mut Self {
        self.producer_id = id;
        self.producer_epoch = epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the batch as part of a transaction.
    pub fn transactional(&mut self, transactional: bool) -> &mut Self {
        self.transactional = transactional;
        self
    }

    /// Sets the partition leader epoch (-1 by default, as producers send it).
    pub fn partition_leader_epoch(&mut self, epoch: i32) -> &mut Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Makes it a log-append-time batch as a broker stamps it: the timestamp-type bit is
    /// set and the max timestamp is `append_time`, which then stands for every record.
    pub fn log_append_time(&mut self, append_time: i64) -> &mut Self {
        self.log_append_time = Some(append_time);
        self
    }

    /// Appends a record with the next offset. A key, value or header too large for the
    /// format makes [`build`](Self::build) fail rather than this call, so pushes chain.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[Header],
    ) -> &mut Self {
        if self.oversized.is_some() {
            return self;
        }
        // The record count field is an i32 too, so the last offset delta stays below it.
        let offset_delta = match i32::try_from(self.count) {
            Ok(delta) if delta < i32::MAX => delta,
            _ => {
                self.oversized = Some(Oversized("record count", self.count + 1));
                return self;
            }
        };
        if self.count == 0 {
            self.base_timestamp = timestamp;
            self.max_timestamp = timestamp;
        }
        let delta = timestamp.wrapping_sub(self.base_timestamp);
        match encode_record(&mut self.records, offset_delta, delta, key, value, headers) {
            Ok(()) => {
                self.count += 1;
                self.max_timestamp = self.max_timestamp.max(timestamp);
            }
            Err(e) => self.oversized = Some(e),
        }
        self
    }

    /// Records pushed so far.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Whether no record has been pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size of the batch if it were built uncompressed; a producer's flush trigger.
    pub fn uncompressed_size(&self) -> usize {
        HEADER_LEN + self.records.len()
    }

    /// The complete batch: header, CRC-32C and (compressed) records.
    pub fn build(&self) -> Result<Vec<u8>, RecordError> {
        if let Some(e) = self.oversized {
            return Err(e.into());
        }
        if self.count == 0 {
            return Err(RecordError::EmptyBatch);
        }
        let section = match self.compression {
            Compression::None => None,
            codec => Some(codec.compress(&self.records)?),
        };
        let section = section.as_deref().unwrap_or(&self.records);
        let total = HEADER_LEN + section.len();
        let batch_length =
            i32::try_from(total - LOG_OVERHEAD).map_err(|_| Oversized("batch", total))?;

        let mut attributes = u16::from(self.compression.id());
        if self.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        let max_timestamp = match self.log_append_time {
            Some(t) => {
                attributes |= ATTR_TIMESTAMP_TYPE;
                t
            }
            None => self.max_timestamp,
        };

        let mut out = Vec::with_capacity(total);
        out.extend_from_slice(&0i64.to_be_bytes());
        out.extend_from_slice(&batch_length.to_be_bytes());
        out.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out.push(MAGIC_V2);
        out.extend_from_slice(&[0; 4]);
        debug_assert_eq!(out.len(), ATTRIBUTES);
        out.extend_from_slice(&attributes.to_be_bytes());
        out.extend_from_slice(&((self.count - 1) as i32).to_be_bytes());
        out.extend_from_slice(&self.base_timestamp.to_be_bytes());
        out.extend_from_slice(&max_timestamp.to_be_bytes());
        out.extend_from_slice(&self.producer_id.to_be_bytes());
        out.extend_from_slice(&self.producer_epoch.to_be_bytes());
        out.extend_from_slice(&self.base_sequence.to_be_bytes());
        out.extend_from_slice(&(self.count as i32).to_be_bytes());
        debug_assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(section);
        let crc = crc32c::crc32c(&out[ATTRIBUTES..]);
        out[CRC..CRC + 4].copy_from_slice(&crc.to_be_bytes());
        debug_assert_eq!(out.len() - LOG_OVERHEAD, batch_length as usize);
        Ok(out)
    }
}
