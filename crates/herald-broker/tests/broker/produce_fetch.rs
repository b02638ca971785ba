use std::time::{Duration, Instant};

use herald_format::records::{Compression, Header};
use kafka_protocol::messages::{ApiKey, FetchResponse, MetadataRequest, ProduceResponse};

use crate::common::{
    Client, Rec, batch, batch_offsets, batch_with, decode_all, fetch_request, produce_request, rec,
    start,
};

#[tokio::test]
async fn produce_fetch_round_trip_with_keys_headers_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("orders", 1, &[]).await;
    let records = [
        Rec {
            ts: 1_700_000_000_000,
            key: Some(b"order-1"),
            value: Some(b"placed"),
            headers: vec![
                Header::new("trace", b"abc".to_vec()),
                Header::new("trace", b"dup-key".to_vec()),
                Header::null("empty"),
            ],
        },
        Rec {
            ts: 1_700_000_000_500,
            key: None,
            value: None,
            headers: vec![],
        },
    ];
    let mut expected_offset = 0;
    // Every advertised Produce version against a spread of Fetch versions.
    for (produce_v, compression) in [
        (3, Compression::None),
        (5, Compression::Gzip),
        (7, Compression::Zstd),
        (8, Compression::Lz4),
        (9, Compression::Snappy),
    ] {
        let r = c
            .produce(
                produce_v,
                -1,
                "orders",
                0,
                batch_with(compression, None, &records),
            )
            .await;
        assert_eq!(
            r.error_code, 0,
            "produce v{produce_v}: {:?}",
            r.error_message
        );
        assert_eq!(r.base_offset, expected_offset);
        if produce_v >= 5 {
            assert_eq!(r.log_start_offset, 0);
        }
        expected_offset += 2;
    }
    for fetch_v in [4, 7, 11, 12] {
        let p = c.fetch(fetch_v, "orders", 0, 0, 0, 0).await;
        assert_eq!(p.error_code, 0);
        assert_eq!(p.high_watermark, 10);
        assert_eq!(p.last_stable_offset, 10);
        let got = decode_all(p.records.as_deref().unwrap());
        assert_eq!(got.len(), 10, "fetch v{fetch_v}");
        for (i, r) in got.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
            let src = &records[i % 2];
            assert_eq!(r.timestamp, src.ts);
            assert_eq!(r.key.as_deref(), src.key);
            assert_eq!(r.value.as_deref(), src.value);
            assert_eq!(r.headers, src.headers, "duplicate header keys survive");
        }
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_mid_batch_returns_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let five: Vec<_> = (0..5).map(|i| rec(1000 + i, b"v")).collect();
    assert_eq!(c.produce(7, -1, "t", 0, batch(&five)).await.base_offset, 0);
    assert_eq!(c.produce(7, -1, "t", 0, batch(&five)).await.base_offset, 5);
    for fetch_v in [4, 12] {
        let p = c.fetch(fetch_v, "t", 0, 7, 0, 0).await;
        let bytes = p.records.as_deref().unwrap();
        assert_eq!(
            batch_offsets(bytes),
            vec![5],
            "the batch holding offset 7, whole"
        );
        let offsets: Vec<i64> = decode_all(bytes).iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![5, 6, 7, 8, 9]);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn long_poll_waits_then_returns_on_produce() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let addr = broker.kafka_addr();
    let started = Instant::now();
    let fetcher = tokio::spawn(async move {
        let mut f = Client::connect(addr).await;
        let p = f.fetch(11, "t", 0, 0, 10_000, 1).await;
        (p, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!fetcher.is_finished(), "the fetch waits for data");
    c.produce(9, -1, "t", 0, batch(&[rec(1, b"wake up")])).await;
    let (p, waited) = fetcher.await.unwrap();
    assert!(waited >= Duration::from_millis(300));
    assert!(
        waited < Duration::from_secs(5),
        "woken by the append, not the timeout"
    );
    assert_eq!(decode_all(p.records.as_deref().unwrap()).len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn long_poll_without_data_returns_empty_after_max_wait() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let started = Instant::now();
    let p = c.fetch(12, "t", 0, 0, 400, 1).await;
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert_eq!(p.error_code, 0);
    assert!(p.records.unwrap().is_empty());
    assert_eq!(p.high_watermark, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn acks_zero_gets_no_response_but_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    c.send(
        ApiKey::Produce,
        9,
        &produce_request(0, "t", 0, batch(&[rec(1, b"fire and forget")])),
    )
    .await;
    // The next response on the connection belongs to the next request.
    let id = c
        .send(ApiKey::Metadata, 1, &MetadataRequest::default())
        .await;
    let _: kafka_protocol::messages::MetadataResponse = c.recv(ApiKey::Metadata, 1, id).await;
    let p = c.fetch(12, "t", 0, 0, 2000, 1).await;
    assert_eq!(decode_all(p.records.as_deref().unwrap()).len(), 1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn invalid_acks_unknown_topic_and_batch_count_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let one = || batch(&[rec(1, b"x")]);
    assert_eq!(c.produce(9, 2, "t", 0, one()).await.error_code, 21);
    assert_eq!(c.produce(9, 1, "nope", 0, one()).await.error_code, 3);
    assert_eq!(c.produce(9, 1, "t", 5, one()).await.error_code, 3);
    let mut two = one();
    two.extend(one());
    let r = c.produce(9, 1, "t", 0, two.clone()).await;
    assert_eq!(r.error_code, 87, "INVALID_RECORD for v8+");
    assert!(
        r.error_message
            .unwrap()
            .contains("exactly one record batch")
    );
    assert_eq!(
        c.produce(7, 1, "t", 0, two).await.error_code,
        2,
        "CORRUPT_MESSAGE before v8"
    );
    let p = c.fetch(12, "t", 0, 0, 0, 0).await;
    assert_eq!(p.high_watermark, 0, "nothing was written");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_crc_is_corrupt_message_and_nothing_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let mut b = batch(&[rec(1, b"precious")]);
    let last = b.len() - 1;
    b[last] ^= 0xff;
    for version in [3, 9] {
        let r = c.produce(version, -1, "t", 0, b.clone()).await;
        assert_eq!(r.error_code, 2, "CORRUPT_MESSAGE");
        assert_eq!(r.base_offset, -1);
    }
    // Truncated batch bytes are corrupt too.
    let r = c.produce(9, -1, "t", 0, b[..20].to_vec()).await;
    assert_eq!(r.error_code, 2);
    let p = c.fetch(12, "t", 0, 0, 0, 0).await;
    assert_eq!(p.high_watermark, 0);
    assert!(p.records.unwrap().is_empty());
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn max_message_bytes_is_enforced_per_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("small", 1, &[("max.message.bytes", "200")])
        .await;
    let big = vec![b'x'; 300];
    let r = c.produce(9, -1, "small", 0, batch(&[rec(1, &big)])).await;
    assert_eq!(r.error_code, 10, "MESSAGE_TOO_LARGE");
    assert!(r.error_message.unwrap().contains("max.message.bytes"));
    let r = c.produce(9, -1, "small", 0, batch(&[rec(1, b"ok")])).await;
    assert_eq!(r.error_code, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn fetch_errors_and_response_size_limits() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 2, &[]).await;
    let value = vec![b'v'; 1000];
    for p in 0..2 {
        c.produce(9, -1, "t", p, batch(&[rec(1, &value)])).await;
        c.produce(9, -1, "t", p, batch(&[rec(2, &value)])).await;
    }
    assert_eq!(
        c.fetch(12, "t", 0, 3, 0, 0).await.error_code,
        1,
        "past the end"
    );
    assert_eq!(c.fetch(12, "t", 0, -1, 0, 0).await.error_code, 1);
    assert_eq!(c.fetch(12, "missing", 0, 0, 0, 0).await.error_code, 3);
    assert_eq!(c.fetch(12, "t", 0, 2, 0, 0).await.records.unwrap().len(), 0);

    // Both partitions in one request; the response limit is smaller than one batch.
    let mut req = fetch_request("t", 0, 0, 0, 0, 1 << 20);
    let mut second = req.topics[0].partitions[0].clone();
    second.partition = 1;
    req.topics[0].partitions.push(second);
    req.max_bytes = 100;
    let resp: FetchResponse = c.call(12, req.clone()).await;
    let parts = &resp.responses[0].partitions;
    assert_eq!(
        batch_offsets(parts[0].records.as_deref().unwrap()),
        vec![0],
        "the first batch comes whole even above max_bytes"
    );
    assert!(parts[1].records.as_ref().unwrap().is_empty());
    assert_eq!(parts[1].high_watermark, 2);
    // With room for everything, the partition limit still applies per partition.
    req.max_bytes = 1 << 20;
    for p in &mut req.topics[0].partitions {
        p.partition_max_bytes = 1500;
    }
    let resp: FetchResponse = c.call(12, req).await;
    for p in &resp.responses[0].partitions {
        assert_eq!(batch_offsets(p.records.as_deref().unwrap()), vec![0]);
    }
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn incremental_fetch_sessions_are_declined() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    // A client asking for a new session (epoch 0) gets a full response and session 0.
    let mut req = fetch_request("t", 0, 0, 0, 0, 1 << 20);
    req.session_epoch = 0;
    let resp: FetchResponse = c.call(12, req.clone()).await;
    assert_eq!(resp.error_code, 0);
    assert_eq!(resp.session_id, 0);
    assert_eq!(resp.responses.len(), 1);
    // An incremental request on a session we never created.
    req.session_id = 1234;
    req.session_epoch = 1;
    let resp: FetchResponse = c.call(12, req).await;
    assert_eq!(resp.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn produce_to_many_partitions_in_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 3, &[]).await;
    let mut req = produce_request(-1, "t", 0, batch(&[rec(1, b"a")]));
    for p in 1..3 {
        let mut d = req.topic_data[0].partition_data[0].clone();
        d.index = p;
        req.topic_data[0].partition_data.push(d);
    }
    let resp: ProduceResponse = c.call(8, req).await;
    let parts = &resp.responses[0].partition_responses;
    assert_eq!(parts.len(), 3);
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p.index, i as i32);
        assert_eq!(p.error_code, 0);
        assert_eq!(p.base_offset, 0);
    }
    broker.shutdown().await.unwrap();
}

/// Produces are pipelined per connection (the next is written while earlier ones wait for
/// their fsync): responses still come back in request order with the offsets the order
/// of the requests gives, a request of another kind between them sees them answered, and
/// every partition of a multi-partition request keeps its own bytes (the batches are split
/// out of the request frame without copying).
#[tokio::test]
async fn pipelined_produces_are_written_and_answered_in_request_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("p", 3, &[]).await;
    let value = |req: usize, part: i32| format!("request {req} partition {part}").into_bytes();
    // Ten produce requests to all three partitions and one Metadata in the middle, sent
    // without waiting for any answer.
    let mut sent = Vec::new();
    for r in 0..10usize {
        if r == 5 {
            let id = c
                .send(ApiKey::Metadata, 9, &MetadataRequest::default())
                .await;
            sent.push((None, id));
        }
        let mut req = produce_request(-1, "p", 0, batch(&[rec(1, &value(r, 0))]));
        for p in 1..3 {
            let mut d = req.topic_data[0].partition_data[0].clone();
            d.index = p;
            d.records = Some(batch(&[rec(1, &value(r, p)), rec(2, &value(r, p))]).into());
            req.topic_data[0].partition_data.push(d);
        }
        let id = c.send(ApiKey::Produce, 8, &req).await;
        sent.push((Some(r), id));
    }
    for (r, id) in sent {
        let Some(r) = r else {
            let _: kafka_protocol::messages::MetadataResponse =
                c.recv(ApiKey::Metadata, 9, id).await;
            continue;
        };
        let resp: ProduceResponse = c.recv(ApiKey::Produce, 8, id).await;
        let parts = &resp.responses[0].partition_responses;
        assert_eq!(parts.len(), 3);
        for p in parts {
            assert_eq!(p.error_code, 0, "request {r} partition {}", p.index);
            let per_request = if p.index == 0 { 1 } else { 2 };
            assert_eq!(
                p.base_offset,
                (r * per_request) as i64,
                "partition {}",
                p.index
            );
        }
    }
    for p in 0..3 {
        let data = c.fetch(12, "p", p, 0, 0, 1).await;
        let values: Vec<Vec<u8>> = decode_all(data.records.as_deref().unwrap())
            .into_iter()
            .map(|rec| rec.value.unwrap().to_vec())
            .collect();
        let expected: Vec<Vec<u8>> = (0..10)
            .flat_map(|r| std::iter::repeat_n(value(r, p), if p == 0 { 1 } else { 2 }))
            .collect();
        assert_eq!(values, expected, "partition {p}");
    }
    broker.shutdown().await.unwrap();
}
