//! Opening a log directory: the lock, the segment list, and crash recovery.
//!
//! After a clean shutdown nothing is read but the index files. After a crash the
//! segments from the checkpoint's recovery point on are scanned batch by batch (framing,
//! magic, CRC-32C, offset continuity). Invalid bytes at the end of the last segment past
//! the durable point are a torn tail and are cut off; invalid bytes anywhere else were
//! once acknowledged or sealed, so the open fails with [`LogError::Corrupt`] instead of
//! silently dropping data.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    path::Path,
    sync::Arc,
};

use crate::{
    checkpoint::{Checkpoint, CheckpointData, RecoveryPoint},
    config::LogConfig,
    error::{LogError, Result},
    segment::Segment,
};

/// What opening the log had to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous shutdown was clean and nothing had to be scanned.
    pub clean_shutdown: bool,
    /// Bytes of segment data read and checked.
    pub bytes_scanned: u64,
    /// Bytes of torn tail cut off the last segment.
    pub truncated_bytes: u64,
    /// Segments whose index files were missing or damaged and were rebuilt.
    pub indexes_rebuilt: usize,
    /// Segments found.
    pub segments: usize,
}

/// Name of the lock file inside a log directory.
pub(crate) const LOCK_FILE: &str = ".lock";
/// Name of the checkpoint file inside a log directory.
pub(crate) const CHECKPOINT_FILE: &str = "checkpoint";

/// Creates `dir` if needed and takes an exclusive advisory lock on it for the life of the
/// returned file.
pub(crate) fn lock_dir(dir: &Path) -> Result<File> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(|e| LogError::io("create log directory", dir, e))?;
        if let Some(parent) = dir.parent() {
            sync_dir(parent)?;
        }
    }
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| LogError::io("open lock file", &path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked(dir.to_path_buf())),
        Err(std::fs::TryLockError::Error(e)) => Err(LogError::io("lock log directory", dir, e)),
    }
}

/// Makes directory entries (new or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| LogError::io("fsync directory", dir, e))
}

/// The state a recovered log starts from.
pub(crate) struct Recovered {
    pub(crate) segments: BTreeMap<u64, Arc<Segment>>,
    pub(crate) checkpoint: Checkpoint,
    pub(crate) log_start: u64,
    pub(crate) next_offset: u64,
    pub(crate) durable: RecoveryPoint,
    pub(crate) report: RecoveryReport,
}

/// Base offsets of the segment files in `dir`, ascending.
fn segment_bases(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| LogError::io("list log directory", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| LogError::io("list log directory", dir, e))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
        {
            bases.push(stem.parse::<u64>().expect("20 digits fit in u64"));
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Loads a trusted segment's indexes, rebuilding them by a scan if they are damaged; a
/// damaged trusted segment is an error.
fn load_trusted(
    segment: &Segment,
    next_offset: u64,
    config: &LogConfig,
    report: &mut RecoveryReport,
) -> Result<()> {
    let len = segment.file_len()?;
    let loaded = segment.indexes.write().expect("index lock").load(len)?;
    if loaded {
        return segment.adopt(len, next_offset);
    }
    tracing::warn!(segment = %segment.path.display(), "index missing or damaged; rebuilding it from the segment");
    report.indexes_rebuilt += 1;
    let outcome = segment.scan_and_index(config.index_interval_bytes)?;
    report.bytes_scanned += outcome.valid_len;
    if let Some((position, reason)) = outcome.damage {
        return Err(segment.corrupt(position, reason));
    }
    if outcome.next_offset != next_offset {
        return Err(segment.corrupt(
            outcome.valid_len,
            format!(
                "segment ends at offset {} but the next one starts at {next_offset}",
                outcome.next_offset
            ),
        ));
    }
    segment.seal()
}

/// Opens the segments of `dir` and brings them to a consistent state.
pub(crate) fn recover(dir: &Path, config: &LogConfig) -> Result<Recovered> {
    let (mut checkpoint, saved) = Checkpoint::open(dir.join(CHECKPOINT_FILE))?;
    let mut bases = segment_bases(dir)?;
    let mut report = RecoveryReport::default();
    if bases.is_empty() {
        let base = saved.map_or(0, |d| d.log_start);
        Segment::open(dir, base)?;
        sync_dir(dir)?;
        bases.push(base);
    }
    let mut log_start = saved.map_or(bases[0], |d| d.log_start.max(bases[0]));

    // A crash between recording a new log start and deleting the segments before it
    // leaves those segments behind: finish the job.
    while bases.len() > 1 && bases[1] <= log_start {
        let stale = Segment::open(dir, bases[0])?;
        stale.remove_files()?;
        bases.remove(0);
    }

    let last_base = *bases.last().expect("at least one segment");
    let clean = saved.filter(|d| d.clean && d.point.segment == last_base);
    let mut segments = BTreeMap::new();
    if let Some(clean) = clean {
        let last_len =
            fs::metadata(dir.join(format!("{}.log", crate::segment::file_stem(last_base))))
                .map_err(|e| LogError::io("stat segment", dir, e))?
                .len();
        if last_len == clean.point.position {
            for (i, base) in bases.iter().enumerate() {
                let segment = Segment::open(dir, *base)?;
                let next = bases.get(i + 1).copied().unwrap_or(clean.point.next_offset);
                load_trusted(&segment, next, config, &mut report)?;
                segments.insert(*base, Arc::new(segment));
            }
            report.clean_shutdown = report.indexes_rebuilt == 0;
        }
    }
    if segments.is_empty() {
        let point = saved
            .map(|d| d.point)
            .filter(|p| bases.binary_search(&p.segment).is_ok());
        for (i, base) in bases.iter().enumerate() {
            let segment = Segment::open(dir, *base)?;
            let is_last = i + 1 == bases.len();
            match point {
                Some(p) if *base < p.segment => {
                    load_trusted(&segment, bases[i + 1], config, &mut report)?;
                }
                _ => {
                    let outcome = segment.scan_and_index(config.index_interval_bytes)?;
                    report.bytes_scanned += outcome.valid_len;
                    if let Some((position, reason)) = outcome.damage {
                        let protected = point.is_some_and(|p| {
                            *base < p.segment || (*base == p.segment && position < p.position)
                        });
                        if !is_last || protected {
                            return Err(segment.corrupt(position, reason));
                        }
                        tracing::warn!(
                            segment = %segment.path.display(),
                            position,
                            dropped = outcome.file_len - position,
                            %reason,
                            "truncating the torn tail of the log left by a crash"
                        );
                        segment.truncate(position)?;
                        report.truncated_bytes += outcome.file_len - position;
                    } else if let Some(p) =
                        point.filter(|p| p.segment == *base && outcome.valid_len < p.position)
                    {
                        // Acknowledged bytes are missing: the file was cut short.
                        return Err(segment.corrupt(
                            outcome.valid_len,
                            format!("segment is shorter than its durable length {}", p.position),
                        ));
                    }
                    if let Some(&next) = bases.get(i + 1) {
                        if outcome.next_offset != next {
                            return Err(segment.corrupt(
                                outcome.valid_len,
                                format!(
                                    "segment ends at offset {} but the next one starts at {next}",
                                    outcome.next_offset
                                ),
                            ));
                        }
                        segment.seal()?;
                    }
                }
            }
            segments.insert(*base, Arc::new(segment));
        }
    }
    report.segments = segments.len();
    let last = segments.values().next_back().expect("at least one segment");
    let next_offset = last.next_offset();
    // Without fsync, a power loss can take data that a log start once pointed into.
    log_start = log_start.min(next_offset);
    let durable = RecoveryPoint {
        segment: last.base,
        position: last.size(),
        next_offset,
    };
    checkpoint.write(
        &CheckpointData {
            clean: false,
            log_start,
            point: durable,
        },
        true,
    )?;
    Ok(Recovered {
        segments,
        checkpoint,
        log_start,
        next_offset,
        durable,
        report,
    })
}
