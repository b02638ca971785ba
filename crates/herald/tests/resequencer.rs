//! The resequencer in a router, on the memory transport and paused Tokio time: events of
//! one key reach the handler in `herald_seq` order whatever order they were appended in;
//! duplicates are dropped; a gap is given up on after the timeout or when a bound is hit,
//! reported, and delivery continues; held events are never committed.

mod common;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use common::*;
use herald::{
    DeadLetterFilter, DeadLetterQueue, Envelope, HandlerContext, MemoryTransport, Router,
    RouterHandle,
    resequencer::{EntityKey, GapPolicy, GapReason, GapReport, ResequencerConfig, with_sequence},
    transport::{Admin, PublisherExt, TopicPartition, TopicReader},
};
use tokio::{sync::mpsc, time::Instant};

const TIMEOUT: Duration = Duration::from_secs(5);

/// Step `seq` of entity `key`, numbered `seq`.
fn numbered(key: &str, seq: u32) -> Envelope {
    with_sequence(step(key, seq), u64::from(seq))
}

struct Harness {
    t: MemoryTransport,
    group: &'static str,
    router: Option<RouterHandle>,
    calls: mpsc::UnboundedReceiver<(String, u32, Instant)>,
    gaps: Arc<Mutex<Vec<GapReport<EntityKey>>>>,
    started: Instant,
}

impl Harness {
    /// A router of `group` resequencing `orders` (one partition) with `config`.
    async fn start(group: &'static str, config: ResequencerConfig) -> Self {
        let t = MemoryTransport::new();
        t.create_topic("orders", 1).await.unwrap();
        let mut h = Self {
            t,
            group,
            router: None,
            calls: mpsc::unbounded_channel().1,
            gaps: Arc::default(),
            started: Instant::now(),
        };
        h.restart(config).await;
        h
    }

    /// Starts (again) a router on the same transport and group.
    async fn restart(&mut self, config: ResequencerConfig) {
        let (tx, rx) = mpsc::unbounded_channel();
        let gaps = self.gaps.clone();
        let router = Router::builder(self.t.clone(), self.group)
            .resequence("orders", config)
            .on_sequence_gap(move |gap| gaps.lock().unwrap().push(gap.clone()))
            .on("orders", move |s: Step, _ctx: HandlerContext| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((s.key, s.seq, Instant::now()));
                    Ok(())
                }
            })
            .start()
            .await
            .unwrap();
        self.router = Some(router);
        self.calls = rx;
    }

    async fn publish(&self, events: &[Envelope]) {
        self.t.publish_envelopes("orders", events).await.unwrap();
    }

    /// Waits until every record of `orders` is final and committed.
    async fn settle(&self) {
        let tp = TopicPartition::new("orders", 0);
        for _ in 0..3_000 {
            let end = self.t.end_offset(&tp).await.unwrap();
            if self.t.committed(self.group, &tp) == Some(end) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{} never committed all of orders", self.group);
    }

    /// The handler calls so far: (key, seq, when).
    fn calls(&mut self) -> Vec<(String, u32, Instant)> {
        let mut out = Vec::new();
        while let Ok(c) = self.calls.try_recv() {
            out.push(c);
        }
        out
    }

    fn gaps(&self) -> Vec<GapReport<EntityKey>> {
        self.gaps.lock().unwrap().clone()
    }

    async fn shutdown(&mut self) -> herald::RouterStats {
        self.router.take().unwrap().shutdown().await.unwrap()
    }
}

fn seqs_of(calls: &[(String, u32, Instant)], key: &str) -> Vec<u32> {
    calls.iter().filter(|c| c.0 == key).map(|c| c.1).collect()
}

fn from_one() -> ResequencerConfig {
    ResequencerConfig::default()
        .with_first_sequence(Some(1))
        .with_timeout(TIMEOUT)
}

#[tokio::test(start_paused = true)]
async fn events_in_order_pass_straight_through() {
    let mut h = Harness::start("in-order", from_one()).await;
    h.publish(&[
        numbered("a", 1),
        numbered("b", 1),
        numbered("a", 2),
        numbered("a", 3),
        numbered("b", 2),
    ])
    .await;
    h.settle().await;
    let stats = h.shutdown().await;
    let calls = h.calls();
    assert_eq!(seqs_of(&calls, "a"), [1, 2, 3]);
    assert_eq!(seqs_of(&calls, "b"), [1, 2]);
    assert!(
        calls.iter().all(|c| c.2 - h.started < TIMEOUT),
        "nothing waited for a timeout"
    );
    assert!(h.gaps().is_empty());
    assert_eq!(stats.handled, 5);
}

#[tokio::test(start_paused = true)]
async fn reordered_arrivals_are_handled_in_sequence_order() {
    let mut h = Harness::start("reorder", from_one()).await;
    h.publish(&[
        numbered("a", 3),
        numbered("a", 1),
        numbered("b", 2),
        numbered("a", 2),
        numbered("a", 5),
        numbered("b", 1),
    ])
    .await;
    // The missing a4 comes in a later poll: a5 waits for it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    h.publish(&[numbered("a", 4)]).await;
    h.settle().await;
    let stats = h.shutdown().await;
    let calls = h.calls();
    assert_eq!(seqs_of(&calls, "a"), [1, 2, 3, 4, 5]);
    assert_eq!(seqs_of(&calls, "b"), [1, 2]);
    assert!(calls.iter().all(|c| c.2 - h.started < TIMEOUT));
    assert!(h.gaps().is_empty(), "{:?}", h.gaps());
    assert_eq!((stats.handled, stats.duplicates), (7, 0));
}

#[tokio::test(start_paused = true)]
async fn duplicate_sequence_numbers_are_dropped() {
    let mut h = Harness::start("dups", from_one()).await;
    // Copies with fresh event ids (a producer that re-sent a step): no inbox could tell.
    h.publish(&[
        numbered("a", 1),
        numbered("a", 3),
        numbered("a", 3),
        numbered("a", 2),
        numbered("a", 2),
        numbered("a", 1),
    ])
    .await;
    // And a transport duplicate of a delivered record.
    h.t.duplicate(&TopicPartition::new("orders", 0), 0).unwrap();
    h.settle().await;
    let stats = h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1, 2, 3]);
    assert_eq!((stats.handled, stats.duplicates), (3, 4));
    assert!(h.gaps().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_gap_is_reported_after_the_timeout_and_delivery_continues() {
    let mut h = Harness::start("gap", from_one()).await;
    h.publish(&[numbered("a", 1), numbered("a", 3), numbered("a", 4)])
        .await;
    tokio::time::sleep(TIMEOUT / 2).await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1], "3 and 4 wait for 2");
    assert_eq!(
        h.t.committed("gap", &TopicPartition::new("orders", 0)),
        Some(1),
        "held events are not committed"
    );
    h.settle().await;
    let calls = h.calls();
    assert_eq!(seqs_of(&calls, "a"), [3, 4]);
    assert!(calls.iter().all(|c| c.2 - h.started >= TIMEOUT));
    let gaps = h.gaps();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].missing, 2..=2);
    assert_eq!(gaps[0].reason, GapReason::Timeout);
    assert_eq!(gaps[0].released, 2);
    assert_eq!(gaps[0].entity.key.as_ref(), b"a");
    assert!(gaps[0].waited >= TIMEOUT);
    // The missing step turns up after all: too late to keep the order, so it is dropped.
    h.publish(&[numbered("a", 2), numbered("a", 5)]).await;
    h.settle().await;
    let stats = h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [5]);
    assert_eq!((stats.handled, stats.skipped), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn under_dead_letter_a_late_event_goes_to_the_dead_letter_topic() {
    let config = from_one().with_policy(GapPolicy::DeadLetter);
    let mut h = Harness::start("late-dlq", config).await;
    h.publish(&[numbered("a", 1), numbered("a", 3)]).await;
    h.settle().await;
    let late = numbered("a", 2);
    h.publish(std::slice::from_ref(&late)).await;
    h.settle().await;
    let stats = h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1, 3]);
    assert_eq!(stats.dead_lettered, 1);
    let dlq = DeadLetterQueue::new(h.t.clone(), "orders", "late-dlq");
    let letters = dlq.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].event_id, late.id);
    assert_eq!(
        letters[0].failure.attempts, 0,
        "never handed to the handler"
    );
    assert_eq!(
        letters[0].failure.reason,
        "sequence number 2 arrived after its gap was given up on"
    );
}

#[tokio::test(start_paused = true)]
async fn the_buffer_is_bounded_per_entity() {
    let config = from_one()
        .with_timeout(Duration::from_secs(3600))
        .with_max_per_entity(3);
    let mut h = Harness::start("entity-bound", config).await;
    h.publish(&[
        numbered("a", 3),
        numbered("a", 4),
        numbered("a", 5),
        numbered("a", 6),
    ])
    .await;
    h.settle().await;
    h.shutdown().await;
    let calls = h.calls();
    assert_eq!(seqs_of(&calls, "a"), [3, 4, 5, 6]);
    assert!(
        calls
            .iter()
            .all(|c| c.2 - h.started < Duration::from_secs(60)),
        "the fourth held event gave up the gap, long before the timeout"
    );
    let gaps = h.gaps();
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (gaps[0].missing.clone(), gaps[0].reason),
        (1..=2, GapReason::EntityFull)
    );
}

#[tokio::test(start_paused = true)]
async fn the_buffer_is_bounded_in_all() {
    let config = from_one()
        .with_timeout(Duration::from_secs(3600))
        .with_max_total(3);
    let mut h = Harness::start("total-bound", config).await;
    h.publish(&[numbered("a", 2), numbered("b", 2), numbered("c", 2)])
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.calls().is_empty(), "three held, within the bound");
    h.publish(&[numbered("d", 2)]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.calls()
            .iter()
            .map(|c| (c.0.as_str(), c.1))
            .collect::<Vec<_>>(),
        [("a", 2)],
        "the fourth gave up the gap that would time out first"
    );
    let gaps = h.gaps();
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].entity.key.as_ref(), b"a");
    assert_eq!(gaps[0].reason, GapReason::BufferFull);
    h.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_malformed_sequence_number_is_dead_lettered() {
    let mut h = Harness::start("malformed", from_one()).await;
    let bad = step("a", 1).with_extension("herald_seq", "one");
    h.publish(&[bad.clone(), numbered("a", 1)]).await;
    h.settle().await;
    let stats = h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1]);
    assert_eq!((stats.handled, stats.dead_lettered), (1, 1));
    let dlq = DeadLetterQueue::new(h.t.clone(), "orders", "malformed");
    let letters = dlq.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(letters[0].event_id, bad.id);
    assert!(
        letters[0].failure.reason.contains("not an unsigned 64-bit"),
        "{}",
        letters[0].failure.reason
    );
}

#[tokio::test(start_paused = true)]
async fn events_held_at_a_crash_are_redelivered_and_resequenced() {
    let mut h = Harness::start("crash", from_one()).await;
    h.publish(&[numbered("a", 2)]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.calls().is_empty(), "a2 waits for a1");
    let tp = TopicPartition::new("orders", 0);
    assert_eq!(h.t.committed("crash", &tp), None, "a2 is not committed");
    h.router.take().unwrap().abort().await;
    // The restarted member reads a2 again and holds it again.
    h.restart(from_one()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.calls().is_empty(), "a2 waits for a1 again");
    h.publish(&[numbered("a", 1)]).await;
    h.settle().await;
    h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1, 2]);
    assert!(h.gaps().is_empty(), "{:?}", h.gaps());
}

/// Numbering from the first event seen (the default), as a consumer resuming mid-stream
/// uses it: only saved state tells a restarted member where an entity stood.
fn from_first_seen() -> ResequencerConfig {
    ResequencerConfig::default().with_timeout(TIMEOUT)
}

#[tokio::test(start_paused = true)]
async fn a_restart_mid_gap_keeps_the_entity_numbering() {
    let mut h = Harness::start("restart", from_first_seen()).await;
    h.publish(&[numbered("a", 1), numbered("a", 2)]).await;
    h.settle().await;
    h.publish(&[numbered("a", 4)]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1, 2], "a4 waits for a3");
    h.shutdown().await;

    // The new member reads a4 again first. Without the saved state it would start the
    // entity at 4, hand a4 over before a3 and drop a3 as a duplicate.
    h.restart(from_first_seen()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.calls().is_empty(), "a4 still waits for a3");
    h.publish(&[numbered("a", 3)]).await;
    h.settle().await;
    h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [3, 4]);
    assert!(h.gaps().is_empty(), "{:?}", h.gaps());
}

#[tokio::test(start_paused = true)]
async fn a_crash_mid_gap_keeps_the_entity_numbering() {
    let mut h = Harness::start("crash-mid-gap", from_first_seen()).await;
    h.publish(&[numbered("a", 1), numbered("a", 2), numbered("b", 7)])
        .await;
    h.settle().await;
    h.publish(&[numbered("a", 4), numbered("b", 9)]).await;
    // Past a commit interval: the state of a and b is saved with the offsets.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.calls().len(), 3);
    h.router.take().unwrap().abort().await;

    h.restart(from_first_seen()).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(h.calls().is_empty(), "a4 and b9 wait for a3 and b8");
    // A copy of an event finished before the crash is a duplicate, not handled again.
    h.publish(&[numbered("a", 2), numbered("b", 8), numbered("a", 3)])
        .await;
    h.settle().await;
    h.shutdown().await;
    let calls = h.calls();
    assert_eq!(seqs_of(&calls, "a"), [3, 4]);
    assert_eq!(seqs_of(&calls, "b"), [8, 9]);
    assert!(h.gaps().is_empty(), "{:?}", h.gaps());
}

#[tokio::test(start_paused = true)]
async fn a_gap_given_up_before_a_restart_makes_its_event_late_after_it() {
    let config = from_first_seen().with_policy(GapPolicy::DeadLetter);
    let mut h = Harness::start("late-restart", config.clone()).await;
    h.publish(&[numbered("a", 1), numbered("a", 3)]).await;
    h.settle().await; // a2 given up after the timeout, a3 handled
    h.shutdown().await;
    assert_eq!(seqs_of(&h.calls(), "a"), [1, 3]);
    assert_eq!(h.gaps().len(), 1);

    h.restart(config).await;
    let late = numbered("a", 2);
    h.publish(std::slice::from_ref(&late)).await;
    h.settle().await;
    let stats = h.shutdown().await;
    assert!(h.calls().is_empty(), "a2 is late, not handled");
    assert_eq!(stats.dead_lettered, 1);
    let dlq = DeadLetterQueue::new(h.t.clone(), "orders", "late-restart");
    let letters = dlq.list(&DeadLetterFilter::all()).await.unwrap();
    assert_eq!(letters[0].event_id, late.id);
}
