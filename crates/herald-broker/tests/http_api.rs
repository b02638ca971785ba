//! The HTTP API against a broker started on port 0 in a temporary directory: health and
//! readiness, metrics after produce and fetch, topic CRUD, REST produce and consume, and
//! bad requests that get a 4xx JSON error and change nothing.

mod common;
// The metrics after produce, fetch and an offset commit.
#[path = "http_api/metrics.rs"]
mod metrics;
// REST key partitioning against kcat.
#[path = "http_api/kcat.rs"]
mod kcat;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use herald_broker::{
    BrokerHandle,
    http::{HttpConfig, HttpServer},
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

/// A broker with its HTTP API.
struct Server {
    _dir: TempDir,
    broker: Option<BrokerHandle>,
    http: Option<HttpServer>,
    base: String,
    client: reqwest::Client,
}

impl Server {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let http = HttpServer::bind(HttpConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let broker = common::start(dir.path()).await;
        http.set_ready(broker.broker().clone());
        let base = format!("http://{}", http.local_addr());
        Self {
            _dir: dir,
            broker: Some(broker),
            http: Some(http),
            base,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let resp = self.client.get(self.url(path)).send().await.unwrap();
        decode(resp).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        decode(resp).await
    }

    async fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> (StatusCode, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        decode(resp).await
    }

    async fn create_topic(&self, name: &str, partitions: i32) {
        let (status, body) = self
            .post(
                "/api/v1/topics",
                json!({"name": name, "partitions": partitions}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    async fn high_watermarks(&self, topic: &str) -> Vec<i64> {
        let (status, body) = self.get(&format!("/api/v1/topics/{topic}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["high_watermark"].as_i64().unwrap())
            .collect()
    }

    async fn stop(mut self) {
        self.http.take().unwrap().shutdown().await;
        self.broker.take().unwrap().shutdown().await.unwrap();
    }
}

async fn decode(resp: reqwest::Response) -> (StatusCode, Value) {
    let status = resp.status();
    let text = resp.text().await.unwrap();
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, value)
}

/// Asserts a JSON error with the given status and code.
fn assert_error(got: &(StatusCode, Value), status: StatusCode, code: u64) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error_code"].as_u64(), Some(code), "{}", got.1);
    assert!(
        !got.1["message"].as_str().unwrap_or_default().is_empty(),
        "{}",
        got.1
    );
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_is_503_until_the_broker_is_attached_and_after_shutdown_begins() {
    let dir = tempfile::tempdir().unwrap();
    let http = HttpServer::bind(HttpConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let base = format!("http://{}", http.local_addr());
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let client = client.clone();
        let url = format!("{base}{path}");
        async move { client.get(url).send().await.unwrap().status() }
    };
    assert_eq!(status("/health").await, StatusCode::OK);
    assert_eq!(status("/ready").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        status("/api/v1/topics").await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let broker = common::start(dir.path()).await;
    http.set_ready(broker.broker().clone());
    assert_eq!(status("/ready").await, StatusCode::OK);
    assert_eq!(status("/api/v1/topics").await, StatusCode::OK);
    http.begin_shutdown();
    assert_eq!(status("/ready").await, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(status("/health").await, StatusCode::OK);
    http.shutdown().await;
    broker.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_listed_described_grown_and_deleted() {
    let s = Server::start().await;
    let (status, created) = s
        .post(
            "/api/v1/topics",
            json!({"name": "orders", "partitions": 2, "configs": {"retention.ms": 60000}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["partition_count"], 2);
    assert_eq!(created["configs"]["retention.ms"]["value"], "60000");
    assert_eq!(created["configs"]["retention.ms"]["source"], "topic");
    assert_eq!(created["configs"]["cleanup.policy"]["source"], "default");

    let again = s.post("/api/v1/topics", json!({"name": "orders"})).await;
    assert_error(&again, StatusCode::CONFLICT, 40901);

    let (_, list) = s.get("/api/v1/topics").await;
    let names: Vec<&str> = list["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"]);

    let (_, described) = s.get("/api/v1/topics/orders").await;
    let parts = described["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[1]["partition"], 1);
    assert_eq!(parts[1]["log_start_offset"], 0);
    assert_eq!(parts[1]["high_watermark"], 0);
    assert!(parts[1]["size_bytes"].is_u64());

    let (status, grown) = s
        .post("/api/v1/topics/orders/partitions", json!({"count": 4}))
        .await;
    assert_eq!(status, StatusCode::OK, "{grown}");
    assert_eq!(grown["partition_count"], 4);
    let shrink = s
        .post("/api/v1/topics/orders/partitions", json!({"count": 3}))
        .await;
    assert_error(&shrink, StatusCode::BAD_REQUEST, 40003);

    let resp = s
        .client
        .delete(s.url("/api/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_error(
        &s.get("/api/v1/topics/orders").await,
        StatusCode::NOT_FOUND,
        40401,
    );
    let resp = s
        .client
        .delete(s.url("/api/v1/topics/orders"))
        .send()
        .await
        .unwrap();
    assert_error(&decode(resp).await, StatusCode::NOT_FOUND, 40401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_records_come_back_decoded() {
    let s = Server::start().await;
    s.create_topic("events", 3).await;
    let (status, produced) = s
        .post(
            "/api/v1/topics/events/records",
            json!({"records": [
                {"key": "order-1", "value": "placed", "headers": {"source": "test"}, "timestamp": 1_700_000_000_000i64},
                {"key": "order-1", "value": {"total": 42}},
                {"partition": 2, "value_base64": "AP8=", "headers": [{"key": "h", "value_base64": "/w=="}, {"key": "h", "value": null}]},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{produced}");
    let p1 = herald_format::partitioner::partition_for_key(b"order-1", 3) as i64;
    let offsets = produced["offsets"].as_array().unwrap();
    assert_eq!(offsets[0], json!({"partition": p1, "offset": 0}));
    assert_eq!(offsets[1], json!({"partition": p1, "offset": 1}));
    assert_eq!(offsets[2]["partition"], 2);

    let (status, read) = s
        .get(&format!(
            "/api/v1/topics/events/partitions/{p1}/records?offset=earliest"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{read}");
    let records = read["records"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["offset"], 0);
    assert_eq!(records[0]["timestamp"], 1_700_000_000_000i64);
    assert_eq!(records[0]["key"], "order-1");
    assert_eq!(records[0]["value"], "placed");
    assert_eq!(
        records[0]["headers"],
        json!([{"key": "source", "value": "test"}])
    );
    assert_eq!(records[1]["value"], r#"{"total":42}"#);
    assert_eq!(read["next_offset"], 2);
    assert_eq!(read["high_watermark"], 2);

    // A fetch from inside a batch returns only the records from that offset on.
    let (_, mid) = s
        .get(&format!(
            "/api/v1/topics/events/partitions/{p1}/records?offset=1"
        ))
        .await;
    assert_eq!(mid["records"].as_array().unwrap().len(), 1);
    assert_eq!(mid["records"][0]["offset"], 1);

    let (_, bin) = s.get("/api/v1/topics/events/partitions/2/records").await;
    let rec = &bin["records"][0];
    assert_eq!(rec["value_base64"], "AP8=");
    assert_eq!(rec["key"], Value::Null);
    assert_eq!(
        rec["headers"],
        json!([{"key": "h", "value_base64": "/w=="}, {"key": "h", "value": null}])
    );

    // Records without key or partition go round-robin.
    s.create_topic("spread", 2).await;
    let (_, spread) = s
        .post(
            "/api/v1/topics/spread/records",
            json!({"records": [{"value": "a"}, {"value": "b"}, {"value": "c"}, {"value": "d"}]}),
        )
        .await;
    let mut partitions: Vec<i64> = spread["offsets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["partition"].as_i64().unwrap())
        .collect();
    partitions.sort();
    assert_eq!(partitions, [0, 0, 1, 1]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_returns_as_soon_as_a_record_arrives() {
    let s = Server::start().await;
    s.create_topic("poll", 1).await;
    let url = s.url("/api/v1/topics/poll/partitions/0/records?offset=0&wait_ms=10000");
    let client = s.client.clone();
    let started = std::time::Instant::now();
    let waiter = tokio::spawn(async move { decode(client.get(url).send().await.unwrap()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiter.is_finished(),
        "the poll waits while there is nothing"
    );
    let (status, _) = s
        .post(
            "/api/v1/topics/poll/records",
            json!({"records": [{"value": "wake"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = waiter.await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["records"][0]["value"], "wake");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "woke on the append"
    );

    // With nothing to read, wait_ms bounds the wait.
    let started = std::time::Instant::now();
    let (_, empty) = s
        .get("/api/v1/topics/poll/partitions/0/records?offset=latest&wait_ms=200")
        .await;
    assert_eq!(empty["records"], json!([]));
    assert_eq!(empty["next_offset"], 1);
    assert!(started.elapsed() >= Duration::from_millis(200));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_and_change_nothing() {
    let s = Server::start().await;
    s.create_topic("safe", 2).await;
    let produce = "/api/v1/topics/safe/records";

    let bad_json = s
        .post_raw(produce, "application/json", b"{not json".to_vec())
        .await;
    assert_error(&bad_json, StatusCode::BAD_REQUEST, 40001);
    let not_json = s.post_raw(produce, "text/plain", b"{}".to_vec()).await;
    assert_error(&not_json, StatusCode::UNSUPPORTED_MEDIA_TYPE, 41501);
    let unknown_field = s
        .post(produce, json!({"records": [{"value": "x", "colour": 1}]}))
        .await;
    assert_error(&unknown_field, StatusCode::BAD_REQUEST, 40001);
    let empty = s.post(produce, json!({"records": []})).await;
    assert_error(&empty, StatusCode::BAD_REQUEST, 40001);
    // The second record is bad: the first is not written either.
    let half_bad = s
        .post(
            produce,
            json!({"records": [{"value": "ok"}, {"value_base64": "%%%"}]}),
        )
        .await;
    assert_error(&half_bad, StatusCode::BAD_REQUEST, 40001);
    let both = s
        .post(
            produce,
            json!({"records": [{"key": "a", "key_base64": "YQ=="}]}),
        )
        .await;
    assert_error(&both, StatusCode::BAD_REQUEST, 40001);
    let no_partition = s
        .post(
            produce,
            json!({"records": [{"value": "ok"}, {"value": "x", "partition": 9}]}),
        )
        .await;
    assert_error(&no_partition, StatusCode::NOT_FOUND, 40402);
    // A second HTTP server on the same broker with a small body limit, so that the whole
    // body is sent before the server answers (a client still writing a large body when the
    // server answers and closes may see a reset instead of the answer).
    let mut small = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    small.max_body_bytes = 1024;
    let small = HttpServer::bind(small).await.unwrap();
    small.set_ready(s.broker.as_ref().unwrap().broker().clone());
    let resp = reqwest::Client::new()
        .post(format!(
            "http://{}/api/v1/topics/safe/records",
            small.local_addr()
        ))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"records": [{{"value": "{}"}}]}}"#,
            "x".repeat(2048)
        ))
        .send()
        .await
        .unwrap();
    let too_big = decode(resp).await;
    small.shutdown().await;
    assert_error(&too_big, StatusCode::PAYLOAD_TOO_LARGE, 41301);
    let unknown_topic = s
        .post(
            "/api/v1/topics/nope/records",
            json!({"records": [{"value": "x"}]}),
        )
        .await;
    assert_error(&unknown_topic, StatusCode::NOT_FOUND, 40401);
    assert_eq!(
        s.high_watermarks("safe").await,
        [0, 0],
        "nothing was written"
    );

    let created = s
        .post(
            "/api/v1/topics",
            json!({"name": "tiny", "configs": {"max.message.bytes": 1024}}),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let over = s
        .post(
            "/api/v1/topics/tiny/records",
            json!({"records": [{"value": "x".repeat(2048)}]}),
        )
        .await;
    assert_error(&over, StatusCode::PAYLOAD_TOO_LARGE, 40005);
    assert_eq!(s.high_watermarks("tiny").await, [0]);

    let bad_name = s.post("/api/v1/topics", json!({"name": "no spaces"})).await;
    assert_error(&bad_name, StatusCode::BAD_REQUEST, 40003);
    let bad_config = s
        .post(
            "/api/v1/topics",
            json!({"name": "t2", "configs": {"retention.hours": "1"}}),
        )
        .await;
    assert_error(&bad_config, StatusCode::BAD_REQUEST, 40003);
    let bad_count = s
        .post("/api/v1/topics", json!({"name": "t3", "partitions": 0}))
        .await;
    assert_error(&bad_count, StatusCode::BAD_REQUEST, 40003);
    let wrong_type = s.post("/api/v1/topics", json!({"name": 5})).await;
    assert_error(&wrong_type, StatusCode::BAD_REQUEST, 40001);
    let (_, list) = s.get("/api/v1/topics").await;
    assert_eq!(list["topics"].as_array().unwrap().len(), 2, "{list}");

    let consume = "/api/v1/topics/safe/partitions/0/records";
    assert_error(
        &s.get(&format!("{consume}?offset=5")).await,
        StatusCode::BAD_REQUEST,
        40004,
    );
    assert_error(
        &s.get(&format!("{consume}?offset=-1")).await,
        StatusCode::BAD_REQUEST,
        40004,
    );
    assert_error(
        &s.get(&format!("{consume}?offset=soon")).await,
        StatusCode::BAD_REQUEST,
        40002,
    );
    assert_error(
        &s.get(&format!("{consume}?wait_ms=lots")).await,
        StatusCode::BAD_REQUEST,
        40002,
    );
    assert_error(
        &s.get(&format!("{consume}?wait_ms=3600000")).await,
        StatusCode::BAD_REQUEST,
        40002,
    );
    assert_error(
        &s.get(&format!("{consume}?max_bytes=0")).await,
        StatusCode::BAD_REQUEST,
        40002,
    );
    assert_error(
        &s.get(&format!("{consume}?colour=red")).await,
        StatusCode::BAD_REQUEST,
        40002,
    );
    assert_error(
        &s.get("/api/v1/topics/safe/partitions/7/records").await,
        StatusCode::NOT_FOUND,
        40402,
    );
    assert_error(
        &s.get("/api/v1/topics/safe/partitions/x/records").await,
        StatusCode::BAD_REQUEST,
        40002,
    );
    assert_error(
        &s.get("/api/v1/nothing").await,
        StatusCode::NOT_FOUND,
        40404,
    );
    assert_error(
        &s.get("/api/v1/groups/nobody").await,
        StatusCode::NOT_FOUND,
        40403,
    );
    let put = s.client.put(s.url("/api/v1/topics")).send().await.unwrap();
    assert_error(&decode(put).await, StatusCode::METHOD_NOT_ALLOWED, 40501);
    s.stop().await;
}

#[tokio::test]
async fn pages_in_a_browser_cannot_reach_the_http_api() {
    let s = Server::start().await;
    s.create_topic("kept", 1).await;
    let topics = s.url("/api/v1/topics");
    // A cross-site form post, and a no-cors fetch without a body or type.
    let (status, body) = s
        .post_raw(
            "/api/v1/topics",
            "text/plain",
            br#"{"name": "form"}"#.to_vec(),
        )
        .await;
    assert_error(&(status, body), StatusCode::UNSUPPORTED_MEDIA_TYPE, 41501);
    let resp = s
        .client
        .post(s.url("/api/v1/topics/kept/records"))
        .send()
        .await
        .unwrap();
    assert_error(
        &decode(resp).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        41501,
    );
    // A DNS-rebinding page listing or deleting topics.
    for req in [
        s.client.get(&topics),
        s.client.delete(s.url("/api/v1/topics/kept")),
    ] {
        let resp = req
            .header("host", "rebound.evil.example:8080")
            .send()
            .await
            .unwrap();
        assert_error(&decode(resp).await, StatusCode::FORBIDDEN, 40301);
    }
    // A cross-origin page, even with a JSON body.
    let resp = s
        .client
        .post(&topics)
        .header("origin", "http://evil.example")
        .json(&json!({"name": "fetched"}))
        .send()
        .await
        .unwrap();
    assert_error(&decode(resp).await, StatusCode::FORBIDDEN, 40301);
    let resp = s
        .client
        .request(reqwest::Method::OPTIONS, s.url("/api/v1/topics/kept"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    // Nothing changed.
    let (_, listed) = s.get("/api/v1/topics").await;
    let names: Vec<&str> = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["kept"]);
    assert_eq!(s.high_watermarks("kept").await, vec![0]);
    // Tools and pages on localhost go on working.
    let resp = s
        .client
        .get(&topics)
        .header("host", "localhost")
        .header("origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    s.stop().await;
}

#[tokio::test]
async fn allowed_host_names_are_answered() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HttpConfig::new("127.0.0.1:0".parse().unwrap());
    config.allowed_hosts = vec!["herald.internal".into()];
    let http = HttpServer::bind(config).await.unwrap();
    let broker = common::start(dir.path()).await;
    http.set_ready(broker.broker().clone());
    let client = reqwest::Client::new();
    let url = format!("http://{}/api/v1/topics", http.local_addr());
    for (host, want) in [
        ("herald.internal:8080", StatusCode::OK),
        ("HERALD.internal", StatusCode::OK),
        ("other.internal", StatusCode::FORBIDDEN),
    ] {
        let resp = client.get(&url).header("host", host).send().await.unwrap();
        assert_eq!(resp.status(), want, "{host}");
    }
    http.shutdown().await;
    broker.shutdown().await.unwrap();
}

/// A client configured for TLS against the plaintext Kafka listener: its ClientHello is
/// named as such (one WARN line per client address a minute), counted, and the
/// connection closed; the broker goes on serving.
#[tokio::test]
async fn a_tls_client_on_the_plaintext_kafka_listener_is_counted_and_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = Server::start().await;
    let kafka = s.broker.as_ref().unwrap().kafka_addr();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(kafka).await.unwrap();
        let mut hello = vec![
            0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
        ];
        hello.extend_from_slice(&[0x42; 197]);
        stream.write_all(&hello).await.unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest))
            .await
            .expect("the broker closes the connection")
            .unwrap_or(0);
        assert_eq!(n, 0, "nothing is answered to a TLS handshake");
    }
    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let count: f64 = text
        .lines()
        .find(|l| l.starts_with("herald_kafka_wrong_listener_total{kind=\"TLS\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no wrong-listener counter in\n{text}"));
    assert!(count >= 3.0, "{count}");
    s.create_topic("still-serving", 1).await;
    s.stop().await;
}
