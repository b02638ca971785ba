//! Topics: named groups of partitions, each partition a [`herald_log::Log`] in
//! `DATA_DIR/topics/<topic>-<partition>/`, recorded in a durable catalog
//! (`DATA_DIR/broker/topics.json`) so that they survive a restart.
//!
//! Changes are ordered so that a crash at any point leaves a state the next start
//! understands: a new topic is written to the catalog before its logs are created (a
//! missing log directory is created on open); a deleted topic is first marked as deleting
//! in the catalog, then its directories are removed, then its entry (a start that finds
//! the mark finishes the job).
//!
//! Every method that changes something does blocking file I/O; call it through
//! `tokio::task::spawn_blocking` from async code.

use std::{
    collections::{BTreeMap, HashMap},
    fs,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard, RwLock},
};

use herald_log::{Log, LogConfig};
use uuid::Uuid;

pub(crate) use crate::topic::validate_topic_name;
pub use crate::topic::{NewTopic, Topic};

use crate::{
    error::{BrokerError, TopicError},
    partition::Partition,
    store::{self, CATALOG_FILE, CATALOG_VERSION, Catalog, TopicRecord},
    topic_config,
};

/// All topics of the broker.
#[derive(Debug)]
pub struct TopicManager {
    topics_dir: PathBuf,
    catalog_path: PathBuf,
    defaults: LogConfig,
    max_partitions: i32,
    scan_offsets: u64,
    /// The persisted catalog; its lock also serialises every change.
    catalog: Mutex<Catalog>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
}

impl TopicManager {
    /// Opens every topic recorded under `data_dir`, finishing deletions a crash
    /// interrupted and rebuilding idempotent-producer state.
    pub(crate) fn open(
        data_dir: &Path,
        defaults: LogConfig,
        max_partitions: i32,
        scan_offsets: u64,
    ) -> Result<Self, BrokerError> {
        let broker_dir = store::create_dir_durable(&data_dir.join("broker"))?;
        let topics_dir = store::create_dir_durable(&data_dir.join("topics"))?;
        let catalog_path = broker_dir.join(CATALOG_FILE);
        let mut catalog = store::read_json::<Catalog>(&catalog_path)?.unwrap_or(Catalog {
            version: CATALOG_VERSION,
            topics: BTreeMap::new(),
        });
        if catalog.version != CATALOG_VERSION {
            return Err(BrokerError::Corrupt {
                path: catalog_path,
                reason: format!(
                    "catalog format {} is not the supported {CATALOG_VERSION}",
                    catalog.version
                ),
            });
        }
        let manager = Self {
            topics_dir,
            catalog_path,
            defaults,
            max_partitions,
            scan_offsets,
            catalog: Mutex::new(Catalog::default()),
            topics: RwLock::new(HashMap::new()),
        };
        let unfinished: Vec<(String, i32)> = catalog
            .topics
            .iter()
            .filter(|(_, r)| r.deleting)
            .map(|(n, r)| (n.clone(), r.partitions))
            .collect();
        for (name, partitions) in &unfinished {
            tracing::warn!(topic = %name, "finishing a topic deletion interrupted by a crash");
            for p in 0..*partitions {
                manager.remove_partition_dir(name, p)?;
            }
            catalog.topics.remove(name);
        }
        if !unfinished.is_empty() {
            store::write_json(&manager.catalog_path, &catalog)?;
        }
        let mut topics = HashMap::new();
        for (name, record) in &catalog.topics {
            let id = Uuid::parse_str(&record.id).map_err(|e| BrokerError::Corrupt {
                path: manager.catalog_path.clone(),
                reason: format!("topic {name}: bad id {:?}: {e}", record.id),
            })?;
            let config = topic_config::effective(&manager.defaults, &record.configs)
                .map_err(|e| BrokerError::Config(format!("topic {name}: {e}")))?;
            let partitions = (0..record.partitions)
                .map(|p| manager.open_partition(name, p, &config).map(Arc::new))
                .collect::<Result<Vec<_>, _>>()?;
            topics.insert(
                name.clone(),
                Arc::new(Topic {
                    name: name.clone(),
                    id,
                    configs: RwLock::new(record.configs.clone()),
                    partitions: RwLock::new(partitions),
                }),
            );
        }
        *manager.catalog.lock().expect("fresh lock") = catalog;
        *manager.topics.write().expect("fresh lock") = topics;
        Ok(manager)
    }

    fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.topics_dir.join(format!("{topic}-{partition}"))
    }

    fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        config: &LogConfig,
    ) -> Result<Partition, BrokerError> {
        let log_err = |source| BrokerError::Log {
            topic: topic.to_string(),
            partition,
            source,
        };
        let log =
            Log::open(self.partition_dir(topic, partition), config.clone()).map_err(log_err)?;
        let report = log.recovery_report();
        // A brand-new log has no clean-shutdown mark either; only real recovery work counts.
        if !report.clean_shutdown && (report.bytes_scanned > 0 || report.truncated_bytes > 0) {
            tracing::warn!(
                topic,
                partition,
                truncated_bytes = report.truncated_bytes,
                bytes_scanned = report.bytes_scanned,
                "partition recovered after an unclean shutdown"
            );
        }
        Partition::new(topic, partition, log, self.scan_offsets).map_err(log_err)
    }

    fn remove_partition_dir(&self, topic: &str, partition: i32) -> Result<(), BrokerError> {
        let dir = self.partition_dir(topic, partition);
        match fs::remove_dir_all(&dir) {
            Ok(()) => store::sync_dir(&self.topics_dir),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(BrokerError::Io {
                op: "remove partition directory",
                path: dir,
                source,
            }),
        }
    }

    fn lock_catalog(&self) -> MutexGuard<'_, Catalog> {
        self.catalog.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker-wide default log settings.
    pub fn defaults(&self) -> &LogConfig {
        &self.defaults
    }

    /// Largest partition count of one topic.
    pub fn max_partitions(&self) -> i32 {
        self.max_partitions
    }

    /// One topic by name.
    pub fn get(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// One topic by id.
    pub fn get_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|t| t.id == id)
            .cloned()
    }

    /// One partition by topic name and index.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.get(topic)?.partition(partition)
    }

    /// All topics, sorted by name.
    pub fn list(&self) -> Vec<Arc<Topic>> {
        let mut all: Vec<_> = self
            .topics
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Checks a partition count against the broker's limits.
    fn check_partition_count(&self, count: i32) -> Result<(), TopicError> {
        if count < 1 || count > self.max_partitions {
            return Err(TopicError::InvalidPartitions(format!(
                "{count} is outside [1, {}]",
                self.max_partitions
            )));
        }
        Ok(())
    }

    /// Checks everything about a new topic without creating it.
    pub fn validate_new(&self, new: &NewTopic) -> Result<LogConfig, TopicError> {
        validate_topic_name(&new.name)?;
        self.check_partition_count(new.partitions)?;
        let config = topic_config::effective(&self.defaults, &new.configs)
            .map_err(TopicError::InvalidConfig)?;
        if self.get(&new.name).is_some() {
            return Err(TopicError::AlreadyExists(new.name.clone()));
        }
        Ok(config)
    }

    /// Creates a topic.
    pub fn create(&self, new: NewTopic) -> Result<Arc<Topic>, TopicError> {
        let mut catalog = self.lock_catalog();
        let config = self.validate_new(&new)?;
        let id = Uuid::new_v4();
        for p in 0..new.partitions {
            if self.partition_dir(&new.name, p).exists() {
                tracing::warn!(topic = %new.name, partition = p,
                    "removing a stale directory left by an earlier topic of the same name");
                self.remove_partition_dir(&new.name, p)?;
            }
        }
        let mut next = catalog.clone();
        next.topics.insert(
            new.name.clone(),
            TopicRecord {
                id: id.to_string(),
                partitions: new.partitions,
                configs: new.configs.clone(),
                deleting: false,
            },
        );
        store::write_json(&self.catalog_path, &next)?;
        *catalog = next;
        let mut partitions = Vec::with_capacity(new.partitions as usize);
        for p in 0..new.partitions {
            match self.open_partition(&new.name, p, &config) {
                Ok(partition) => partitions.push(Arc::new(partition)),
                Err(e) => {
                    // Leave no half-made topic behind: undo what was done.
                    for partition in &partitions {
                        let _ = partition.destroy();
                    }
                    catalog.topics.remove(&new.name);
                    if let Err(e2) = store::write_json(&self.catalog_path, &*catalog) {
                        tracing::error!(topic = %new.name, error = %e2,
                            "could not undo a failed topic creation in the catalog");
                    }
                    return Err(e.into());
                }
            }
        }
        let topic = Arc::new(Topic {
            name: new.name.clone(),
            id,
            configs: RwLock::new(new.configs),
            partitions: RwLock::new(partitions),
        });
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(new.name.clone(), topic.clone());
        tracing::info!(topic = %new.name, partitions = new.partitions, %id, "created topic");
        Ok(topic)
    }

    /// Deletes a topic and all its data.
    pub fn delete(&self, name: &str) -> Result<(), TopicError> {
        let mut catalog = self.lock_catalog();
        let Some(topic) = self.get(name) else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        let mut next = catalog.clone();
        if let Some(record) = next.topics.get_mut(name) {
            record.deleting = true;
        }
        store::write_json(&self.catalog_path, &next)?;
        *catalog = next;
        self.topics
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
        for partition in topic.partitions() {
            if let Err(e) = partition.destroy() {
                tracing::error!(topic = name, partition = partition.index(), error = %e,
                    "could not delete partition directory; the next start retries");
                return Err(TopicError::Storage(BrokerError::Log {
                    topic: name.to_string(),
                    partition: partition.index(),
                    source: e,
                }));
            }
        }
        let mut next = catalog.clone();
        next.topics.remove(name);
        store::write_json(&self.catalog_path, &next)?;
        *catalog = next;
        tracing::info!(topic = name, "deleted topic");
        Ok(())
    }

    /// Grows a topic to `count` partitions (Kafka's CreatePartitions); with
    /// `validate_only`, only checks.
    pub fn add_partitions(
        &self,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let mut catalog = self.lock_catalog();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic {name} has {current} partitions; the new count {count} must be larger"
            )));
        }
        self.check_partition_count(count)?;
        if validate_only {
            return Ok(());
        }
        let config = topic_config::effective(&self.defaults, &topic.configs())
            .map_err(TopicError::InvalidConfig)?;
        let mut next = catalog.clone();
        if let Some(record) = next.topics.get_mut(name) {
            record.partitions = count;
        }
        store::write_json(&self.catalog_path, &next)?;
        *catalog = next;
        for p in current..count {
            let partition = self.open_partition(name, p, &config)?;
            topic
                .partitions
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .push(Arc::new(partition));
        }
        tracing::info!(topic = name, from = current, to = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's configuration overrides (checked as a whole), persists them and
    /// applies them to every partition; with `validate_only`, only checks.
    pub fn set_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let mut catalog = self.lock_catalog();
        let topic = self
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let config =
            topic_config::effective(&self.defaults, &configs).map_err(TopicError::InvalidConfig)?;
        if validate_only {
            return Ok(());
        }
        let mut next = catalog.clone();
        if let Some(record) = next.topics.get_mut(name) {
            record.configs = configs.clone();
        }
        store::write_json(&self.catalog_path, &next)?;
        *catalog = next;
        *topic.configs.write().unwrap_or_else(|p| p.into_inner()) = configs;
        for partition in topic.partitions() {
            partition
                .set_config(config.clone())
                .map_err(|source| BrokerError::Log {
                    topic: name.to_string(),
                    partition: partition.index(),
                    source,
                })?;
        }
        tracing::info!(topic = name, "changed topic configuration");
        Ok(())
    }

    /// Runs retention on every partition, logging failures.
    pub(crate) fn apply_retention(&self) {
        for topic in self.list() {
            for partition in topic.partitions() {
                if let Err(e) = partition.apply_retention() {
                    tracing::error!(topic = %topic.name, partition = partition.index(),
                        error = %e, "retention failed");
                }
            }
        }
    }

    /// Closes every log cleanly. Returns the first failure after trying them all.
    pub(crate) fn close_all(&self) -> Result<(), BrokerError> {
        let mut first = None;
        for topic in self.list() {
            for partition in topic.partitions() {
                if let Err(source) = partition.close() {
                    tracing::error!(topic = %topic.name, partition = partition.index(),
                        error = %source, "partition did not close cleanly");
                    first.get_or_insert(BrokerError::Log {
                        topic: topic.name.clone(),
                        partition: partition.index(),
                        source,
                    });
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manager(dir: &Path) -> TopicManager {
        TopicManager::open(dir, LogConfig::default(), 100, 1000).unwrap()
    }

    fn new_topic(name: &str, partitions: i32) -> NewTopic {
        NewTopic {
            name: name.into(),
            partitions,
            configs: BTreeMap::new(),
        }
    }

    #[test]
    fn topics_survive_reopen_and_deletion_is_complete() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        let created = m.create(new_topic("orders", 3)).unwrap();
        let id = created.id();
        m.set_configs(
            "orders",
            BTreeMap::from([("retention.ms".into(), "1000".into())]),
            false,
        )
        .unwrap();
        m.create(new_topic("gone", 1)).unwrap();
        m.delete("gone").unwrap();
        assert!(!dir.path().join("topics/gone-0").exists());
        assert!(matches!(
            m.create(new_topic("orders", 1)),
            Err(TopicError::AlreadyExists(_))
        ));
        m.close_all().unwrap();
        drop(m);

        let m = manager(dir.path());
        let t = m.get("orders").unwrap();
        assert_eq!(t.id(), id);
        assert_eq!(t.partition_count(), 3);
        assert_eq!(t.configs()["retention.ms"], "1000");
        assert!(m.get("gone").is_none());
        assert_eq!(m.get_by_id(id).unwrap().name(), "orders");
    }

    #[test]
    fn an_interrupted_delete_is_finished_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(new_topic("t", 2)).unwrap();
        m.close_all().unwrap();
        drop(m);
        // Simulate a crash after the catalog said "deleting" but before the directories went.
        let path = dir.path().join("broker").join(CATALOG_FILE);
        let mut catalog: Catalog = store::read_json(&path).unwrap().unwrap();
        catalog.topics.get_mut("t").unwrap().deleting = true;
        store::write_json(&path, &catalog).unwrap();
        let m = manager(dir.path());
        assert!(m.get("t").is_none());
        assert!(!dir.path().join("topics/t-0").exists());
        assert!(!dir.path().join("topics/t-1").exists());
    }

    #[test]
    fn partitions_only_grow_and_configs_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let m = manager(dir.path());
        m.create(new_topic("t", 2)).unwrap();
        assert!(matches!(
            m.add_partitions("t", 2, false),
            Err(TopicError::InvalidPartitions(_))
        ));
        m.add_partitions("t", 4, true).unwrap();
        assert_eq!(m.get("t").unwrap().partition_count(), 2);
        m.add_partitions("t", 4, false).unwrap();
        assert_eq!(m.get("t").unwrap().partition_count(), 4);
        assert!(matches!(
            m.set_configs(
                "t",
                BTreeMap::from([("cleanup.policy".into(), "compact".into())]),
                false
            ),
            Err(TopicError::InvalidConfig(_))
        ));
        assert!(matches!(
            m.create(new_topic("big", 101)),
            Err(TopicError::InvalidPartitions(_))
        ));
        assert!(matches!(
            m.create(new_topic("bad name", 1)),
            Err(TopicError::InvalidName { .. })
        ));
    }
}
