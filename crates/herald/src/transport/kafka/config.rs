//! Settings of the Kafka transport: where the cluster is, the SDK's defaults, and any
//! librdkafka property passed through unchanged.

use std::{collections::BTreeMap, time::Duration};

use rdkafka::{ClientConfig, config::RDKafkaLogLevel};

use crate::transport::{Result, TransportError};

/// Where a new consumer group starts reading a partition it has no committed offset for
/// (Kafka's `auto.offset.reset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// From the first record still in the partition, like the in-process transports.
    #[default]
    Earliest,
    /// Only records published after the group first reads the partition.
    Latest,
}

impl OffsetReset {
    fn as_str(self) -> &'static str {
        match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
        }
    }
}

/// Properties the transport sets itself and refuses to take from the passthrough maps:
/// consumer groups are named by [`Subscriber::subscribe`](crate::transport::Subscriber),
/// and offsets are committed only by [`Consumer::commit`](crate::transport::Consumer),
/// for records whose outcome is final.
const RESERVED: [&str; 3] = ["group.id", "enable.auto.commit", "enable.auto.offset.store"];

/// Settings of a [`KafkaTransport`](super::KafkaTransport).
///
/// `properties` (every client), `producer_properties` and `consumer_properties` are
/// librdkafka properties applied after the transport's own settings, so they override
/// them: security settings, timeouts, compression, anything in librdkafka's
/// `CONFIGURATION.md`. Only `group.id`, `enable.auto.commit` and
/// `enable.auto.offset.store` are refused (the transport owns them).
///
/// ```
/// use herald::transport::kafka::KafkaConfig;
///
/// let config = KafkaConfig::new("broker-1:9092,broker-2:9092")
///     .with_client_id("billing")
///     .set("security.protocol", "SASL_PLAINTEXT")
///     .set("sasl.mechanism", "PLAIN")
///     .set("sasl.username", "billing")
///     .set("sasl.password", "secret")
///     .set_producer("compression.type", "zstd");
/// assert_eq!(config.bootstrap_servers, "broker-1:9092,broker-2:9092");
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KafkaConfig {
    /// `host:port[,host:port...]` of any brokers of the cluster (`bootstrap.servers`).
    pub bootstrap_servers: String,
    /// The client id brokers see in their logs and quotas (`client.id`).
    pub client_id: String,
    /// Where a group without a committed offset starts (default: earliest).
    pub auto_offset_reset: OffsetReset,
    /// How long the producer waits to fill a batch (`linger.ms`; default 5 ms).
    pub linger: Duration,
    /// Largest producer batch in bytes (`batch.size`; default 1 MB).
    pub batch_bytes: usize,
    /// Replication factor of topics created by [`Admin::create_topic`](crate::transport::Admin);
    /// `None` leaves it to the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Bound on one metadata, admin, offset or commit request (default 30 s).
    pub request_timeout: Duration,
    /// How long [`Subscriber::subscribe`](crate::transport::Subscriber) waits for the
    /// group to give the new member its first assignment (default 60 s).
    pub join_timeout: Duration,
    /// Records a consumer fetches ahead of its polls before it pauses fetching
    /// (default 2048). librdkafka's own prefetch (`queued.max.messages.kbytes`) comes on
    /// top of this.
    pub max_buffered_records: usize,
    /// librdkafka properties for every client of the transport.
    pub properties: BTreeMap<String, String>,
    /// librdkafka properties for the producer only.
    pub producer_properties: BTreeMap<String, String>,
    /// librdkafka properties for consumers only (group members and partition readers).
    pub consumer_properties: BTreeMap<String, String>,
}

impl KafkaConfig {
    /// Defaults for a cluster reachable at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            client_id: "herald".to_owned(),
            auto_offset_reset: OffsetReset::Earliest,
            linger: Duration::from_millis(5),
            batch_bytes: 1_000_000,
            replication_factor: None,
            request_timeout: Duration::from_secs(30),
            join_timeout: Duration::from_secs(60),
            max_buffered_records: 2048,
            properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
        }
    }

    /// Sets the client id.
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = client_id.into();
        self
    }

    /// Sets where groups without a committed offset start.
    pub fn with_auto_offset_reset(mut self, reset: OffsetReset) -> Self {
        self.auto_offset_reset = reset;
        self
    }

    /// Sets the producer's linger time.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets the largest producer batch in bytes.
    pub fn with_batch_bytes(mut self, bytes: usize) -> Self {
        self.batch_bytes = bytes;
        self
    }

    /// Sets the replication factor of created topics.
    pub fn with_replication_factor(mut self, factor: i16) -> Self {
        self.replication_factor = Some(factor);
        self
    }

    /// Sets how long `subscribe` waits for the first assignment.
    pub fn with_join_timeout(mut self, timeout: Duration) -> Self {
        self.join_timeout = timeout;
        self
    }

    /// Sets a librdkafka property for every client.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(key.into(), value.into());
        self
    }

    /// Sets a librdkafka property for the producer only.
    pub fn set_producer(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.producer_properties.insert(key.into(), value.into());
        self
    }

    /// Sets a librdkafka property for consumers only.
    pub fn set_consumer(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.consumer_properties.insert(key.into(), value.into());
        self
    }

    /// Refuses the properties the transport owns.
    pub(super) fn check(&self) -> Result<()> {
        for map in [
            &self.properties,
            &self.producer_properties,
            &self.consumer_properties,
        ] {
            if let Some(key) = map.keys().find(|k| RESERVED.contains(&k.as_str())) {
                return Err(TransportError::Kafka {
                    operation: "configuring the transport".into(),
                    message: format!(
                        "{key} is set by the transport and cannot be passed through \
                         (groups are named by subscribe; offsets are committed only by \
                         Consumer::commit)"
                    )
                    .into(),
                });
            }
        }
        if self.bootstrap_servers.trim().is_empty() {
            return Err(TransportError::Kafka {
                operation: "configuring the transport".into(),
                message: "bootstrap_servers is empty".into(),
            });
        }
        Ok(())
    }

    fn base(&self, extra: &BTreeMap<String, String>, defaults: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("client.id", &self.client_id);
        for (k, v) in defaults {
            config.set(*k, v);
        }
        for (k, v) in self.properties.iter().chain(extra) {
            config.set(k, v);
        }
        // rdkafka takes its log level from the `log` crate; the SDK logs through
        // `tracing`, so ask it instead (librdkafka drops lines below this level).
        config.set_log_level(
            if tracing::enabled!(target: "librdkafka", tracing::Level::DEBUG) {
                RDKafkaLogLevel::Debug
            } else if tracing::enabled!(target: "librdkafka", tracing::Level::INFO) {
                RDKafkaLogLevel::Info
            } else if tracing::enabled!(target: "librdkafka", tracing::Level::WARN) {
                RDKafkaLogLevel::Warning
            } else {
                RDKafkaLogLevel::Error
            },
        );
        config
    }

    /// The idempotent producer: acks from every in-sync replica, and Java's partitioner
    /// so keys land where [`partition_for_key`](crate::transport::partition_for_key) says.
    pub(super) fn producer(&self) -> ClientConfig {
        self.base(
            &self.producer_properties,
            &[
                ("enable.idempotence", "true".into()),
                ("acks", "all".into()),
                ("partitioner", "murmur2_random".into()),
                ("linger.ms", self.linger.as_millis().to_string()),
                ("batch.size", self.batch_bytes.to_string()),
            ],
        )
    }

    /// The admin client, which also answers metadata and watermark queries; it must not
    /// create topics by asking about them.
    pub(super) fn admin(&self) -> ClientConfig {
        self.base(
            &BTreeMap::new(),
            &[("allow.auto.create.topics", "false".into())],
        )
    }

    /// A member of `group`: no automatic commits or offset stores, ever.
    pub(super) fn group_member(&self, group: &str) -> ClientConfig {
        let mut config = self.base(
            &self.consumer_properties,
            &[
                ("auto.offset.reset", self.auto_offset_reset.as_str().into()),
                ("enable.partition.eof", "false".into()),
            ],
        );
        config
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
    }

    /// A consumer that only reads assigned partitions (never subscribes or commits).
    /// librdkafka needs a group id to assign partitions; this one never joins.
    pub(super) fn partition_reader(&self) -> ClientConfig {
        let mut config = self.base(
            &self.consumer_properties,
            &[("enable.partition.eof", "true".into())],
        );
        config
            .set("group.id", format!("{}.reader", self.client_id))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false");
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_overrides_defaults() {
        let c = KafkaConfig::new("b:9092")
            .set("linger.ms", "50")
            .set_producer("acks", "1")
            .set_consumer("session.timeout.ms", "6000");
        let p = c.producer();
        assert_eq!(p.get("linger.ms"), Some("50"));
        assert_eq!(p.get("acks"), Some("1"));
        assert_eq!(p.get("partitioner"), Some("murmur2_random"));
        assert_eq!(p.get("session.timeout.ms"), None);
        let m = c.group_member("g");
        assert_eq!(m.get("session.timeout.ms"), Some("6000"));
        assert_eq!(m.get("group.id"), Some("g"));
        assert_eq!(m.get("auto.offset.reset"), Some("earliest"));
        assert_eq!(c.admin().get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn reserved_properties_are_refused() {
        for key in RESERVED {
            let err = KafkaConfig::new("b:9092")
                .set(key, "x")
                .check()
                .unwrap_err();
            assert!(err.to_string().contains(key), "{err}");
        }
        KafkaConfig::new("b:9092").check().unwrap();
        assert!(KafkaConfig::new(" ").check().is_err());
    }
}
