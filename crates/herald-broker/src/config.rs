//! Broker settings, deserialisable from a TOML or JSON file.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use herald_log::{Durability, LogConfig};
use serde::{Deserialize, Deserializer};

use crate::group::GroupConfig;

/// Kafka's `socket.request.max.bytes` default: the largest request frame accepted.
pub(crate) const DEFAULT_MAX_FRAME_BYTES: usize = 100 * 1024 * 1024;

/// Everything the broker needs to start. Every field has a default (see [`Default`]), so
/// a configuration file names only what it changes:
///
/// ```
/// let config: herald_broker::BrokerConfig = serde_json::from_str(r#"{
///     "data_dir": "/var/lib/herald",
///     "kafka_listen": "0.0.0.0:9092",
///     "advertised_host": "broker.example",
///     "default_topic_config": { "retention_ms": 86400000, "durability": "every-append" }
/// }"#).unwrap();
/// assert_eq!(config.default_partitions, 1);
/// assert_eq!(config.default_topic_config.retention_age.unwrap().as_secs(), 86_400);
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BrokerConfig {
    /// Root of all broker state: `topics/` (one directory per partition), `broker/`
    /// (topic catalog, producer ids, cluster id) and `groups/`.
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds; port 0 picks a free port.
    pub kafka_listen: SocketAddr,
    /// TLS on the Kafka listener (Kafka's `SSL` security protocol); `None` is
    /// `PLAINTEXT`. Set by the binary from `--tls-cert` and `--tls-key`, not from the
    /// file's broker table.
    #[serde(skip)]
    pub tls: Option<herald_security::TlsServer>,
    /// SASL on the Kafka listener (`SASL_PLAINTEXT`, or `SASL_SSL` with [`tls`](Self::tls)):
    /// every connection authenticates before anything but ApiVersions. Set by the binary.
    #[serde(skip)]
    pub sasl: Option<crate::SaslConfig>,
    /// Kafka's ACLs, checked on every request ([`herald_security::Authorizer`]); `None`
    /// allows everything, as a Kafka broker without `authorizer.class.name`. The binary
    /// turns it on with any authenticated listener.
    #[serde(skip)]
    pub authorizer: Option<herald_security::Authorizer>,
    /// The users AlterUserScramCredentials and DescribeUserScramCredentials manage (the
    /// same store SASL checks). `None`: the data directory's, opened per request.
    #[serde(skip)]
    pub users: Option<herald_security::UserStore>,
    /// Kafka listeners beyond the first ([`kafka_listen`](Self::kafka_listen) with
    /// [`tls`](Self::tls) and [`sasl`](Self::sasl)), each with its own security, as
    /// Kafka's `listeners=PLAINTEXT://:9092,SASL_SSL://:9094`. A client is told the
    /// address of the listener it came in on. Set by the binary.
    #[serde(skip)]
    pub more_listeners: Vec<ListenerConfig>,
    /// Host name clients are told to connect to (Metadata). `None`: the listen IP, or
    /// `127.0.0.1` when listening on an unspecified address.
    pub advertised_host: Option<String>,
    /// Port clients are told to connect to. `None`: the port actually bound.
    pub advertised_port: Option<u16>,
    /// Create unknown topics when a Metadata request asks for them and allows it
    /// (Kafka's `auto.create.topics.enable`).
    pub auto_create_topics: bool,
    /// Partitions of auto-created topics and of CreateTopics requests that say -1.
    pub default_partitions: i32,
    /// Log settings of topics that override nothing.
    #[serde(deserialize_with = "deserialize_log_config")]
    pub default_topic_config: LogConfig,
    /// Largest request frame accepted; a larger one closes the connection.
    pub max_frame_bytes: usize,
    /// This broker's node id in Metadata.
    pub node_id: i32,
    /// Cluster id in Metadata. `None`: generated once and kept in the data directory.
    pub cluster_id: Option<String>,
    /// How often retention runs over every partition, in milliseconds.
    pub retention_check_interval_ms: u64,
    /// How many offsets at the end of each partition are scanned at startup to rebuild
    /// idempotent-producer state.
    pub producer_state_scan_offsets: u64,
    /// Largest partition count of one topic.
    pub max_partitions_per_topic: i32,
    /// How long the first rebalance of an empty consumer group waits for more members
    /// (Kafka's `group.initial.rebalance.delay.ms`), in milliseconds.
    pub group_initial_rebalance_delay_ms: u64,
    /// Smallest session timeout a consumer may ask for (`group.min.session.timeout.ms`).
    pub group_min_session_timeout_ms: u64,
    /// Largest session timeout a consumer may ask for (`group.max.session.timeout.ms`).
    pub group_max_session_timeout_ms: u64,
    /// How long committed offsets of an empty group are kept
    /// (`offsets.retention.minutes`, here in milliseconds).
    pub offsets_retention_ms: u64,
    /// Most Kafka connections open at once over all listeners (Kafka's
    /// `max.connections`): beyond it the broker stops accepting until one closes, so each
    /// connection's descriptor and buffers stay within a budget.
    pub max_connections: usize,
    /// Most Kafka connections from one client address (Kafka's
    /// `max.connections.per.ip`; 0 for no limit): a connection beyond it is closed at once.
    pub max_connections_per_ip: usize,
    /// Most bytes of Kafka requests being received and not yet handled, over every
    /// connection (Kafka's `queued.max.request.bytes`): taken before a request's buffer
    /// is allocated; when spent, connections wait before reading the next request body.
    pub queued_max_request_bytes: usize,
    /// A Kafka connection with nothing in flight and no request for this long is closed
    /// (Kafka's `connections.max.idle.ms`; 0 never closes one).
    pub connections_max_idle_ms: u64,
    /// What checks schema ids for topics with schema validation on (not part of a
    /// configuration file; see [`with_schema_id_check`](Self::with_schema_id_check)).
    #[serde(skip)]
    pub schema_id_check: crate::validation::SchemaIdCheckSlot,
}

/// One more Kafka listener: where it binds, and its security.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ListenerConfig {
    /// Address to bind; port 0 picks a free port. Clients are told
    /// [`BrokerConfig::advertised_host`] (or this IP) and the port bound.
    pub listen: SocketAddr,
    /// TLS (`SSL`, or `SASL_SSL` with [`sasl`](Self::sasl)).
    pub tls: Option<herald_security::TlsServer>,
    /// SASL (`SASL_PLAINTEXT`, or `SASL_SSL` with [`tls`](Self::tls)).
    pub sasl: Option<crate::SaslConfig>,
}

impl ListenerConfig {
    /// A listener on `listen` with the given security.
    pub fn new(
        listen: SocketAddr,
        tls: Option<herald_security::TlsServer>,
        sasl: Option<crate::SaslConfig>,
    ) -> Self {
        Self { listen, tls, sasl }
    }

    /// Kafka's security protocol name of the listener.
    pub fn security_protocol(&self) -> &'static str {
        security_protocol(self.tls.is_some(), self.sasl.is_some())
    }
}

/// Kafka's security protocol name of a listener: `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or
/// `SASL_SSL`.
pub fn security_protocol(tls: bool, sasl: bool) -> &'static str {
    match (sasl, tls) {
        (false, false) => "PLAINTEXT",
        (false, true) => "SSL",
        (true, false) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./herald-data"),
            kafka_listen: SocketAddr::from(([127, 0, 0, 1], 9092)),
            tls: None,
            sasl: None,
            authorizer: None,
            users: None,
            more_listeners: Vec::new(),
            advertised_host: None,
            advertised_port: None,
            auto_create_topics: true,
            default_partitions: 1,
            default_topic_config: LogConfig::default(),
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
            node_id: 1,
            cluster_id: None,
            retention_check_interval_ms: 5 * 60 * 1000,
            producer_state_scan_offsets: 1_000_000,
            max_partitions_per_topic: 10_000,
            group_initial_rebalance_delay_ms: 3_000,
            group_min_session_timeout_ms: 6_000,
            group_max_session_timeout_ms: 30 * 60 * 1000,
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            max_connections: 10_000,
            max_connections_per_ip: 0,
            queued_max_request_bytes: 256 << 20,
            connections_max_idle_ms: 10 * 60 * 1000,
            schema_id_check: Default::default(),
        }
    }
}

impl BrokerConfig {
    /// Defaults with `data_dir` and the listener set: the usual start for tests and
    /// embedding (`"127.0.0.1:0".parse()` picks a free port).
    pub fn new(data_dir: impl Into<PathBuf>, kafka_listen: SocketAddr) -> Self {
        Self {
            data_dir: data_dir.into(),
            kafka_listen,
            ..Self::default()
        }
    }

    /// Installs the check that topics with `confluent.value.schema.validation` or
    /// `confluent.key.schema.validation` use (see [`crate::validation`]).
    pub fn with_schema_id_check(
        mut self,
        check: std::sync::Arc<dyn crate::validation::SchemaIdCheck>,
    ) -> Self {
        self.schema_id_check = crate::validation::SchemaIdCheckSlot(Some(check));
        self
    }

    /// Checks the settings, saying what is wrong in words a user can act on.
    pub fn validate(&self) -> Result<(), String> {
        self.default_topic_config
            .validate()
            .map_err(|e| format!("default_topic_config: {e}"))?;
        if self.queued_max_request_bytes < self.max_frame_bytes {
            return Err(format!(
                "queued_max_request_bytes ({}) must be at least max_frame_bytes ({})",
                self.queued_max_request_bytes, self.max_frame_bytes
            ));
        }
        if self.max_connections == 0 {
            return Err("max_connections must be at least 1".into());
        }
        if self.default_partitions < 1 || self.default_partitions > self.max_partitions_per_topic {
            return Err(format!(
                "default_partitions must be between 1 and max_partitions_per_topic ({}), got {}",
                self.max_partitions_per_topic, self.default_partitions
            ));
        }
        if self.max_frame_bytes < 1024 || self.max_frame_bytes > i32::MAX as usize {
            return Err(format!(
                "max_frame_bytes must be between 1024 and {}, got {}",
                i32::MAX,
                self.max_frame_bytes
            ));
        }
        if self.node_id < 0 {
            return Err(format!(
                "node_id must not be negative, got {}",
                self.node_id
            ));
        }
        if self.retention_check_interval_ms == 0 {
            return Err("retention_check_interval_ms must be at least 1".into());
        }
        self.group_config()
            .validate()
            .map_err(|e| format!("consumer groups: {e}"))?;
        Ok(())
    }

    /// The group coordinator's settings derived from this configuration.
    pub fn group_config(&self) -> GroupConfig {
        GroupConfig {
            initial_rebalance_delay: Duration::from_millis(self.group_initial_rebalance_delay_ms),
            min_session_timeout: Duration::from_millis(self.group_min_session_timeout_ms),
            max_session_timeout: Duration::from_millis(self.group_max_session_timeout_ms),
            offsets_retention: Duration::from_millis(self.offsets_retention_ms),
            ..GroupConfig::default()
        }
    }
}

/// The file form of [`LogConfig`], in Kafka's units (milliseconds, bytes, -1 for
/// "no limit"). Missing fields keep [`LogConfig::default`].
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct LogConfigFile {
    segment_bytes: Option<u64>,
    segment_ms: Option<i64>,
    retention_ms: Option<i64>,
    retention_bytes: Option<i64>,
    max_message_bytes: Option<u32>,
    durability: Option<String>,
    group_commit_max_delay_ms: Option<u64>,
    group_commit_max_bytes: Option<u64>,
    index_interval_bytes: Option<u32>,
    verify_reads: Option<bool>,
    message_timestamp_type: Option<String>,
}

fn deserialize_log_config<'de, D: Deserializer<'de>>(d: D) -> Result<LogConfig, D::Error> {
    use serde::de::Error;
    let file = LogConfigFile::deserialize(d)?;
    let mut config = LogConfig::default();
    if let Some(v) = file.segment_bytes {
        config.segment_bytes = v;
    }
    if let Some(v) = file.segment_ms {
        config.segment_age = optional_ms(v).map_err(D::Error::custom)?;
    }
    if let Some(v) = file.retention_ms {
        config.retention_age = optional_ms(v).map_err(D::Error::custom)?;
    }
    if let Some(v) = file.retention_bytes {
        config.retention_bytes = match v {
            -1 => None,
            v if v >= 0 => Some(v as u64),
            v => {
                return Err(D::Error::custom(format!(
                    "retention_bytes: {v} is below -1"
                )));
            }
        };
    }
    if let Some(v) = file.max_message_bytes {
        config.max_batch_bytes = v;
    }
    if let Some(name) = file.durability {
        config.durability = crate::topic_config::parse_durability(&name, config.durability)
            .map_err(D::Error::custom)?;
    }
    if file.group_commit_max_delay_ms.is_some() || file.group_commit_max_bytes.is_some() {
        let Durability::GroupCommit {
            max_delay,
            max_bytes,
        } = &mut config.durability
        else {
            return Err(D::Error::custom(
                "group_commit_* settings need durability = \"group-commit\"",
            ));
        };
        if let Some(ms) = file.group_commit_max_delay_ms {
            *max_delay = Duration::from_millis(ms);
        }
        if let Some(b) = file.group_commit_max_bytes {
            *max_bytes = b;
        }
    }
    if let Some(v) = file.index_interval_bytes {
        config.index_interval_bytes = v;
    }
    if let Some(v) = file.verify_reads {
        config.verify_reads = v;
    }
    if let Some(v) = file.message_timestamp_type {
        crate::topic_config::apply_one(
            &mut config,
            crate::topic_config::MESSAGE_TIMESTAMP_TYPE,
            &v,
        )
        .map_err(D::Error::custom)?;
    }
    config.validate().map_err(D::Error::custom)?;
    Ok(config)
}

/// Kafka's "milliseconds, or -1 for never".
fn optional_ms(v: i64) -> Result<Option<Duration>, String> {
    match v {
        -1 => Ok(None),
        v if v >= 0 => Ok(Some(Duration::from_millis(v as u64))),
        v => Err(format!("{v} ms is below -1")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c: BrokerConfig = serde_json::from_str("{}").unwrap();
        assert!(c.auto_create_topics);
        assert_eq!(c.max_frame_bytes, DEFAULT_MAX_FRAME_BYTES);
        assert_eq!(c.node_id, 1);
        assert_eq!(c.default_topic_config, LogConfig::default());
        c.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_refused() {
        let err = serde_json::from_str::<BrokerConfig>(r#"{"data_dri": "x"}"#).unwrap_err();
        assert!(err.to_string().contains("data_dri"), "{err}");
    }

    #[test]
    fn log_config_in_kafka_units() {
        let c: BrokerConfig = serde_json::from_str(
            r#"{"default_topic_config": {"retention_ms": -1, "retention_bytes": 1000000,
                 "segment_bytes": 1048576, "durability": "group-commit",
                 "group_commit_max_delay_ms": 5}}"#,
        )
        .unwrap();
        let l = c.default_topic_config;
        assert_eq!(l.retention_age, None);
        assert_eq!(l.retention_bytes, Some(1_000_000));
        assert_eq!(l.segment_bytes, 1 << 20);
        assert!(matches!(
            l.durability,
            Durability::GroupCommit { max_delay, .. } if max_delay == Duration::from_millis(5)
        ));
    }

    #[test]
    fn bad_durability_is_refused() {
        let err = serde_json::from_str::<BrokerConfig>(
            r#"{"default_topic_config": {"durability": "sometimes"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
    }

    #[test]
    fn broker_wide_log_append_time() {
        let c: BrokerConfig = serde_json::from_str(
            r#"{"default_topic_config": {"message_timestamp_type": "LogAppendTime"}}"#,
        )
        .unwrap();
        assert!(c.default_topic_config.log_append_time);
        let err = serde_json::from_str::<BrokerConfig>(
            r#"{"default_topic_config": {"message_timestamp_type": "AppendTime"}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("AppendTime"), "{err}");
    }
}
