//! `/metrics` after produce and fetch (over HTTP and Kafka) and an offset commit: the counters, the scrape-time
//! gauges and consumer-group lag in messages and seconds.

use kafka_protocol::messages::{
    OffsetCommitRequest,
    offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
};
use reqwest::StatusCode;
use serde_json::json;

use super::{Server, common, now_ms};

/// Finds the value of one series in Prometheus text.
fn series(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?;
        let (labels_part, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let (l, v) = r.split_once('}')?;
                (l, v)
            }
            None if rest.starts_with(' ') => ("", rest),
            None => return None,
        };
        labels
            .iter()
            .all(|(k, v)| labels_part.contains(&format!("{k}=\"{v}\"")))
            .then(|| value.trim().parse().ok())?
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_traffic_offsets_and_group_lag() {
    let s = Server::start().await;
    s.create_topic("metered", 1).await;
    let old = now_ms() - 120_000;
    let (status, _) = s
        .post(
            "/api/v1/topics/metered/records",
            json!({"records": [{"value": "a", "timestamp": old}, {"value": "b", "timestamp": old}, {"value": "c"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = s.get("/api/v1/topics/metered/partitions/0/records").await;
    assert_eq!(read["records"].as_array().unwrap().len(), 3);

    // A Kafka client commits offset 1 for a group without members.
    let kafka_addr = s.broker.as_ref().unwrap().kafka_addr();
    let mut kafka = common::Client::connect(kafka_addr).await;
    let mut part = OffsetCommitRequestPartition::default();
    part.partition_index = 0;
    part.committed_offset = 1;
    let mut topic = OffsetCommitRequestTopic::default();
    topic.name = common::topic_name("metered");
    topic.partitions = vec![part];
    let mut commit = OffsetCommitRequest::default();
    commit.group_id = kafka_protocol::messages::GroupId("billing".to_string().into());
    commit.generation_id_or_member_epoch = -1;
    commit.topics = vec![topic];
    let resp = kafka.call(2, commit).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);

    // Kafka produce and fetch count too: two more records, then all five fetched.
    let ts = now_ms();
    let batch = common::batch(&[common::rec(ts, b"d"), common::rec(ts, b"e")]);
    let produced = kafka.produce(9, -1, "metered", 0, batch).await;
    assert_eq!((produced.error_code, produced.base_offset), (0, 3));
    let fetched = kafka.fetch(11, "metered", 0, 0, 0, 0).await;
    assert_eq!(
        common::decode_all(fetched.records.as_ref().unwrap()).len(),
        5
    );

    let text = s
        .client
        .get(s.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let topic = [("topic", "metered")];
    assert_eq!(
        series(&text, "herald_produce_records_total", &topic),
        Some(5.0),
        "{text}"
    );
    assert!(series(&text, "herald_produce_bytes_total", &topic).unwrap() > 0.0);
    assert_eq!(
        series(&text, "herald_fetch_records_total", &topic),
        Some(8.0)
    );
    assert!(series(&text, "herald_fetch_bytes_total", &topic).unwrap() > 0.0);
    let part = [("topic", "metered"), ("partition", "0")];
    assert_eq!(
        series(&text, "herald_partition_high_watermark", &part),
        Some(5.0)
    );
    assert_eq!(
        series(&text, "herald_partition_log_start_offset", &part),
        Some(0.0)
    );
    // At least: other tests of this binary may share the process-wide recorder.
    for api in ["OffsetCommit", "Produce", "Fetch"] {
        let api = [("api", api)];
        assert!(series(&text, "herald_kafka_requests_total", &api).unwrap() >= 1.0);
        let timed = series(&text, "herald_kafka_request_duration_seconds_count", &api);
        assert!(timed.unwrap() >= 1.0);
    }
    assert!(series(&text, "herald_kafka_connections_opened_total", &[]).unwrap() >= 1.0);
    assert!(series(&text, "herald_kafka_connections_open", &[]).unwrap() >= 1.0);
    let group = [
        ("group", "billing"),
        ("topic", "metered"),
        ("partition", "0"),
    ];
    assert_eq!(
        series(&text, "herald_consumer_group_committed_offset", &group),
        Some(1.0)
    );
    assert_eq!(
        series(&text, "herald_consumer_group_lag_messages", &group),
        Some(4.0)
    );
    let lag_seconds = series(&text, "herald_consumer_group_lag_seconds", &group).unwrap();
    assert!((119.0..600.0).contains(&lag_seconds), "{lag_seconds}");

    let (_, groups) = s.get("/api/v1/groups").await;
    assert_eq!(groups["groups"][0]["group_id"], "billing", "{groups}");
    assert_eq!(groups["groups"][0]["lag_messages"], 4);
    let (status, billing) = s.get("/api/v1/groups/billing").await;
    assert_eq!(status, StatusCode::OK, "{billing}");
    assert_eq!(billing["offsets"][0]["committed_offset"], 1);
    assert_eq!(billing["offsets"][0]["high_watermark"], 5);
    assert_eq!(billing["offsets"][0]["lag_messages"], 4);
    assert!(billing["offsets"][0]["lag_seconds"].as_f64().unwrap() >= 119.0);
    drop(kafka);
    s.stop().await;
}
