//! Keyed records produced over HTTP land in the partition a Java producer (murmur2,
//! librdkafka's `murmur2_random`) picks for the same key: checked against kcat. Needs
//! `HERALD_TEST_KCAT`; skips without it unless `HERALD_REQUIRE_SERVICES=1`
//! (herald-test-support's rule).

use std::{
    collections::BTreeMap,
    io::Write,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use reqwest::StatusCode;
use serde_json::json;

use super::Server;

const KEYS: [&str; 8] = [
    "alpha", "beta", "gamma", "delta", "order-17", "x", "", "ü-key",
];

/// Key to partition, from every record of the topic.
async fn partitions_by_key(s: &Server, topic: &str, partitions: i32) -> BTreeMap<String, i64> {
    let mut found = BTreeMap::new();
    for p in 0..partitions {
        let (status, body) = s
            .get(&format!("/api/v1/topics/{topic}/partitions/{p}/records"))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        for r in body["records"].as_array().unwrap() {
            let key = r["key"].as_str().unwrap().to_string();
            assert!(
                found.insert(key.clone(), i64::from(p)).is_none(),
                "{key} twice"
            );
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_where_java_producers_put_them() {
    let Some(kcat) = herald_test_support::kcat() else {
        return;
    };
    let s = Server::start().await;
    s.create_topic("by-kcat", 5).await;
    s.create_topic("by-rest", 5).await;
    let kafka = s.broker.as_ref().unwrap().kafka_addr().to_string();
    let mut child = Command::new(kcat)
        .args(["-b", &kafka, "-t", "by-kcat", "-P", "-K", "\t"])
        .args([
            "-X",
            "partitioner=murmur2_random",
            "-X",
            "message.timeout.ms=10000",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for key in KEYS {
        writeln!(stdin, "{key}\tvalue").unwrap();
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "kcat did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "kcat failed");

    let records: Vec<_> = KEYS
        .iter()
        .map(|k| json!({"key": k, "value": "value"}))
        .collect();
    let (status, body) = s
        .post(
            "/api/v1/topics/by-rest/records",
            json!({ "records": records }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let by_kcat = partitions_by_key(&s, "by-kcat", 5).await;
    assert_eq!(by_kcat.len(), KEYS.len(), "{by_kcat:?}");
    assert_eq!(partitions_by_key(&s, "by-rest", 5).await, by_kcat);
    s.stop().await;
}
