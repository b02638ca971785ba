//! The transport conformance specification: every transport must pass these, the same
//! way. Each function takes a [`Harness`]; `tests/conformance.rs` runs them on the memory
//! and embedded transports, `tests/kafka_transport.rs` on the Kafka transport against
//! `herald serve` (and an external cluster when one is configured).
//!
//! Topic and group names go through [`Harness::name`], so runs against a shared cluster
//! do not meet each other. Group membership settles through a rebalance on Kafka, so
//! assignments are awaited ([`settled`]) rather than read right after a join or a leave.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use herald::{
    HandlerContext, HandlerError, Inbox, MemoryInbox, Router,
    transport::{
        Admin, CommitOffset, Consumer, OutgoingRecord, Publisher, PublisherExt, Subscriber,
        TopicPartition, TopicReader, TransportError, partition_for_key,
    },
};
use tokio::sync::mpsc;

use crate::common::*;

pub(crate) fn keyed(key: &str, value: &str) -> OutgoingRecord {
    OutgoingRecord {
        key: Some(key.to_owned().into()),
        value: Some(value.to_owned().into()),
        ..Default::default()
    }
}

pub(crate) async fn poll_exactly<C: Consumer>(
    consumer: &mut C,
    n: usize,
) -> Vec<herald::transport::ConsumedRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        let got = tokio::time::timeout(Duration::from_secs(60), consumer.poll(n - out.len()))
            .await
            .expect("records arrive")
            .expect("poll");
        out.extend(got);
    }
    assert_eq!(out.len(), n, "poll returned more than asked");
    out
}

/// Waits until a group's membership change has settled into what `done` expects (at once
/// on the in-process transports; after a rebalance on Kafka).
pub(crate) async fn settled(mut done: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the group did not settle within 60 s");
}

/// Keyed records land on Kafka's partition for their key, in order, and come back.
pub(crate) async fn publish_subscribe<H: Harness>(h: H) {
    let (orders, group) = (h.name("orders"), h.name("g"));
    let (orders, group) = (orders.as_str(), group.as_str());
    let t = h.transport();
    t.create_topic(orders, 3).await.unwrap();
    let mut records = Vec::new();
    for i in 0..30 {
        records.push(keyed(&format!("k{}", i % 10), &format!("v{i}")));
    }
    let positions = t.publish(orders, records.clone()).await.unwrap();
    for (r, p) in records.iter().zip(&positions) {
        assert_eq!(p.partition, partition_for_key(r.key.as_ref().unwrap(), 3));
    }
    let mut consumer = t.subscribe(group, &[orders]).await.unwrap();
    assert_eq!(consumer.assignment().len(), 3);
    let got = poll_exactly(&mut consumer, 30).await;
    let mut per_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
    let mut per_key: HashMap<String, Vec<String>> = HashMap::new();
    for r in &got {
        per_partition.entry(r.partition).or_default().push(r.offset);
        let key = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
        assert_eq!(r.partition, partition_for_key(key.as_bytes(), 3));
        per_key
            .entry(key)
            .or_default()
            .push(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
    }
    for offsets in per_partition.values() {
        let expected: Vec<u64> = (0..offsets.len() as u64).collect();
        assert_eq!(
            offsets, &expected,
            "offsets are contiguous from 0, in order"
        );
    }
    for (key, values) in per_key {
        let k: usize = key[1..].parse().unwrap();
        let expected: Vec<String> = (0..3).map(|j| format!("v{}", k + 10 * j)).collect();
        assert_eq!(values, expected, "order of key {key}");
    }
    let mut total = 0;
    for p in 0..3 {
        let tp = TopicPartition::new(orders, p);
        let end = t.end_offset(&tp).await.unwrap();
        total += end;
        assert_eq!(t.read(&tp, 0, 100).await.unwrap().len() as u64, end);
    }
    assert_eq!(total, 30);
    assert!(matches!(
        t.publish(
            orders,
            vec![OutgoingRecord {
                partition: Some(3),
                ..Default::default()
            }]
        )
        .await,
        Err(TransportError::UnknownPartition {
            partition: 3,
            partitions: 3,
            ..
        })
    ));
    assert!(matches!(
        t.publish("bad/topic", vec![keyed("k", "v")]).await,
        Err(TransportError::InvalidTopic { .. })
    ));
    assert!(matches!(
        t.read(&TopicPartition::new(orders, 0), 1000, 1).await,
        Err(TransportError::OffsetOutOfRange { .. })
    ));
    // Envelopes travel as binary-mode records.
    let e = step("k1", 7);
    t.publish_envelope(orders, &e).await.unwrap();
    let got = poll_exactly(&mut consumer, 1).await;
    assert_eq!(herald::Envelope::from_record(&got[0]).unwrap(), e);
}

/// Two members split a topic's partitions; when one leaves, the other takes all.
pub(crate) async fn groups_split_partitions<H: Harness>(h: H) {
    let (orders, group) = (h.name("orders"), h.name("g"));
    let (orders, group) = (orders.as_str(), group.as_str());
    let t = h.transport();
    t.create_topic(orders, 4).await.unwrap();
    let mut a = t.subscribe(group, &[orders]).await.unwrap();
    assert_eq!(a.assignment().len(), 4);
    let mut b = t.subscribe(group, &[orders]).await.unwrap();
    settled(|| a.assignment().len() == 2 && b.assignment().len() == 2).await;
    let (pa, pb): (HashSet<_>, HashSet<_>) = (
        a.assignment().into_iter().collect(),
        b.assignment().into_iter().collect(),
    );
    assert!(pa.is_disjoint(&pb));
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    t.publish(orders, keys.iter().map(|k| keyed(k, k)).collect())
        .await
        .unwrap();
    let owned_by = |set: &HashSet<TopicPartition>| {
        keys.iter()
            .filter(|k| {
                set.contains(&TopicPartition::new(
                    orders,
                    partition_for_key(k.as_bytes(), 4),
                ))
            })
            .count()
    };
    let (na, nb) = (owned_by(&pa), owned_by(&pb));
    assert_eq!(na + nb, 40);
    let (ra, rb) = tokio::join!(poll_exactly(&mut a, na), poll_exactly(&mut b, nb));
    assert!(ra.iter().all(|r| pa.contains(&r.topic_partition())));
    assert!(rb.iter().all(|r| pb.contains(&r.topic_partition())));
    drop(b);
    // The survivor owns every partition.
    settled(|| a.assignment().len() == 4).await;
    // b never committed: a reads b's partitions again from the start.
    let again = poll_exactly(&mut a, nb).await;
    assert!(again.iter().all(|r| pb.contains(&r.topic_partition())));
}

/// A new member resumes from the group's committed offsets, across a restart.
pub(crate) async fn committed_offsets_survive_restart<H: Harness>(mut h: H) {
    let (orders, group) = (h.name("orders"), h.name("g"));
    let (orders, group) = (orders.as_str(), group.as_str());
    {
        let t = h.transport();
        t.create_topic(orders, 2).await.unwrap();
        t.publish(
            orders,
            (0..10).map(|i| keyed(&format!("k{i}"), "v")).collect(),
        )
        .await
        .unwrap();
        let mut c = t.subscribe(group, &[orders]).await.unwrap();
        poll_exactly(&mut c, 10).await;
        let p0 = TopicPartition::new(orders, 0);
        let p1 = TopicPartition::new(orders, 1);
        let end1 = t.end_offset(&p1).await.unwrap();
        c.commit(&[
            CommitOffset {
                partition: p0,
                offset: 1,
            },
            CommitOffset {
                partition: p1,
                offset: end1,
            },
        ])
        .await
        .unwrap();
    }
    h.restart().await;
    let t = h.transport();
    let p0 = TopicPartition::new(orders, 0);
    let end0 = t.end_offset(&p0).await.unwrap();
    t.publish(
        orders,
        vec![OutgoingRecord {
            partition: Some(1),
            value: Some("new".into()),
            ..Default::default()
        }],
    )
    .await
    .unwrap();
    let mut c = t.subscribe(group, &[orders]).await.unwrap();
    let got = poll_exactly(&mut c, (end0 - 1) as usize + 1).await;
    let p0_offsets: Vec<u64> = got
        .iter()
        .filter(|r| r.partition == 0)
        .map(|r| r.offset)
        .collect();
    assert_eq!(p0_offsets, (1..end0).collect::<Vec<_>>());
    let p1: Vec<_> = got.iter().filter(|r| r.partition == 1).collect();
    assert_eq!(p1.len(), 1);
    assert_eq!(p1[0].value.as_deref(), Some(&b"new"[..]));
}

/// A router that crashes mid-way loses nothing: every event is handled at least once,
/// and with the inbox recorded in the handler's unit of work, exactly once in effect.
pub(crate) async fn redelivery_after_crash<H: Harness>(mut h: H) {
    let (orders, group) = (h.name("orders"), h.name("billing"));
    let (orders, group) = (orders.as_str(), group.as_str());
    let inbox = Arc::new(MemoryInbox::new());
    let effects: Arc<tokio::sync::Mutex<HashMap<String, u32>>> = Arc::default();
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let ids: Vec<String>;
    {
        let t = h.transport();
        t.create_topic(orders, 2).await.unwrap();
        let events: Vec<_> = (0..60)
            .map(|i| step(&format!("k{}", i % 10), i / 10))
            .collect();
        ids = events.iter().map(|e| e.id.clone()).collect();
        t.publish_envelopes(orders, &events).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let router = start_router(
            t.clone(),
            (orders, group),
            inbox.clone(),
            effects.clone(),
            attempts.clone(),
            Some(3),
            tx,
        )
        .await;
        // Steps 0..3 of every key complete; later ones hang until the crash. Crash only
        // once every key's step 3 is in flight, so that the crash interrupts work that must
        // be redelivered (otherwise a commit could cover everything started so far).
        recv_n(&mut rx, 30).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while attempts.lock().unwrap().len() < 40 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "step 3 of every key starts"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        router.abort().await;
    }
    h.restart().await;
    let t = h.transport();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let router = start_router(
        t,
        (orders, group),
        inbox.clone(),
        effects.clone(),
        attempts.clone(),
        None,
        tx,
    )
    .await;
    let mut done: HashSet<String> = effects.lock().await.keys().cloned().collect();
    while done.len() < 60 {
        done.insert(recv_n(&mut rx, 1).await.remove(0));
    }
    router.shutdown().await.unwrap();
    let effects = effects.lock().await;
    let attempts = attempts.lock().unwrap();
    for id in &ids {
        assert_eq!(effects.get(id), Some(&1), "effect of {id}");
        assert!(attempts.get(id).copied().unwrap_or(0) >= 1);
    }
    assert!(
        attempts.values().any(|n| *n > 1),
        "the crash forced redeliveries"
    );
}

async fn start_router<T: herald::transport::Transport>(
    t: T,
    (orders, group): (&str, &str),
    inbox: Arc<MemoryInbox>,
    effects: Arc<tokio::sync::Mutex<HashMap<String, u32>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
    hang_from: Option<u32>,
    done: mpsc::UnboundedSender<String>,
) -> herald::RouterHandle {
    let handler_inbox = inbox.clone();
    // More permits than keys: the hanging handlers must not starve the others.
    Router::builder(t, group)
        .inbox(inbox)
        .concurrency(16)
        .on(orders, move |s: Step, ctx: HandlerContext| {
            let (inbox, effects, attempts, done) = (
                handler_inbox.clone(),
                effects.clone(),
                attempts.clone(),
                done.clone(),
            );
            async move {
                let id = ctx.envelope().id.clone();
                *attempts.lock().unwrap().entry(id.clone()).or_default() += 1;
                if hang_from.is_some_and(|h| s.seq >= h) {
                    std::future::pending::<()>().await;
                }
                // The unit of work: the effect and the inbox entry commit together.
                {
                    let mut effects = effects.lock().await;
                    let fresh = inbox.mark_processed(ctx.inbox_key()).await?;
                    if fresh {
                        *effects.entry(id.clone()).or_default() += 1;
                    }
                }
                ctx.mark_inbox_recorded();
                let _ = done.send(id);
                Ok::<(), HandlerError>(())
            }
        })
        .start()
        .await
        .expect("router starts")
}

/// Two routers in one group split the partitions: each event is handled once, by
/// the member that owns its partition.
pub(crate) async fn routers_share_a_group<H: Harness>(h: H) {
    let (orders, group) = (h.name("orders"), h.name("shared"));
    let (orders, group) = (orders.as_str(), group.as_str());
    let t = h.transport();
    t.create_topic(orders, 4).await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut routers = Vec::new();
    for name in ["a", "b"] {
        let tx = tx.clone();
        let router = Router::builder(t.clone(), group)
            .on(orders, move |s: Step, ctx: HandlerContext| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((name, ctx.partition(), s.key));
                    Ok::<(), HandlerError>(())
                }
            })
            .start()
            .await
            .unwrap();
        routers.push(router);
    }
    let events: Vec<_> = (0..40).map(|i| step(&format!("key-{i}"), 0)).collect();
    t.publish_envelopes(orders, &events).await.unwrap();
    let handled = recv_n(&mut rx, 40).await;
    for r in routers {
        r.shutdown().await.unwrap();
    }
    let mut owner: HashMap<u32, &str> = HashMap::new();
    let mut keys = HashSet::new();
    for (name, partition, key) in &handled {
        assert_eq!(
            *owner.entry(*partition).or_insert(name),
            *name,
            "partition {partition} had two owners"
        );
        assert!(keys.insert(key.clone()), "{key} handled twice");
    }
    assert_eq!(owner.len(), 4);
    assert_eq!(
        owner.values().filter(|n| **n == "a").count(),
        2,
        "each member owns two partitions"
    );
    assert!(rx.try_recv().is_err(), "no event was handled twice");
}

/// Same key strictly in order, different keys in parallel, never above the limit.
pub(crate) async fn per_key_order_under_concurrency<H: Harness>(h: H) {
    let (orders, group) = (h.name("orders"), h.name("ordered"));
    let (orders, group) = (orders.as_str(), group.as_str());
    let t = h.transport();
    t.create_topic(orders, 4).await.unwrap();
    let events: Vec<_> = (0..25)
        .flat_map(|seq| (0..8).map(move |k| step(&format!("k{k}"), seq)))
        .collect();
    t.publish_envelopes(orders, &events).await.unwrap();
    #[derive(Default)]
    struct Seen {
        active_keys: HashSet<String>,
        running: usize,
        max_running: usize,
        order: HashMap<String, Vec<u32>>,
        overlap: bool,
    }
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler_seen = seen.clone();
    let router = Router::builder(t, group)
        .concurrency(4)
        .on(orders, move |s: Step, _ctx: HandlerContext| {
            let (seen, tx) = (handler_seen.clone(), tx.clone());
            async move {
                {
                    let mut seen = seen.lock().unwrap();
                    seen.overlap |= !seen.active_keys.insert(s.key.clone());
                    seen.running += 1;
                    seen.max_running = seen.max_running.max(seen.running);
                }
                for _ in 0..(s.seq % 4 + u32::from(s.key.as_bytes()[1]) % 3) * 3 {
                    tokio::task::yield_now().await;
                }
                {
                    let mut seen = seen.lock().unwrap();
                    seen.active_keys.remove(&s.key);
                    seen.running -= 1;
                    seen.order.entry(s.key.clone()).or_default().push(s.seq);
                }
                let _ = tx.send(());
                Ok::<(), HandlerError>(())
            }
        })
        .start()
        .await
        .unwrap();
    recv_n(&mut rx, 200).await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!(stats.handled, 200);
    let seen = seen.lock().unwrap();
    assert!(!seen.overlap, "two events of one key ran at once");
    assert!(
        seen.max_running <= 4,
        "concurrency limit exceeded: {}",
        seen.max_running
    );
    assert!(seen.max_running > 1, "different keys never ran in parallel");
    for k in 0..8 {
        assert_eq!(
            seen.order[&format!("k{k}")],
            (0..25).collect::<Vec<_>>(),
            "order of k{k}"
        );
    }
}

/// Runs every specification above as a test module `$name` with the harness `$harness`
/// (an expression evaluated inside each async test, so it may `.await` or `return`).
macro_rules! conformance {
    ($name:ident, $harness:expr) => {
        mod $name {
            #[allow(unused_imports)] // why: the harness expression may name fixtures
            use super::*;
            use $crate::suite;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn publish_subscribe() {
                suite::publish_subscribe($harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn groups_split_partitions() {
                suite::groups_split_partitions($harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn committed_offsets_survive_restart() {
                suite::committed_offsets_survive_restart($harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redelivery_after_crash() {
                suite::redelivery_after_crash($harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn routers_share_a_group() {
                suite::routers_share_a_group($harness).await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn per_key_order_under_concurrency() {
                suite::per_key_order_under_concurrency($harness).await
            }
        }
    };
}
