//! The Kafka transport: the SDK's traits on librdkafka, for `herald serve`, Apache Kafka
//! and Redpanda alike.
//!
//! - [`KafkaTransport`] is a cheap, cloneable handle on one idempotent producer
//!   (`acks=all`, Java's murmur2 partitioner, so a key lands on
//!   [`partition_for_key`](crate::transport::partition_for_key) as with every other
//!   transport), one admin client (topics, metadata, watermarks) and one partition reader
//!   for [`TopicReader::read`](crate::transport::TopicReader::read).
//! - [`Subscriber::subscribe`] creates a [`KafkaConsumer`]: a member of a Kafka consumer
//!   group whose offsets move only through [`Consumer::commit`](crate::transport::Consumer)
//!   (no auto-commit), and which reports its assignment as the group rebalances.
//! - [`KafkaConfig`] names the cluster and passes any librdkafka property through, so
//!   moving from `herald serve` to a managed cluster with SASL is a configuration change.
//!   librdkafka is built with OpenSSL (Debian's `libssl-dev` at build time): `SSL` and
//!   `SASL_SSL` with `ssl.ca.location`, and SASL `PLAIN`, `SCRAM-SHA-256` and
//!   `SCRAM-SHA-512`. A login the broker refuses or a certificate that does not verify
//!   fails the waiting calls at once with the broker's reason (not at their timeouts).
//!
//! ```no_run
//! use herald::transport::{
//!     kafka::{KafkaConfig, KafkaTransport},
//!     Admin, Consumer, OutgoingRecord, Publisher, Subscriber,
//! };
//!
//! # async fn run() -> Result<(), herald::transport::TransportError> {
//! let bus = KafkaTransport::new(KafkaConfig::new("localhost:9092"))?;
//! bus.create_topic("orders", 3).await?;
//! let record = OutgoingRecord { key: Some("o-1".into()), value: Some("{}".into()), ..Default::default() };
//! let at = bus.publish("orders", vec![record]).await?;
//! let mut billing = bus.subscribe("billing", &["orders"]).await?;
//! let records = billing.poll(100).await?;
//! # let _ = (at, records);
//! # Ok(())
//! # }
//! ```
//!
//! How it differs from the in-process transports, because Kafka differs:
//! - Group membership changes go through a rebalance: [`Consumer::assignment`] catches up
//!   shortly after another member joins or leaves, not at once. `subscribe` returns once
//!   the new member has its first assignment.
//! - Unkeyed records go to a random partition (Java's default), not round-robin.
//! - Topics published to before they exist are created by the broker (if its
//!   `auto.create.topics.enable` allows) with the broker's default partition count.
//!
//! [`Consumer::assignment`]: crate::transport::Consumer::assignment

mod config;
mod consumer;
mod reader;
mod security;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use rdkafka::{
    ClientContext,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    config::RDKafkaLogLevel,
    consumer::ConsumerContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header as RdHeader, OwnedHeaders},
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaRespErr,
};

pub use config::{KafkaConfig, OffsetReset};
pub use consumer::KafkaConsumer;
use security::SecurityFailures;

use super::{
    OutgoingRecord, Publisher, RecordPosition, Result, Subscriber, TopicPartition, TransportError,
    validate_topic_name,
};

/// A transport on a Kafka cluster. Clones share the same clients.
#[derive(Clone)]
pub struct KafkaTransport {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for KafkaTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaTransport")
            .field("bootstrap_servers", &self.inner.config.bootstrap_servers)
            .field("client_id", &self.inner.config.client_id)
            .finish_non_exhaustive()
    }
}

struct Inner {
    config: KafkaConfig,
    /// `None` only while dropping: they are closed on a blocking thread.
    clients: Option<Clients>,
    /// Partition counts seen in metadata, to check explicit partitions before sending.
    partition_counts: Mutex<HashMap<String, u32>>,
    reader: tokio::sync::Mutex<reader::PartitionReader>,
    /// A refused login or TLS handshake of any of the clients, which fails operations at
    /// once instead of at their timeouts.
    failures: Arc<SecurityFailures>,
}

struct Clients {
    producer: FutureProducer<LogContext>,
    admin: AdminClient<LogContext>,
}

impl Inner {
    fn clients(&self) -> &Clients {
        self.clients
            .as_ref()
            .expect("clients live as long as the transport")
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing librdkafka clients joins their threads and flushes: keep that off the
        // async workers when there are any.
        let clients = self.clients.take();
        let reader = self.reader.get_mut().take_consumer();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn_blocking(move || drop((clients, reader)));
        }
    }
}

impl KafkaTransport {
    /// Creates the producer and admin clients. Nothing is sent until the first call;
    /// an unreachable cluster shows up as errors (or timeouts) of those calls. A login
    /// the broker refuses (SASL) or a broker certificate that does not verify (TLS)
    /// fails the calls waiting on the cluster at once, with the broker's reason, rather
    /// than at their timeouts.
    pub fn new(config: KafkaConfig) -> Result<Self> {
        config.check()?;
        let failures = Arc::new(SecurityFailures::default());
        let context = LogContext {
            failures: failures.clone(),
        };
        let producer = config
            .producer()
            .create_with_context(context.clone())
            .map_err(|e| kafka_error("creating the producer", &e))?;
        let admin = config
            .admin()
            .create_with_context(context.clone())
            .map_err(|e| kafka_error("creating the admin client", &e))?;
        Ok(Self {
            inner: Arc::new(Inner {
                reader: tokio::sync::Mutex::new(reader::PartitionReader::new(
                    config.clone(),
                    context,
                )),
                config,
                clients: Some(Clients { producer, admin }),
                partition_counts: Mutex::new(HashMap::new()),
                failures,
            }),
        })
    }

    /// A transport with default settings for the cluster at `bootstrap_servers`.
    pub fn connect(bootstrap_servers: impl Into<String>) -> Result<Self> {
        Self::new(KafkaConfig::new(bootstrap_servers))
    }

    /// The settings this transport was created with.
    pub fn config(&self) -> &KafkaConfig {
        &self.inner.config
    }

    /// The committed offset of `group` for `partition` (the next offset the group will
    /// read), or `None` if the group never committed one. Reads the group's offsets
    /// without joining it.
    pub async fn committed(&self, group: &str, partition: &TopicPartition) -> Result<Option<u64>> {
        let config = self.inner.config.clone();
        let context = LogContext {
            failures: self.inner.failures.clone(),
        };
        let group = group.to_owned();
        let tp = partition.clone();
        let work = blocking("reading committed offsets", move || {
            consumer::committed_offset(&config, context, &group, &tp)
        });
        self.inner
            .failures
            .guard("reading committed offsets", async { work.await? })
            .await
    }

    /// Runs a blocking metadata call on the admin client.
    async fn with_admin<T: Send + 'static>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&AdminClient<LogContext>, Duration) -> T + Send + 'static,
    ) -> Result<T> {
        let inner = self.inner.clone();
        let work = blocking(operation, move || {
            f(&inner.clients().admin, inner.config.request_timeout)
        });
        self.inner.failures.guard(operation, work).await
    }

    /// The topic's partition count from fresh metadata (remembered for publishes).
    async fn fetch_partitions(&self, topic: &str) -> Result<Option<u32>> {
        let name = topic.to_owned();
        let count = self
            .with_admin("reading topic metadata", move |admin, timeout| {
                topic_partitions(admin.inner(), &name, timeout)
            })
            .await??;
        let mut counts = lock(&self.inner.partition_counts);
        match count {
            Some(n) => counts.insert(topic.to_owned(), n),
            None => counts.remove(topic),
        };
        Ok(count)
    }

    /// Checks an explicit partition against the topic's partition count, refreshing the
    /// remembered count when the partition is beyond it (the topic may have grown).
    async fn check_partition(&self, topic: &str, partition: u32) -> Result<()> {
        let known = lock(&self.inner.partition_counts).get(topic).copied();
        let count = match known {
            Some(n) if partition < n => return Ok(()),
            _ => self.fetch_partitions(topic).await?,
        };
        match count {
            Some(n) if partition >= n => Err(TransportError::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: n,
            }),
            // Unknown topics are left to the broker's auto-creation.
            _ => Ok(()),
        }
    }

    /// Maps a failed delivery to the transport's errors.
    async fn delivery_error(
        &self,
        topic: &str,
        partition: Option<u32>,
        e: KafkaError,
    ) -> TransportError {
        match e.rdkafka_error_code() {
            Some(RDKafkaErrorCode::UnknownPartition) => {
                let partitions = self
                    .fetch_partitions(topic)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(0);
                TransportError::UnknownPartition {
                    topic: topic.to_owned(),
                    partition: partition.unwrap_or(0),
                    partitions,
                }
            }
            Some(RDKafkaErrorCode::UnknownTopic | RDKafkaErrorCode::UnknownTopicOrPartition) => {
                TransportError::UnknownTopic(topic.to_owned())
            }
            _ => kafka_error(format!("publishing to {topic}"), &e),
        }
    }

    /// Resolves a failed offset query on `tp` into the precise error when the topic or
    /// partition does not exist.
    async fn offsets_error(&self, tp: &TopicPartition, e: KafkaError) -> TransportError {
        if matches!(
            e.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::UnknownPartition
                    | RDKafkaErrorCode::UnknownTopic
                    | RDKafkaErrorCode::UnknownTopicOrPartition
            )
        ) {
            match self.fetch_partitions(&tp.topic).await {
                Ok(None) => return TransportError::UnknownTopic(tp.topic.clone()),
                Ok(Some(n)) if tp.partition >= n => {
                    return TransportError::UnknownPartition {
                        topic: tp.topic.clone(),
                        partition: tp.partition,
                        partitions: n,
                    };
                }
                _ => {}
            }
        }
        kafka_error(format!("reading the offsets of {tp}"), &e)
    }

    /// The low and high watermarks of a partition: first offset still stored, and one
    /// past the last readable one.
    async fn watermarks(&self, tp: &TopicPartition) -> Result<(u64, u64)> {
        let (topic, partition) = (tp.topic.clone(), tp.partition);
        let found = self
            .with_admin("reading partition offsets", move |admin, timeout| {
                admin
                    .inner()
                    .fetch_watermarks(&topic, partition as i32, timeout)
            })
            .await?;
        match found {
            Ok((low, high)) => Ok((low.max(0) as u64, high.max(0) as u64)),
            Err(e) => Err(self.offsets_error(tp, e).await),
        }
    }
}

impl Publisher for KafkaTransport {
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        validate_topic_name(topic)?;
        if let Some(highest) = records.iter().filter_map(|r| r.partition).max() {
            self.check_partition(topic, highest).await?;
        }
        let work = self.publish_now(topic, &records);
        self.inner
            .failures
            .guard(format!("publishing to {topic}"), work)
            .await
    }
}

impl KafkaTransport {
    /// Hands `records` to the producer and waits for their acknowledgements.
    async fn publish_now(
        &self,
        topic: &str,
        records: &[OutgoingRecord],
    ) -> Result<Vec<RecordPosition>> {
        let producer = &self.inner.clients().producer;
        let mut deliveries = Vec::with_capacity(records.len());
        for r in records {
            let mut record = FutureRecord::<[u8], [u8]>::to(topic);
            if let Some(key) = &r.key {
                record = record.key(key);
            }
            if let Some(value) = &r.value {
                record = record.payload(value);
            }
            if let Some(p) = r.partition {
                record = record.partition(p as i32);
            }
            if let Some(ts) = r.timestamp {
                record = record.timestamp(ts);
            }
            if !r.headers.is_empty() {
                record = record.headers(owned_headers(&r.headers));
            }
            loop {
                match producer.send_result(record) {
                    Ok(delivery) => break deliveries.push(delivery),
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        // The local queue is full: wait for deliveries to make room.
                        record = back;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(self.delivery_error(topic, r.partition, e).await),
                }
            }
        }
        let mut positions = Vec::with_capacity(deliveries.len());
        for (delivery, r) in deliveries.into_iter().zip(records) {
            match delivery.await {
                Ok(Ok(d)) => positions.push(RecordPosition {
                    partition: d.partition as u32,
                    offset: d.offset as u64,
                }),
                Ok(Err((e, _))) => return Err(self.delivery_error(topic, r.partition, e).await),
                Err(_) => return Err(TransportError::Closed),
            }
        }
        Ok(positions)
    }
}

impl Subscriber for KafkaTransport {
    type Consumer = KafkaConsumer;

    async fn subscribe(&self, group: &str, topics: &[&str]) -> Result<KafkaConsumer> {
        KafkaConsumer::join(&self.inner.config, &self.inner.failures, group, topics).await
    }
}

impl super::TopicReader for KafkaTransport {
    async fn partitions(&self, topic: &str) -> Result<Option<u32>> {
        validate_topic_name(topic)?;
        self.fetch_partitions(topic).await
    }

    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64> {
        Ok(self.watermarks(partition).await?.1)
    }

    async fn start_offset(&self, partition: &TopicPartition) -> Result<u64> {
        Ok(self.watermarks(partition).await?.0)
    }

    async fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max_records: usize,
    ) -> Result<Vec<crate::transport::ConsumedRecord>> {
        let (low, high) = self.watermarks(partition).await?;
        if offset < low || offset > high {
            return Err(TransportError::OffsetOutOfRange {
                partition: partition.clone(),
                offset,
            });
        }
        if offset == high || max_records == 0 {
            return Ok(Vec::new());
        }
        let end = high.min(offset.saturating_add(max_records as u64));
        let work = async {
            self.inner
                .reader
                .lock()
                .await
                .read(partition, offset, end)
                .await
        };
        self.inner
            .failures
            .guard(format!("reading {partition} from offset {offset}"), work)
            .await
    }
}

impl super::Admin for KafkaTransport {
    async fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        validate_topic_name(topic)?;
        if partitions == 0 || partitions > i32::MAX as u32 {
            return Err(TransportError::InvalidTopic {
                name: topic.to_owned(),
                reason: "a topic needs between 1 and 2^31-1 partitions",
            });
        }
        let config = &self.inner.config;
        let replication = config.replication_factor.map_or(-1, i32::from);
        let new = NewTopic::new(
            topic,
            partitions as i32,
            TopicReplication::Fixed(replication),
        );
        let options = AdminOptions::new()
            .request_timeout(Some(config.request_timeout))
            .operation_timeout(Some(config.request_timeout));
        let operation = || format!("creating topic {topic}");
        let created = async {
            self.inner
                .clients()
                .admin
                .create_topics([&new], &options)
                .await
                .map_err(|e| kafka_error(operation(), &e))
        };
        let results = self.inner.failures.guard(operation(), created).await?;
        match results.into_iter().next() {
            Some(Ok(_)) => {}
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => {
                return match self.fetch_partitions(topic).await? {
                    Some(existing) if existing == partitions => Ok(()),
                    Some(existing) => Err(TransportError::TopicExists {
                        topic: topic.to_owned(),
                        existing,
                        requested: partitions,
                    }),
                    None => Err(TransportError::Kafka {
                        operation: operation().into(),
                        message: "the broker says the topic exists, but its metadata does not \
                                  list it (deleted meanwhile?)"
                            .into(),
                    }),
                };
            }
            Some(Err((_, code))) => {
                return Err(TransportError::Kafka {
                    operation: operation().into(),
                    message: format!("{code:?}: {code}").into(),
                });
            }
            None => {
                return Err(TransportError::Kafka {
                    operation: operation().into(),
                    message: "the broker returned no result".into(),
                });
            }
        }
        // Creation is asynchronous in a Kafka cluster: wait until metadata shows the
        // topic, so that what the caller does next (publish, subscribe) sees it.
        let deadline = tokio::time::Instant::now() + config.request_timeout;
        loop {
            if self.fetch_partitions(topic).await? == Some(partitions) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TransportError::Kafka {
                    operation: operation().into(),
                    message: format!(
                        "created, but not visible in metadata within {:?}",
                        config.request_timeout
                    )
                    .into(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The client context of every librdkafka client here: its log lines and errors go to
/// `tracing` under the `librdkafka` target, and a refused login or TLS handshake to the
/// transport's [`SecurityFailures`].
#[derive(Debug, Clone, Default)]
pub(crate) struct LogContext {
    failures: Arc<SecurityFailures>,
}

impl ClientContext for LogContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        log_line(level, facility, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, reason, "kafka client error");
        self.failures.record(&error, reason);
    }
}

/// The partition reader never subscribes, so it never rebalances.
impl ConsumerContext for LogContext {}

pub(crate) fn log_line(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}")
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

pub(crate) fn kafka_error(operation: impl Into<Arc<str>>, e: &KafkaError) -> TransportError {
    TransportError::Kafka {
        operation: operation.into(),
        message: e.to_string().into(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a blocking librdkafka call off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    operation: &'static str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| TransportError::Kafka {
            operation: operation.into(),
            message: format!("the blocking task failed: {e}").into(),
        })
}

/// The partition count of `topic`, or `None` if the cluster does not have it.
fn topic_partitions<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Option<u32>> {
    let metadata = client
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| kafka_error(format!("reading the metadata of {topic}"), &e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error() {
        None => Ok(Some(found.partitions().len() as u32)),
        Some(RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) => Ok(None),
        Some(_) if !found.partitions().is_empty() => Ok(Some(found.partitions().len() as u32)),
        Some(err) => {
            let code = RDKafkaErrorCode::from(err);
            Err(TransportError::Kafka {
                operation: format!("reading the metadata of {topic}").into(),
                message: format!("{code:?}: {code}").into(),
            })
        }
    }
}

/// Headers in order, duplicates and null values kept.
fn owned_headers(headers: &[super::Header]) -> OwnedHeaders {
    headers
        .iter()
        .fold(OwnedHeaders::new_with_capacity(headers.len()), |acc, h| {
            acc.insert(RdHeader {
                key: &h.key,
                value: h.value.as_deref(),
            })
        })
}
