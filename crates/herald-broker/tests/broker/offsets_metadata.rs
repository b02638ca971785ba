use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse,
    list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic},
    metadata_request::MetadataRequestTopic,
};

use crate::common::{Client, batch, rec, start, topic_name};

async fn list_offsets(
    c: &mut Client,
    version: i16,
    topic: &str,
    timestamps: &[i64],
) -> Vec<(i16, i64, i64)> {
    let mut t = ListOffsetsTopic::default();
    t.name = topic_name(topic);
    t.partitions = timestamps
        .iter()
        .map(|ts| {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = 0;
            p.timestamp = *ts;
            p
        })
        .collect();
    let mut req = ListOffsetsRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.topics = vec![t];
    let resp: ListOffsetsResponse = c.call(version, req).await;
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| (p.error_code, p.offset, p.timestamp))
        .collect()
}

#[tokio::test]
async fn list_offsets_by_timestamp() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    // Offsets 0..3 at 1000, 2000, 3000; offsets 3..5 at 5000 and 4000 (out of order).
    c.produce(
        9,
        -1,
        "t",
        0,
        batch(&[rec(1000, b"a"), rec(2000, b"b"), rec(3000, b"c")]),
    )
    .await;
    c.produce(9, -1, "t", 0, batch(&[rec(5000, b"d"), rec(4000, b"e")]))
        .await;
    for version in [1, 4, 7] {
        let got = list_offsets(&mut c, version, "t", &[-2, -1, 0, 2000, 2500, 4500, 6000]).await;
        assert_eq!(
            got,
            vec![
                (0, 0, -1),
                (0, 5, -1),
                (0, 0, 1000),
                (0, 1, 2000),
                (0, 2, 3000),
                (0, 3, 5000),
                (0, -1, -1),
            ],
            "ListOffsets v{version}"
        );
    }
    let max = list_offsets(&mut c, 7, "t", &[-3]).await;
    assert_eq!(max, vec![(0, 3, 5000)], "max timestamp (-3)");
    let unknown = list_offsets(&mut c, 7, "nope", &[-1]).await;
    assert_eq!(unknown[0].0, 3);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn list_offsets_on_an_empty_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let got = list_offsets(&mut c, 7, "t", &[-2, -1, -3, 0]).await;
    assert_eq!(got, vec![(0, 0, -1), (0, 0, -1), (0, -1, -1), (0, -1, -1)]);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn metadata_auto_creates_topics_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let addr = broker.kafka_addr();
    let mut c = Client::connect(addr).await;

    // v1 has no allow flag: creation is allowed.
    let m = c.metadata(1, &["auto-v1"]).await;
    assert_eq!(m.topics[0].error_code, 0);
    assert_eq!(m.topics[0].partitions.len(), 1);
    assert_eq!(m.brokers[0].port, i32::from(addr.port()));
    assert_eq!(m.brokers[0].host.as_str(), "127.0.0.1");
    assert_eq!(m.controller_id.0, 1);

    // v4+ honours allow_auto_topic_creation.
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.name = Some(topic_name("not-created"));
    req.topics = Some(vec![t]);
    req.allow_auto_topic_creation = false;
    let m: MetadataResponse = c.call(9, req).await;
    assert_eq!(m.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");

    let m = c.metadata(12, &["auto-v12", "bad name!"]).await;
    assert_eq!(m.topics[0].error_code, 0);
    assert!(!m.topics[0].topic_id.is_nil(), "v10+ carries the topic id");
    assert_eq!(m.topics[1].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    assert!(m.cluster_id.is_some());
    let id = m.topics[0].topic_id;

    // v12 may name a topic by id alone.
    let mut req = MetadataRequest::default();
    let mut t = MetadataRequestTopic::default();
    t.topic_id = id;
    t.name = None;
    req.topics = Some(vec![t]);
    let m: MetadataResponse = c.call(12, req).await;
    assert_eq!(m.topics[0].name.as_ref().unwrap().as_str(), "auto-v12");

    // All topics: null list (v1+), empty list in v0.
    let mut req = MetadataRequest::default();
    req.topics = None;
    let m: MetadataResponse = c.call(1, req).await;
    let mut names: Vec<_> = m
        .topics
        .iter()
        .map(|t| t.name.clone().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["auto-v1", "auto-v12"]);
    let mut req = MetadataRequest::default();
    req.topics = Some(vec![]);
    let m: MetadataResponse = c.call(0, req.clone()).await;
    assert_eq!(m.topics.len(), 2);
    let m: MetadataResponse = c.call(4, req).await;
    assert_eq!(
        m.topics.len(),
        0,
        "an empty list means no topics from v1 on"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn metadata_without_auto_create_configured() {
    let dir = tempfile::tempdir().unwrap();
    crate::common::init_tracing();
    let mut config = crate::common::config(dir.path());
    config.auto_create_topics = false;
    let broker = herald_broker::Broker::start(config).await.unwrap();
    let mut c = Client::connect(broker.kafka_addr()).await;
    let m = c.metadata(9, &["x"]).await;
    assert_eq!(m.topics[0].error_code, 3);
    assert!(broker.broker().topics().get("x").is_none());
    broker.shutdown().await.unwrap();
}
