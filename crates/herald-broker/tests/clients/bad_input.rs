//! Bad input over the socket, beyond what tests/broker/protocol.rs covers: a Produce cut
//! off mid-frame, a stalled half-sent frame, and every single-byte corruption of the
//! CRC-covered part of a batch. Each gets a Kafka error or a logged disconnect, other
//! connections keep working, and nothing is written.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use kafka_protocol::{
    messages::{ApiKey, MetadataRequest, RequestHeader},
    protocol::{Encodable, StrBytes},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Client, batch, produce_request, rec, start};

const CORRUPT_MESSAGE: i16 = 2;

/// A whole Produce v9 request frame, length prefix included.
fn produce_frame(records: Vec<u8>) -> Vec<u8> {
    let version = 9;
    let req = produce_request(-1, "t", 0, records);
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Produce as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(StrBytes::from_static_str("bad-input"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Produce.request_header_version(version))
        .unwrap();
    req.encode(&mut body, version).unwrap();
    let mut framed = BytesMut::new();
    framed.put_i32(body.len() as i32);
    framed.extend_from_slice(&body);
    framed.to_vec()
}

#[tokio::test]
async fn produce_cut_off_mid_frame_writes_nothing_and_others_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let addr = broker.kafka_addr();
    let mut healthy = Client::connect(addr).await;
    healthy.create_topic("t", 1, &[]).await;
    let frame = produce_frame(batch(&[rec(1, b"never")]));

    // A stalled client: half a frame, then silence, with the connection left open.
    let mut stalled = Client::connect(addr).await.into_stream();
    stalled.write_all(&frame[..frame.len() / 2]).await.unwrap();

    // Cut off at every interesting point: inside the length, header, body and batch.
    for cut in [2, 6, 20, frame.len() / 2, frame.len() - 1] {
        let mut s = Client::connect(addr).await.into_stream();
        s.write_all(&frame[..cut]).await.unwrap();
        s.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .unwrap_or_else(|_| panic!("cut at {cut}: the broker closes the connection"))
            .unwrap_or(0);
        assert_eq!(n, 0, "cut at {cut}: no response to a partial request");
    }

    // While the stalled client still holds its half frame, others are served.
    let resp = healthy.call(1, MetadataRequest::default()).await;
    assert_eq!(resp.brokers.len(), 1);
    let p = healthy.fetch(12, "t", 0, 0, 0, 0).await;
    assert_eq!(p.high_watermark, 0, "nothing was written");
    let r = healthy
        .produce(9, -1, "t", 0, batch(&[rec(2, b"ok")]))
        .await;
    assert_eq!((r.error_code, r.base_offset), (0, 0));
    drop(stalled);
    broker.shutdown().await.unwrap();
}

/// Where the batch CRC starts; it covers everything from the attributes (byte 21) on.
const CRC_AT: usize = 17;

#[tokio::test]
async fn every_single_byte_corruption_under_the_crc_is_corrupt_message() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let good = batch(&[rec(1, b"first"), rec(2, b"second"), rec(3, b"third")]);
    // xorshift64: a fixed sequence of corruptions, so a failure reproduces.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for at in CRC_AT..good.len() {
        let mut bad = good.clone();
        let flip = (next() % 255 + 1) as u8; // never 0: the byte always changes
        bad[at] ^= flip;
        let r = c.produce(9, -1, "t", 0, bad).await;
        assert_eq!(
            r.error_code, CORRUPT_MESSAGE,
            "byte {at} xor {flip:#04x}: {:?}",
            r.error_message
        );
    }
    // The magic byte and the batch length are outside the CRC but checked all the same.
    for (at, flip) in [(16usize, 0x01u8), (16, 0xff), (11, 0x01), (8, 0x80)] {
        let mut bad = good.clone();
        bad[at] ^= flip;
        let r = c.produce(9, -1, "t", 0, bad).await;
        assert_ne!(r.error_code, 0, "byte {at} xor {flip:#04x} is refused");
    }
    let p = c.fetch(12, "t", 0, 0, 0, 0).await;
    assert_eq!(p.high_watermark, 0, "no corrupt batch was written");
    let r = c.produce(9, -1, "t", 0, good).await;
    assert_eq!(
        (r.error_code, r.base_offset),
        (0, 0),
        "the connection still works"
    );
    broker.shutdown().await.unwrap();
}

/// confluent-kafka configured for SASL_PLAINTEXT against the plaintext listener: the
/// client fails at once with Kafka's answer (ILLEGAL_SASL_STATE, which librdkafka words
/// "Request not valid in current SASL state"), not with a hang.
#[test]
fn a_sasl_client_on_the_plaintext_listener_is_told_so() {
    let Some(py) = crate::support::python() else {
        return;
    };
    let broker = crate::support::TestBroker::start();
    let bootstrap = broker.bootstrap();
    let args = ["--bootstrap", &bootstrap, "--protocol", "SASL_PLAINTEXT"];
    let Some(result) = crate::support::run_script(&py, "wrong_listener.py", &args) else {
        return;
    };
    let errors = result["errors"].to_string();
    assert!(
        errors.contains("Request not valid in current SASL state"),
        "{errors}"
    );
}
