//! Behaviour of one log: appends, reads, indexes, rolling, retention, recovery on open,
//! locking and durability policies. Crash tests are in `crash.rs`, the model-based
//! property test in `model.rs`.

mod common;

use std::{
    sync::{Arc, mpsc},
    time::Duration,
};

use common::{batch, read_all, tagged};
use herald_format::batch::{BatchError, BatchHeader};
use herald_log::{Durability, Log, LogConfig, LogError};

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn file_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[test]
fn append_assigns_consecutive_offsets_and_reads_back_verbatim() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut first = batch(3, 10, 1000);
    let mut second = batch(2, 10, 2000);
    let a = log.append(&mut first).unwrap();
    let b = log.append(&mut second).unwrap();
    assert_eq!((a.base_offset, a.last_offset), (0, 2));
    assert_eq!((b.base_offset, b.last_offset), (3, 4));
    assert_eq!(b.max_timestamp, 2001);
    assert_eq!(log.high_watermark(), 5);
    let read = log.read(0, 1 << 20).unwrap();
    // Offsets were assigned by rewriting the base offset in the caller's buffer.
    assert_eq!(read.bytes, [first, second].concat());
    assert_eq!(read.high_watermark, 5);
    assert_eq!(read.log_start_offset, 0);
}

#[test]
fn fetch_mid_batch_returns_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut b = batch(10, 10, 0);
    log.append(&mut b).unwrap();
    log.append(&mut batch(1, 10, 0)).unwrap();
    let read = log.read(7, 1).unwrap();
    assert_eq!(
        read.bytes, b,
        "the batch holding offset 7 comes back whole, even over max_bytes"
    );
    let header = BatchHeader::parse(&read.bytes).unwrap();
    assert_eq!(header.base_offset, 0);
}

#[test]
fn read_respects_max_bytes_with_whole_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let one = batch(1, 100, 0).len();
    for _ in 0..10 {
        log.append(&mut batch(1, 100, 0)).unwrap();
    }
    let read = log.read(0, one * 3 + one / 2).unwrap();
    assert_eq!(
        read.bytes.len(),
        one * 3,
        "three whole batches fit, the fourth does not"
    );
}

#[test]
fn read_outside_the_log_is_out_of_range_and_at_the_end_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(2, 10, 0)).unwrap();
    assert!(log.read(2, 100).unwrap().bytes.is_empty());
    match log.read(3, 100) {
        Err(LogError::OffsetOutOfRange {
            requested: 3,
            log_start: 0,
            high_watermark: 2,
        }) => {}
        other => panic!("expected out of range, got {other:?}"),
    }
}

fn assert_rejected(
    log: &Log,
    dir: &std::path::Path,
    mut bytes: Vec<u8>,
    check: impl Fn(&LogError) -> bool,
) {
    let before = (log.high_watermark(), file_bytes(dir));
    let err = log.append(&mut bytes).unwrap_err();
    assert!(check(&err), "unexpected error: {err}");
    assert_eq!(
        (log.high_watermark(), file_bytes(dir)),
        before,
        "nothing may be written"
    );
}

#[test]
fn bad_batches_are_rejected_with_typed_errors_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&mut batch(1, 10, 0)).unwrap();

    let mut bad_crc = batch(2, 10, 0);
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    assert_rejected(&log, dir.path(), bad_crc, |e| {
        matches!(
            e,
            LogError::InvalidBatch {
                source: BatchError::BadCrc { .. },
                ..
            }
        )
    });

    let mut bad_magic = batch(2, 10, 0);
    bad_magic[herald_format::batch::MAGIC] = 1;
    assert_rejected(&log, dir.path(), bad_magic, |e| {
        matches!(
            e,
            LogError::InvalidBatch {
                source: BatchError::BadMagic(1),
                ..
            }
        )
    });

    let mut long = batch(2, 10, 0);
    long.extend_from_slice(&[0; 7]);
    assert_rejected(&log, dir.path(), long, |e| {
        matches!(e, LogError::InvalidBatch { .. })
    });

    let short = batch(2, 10, 0);
    assert_rejected(&log, dir.path(), short[..short.len() - 3].to_vec(), |e| {
        matches!(
            e,
            LogError::InvalidBatch {
                source: BatchError::LengthMismatch { .. },
                ..
            }
        )
    });

    assert_rejected(&log, dir.path(), vec![0; 20], |e| {
        matches!(
            e,
            LogError::InvalidBatch {
                source: BatchError::TooShort { .. },
                ..
            }
        )
    });

    // A good batch followed by a bad one: the whole append is refused.
    let mut tail_bad = batch(1, 10, 0);
    let mut bad = batch(1, 10, 0);
    let n = bad.len() - 1;
    bad[n] ^= 1;
    tail_bad.extend_from_slice(&bad);
    assert_rejected(
        &log,
        dir.path(),
        tail_bad,
        |e| matches!(e, LogError::InvalidBatch { position, .. } if *position > 0),
    );

    assert_rejected(&log, dir.path(), Vec::new(), |e| {
        matches!(e, LogError::EmptyAppend)
    });
}

#[test]
fn oversized_batch_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_batch_bytes: 1000,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config).unwrap();
    assert_rejected(&log, dir.path(), batch(1, 2000, 0), |e| {
        matches!(e, LogError::BatchTooLarge { max: 1000, .. })
    });
}

#[test]
fn segments_roll_by_size_and_reads_span_them() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..300 {
        log.append(&mut tagged(i, 1000 + i as i64)).unwrap();
    }
    assert!(
        log.segment_count() > 4,
        "4 KiB segments roll: {}",
        log.segment_count()
    );
    let all = read_all(&log);
    assert_eq!(all.len(), 300);
    for (i, (offset, ts, value)) in all.iter().enumerate() {
        assert_eq!(*offset, i as u64);
        assert_eq!(*ts, 1000 + i as i64);
        assert_eq!(value, &(i as u64).to_be_bytes());
    }
    // Every offset is reachable directly through the index.
    for i in (0..300).rev() {
        let read = log.read(i, 1).unwrap();
        assert_eq!(
            BatchHeader::parse(&read.bytes).unwrap().base_offset,
            i as i64
        );
    }
}

#[test]
fn segments_roll_by_wall_clock_age_not_record_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_age: Some(Duration::from_millis(200)),
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config).unwrap();
    // Records stamped in 1970 (a replay or backfill) do not make every append roll.
    for _ in 0..5 {
        log.append(&mut batch(1, 10, 1_000)).unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    std::thread::sleep(Duration::from_millis(300));
    log.append(&mut batch(1, 10, 1_000)).unwrap();
    assert_eq!(
        log.segment_count(),
        2,
        "a segment older than segment_age rolls on the next append"
    );
}

#[test]
fn timestamp_lookup_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    // Batches of 5 records with timestamps 10*i .. 10*i+4.
    for i in 0..60 {
        log.append(&mut batch(5, 20, 10 * i)).unwrap();
    }
    assert!(log.segment_count() > 2);
    for (ts, offset) in [
        (0, 0),
        (3, 3),
        (4, 4),
        (5, 5),
        (10, 5),
        (11, 6),
        (592, 297),
        (594, 299),
    ] {
        let found = log
            .offset_for_timestamp(ts)
            .unwrap()
            .unwrap_or_else(|| panic!("nothing for {ts}"));
        assert_eq!(found.offset, offset, "timestamp {ts}");
        assert!(found.timestamp >= ts);
    }
    assert_eq!(log.offset_for_timestamp(595).unwrap(), None);
    assert_eq!(log.offset_for_timestamp(-5).unwrap().unwrap().offset, 0);
}

#[test]
fn retention_by_size_deletes_whole_oldest_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(10_000),
        retention_age: None,
        ..small_segments()
    };
    let log = Log::open(dir.path(), config).unwrap();
    for i in 0..200 {
        log.append(&mut tagged(i, 0)).unwrap();
    }
    let before = log.size_bytes();
    let outcome = log.apply_retention().unwrap();
    assert!(outcome.segments_deleted > 0);
    assert_eq!(before - outcome.bytes_deleted, log.size_bytes());
    assert!(
        log.size_bytes() >= 10_000,
        "retention keeps at least retention_bytes"
    );
    assert!(
        log.size_bytes() < 10_000 + 4096,
        "and no more than one segment beyond it"
    );
    assert_eq!(log.log_start_offset(), outcome.log_start_offset);
    let all = read_all(&log);
    assert_eq!(all.first().unwrap().0, log.log_start_offset());
    assert_eq!(all.last().unwrap().0, 199);
    assert!(matches!(
        log.read(0, 100),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn retention_by_time_deletes_expired_segments_including_the_active_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_age: Some(Duration::from_millis(1000)),
        ..small_segments()
    };
    let log = Log::open(dir.path(), config).unwrap();
    for i in 0..100 {
        log.append(&mut tagged(i, i as i64 * 100)).unwrap();
    }
    // At t=7000 records stamped before 6000 have expired: the first segment (about 53
    // records, stamped up to ~5200) goes whole; the second holds live records and stays.
    let partial = log.apply_retention_at(7_000).unwrap();
    assert_eq!(partial.segments_deleted, 1);
    assert!(
        log.log_start_offset() > 40 && log.log_start_offset() <= 60,
        "{}",
        log.log_start_offset()
    );
    // Much later everything has expired: the log is empty but keeps its offsets.
    log.apply_retention_at(1_000_000).unwrap();
    assert_eq!(log.log_start_offset(), 100);
    assert_eq!(log.high_watermark(), 100);
    assert!(log.read(100, 100).unwrap().bytes.is_empty());
    assert_eq!(log.append(&mut tagged(100, 0)).unwrap().base_offset, 100);
}

#[test]
fn delete_records_moves_log_start_durably() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..300 {
        log.append(&mut tagged(i, 0)).unwrap();
    }
    let segments = log.segment_count();
    assert_eq!(log.delete_records_before(142).unwrap(), 142);
    assert_eq!(
        log.segment_count(),
        segments - 2,
        "segments wholly before 142 are deleted"
    );
    assert!(matches!(
        log.read(141, 10),
        Err(LogError::OffsetOutOfRange { log_start: 142, .. })
    ));
    assert!(matches!(
        log.delete_records_before(301),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_all(&log).first().unwrap().0, 142);
    drop(log);
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(
        log.log_start_offset(),
        142,
        "the new log start survives a reopen"
    );
    assert_eq!(log.delete_records_before(300).unwrap(), 300);
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.append(&mut tagged(300, 0)).unwrap().base_offset, 300);
}

#[test]
fn clean_reopen_scans_nothing_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..300 {
        log.append(&mut tagged(i, i as i64)).unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    let report = log.recovery_report().clone();
    assert!(report.clean_shutdown);
    assert_eq!(report.bytes_scanned, 0, "a clean reopen must not scan data");
    assert!(report.segments > 5);
    assert_eq!(read_all(&log), before);
    assert_eq!(log.offset_for_timestamp(150).unwrap().unwrap().offset, 150);
    assert_eq!(log.append(&mut tagged(300, 300)).unwrap().base_offset, 300);
}

#[test]
fn missing_or_damaged_index_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..100 {
        log.append(&mut tagged(i, i as i64)).unwrap();
    }
    let before = read_all(&log);
    log.close().unwrap();
    let mut indexes: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    indexes.sort();
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], b"garbage!garbage!x").unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    assert_eq!(log.recovery_report().indexes_rebuilt, 2);
    assert_eq!(read_all(&log), before);
    for i in 0..100 {
        assert_eq!(
            BatchHeader::parse(&log.read(i, 1).unwrap().bytes)
                .unwrap()
                .base_offset,
            i as i64
        );
    }
}

#[test]
fn second_open_of_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    match Log::open(dir.path(), LogConfig::default()) {
        Err(LogError::Locked(path)) => assert_eq!(path, dir.path()),
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(log);
    Log::open(dir.path(), LogConfig::default()).expect("the lock is released on close");
}

#[test]
fn invalid_config_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 10,
        ..LogConfig::default()
    };
    assert!(matches!(
        Log::open(dir.path(), config),
        Err(LogError::InvalidConfig(_))
    ));
}

fn concurrent_appends(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability,
        ..small_segments()
    };
    let log = Arc::new(Log::open(dir.path(), config).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                (0..50)
                    .map(|i| {
                        log.append(&mut tagged(t * 1000 + i, 0))
                            .unwrap()
                            .base_offset
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut offsets: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    offsets.sort_unstable();
    assert_eq!(
        offsets,
        (0..400).collect::<Vec<_>>(),
        "every append got its own offset"
    );
    assert_eq!(log.high_watermark(), 400);
    let mut values: Vec<u64> = read_all(&log)
        .into_iter()
        .map(|(_, _, v)| u64::from_be_bytes(v.try_into().unwrap()))
        .collect();
    values.sort_unstable();
    let mut expected: Vec<u64> = (0..8)
        .flat_map(|t| (0..50).map(move |i| t * 1000 + i))
        .collect();
    expected.sort_unstable();
    assert_eq!(values, expected);
}

#[test]
fn concurrent_appends_with_group_commit() {
    concurrent_appends(Durability::group_commit());
}

#[test]
fn concurrent_appends_with_group_commit_delay() {
    concurrent_appends(Durability::GroupCommit {
        max_delay: Duration::from_millis(2),
        max_bytes: 1 << 20,
    });
}

#[test]
fn concurrent_appends_with_fsync_every_append() {
    concurrent_appends(Durability::EveryAppend);
}

#[test]
fn concurrent_appends_without_fsync() {
    concurrent_appends(Durability::Never);
}

#[test]
fn group_commit_callbacks_fire_after_durability_in_offset_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..20 {
        let pending = log.append_deferred(&mut tagged(i, 0)).unwrap();
        let tx = tx.clone();
        pending.on_durable(move |r| tx.send(r.unwrap().base_offset).unwrap());
    }
    let got: Vec<u64> = (0..20)
        .map(|_| rx.recv_timeout(Duration::from_secs(5)).unwrap())
        .collect();
    assert_eq!(got.len(), 20);
    assert_eq!(log.high_watermark(), 20);
}

#[test]
fn high_watermark_listener_sees_progress() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let (tx, rx) = mpsc::channel();
    log.set_high_watermark_listener(move |hw| {
        let _ = tx.send(hw);
    });
    log.append(&mut batch(3, 10, 0)).unwrap();
    let mut last = 0;
    while let Ok(hw) = rx.recv_timeout(Duration::from_secs(2)) {
        last = hw;
        if hw == 3 {
            break;
        }
    }
    assert_eq!(last, 3);
}

#[test]
fn batch_headers_can_be_scanned_from_an_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_segments()).unwrap();
    for i in 0..50 {
        log.append(&mut batch(2, 30, i)).unwrap();
    }
    let mut bases = Vec::new();
    log.for_each_batch_header(51, |h| bases.push(h.base_offset))
        .unwrap();
    assert_eq!(bases, (50..100).step_by(2).collect::<Vec<_>>());
}

#[test]
fn destroy_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("topic-0");
    let log = Log::open(&path, LogConfig::default()).unwrap();
    log.append(&mut batch(1, 1, 0)).unwrap();
    log.destroy().unwrap();
    assert!(!path.exists());
}

/// `append_validated` writes batches checked once by `validate_batches` (the broker's
/// path, which must look at a batch before appending it), owned or borrowed, assigning
/// offsets in them as `append` does; the bytes on disk are the checked bytes. Bytes the
/// check refused never become a `ValidatedBatches`, and `append` still refuses them.
#[test]
fn append_validated_writes_checked_batches_owned_or_borrowed() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default()).unwrap();
    let mut first = batch(3, 10, 1000);
    let mut checked = herald_format::batch::validate_batches(&mut first[..]).unwrap();
    assert_eq!(checked.headers().len(), 1);
    let info = log.append_validated(&mut checked).unwrap().wait().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (0, 2));
    assert_eq!(BatchHeader::parse(&first).unwrap().base_offset, 0);

    let mut two = batch(2, 10, 2000);
    two.extend_from_slice(&batch(1, 10, 3000));
    let mut checked = herald_format::batch::validate_batches(two).unwrap();
    let info = log.append_validated(&mut checked).unwrap().wait().unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 5));
    assert_eq!(
        checked
            .headers()
            .iter()
            .map(|(_, h)| h.base_offset)
            .collect::<Vec<_>>(),
        [3, 5]
    );
    assert_eq!(log.read(3, 1 << 20).unwrap().bytes, checked.bytes());

    let mut corrupt = batch(3, 10, 4000);
    let crc_byte = 17; // inside the CRC field
    corrupt[crc_byte] ^= 0xff;
    let refused = herald_format::batch::validate_batches(&mut corrupt[..]).unwrap_err();
    assert!(
        matches!(refused.error, BatchError::BadCrc { .. }),
        "{refused:?}"
    );
    let err = log.append(&mut corrupt).unwrap_err();
    assert!(
        matches!(
            err,
            LogError::InvalidBatch {
                source: BatchError::BadCrc { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        read_all(&log).len(),
        6,
        "nothing of the corrupt batch was written"
    );
}
