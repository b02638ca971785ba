//! Crash consistency on real files.
//!
//! A crash is simulated by copying the log directory while the log is still open: that
//! is exactly what a `kill -9` leaves behind (whatever reached the page cache). A power
//! loss additionally loses or garbles bytes that were never fsynced; since only bytes
//! past the last acknowledged append can be unsynced under a durable policy, the tests
//! tamper with exactly that region (truncate it, garble it, zero it, extend it with valid
//! or torn batches) and then require that reopening keeps every acknowledged batch and
//! never returns damaged bytes as data.
//!
//! Damage *before* the tail is not a crash artefact: the log must refuse to open, or
//! refuse to return the damaged batch, naming the file and position.

mod common;

use std::{fs, path::Path};

use common::{read_all, tagged};
use herald_format::batch::BatchHeader;
use herald_log::{Durability, Log, LogConfig, LogError};
use rand::{Rng, SeedableRng, rngs::StdRng};

fn config(durability: Durability) -> LogConfig {
    LogConfig {
        segment_bytes: 8 * 1024,
        index_interval_bytes: 512,
        durability,
        ..LogConfig::default()
    }
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Values that survive, in order, as the tags the test appended.
fn tags(log: &Log) -> Vec<u64> {
    read_all(log)
        .into_iter()
        .map(|(_, _, v)| u64::from_be_bytes(v.try_into().unwrap()))
        .collect()
}

/// Builds a "crash image": `acked` batches acknowledged under `durability`, copied while
/// the log is open. Returns the image directory's parent (kept alive) and the path.
fn crash_image(durability: Durability, acked: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let live = tempfile::tempdir().unwrap();
    let log = Log::open(live.path(), config(durability)).unwrap();
    for i in 0..acked {
        log.append(&mut tagged(i, 1_000 + i as i64)).unwrap();
    }
    let image = tempfile::tempdir().unwrap();
    let path = image.path().join("crashed");
    copy_dir(live.path(), &path);
    drop(log);
    (image, path)
}

/// Appends unsynced-looking bytes to the last segment: a random mix of valid batches
/// (with the right next offsets), torn batches, garbage and zeros. Returns the tags of the
/// valid batches written before the first invalid bytes.
fn garble_tail(dir: &Path, next_offset: u64, rng: &mut StdRng) -> Vec<u64> {
    let last = segments(dir).pop().unwrap();
    let mut tail = Vec::new();
    let mut valid_prefix = Vec::new();
    let mut still_valid = true;
    let mut offset = next_offset;
    for _ in 0..rng.random_range(0..6) {
        match rng.random_range(0..4) {
            0 => {
                let tag = 1_000_000 + offset;
                let mut b = tagged(tag, 5);
                herald_format::batch::set_base_offset(&mut b, offset as i64);
                herald_format::batch::set_partition_leader_epoch(
                    &mut b,
                    herald_format::batch::STORED_LEADER_EPOCH,
                );
                tail.extend_from_slice(&b);
                if still_valid {
                    valid_prefix.push(tag);
                }
                offset += 1;
            }
            1 => {
                let mut b = tagged(7, 5);
                herald_format::batch::set_base_offset(&mut b, offset as i64);
                let cut = rng.random_range(1..b.len());
                tail.extend_from_slice(&b[..cut]);
                still_valid = false;
            }
            2 => {
                let n = rng.random_range(1..200);
                tail.extend((0..n).map(|_| rng.random::<u8>()));
                still_valid = false;
            }
            _ => {
                tail.extend(std::iter::repeat_n(0u8, rng.random_range(1..4096)));
                still_valid = false;
            }
        }
    }
    let mut bytes = fs::read(&last).unwrap();
    bytes.extend_from_slice(&tail);
    fs::write(&last, bytes).unwrap();
    valid_prefix
}

fn torn_tail_case(durability: Durability, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let acked = rng.random_range(1..400);
    let (_image, dir) = crash_image(durability, acked);
    let extra = garble_tail(&dir, acked, &mut rng);
    let log = Log::open(&dir, config(durability))
        .unwrap_or_else(|e| panic!("seed {seed}: a torn tail must recover, got {e}"));
    let expected: Vec<u64> = (0..acked).chain(extra.iter().copied()).collect();
    assert_eq!(
        tags(&log),
        expected,
        "seed {seed}: acked batches kept, junk never returned"
    );
    // The recovered log accepts appends at the right offset.
    let next = log.append(&mut tagged(42, 0)).unwrap().base_offset;
    assert_eq!(next, expected.len() as u64, "seed {seed}");
    drop(log);
    let log = Log::open(&dir, config(durability)).unwrap();
    assert!(log.recovery_report().clean_shutdown);
    assert_eq!(tags(&log).len(), expected.len() + 1);
}

#[test]
fn torn_tail_after_crash_keeps_every_acknowledged_batch_group_commit() {
    for seed in 0..40 {
        torn_tail_case(Durability::group_commit(), seed);
    }
}

#[test]
fn torn_tail_after_crash_keeps_every_acknowledged_batch_every_append() {
    for seed in 100..120 {
        torn_tail_case(Durability::EveryAppend, seed);
    }
}

#[test]
fn process_crash_without_fsync_keeps_what_reached_the_page_cache() {
    let (_image, dir) = crash_image(Durability::Never, 300);
    let log = Log::open(&dir, config(Durability::Never)).unwrap();
    assert!(!log.recovery_report().clean_shutdown);
    assert_eq!(tags(&log), (0..300).collect::<Vec<_>>());
}

#[test]
fn truncated_tail_inside_the_last_acknowledged_batch_is_refused() {
    // Bytes that were acknowledged cannot vanish in a crash; if they did, the disk lied
    // and the log says so instead of quietly serving less.
    let (_image, dir) = crash_image(Durability::group_commit(), 50);
    let last = segments(&dir).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    match Log::open(&dir, config(Durability::group_commit())) {
        Err(LogError::Corrupt { path, .. }) => assert_eq!(path, last),
        other => panic!("expected Corrupt, got {other:?}"),
    }
}

/// Flips one byte at a random position in the acknowledged data. The log must either
/// refuse to open (naming the file and a position at or before the flip) or open and
/// then refuse to return the damaged batch; it must never return altered data.
fn flipped_byte_case(seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let acked = rng.random_range(50..500);
    let (_image, dir) = crash_image(Durability::group_commit(), acked);
    let files = segments(&dir);
    let file = &files[rng.random_range(0..files.len())];
    let mut bytes = fs::read(file).unwrap();
    if bytes.is_empty() {
        return;
    }
    let at = rng.random_range(0..bytes.len());
    bytes[at] ^= 1 << rng.random_range(0..8);
    fs::write(file, &bytes).unwrap();
    let log = match Log::open(&dir, config(Durability::group_commit())) {
        Err(LogError::Corrupt { path, position, .. }) => {
            assert_eq!(&path, file, "seed {seed}");
            assert!(
                position <= at as u64,
                "seed {seed}: damage at {at} reported at {position}"
            );
            return;
        }
        Err(other) => panic!("seed {seed}: expected Corrupt, got {other}"),
        Ok(log) => log,
    };
    // Opened (the flip is in a sealed segment that recovery did not need to scan): every
    // read either returns the original data or fails with Corrupt.
    let mut offset = log.log_start_offset();
    let mut errors = 0;
    while offset < log.high_watermark() {
        match log.read(offset, 4096) {
            Ok(read) => {
                let mut pos = 0;
                while pos < read.bytes.len() {
                    let h = BatchHeader::parse(&read.bytes[pos..]).unwrap();
                    let len = h.total_len();
                    let decoded = herald_format::records::decode_batch(&read.bytes[pos..pos + len])
                        .unwrap_or_else(|e| panic!("seed {seed}: damaged batch returned: {e}"));
                    for r in decoded.records {
                        let tag = u64::from_be_bytes(r.value.unwrap().try_into().unwrap());
                        assert_eq!(
                            tag, r.offset as u64,
                            "seed {seed}: record at {} altered",
                            r.offset
                        );
                        assert_eq!(r.timestamp, 1_000 + r.offset, "seed {seed}");
                    }
                    offset = h.last_offset() as u64 + 1;
                    pos += len;
                }
            }
            Err(LogError::Corrupt { path, .. }) => {
                assert_eq!(&path, file, "seed {seed}");
                errors += 1;
                offset += 1;
            }
            Err(other) => panic!("seed {seed}: unexpected {other}"),
        }
    }
    assert!(
        errors > 0,
        "seed {seed}: the flipped byte at {at} in {} went unnoticed",
        file.display()
    );
}

#[test]
fn damage_before_the_tail_is_never_returned_as_data() {
    for seed in 0..60 {
        flipped_byte_case(seed);
    }
}
