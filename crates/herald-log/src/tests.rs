//! Unit tests that need the crate's internals: fault injection on fsync.

use std::sync::{Arc, atomic::Ordering, mpsc};

use herald_format::records::{BatchBuilder, Compression};

use crate::{Durability, Log, LogConfig, LogError};

fn one_record(value: &[u8]) -> Vec<u8> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut b = BatchBuilder::new(Compression::None);
    b.push(now, None, Some(value), &[]);
    b.build().unwrap()
}

fn poison_case(durability: Durability) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        durability,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config.clone()).unwrap();
    log.append(&mut one_record(b"before")).unwrap();
    log.active_segment()
        .fail_next_sync
        .store(true, Ordering::SeqCst);
    let err = log.append(&mut one_record(b"during")).unwrap_err();
    assert!(
        matches!(err, LogError::Poisoned(_)),
        "the failing append reports the fsync failure: {err:?}"
    );
    // Every later write fails loudly, even though fsync would now succeed.
    for _ in 0..3 {
        let err = log.append(&mut one_record(b"after")).unwrap_err();
        assert!(matches!(err, LogError::Poisoned(_)), "got {err}");
    }
    assert!(matches!(log.flush(), Err(LogError::Poisoned(_))));
    assert!(matches!(
        log.delete_records_before(1),
        Err(LogError::Poisoned(_))
    ));
    // The acknowledged record stays readable; the unacknowledged one is not exposed.
    assert_eq!(log.high_watermark(), 1);
    assert!(log.read(0, 1024).is_ok());
    drop(log);
    // Reopening recovers: the failed batch may or may not be on disk, but the log works.
    let log = Log::open(dir.path(), config).unwrap();
    assert!(log.high_watermark() >= 1);
    log.append(&mut one_record(b"again")).unwrap();
}

#[test]
fn failed_fsync_poisons_every_append_log() {
    poison_case(Durability::EveryAppend);
}

#[test]
fn failed_fsync_poisons_group_commit_log() {
    poison_case(Durability::group_commit());
}

#[test]
fn failed_fsync_while_rolling_poisons_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 1024,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config).unwrap();
    log.append(&mut one_record(&[0; 600])).unwrap();
    log.active_segment()
        .fail_next_sync
        .store(true, Ordering::SeqCst);
    // The next append needs a roll, whose seal fsync fails.
    let err = log.append(&mut one_record(&[0; 600])).unwrap_err();
    assert!(matches!(err, LogError::Poisoned(_)), "got {err:?}");
    assert!(matches!(
        log.append(&mut one_record(b"x")),
        Err(LogError::Poisoned(_))
    ));
}

#[test]
fn failed_group_commit_fsync_fails_pending_callbacks() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path(), LogConfig::default()).unwrap());
    log.active_segment()
        .fail_next_sync
        .store(true, Ordering::SeqCst);
    let (tx, rx) = mpsc::channel();
    log.append_deferred(&mut one_record(b"x"))
        .unwrap()
        .on_durable(move |r| tx.send(r.map(|i| i.base_offset)).unwrap());
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
    assert!(
        matches!(outcome, Err(LogError::Poisoned(_))),
        "got {outcome:?}"
    );
}
