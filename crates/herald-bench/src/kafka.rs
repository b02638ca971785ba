//! Herald over the Kafka protocol: the broker started in process on a loopback port, and
//! librdkafka (the `rdkafka` crate) as its producer and consumer.
//!
//! The client settings are those of an ordinary durable producer: `acks=all`, no
//! compression, librdkafka's default of five requests in flight per connection, Nagle
//! off. [`Profile::Throughput`] lets batches fill for up to [`THROUGHPUT_LINGER`] and up
//! to [`BATCH_BYTES`]; [`Profile::Latency`] sends as soon as a message is due. Consumers
//! read partition 0 by assignment (no rebalance to wait for) under a group id, commit
//! what they received every second, and ask the broker to answer a fetch after at most
//! [`FETCH_WAIT`] when no data is there.
//!
//! [`InProcessBroker::start_sasl_ssl`] runs the same broker with a SASL_SSL listener
//! (TLS from a CA made for the run, SCRAM-SHA-512, authorization on with the benchmark's
//! user as super user, as `herald serve` runs it); its clients take
//! [`InProcessBroker::client_properties`] on top of the settings above.

use std::{
    path::{Path, PathBuf},
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use herald_broker::{Broker, BrokerConfig, BrokerHandle, NewTopic, SaslConfig};
use herald_format::batch::BatchHeader;
use herald_log::LogConfig;
use rdkafka::{
    ClientConfig, ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _},
    error::{KafkaError, RDKafkaErrorCode},
    message::{DeliveryResult, Message},
    producer::{BaseProducer, BaseRecord, Producer as _, ProducerContext},
};

use crate::{
    BenchError, Result,
    target::{Consumer, Producer, Profile, Target},
};

/// `linger.ms` of a throughput producer.
pub const THROUGHPUT_LINGER: Duration = Duration::from_millis(5);
/// `batch.size` of a producer: at most this many bytes of one partition per request.
pub const BATCH_BYTES: usize = 1 << 20;
/// `fetch.wait.max.ms` of a consumer.
pub const FETCH_WAIT: Duration = Duration::from_millis(10);
/// How long a flush may take before the run is declared stuck.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

const SYSTEM: &str = "herald-kafka";

fn kafka_error(op: &str, e: impl std::fmt::Display) -> BenchError {
    BenchError::client(SYSTEM, op, e)
}

/// The librdkafka settings of a producer on `bootstrap`.
pub fn producer_config(bootstrap: &str, profile: Profile) -> ClientConfig {
    let linger = match profile {
        Profile::Throughput => THROUGHPUT_LINGER,
        Profile::Latency => Duration::ZERO,
    };
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("compression.type", "none")
        .set("linger.ms", linger.as_millis().to_string())
        .set("batch.size", BATCH_BYTES.to_string())
        // Let the byte limit decide the batch, not librdkafka's 10000-message default.
        .set("batch.num.messages", "1000000")
        // A request may hold a whole batch plus framing.
        .set("message.max.bytes", (BATCH_BYTES + (64 << 10)).to_string())
        .set("max.in.flight.requests.per.connection", "5")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "262144")
        .set("socket.nagle.disable", "true")
        .set("log_level", "3");
    c
}

/// The librdkafka settings of a consumer on `bootstrap` in `group`.
pub fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", FETCH_WAIT.as_millis().to_string())
        .set("fetch.min.bytes", "1")
        .set("socket.nagle.disable", "true")
        .set("log_level", "3");
    c
}

/// Counts the acknowledgements librdkafka reports.
#[derive(Default)]
struct Acks {
    acked: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Acks {}

impl ProducerContext for Acks {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err((e, _)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|p| p.into_inner());
                first.get_or_insert_with(|| e.to_string());
            }
        }
    }
}

/// A librdkafka producer writing to partition 0 of one topic.
pub struct KafkaProducer {
    producer: BaseProducer<Acks>,
    topic: String,
}

impl KafkaProducer {
    /// Connects a producer with `config`.
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self> {
        let producer = config
            .create_with_context(Acks::default())
            .map_err(|e| kafka_error("create producer", e))?;
        Ok(Self {
            producer,
            topic: topic.to_string(),
        })
    }

    fn check(&self) -> Result<()> {
        let ctx = self.producer.context();
        if ctx.failed.load(Ordering::Relaxed) > 0 {
            let first = ctx.first_error.lock().unwrap_or_else(|p| p.into_inner());
            return Err(kafka_error(
                "deliver",
                format!(
                    "{} messages failed, first: {}",
                    ctx.failed.load(Ordering::Relaxed),
                    first.as_deref().unwrap_or("?")
                ),
            ));
        }
        Ok(())
    }
}

impl Producer for KafkaProducer {
    fn send(&mut self, payloads: &[&[u8]]) -> Result<()> {
        for payload in payloads {
            let mut record = BaseRecord::<(), [u8]>::to(&self.topic)
                .partition(0)
                .payload(*payload);
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                        record = back;
                        self.producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => return Err(kafka_error("send", e)),
                }
            }
        }
        // Serve delivery reports without waiting.
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    fn flush(&mut self) -> Result<u64> {
        self.producer
            .flush(FLUSH_TIMEOUT)
            .map_err(|e| kafka_error("flush", e))?;
        self.check()?;
        Ok(self.producer.context().acked.load(Ordering::Relaxed))
    }
}

/// A librdkafka consumer of partition 0 of one topic, by assignment, in a group.
pub struct KafkaConsumer {
    consumer: BaseConsumer,
}

impl KafkaConsumer {
    /// Assigns partition 0 of `topic` from the group's committed offset (or the start).
    pub fn new(config: &ClientConfig, topic: &str) -> Result<Self> {
        let consumer: BaseConsumer = config
            .create()
            .map_err(|e| kafka_error("create consumer", e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(topic, 0, Offset::Stored)
            .map_err(|e| kafka_error("assign", e))?;
        consumer
            .assign(&tpl)
            .map_err(|e| kafka_error("assign", e))?;
        Ok(Self { consumer })
    }
}

/// Messages one [`KafkaConsumer::poll`] call hands on at most.
const POLL_MAX: usize = 10_000;

impl Consumer for KafkaConsumer {
    fn poll(&mut self, max_wait: Duration, on_message: &mut dyn FnMut(&[u8])) -> Result<usize> {
        let mut n = 0;
        let mut wait = max_wait;
        while n < POLL_MAX {
            match self.consumer.poll(wait) {
                None => break,
                Some(Err(e)) => return Err(kafka_error("poll", e)),
                Some(Ok(message)) => {
                    on_message(message.payload().unwrap_or_default());
                    n += 1;
                    wait = Duration::ZERO;
                }
            }
        }
        Ok(n)
    }
}

/// The herald broker running in this process, on its own runtime.
pub struct InProcessBroker {
    runtime: tokio::runtime::Runtime,
    handle: Option<BrokerHandle>,
    bootstrap: String,
    dir: PathBuf,
    /// librdkafka properties every client of this broker needs (security).
    client: Vec<(String, String)>,
}

/// The SASL user of a SASL_SSL broker, a super user.
pub const SASL_USER: &str = "bench";
/// Its password (the broker lives as long as the run, on loopback).
const SASL_PASSWORD: &str = "herald-bench-password";

/// A CA, and a server certificate for `localhost` and `127.0.0.1` it signed, written to
/// `dir` as `ca.pem`, `server.pem` and `server-key.pem`.
fn write_certificates(dir: &Path) -> Result<(PathBuf, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let tls = |e: rcgen::Error| kafka_error("make certificates", e);
    let ca_key = KeyPair::generate().map_err(tls)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "herald-bench CA");
    let ca = params.self_signed(&ca_key).map_err(tls)?;
    let key = KeyPair::generate().map_err(tls)?;
    let cert = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .map_err(tls)?
        .signed_by(&key, &ca, &ca_key)
        .map_err(tls)?;
    let files = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server-key.pem"),
    );
    for (path, pem) in [
        (&files.0, ca.pem()),
        (&files.1, cert.pem()),
        (&files.2, key.serialize_pem()),
    ] {
        std::fs::write(path, pem).map_err(|e| BenchError::io("write certificate", path, e))?;
    }
    Ok(files)
}

impl std::fmt::Debug for InProcessBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBroker")
            .field("bootstrap", &self.bootstrap)
            .field("dir", &self.dir)
            .finish()
    }
}

impl InProcessBroker {
    /// Starts a broker with its data in `dir` (a fresh directory), listening on a free
    /// loopback port, with `topics` as the configuration of every topic. Consumer groups
    /// rebalance without the usual initial delay. The retention timer is as good as off
    /// (it must not delete a round's data before the round is read back): benchmarks
    /// bound their disk use with [`trim`](Self::trim) between rounds, and by deleting
    /// topics.
    pub fn start(dir: &Path, topics: LogConfig) -> Result<Self> {
        Self::start_with(dir, topics, |_| Ok(Vec::new()))
    }

    /// Like [`start`](Self::start), with a SASL_SSL listener: TLS with a certificate of a
    /// CA made in `dir/tls`, SCRAM-SHA-512 for user [`SASL_USER`] (stored in the data
    /// directory as `herald users add` does), and authorization on with that user as
    /// super user, as `herald serve --kafka-listen SASL_SSL://...` runs.
    pub fn start_sasl_ssl(dir: &Path, topics: LogConfig) -> Result<Self> {
        use herald_security::{
            Authorizer, Mechanism, ScramHash, TlsFiles, TlsServer, UserStore,
            scram::DEFAULT_ITERATIONS,
        };
        Self::start_with(dir, topics, |config| {
            let tls_dir = dir.join("tls");
            std::fs::create_dir_all(&tls_dir)
                .map_err(|e| BenchError::io("create certificate directory", &tls_dir, e))?;
            let (ca, cert, key) = write_certificates(&tls_dir)?;
            let tls = TlsServer::load(TlsFiles {
                cert,
                key,
                client_ca: None,
            })
            .map_err(|e| kafka_error("load TLS", e))?;
            let users = UserStore::open(dir).map_err(|e| kafka_error("open users", e))?;
            users
                .set_password(
                    SASL_USER,
                    SASL_PASSWORD.as_bytes(),
                    &[ScramHash::Sha512],
                    DEFAULT_ITERATIONS,
                )
                .map_err(|e| kafka_error("add user", e))?;
            let authorizer = Authorizer::open(dir, [format!("User:{SASL_USER}")])
                .map_err(|e| kafka_error("open ACLs", e))?;
            config.tls = Some(tls);
            config.sasl = Some(SaslConfig {
                users: users.clone(),
                mechanisms: vec![Mechanism::Scram(ScramHash::Sha512)],
            });
            config.users = Some(users);
            config.authorizer = Some(authorizer);
            Ok([
                ("security.protocol", "SASL_SSL".to_string()),
                ("sasl.mechanism", "SCRAM-SHA-512".to_string()),
                ("sasl.username", SASL_USER.to_string()),
                ("sasl.password", SASL_PASSWORD.to_string()),
                ("ssl.ca.location", ca.display().to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect())
        })
    }

    /// Starts the broker after `secure` adjusted its configuration and named the client
    /// properties that go with it.
    fn start_with(
        dir: &Path,
        topics: LogConfig,
        secure: impl FnOnce(&mut BrokerConfig) -> Result<Vec<(String, String)>>,
    ) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("herald-broker")
            .enable_all()
            .build()
            .map_err(|e| BenchError::io("start broker runtime", dir, e))?;
        let mut config = BrokerConfig::new(dir, "127.0.0.1:0".parse().expect("valid address"));
        config.default_topic_config = topics;
        config.group_initial_rebalance_delay_ms = 0;
        config.retention_check_interval_ms = 24 * 3600 * 1000;
        let client = secure(&mut config)?;
        let handle = runtime.block_on(Broker::start(config))?;
        let bootstrap = handle.kafka_addr().to_string();
        Ok(Self {
            runtime,
            handle: Some(handle),
            bootstrap,
            dir: dir.to_path_buf(),
            client,
        })
    }

    /// `host:port` of the Kafka listener.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    /// The librdkafka properties a client of this broker needs on top of
    /// [`producer_config`] or [`consumer_config`]: none for plaintext, the SASL_SSL
    /// settings (protocol, mechanism, user, password, CA) otherwise.
    pub fn client_properties(&self) -> &[(String, String)] {
        &self.client
    }

    /// `config` with [`client_properties`](Self::client_properties) set.
    pub fn secure(&self, mut config: ClientConfig) -> ClientConfig {
        for (k, v) in &self.client {
            config.set(k, v);
        }
        config
    }

    fn broker(&self) -> &Broker {
        self.handle
            .as_ref()
            .expect("running until dropped")
            .broker()
    }

    /// Creates `topic` with one partition.
    pub fn create_topic(&self, topic: &str) -> Result<()> {
        let new = NewTopic {
            name: topic.to_string(),
            partitions: 1,
            configs: Default::default(),
        };
        self.runtime
            .block_on(self.broker().create_topic(new))
            .map_err(|e| kafka_error("create topic", e))?;
        Ok(())
    }

    /// Deletes `topic` and its data.
    pub fn delete_topic(&self, topic: &str) -> Result<()> {
        self.runtime
            .block_on(self.broker().delete_topic(topic))
            .map_err(|e| kafka_error("delete topic", e))
    }

    /// `(log start offset, high watermark)` of partition 0 of `topic`.
    pub fn offsets(&self, topic: &str) -> Result<(u64, u64)> {
        let partition = self
            .broker()
            .topics()
            .partition(topic, 0)
            .ok_or_else(|| kafka_error("offsets", format!("no topic {topic}")))?;
        let (start, end) = partition.offsets().map_err(|e| kafka_error("offsets", e))?;
        Ok((start as u64, end as u64))
    }

    /// Deletes every record of partition 0 of `topic` that is there now (Kafka's
    /// DeleteRecords up to the high watermark), freeing their segments.
    pub fn trim(&self, topic: &str) -> Result<()> {
        let partition = self
            .broker()
            .topics()
            .partition(topic, 0)
            .ok_or_else(|| kafka_error("trim", format!("no topic {topic}")))?;
        let (_, end) = partition.offsets().map_err(|e| kafka_error("trim", e))?;
        partition
            .delete_records_before(end as u64)
            .map_err(|e| kafka_error("trim", e))?;
        Ok(())
    }

    /// The batches stored in partition 0 of `topic` from `offset` (or the log start, if
    /// later) up to `end`, exactly as the producer sent them, keeping at most `keep_bytes`
    /// of them; returns the kept batches and the count and bytes of all of them.
    pub fn stored_batches(
        &self,
        topic: &str,
        offset: u64,
        end: u64,
        keep_bytes: usize,
    ) -> Result<StoredBatches> {
        let (start, _) = self.offsets(topic)?;
        let mut next = offset.max(start);
        let mut out = StoredBatches::default();
        while next < end {
            let read = self
                .runtime
                .block_on(self.broker().read(topic, 0, next as i64, 16 << 20))
                .map_err(|e| kafka_error("read back", e))?;
            if read.bytes.is_empty() {
                break;
            }
            let mut rest = read.bytes.as_slice();
            while !rest.is_empty() {
                let header = BatchHeader::parse(rest).map_err(|e| kafka_error("read back", e))?;
                let (batch, tail) = rest.split_at(header.total_len());
                rest = tail;
                next = header.last_offset() as u64 + 1;
                if (header.base_offset as u64) < offset {
                    continue;
                }
                out.batches += 1;
                out.bytes += batch.len() as u64;
                out.records += header.record_count.max(0) as u64;
                if out.kept_bytes + batch.len() <= keep_bytes {
                    out.kept_bytes += batch.len();
                    out.kept.push(batch.to_vec());
                }
            }
        }
        Ok(out)
    }

    /// Stops the broker gracefully (syncs and closes every log).
    pub fn shutdown(mut self) -> Result<()> {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.shutdown())?;
        }
        Ok(())
    }
}

/// Batches read back from a partition.
#[derive(Debug, Default, Clone)]
pub struct StoredBatches {
    /// Batches in the range.
    pub batches: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Their records.
    pub records: u64,
    /// The first of them, byte for byte, up to the asked-for size.
    pub kept: Vec<Vec<u8>>,
    /// Bytes of `kept`.
    pub kept_bytes: usize,
}

impl StoredBatches {
    /// Mean bytes per batch.
    pub fn mean_bytes(&self) -> f64 {
        self.bytes as f64 / self.batches.max(1) as f64
    }

    /// Mean records per batch.
    pub fn mean_records(&self) -> f64 {
        self.records as f64 / self.batches.max(1) as f64
    }
}

/// Herald over the Kafka protocol as a [`Target`]: an in-process broker, one partition
/// per stream, librdkafka clients.
pub struct HeraldKafka {
    broker: InProcessBroker,
    label: String,
}

impl HeraldKafka {
    /// Starts a broker in `dir` whose topics use `topics`; `label` names the mode.
    pub fn start(dir: &Path, topics: LogConfig, label: &str) -> Result<Self> {
        Ok(Self {
            broker: InProcessBroker::start(dir, topics)?,
            label: label.to_string(),
        })
    }

    /// The same over SASL_SSL ([`InProcessBroker::start_sasl_ssl`]); the label starts
    /// with `SASL_SSL, `.
    pub fn start_sasl_ssl(dir: &Path, topics: LogConfig, label: &str) -> Result<Self> {
        Ok(Self {
            broker: InProcessBroker::start_sasl_ssl(dir, topics)?,
            label: format!("SASL_SSL, {label}"),
        })
    }

    /// The broker behind it.
    pub fn broker(&self) -> &InProcessBroker {
        &self.broker
    }

    /// Stops the broker gracefully.
    pub fn shutdown(self) -> Result<()> {
        self.broker.shutdown()
    }
}

impl Target for HeraldKafka {
    fn name(&self) -> String {
        format!("herald-kafka ({})", self.label)
    }

    fn settings(&self) -> String {
        let security = if self.broker.client.is_empty() {
            "PLAINTEXT"
        } else {
            "SASL_SSL (TLS: rustls on the broker, OpenSSL in librdkafka; SCRAM-SHA-512; ACLs \
             on, the user a super user)"
        };
        format!(
            "herald serve in process, 1 partition, acks=all, {}, {security}; librdkafka {}: \
             linger.ms {} (throughput) / 0 (latency), batch.size {}, 5 in flight, no \
             compression; consumers: assign + group commit every 1 s, fetch.wait.max.ms {}",
            self.label.trim_start_matches("SASL_SSL, "),
            rdkafka::util::get_rdkafka_version().1,
            THROUGHPUT_LINGER.as_millis(),
            BATCH_BYTES,
            FETCH_WAIT.as_millis(),
        )
    }

    fn fsync_before_ack(&self) -> bool {
        !self.label.contains("no fsync")
    }

    fn create_stream(&self, stream: &str, _groups: &[String]) -> Result<()> {
        // Groups come into being with their first commit; a new topic name has none.
        self.broker.create_topic(stream)
    }

    fn delete_stream(&self, stream: &str) -> Result<()> {
        self.broker.delete_topic(stream)
    }

    fn producer(&self, stream: &str, profile: Profile) -> Result<Box<dyn Producer>> {
        let config = self
            .broker
            .secure(producer_config(self.broker.bootstrap(), profile));
        Ok(Box::new(KafkaProducer::new(&config, stream)?))
    }

    fn consumer(&self, stream: &str, group: &str) -> Result<Box<dyn Consumer>> {
        let config = self
            .broker
            .secure(consumer_config(self.broker.bootstrap(), group));
        Ok(Box::new(KafkaConsumer::new(&config, stream)?))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{target, workload::log_config};

    #[test]
    fn the_sasl_ssl_target_writes_and_reads_back_a_backlog() {
        let dir = tempfile::tempdir().unwrap();
        let topics = log_config(herald_log::Durability::group_commit());
        let t = HeraldKafka::start_sasl_ssl(dir.path(), topics, "group commit").unwrap();
        assert_eq!(t.name(), "herald-kafka (SASL_SSL, group commit)");
        assert!(t.settings().contains("SASL_SSL (TLS"), "{}", t.settings());
        let protocol = t
            .broker()
            .client_properties()
            .iter()
            .find(|(k, _)| k == "security.protocol");
        assert_eq!(protocol.map(|(_, v)| v.as_str()), Some("SASL_SSL"));
        t.create_stream("secured", &["g".to_string()]).unwrap();
        let mut producers = vec![t.producer("secured", Profile::Throughput).unwrap()];
        let c = target::catch_up(
            &mut producers,
            || t.consumer("secured", "g"),
            100,
            1000,
            Duration::from_secs(30),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!((c.backlog, c.read.messages), (1000, 1000));
        drop(producers);
        t.shutdown().unwrap();
    }
}
