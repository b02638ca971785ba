//! The disk's own limits: the same bytes through a plain [`File`] on the same directory
//! as the log, measured in the same run.
//!
//! - Sequential write bandwidth: the batch buffer written back to back with `write_all`
//!   in chunks of [`CHUNK_BYTES`], one `sync_data` per chunk, as a group commit would
//!   sync its pending bytes (the log's default group commit syncs at the latest when
//!   4 MiB are pending), so the page cache cannot hide the disk.
//! - fsync rate: one small batch written, then `sync_data`, in a loop on a growing file:
//!   what fsync-every-append costs with one writer and nothing else.
//! - Sequential read bandwidth: the log's segment files read with [`READ_BYTES`] reads.

use std::{
    fs::{self, File},
    io::{Read, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::{BenchError, Result, workload::READ_BYTES};

/// Bytes written between two `sync_data` calls in the sequential-write baseline: the
/// pending bytes at which the log's default group commit starts a sync at once.
pub const CHUNK_BYTES: u64 = 4 << 20;

/// Size at which a baseline file is replaced by a new one, like a log segment rolls.
const ROLL_BYTES: u64 = crate::workload::SEGMENT_BYTES;

/// Copies of a `batch_bytes` buffer in one chunk of the sequential-write baseline.
pub fn chunk_copies(batch_bytes: u64) -> u64 {
    (CHUNK_BYTES / batch_bytes.max(1)).max(1)
}

/// An append-only file for the write baselines.
#[derive(Debug)]
pub struct RawFile {
    path: PathBuf,
    file: File,
    written: u64,
}

impl RawFile {
    /// Creates (or truncates) `dir/raw.data`, creating `dir` if needed.
    pub fn create(dir: &Path) -> Result<Self> {
        fs::create_dir_all(dir).map_err(|e| BenchError::io("create baseline dir", dir, e))?;
        let path = dir.join("raw.data");
        let file = File::create(&path).map_err(|e| BenchError::io("create", &path, e))?;
        Ok(Self {
            path,
            file,
            written: 0,
        })
    }

    /// Writes `chunks` chunks of `batch` copies ([`chunk_copies`]) back to back, with one
    /// `sync_data` after each chunk; returns the time taken.
    pub fn timed_chunks(&mut self, batch: &[u8], chunks: u64) -> Result<Duration> {
        let copies = chunk_copies(batch.len() as u64);
        let started = Instant::now();
        for _ in 0..chunks {
            for _ in 0..copies {
                self.write(batch)?;
            }
            self.sync()?;
        }
        Ok(started.elapsed())
    }

    /// Writes `batch` then calls `sync_data`, `n` times; returns the time taken.
    pub fn timed_fsyncs(&mut self, batch: &[u8], n: u64) -> Result<Duration> {
        let started = Instant::now();
        for _ in 0..n {
            self.write(batch)?;
            self.sync()?;
        }
        Ok(started.elapsed())
    }

    /// Like [`timed_chunks`](Self::timed_chunks) until `slot` has passed; returns the
    /// bytes written and the time taken.
    pub fn chunks_for(&mut self, batch: &[u8], slot: Duration) -> Result<(u64, Duration)> {
        let copies = chunk_copies(batch.len() as u64);
        let started = Instant::now();
        let mut bytes = 0;
        while started.elapsed() < slot {
            for _ in 0..copies {
                self.write(batch)?;
            }
            self.sync()?;
            bytes += copies * batch.len() as u64;
        }
        Ok((bytes, started.elapsed()))
    }

    /// Like [`timed_fsyncs`](Self::timed_fsyncs) until `slot` has passed; returns the
    /// number of write-and-sync rounds and the time taken.
    pub fn fsyncs_for(&mut self, batch: &[u8], slot: Duration) -> Result<(u64, Duration)> {
        let started = Instant::now();
        let mut n = 0;
        while started.elapsed() < slot {
            self.write(batch)?;
            self.sync()?;
            n += 1;
        }
        Ok((n, started.elapsed()))
    }

    /// Replaces the file with an empty one once it has grown past a segment's size; call
    /// it between timed runs.
    pub fn roll_if_full(&mut self) -> Result<()> {
        if self.written >= ROLL_BYTES {
            fs::remove_file(&self.path).map_err(|e| BenchError::io("remove", &self.path, e))?;
            self.file =
                File::create(&self.path).map_err(|e| BenchError::io("create", &self.path, e))?;
            self.written = 0;
        }
        Ok(())
    }

    /// Deletes the file.
    pub fn destroy(self) -> Result<()> {
        drop(self.file);
        fs::remove_file(&self.path).map_err(|e| BenchError::io("remove", &self.path, e))
    }

    fn write(&mut self, buf: &[u8]) -> Result<()> {
        self.file
            .write_all(buf)
            .map_err(|e| BenchError::io("write", &self.path, e))?;
        self.written += buf.len() as u64;
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| BenchError::io("sync_data", &self.path, e))
    }
}

/// Reads every segment file (`*.log`) in `dir`, in name order, with [`READ_BYTES`] reads;
/// returns the bytes read and the time taken.
pub fn timed_read_segments(dir: &Path) -> Result<(u64, Duration)> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .map_err(|e| BenchError::io("list", dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|ext| ext == "log"))
        .collect();
    paths.sort();
    let mut buf = vec![0; READ_BYTES];
    let started = Instant::now();
    let mut total = 0;
    for path in &paths {
        let mut file = File::open(path).map_err(|e| BenchError::io("open", path, e))?;
        loop {
            let n = file
                .read(&mut buf)
                .map_err(|e| BenchError::io("read", path, e))?;
            if n == 0 {
                break;
            }
            total += n as u64;
        }
    }
    Ok((total, started.elapsed()))
}

/// Drops the cached pages of every file in `dir` (`posix_fadvise(DONTNEED)`), so the next
/// read comes from the disk. Only clean pages can be dropped: flush first.
pub fn evict_from_cache(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(|e| BenchError::io("list", dir, e))? {
        let path = entry.map_err(|e| BenchError::io("list", dir, e))?.path();
        if !path.is_file() {
            continue;
        }
        let file = File::open(&path).map_err(|e| BenchError::io("open", &path, e))?;
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(|e| BenchError::io("posix_fadvise", &path, e.into()))?;
    }
    Ok(())
}
