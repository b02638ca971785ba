//! The broker's internal events and the metrics they update.
//!
//! Every event is a small struct whose `emit()` updates its metrics and writes its log
//! line together (vector's instrumentation rule), and is emitted once per request or per
//! batch, never per record. Metrics go through the [`metrics`] facade; [`install`] puts a
//! Prometheus recorder behind it and `GET /metrics` renders that recorder.
//!
//! | metric | kind | labels |
//! | --- | --- | --- |
//! | `herald_produce_bytes_total`, `herald_produce_records_total` | counter | `topic` |
//! | `herald_fetch_bytes_total`, `herald_fetch_records_total` | counter | `topic` |
//! | `herald_kafka_requests_total` | counter | `api` |
//! | `herald_kafka_request_duration_seconds` | histogram | `api` |
//! | `herald_kafka_connections_opened_total` | counter | |
//! | `herald_kafka_connections_open` | gauge | |
//! | `herald_partition_high_watermark`, `herald_partition_log_start_offset`, `herald_partition_size_bytes` | gauge | `topic`, `partition` |
//! | `herald_consumer_group_committed_offset` | gauge | `group`, `topic`, `partition` |
//! | `herald_consumer_group_lag_messages`, `herald_consumer_group_lag_seconds` | gauge | `group`, `topic`, `partition` |
//!
//! Every gauge is set when `/metrics` is scraped, from the state at that moment, and a
//! gauge that was not set for a while disappears (the recorder's idle timeout): that is
//! how the series of a deleted topic or group go away. A new gauge must therefore also be
//! refreshed on scrape.
//!
//! Fetched bytes and records count whole batches as returned, including the records of
//! the first batch that precede the fetch offset.

use std::{
    collections::HashMap,
    sync::{
        Mutex, OnceLock,
        atomic::{AtomicI64, Ordering},
    },
    time::{Duration, Instant},
};

use herald_format::batch::BatchHeader;
use herald_log::AppendInfo;
use kafka_protocol::messages::{ApiKey, fetch_response::FetchableTopicResponse};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;

/// Gauges not set for this long are dropped from `/metrics`.
const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(2);

/// Histogram buckets of request latency, in seconds.
const LATENCY_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static OPEN_CONNECTIONS: AtomicI64 = AtomicI64::new(0);

/// Installs the process-wide Prometheus recorder behind the [`metrics`] facade (once;
/// later calls return the same handle). If another recorder was installed first, Herald's
/// metrics go to that one and the returned handle renders nothing of them.
pub(crate) fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
                .set_buckets_for_metric(
                    Matcher::Full("herald_kafka_request_duration_seconds".into()),
                    &LATENCY_BUCKETS,
                )
                .expect("latency buckets are not empty");
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            if let Err(e) = metrics::set_global_recorder(recorder) {
                tracing::warn!(error = %e,
                    "another metrics recorder is installed; /metrics will not show Herald's metrics");
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "herald_kafka_authentications_total",
        Unit::Count,
        "SASL authentications on the Kafka listener, by mechanism and result."
    );
    describe_counter!(
        "herald_kafka_wrong_listener_total",
        Unit::Count,
        "Connections that spoke TLS or asked for SASL on the plaintext Kafka listener, by kind."
    );
    describe_counter!(
        "herald_produce_bytes_total",
        Unit::Bytes,
        "Record batch bytes appended by producers."
    );
    describe_counter!(
        "herald_produce_records_total",
        Unit::Count,
        "Records appended by producers."
    );
    describe_counter!(
        "herald_fetch_bytes_total",
        Unit::Bytes,
        "Record batch bytes returned to consumers."
    );
    describe_counter!(
        "herald_fetch_records_total",
        Unit::Count,
        "Records returned to consumers."
    );
    describe_counter!(
        "herald_kafka_requests_total",
        Unit::Count,
        "Kafka requests handled, by API."
    );
    describe_histogram!(
        "herald_kafka_request_duration_seconds",
        Unit::Seconds,
        "Time to handle a Kafka request, by API."
    );
    describe_counter!(
        "herald_kafka_connections_opened_total",
        Unit::Count,
        "Kafka client connections accepted."
    );
    describe_gauge!(
        "herald_kafka_connections_open",
        Unit::Count,
        "Kafka client connections open now."
    );
    describe_gauge!(
        "herald_partition_high_watermark",
        Unit::Count,
        "One past the last offset of the partition."
    );
    describe_gauge!(
        "herald_partition_log_start_offset",
        Unit::Count,
        "First offset still in the partition."
    );
    describe_gauge!(
        "herald_partition_size_bytes",
        Unit::Bytes,
        "Bytes of segment data of the partition."
    );
    describe_gauge!(
        "herald_consumer_group_committed_offset",
        Unit::Count,
        "Committed offset of a consumer group."
    );
    describe_gauge!(
        "herald_consumer_group_lag_messages",
        Unit::Count,
        "High watermark minus the committed offset."
    );
    describe_gauge!(
        "herald_consumer_group_lag_seconds",
        Unit::Seconds,
        "Age of the first record the group has not consumed; 0 when caught up."
    );
}

/// Renders every metric in Prometheus text format, after refreshing nothing: callers set
/// the scrape-time gauges first (see the HTTP `/metrics` handler).
pub(crate) fn render() -> String {
    let handle = install();
    handle.run_upkeep();
    handle.render()
}

/// A produced batch was written to a partition.
#[derive(Debug)]
pub(crate) struct BatchAppended<'a> {
    /// Topic written to.
    pub(crate) topic: &'a str,
    /// Partition written to.
    pub(crate) partition: i32,
    /// What the log reported.
    pub(crate) info: &'a AppendInfo,
}

impl<'a> BatchAppended<'a> {
    pub(crate) fn new(topic: &'a str, partition: i32, info: &'a AppendInfo) -> Self {
        Self {
            topic,
            partition,
            info,
        }
    }

    pub(crate) fn emit(&self) {
        let records = self.info.last_offset + 1 - self.info.base_offset;
        tracing::trace!(
            topic = self.topic,
            partition = self.partition,
            base_offset = self.info.base_offset,
            records,
            bytes = self.info.bytes,
            "batch appended"
        );
        let topic = self.topic.to_string();
        counter!("herald_produce_bytes_total", "topic" => topic.clone())
            .increment(self.info.bytes as u64);
        counter!("herald_produce_records_total", "topic" => topic).increment(records);
    }
}

/// Record batches were returned to a consumer (one event per topic of a response).
#[derive(Debug)]
pub(crate) struct RecordsFetched<'a> {
    /// Topic read from.
    pub(crate) topic: &'a str,
    /// Bytes of whole batches returned.
    pub(crate) bytes: u64,
    /// Records in those batches.
    pub(crate) records: u64,
}

impl RecordsFetched<'_> {
    /// Counts the batches of a Kafka Fetch response, one event per topic that returned
    /// any bytes.
    pub(crate) fn emit_response(topics: &[FetchableTopicResponse]) {
        for t in topics {
            let (mut bytes, mut records) = (0u64, 0u64);
            for p in &t.partitions {
                if let Some(data) = &p.records {
                    bytes += data.len() as u64;
                    records += count_records(data);
                }
            }
            if bytes > 0 {
                RecordsFetched {
                    topic: &t.topic.0,
                    bytes,
                    records,
                }
                .emit();
            }
        }
    }

    pub(crate) fn emit(&self) {
        tracing::trace!(
            topic = self.topic,
            bytes = self.bytes,
            records = self.records,
            "records fetched"
        );
        let topic = self.topic.to_string();
        counter!("herald_fetch_bytes_total", "topic" => topic.clone()).increment(self.bytes);
        counter!("herald_fetch_records_total", "topic" => topic).increment(self.records);
    }
}

/// Sums the record counts of the batch headers in `bytes` (whole batches as a log read
/// returns them); stops at anything that is not a complete header.
pub(crate) fn count_records(mut bytes: &[u8]) -> u64 {
    let mut records = 0u64;
    while let Ok(header) = BatchHeader::parse(bytes) {
        let len = header.total_len();
        if len == 0 || len > bytes.len() {
            break;
        }
        records += u64::try_from(header.record_count).unwrap_or(0);
        bytes = &bytes[len..];
    }
    records
}

/// Times one Kafka request from the moment its frame was read; emits
/// `KafkaRequestCompleted` when dropped, so that a request that fails still counts.
#[derive(Debug)]
pub(crate) struct RequestTimer {
    api: Option<ApiKey>,
    started: Instant,
}

impl RequestTimer {
    /// Starts timing the request in `frame` (its first two bytes are the API key).
    pub(crate) fn start(frame: &[u8]) -> Self {
        let api = frame
            .get(..2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .and_then(|key| ApiKey::try_from(key).ok());
        Self {
            api,
            started: Instant::now(),
        }
    }
}

impl Drop for RequestTimer {
    fn drop(&mut self) {
        KafkaRequestCompleted {
            // The variant name is Kafka's name of the API (Produce, Fetch, ...).
            api: self
                .api
                .map_or_else(|| "Unknown".to_string(), |k| format!("{k:?}")),
            elapsed: self.started.elapsed(),
        }
        .emit();
    }
}

/// A Kafka request was answered (or failed).
#[derive(Debug)]
pub(crate) struct KafkaRequestCompleted {
    /// API name, as Kafka spells it (`Produce`, `Fetch`, ...).
    pub(crate) api: String,
    /// Time from reading the frame to the end of handling.
    pub(crate) elapsed: Duration,
}

impl KafkaRequestCompleted {
    pub(crate) fn emit(&self) {
        tracing::trace!(api = %self.api, elapsed_us = self.elapsed.as_micros() as u64, "request completed");
        counter!("herald_kafka_requests_total", "api" => self.api.clone()).increment(1);
        histogram!("herald_kafka_request_duration_seconds", "api" => self.api.clone())
            .record(self.elapsed.as_secs_f64());
    }
}

/// An open Kafka connection; emits `KafkaConnectionClosed` when dropped.
#[derive(Debug)]
pub(crate) struct ConnectionGuard {
    peer: std::net::SocketAddr,
}

impl ConnectionGuard {
    /// Emits `KafkaConnectionOpened` and returns the guard of the connection.
    pub(crate) fn open(peer: std::net::SocketAddr) -> Self {
        let open = OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::trace!(%peer, open, "connection opened");
        counter!("herald_kafka_connections_opened_total").increment(1);
        Self { peer }
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let open = OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed) - 1;
        tracing::trace!(peer = %self.peer, open, "connection closed");
    }
}

/// How often one client address is told about in the log for one kind of wrong-listener
/// attempt: clients retry every few hundred ms, the operator needs one line.
const WRONG_LISTENER_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// A client spoke a protocol this listener does not (`kind`: "TLS", "SASL"): counted in
/// `herald_kafka_wrong_listener_total{kind}`, and `message` logged at WARN at most once
/// a minute per client address and kind (at DEBUG otherwise).
pub(crate) fn wrong_listener(peer: std::net::SocketAddr, kind: &'static str, message: &str) {
    counter!("herald_kafka_wrong_listener_total", "kind" => kind).increment(1);
    if warn_due(Some(peer.ip()), kind) {
        tracing::warn!(%peer, kind, "{message}");
    } else {
        tracing::debug!(%peer, kind, "{message}");
    }
}

/// Whether a WARN about `kind` for `ip` is due: once a minute per address and kind (the
/// rest go to DEBUG), as clients retry every few hundred ms and the operator needs one line.
fn warn_due(ip: Option<std::net::IpAddr>, kind: &'static str) -> bool {
    /// When each (address, kind) was last logged at WARN.
    type LastWarned = HashMap<(Option<std::net::IpAddr>, &'static str), Instant>;
    static LAST: Mutex<Option<LastWarned>> = Mutex::new(None);
    let now = Instant::now();
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    let seen = last.get_or_insert_with(HashMap::new);
    if seen.len() > 4096 {
        seen.retain(|_, at| now.duration_since(*at) < WRONG_LISTENER_LOG_INTERVAL);
    }
    match seen.get(&(ip, kind)) {
        Some(at) if now.duration_since(*at) < WRONG_LISTENER_LOG_INTERVAL => false,
        _ => {
            seen.insert((ip, kind), now);
            true
        }
    }
}

/// A connection limit was reached (`limit`: `max_connections`, new clients wait;
/// `max_connections_per_ip`, the connection is closed):
/// `herald_kafka_connection_limit_total{limit}`, and `message` at WARN once a minute.
pub(crate) fn connection_limit(ip: Option<std::net::IpAddr>, limit: &'static str, message: &str) {
    counter!("herald_kafka_connection_limit_total", "limit" => limit).increment(1);
    if warn_due(ip, limit) {
        tracing::warn!(limit, "{message}");
    } else {
        tracing::debug!(limit, "{message}");
    }
}

/// The request budget is spent and a connection waits to read a request:
/// `herald_kafka_request_budget_waits_total`, at WARN once a minute.
pub(crate) fn request_budget_spent(bytes: usize) {
    counter!("herald_kafka_request_budget_waits_total").increment(1);
    let message = "requests being received hold all of queued_max_request_bytes: connections wait \
                   before reading more (slow or stalled clients sending large requests?)";
    if warn_due(None, "queued_max_request_bytes") {
        tracing::warn!(queued_max_request_bytes = bytes, "{message}");
    } else {
        tracing::debug!(queued_max_request_bytes = bytes, "{message}");
    }
}

/// A connection idle for `connections_max_idle_ms` was closed:
/// `herald_kafka_idle_connections_closed_total`.
pub(crate) fn idle_connection_closed(peer: std::net::SocketAddr) {
    counter!("herald_kafka_idle_connections_closed_total").increment(1);
    tracing::debug!(%peer, "closing an idle connection (connections_max_idle_ms)");
}

/// A SASL authentication finished: `herald_kafka_authentications_total{mechanism, result}`.
pub(crate) fn authentication(mechanism: &'static str, ok: bool) {
    let result = if ok { "success" } else { "failure" };
    counter!("herald_kafka_authentications_total", "mechanism" => mechanism, "result" => result)
        .increment(1);
}

/// Scrape-time gauge: connections open now.
pub(crate) fn refresh_connection_gauge() {
    gauge!("herald_kafka_connections_open").set(OPEN_CONNECTIONS.load(Ordering::Relaxed) as f64);
}

/// Scrape-time state of one partition.
#[derive(Debug)]
pub(crate) struct PartitionState<'a> {
    /// Topic.
    pub(crate) topic: &'a str,
    /// Partition index.
    pub(crate) partition: i32,
    /// First offset in the log.
    pub(crate) log_start_offset: i64,
    /// One past the last offset.
    pub(crate) high_watermark: i64,
    /// Bytes of segment data.
    pub(crate) size_bytes: u64,
}

impl PartitionState<'_> {
    pub(crate) fn emit(&self) {
        let labels = [
            ("topic", self.topic.to_string()),
            ("partition", self.partition.to_string()),
        ];
        gauge!("herald_partition_high_watermark", &labels).set(self.high_watermark as f64);
        gauge!("herald_partition_log_start_offset", &labels).set(self.log_start_offset as f64);
        gauge!("herald_partition_size_bytes", &labels).set(self.size_bytes as f64);
    }
}

/// Scrape-time position of a consumer group on one partition.
#[derive(Debug)]
pub(crate) struct GroupLag<'a> {
    /// Group id.
    pub(crate) group: &'a str,
    /// Topic.
    pub(crate) topic: &'a str,
    /// Partition index.
    pub(crate) partition: i32,
    /// Committed offset.
    pub(crate) committed_offset: i64,
    /// Records between the committed offset and the high watermark.
    pub(crate) lag_messages: i64,
    /// Age of the first unconsumed record; 0 when caught up.
    pub(crate) lag_seconds: f64,
}

impl GroupLag<'_> {
    pub(crate) fn emit(&self) {
        let labels = [
            ("group", self.group.to_string()),
            ("topic", self.topic.to_string()),
            ("partition", self.partition.to_string()),
        ];
        gauge!("herald_consumer_group_committed_offset", &labels).set(self.committed_offset as f64);
        gauge!("herald_consumer_group_lag_messages", &labels).set(self.lag_messages as f64);
        gauge!("herald_consumer_group_lag_seconds", &labels).set(self.lag_seconds);
    }
}

/// An HTTP request was denied by the ACLs: `herald_authorization_denied_total{api="HTTP"}`.
pub(crate) fn http_authorization_denied(
    principal: &str,
    operation: herald_security::Operation,
    resource_type: herald_security::ResourceType,
    resource: &str,
) {
    counter!("herald_authorization_denied_total", "api" => "HTTP", "resource_type" => resource_kind(resource_type))
        .increment(1);
    tracing::info!(%principal, %operation, resource_type = resource_kind(resource_type), %resource, api = "HTTP", "authorization denied");
}

fn resource_kind(resource_type: herald_security::ResourceType) -> &'static str {
    match resource_type {
        herald_security::ResourceType::Topic => "topic",
        herald_security::ResourceType::Group => "group",
        herald_security::ResourceType::Cluster => "cluster",
        herald_security::ResourceType::TransactionalId => "transactional_id",
    }
}

/// A request was denied by the ACLs: `herald_authorization_denied_total{api, resource_type}`
/// and one INFO line naming who, what and which resource (never a secret), as Kafka's
/// authorizer logger does.
pub(crate) fn authorization_denied(
    api: ApiKey,
    principal: &str,
    peer: std::net::IpAddr,
    operation: herald_security::Operation,
    resource_type: herald_security::ResourceType,
    resource: &str,
) {
    let kind = resource_kind(resource_type);
    let api = format!("{api:?}");
    counter!("herald_authorization_denied_total", "api" => api.clone(), "resource_type" => kind)
        .increment(1);
    tracing::info!(
        %principal, host = %peer, %operation, resource_type = kind, %resource, %api,
        "authorization denied"
    );
}

#[cfg(test)]
mod tests {
    use herald_format::records::{BatchBuilder, Compression};

    use super::*;

    #[test]
    fn count_records_walks_every_batch_header() {
        let a = BatchBuilder::new(Compression::None)
            .push(1, None, Some(b"a"), &[])
            .push(2, None, Some(b"b"), &[])
            .build()
            .unwrap();
        let b = BatchBuilder::new(Compression::Lz4)
            .push(3, None, Some(b"c"), &[])
            .build()
            .unwrap();
        let mut both = a.clone();
        both.extend_from_slice(&b);
        assert_eq!(count_records(&both), 3);
        assert_eq!(
            count_records(&both[..both.len() - 1]),
            2,
            "a torn last batch is skipped"
        );
        assert_eq!(count_records(&[]), 0);
    }

    #[test]
    fn api_names_are_kafkas() {
        let produce = 0i16.to_be_bytes();
        assert_eq!(RequestTimer::start(&produce).api, Some(ApiKey::Produce));
        assert_eq!(format!("{:?}", ApiKey::Produce), "Produce");
        assert_eq!(RequestTimer::start(&[0x7f, 0x7f]).api, None);
    }
}
