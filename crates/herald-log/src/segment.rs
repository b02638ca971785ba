//! One segment: a file of consecutive v2 batches (exactly the bytes clients sent, with
//! offsets assigned) plus its indexes. Segment `N` is named `{N:020}.log` and its first
//! batch has base offset `N`.

use std::{
    fs::File,
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{
        RwLock,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
};

use herald_format::batch::{self, BatchHeader, HEADER_LEN};

use crate::{
    error::{LogError, Result},
    index::Indexes,
};

/// File name stem of the segment starting at `base`.
pub(crate) fn file_stem(base: u64) -> String {
    format!("{base:020}")
}

/// A segment of the log. Sizes are atomics so readers can see them without the log lock;
/// only the single writer (holding the log lock) changes them.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    pub(crate) indexes: RwLock<Indexes>,
    /// Bytes of valid batches in the file.
    size: AtomicU64,
    /// Offset after the last batch.
    next_offset: AtomicU64,
    /// Largest batch max timestamp, or `i64::MIN` when empty.
    max_timestamp: AtomicI64,
    /// Wall-clock time (ms) of the segment's first append, for age-based rolling; from the
    /// file's creation time after a reopen; `i64::MIN` while empty.
    created_ms: AtomicI64,
    /// Position and relative offset of the last batch, for sealing the time index.
    last_batch: AtomicU64,
    /// Test hook: the next fsync fails with EIO.
    #[cfg(test)]
    pub(crate) fail_next_sync: std::sync::atomic::AtomicBool,
}

/// What a scan of a segment found.
#[derive(Debug)]
pub(crate) struct ScanOutcome {
    /// Bytes of valid batches from the start of the file.
    pub(crate) valid_len: u64,
    /// Offset after the last valid batch.
    pub(crate) next_offset: u64,
    /// The first invalid bytes, if the scan stopped before the end of the file.
    pub(crate) damage: Option<(u64, String)>,
    /// Length of the file.
    pub(crate) file_len: u64,
}

fn pack_last(rel: u32, pos: u32) -> u64 {
    (u64::from(rel) << 32) | u64::from(pos)
}

impl Segment {
    /// Opens (or creates) the segment starting at `base` in `dir`.
    pub(crate) fn open(dir: &Path, base: u64) -> Result<Self> {
        let stem = file_stem(base);
        let path = dir.join(format!("{stem}.log"));
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io("open segment", &path, e))?;
        let indexes = Indexes::create(
            dir.join(format!("{stem}.index")),
            dir.join(format!("{stem}.timeindex")),
        )?;
        Ok(Self {
            base,
            path,
            file,
            indexes: RwLock::new(indexes),
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(base),
            max_timestamp: AtomicI64::new(i64::MIN),
            created_ms: AtomicI64::new(i64::MIN),
            last_batch: AtomicU64::new(0),
            #[cfg(test)]
            fail_next_sync: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }
    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }
    /// Wall-clock ms of the first append, or `i64::MIN` for an empty segment.
    pub(crate) fn created_ms(&self) -> i64 {
        self.created_ms.load(Ordering::Acquire)
    }

    /// When the file was created (or, where the filesystem does not record that, last
    /// modified), in ms since the epoch.
    fn file_created_ms(&self) -> i64 {
        let meta = self.file.metadata().ok();
        meta.and_then(|m| m.created().or_else(|_| m.modified()).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or_else(crate::clock::now_ms, |d| d.as_millis() as i64)
    }

    /// Length of the file on disk, which after a crash may exceed the valid size.
    pub(crate) fn file_len(&self) -> Result<u64> {
        Ok(self
            .file
            .metadata()
            .map_err(|e| LogError::io("stat segment", &self.path, e))?
            .len())
    }

    /// Records that a batch was written at `position`; called by the writer only.
    pub(crate) fn on_append(
        &self,
        header: &BatchHeader,
        position: u64,
        interval: u32,
    ) -> Result<()> {
        let len = header.total_len() as u64;
        let rel = (header.base_offset as u64 - self.base) as u32;
        let max_ts = self.max_timestamp().max(header.max_timestamp);
        if self.created_ms() == i64::MIN {
            self.created_ms
                .store(crate::clock::now_ms(), Ordering::Release);
        }
        self.indexes.write().expect("index lock").on_batch(
            rel,
            position as u32,
            len as u32,
            max_ts,
            interval,
        )?;
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.last_batch
            .store(pack_last(rel, position as u32), Ordering::Release);
        self.next_offset
            .store(header.last_offset() as u64 + 1, Ordering::Release);
        self.size.store(position + len, Ordering::Release);
        Ok(())
    }

    /// Adopts sizes of a segment whose indexes were loaded from disk (no scan). The
    /// segment's end is `len`; `next_offset` comes from the caller (checkpoint or the next
    /// segment's base); the first and last batch headers are read to learn the timestamps.
    pub(crate) fn adopt(&self, len: u64, next_offset: u64) -> Result<()> {
        self.size.store(len, Ordering::Release);
        self.next_offset.store(next_offset, Ordering::Release);
        if len == 0 {
            return Ok(());
        }
        let first = self.read_header(0)?;
        self.created_ms
            .store(self.file_created_ms(), Ordering::Release);
        let indexes = self.indexes.read().expect("index lock");
        let max_ts = indexes
            .max_indexed_timestamp()
            .unwrap_or(first.max_timestamp);
        self.max_timestamp.store(max_ts, Ordering::Release);
        Ok(())
    }

    /// Reads and parses the batch header at `position` (no CRC check).
    pub(crate) fn read_header(&self, position: u64) -> Result<BatchHeader> {
        let mut raw = [0u8; HEADER_LEN];
        self.file
            .read_exact_at(&mut raw, position)
            .map_err(|e| LogError::io("read segment", &self.path, e))?;
        BatchHeader::parse(&raw).map_err(|e| self.corrupt(position, e.to_string()))
    }

    /// Walks batch headers from the index entry at or before `offset` to the batch that
    /// contains it, checking on the way what the CRC does not cover: each base offset
    /// continues the previous batch and the leader epoch is the one the log stamps.
    /// Returns the batch's position and header.
    pub(crate) fn locate(&self, offset: u64, limit: u64) -> Result<(u64, BatchHeader)> {
        let rel = (offset - self.base).min(u64::from(u32::MAX)) as u32;
        let entry = self.indexes.read().expect("index lock").entry_for(rel);
        let mut pos = u64::from(entry.position);
        let mut expected = self.base + u64::from(entry.rel_offset);
        loop {
            if pos >= limit {
                return Err(self.corrupt(
                    pos,
                    format!("offset {offset} not found before the end of the segment"),
                ));
            }
            let header = self.read_header(pos)?;
            self.check_header(&header, pos, expected, limit)?;
            if header.last_offset() as u64 >= offset {
                return Ok((pos, header));
            }
            expected = header.last_offset() as u64 + 1;
            pos += header.total_len() as u64;
        }
    }

    /// Checks the parts of a stored header that the CRC does not protect.
    pub(crate) fn check_header(
        &self,
        header: &BatchHeader,
        pos: u64,
        expected_base: u64,
        limit: u64,
    ) -> Result<()> {
        if header.base_offset < 0 || header.base_offset as u64 != expected_base {
            return Err(self.corrupt(
                pos,
                format!(
                    "batch base offset {} where {expected_base} was expected",
                    header.base_offset
                ),
            ));
        }
        if header.partition_leader_epoch != batch::STORED_LEADER_EPOCH {
            return Err(self.corrupt(
                pos,
                format!(
                    "batch leader epoch {} is not the stored epoch",
                    header.partition_leader_epoch
                ),
            ));
        }
        if header.magic != batch::MAGIC_V2 || header.last_offset_delta < 0 {
            return Err(self.corrupt(pos, "batch header fields are invalid"));
        }
        if header.batch_length < (HEADER_LEN - batch::LOG_OVERHEAD) as i32
            || pos + header.total_len() as u64 > limit
        {
            return Err(self.corrupt(
                pos,
                format!(
                    "batch length {} runs past the end of the data",
                    header.batch_length
                ),
            ));
        }
        Ok(())
    }

    /// Reads `len` bytes at `position`.
    pub(crate) fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, position)
            .map_err(|e| LogError::io("read segment", &self.path, e))?;
        Ok(buf)
    }

    pub(crate) fn corrupt(&self, position: u64, reason: impl Into<String>) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            position,
            reason: reason.into(),
        }
    }

    /// Reads every batch from the start, checking framing, magic, CRC and offset
    /// continuity, and rebuilds the indexes from what is valid. Stops at the first bad
    /// batch and reports where.
    pub(crate) fn scan_and_index(&self, interval: u32) -> Result<ScanOutcome> {
        let file_len = self.file_len()?;
        self.indexes.write().expect("index lock").reset()?;
        self.size.store(0, Ordering::Release);
        self.next_offset.store(self.base, Ordering::Release);
        self.max_timestamp.store(i64::MIN, Ordering::Release);
        let mut pos = 0u64;
        let created = self.file_created_ms();
        let mut expected = self.base;
        let mut header_buf = [0u8; HEADER_LEN];
        let mut body = Vec::new();
        let damage = loop {
            if pos == file_len {
                break None;
            }
            if file_len - pos < HEADER_LEN as u64 {
                break Some((
                    pos,
                    format!(
                        "{} trailing bytes, less than a batch header",
                        file_len - pos
                    ),
                ));
            }
            self.file
                .read_exact_at(&mut header_buf, pos)
                .map_err(|e| LogError::io("read segment", &self.path, e))?;
            let header = BatchHeader::parse(&header_buf).expect("full header");
            if let Err(e) = self.check_header(&header, pos, expected, file_len) {
                break Some((pos, e.to_string()));
            }
            body.resize(header.total_len(), 0);
            self.file
                .read_exact_at(&mut body, pos)
                .map_err(|e| LogError::io("read segment", &self.path, e))?;
            if let Err(e) = batch::validate(&body) {
                break Some((pos, e.to_string()));
            }
            self.on_append(&header, pos, interval)?;
            expected = header.last_offset() as u64 + 1;
            pos += header.total_len() as u64;
        };
        if pos > 0 {
            self.created_ms.store(created, Ordering::Release);
        }
        Ok(ScanOutcome {
            valid_len: pos,
            next_offset: expected,
            damage,
            file_len,
        })
    }

    /// Cuts the file back to `len` bytes (a torn tail) and makes that durable.
    pub(crate) fn truncate(&self, len: u64) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| LogError::io("truncate segment", &self.path, e))?;
        self.file
            .sync_all()
            .map_err(|e| LogError::io("fsync segment", &self.path, e))
    }

    /// Forces the data and the indexes to disk, and writes the final time-index entry.
    pub(crate) fn seal(&self) -> Result<()> {
        self.sync_data()?;
        let mut indexes = self.indexes.write().expect("index lock");
        if self.size() > 0 {
            let last = self.last_batch.load(Ordering::Acquire);
            indexes.seal_time(self.max_timestamp(), (last >> 32) as u32, last as u32)?;
        }
        indexes.sync()
    }

    /// `fdatasync` of the segment data.
    pub(crate) fn sync_data(&self) -> Result<()> {
        #[cfg(test)]
        if self.fail_next_sync.swap(false, Ordering::AcqRel) {
            return Err(LogError::io(
                "fsync segment",
                &self.path,
                std::io::Error::from_raw_os_error(5),
            ));
        }
        self.file
            .sync_data()
            .map_err(|e| LogError::io("fsync segment", &self.path, e))
    }

    /// Deletes the segment's files. Readers holding the segment keep reading until they
    /// drop it (the open handle outlives the unlink).
    pub(crate) fn remove_files(&self) -> Result<()> {
        let indexes = self.indexes.read().expect("index lock");
        for path in [self.path.as_path()].into_iter().chain(indexes.paths()) {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(LogError::io("delete segment", path, e)),
            }
        }
        Ok(())
    }
}
