//! The SDK's Kafka transport against a secured `herald serve`: SASL_SSL with
//! SCRAM-SHA-512 and a test CA in `ssl.ca.location`, as an application configures it
//! (librdkafka built with OpenSSL). Publish, subscribe, commit and read work; a wrong
//! password or an untrusted broker certificate fails every operation at once with the
//! broker's reason and what to check, not after a timeout.
//!
//! The tests live here rather than in crates/herald because they start the `herald`
//! binary (SASL and TLS are configured by `herald serve` and `herald users`).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use herald::transport::{
    Admin, CommitOffset, Consumer, OutgoingRecord, Publisher, Subscriber, TopicPartition,
    TopicReader,
    kafka::{KafkaConfig, KafkaTransport},
};
use herald_test_support::{HeraldServe, TestCa};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const USER: &str = "svc";
const PASSWORD: &str = "s3cret-for-tests";
/// Far below the transport's 30 s request timeout and 5 min message timeout.
const FAIL_FAST: Duration = Duration::from_secs(15);

/// A `herald serve` with only a SASL_SSL Kafka listener, the user bootstrapped before
/// it starts and a super user (authorization is on with SASL).
fn sasl_ssl_serve(dir: &Path, ca: &TestCa) -> HeraldServe {
    let data = dir.join("data");
    herald_test_support::add_user(
        HERALD,
        &data,
        USER,
        PASSWORD,
        &["--mechanism", "SCRAM-SHA-512"],
    );
    herald_test_support::sasl_ssl_serve(HERALD, &data, ca, USER, &dir.join("serve.log"))
}

/// The transport as an application sets it up for SASL_SSL.
fn secured(bootstrap: &str, password: &str, ca: &Path) -> KafkaConfig {
    KafkaConfig::new(bootstrap)
        .with_client_id("sdk-security-test")
        .with_join_timeout(Duration::from_secs(30))
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", USER)
        .set("sasl.password", password)
        .set("ssl.ca.location", ca.display().to_string())
        .set_consumer("session.timeout.ms", "6000")
        .set_consumer("heartbeat.interval.ms", "100")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_subscribe_and_read_over_sasl_ssl_with_scram_sha_512() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let serve = sasl_ssl_serve(dir.path(), &ca);
    let bus = KafkaTransport::new(secured(&serve.kafka, PASSWORD, &ca.ca)).unwrap();

    let work = async {
        bus.create_topic("secured", 1).await.unwrap();
        let records = (0..3)
            .map(|i| OutgoingRecord {
                key: Some(format!("k{i}").into()),
                value: Some(format!("over TLS {i}").into()),
                ..Default::default()
            })
            .collect();
        let at = bus.publish("secured", records).await.unwrap();
        assert_eq!(at.iter().map(|p| p.offset).collect::<Vec<_>>(), [0, 1, 2]);

        let mut member = bus.subscribe("secured-group", &["secured"]).await.unwrap();
        let mut got = Vec::new();
        while got.len() < 3 {
            got.extend(member.poll(10).await.unwrap());
        }
        let values: Vec<_> = got.iter().map(|r| r.value.clone().unwrap()).collect();
        assert_eq!(values, ["over TLS 0", "over TLS 1", "over TLS 2"]);
        let tp = TopicPartition::new("secured", 0);
        let offset = CommitOffset {
            partition: tp.clone(),
            offset: 3,
        };
        member.commit(&[offset]).await.unwrap();
        assert_eq!(bus.committed("secured-group", &tp).await.unwrap(), Some(3));

        // The partition reader (the dead-letter tools' path) over the same listener.
        assert_eq!(bus.end_offset(&tp).await.unwrap(), 3);
        let read = bus.read(&tp, 1, 10).await.unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].value.as_deref(), Some(&b"over TLS 1"[..]));
    };
    tokio::time::timeout(Duration::from_secs(120), work)
        .await
        .expect("the round trip over SASL_SSL finished in time");
}

/// Runs `what` and returns its error, which must come within [`FAIL_FAST`].
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    work: impl std::future::Future<Output = Result<T, herald::transport::TransportError>>,
) -> String {
    let started = Instant::now();
    let result = tokio::time::timeout(FAIL_FAST, work)
        .await
        .unwrap_or_else(|_| panic!("{what} did not fail within {FAIL_FAST:?}: it hangs"));
    let err = result.expect_err(what).to_string();
    eprintln!("{what} failed after {:?}: {err}", started.elapsed());
    err
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_fails_at_once_with_the_brokers_reason() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let serve = sasl_ssl_serve(dir.path(), &ca);
    let bus = KafkaTransport::new(secured(&serve.kafka, "not-the-password", &ca.ca)).unwrap();

    let err = fails_fast("create_topic", bus.create_topic("t", 1)).await;
    assert!(err.starts_with("creating topic t: "), "{err}");
    assert!(err.contains("the broker refused the connection"), "{err}");
    assert!(
        err.to_lowercase().contains("authentication"),
        "the broker's reason: {err}"
    );
    assert!(err.contains("sasl.password"), "what to check: {err}");

    let record = OutgoingRecord {
        value: Some("x".into()),
        ..Default::default()
    };
    let err = fails_fast("publish", bus.publish("t", vec![record])).await;
    assert!(err.starts_with("publishing to t: "), "{err}");
    assert!(err.contains("sasl.password"), "{err}");
    let err = fails_fast("subscribe", bus.subscribe("g", &["t"])).await;
    assert!(err.contains("sasl.password"), "{err}");
    let err = fails_fast("partitions", bus.partitions("t")).await;
    assert!(err.contains("sasl.password"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_of_another_ca_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let serve = sasl_ssl_serve(dir.path(), &ca);
    let other = dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    let other = TestCa::new(&other);
    let bus = KafkaTransport::new(secured(&serve.kafka, PASSWORD, &other.ca)).unwrap();
    let err = fails_fast("create_topic", bus.create_topic("t", 1)).await;
    assert!(err.contains("the broker refused the connection"), "{err}");
    assert!(err.contains("ssl.ca.location"), "what to check: {err}");
}
