//! The broker's own small files under `DATA_DIR/broker/`: the topic catalog, the
//! producer-id counter and the cluster id. Each is a JSON document replaced atomically
//! (write a temporary file, fsync it, rename it over the old one, fsync the directory),
//! so a crash leaves either the old or the new version, never a torn one.

use std::{
    collections::BTreeMap,
    fs::{self, File},
    io::{self, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::error::BrokerError;

/// File name of the topic catalog inside the broker directory.
pub(crate) const CATALOG_FILE: &str = "topics.json";
/// File name of the producer-id counter.
pub(crate) const PRODUCER_IDS_FILE: &str = "producer-ids.json";
/// File name of the cluster id.
pub(crate) const CLUSTER_FILE: &str = "cluster.json";

/// Replaces `path` with `bytes` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BrokerError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let io = |op: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |source: io::Error| BrokerError::Io {
            op,
            path: p,
            source,
        }
    };
    let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(bytes).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("fsync", &tmp))?;
    drop(file);
    fs::rename(&tmp, path).map_err(io("rename into place", path))?;
    sync_dir(dir)
}

/// Fsyncs a directory so that entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BrokerError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| BrokerError::Io {
            op: "fsync directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// Reads a JSON file written by [`write_json`]; `Ok(None)` when it does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, BrokerError> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(BrokerError::Io {
                op: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| BrokerError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

/// Writes `value` as JSON with [`write_atomic`].
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), BrokerError> {
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| BrokerError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("cannot serialise: {e}"),
    })?;
    write_atomic(path, &bytes)
}

/// One topic as the catalog records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicRecord {
    /// Kafka topic id (UUID, hyphenated).
    pub(crate) id: String,
    /// Number of partitions.
    pub(crate) partitions: i32,
    /// Configuration overrides in Kafka's names.
    #[serde(default)]
    pub(crate) configs: BTreeMap<String, String>,
    /// Set while the topic's directories are being removed; a broker that finds it at
    /// startup finishes the deletion.
    #[serde(default)]
    pub(crate) deleting: bool,
}

/// The topic catalog: every topic, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Catalog {
    /// Format version of this file.
    pub(crate) version: u32,
    /// Topics by name.
    pub(crate) topics: BTreeMap<String, TopicRecord>,
}

/// The current catalog format.
pub(crate) const CATALOG_VERSION: u32 = 1;

/// Producer ids are handed out from blocks; the start of the next block is persisted
/// before any id of the current block is used, so ids never repeat across restarts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProducerIdBlock {
    /// First id of the next block not yet reserved.
    pub(crate) next_block_start: i64,
}

/// The cluster id kept in the data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterFile {
    /// The id reported in Metadata.
    pub(crate) cluster_id: String,
}

/// Creates `dir` (and parents) and makes its entry durable.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<PathBuf, BrokerError> {
    fs::create_dir_all(dir).map_err(|source| BrokerError::Io {
        op: "create directory",
        path: dir.to_path_buf(),
        source,
    })?;
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CATALOG_FILE);
        assert_eq!(read_json::<Catalog>(&path).unwrap(), None);
        let mut catalog = Catalog {
            version: CATALOG_VERSION,
            ..Catalog::default()
        };
        catalog.topics.insert(
            "orders".into(),
            TopicRecord {
                id: "00000000-0000-0000-0000-000000000001".into(),
                partitions: 3,
                configs: BTreeMap::from([("retention.ms".into(), "1000".into())]),
                deleting: false,
            },
        );
        write_json(&path, &catalog).unwrap();
        assert_eq!(read_json::<Catalog>(&path).unwrap(), Some(catalog.clone()));
        catalog.topics.clear();
        write_json(&path, &catalog).unwrap();
        assert_eq!(read_json::<Catalog>(&path).unwrap(), Some(catalog));
        assert!(!path.with_extension("tmp").exists());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_a_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CATALOG_FILE);
        fs::write(&path, b"{ not json").unwrap();
        let err = read_json::<Catalog>(&path).unwrap_err();
        assert!(err.to_string().contains(CATALOG_FILE), "{err}");
    }
}
