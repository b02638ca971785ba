use std::time::{Duration, Instant};

use herald_broker::{Acks, Broker, NewTopic};

use crate::common::{Client, batch, decode_all, rec, start};

#[tokio::test]
async fn restart_keeps_topics_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("orders", 3, &[("retention.bytes", "1000000")])
        .await;
    for p in 0..3 {
        for i in 0..3 {
            let r = c
                .produce(
                    9,
                    -1,
                    "orders",
                    p,
                    batch(&[rec(i, format!("p{p}-{i}").as_bytes())]),
                )
                .await;
            assert_eq!(r.error_code, 0);
        }
    }
    let id = broker.broker().topics().get("orders").unwrap().id();
    let cluster = broker.broker().cluster_id().to_string();
    broker.shutdown().await.unwrap();

    let broker = start(dir.path()).await;
    assert_eq!(
        broker.broker().cluster_id(),
        cluster,
        "the cluster id is kept"
    );
    let mut c = Client::connect(broker.kafka_addr()).await;
    let m = c.metadata(12, &["orders"]).await;
    assert_eq!(m.topics[0].error_code, 0);
    assert_eq!(m.topics[0].partitions.len(), 3);
    assert_eq!(m.topics[0].topic_id, id);
    for p in 0..3 {
        let fetched = c.fetch(12, "orders", p, 0, 0, 0).await;
        let values: Vec<_> = decode_all(fetched.records.as_deref().unwrap())
            .into_iter()
            .map(|r| String::from_utf8(r.value.unwrap()).unwrap())
            .collect();
        assert_eq!(
            values,
            [format!("p{p}-0"), format!("p{p}-1"), format!("p{p}-2")]
        );
    }
    let r = c
        .produce(9, -1, "orders", 0, batch(&[rec(9, b"after")]))
        .await;
    assert_eq!(r.base_offset, 3, "offsets continue");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_ends_long_polls_and_refuses_new_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let addr = broker.kafka_addr();
    let mut c = Client::connect(addr).await;
    c.create_topic("t", 1, &[]).await;
    let poll = tokio::spawn(async move { c.fetch(12, "t", 0, 0, 30_000, 1).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    broker.shutdown().await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a long poll does not hold up shutdown"
    );
    let p = poll.await.unwrap();
    assert_eq!(p.error_code, 0, "the request in flight was answered");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn embedded_api_produces_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    crate::common::init_tracing();
    let handle = Broker::start(crate::common::config(dir.path()))
        .await
        .unwrap();
    let broker = handle.broker().clone();
    broker
        .create_topic(NewTopic {
            name: "e".into(),
            partitions: 1,
            configs: Default::default(),
        })
        .await
        .unwrap();
    let produced = broker
        .produce("e", 0, batch(&[rec(1, b"a"), rec(2, b"b")]), Acks::All)
        .await
        .unwrap();
    assert_eq!(produced.base_offset, 0);
    assert!(!produced.duplicate);
    let read = broker.read("e", 0, 1, 1 << 20).await.unwrap();
    assert_eq!(read.high_watermark, 2);
    assert_eq!(decode_all(&read.bytes).len(), 2);
    assert!(
        broker
            .produce("nope", 0, batch(&[rec(1, b"a")]), Acks::Leader)
            .await
            .is_err()
    );
    handle.shutdown().await.unwrap();
}
