//! Helpers shared by the herald-log integration tests.
#![allow(dead_code)] // why: each test binary uses a different subset of the helpers

use herald_format::records::{BatchBuilder, Compression, decode_batch};
use herald_log::Log;

/// A batch of `records` records of `size`-byte values, timestamps from `ts` upward.
pub(crate) fn batch(records: usize, size: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..records {
        let value = vec![(i % 251) as u8; size];
        let key = format!("key-{i}");
        b.push(ts + i as i64, Some(key.as_bytes()), Some(&value), &[]);
    }
    b.build().expect("valid batch")
}

/// A one-record batch whose value is `tag` (to tell batches apart when reading back).
pub(crate) fn tagged(tag: u64, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(Compression::None);
    b.push(ts, None, Some(&tag.to_be_bytes()), &[]);
    b.build().expect("valid batch")
}

/// Every record in the log from the start, as (offset, timestamp, value).
pub(crate) fn read_all(log: &Log) -> Vec<(u64, i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    let hw = log.high_watermark();
    while offset < hw {
        let read = log.read(offset, 64 * 1024).expect("read");
        assert!(
            !read.bytes.is_empty(),
            "read at {offset} below hw {hw} returned nothing"
        );
        let mut pos = 0;
        while pos < read.bytes.len() {
            let header = herald_format::batch::BatchHeader::parse(&read.bytes[pos..]).unwrap();
            let len = header.total_len();
            let decoded = decode_batch(&read.bytes[pos..pos + len]).expect("valid stored batch");
            for r in decoded.records {
                if r.offset as u64 >= offset {
                    out.push((r.offset as u64, r.timestamp, r.value.unwrap_or_default()));
                }
            }
            offset = header.last_offset() as u64 + 1;
            pos += len;
        }
    }
    out
}
