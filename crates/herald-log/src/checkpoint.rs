//! The log's checkpoint file: where recovery may start, where the log starts, and
//! whether the last shutdown was clean.
//!
//! The file holds two 64-byte slots written in place; each carries a sequence number and
//! a CRC-32C, and the valid slot with the higher sequence wins. Slot 0 is written only by
//! synced updates (roll, retention, delete-records, open, close), slot 1 by every update.
//! Updates after a group-commit fsync are not themselves fsynced: a lost or torn one only
//! makes the recovery point older, which is safe, and never touches slot 0.
//! Layout in docs/design.md.

use std::{fs::File, os::unix::fs::FileExt, path::PathBuf};

use crate::error::{LogError, Result};

const SLOT_LEN: usize = 64;
const MAGIC: u32 = u32::from_le_bytes(*b"HLCP");
const VERSION: u16 = 1;
const FLAG_CLEAN: u16 = 1;

const OFF_MAGIC: usize = 0;
const OFF_VERSION: usize = OFF_MAGIC + 4;
const OFF_FLAGS: usize = OFF_VERSION + 2;
const OFF_SEQ: usize = OFF_FLAGS + 2;
const OFF_LOG_START: usize = OFF_SEQ + 8;
const OFF_SEGMENT: usize = OFF_LOG_START + 8;
const OFF_POSITION: usize = OFF_SEGMENT + 8;
const OFF_NEXT: usize = OFF_POSITION + 8;
const OFF_CRC: usize = SLOT_LEN - 4;

/// A point up to which the log is known to be valid and on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoveryPoint {
    /// Base offset of the segment the point lies in.
    pub(crate) segment: u64,
    /// Byte position within that segment.
    pub(crate) position: u64,
    /// The offset of the next batch after the point.
    pub(crate) next_offset: u64,
}

/// The decoded contents of the newest valid slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CheckpointData {
    pub(crate) clean: bool,
    pub(crate) log_start: u64,
    pub(crate) point: RecoveryPoint,
}

/// The open checkpoint file.
#[derive(Debug)]
pub(crate) struct Checkpoint {
    file: File,
    path: PathBuf,
    seq: u64,
}

fn encode(seq: u64, data: &CheckpointData) -> [u8; SLOT_LEN] {
    let mut b = [0u8; SLOT_LEN];
    b[OFF_MAGIC..OFF_MAGIC + 4].copy_from_slice(&MAGIC.to_le_bytes());
    b[OFF_VERSION..OFF_VERSION + 2].copy_from_slice(&VERSION.to_le_bytes());
    let flags = if data.clean { FLAG_CLEAN } else { 0 };
    b[OFF_FLAGS..OFF_FLAGS + 2].copy_from_slice(&flags.to_le_bytes());
    b[OFF_SEQ..OFF_SEQ + 8].copy_from_slice(&seq.to_le_bytes());
    b[OFF_LOG_START..OFF_LOG_START + 8].copy_from_slice(&data.log_start.to_le_bytes());
    b[OFF_SEGMENT..OFF_SEGMENT + 8].copy_from_slice(&data.point.segment.to_le_bytes());
    b[OFF_POSITION..OFF_POSITION + 8].copy_from_slice(&data.point.position.to_le_bytes());
    b[OFF_NEXT..OFF_NEXT + 8].copy_from_slice(&data.point.next_offset.to_le_bytes());
    let crc = crc32c::crc32c(&b[..OFF_CRC]);
    b[OFF_CRC..].copy_from_slice(&crc.to_le_bytes());
    b
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn decode(b: &[u8]) -> Option<(u64, CheckpointData)> {
    let crc = u32::from_le_bytes(b[OFF_CRC..].try_into().expect("4 bytes"));
    if crc != crc32c::crc32c(&b[..OFF_CRC])
        || b[OFF_MAGIC..OFF_MAGIC + 4] != MAGIC.to_le_bytes()
        || u16::from_le_bytes([b[OFF_VERSION], b[OFF_VERSION + 1]]) != VERSION
    {
        return None;
    }
    let flags = u16::from_le_bytes([b[OFF_FLAGS], b[OFF_FLAGS + 1]]);
    Some((
        u64_at(b, OFF_SEQ),
        CheckpointData {
            clean: flags & FLAG_CLEAN != 0,
            log_start: u64_at(b, OFF_LOG_START),
            point: RecoveryPoint {
                segment: u64_at(b, OFF_SEGMENT),
                position: u64_at(b, OFF_POSITION),
                next_offset: u64_at(b, OFF_NEXT),
            },
        },
    ))
}

impl Checkpoint {
    /// Opens or creates the checkpoint file and returns the newest valid contents, if any.
    pub(crate) fn open(path: PathBuf) -> Result<(Self, Option<CheckpointData>)> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| LogError::io("open checkpoint", &path, e))?;
        let mut raw = [0u8; 2 * SLOT_LEN];
        let len = file
            .metadata()
            .map_err(|e| LogError::io("stat checkpoint", &path, e))?
            .len();
        let mut best: Option<(u64, CheckpointData)> = None;
        if len >= raw.len() as u64 {
            file.read_exact_at(&mut raw, 0)
                .map_err(|e| LogError::io("read checkpoint", &path, e))?;
            for slot in raw.chunks_exact(SLOT_LEN) {
                if let Some((seq, data)) = decode(slot)
                    && best.is_none_or(|(s, _)| seq > s)
                {
                    best = Some((seq, data));
                }
            }
        }
        let seq = best.map_or(0, |(s, _)| s);
        Ok((Self { file, path, seq }, best.map(|(_, d)| d)))
    }

    /// Records `data`. With `sync`, the record is on disk when this returns and is written
    /// to both slots; without, only slot 1 is written, so slot 0 always holds the newest
    /// synced record and a torn or lost unsynced write can never roll back a synced one
    /// (such as a new log start offset).
    pub(crate) fn write(&mut self, data: &CheckpointData, sync: bool) -> Result<()> {
        if sync {
            self.put(0, data)?;
        }
        self.put(1, data)?;
        if sync {
            self.file
                .sync_data()
                .map_err(|e| LogError::io("fsync checkpoint", &self.path, e))?;
        }
        Ok(())
    }

    fn put(&mut self, slot: u64, data: &CheckpointData) -> Result<()> {
        self.seq += 1;
        let bytes = encode(self.seq, data);
        self.file
            .write_all_at(&bytes, slot * SLOT_LEN as u64)
            .map_err(|e| LogError::io("write checkpoint", &self.path, e))
    }
}
