//! Model-based property test: random sequences of appends, reads, DeleteRecords,
//! retention, flushes and reopens (clean, and after a simulated crash) against a
//! `Vec` of records. After every step the log must agree with the model.

mod common;

use std::path::Path;

use herald_format::{
    batch::BatchHeader,
    records::{BatchBuilder, Compression, decode_batch},
};
use herald_log::{Durability, Log, LogConfig, LogError};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Append one batch of `records` records with `size`-byte values.
    Append {
        records: usize,
        size: usize,
        compression: u8,
    },
    /// Read from a position (fraction of the live range) with a byte limit.
    Read { at: f64, max_bytes: usize },
    /// DeleteRecords up to a fraction of the live range.
    DeleteRecords { at: f64 },
    /// Size-based retention.
    RetainBytes { bytes: u64 },
    /// Flush.
    Flush,
    /// Close and reopen.
    Reopen,
    /// Copy the directory while open (a crash) and continue on the copy.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (1usize..6, 0usize..400, 0u8..5).prop_map(|(records, size, compression)| Op::Append { records, size, compression }),
        5 => (0.0f64..1.0, 1usize..4000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => (0.0f64..1.0).prop_map(|at| Op::DeleteRecords { at }),
        1 => (0u64..20_000).prop_map(|bytes| Op::RetainBytes { bytes }),
        1 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

struct Model {
    /// Value of every record ever appended, by offset.
    values: Vec<Vec<u8>>,
    log_start: u64,
}

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 300,
        retention_age: None,
        durability,
        ..LogConfig::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn check_read(log: &Log, model: &Model, offset: u64, max_bytes: usize) {
    let read = log.read(offset, max_bytes).unwrap();
    let end = model.values.len() as u64;
    if offset == end {
        assert!(read.bytes.is_empty());
        return;
    }
    assert!(
        !read.bytes.is_empty(),
        "read at {offset} < {end} returned nothing"
    );
    let mut pos = 0;
    let mut first = true;
    let mut next = offset;
    while pos < read.bytes.len() {
        let h = BatchHeader::parse(&read.bytes[pos..]).unwrap();
        let len = h.total_len();
        if first {
            assert!(
                h.base_offset as u64 <= offset && h.last_offset() as u64 >= offset,
                "first batch holds the offset"
            );
        } else {
            assert!(
                pos + len <= max_bytes,
                "batches after the first respect max_bytes"
            );
            assert_eq!(h.base_offset as u64, next, "batches are contiguous");
        }
        let decoded = decode_batch(&read.bytes[pos..pos + len]).unwrap();
        for r in decoded.records {
            assert_eq!(
                r.value.as_deref(),
                Some(model.values[r.offset as usize].as_slice())
            );
        }
        next = h.last_offset() as u64 + 1;
        first = false;
        pos += len;
    }
}

fn run(ops: Vec<Op>, durability: Durability) {
    let root = tempfile::tempdir().unwrap();
    let mut generation = 0;
    let mut dir = root.path().join("g0");
    let mut log = Some(Log::open(&dir, config(durability)).unwrap());
    let mut model = Model {
        values: Vec::new(),
        log_start: 0,
    };
    let mut tag = 0u32;
    for op in ops {
        let l = log.as_ref().unwrap();
        let live = model.values.len() as u64 - model.log_start;
        match op {
            Op::Append {
                records,
                size,
                compression,
            } => {
                let compression = Compression::from_id(compression).unwrap();
                let mut b = BatchBuilder::new(compression);
                let mut values = Vec::new();
                for _ in 0..records {
                    tag += 1;
                    let mut v = tag.to_be_bytes().to_vec();
                    v.resize(size.max(4), (tag % 251) as u8);
                    b.push(i64::from(tag), None, Some(&v), &[]);
                    values.push(v);
                }
                let info = l.append(&mut b.build().unwrap()).unwrap();
                assert_eq!(info.base_offset, model.values.len() as u64);
                model.values.extend(values);
            }
            Op::Read { at, max_bytes } => {
                let offset = model.log_start + (live as f64 * at) as u64;
                check_read(l, &model, offset, max_bytes);
            }
            Op::DeleteRecords { at } => {
                let offset = model.log_start + (live as f64 * at) as u64;
                assert_eq!(
                    l.delete_records_before(offset).unwrap(),
                    offset.max(model.log_start)
                );
                model.log_start = model.log_start.max(offset);
            }
            Op::RetainBytes { bytes } => {
                let mut c = l.config();
                c.retention_bytes = Some(bytes);
                l.set_config(c.clone()).unwrap();
                let out = l.apply_retention().unwrap();
                assert!(
                    out.log_start_offset >= model.log_start,
                    "log start never goes back"
                );
                assert!(l.size_bytes() >= bytes.min(l.size_bytes()));
                model.log_start = out.log_start_offset;
                c.retention_bytes = None;
                l.set_config(c).unwrap();
            }
            Op::Flush => l.flush().unwrap(),
            Op::Reopen => {
                log.take().unwrap().close().unwrap();
                let reopened = Log::open(&dir, config(durability)).unwrap();
                assert!(reopened.recovery_report().clean_shutdown);
                assert_eq!(reopened.recovery_report().bytes_scanned, 0);
                log = Some(reopened);
            }
            Op::Crash => {
                generation += 1;
                let next = root.path().join(format!("g{generation}"));
                copy_dir(&dir, &next);
                drop(log.take());
                dir = next;
                log = Some(Log::open(&dir, config(durability)).unwrap());
            }
        }
        let l = log.as_ref().unwrap();
        assert_eq!(l.high_watermark(), model.values.len() as u64);
        assert_eq!(l.log_start_offset(), model.log_start);
        if model.log_start > 0 {
            assert!(matches!(
                l.read(model.log_start - 1, 100),
                Err(LogError::OffsetOutOfRange { .. })
            ));
        }
    }
    // Finally every live record reads back, in order.
    let l = log.as_ref().unwrap();
    let mut offset = model.log_start;
    while offset < model.values.len() as u64 {
        check_read(l, &model, offset, 1);
        let h = BatchHeader::parse(&l.read(offset, 1).unwrap().bytes).unwrap();
        offset = h.last_offset() as u64 + 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn log_matches_model_group_commit(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, Durability::group_commit());
    }

    #[test]
    fn log_matches_model_without_fsync(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops, Durability::Never);
    }
}
