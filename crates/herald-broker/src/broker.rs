//! The broker core shared by the Kafka listener and, through [`Broker`], by embedders
//! (the HTTP API, the CLI): topics, produce and fetch with their durability rules.

use std::{net::SocketAddr, sync::Arc};

use herald_log::{AppendInfo, LogError, ReadResult};
use tokio::sync::{oneshot, watch};

use crate::{
    config::BrokerConfig,
    error::{BrokerError, ProduceError, ReadError, TopicError},
    group::{CoordinatorNode, GroupCoordinator},
    partition::{AppendOutcome, Partition},
    producer_ids::ProducerIds,
    store::{self, CLUSTER_FILE, ClusterFile},
    topics::{NewTopic, Topic, TopicManager},
};

/// When a produce is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// acks=0: the caller does not wait at all (the append still happens).
    None,
    /// acks=1: once the batch is written (durability may still be pending).
    Leader,
    /// acks=all (-1): once the batch is durable under the topic's durability policy.
    All,
}

impl Acks {
    /// Kafka's numeric `acks` (0, 1, -1); other values are invalid.
    pub fn from_kafka(acks: i16) -> Option<Self> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// Where a produced batch landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    /// Offset of the batch's first record.
    pub base_offset: i64,
    /// The partition's log start offset after the append.
    pub log_start_offset: i64,
    /// The batch repeated one already written (idempotent-producer retry).
    pub duplicate: bool,
    /// The append time the broker stamped, for a topic with
    /// `message.timestamp.type=LogAppendTime` (Kafka's `log_append_time_ms`).
    pub log_append_time: Option<i64>,
}

/// Everything the broker's tasks share.
pub(crate) struct Core {
    pub(crate) config: BrokerConfig,
    pub(crate) cluster_id: String,
    pub(crate) topics: TopicManager,
    pub(crate) producer_ids: ProducerIds,
    pub(crate) shutdown: watch::Receiver<bool>,
    pub(crate) advertised: (String, i32),
    pub(crate) groups: GroupCoordinator,
    /// The connection budget of the Kafka listeners.
    pub(crate) connections: crate::connections::Connections,
    /// The memory budget of requests being received.
    pub(crate) request_budget: crate::request_budget::RequestBudget,
}

/// A running broker's core, cheap to clone. Obtained from
/// [`BrokerHandle::broker`](crate::BrokerHandle::broker).
#[derive(Clone)]
pub struct Broker {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("data_dir", &self.core.config.data_dir)
            .field("advertised", &self.core.advertised)
            .finish()
    }
}

/// Reads the cluster id kept in the data directory, or makes one.
fn cluster_id(config: &BrokerConfig, broker_dir: &std::path::Path) -> Result<String, BrokerError> {
    if let Some(id) = &config.cluster_id {
        return Ok(id.clone());
    }
    let path = broker_dir.join(CLUSTER_FILE);
    if let Some(file) = store::read_json::<ClusterFile>(&path)? {
        return Ok(file.cluster_id);
    }
    // Kafka's cluster ids are URL-safe base64 of a random UUID, 22 characters.
    let id: String = uuid::Uuid::new_v4().simple().to_string()[..22].to_string();
    store::write_json(
        &path,
        &ClusterFile {
            cluster_id: id.clone(),
        },
    )?;
    Ok(id)
}

impl Core {
    /// Opens the data directory (blocking).
    pub(crate) fn open(
        config: BrokerConfig,
        bound: SocketAddr,
        shutdown: watch::Receiver<bool>,
    ) -> Result<Self, BrokerError> {
        config.validate().map_err(BrokerError::Config)?;
        let topics = TopicManager::open(
            &config.data_dir,
            config.default_topic_config.clone(),
            config.max_partitions_per_topic,
            config.producer_state_scan_offsets,
        )?;
        let broker_dir = config.data_dir.join("broker");
        let max_seen = topics
            .list()
            .iter()
            .flat_map(|t| t.partitions())
            .filter_map(|p| p.max_producer_id())
            .max()
            .map_or(0, |m| m + 1);
        let producer_ids = ProducerIds::open(&broker_dir, max_seen)?;
        let cluster_id = cluster_id(&config, &broker_dir)?;
        let (max_connections, max_per_ip, queued_bytes) = (
            config.max_connections,
            config.max_connections_per_ip,
            config.queued_max_request_bytes,
        );
        let host = config.advertised_host.clone().unwrap_or_else(|| {
            if bound.ip().is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                bound.ip().to_string()
            }
        });
        let port = i32::from(config.advertised_port.unwrap_or(bound.port()));
        let node = CoordinatorNode {
            node_id: config.node_id,
            host: host.clone(),
            port,
        };
        let groups =
            GroupCoordinator::open(&config.data_dir.join("groups"), config.group_config(), node)
                .map_err(|e| BrokerError::Groups(e.to_string()))?;
        Ok(Self {
            config,
            cluster_id,
            topics,
            producer_ids,
            shutdown,
            advertised: (host, port),
            groups,
            connections: crate::connections::Connections::new(max_connections, max_per_ip),
            request_budget: crate::request_budget::RequestBudget::new(queued_bytes),
        })
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, BrokerError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BrokerError::Task(e.to_string()))
}

impl Broker {
    /// The configuration the broker runs with.
    pub fn config(&self) -> &BrokerConfig {
        &self.core.config
    }

    /// The cluster id reported to clients.
    pub fn cluster_id(&self) -> &str {
        &self.core.cluster_id
    }

    /// The host and port clients are told to connect to.
    pub fn advertised_address(&self) -> (&str, u16) {
        (&self.core.advertised.0, self.core.advertised.1 as u16)
    }

    /// The topics. Its mutating methods block; prefer the async wrappers below.
    pub fn topics(&self) -> &TopicManager {
        &self.core.topics
    }

    /// The consumer-group coordinator (committed offsets, group membership).
    pub fn groups(&self) -> &GroupCoordinator {
        &self.core.groups
    }

    /// Whether a shutdown has begun.
    pub fn is_shutting_down(&self) -> bool {
        *self.core.shutdown.borrow()
    }

    /// Runs a blocking topic operation on the blocking thread pool.
    pub async fn with_topics<T: Send + 'static>(
        &self,
        f: impl FnOnce(&TopicManager) -> T + Send + 'static,
    ) -> Result<T, BrokerError> {
        let core = self.core.clone();
        blocking(move || f(&core.topics)).await
    }

    /// Creates a topic (see [`TopicManager::create`]).
    pub async fn create_topic(&self, new: NewTopic) -> Result<Arc<Topic>, TopicError> {
        let core = self.core.clone();
        blocking(move || core.topics.create(new)).await?
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), TopicError> {
        let core = self.core.clone();
        let name = name.to_string();
        blocking(move || core.topics.delete(&name)).await?
    }

    /// Appends one Kafka v2 record batch (exactly as a producer sends it) to a
    /// partition, with the idempotent-producer checks, and waits as `acks` says.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: Vec<u8>,
        acks: Acks,
    ) -> Result<Produced, ProduceError> {
        // Zero-copy: a freshly built Bytes from a Vec is unique, so it converts back.
        let records = bytes::Bytes::from(records)
            .try_into_mut()
            .unwrap_or_else(|shared| bytes::BytesMut::from(&shared[..]));
        self.start_produce(topic, partition, records, acks)
            .await?
            .finish(acks)
            .await
    }

    /// The first half of [`produce`](Self::produce): validates and writes the batch, and
    /// returns without waiting for durability, so that a request can write to many
    /// partitions before it waits for all of them.
    pub(crate) async fn start_produce(
        &self,
        topic: &str,
        partition: i32,
        records: bytes::BytesMut,
        acks: Acks,
    ) -> Result<PendingProduce, ProduceError> {
        let Some(p) = self.core.topics.partition(topic, partition) else {
            return Err(ProduceError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition,
            });
        };
        let c = &self.core;
        let batch = crate::validation::check_produce(
            &c.config.schema_id_check,
            &c.topics,
            topic,
            records,
            acks == Acks::All,
        )
        .await?;
        let core = self.core.clone();
        let part = p.clone();
        let outcome = tokio::task::spawn_blocking(move || {
            batch.append_to(&part, |pid| core.producer_ids.is_known(pid))
        })
        .await
        .map_err(|e| ProduceError::Storage(task_failed("append a produced batch", e)))??;
        Ok(match outcome {
            AppendOutcome::Duplicate { base_offset } => PendingProduce {
                partition: p,
                base_offset,
                duplicate: true,
                log_append_time: None,
                durable: None,
            },
            AppendOutcome::Written(pending) => {
                crate::telemetry::BatchAppended::new(topic, partition, pending.info()).emit();
                let base_offset = pending.info().base_offset as i64;
                let log_append_time = pending.info().log_append_time;
                let (tx, rx) = oneshot::channel();
                pending.on_durable(move |r| {
                    let _ = tx.send(r);
                });
                PendingProduce {
                    partition: p,
                    base_offset,
                    duplicate: false,
                    log_append_time,
                    durable: Some(rx),
                }
            }
        })
    }

    /// Reads whole batches from a partition starting with the one that holds `offset`,
    /// up to about `max_bytes` (at least one whole batch). Does not wait for data.
    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, ReadError> {
        let Some(p) = self.core.topics.partition(topic, partition) else {
            return Err(ReadError::UnknownTopicOrPartition {
                topic: topic.to_string(),
                partition,
            });
        };
        tokio::task::spawn_blocking(move || p.read(offset, max_bytes))
            .await
            .map_err(|e| ReadError::Storage(task_failed("read a partition", e)))?
    }
}

fn task_failed(op: &'static str, e: tokio::task::JoinError) -> LogError {
    LogError::TaskJoin {
        op,
        reason: e.to_string(),
    }
}

/// A written batch whose acknowledgement may still wait for durability.
#[derive(Debug)]
pub(crate) struct PendingProduce {
    partition: Arc<Partition>,
    base_offset: i64,
    duplicate: bool,
    log_append_time: Option<i64>,
    durable: Option<oneshot::Receiver<Result<AppendInfo, LogError>>>,
}

impl PendingProduce {
    /// Waits as `acks` says and reports where the batch landed.
    pub(crate) async fn finish(mut self, acks: Acks) -> Result<Produced, ProduceError> {
        if acks == Acks::All
            && let Some(rx) = self.durable.take()
        {
            match rx.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(ProduceError::Storage(e)),
                Err(_) => return Err(ProduceError::Storage(LogError::Closed)),
            }
        }
        if acks == Acks::All && self.duplicate {
            // A retry can arrive while the original is still waiting for its fsync: it
            // must not be acknowledged before the original is durable.
            self.wait_durable_duplicate().await?;
        }
        let log_start_offset = self
            .partition
            .offsets()
            .map(|(start, _)| start)
            .unwrap_or(-1);
        Ok(Produced {
            base_offset: self.base_offset,
            log_start_offset,
            duplicate: self.duplicate,
            log_append_time: self.log_append_time,
        })
    }

    /// Waits until the high watermark passes the original batch of a duplicate (the
    /// durable point moves by whole appends, so passing its base offset covers it).
    async fn wait_durable_duplicate(&self) -> Result<(), ProduceError> {
        let deadline = tokio::time::Instant::now() + DUPLICATE_DURABILITY_WAIT;
        let notify = self.partition.watermark_notify().clone();
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (_, high_watermark) = self
                .partition
                .offsets()
                .map_err(|_| ProduceError::Storage(LogError::Closed))?;
            if high_watermark > self.base_offset {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ProduceError::Storage(LogError::Timeout {
                    op: "wait for the original of a retried batch to become durable",
                    after: DUPLICATE_DURABILITY_WAIT,
                }));
            }
        }
    }
}

/// Longest a retried idempotent batch waits for its original to become durable.
const DUPLICATE_DURABILITY_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
