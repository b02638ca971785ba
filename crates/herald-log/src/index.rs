//! Sparse per-segment indexes: offset → file position, and timestamp → position.
//!
//! Both live in memory (one entry per `index_interval_bytes` of log, so about 2 MiB per
//! GiB) and are appended to their files as they grow. Index files are never trusted
//! blindly: on open they are checked (size, monotonic entries, positions inside the
//! segment) and rebuilt from the segment when anything is off. See docs/design.md.

use std::{
    fs::File,
    io::Read,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
};

use crate::error::{LogError, Result};

/// Size of one offset-index entry: relative offset u32 LE, position u32 LE.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;
/// Size of one time-index entry: timestamp i64 LE, relative offset u32 LE, position u32 LE.
pub(crate) const TIME_ENTRY_LEN: usize = 16;

/// One offset-index entry: the batch starting at `position` has base offset
/// `segment base + rel_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub(crate) rel_offset: u32,
    pub(crate) position: u32,
}

/// One time-index entry: every batch before and including the one at `position` has a
/// max timestamp of at most `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub(crate) timestamp: i64,
    pub(crate) rel_offset: u32,
    pub(crate) position: u32,
}

/// The in-memory indexes of one segment and the files they are appended to.
#[derive(Debug)]
pub(crate) struct Indexes {
    pub(crate) offsets: Vec<OffsetEntry>,
    pub(crate) times: Vec<TimeEntry>,
    offset_file: File,
    offset_path: PathBuf,
    time_file: File,
    time_path: PathBuf,
    /// Bytes of log appended since the last offset-index entry.
    since_offset_entry: u64,
    /// Bytes of log appended since the last time-index entry.
    since_time_entry: u64,
}

fn open_rw(path: &Path) -> Result<File> {
    File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| LogError::io("open index", path, e))
}

fn read_all(file: &mut File, path: &Path) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| LogError::io("read index", path, e))?;
    Ok(buf)
}

impl Indexes {
    /// Opens (creating if needed) the index files of a segment, without loading them.
    pub(crate) fn create(offset_path: PathBuf, time_path: PathBuf) -> Result<Self> {
        let offset_file = open_rw(&offset_path)?;
        let time_file = open_rw(&time_path)?;
        Ok(Self {
            offsets: Vec::new(),
            times: Vec::new(),
            offset_file,
            offset_path,
            time_file,
            time_path,
            since_offset_entry: 0,
            since_time_entry: 0,
        })
    }

    /// Loads the index files of a sealed or cleanly closed segment whose data ends at
    /// `segment_len`. Returns `Ok(false)` when a file is missing entries or inconsistent,
    /// in which case the caller rebuilds the indexes from the segment.
    pub(crate) fn load(&mut self, segment_len: u64) -> Result<bool> {
        let raw = read_all(&mut self.offset_file, &self.offset_path)?;
        if raw.len() % OFFSET_ENTRY_LEN != 0 {
            return Ok(false);
        }
        let mut offsets = Vec::with_capacity(raw.len() / OFFSET_ENTRY_LEN);
        for chunk in raw.chunks_exact(OFFSET_ENTRY_LEN) {
            let e = OffsetEntry {
                rel_offset: u32::from_le_bytes(chunk[0..4].try_into().expect("4 bytes")),
                position: u32::from_le_bytes(chunk[4..8].try_into().expect("4 bytes")),
            };
            let ordered = offsets.last().is_none_or(|p: &OffsetEntry| {
                p.rel_offset < e.rel_offset && p.position < e.position
            });
            if !ordered || u64::from(e.position) >= segment_len {
                return Ok(false);
            }
            offsets.push(e);
        }
        // A non-empty segment always has an entry for its first batch.
        if segment_len > 0 && offsets.first().is_none_or(|e| e.position != 0) {
            return Ok(false);
        }
        let raw = read_all(&mut self.time_file, &self.time_path)?;
        if raw.len() % TIME_ENTRY_LEN != 0 {
            return Ok(false);
        }
        let mut times = Vec::with_capacity(raw.len() / TIME_ENTRY_LEN);
        for chunk in raw.chunks_exact(TIME_ENTRY_LEN) {
            let e = TimeEntry {
                timestamp: i64::from_le_bytes(chunk[0..8].try_into().expect("8 bytes")),
                rel_offset: u32::from_le_bytes(chunk[8..12].try_into().expect("4 bytes")),
                position: u32::from_le_bytes(chunk[12..16].try_into().expect("4 bytes")),
            };
            let ordered = times.last().is_none_or(|p: &TimeEntry| {
                p.timestamp < e.timestamp && p.rel_offset < e.rel_offset && p.position < e.position
            });
            if !ordered || u64::from(e.position) >= segment_len {
                return Ok(false);
            }
            times.push(e);
        }
        self.offsets = offsets;
        self.times = times;
        Ok(true)
    }

    /// Drops every entry and empties the files, before a rebuild.
    pub(crate) fn reset(&mut self) -> Result<()> {
        self.offsets.clear();
        self.times.clear();
        self.since_offset_entry = 0;
        self.since_time_entry = 0;
        self.offset_file
            .set_len(0)
            .map_err(|e| LogError::io("truncate index", &self.offset_path, e))?;
        self.time_file
            .set_len(0)
            .map_err(|e| LogError::io("truncate index", &self.time_path, e))
    }

    /// Records a batch appended at `position`. `max_ts_so_far` is the largest timestamp
    /// in the segment including this batch.
    pub(crate) fn on_batch(
        &mut self,
        rel_offset: u32,
        position: u32,
        len: u32,
        max_ts_so_far: i64,
        interval: u32,
    ) -> Result<()> {
        if self.offsets.is_empty() || self.since_offset_entry >= u64::from(interval) {
            let e = OffsetEntry {
                rel_offset,
                position,
            };
            let mut raw = [0u8; OFFSET_ENTRY_LEN];
            raw[0..4].copy_from_slice(&rel_offset.to_le_bytes());
            raw[4..8].copy_from_slice(&position.to_le_bytes());
            let at = (self.offsets.len() * OFFSET_ENTRY_LEN) as u64;
            self.offset_file
                .write_all_at(&raw, at)
                .map_err(|e| LogError::io("write index", &self.offset_path, e))?;
            self.offsets.push(e);
            self.since_offset_entry = 0;
        }
        self.since_offset_entry += u64::from(len);
        self.since_time_entry += u64::from(len);
        let newer = self
            .times
            .last()
            .is_none_or(|t| max_ts_so_far > t.timestamp);
        if newer && (self.times.is_empty() || self.since_time_entry >= u64::from(interval)) {
            self.push_time(max_ts_so_far, rel_offset, position)?;
        }
        Ok(())
    }

    /// Appends a time entry for the newest batch if its timestamp is not yet indexed, so
    /// that a reopened segment knows its largest timestamp without a scan.
    pub(crate) fn seal_time(&mut self, max_ts: i64, last_rel: u32, last_pos: u32) -> Result<()> {
        let newer = self.times.last().is_none_or(|t| max_ts > t.timestamp);
        let after = self.times.last().is_none_or(|t| last_rel > t.rel_offset);
        if newer && after {
            self.push_time(max_ts, last_rel, last_pos)?;
        }
        Ok(())
    }

    fn push_time(&mut self, timestamp: i64, rel_offset: u32, position: u32) -> Result<()> {
        let mut raw = [0u8; TIME_ENTRY_LEN];
        raw[0..8].copy_from_slice(&timestamp.to_le_bytes());
        raw[8..12].copy_from_slice(&rel_offset.to_le_bytes());
        raw[12..16].copy_from_slice(&position.to_le_bytes());
        let at = (self.times.len() * TIME_ENTRY_LEN) as u64;
        self.time_file
            .write_all_at(&raw, at)
            .map_err(|e| LogError::io("write time index", &self.time_path, e))?;
        self.times.push(TimeEntry {
            timestamp,
            rel_offset,
            position,
        });
        self.since_time_entry = 0;
        Ok(())
    }

    /// The last indexed batch whose base offset is at most `rel_offset` (the start of the
    /// segment when there is none).
    pub(crate) fn entry_for(&self, rel_offset: u32) -> OffsetEntry {
        let idx = self.offsets.partition_point(|e| e.rel_offset <= rel_offset);
        if idx == 0 {
            OffsetEntry {
                rel_offset: 0,
                position: 0,
            }
        } else {
            self.offsets[idx - 1]
        }
    }

    /// The batch from which to scan for the first batch with max timestamp >= `timestamp`
    /// (the start of the segment when no indexed batch is known to be older).
    pub(crate) fn entry_for_time(&self, timestamp: i64) -> OffsetEntry {
        let idx = self.times.partition_point(|e| e.timestamp < timestamp);
        match idx {
            0 => OffsetEntry {
                rel_offset: 0,
                position: 0,
            },
            _ => OffsetEntry {
                rel_offset: self.times[idx - 1].rel_offset,
                position: self.times[idx - 1].position,
            },
        }
    }

    /// Largest timestamp recorded in the time index.
    pub(crate) fn max_indexed_timestamp(&self) -> Option<i64> {
        self.times.last().map(|t| t.timestamp)
    }

    /// Forces both index files to disk.
    pub(crate) fn sync(&self) -> Result<()> {
        self.offset_file
            .sync_data()
            .map_err(|e| LogError::io("fsync index", &self.offset_path, e))?;
        self.time_file
            .sync_data()
            .map_err(|e| LogError::io("fsync time index", &self.time_path, e))
    }

    /// Paths of the index files, for deletion.
    pub(crate) fn paths(&self) -> [&Path; 2] {
        [&self.offset_path, &self.time_path]
    }
}
