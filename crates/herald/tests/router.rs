//! The consumer runtime on the memory transport, on paused Tokio time: duplicates, retries
//! and their delays, dead letters under both policies, replay and discard, shutdown,
//! correlation.

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use common::*;
use herald::{
    DeadLetterFilter, DeadLetterPolicy, DeadLetterQueue, Envelope, HandlerContext, HandlerError,
    Jitter, MemoryInbox, MemoryTransport, ReplayTarget, RetryPolicy, Router, RouterHandle,
    correlation::TraceParent,
    dlq::DeadLetterKind,
    transport::{OutgoingRecord, Publisher, PublisherExt, TopicPartition, TopicReader},
};
use tokio::{sync::mpsc, time::Instant};

/// One handler call as the test saw it.
#[derive(Debug, Clone)]
struct Call {
    key: String,
    seq: u32,
    attempt: u32,
    at: Instant,
}

type Calls = mpsc::UnboundedReceiver<Call>;

/// Waits until `group` has committed every record of `topic`: all outcomes are final.
async fn settle(t: &MemoryTransport, group: &str, topic: &str) {
    let partitions = t.partitions(topic).await.unwrap().unwrap();
    for _ in 0..10_000 {
        let mut done = true;
        for p in 0..partitions {
            let tp = TopicPartition::new(topic, p);
            let end = t.end_offset(&tp).await.unwrap();
            done &= end == 0 || t.committed(group, &tp) == Some(end);
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{group} never committed all of {topic}");
}

fn drain(calls: &mut Calls) -> Vec<Call> {
    let mut out = Vec::new();
    while let Ok(c) = calls.try_recv() {
        out.push(c);
    }
    out
}

fn seqs_of(calls: &[Call], key: &str) -> Vec<u32> {
    calls
        .iter()
        .filter(|c| c.key == key)
        .map(|c| c.seq)
        .collect()
}

/// A router whose handler fails (transiently, or permanently when `permanent`) for the
/// steps `broken` names while `broken_on` is set.
struct Setup {
    transport: MemoryTransport,
    group: &'static str,
    policy: DeadLetterPolicy,
    retry: RetryPolicy,
    broken: Vec<(&'static str, u32)>,
    broken_on: Arc<AtomicBool>,
    permanent: bool,
    inbox: Option<Arc<MemoryInbox>>,
}

impl Setup {
    fn new(group: &'static str) -> Self {
        Self {
            transport: MemoryTransport::new(),
            group,
            policy: DeadLetterPolicy::Skip,
            retry: RetryPolicy::no_retries(),
            broken: Vec::new(),
            broken_on: Arc::new(AtomicBool::new(true)),
            permanent: false,
            inbox: None,
        }
    }

    async fn start(&self) -> (RouterHandle, Calls) {
        let (tx, rx) = mpsc::unbounded_channel();
        let broken = self.broken.clone();
        let broken_on = self.broken_on.clone();
        let permanent = self.permanent;
        let mut builder = Router::builder(self.transport.clone(), self.group)
            .retry(self.retry.clone())
            .dead_letter_policy(self.policy)
            .on("orders", move |s: Step, ctx: HandlerContext| {
                let (tx, broken, broken_on) = (tx.clone(), broken.clone(), broken_on.clone());
                async move {
                    let _ = tx.send(Call {
                        key: s.key.clone(),
                        seq: s.seq,
                        attempt: ctx.attempt(),
                        at: Instant::now(),
                    });
                    let is_broken = broken.iter().any(|(k, q)| *k == s.key && *q == s.seq);
                    if is_broken && broken_on.load(Ordering::SeqCst) {
                        let e = std::io::Error::other(format!("cannot handle {}#{}", s.key, s.seq));
                        return Err(if permanent {
                            HandlerError::permanent(e)
                        } else {
                            HandlerError::transient(e)
                        });
                    }
                    Ok(())
                }
            });
        if let Some(inbox) = &self.inbox {
            builder = builder.inbox(inbox.clone());
        }
        (builder.start().await.unwrap(), rx)
    }

    async fn publish(&self, events: &[(&str, u32)]) -> Vec<Envelope> {
        let envelopes: Vec<_> = events.iter().map(|(k, s)| step(k, *s)).collect();
        self.transport
            .publish_envelopes("orders", &envelopes)
            .await
            .unwrap();
        envelopes
    }

    fn dlq(&self) -> DeadLetterQueue<MemoryTransport> {
        DeadLetterQueue::new(self.transport.clone(), "orders", self.group)
    }
}

#[tokio::test(start_paused = true)]
async fn duplicates_injected_at_the_transport_have_one_effect() {
    let mut s = Setup::new("dedup");
    s.inbox = Some(Arc::new(MemoryInbox::new()));
    s.publish(&[("a", 0), ("a", 1), ("b", 0), ("c", 0)]).await;
    let tp = TopicPartition::new("orders", 0);
    // A producer retry duplicates two records; a consumer crash replays from 0.
    s.transport.duplicate(&tp, 1).unwrap();
    s.transport.duplicate(&tp, 2).unwrap();
    let (router, mut calls) = s.start().await;
    settle(&s.transport, "dedup", "orders").await;
    s.transport.redeliver("dedup", &tp, 0).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    settle(&s.transport, "dedup", "orders").await;
    let stats = router.shutdown().await.unwrap();
    let calls = drain(&mut calls);
    let mut handled: Vec<_> = calls.iter().map(|c| (c.key.clone(), c.seq)).collect();
    handled.sort();
    assert_eq!(
        handled,
        [
            ("a".into(), 0),
            ("a".into(), 1),
            ("b".into(), 0),
            ("c".into(), 0)
        ],
        "each event's handler ran once"
    );
    assert_eq!(stats.handled, 4);
    assert_eq!(
        stats.duplicates,
        2 + 6,
        "two producer duplicates, then six redelivered records"
    );
}

#[tokio::test(start_paused = true)]
async fn a_poison_event_is_dead_lettered_after_exactly_n_attempts_with_the_policys_delays() {
    let mut s = Setup::new("poison");
    s.retry = RetryPolicy::default()
        .with_max_attempts(4)
        .with_delays(Duration::from_millis(100), Duration::from_secs(1), 2.0)
        .with_max_elapsed(None)
        .with_jitter(Jitter::Full)
        .with_seed(42);
    s.broken = vec![("bad", 0)];
    let traced =
        step("bad", 0).with_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    s.transport
        .publish_envelope("orders", &traced)
        .await
        .unwrap();
    let (router, mut calls) = s.start().await;
    settle(&s.transport, "poison", "orders").await;
    let stats = router.shutdown().await.unwrap();
    let calls = drain(&mut calls);
    assert_eq!(
        calls.iter().map(|c| c.attempt).collect::<Vec<_>>(),
        [1, 2, 3, 4]
    );
    let mut expected = s.retry.backoff();
    for pair in calls.windows(2) {
        let delay = expected.next_delay();
        assert!(delay <= s.retry.cap(pair[0].attempt - 1));
        assert_eq!(
            pair[1].at - pair[0].at,
            delay,
            "delay before attempt {}",
            pair[1].attempt
        );
    }
    assert_eq!(stats.dead_lettered, 1);
    let letters = s.dlq().list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(letters.len(), 1);
    let l = &letters[0];
    assert_eq!(s.dlq().topic(), "orders.poison.dlq");
    assert_eq!(l.kind, DeadLetterKind::Failed);
    assert_eq!(l.event_id, traced.id);
    assert_eq!(l.failure.attempts, 4);
    assert!(
        l.failure
            .reason
            .starts_with("retries exhausted: cannot handle bad#0"),
        "{}",
        l.failure.reason
    );
    assert_eq!(l.failure.error_chain, ["cannot handle bad#0"]);
    assert!(l.failure.first_failure <= l.failure.last_failure);
    assert_eq!(
        (
            l.original_topic.as_str(),
            l.original_partition,
            l.original_offset
        ),
        ("orders", 0, 0)
    );
    assert_eq!(l.group, "poison");
    assert_eq!(l.traceparent, traced.traceparent);
    assert_eq!(l.key.as_deref(), Some(&b"bad"[..]));
    // The letter is the original event: it decodes with its id and data.
    let original = Envelope::from_parts(l.key.clone(), l.value.clone(), &l.headers).unwrap();
    assert_eq!(original, traced);
}

#[tokio::test(start_paused = true)]
async fn permanent_failures_and_undecodable_events_are_not_retried() {
    let mut s = Setup::new("perm");
    s.retry = RetryPolicy::default().with_max_attempts(5);
    s.permanent = true;
    s.broken = vec![("a", 0)];
    s.publish(&[("a", 0)]).await;
    // A newer schema version than the handler reads, and a record that is no CloudEvent.
    s.transport
        .publish_envelope("orders", &step("v2", 0).with_schema_version(2))
        .await
        .unwrap();
    s.transport
        .publish(
            "orders",
            vec![OutgoingRecord {
                key: Some("raw".into()),
                value: Some("?".into()),
                ..Default::default()
            }],
        )
        .await
        .unwrap();
    let (router, mut calls) = s.start().await;
    settle(&s.transport, "perm", "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!(
        drain(&mut calls).len(),
        1,
        "only the first event reached the handler, once"
    );
    assert_eq!(stats.dead_lettered, 3);
    let letters = s.dlq().list(&DeadLetterFilter::all()).await.unwrap();
    let reasons: Vec<_> = letters
        .iter()
        .map(|l| (l.failure.attempts, l.failure.reason.clone()))
        .collect();
    assert!(
        reasons[0]
            .1
            .starts_with("permanent failure: cannot handle a#0"),
        "{reasons:?}"
    );
    assert_eq!(reasons[0].0, 1);
    assert!(reasons[1].1.contains("schema version 2"), "{reasons:?}");
    assert!(reasons[2].1.contains("not a CloudEvent"), "{reasons:?}");
    assert_eq!(
        letters[2].event_id, "orders/0/2",
        "synthetic id for a non-CloudEvent"
    );
    let matching = s
        .dlq()
        .list(&DeadLetterFilter::all().reason_contains("schema"))
        .await
        .unwrap();
    assert_eq!(matching.len(), 1);
    let by_key = s
        .dlq()
        .list(&DeadLetterFilter::all().key("raw"))
        .await
        .unwrap();
    assert_eq!(by_key.len(), 1);
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    let none = s
        .dlq()
        .list(&DeadLetterFilter::all().between(Some(future), None))
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test(start_paused = true)]
async fn under_skip_the_rest_of_the_key_continues() {
    let mut s = Setup::new("skipper");
    s.broken = vec![("a", 1)];
    s.publish(&[("a", 0), ("a", 1), ("a", 2), ("b", 0), ("a", 3)])
        .await;
    let (router, mut calls) = s.start().await;
    settle(&s.transport, "skipper", "orders").await;
    let stats = router.shutdown().await.unwrap();
    let calls = drain(&mut calls);
    assert_eq!(seqs_of(&calls, "a"), [0, 1, 2, 3]);
    assert_eq!(seqs_of(&calls, "b"), [0]);
    assert_eq!(
        (stats.handled, stats.dead_lettered, stats.parked),
        (4, 1, 0)
    );
    assert_eq!(
        s.dlq().list(&DeadLetterFilter::all()).await.unwrap().len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn under_sequenced_later_events_of_the_key_wait_and_replay_keeps_their_order() {
    let mut s = Setup::new("seq");
    s.policy = DeadLetterPolicy::Sequenced;
    s.broken = vec![("a", 1)];
    let sent = s
        .publish(&[("a", 0), ("a", 1), ("b", 0), ("a", 2), ("a", 3), ("b", 1)])
        .await;
    let (router, mut calls) = s.start().await;
    settle(&s.transport, "seq", "orders").await;
    let stats = router.shutdown().await.unwrap();
    let first = drain(&mut calls);
    assert_eq!(
        seqs_of(&first, "a"),
        [0, 1],
        "a#2 and a#3 never reached the handler"
    );
    assert_eq!(seqs_of(&first, "b"), [0, 1], "other keys go on");
    assert_eq!((stats.dead_lettered, stats.parked), (1, 2));
    let letters = s.dlq().list(&DeadLetterFilter::all()).await.unwrap();
    let kinds: Vec<_> = letters
        .iter()
        .map(|l| (l.event_id.clone(), l.kind))
        .collect();
    assert_eq!(
        kinds,
        [
            (sent[1].id.clone(), DeadLetterKind::Failed),
            (sent[3].id.clone(), DeadLetterKind::Parked),
            (sent[4].id.clone(), DeadLetterKind::Parked),
        ]
    );
    assert_eq!(letters[1].blocked_by.as_deref(), Some(sent[1].id.as_str()));

    // A restarted router remembers the blocked key from the dead-letter topic.
    let (router, mut calls) = s.start().await;
    s.publish(&[("a", 4)]).await;
    settle(&s.transport, "seq", "orders").await;
    assert!(drain(&mut calls).is_empty(), "a#4 is parked too");

    // Fix the handler and replay: the key's events run in their original order, with
    // their original ids, and the key is free again.
    s.broken_on.store(false, Ordering::SeqCst);
    let counts = s
        .dlq()
        .replay(&DeadLetterFilter::all(), ReplayTarget::OwnGroup)
        .await
        .unwrap();
    assert_eq!(counts.replayed, 4);
    settle(&s.transport, "seq", "orders").await;
    s.publish(&[("a", 5)]).await;
    settle(&s.transport, "seq", "orders").await;
    router.shutdown().await.unwrap();
    let after = drain(&mut calls);
    assert_eq!(seqs_of(&after, "a"), [1, 2, 3, 4, 5]);
    assert!(
        s.dlq()
            .list(&DeadLetterFilter::all())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn discarding_a_sequenced_failure_leaves_its_parked_events_in_order() {
    let mut s = Setup::new("disc");
    s.policy = DeadLetterPolicy::Sequenced;
    s.broken = vec![("a", 1)];
    let sent = s.publish(&[("a", 0), ("a", 1), ("a", 2)]).await;
    let (router, mut calls) = s.start().await;
    settle(&s.transport, "disc", "orders").await;
    let counts = s
        .dlq()
        .discard(&DeadLetterFilter::event(&sent[1].id))
        .await
        .unwrap();
    assert_eq!(counts.discarded, 1);
    // a#2 is still parked, so a#3 waits behind it rather than overtaking it.
    s.publish(&[("a", 3)]).await;
    settle(&s.transport, "disc", "orders").await;
    assert_eq!(seqs_of(&drain(&mut calls), "a"), [0, 1]);
    let parked = s.dlq().list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(
        parked.iter().map(|l| l.kind).collect::<Vec<_>>(),
        [DeadLetterKind::Parked; 2]
    );
    s.dlq()
        .replay(&DeadLetterFilter::all(), ReplayTarget::OwnGroup)
        .await
        .unwrap();
    settle(&s.transport, "disc", "orders").await;
    router.shutdown().await.unwrap();
    assert_eq!(seqs_of(&drain(&mut calls), "a"), [2, 3]);
}

#[tokio::test(start_paused = true)]
async fn a_replay_for_one_group_is_skipped_by_the_others() {
    let mut failing = Setup::new("failing");
    failing.broken = vec![("x", 0)];
    let mut healthy = Setup::new("healthy");
    healthy.transport = failing.transport.clone();
    healthy.inbox = Some(Arc::new(MemoryInbox::new()));
    failing.publish(&[("x", 0)]).await;
    let (r1, mut c1) = failing.start().await;
    let (r2, mut c2) = healthy.start().await;
    settle(&failing.transport, "failing", "orders").await;
    settle(&failing.transport, "healthy", "orders").await;
    failing.broken_on.store(false, Ordering::SeqCst);
    failing
        .dlq()
        .replay(&DeadLetterFilter::all(), ReplayTarget::OwnGroup)
        .await
        .unwrap();
    settle(&failing.transport, "failing", "orders").await;
    settle(&failing.transport, "healthy", "orders").await;
    assert_eq!(
        drain(&mut c1).len(),
        2,
        "failed once, then handled on replay"
    );
    assert_eq!(
        drain(&mut c2).len(),
        1,
        "the healthy group ignored the replay"
    );
    // A replay to all groups reaches the healthy group too, whose inbox knows the id.
    failing.broken_on.store(true, Ordering::SeqCst);
    failing.publish(&[("x", 0)]).await;
    settle(&failing.transport, "failing", "orders").await;
    failing.broken_on.store(false, Ordering::SeqCst);
    failing
        .dlq()
        .replay(&DeadLetterFilter::all(), ReplayTarget::AllGroups)
        .await
        .unwrap();
    settle(&failing.transport, "failing", "orders").await;
    settle(&failing.transport, "healthy", "orders").await;
    let s1 = r1.shutdown().await.unwrap();
    let s2 = r2.shutdown().await.unwrap();
    assert_eq!(s1.handled, 2);
    assert_eq!((s2.handled, s2.skipped, s2.duplicates), (2, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn graceful_shutdown_drains_running_handlers_and_commits() {
    let t = MemoryTransport::new();
    t.publish_envelopes("orders", &[step("slow", 0), step("slow", 1)])
        .await
        .unwrap();
    let (started_tx, mut started) = mpsc::unbounded_channel();
    let finished = Arc::new(Mutex::new(Vec::new()));
    let fin = finished.clone();
    let router = Router::builder(t.clone(), "drain")
        .on("orders", move |s: Step, _ctx: HandlerContext| {
            let (started_tx, fin) = (started_tx.clone(), fin.clone());
            async move {
                let _ = started_tx.send(s.seq);
                tokio::time::sleep(Duration::from_secs(5)).await;
                fin.lock().unwrap().push(s.seq);
                Ok::<(), HandlerError>(())
            }
        })
        .start()
        .await
        .unwrap();
    assert_eq!(recv_n(&mut started, 1).await, [0]);
    let stats = router.shutdown().await.unwrap();
    assert_eq!(
        stats.handled, 1,
        "the running handler finished; the queued one never started"
    );
    assert_eq!(*finished.lock().unwrap(), [0]);
    assert_eq!(
        t.committed("drain", &TopicPartition::new("orders", 0)),
        Some(1)
    );
}

#[tokio::test(start_paused = true)]
async fn events_published_from_a_handler_carry_correlation_and_trace() {
    let t = MemoryTransport::new();
    let router = Router::builder(t.clone(), "corr")
        .source("urn:test:corr")
        .on("orders", |s: Step, ctx: HandlerContext| async move {
            ctx.publish_event(
                "followups",
                &Step {
                    key: s.key,
                    seq: s.seq + 100,
                },
            )
            .await?;
            Ok::<(), HandlerError>(())
        })
        .start()
        .await
        .unwrap();
    let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let cause = step("k", 1)
        .with_correlation_id("flow-7")
        .with_traceparent(parent);
    t.publish_envelope("orders", &cause).await.unwrap();
    settle(&t, "corr", "orders").await;
    router.shutdown().await.unwrap();
    let records = t.records("followups");
    assert_eq!(records.len(), 1);
    let next = Envelope::from_record(&records[0]).unwrap();
    assert_eq!(next.source, "urn:test:corr");
    assert_eq!(next.key_str(), Some("k"));
    assert_eq!(next.correlation_id.as_deref(), Some("flow-7"));
    assert_eq!(next.causation_id.as_deref(), Some(cause.id.as_str()));
    let (p, c) = (
        TraceParent::parse(parent).unwrap(),
        TraceParent::parse(next.traceparent.as_deref().unwrap()).unwrap(),
    );
    assert_eq!(c.trace_id, p.trace_id);
    assert_ne!(c.span_id, p.span_id);
    assert_eq!(next.decode::<Step>().unwrap().seq, 101);
}

#[tokio::test(start_paused = true)]
async fn events_without_a_handler_are_skipped_and_committed() {
    let t = MemoryTransport::new();
    let router = Router::builder(t.clone(), "picky")
        .on_type("orders", "some.other.type", |_e, _ctx| async { Ok(()) })
        .start()
        .await
        .unwrap();
    t.publish_envelopes("orders", &[step("k", 0), step("k", 1)])
        .await
        .unwrap();
    settle(&t, "picky", "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!((stats.handled, stats.skipped), (0, 2));
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_a_failed_attempt_not_a_dead_router() {
    let t = MemoryTransport::new();
    let router = Router::builder(t.clone(), "panicky")
        .retry(
            RetryPolicy::default()
                .with_max_attempts(2)
                .with_jitter(Jitter::None),
        )
        .on("orders", |s: Step, _ctx: HandlerContext| async move {
            assert!(s.key != "boom", "handler bug");
            Ok::<(), HandlerError>(())
        })
        .start()
        .await
        .unwrap();
    t.publish_envelopes("orders", &[step("boom", 0), step("fine", 0)])
        .await
        .unwrap();
    settle(&t, "panicky", "orders").await;
    let stats = router.shutdown().await.unwrap();
    assert_eq!((stats.handled, stats.dead_lettered), (1, 1));
    let letters = DeadLetterQueue::new(t, "orders", "panicky")
        .list(&DeadLetterFilter::all())
        .await
        .unwrap();
    assert_eq!(letters[0].failure.attempts, 2);
    assert!(
        letters[0].failure.reason.contains("panicked"),
        "{}",
        letters[0].failure.reason
    );
}

#[tokio::test(start_paused = true)]
async fn the_commit_never_passes_an_offset_whose_outcome_is_not_final() {
    let t = MemoryTransport::new();
    let release = Arc::new(tokio::sync::Notify::new());
    let gate = release.clone();
    let router = Router::builder(t.clone(), "careful")
        .on("orders", move |s: Step, _ctx: HandlerContext| {
            let gate = gate.clone();
            async move {
                if s.key == "slow" {
                    gate.notified().await;
                }
                Ok::<(), HandlerError>(())
            }
        })
        .start()
        .await
        .unwrap();
    // Offset 0 is slow; offsets 1 and 2 (other keys) finish first.
    t.publish_envelopes(
        "orders",
        &[step("slow", 0), step("fast", 0), step("quick", 0)],
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let tp = TopicPartition::new("orders", 0);
    assert_eq!(
        t.committed("careful", &tp),
        None,
        "offset 0 is still running"
    );
    release.notify_one();
    settle(&t, "careful", "orders").await;
    assert_eq!(t.committed("careful", &tp), Some(3));
    assert_eq!(router.shutdown().await.unwrap().handled, 3);
}

#[tokio::test(start_paused = true)]
async fn groups_sharing_a_dlq_topic_name_see_only_their_letters() {
    let mut first = Setup::new("team a");
    first.broken = vec![("x", 0)];
    let mut second = Setup::new("team_a");
    second.transport = first.transport.clone();
    second.broken = vec![("x", 0)];
    first.publish(&[("x", 0)]).await;
    let (r1, _c1) = first.start().await;
    let (r2, _c2) = second.start().await;
    settle(&first.transport, "team a", "orders").await;
    settle(&first.transport, "team_a", "orders").await;
    r1.shutdown().await.unwrap();
    r2.shutdown().await.unwrap();
    assert_eq!(first.dlq().topic(), second.dlq().topic());
    for s in [&first, &second] {
        let letters = s.dlq().list(&DeadLetterFilter::all()).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].group, s.group);
    }
    let all = DeadLetterQueue::for_dlq_topic(first.transport.clone(), first.dlq().topic());
    assert_eq!(all.list(&DeadLetterFilter::all()).await.unwrap().len(), 2);
}
