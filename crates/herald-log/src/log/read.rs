//! Reads: whole batches by offset, timestamp lookups, header scans.

use herald_format::batch::{self, BatchHeader};

use super::{Log, state::State};
use crate::{
    error::{LogError, Result},
    segment::Segment,
};

/// Whole batches returned by [`Log::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Zero or more complete v2 batches. The first one contains the requested offset.
    pub bytes: Vec<u8>,
    /// One past the last readable offset at the time of the read.
    pub high_watermark: u64,
    /// First offset still in the log.
    pub log_start_offset: u64,
}

/// The answer to a timestamp lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// Offset of the first record with a timestamp at or after the one asked for.
    pub offset: u64,
    /// That record's timestamp.
    pub timestamp: i64,
}

/// How far readers may read in `segment`: all of a sealed segment, up to the durable point
/// in the segment that holds it.
fn readable_limit(state: &State, segment: &Segment) -> u64 {
    use std::cmp::Ordering;
    match segment.base.cmp(&state.durable.segment) {
        Ordering::Less => segment.size(),
        Ordering::Equal => state.durable.position,
        Ordering::Greater => 0,
    }
}

/// Finds the batch containing `offset` and reads whole batches from it, checking each
/// one (CRC when `verify`, and always the header fields the CRC does not cover).
fn read_from_segment(
    segment: &Segment,
    offset: u64,
    limit: u64,
    max_bytes: usize,
    verify: bool,
) -> Result<Vec<u8>> {
    let (pos, first) = segment.locate(offset, limit)?;
    let first_len = first.total_len() as u64;
    let want = (max_bytes as u64).max(first_len).min(limit - pos);
    let mut buf = segment.read_at(pos, want as usize)?;
    let mut end = 0usize;
    let mut expected = first.base_offset as u64;
    while end + batch::HEADER_LEN <= buf.len() {
        let at = pos + end as u64;
        let h = BatchHeader::parse(&buf[end..]).map_err(|e| segment.corrupt(at, e.to_string()))?;
        let len = h.total_len();
        if end + len > buf.len() && end > 0 {
            break; // the next batch does not fit in max_bytes
        }
        segment.check_header(&h, at, expected, limit)?;
        if verify {
            batch::validate(&buf[end..end + len])
                .map_err(|e| segment.corrupt(at, e.to_string()))?;
        }
        expected = h.last_offset() as u64 + 1;
        end += len;
    }
    buf.truncate(end);
    Ok(buf)
}

impl Log {
    /// Reads whole batches starting with the one that contains `offset`, up to
    /// `max_bytes` (but always at least one whole batch). At the high watermark the result
    /// is empty; outside `[log start, high watermark]` it is [`LogError::OffsetOutOfRange`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let (segment, limit, hw, log_start, verify) = {
            let state = self.shared.lock();
            let hw = state.high_watermark();
            let log_start = state.log_start;
            if offset < log_start || offset > hw {
                return Err(LogError::OffsetOutOfRange {
                    requested: offset,
                    log_start,
                    high_watermark: hw,
                });
            }
            if offset == hw {
                return Ok(ReadResult {
                    bytes: Vec::new(),
                    high_watermark: hw,
                    log_start_offset: log_start,
                });
            }
            let (_, segment) = state
                .segments
                .range(..=offset)
                .next_back()
                .expect("offset within the log has a segment");
            let limit = readable_limit(&state, segment);
            (
                segment.clone(),
                limit,
                hw,
                log_start,
                state.config.verify_reads,
            )
        };
        let bytes = read_from_segment(&segment, offset, limit, max_bytes, verify)?;
        Ok(ReadResult {
            bytes,
            high_watermark: hw,
            log_start_offset: log_start,
        })
    }

    /// The first record whose timestamp is at or after `timestamp` (Kafka's ListOffsets).
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let (segments, log_start, hw) = {
            let state = self.shared.lock();
            let segments: Vec<_> = state
                .segments
                .values()
                .map(|s| (s.clone(), readable_limit(&state, s)))
                .collect();
            (segments, state.log_start, state.high_watermark())
        };
        for (segment, limit) in segments {
            if segment.next_offset() <= log_start || segment.max_timestamp() < timestamp {
                continue;
            }
            let entry = segment
                .indexes
                .read()
                .expect("index lock")
                .entry_for_time(timestamp);
            let mut pos = u64::from(entry.position);
            let mut expected = segment.base + u64::from(entry.rel_offset);
            while pos < limit {
                let header = segment.read_header(pos)?;
                segment.check_header(&header, pos, expected, limit)?;
                let len = header.total_len() as u64;
                let last = header.last_offset() as u64;
                expected = last + 1;
                if header.max_timestamp >= timestamp && last >= log_start {
                    let raw = segment.read_at(pos, len as usize)?;
                    let decoded = herald_format::records::decode_batch(&raw)
                        .map_err(|e| segment.corrupt(pos, e.to_string()))?;
                    let found = decoded.records.iter().find(|r| {
                        r.timestamp >= timestamp
                            && r.offset as u64 >= log_start
                            && (r.offset as u64) < hw
                    });
                    if let Some(r) = found {
                        return Ok(Some(TimestampOffset {
                            offset: r.offset as u64,
                            timestamp: r.timestamp,
                        }));
                    }
                }
                pos += len;
            }
        }
        Ok(None)
    }

    /// Calls `f` for the header of every readable batch from the one containing
    /// `from_offset` to the high watermark, in order.
    pub fn for_each_batch_header(
        &self,
        from_offset: u64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        let segments: Vec<_> = {
            let state = self.shared.lock();
            state
                .segments
                .values()
                .filter(|s| s.next_offset() > from_offset)
                .map(|s| (s.clone(), readable_limit(&state, s)))
                .collect()
        };
        for (segment, limit) in segments {
            if limit == 0 {
                continue;
            }
            let (mut pos, _) = segment.locate(from_offset.max(segment.base), limit)?;
            let mut expected = None;
            while pos < limit {
                let header = segment.read_header(pos)?;
                let base = expected.unwrap_or(header.base_offset as u64);
                segment.check_header(&header, pos, base, limit)?;
                f(&header);
                expected = Some(header.last_offset() as u64 + 1);
                pos += header.total_len() as u64;
            }
        }
        Ok(())
    }
}
