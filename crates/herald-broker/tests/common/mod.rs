//! A raw Kafka-protocol test client built on kafka-protocol's client-side encoders, and
//! helpers to start a broker on 127.0.0.1:0 in a temporary directory.

#![allow(dead_code)] // why: each test binary uses a different subset of the helpers

use std::{net::SocketAddr, path::Path, time::Duration};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use herald_broker::{Broker, BrokerConfig, BrokerHandle};
use herald_format::records::{BatchBuilder, Compression, DecodedRecord, Header, decode_batch};
use kafka_protocol::{
    messages::{
        ApiKey, CreateTopicsRequest, FetchRequest, FetchResponse, MetadataRequest,
        MetadataResponse, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader,
        TopicName,
        create_topics_request::{CreatableTopic, CreatableTopicConfig},
        fetch_request::{FetchPartition, FetchTopic},
        fetch_response::PartitionData,
        metadata_request::MetadataRequestTopic,
        produce_request::{PartitionProduceData, TopicProduceData},
        produce_response::PartitionProduceResponse,
    },
    protocol::{Decodable, Encodable, Request, StrBytes},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Logs to the test output when `RUST_LOG` is set.
pub(crate) fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// A test configuration: port 0 on loopback, data in `dir`.
pub(crate) fn config(dir: &Path) -> BrokerConfig {
    BrokerConfig::new(dir, "127.0.0.1:0".parse().unwrap())
}

/// Starts a broker with the test configuration.
pub(crate) async fn start(dir: &Path) -> BrokerHandle {
    init_tracing();
    Broker::start(config(dir)).await.expect("broker starts")
}

/// Topic name helper.
pub(crate) fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// A raw Kafka connection.
pub(crate) struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    /// Connects to a broker.
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).unwrap();
        Self {
            stream,
            correlation_id: 0,
        }
    }

    /// The socket, for tests that misbehave at the TCP level.
    pub(crate) fn into_stream(self) -> TcpStream {
        self.stream
    }

    /// Encodes and sends a request; returns its correlation id.
    pub(crate) async fn send<R: Encodable>(&mut self, api: ApiKey, version: i16, req: &R) -> i32 {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("herald-test"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        req.encode(&mut body, version)
            .unwrap_or_else(|e| panic!("encode {api:?} v{version}: {e:#}"));
        let mut framed = BytesMut::with_capacity(body.len() + 4);
        framed.put_i32(body.len() as i32);
        framed.extend_from_slice(&body);
        self.send_raw(&framed).await;
        self.correlation_id
    }

    /// Writes bytes as they are.
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
        self.stream.flush().await.expect("flush");
    }

    /// Reads one response frame; `None` when the broker closed the connection.
    pub(crate) async fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).await.is_err() {
            return None;
        }
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).await.ok()?;
        Some(Bytes::from(buf))
    }

    /// Reads and decodes the response to request `correlation_id`.
    pub(crate) async fn recv<Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
    ) -> Resp {
        let mut frame = tokio::time::timeout(Duration::from_secs(30), self.read_frame())
            .await
            .expect("response within 30 s")
            .expect("connection open");
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        assert_eq!(
            header.correlation_id, correlation_id,
            "responses come in order"
        );
        let resp = Resp::decode(&mut frame, version)
            .unwrap_or_else(|e| panic!("decode {api:?} v{version} response: {e:#}"));
        assert_eq!(frame.remaining(), 0, "{api:?} v{version}: trailing bytes");
        resp
    }

    /// Sends a request and waits for its response.
    pub(crate) async fn call<R: Request>(&mut self, version: i16, req: R) -> R::Response {
        let api = ApiKey::try_from(R::KEY).unwrap();
        let id = self.send(api, version, &req).await;
        self.recv(api, version, id).await
    }

    /// Whether the broker closed this connection (within five seconds).
    pub(crate) async fn is_closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => true,
            Ok(Ok(_)) => panic!("unexpected bytes from the broker"),
            Err(_) => false,
        }
    }

    /// Creates a topic through CreateTopics v5 and asserts success.
    pub(crate) async fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
    ) {
        let mut t = CreatableTopic::default();
        t.name = topic_name(name);
        t.num_partitions = partitions;
        t.replication_factor = 1;
        t.configs = configs
            .iter()
            .map(|(k, v)| {
                let mut c = CreatableTopicConfig::default();
                c.name = StrBytes::from_string(k.to_string());
                c.value = Some(StrBytes::from_string(v.to_string()));
                c
            })
            .collect();
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 5000;
        let resp = self.call(5, req).await;
        assert_eq!(
            resp.topics[0].error_code, 0,
            "create {name}: {:?}",
            resp.topics[0].error_message
        );
    }

    /// Metadata for some topics (auto-create allowed).
    pub(crate) async fn metadata(&mut self, version: i16, topics: &[&str]) -> MetadataResponse {
        let mut req = MetadataRequest::default();
        req.topics = Some(
            topics
                .iter()
                .map(|t| {
                    let mut m = MetadataRequestTopic::default();
                    m.name = Some(topic_name(t));
                    m
                })
                .collect(),
        );
        req.allow_auto_topic_creation = true;
        self.call(version, req).await
    }

    /// Produces one batch to one partition and returns the partition response.
    pub(crate) async fn produce(
        &mut self,
        version: i16,
        acks: i16,
        topic: &str,
        partition: i32,
        records: Vec<u8>,
    ) -> PartitionProduceResponse {
        let req = produce_request(acks, topic, partition, records);
        let mut resp: ProduceResponse = self.call(version, req).await;
        resp.responses.remove(0).partition_responses.remove(0)
    }

    /// Fetches one partition.
    pub(crate) async fn fetch(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        offset: i64,
        max_wait_ms: i32,
        min_bytes: i32,
    ) -> PartitionData {
        let req = fetch_request(topic, partition, offset, max_wait_ms, min_bytes, 1 << 20);
        let mut resp: FetchResponse = self.call(version, req).await;
        assert_eq!(resp.error_code, 0);
        resp.responses.remove(0).partitions.remove(0)
    }
}

/// A Produce request for one batch to one partition.
pub(crate) fn produce_request(
    acks: i16,
    topic: &str,
    partition: i32,
    records: Vec<u8>,
) -> ProduceRequest {
    let mut p = PartitionProduceData::default();
    p.index = partition;
    p.records = Some(Bytes::from(records));
    let mut t = TopicProduceData::default();
    t.name = topic_name(topic);
    t.partition_data = vec![p];
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = 5000;
    req.topic_data = vec![t];
    req
}

/// A Fetch request for one partition.
pub(crate) fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    let mut p = FetchPartition::default();
    p.partition = partition;
    p.fetch_offset = offset;
    p.partition_max_bytes = partition_max_bytes;
    let mut t = FetchTopic::default();
    t.topic = topic_name(topic);
    t.partitions = vec![p];
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = min_bytes;
    req.max_bytes = 50 << 20;
    req.session_epoch = -1;
    req.topics = vec![t];
    req
}

/// One record to put in a test batch.
pub(crate) struct Rec<'a> {
    /// Timestamp (ms).
    pub(crate) ts: i64,
    /// Key.
    pub(crate) key: Option<&'a [u8]>,
    /// Value.
    pub(crate) value: Option<&'a [u8]>,
    /// Headers.
    pub(crate) headers: Vec<Header>,
}

/// A plain value record at `ts`.
pub(crate) fn rec(ts: i64, value: &[u8]) -> Rec<'_> {
    Rec {
        ts,
        key: None,
        value: Some(value),
        headers: Vec::new(),
    }
}

/// Builds one uncompressed batch.
pub(crate) fn batch(records: &[Rec<'_>]) -> Vec<u8> {
    batch_with(Compression::None, None, records)
}

/// Builds one batch with a compression and, optionally, (producer id, epoch, first seq).
pub(crate) fn batch_with(
    compression: Compression,
    producer: Option<(i64, i16, i32)>,
    records: &[Rec<'_>],
) -> Vec<u8> {
    let mut b = BatchBuilder::new(compression);
    if let Some((id, epoch, seq)) = producer {
        b.producer(id, epoch, seq);
    }
    for r in records {
        b.push(r.ts, r.key, r.value, &r.headers);
    }
    b.build().expect("batch builds")
}

/// Decodes every batch in a fetch response's records.
pub(crate) fn decode_all(mut bytes: &[u8]) -> Vec<DecodedRecord> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = herald_format::batch::BatchHeader::parse(bytes).unwrap();
        let len = header.total_len();
        out.extend(decode_batch(&bytes[..len]).unwrap().records);
        bytes = &bytes[len..];
    }
    out
}

/// Base offsets of the batches in a fetch response's records.
pub(crate) fn batch_offsets(mut bytes: &[u8]) -> Vec<i64> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let header = herald_format::batch::BatchHeader::parse(bytes).unwrap();
        out.push(header.base_offset);
        bytes = &bytes[header.total_len()..];
    }
    out
}
