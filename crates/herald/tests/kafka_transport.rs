//! The Kafka transport, against a `herald serve` broker started in-process on port 0:
//! the same conformance suite as the in-process transports, the router behaviours that
//! matter on a real broker (dead letters, duplicates, a crashed member), and what only a
//! Kafka client can get wrong (partitioner, exact records, bounded buffers, admin).
//!
//! `HERALD_TEST_KAFKA_BOOTSTRAP=host:port` also runs the suite against an external Kafka
//! or Redpanda (`HERALD_TEST_KAFKA_PROPERTIES="k=v,k=v"` for SASL and the like);
//! without it those tests print why they skip.
#![cfg(feature = "kafka")]

mod common;
// The conformance specification and its `conformance!` macro.
#[macro_use]
#[path = "conformance/suite.rs"]
mod suite;

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use common::*;
use herald::{
    DeadLetterFilter, DeadLetterQueue, HandlerContext, HandlerError, MemoryInbox, RetryPolicy,
    Router,
    dlq::DeadLetterKind,
    transport::{
        Admin, CommitOffset, Consumer, Header, OutgoingRecord, Publisher, PublisherExt, Subscriber,
        TopicPartition, TopicReader, TransportError,
        kafka::{KafkaConfig, KafkaTransport},
        partition_for_key,
    },
};
use herald_broker::{Broker, BrokerConfig, BrokerHandle};
use tokio::sync::mpsc;

/// Client settings for fast, bounded rebalances in tests.
fn client_config(bootstrap: &str) -> KafkaConfig {
    KafkaConfig::new(bootstrap)
        .with_client_id("herald-test")
        .with_join_timeout(Duration::from_secs(30))
        .set_consumer("session.timeout.ms", "6000")
        .set_consumer("heartbeat.interval.ms", "100")
}

fn broker_config(dir: &std::path::Path, addr: SocketAddr) -> BrokerConfig {
    let mut config = BrokerConfig::new(dir, addr);
    config.group_initial_rebalance_delay_ms = 50;
    config.group_min_session_timeout_ms = 1000;
    config
}

/// A `herald serve` broker in a temporary directory and a transport on it. A restart
/// stops the broker and starts it again on the same port and data; the transport's
/// clients reconnect by themselves.
struct HeraldHarness {
    transport: KafkaTransport,
    broker: Option<BrokerHandle>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl HeraldHarness {
    async fn start() -> Self {
        Self::start_with(client_config).await
    }

    async fn start_with(config: impl FnOnce(&str) -> KafkaConfig) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = Broker::start(broker_config(dir.path(), "127.0.0.1:0".parse().unwrap()))
            .await
            .expect("broker starts");
        let addr = broker.kafka_addr();
        let transport = KafkaTransport::new(config(&addr.to_string())).expect("transport");
        Self {
            transport,
            broker: Some(broker),
            addr,
            dir,
        }
    }
}

impl Harness for HeraldHarness {
    type T = KafkaTransport;

    fn transport(&self) -> KafkaTransport {
        self.transport.clone()
    }

    async fn restart(&mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await.expect("broker stops");
        }
        for _ in 0..100 {
            match Broker::start(broker_config(self.dir.path(), self.addr)).await {
                Ok(broker) => {
                    self.broker = Some(broker);
                    return;
                }
                // The old listener's port may take a moment to be free again.
                Err(e) => {
                    eprintln!("restarting the broker: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        panic!("the broker did not restart on {}", self.addr);
    }
}

/// An external cluster from `HERALD_TEST_KAFKA_BOOTSTRAP`, shared with other runs: names
/// carry a suffix unique to this harness. A restart is a no-op (the cluster outlives its
/// clients, as the memory transport does).
struct ExternalHarness {
    transport: KafkaTransport,
    run: String,
}

impl ExternalHarness {
    fn from_env() -> Option<Self> {
        let Ok(bootstrap) = std::env::var("HERALD_TEST_KAFKA_BOOTSTRAP") else {
            eprintln!(
                "skipped: HERALD_TEST_KAFKA_BOOTSTRAP is not set; set it to host:port of a \
                 Kafka or Redpanda cluster (and HERALD_TEST_KAFKA_PROPERTIES=k=v,... for \
                 SASL) to run the conformance suite against it"
            );
            return None;
        };
        let mut config = client_config(&bootstrap);
        for pair in std::env::var("HERALD_TEST_KAFKA_PROPERTIES")
            .unwrap_or_default()
            .split(',')
            .filter(|p| !p.trim().is_empty())
        {
            let (k, v) = pair
                .split_once('=')
                .expect("HERALD_TEST_KAFKA_PROPERTIES is k=v,k=v");
            config = config.set(k.trim(), v.trim());
        }
        let transport = KafkaTransport::new(config).expect("transport");
        let run = uuid::Uuid::now_v7().simple().to_string();
        Some(Self {
            transport,
            run: run[run.len() - 12..].to_owned(),
        })
    }
}

impl Harness for ExternalHarness {
    type T = KafkaTransport;

    fn transport(&self) -> KafkaTransport {
        self.transport.clone()
    }

    async fn restart(&mut self) {}

    fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.run)
    }
}

// The suite against herald serve.
conformance!(herald_serve, HeraldHarness::start().await);
// The suite against an external Kafka or Redpanda, when one is configured.
conformance!(
    external_cluster,
    match ExternalHarness::from_env() {
        Some(h) => h,
        None => return,
    }
);

fn tp(topic: &str, partition: u32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

/// Waits until `group` has committed every record of `topic`: all outcomes are final.
async fn settle(t: &KafkaTransport, group: &str, topic: &str) {
    let partitions = t.partitions(topic).await.unwrap().unwrap();
    for _ in 0..600 {
        let mut done = true;
        for p in 0..partitions {
            let end = t.end_offset(&tp(topic, p)).await.unwrap();
            done &= end == 0 || t.committed(group, &tp(topic, p)).await.unwrap() == Some(end);
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{group} never committed all of {topic}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_land_on_partition_for_key_like_java_clients() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    t.create_topic("keys", 12).await.unwrap();
    let mut keys: Vec<Vec<u8>> = (0..300)
        .map(|i| format!("customer-{i}").into_bytes())
        .collect();
    keys.extend([vec![], vec![0xff, 0x00, 0x7f], "ключ".as_bytes().to_vec()]);
    let records: Vec<_> = keys
        .iter()
        .map(|k| OutgoingRecord {
            key: Some(Bytes::from(k.clone())),
            value: Some("v".into()),
            ..Default::default()
        })
        .collect();
    let positions = t.publish("keys", records).await.unwrap();
    let mut stored: HashMap<(u32, u64), Option<Bytes>> = HashMap::new();
    for p in 0..12 {
        for r in t.read(&tp("keys", p), 0, 1000).await.unwrap() {
            stored.insert((r.partition, r.offset), r.key);
        }
    }
    assert_eq!(stored.len(), keys.len());
    for (key, at) in keys.iter().zip(&positions) {
        assert_eq!(at.partition, partition_for_key(key, 12), "key {key:?}");
        assert_eq!(
            stored[&(at.partition, at.offset)].as_deref(),
            Some(&key[..]),
            "the record is where its position says"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_round_trip_exactly_with_duplicate_and_null_headers() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    t.create_topic("exact", 1).await.unwrap();
    let binary: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let sent = vec![
        OutgoingRecord {
            key: None,
            value: None,
            headers: vec![
                Header::new("a", "1"),
                Header::new("a", "2"),
                Header {
                    key: "null".into(),
                    value: None,
                },
                Header::new("empty", ""),
                Header::new("a", "3"),
            ],
            timestamp: Some(1_700_000_000_123),
            partition: None,
        },
        OutgoingRecord {
            key: Some(Bytes::new()),
            value: Some(Bytes::new()),
            ..Default::default()
        },
        OutgoingRecord {
            key: Some("k".into()),
            value: Some(binary.clone().into()),
            headers: vec![Header::new("bin", vec![0u8, 255, 1])],
            timestamp: Some(42),
            partition: Some(0),
        },
    ];
    let before = herald_now_ms() - 60_000;
    let positions = t.publish("exact", sent.clone()).await.unwrap();
    assert_eq!(
        positions
            .iter()
            .map(|p| (p.partition, p.offset))
            .collect::<Vec<_>>(),
        [(0, 0), (0, 1), (0, 2)]
    );
    let mut c = t.subscribe("exact-readers", &["exact"]).await.unwrap();
    let polled = suite::poll_exactly(&mut c, 3).await;
    let read = t.read(&tp("exact", 0), 0, 10).await.unwrap();
    assert_eq!(
        polled, read,
        "a group member and the reader see the same records"
    );
    for (s, r) in sent.iter().zip(&polled) {
        assert_eq!(
            (&r.key, &r.value, &r.headers),
            (&s.key, &s.value, &s.headers)
        );
        match s.timestamp {
            Some(ts) => assert_eq!(r.timestamp, ts),
            None => assert!(r.timestamp >= before, "now-ish: {}", r.timestamp),
        }
    }
}

fn herald_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_offsets_and_reads_answer_like_the_other_transports() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    assert_eq!(t.partitions("missing").await.unwrap(), None);
    assert!(matches!(
        t.end_offset(&tp("missing", 0)).await,
        Err(TransportError::UnknownTopic(name)) if name == "missing"
    ));
    assert_eq!(
        t.partitions("missing").await.unwrap(),
        None,
        "asking about a topic does not create it"
    );
    t.create_topic("audit", 2).await.unwrap();
    t.create_topic("audit", 2).await.unwrap();
    assert!(matches!(
        t.create_topic("audit", 3).await,
        Err(TransportError::TopicExists {
            existing: 2,
            requested: 3,
            ..
        })
    ));
    assert!(matches!(
        t.create_topic("no good", 1).await,
        Err(TransportError::InvalidTopic { .. })
    ));
    assert!(matches!(
        t.end_offset(&tp("audit", 5)).await,
        Err(TransportError::UnknownPartition {
            partition: 5,
            partitions: 2,
            ..
        })
    ));
    let records = (0..30)
        .map(|i| OutgoingRecord {
            value: Some(format!("{i}").into()),
            partition: Some(1),
            ..Default::default()
        })
        .collect();
    t.publish("audit", records).await.unwrap();
    let p1 = tp("audit", 1);
    assert_eq!(t.start_offset(&p1).await.unwrap(), 0);
    assert_eq!(t.end_offset(&p1).await.unwrap(), 30);
    let middle = t.read(&p1, 5, 10).await.unwrap();
    assert_eq!(
        middle.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (5..15).collect::<Vec<_>>()
    );
    assert_eq!(
        t.read(&p1, 25, 100).await.unwrap().len(),
        5,
        "fewer at the end"
    );
    assert!(t.read(&p1, 30, 100).await.unwrap().is_empty());
    assert!(t.read(&tp("audit", 0), 0, 100).await.unwrap().is_empty());
    assert!(matches!(
        t.read(&p1, 31, 1).await,
        Err(TransportError::OffsetOutOfRange { offset: 31, .. })
    ));
    // Publishing to a topic that does not exist creates it (broker auto-creation).
    t.publish("fresh", vec![OutgoingRecord::default()])
        .await
        .unwrap();
    assert_eq!(t.partitions("fresh").await.unwrap(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_gets_everything_in_order_through_a_small_buffer() {
    // Fetching pauses whenever 10 records wait, and resumes as polls drain them. A
    // resumed fetch waits for the long poll librdkafka has in flight at the end of the
    // partition: keep that short so the many pauses here take seconds, not half a
    // second each.
    let h = HeraldHarness::start_with(|b| {
        let mut c = client_config(b).set_consumer("fetch.wait.max.ms", "20");
        c.max_buffered_records = 10;
        c
    })
    .await;
    let t = h.transport();
    t.create_topic("stream", 2).await.unwrap();
    let records: Vec<_> = (0..600)
        .map(|i| OutgoingRecord {
            key: Some(format!("k{}", i % 7).into()),
            value: Some(format!("{i}").into()),
            ..Default::default()
        })
        .collect();
    t.publish("stream", records).await.unwrap();
    let mut c = t.subscribe("slow", &["stream"]).await.unwrap();
    let mut seen: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut total = 0;
    while total < 600 {
        let got = tokio::time::timeout(Duration::from_secs(30), c.poll(7))
            .await
            .expect("records keep coming")
            .unwrap();
        assert!(got.len() <= 7);
        total += got.len();
        for r in got {
            seen.entry(r.partition).or_default().push(r.offset);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (p, offsets) in &seen {
        let end = t.end_offset(&tp("stream", *p)).await.unwrap();
        assert_eq!(offsets, &(0..end).collect::<Vec<_>>(), "partition {p}");
    }
    assert_eq!(total, 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_are_exact_and_readable_without_joining() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    t.create_topic("ledger", 2).await.unwrap();
    assert_eq!(t.committed("books", &tp("ledger", 0)).await.unwrap(), None);
    let mut c = t.subscribe("books", &["ledger"]).await.unwrap();
    c.commit(&[
        CommitOffset {
            partition: tp("ledger", 0),
            offset: 0,
        },
        CommitOffset {
            partition: tp("ledger", 1),
            offset: 17,
        },
        // Not assigned to this member: dropped, as the trait says.
        CommitOffset {
            partition: tp("other", 0),
            offset: 5,
        },
    ])
    .await
    .unwrap();
    assert_eq!(
        t.committed("books", &tp("ledger", 0)).await.unwrap(),
        Some(0)
    );
    assert_eq!(
        t.committed("books", &tp("ledger", 1)).await.unwrap(),
        Some(17)
    );
    assert_eq!(t.committed("books", &tp("other", 0)).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_dead_lettered_after_n_attempts_and_the_rest_commits() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    t.create_topic("payments", 2).await.unwrap();
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let counted = attempts.clone();
    let router = Router::builder(t.clone(), "ledger")
        .retry(
            RetryPolicy::default()
                .with_max_attempts(3)
                .with_delays(Duration::from_millis(10), Duration::from_millis(50), 2.0)
                .with_max_elapsed(None),
        )
        .on("payments", move |s: Step, ctx: HandlerContext| {
            let (attempts, tx) = (counted.clone(), tx.clone());
            async move {
                *attempts.lock().unwrap().entry(s.key.clone()).or_default() += 1;
                if s.key == "bad" {
                    return Err(HandlerError::transient(std::io::Error::other(
                        "card declined",
                    )));
                }
                let _ = tx.send(ctx.envelope().id.clone());
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    let poison = step("bad", 0);
    let mut events: Vec<_> = (0..10).map(|i| step(&format!("k{i}"), 0)).collect();
    events.insert(4, poison.clone());
    t.publish_envelopes("payments", &events).await.unwrap();
    recv_n(&mut rx, 10).await;
    settle(&t, "ledger", "payments").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!((stats.handled, stats.dead_lettered), (10, 1));
    assert_eq!(attempts.lock().unwrap()["bad"], 3);
    let dlq = DeadLetterQueue::new(t.clone(), "payments", "ledger");
    assert_eq!(
        t.partitions(dlq.topic()).await.unwrap(),
        Some(2),
        "the dead-letter topic has its source's partitions"
    );
    let letters = dlq.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(l.kind, DeadLetterKind::Failed);
    assert_eq!(l.event_id, poison.id);
    assert_eq!(l.failure.attempts, 3);
    assert_eq!(l.failure.error_chain, ["card declined"]);
    assert_eq!(l.group, "ledger");
    assert_eq!(l.original_topic, "payments");
    assert_eq!(l.original_partition, partition_for_key(b"bad", 2));
    assert_eq!(l.key.as_deref(), Some(&b"bad"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicates_and_redeliveries_have_one_effect_with_an_inbox() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    t.create_topic("orders", 2).await.unwrap();
    let events: Vec<_> = (0..20).map(|i| step(&format!("k{}", i % 6), i)).collect();
    t.publish_envelopes("orders", &events).await.unwrap();
    // A producer retry that went through twice: the same events (same ids) again.
    t.publish_envelopes("orders", &events[..5]).await.unwrap();
    let inbox = Arc::new(MemoryInbox::new());
    let calls: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let start = || {
        let calls = calls.clone();
        Router::builder(t.clone(), "dedup")
            .inbox(inbox.clone())
            .on("orders", move |_: Step, ctx: HandlerContext| {
                let calls = calls.clone();
                async move {
                    *calls
                        .lock()
                        .unwrap()
                        .entry(ctx.envelope().id.clone())
                        .or_default() += 1;
                    Ok::<(), HandlerError>(())
                }
            })
            .start()
    };
    let router = start().await.unwrap();
    settle(&t, "dedup", "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!((stats.handled, stats.duplicates), (20, 5));
    // The group goes back to the start, as after a crash that lost its commits.
    {
        let mut rewind = t.subscribe("dedup", &["orders"]).await.unwrap();
        rewind
            .commit(&[
                CommitOffset {
                    partition: tp("orders", 0),
                    offset: 0,
                },
                CommitOffset {
                    partition: tp("orders", 1),
                    offset: 0,
                },
            ])
            .await
            .unwrap();
    }
    let router = start().await.unwrap();
    settle(&t, "dedup", "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!((stats.handled, stats.duplicates), (0, 25));
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), 20);
    assert!(
        calls.values().all(|n| *n == 1),
        "one effect per event: {calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_members_partitions_move_to_the_survivor() {
    let h = HeraldHarness::start().await;
    let t = h.transport();
    t.create_topic("orders", 4).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut routers = Vec::new();
    for name in ["survivor", "doomed"] {
        let tx = tx.clone();
        let router = Router::builder(t.clone(), "pair")
            .on("orders", move |s: Step, ctx: HandlerContext| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((name, ctx.partition(), s.key));
                    if name == "doomed" {
                        // Stuck until the process dies: nothing of it ever completes.
                        std::future::pending::<()>().await;
                    }
                    Ok::<(), HandlerError>(())
                }
            })
            .start()
            .await
            .unwrap();
        routers.push(router);
    }
    let events: Vec<_> = (0..40).map(|i| step(&format!("key-{i}"), 0)).collect();
    t.publish_envelopes("orders", &events).await.unwrap();
    let mut survivor_done = std::collections::HashSet::new();
    let mut doomed_partitions = std::collections::HashSet::new();
    // Wait until the doomed member is stuck on something, then kill it.
    while doomed_partitions.is_empty() {
        let (name, partition, key) = recv_n(&mut rx, 1).await.remove(0);
        if name == "doomed" {
            doomed_partitions.insert(partition);
        } else {
            survivor_done.insert(key);
        }
    }
    let doomed = routers.pop().unwrap();
    doomed.abort().await;
    while survivor_done.len() < 40 {
        let (name, partition, key) = recv_n(&mut rx, 1).await.remove(0);
        if name == "survivor" {
            survivor_done.insert(key);
        } else {
            doomed_partitions.insert(partition);
        }
    }
    routers.pop().unwrap().shutdown().await.unwrap();
    settle(&t, "pair", "orders").await;
    assert!(!doomed_partitions.is_empty());
}
