//! The records of the `__consumer_offsets-0` log: what a committed offset looks like on
//! disk.
//!
//! Each commit (or deletion) is one record inside an ordinary Kafka v2 record batch,
//! built with [`herald_format::records::BatchBuilder`] (uncompressed; the record timestamp is
//! the commit time). One OffsetCommit request is one batch, so it is durable as a whole.
//! Our own key and value layouts are little-endian fixed-width integers:
//!
//! Key (always present):
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | kind: [`KEY_OFFSET_COMMIT`] (1); other kinds are reserved and skipped on load |
//! | 1 | 2 | group id length `g` |
//! | 3 | g | group id, UTF-8 |
//! | 3+g | 2 | topic length `t` |
//! | 5+g | t | topic, UTF-8 |
//! | 5+g+t | 4 | partition (i32) |
//!
//! Value: null is a tombstone (the offset was deleted with its group or expired);
//! otherwise:
//!
//! | offset | size | field |
//! | --- | --- | --- |
//! | 0 | 1 | value version: [`VALUE_V1`] (1) |
//! | 1 | 8 | committed offset (i64) |
//! | 9 | 4 | committed leader epoch (i32, -1 if the client sent none) |
//! | 13 | 8 | commit timestamp, ms since the Unix epoch (i64) |
//! | 21 | 4 | metadata length `m` (u32) |
//! | 25 | m | metadata, UTF-8 (a null metadata is stored as empty, as Kafka does) |
//!
//! The latest record for a key wins; replaying the log from its start rebuilds the table.

use herald_format::records::{BatchBuilder, Compression, RecordError, decode_batch};

/// What is stored for one (group, topic, partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OffsetValue {
    pub(crate) offset: i64,
    pub(crate) leader_epoch: i32,
    pub(crate) metadata: String,
    pub(crate) commit_timestamp_ms: i64,
}

/// Key kind of an offset commit record.
pub(crate) const KEY_OFFSET_COMMIT: u8 = 1;
/// The only value layout so far.
pub(crate) const VALUE_V1: u8 = 1;

const VALUE_OFFSET: usize = 1;
const VALUE_LEADER_EPOCH: usize = VALUE_OFFSET + 8;
const VALUE_TIMESTAMP: usize = VALUE_LEADER_EPOCH + 4;
const VALUE_METADATA_LEN: usize = VALUE_TIMESTAMP + 8;
const VALUE_METADATA: usize = VALUE_METADATA_LEN + 4;

/// Identifies one committed offset: (group, topic, partition).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct OffsetKey {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) partition: i32,
}

/// One change to the offset table: a commit (`Some`) or a tombstone (`None`).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct OffsetOp {
    pub(crate) key: OffsetKey,
    pub(crate) value: Option<OffsetValue>,
}

/// A record of the offsets log, decoded.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    /// A commit or tombstone.
    Op(OffsetOp),
    /// A key kind this version does not know (reserved for group metadata records).
    UnknownKind(u8),
}

pub(crate) fn encode_key(key: &OffsetKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + key.group.len() + key.topic.len());
    out.push(KEY_OFFSET_COMMIT);
    put_str16(&mut out, &key.group);
    put_str16(&mut out, &key.topic);
    out.extend_from_slice(&key.partition.to_le_bytes());
    out
}

pub(crate) fn encode_value(value: &OffsetValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(VALUE_METADATA + value.metadata.len());
    out.push(VALUE_V1);
    out.extend_from_slice(&value.offset.to_le_bytes());
    out.extend_from_slice(&value.leader_epoch.to_le_bytes());
    out.extend_from_slice(&value.commit_timestamp_ms.to_le_bytes());
    let len = u32::try_from(value.metadata.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&value.metadata.as_bytes()[..len as usize]);
    out
}

fn put_str16(out: &mut Vec<u8>, s: &str) {
    // Group ids and topic names are Kafka int16-length strings, so they always fit.
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

/// Builds one uncompressed v2 batch holding `ops` in order.
pub(crate) fn encode_batch(ops: &[OffsetOp], timestamp_ms: i64) -> Result<Vec<u8>, RecordError> {
    let mut builder = BatchBuilder::new(Compression::None);
    for op in ops {
        let key = encode_key(&op.key);
        let value = op.value.as_ref().map(encode_value);
        builder.push(timestamp_ms, Some(&key), value.as_deref(), &[]);
    }
    builder.build()
}

/// Why a stored record could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecodeError(pub(crate) String);

/// Decodes every record of one whole batch, with its absolute offset.
pub(crate) fn decode_records(batch: &[u8]) -> Result<Vec<(i64, Decoded)>, DecodeError> {
    let decoded = decode_batch(batch).map_err(|e| DecodeError(e.to_string()))?;
    decoded
        .records
        .into_iter()
        .map(|r| {
            let key = r
                .key
                .ok_or_else(|| DecodeError(format!("record at offset {} has no key", r.offset)))?;
            let record = decode_record(&key, r.value.as_deref())
                .map_err(|DecodeError(m)| DecodeError(format!("offset {}: {m}", r.offset)))?;
            Ok((r.offset, record))
        })
        .collect()
}

pub(crate) fn decode_record(key: &[u8], value: Option<&[u8]>) -> Result<Decoded, DecodeError> {
    let mut reader = Reader { bytes: key, pos: 0 };
    let kind = reader.u8()?;
    if kind != KEY_OFFSET_COMMIT {
        return Ok(Decoded::UnknownKind(kind));
    }
    let group = reader.str16()?;
    let topic = reader.str16()?;
    let partition = i32::from_le_bytes(reader.array()?);
    reader.finish("key")?;
    let key = OffsetKey {
        group,
        topic,
        partition,
    };
    let value = match value {
        None => None,
        Some(bytes) => Some(decode_value(bytes)?),
    };
    Ok(Decoded::Op(OffsetOp { key, value }))
}

fn decode_value(bytes: &[u8]) -> Result<OffsetValue, DecodeError> {
    let mut reader = Reader { bytes, pos: 0 };
    let version = reader.u8()?;
    if version != VALUE_V1 {
        return Err(DecodeError(format!(
            "unknown offset value version {version}"
        )));
    }
    let offset = i64::from_le_bytes(reader.array()?);
    let leader_epoch = i32::from_le_bytes(reader.array()?);
    let commit_timestamp_ms = i64::from_le_bytes(reader.array()?);
    let len = u32::from_le_bytes(reader.array()?) as usize;
    let metadata = reader.string(len)?;
    reader.finish("value")?;
    Ok(OffsetValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| {
            DecodeError(format!(
                "truncated: needed {n} bytes at byte {} of {}",
                self.pos,
                self.bytes.len()
            ))
        })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let bytes = self.take(N)?;
        Ok(bytes.try_into().expect("take returned N bytes"))
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn str16(&mut self) -> Result<String, DecodeError> {
        let len = u16::from_le_bytes(self.array()?) as usize;
        self.string(len)
    }

    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        let bytes = self.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| DecodeError(format!("invalid UTF-8: {e}")))
    }

    fn finish(&self, what: &str) -> Result<(), DecodeError> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{} trailing bytes after the {what}",
                self.bytes.len() - self.pos
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(value: Option<OffsetValue>) -> OffsetOp {
        OffsetOp {
            key: OffsetKey {
                group: "g".into(),
                topic: "orders".into(),
                partition: 3,
            },
            value,
        }
    }

    #[test]
    fn commit_and_tombstone_round_trip_through_a_batch() {
        let commit = op(Some(OffsetValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "meta".into(),
            commit_timestamp_ms: 1_700_000_000_000,
        }));
        let tombstone = op(None);
        let batch = encode_batch(&[commit.clone(), tombstone.clone()], 1).unwrap();
        let records = decode_records(&batch).unwrap();
        assert_eq!(
            records,
            vec![(0, Decoded::Op(commit)), (1, Decoded::Op(tombstone))]
        );
    }

    #[test]
    fn truncated_value_is_an_error_not_a_panic() {
        let value = encode_value(&OffsetValue {
            offset: 1,
            leader_epoch: -1,
            metadata: "abc".into(),
            commit_timestamp_ms: 0,
        });
        let key = encode_key(&op(None).key);
        for cut in 0..value.len() {
            assert!(
                decode_record(&key, Some(&value[..cut])).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn unknown_key_kind_is_reported_for_skipping() {
        assert_eq!(
            decode_record(&[9, 0, 0], None).unwrap(),
            Decoded::UnknownKind(9)
        );
    }
}
