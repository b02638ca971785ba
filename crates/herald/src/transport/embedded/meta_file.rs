//! Small metadata files (topic list, committed offsets) written atomically with a checksum.
//!
//! Layout, all integers little-endian:
//!
//! | bytes | field |
//! | --- | --- |
//! | 0..8 | magic `HRLDMETA` |
//! | 8..12 | format version, 1 |
//! | 12..16 | body length in bytes |
//! | 16..20 | CRC-32C of the body |
//! | 20.. | body: UTF-8 JSON |
//!
//! A write goes to `<name>.tmp`, is fsynced, renamed over `<name>`, and the directory is
//! fsynced, so a reader sees the old file or the new one, never a mix. A file that fails
//! its checks was damaged after it was written: it is an error, never read as empty.

use std::{
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

use crate::transport::TransportError;

const MAGIC: &[u8; 8] = b"HRLDMETA";
const VERSION: usize = MAGIC.len();
const LENGTH: usize = VERSION + 4;
const CRC: usize = LENGTH + 4;
const BODY: usize = CRC + 4;
const FORMAT_VERSION: u32 = 1;

fn storage_error(op: &str, path: &Path, e: impl std::fmt::Display) -> TransportError {
    TransportError::Storage(format!("{op} {}: {e}", path.display()).into())
}

/// Reads and checks a metadata file; `Ok(None)` if it does not exist.
pub(crate) fn read<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, TransportError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(storage_error("read", path, e)),
    };
    let corrupt = |reason: String| storage_error("corrupt metadata file", path, reason);
    if bytes.len() < BODY || &bytes[..VERSION] != MAGIC {
        return Err(corrupt("bad magic or short header".into()));
    }
    let le = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
    if le(VERSION) != FORMAT_VERSION {
        return Err(corrupt(format!("unknown format version {}", le(VERSION))));
    }
    let body = &bytes[BODY..];
    if le(LENGTH) as usize != body.len() {
        return Err(corrupt(format!(
            "header says {} body bytes, file has {}",
            le(LENGTH),
            body.len()
        )));
    }
    if crc32c::crc32c(body) != le(CRC) {
        return Err(corrupt("checksum mismatch".into()));
    }
    serde_json::from_slice(body)
        .map(Some)
        .map_err(|e| corrupt(format!("invalid body: {e}")))
}

/// Replaces `path` with `value` atomically and durably.
pub(crate) fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), TransportError> {
    let body = serde_json::to_vec(value).map_err(|e| storage_error("encode", path, e))?;
    let mut bytes = Vec::with_capacity(BODY + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    bytes.extend_from_slice(&(body.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    let tmp = tmp_path(path);
    let result = (|| -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|e| storage_error("write", path, e))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// A file name for an arbitrary string: ASCII letters, digits, `_` and `-` are kept, every
/// other byte becomes `%XX`, so distinct names never collide and none is `.` or `..`.
pub(crate) fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        assert_eq!(read::<Vec<u32>>(&path).unwrap(), None);
        write(&path, &vec![1u32, 2]).unwrap();
        write(&path, &vec![3u32]).unwrap();
        assert_eq!(read::<Vec<u32>>(&path).unwrap(), Some(vec![3]));
        assert!(!tmp_path(&path).exists());
    }

    #[test]
    fn damage_is_an_error_not_an_empty_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m");
        write(&path, &vec![1u32, 2, 3]).unwrap();
        let good = fs::read(&path).unwrap();
        let mut flipped = good.clone();
        *flipped.last_mut().unwrap() ^= 1;
        for bad in [flipped, good[..good.len() - 1].to_vec(), b"junk".to_vec()] {
            fs::write(&path, &bad).unwrap();
            let err = read::<Vec<u32>>(&path).unwrap_err();
            assert!(err.to_string().contains("corrupt metadata file"), "{err}");
        }
    }

    #[test]
    fn encoded_names_are_safe_and_distinct() {
        assert_eq!(encode_name("billing"), "billing");
        assert_eq!(encode_name("a.b"), "a%2Eb");
        assert_eq!(encode_name(".."), "%2E%2E");
        assert_eq!(encode_name("x/y"), "x%2Fy");
        assert_ne!(encode_name("a%2Eb"), encode_name("a.b"));
    }
}
