use bytes::{Buf, BufMut, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ResponseHeader},
    protocol::{Decodable, StrBytes},
};

use crate::common::{Client, start};

fn range(resp: &ApiVersionsResponse, api: ApiKey) -> Option<(i16, i16)> {
    resp.api_keys
        .iter()
        .find(|k| k.api_key == api as i16)
        .map(|k| (k.min_version, k.max_version))
}

#[tokio::test]
async fn api_versions_lists_what_we_implement() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    for version in 0..=3 {
        let mut req = ApiVersionsRequest::default();
        if version >= 3 {
            req.client_software_name = StrBytes::from_static_str("herald-test");
            req.client_software_version = StrBytes::from_static_str("1.0");
        }
        let resp = c.call(version, req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(range(&resp, ApiKey::Produce), Some((3, 9)));
        assert_eq!(range(&resp, ApiKey::Fetch), Some((4, 12)));
        assert_eq!(range(&resp, ApiKey::Metadata), Some((0, 12)));
        assert_eq!(range(&resp, ApiKey::ListOffsets), Some((1, 7)));
        assert_eq!(range(&resp, ApiKey::ApiVersions), Some((0, 3)));
        assert_eq!(range(&resp, ApiKey::InitProducerId), Some((0, 4)));
        assert_eq!(range(&resp, ApiKey::SaslHandshake), Some((0, 1)));
        assert_eq!(range(&resp, ApiKey::SaslAuthenticate), Some((0, 2)));
        assert_eq!(range(&resp, ApiKey::AddPartitionsToTxn), None);
    }
    broker.shutdown().await.unwrap();
}

/// librdkafka 2.0.x mis-parses optional tagged fields in ApiVersions v3: the response must
/// end with an empty tagged-field section, as Apache Kafka writes it.
#[tokio::test]
async fn api_versions_v3_writes_no_default_tagged_fields() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let id = c
        .send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
        .await;
    let mut frame = c.read_frame().await.unwrap();
    // Header v0 (ApiVersions responses never use v1): just the correlation id.
    assert_eq!(frame.get_i32(), id);
    assert_eq!(*frame.last().unwrap(), 0, "no top-level tagged fields");
    let resp = ApiVersionsResponse::decode(&mut frame, 3).unwrap();
    assert!(resp.supported_features.is_empty());
    assert!(resp.finalized_features.is_empty());
    assert_eq!(resp.finalized_features_epoch, -1);
    assert!(
        resp.api_keys
            .iter()
            .all(|k| k.unknown_tagged_fields.is_empty())
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn api_versions_of_an_unsupported_version_answers_v0_with_error_35() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    // v4 exists in Kafka but we do not advertise it; v77 exists nowhere.
    for version in [4i16, 77] {
        let mut raw = BytesMut::new();
        raw.put_i16(ApiKey::ApiVersions as i16);
        raw.put_i16(version);
        raw.put_i32(4242);
        raw.put_i16(-1); // null client id
        raw.put_u8(0); // empty tagged fields, as a v2 header would have
        raw.put_u8(0);
        let mut framed = BytesMut::new();
        framed.put_i32(raw.len() as i32);
        framed.extend_from_slice(&raw);
        c.send_raw(&framed).await;
        let mut frame = c.read_frame().await.expect("an answer, not a disconnect");
        let header = ResponseHeader::decode(&mut frame, 0).unwrap();
        assert_eq!(header.correlation_id, 4242);
        let resp = ApiVersionsResponse::decode(&mut frame, 0).unwrap();
        assert_eq!(resp.error_code, 35);
        assert_eq!(range(&resp, ApiKey::ApiVersions), Some((0, 3)));
        assert!(range(&resp, ApiKey::Produce).is_some());
    }
    // The connection stays usable: the client retries with a version we have.
    let resp = c.call(3, ApiVersionsRequest::default()).await;
    assert_eq!(resp.error_code, 0);
    broker.shutdown().await.unwrap();
}

fn frame(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut raw = BytesMut::new();
    raw.put_i16(api_key);
    raw.put_i16(version);
    raw.put_i32(1);
    raw.put_i16(-1);
    raw.extend_from_slice(body);
    let mut framed = BytesMut::new();
    framed.put_i32(raw.len() as i32);
    framed.extend_from_slice(&raw);
    framed.to_vec()
}

#[tokio::test]
async fn unknown_api_and_unsupported_version_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut healthy = Client::connect(broker.kafka_addr()).await;

    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&frame(9999, 0, &[])).await;
    assert!(c.is_closed().await, "unknown API key closes the connection");

    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&frame(ApiKey::Produce as i16, 2, &[0; 16]))
        .await;
    assert!(c.is_closed().await, "Produce v2 is below what we advertise");

    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&frame(ApiKey::EndTxn as i16, 1, &[0; 4])).await;
    assert!(c.is_closed().await, "an API we do not implement");

    let resp = healthy.call(1, MetadataRequest::default()).await;
    assert_eq!(resp.brokers.len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn malformed_frames_close_only_that_connection() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut healthy = Client::connect(broker.kafka_addr()).await;

    // A frame above max_frame_bytes (100 MiB by default): refused before reading it.
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&(200i32 << 20).to_be_bytes()).await;
    assert!(c.is_closed().await, "oversized frame");

    // Garbage: an HTTP request is a 1.2 GB "length".
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(c.is_closed().await, "HTTP garbage");

    // A negative length.
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&(-5i32).to_be_bytes()).await;
    assert!(c.is_closed().await, "negative length");

    // A frame whose body does not decode.
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&frame(ApiKey::Metadata as i16, 4, &[0xff, 0xff, 0xff]))
        .await;
    assert!(c.is_closed().await, "undecodable body");

    // A frame shorter than a request header.
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.send_raw(&[0, 0, 0, 3, 1, 2, 3]).await;
    assert!(c.is_closed().await, "too short for a header");

    // A truncated frame: the client promises 100 bytes, sends 10 and half-closes.
    let c = Client::connect(broker.kafka_addr()).await;
    let mut stream = c.into_stream();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(&100i32.to_be_bytes()).await.unwrap();
    stream.write_all(&[7u8; 10]).await.unwrap();
    stream.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let n = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut rest),
    )
    .await
    .expect("broker closes a truncated connection")
    .unwrap();
    assert_eq!(n, 0, "no response to a truncated frame");

    let resp = healthy.call(1, MetadataRequest::default()).await;
    assert_eq!(resp.brokers.len(), 1, "other connections keep working");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let a = c
        .send(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default())
        .await;
    let b = c
        .send(ApiKey::Metadata, 1, &MetadataRequest::default())
        .await;
    let d = c
        .send(ApiKey::ApiVersions, 2, &ApiVersionsRequest::default())
        .await;
    let _: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, 0, a).await;
    let _: kafka_protocol::messages::MetadataResponse = c.recv(ApiKey::Metadata, 1, b).await;
    let _: ApiVersionsResponse = c.recv(ApiKey::ApiVersions, 2, d).await;
    broker.shutdown().await.unwrap();
}

/// A client configured for SASL against this plaintext listener gets what Apache Kafka's
/// PLAINTEXT listener answers, ILLEGAL_SASL_STATE, and the connection stays usable.
#[tokio::test]
async fn sasl_on_the_plaintext_listener_is_answered_illegal_sasl_state() {
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    for version in 0..=1 {
        let mut req = SaslHandshakeRequest::default();
        req.mechanism = StrBytes::from_static_str("SCRAM-SHA-256");
        let resp = c.call(version, req).await;
        assert_eq!(resp.error_code, 34, "ILLEGAL_SASL_STATE at v{version}");
        assert!(resp.mechanisms.is_empty());
    }
    for version in 0..=2 {
        let mut req = SaslAuthenticateRequest::default();
        req.auth_bytes = bytes::Bytes::from_static(b"\0user\0secret");
        let resp = c.call(version, req).await;
        assert_eq!(resp.error_code, 34, "v{version}");
        let msg = resp
            .error_message
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(msg.contains("PLAINTEXT"), "{msg}");
    }
    let resp = c.call(1, MetadataRequest::default()).await;
    assert_eq!(resp.brokers.len(), 1, "the connection keeps working");
    broker.shutdown().await.unwrap();
}

/// On a SASL listener nothing but ApiVersions and the authentication is answered before
/// the client authenticates; an unknown mechanism gets UNSUPPORTED_SASL_MECHANISM with
/// the offered ones; a failed SCRAM exchange gets SASL_AUTHENTICATION_FAILED and closes.
#[tokio::test]
async fn a_sasl_listener_answers_nothing_before_authentication() {
    use herald_security::{Mechanism, ScramHash, UserStore};
    use kafka_protocol::messages::{SaslAuthenticateRequest, SaslHandshakeRequest};
    let dir = tempfile::tempdir().unwrap();
    let users = UserStore::open(dir.path()).unwrap();
    users
        .set_password("alice", b"pw", &[ScramHash::Sha256], 4096)
        .unwrap();
    let mut config = crate::common::config(dir.path());
    config.sasl = Some(herald_broker::SaslConfig {
        users,
        mechanisms: vec![Mechanism::Scram(ScramHash::Sha256)],
    });
    let broker = herald_broker::Broker::start(config).await.unwrap();

    let mut c = Client::connect(broker.kafka_addr()).await;
    let versions: ApiVersionsResponse = c.call(3, ApiVersionsRequest::default()).await;
    assert_eq!(versions.error_code, 0, "ApiVersions comes first");
    c.send(ApiKey::Metadata, 4, &MetadataRequest::default())
        .await;
    assert!(c.is_closed().await, "Metadata before authentication closes");

    let mut c = Client::connect(broker.kafka_addr()).await;
    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("PLAIN");
    let resp = c.call(1, hs).await;
    assert_eq!(resp.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let offered: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(offered, vec!["SCRAM-SHA-256"]);

    let mut hs = SaslHandshakeRequest::default();
    hs.mechanism = StrBytes::from_static_str("SCRAM-SHA-256");
    assert_eq!(c.call(1, hs).await.error_code, 0);
    let mut first = SaslAuthenticateRequest::default();
    first.auth_bytes = bytes::Bytes::from_static(b"n,,n=alice,r=abcdefgh");
    let resp = c.call(2, first).await;
    assert_eq!(resp.error_code, 0);
    let server_first = String::from_utf8(resp.auth_bytes.to_vec()).unwrap();
    let nonce = server_first
        .split(',')
        .next()
        .unwrap()
        .trim_start_matches("r=")
        .to_string();
    let mut last = SaslAuthenticateRequest::default();
    last.auth_bytes = bytes::Bytes::from(format!("c=biws,r={nonce},p=AAAA"));
    let started = std::time::Instant::now();
    let resp = c.call(2, last).await;
    assert_eq!(resp.error_code, 58, "SASL_AUTHENTICATION_FAILED");
    assert!(started.elapsed() >= herald_broker::FAILED_AUTHENTICATION_DELAY);
    assert!(c.is_closed().await, "the connection closes after a failure");
    broker.shutdown().await.unwrap();
}

/// Kafka's max.connections.per.ip: a connection beyond it is closed at once; the others
/// keep working, and a slot comes back when one closes.
#[tokio::test]
async fn connections_beyond_the_per_address_limit_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path());
    config.max_connections_per_ip = 2;
    let broker = herald_broker::Broker::start(config).await.unwrap();
    let mut a = Client::connect(broker.kafka_addr()).await;
    let mut b = Client::connect(broker.kafka_addr()).await;
    let _: ApiVersionsResponse = a.call(3, ApiVersionsRequest::default()).await;
    let _: ApiVersionsResponse = b.call(3, ApiVersionsRequest::default()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    assert!(c.is_closed().await, "the third from 127.0.0.1 is closed");
    let versions: ApiVersionsResponse = a.call(3, ApiVersionsRequest::default()).await;
    assert_eq!(versions.error_code, 0, "the first two still serve");
    drop(b);
    // The slot is given back once the broker sees the close.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut d = Client::connect(broker.kafka_addr()).await;
        d.send(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default())
            .await;
        let mut stream = d.into_stream();
        let mut buf = [0u8; 4];
        use tokio::io::AsyncReadExt;
        let answered = matches!(
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buf)).await,
            Ok(Ok(n)) if n > 0
        );
        if answered {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slot never came back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Kafka's max.connections: at the limit new clients wait in the backlog, unanswered,
/// until a connection closes.
#[tokio::test]
async fn at_the_connection_limit_new_clients_wait_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path());
    config.max_connections = 1;
    let broker = herald_broker::Broker::start(config).await.unwrap();
    let mut first = Client::connect(broker.kafka_addr()).await;
    let _: ApiVersionsResponse = first.call(3, ApiVersionsRequest::default()).await;
    let addr = broker.kafka_addr();
    let second = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let v: ApiVersionsResponse = c.call(3, ApiVersionsRequest::default()).await;
        v.error_code
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !second.is_finished(),
        "the second waits while the first is open"
    );
    drop(first);
    let code = tokio::time::timeout(std::time::Duration::from_secs(5), second)
        .await
        .expect("answered once the first closed")
        .unwrap();
    assert_eq!(code, 0);
}

/// Kafka's connections.max.idle.ms: a connection with no request for that long is
/// closed; one that keeps asking is not.
#[tokio::test]
async fn idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path());
    config.connections_max_idle_ms = 300;
    let broker = herald_broker::Broker::start(config).await.unwrap();
    let mut idle = Client::connect(broker.kafka_addr()).await;
    let mut busy = Client::connect(broker.kafka_addr()).await;
    let _: ApiVersionsResponse = idle.call(3, ApiVersionsRequest::default()).await;
    for _ in 0..6 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let v: ApiVersionsResponse = busy.call(3, ApiVersionsRequest::default()).await;
        assert_eq!(v.error_code, 0, "a connection in use stays open");
    }
    assert!(idle.is_closed().await, "600 ms without a request closes it");
}

/// Kafka's queued.max.request.bytes: requests being received share one budget, taken
/// before their buffers are allocated; a client that declares a large request and stalls
/// holds its share, later large requests wait until it goes, small ones still fit.
#[tokio::test]
async fn half_sent_requests_cannot_hold_more_than_the_request_budget() {
    use tokio::io::AsyncWriteExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path());
    config.max_frame_bytes = 1 << 20;
    config.queued_max_request_bytes = 1 << 20;
    let broker = herald_broker::Broker::start(config).await.unwrap();
    // 900 KiB declared, 100 KiB sent, then nothing.
    let mut stalled = Client::connect(broker.kafka_addr()).await.into_stream();
    stalled
        .write_all(&(900i32 * 1024).to_be_bytes())
        .await
        .unwrap();
    stalled.write_all(&vec![0u8; 100 * 1024]).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A small request still fits in what is left.
    let mut small = Client::connect(broker.kafka_addr()).await;
    let v: ApiVersionsResponse = small.call(3, ApiVersionsRequest::default()).await;
    assert_eq!(v.error_code, 0);
    // A 500 KiB request does not, until the stalled client goes.
    let addr = broker.kafka_addr();
    let large = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(&(500i32 * 1024).to_be_bytes()).await.unwrap();
        // Its body is only read once the budget has room.
        s.write_all(&vec![0u8; 500 * 1024]).await.unwrap();
        let mut buf = [0u8; 1];
        use tokio::io::AsyncReadExt;
        // A garbage body closes the connection once it is read.
        s.read(&mut buf).await.map(|n| n == 0).unwrap_or(true)
    });
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        !large.is_finished(),
        "the large request waits for the budget"
    );
    drop(stalled);
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), large)
        .await
        .expect("read once the stalled client's share came back")
        .unwrap();
    assert!(closed, "its (garbage) body was read and refused");
}
