//! The resequencer: events of one entity delivered in the order of their sequence numbers,
//! whatever order they arrive in.
//!
//! The log keeps the order events were *appended* in, which is not always the order they
//! were *produced* in: two producer instances racing on one entity, a producer retrying
//! with several requests in flight, or an outbox relay publishing in parallel can append
//! step 3 before step 2. An event that carries its entity's sequence number lets the
//! consumer restore the order.
//!
//! - **The number** travels in the record header [`SEQUENCE_HEADER`] (`herald_seq`) as
//!   decimal ASCII, an unsigned 64-bit integer ([`with_sequence`] sets it on an
//!   [`Envelope`]; as an `Envelope` extension it survives dead-lettering and replay).
//!   Numbers of one entity are consecutive: `n + 1` follows `n`.
//! - **The entity** is the record key within its partition (the router's [`EntityKey`]):
//!   with keyed partitioning, simply the key, the unit the router already keeps in order.
//! - **In order**, an event is delivered at once. **Ahead** of the expected number, it is
//!   held until its predecessors arrive. **Behind** it, it is a duplicate (dropped) or, if
//!   its number fell in a gap given up on, *late* (see [`GapPolicy`]).
//! - **Bounds.** At most [`max_per_entity`](ResequencerConfig::max_per_entity) events are
//!   held per entity and [`max_total`](ResequencerConfig::max_total) in all, and a held
//!   event waits at most [`timeout`](ResequencerConfig::timeout) for its predecessors.
//!   Past a bound the oldest gap is given up: a [`GapReport`] says which numbers are
//!   missing and why, and delivery continues after the gap.
//! - **Where the numbering starts.** With
//!   [`first_sequence`](ResequencerConfig::first_sequence) unset (the default) the first
//!   number seen for an entity starts it; an event that overtakes its entity's very first
//!   event makes that one look like a duplicate (dropped, and counted in
//!   `herald_sdk_resequencer_duplicates_total`). With `first_sequence = Some(n)` entities
//!   start at `n`, so nothing is lost at the start of a stream.
//! - **Restarts.** A [`Resequencer`] keeps its state in memory;
//!   [`restore`](Resequencer::restore) starts an entity from saved state. A
//!   [`Router`](crate::Router) saves it: each entity's next number *and* the gaps it gave
//!   up on, as far as the events are final (handled, dead-lettered or dropped), go to the
//!   state topic `<topic>.<group>.seq` before each offset commit, and a member reads them
//!   back for every partition it is assigned. So after a restart (or a rebalance) an event
//!   ahead of its entity's next number still waits for its predecessors, one already
//!   handled is a duplicate, and one from a given-up gap is late, as without the restart.
//!   Held events are never final, so the commit stays behind them and they are read again.
//!   See docs/adr/0011-resequencer-state-topic.md.
//!
//! [`Resequencer`] is the buffer itself, generic over the entity and the item, for
//! consumers of your own. A [`Router`](crate::Router) resequences a topic with
//! [`RouterBuilder::resequence`](crate::router::RouterBuilder::resequence); there, held
//! events are not committed (a crash redelivers them), and
//! [`RouterBuilder::on_sequence_gap`](crate::router::RouterBuilder::on_sequence_gap)
//! receives each [`GapReport`], also logged and counted in
//! `herald_sdk_resequencer_gaps_total`.
//!
//! ```
//! use std::time::Duration;
//! use herald::resequencer::{GapReason, Resequencer, ResequencerConfig};
//! use tokio::time::Instant;
//!
//! let config = ResequencerConfig::default()
//!     .with_first_sequence(Some(1))
//!     .with_timeout(Duration::from_secs(2));
//! let mut buffer = Resequencer::new(config);
//! let t0 = Instant::now();
//! assert!(buffer.push("order-1", 2, "b", t0).deliver.is_empty(), "2 waits for 1");
//! assert_eq!(buffer.push("order-1", 1, "a", t0).deliver, ["a", "b"]);
//! assert!(buffer.push("order-1", 4, "d", t0).deliver.is_empty(), "4 waits for 3");
//! assert_eq!(buffer.next_deadline(), Some(t0 + Duration::from_secs(2)));
//! let given_up = buffer.expire(t0 + Duration::from_secs(2));
//! assert_eq!(given_up.deliver, ["d"]);
//! assert_eq!(given_up.gaps[0].missing, 3..=3);
//! assert_eq!(given_up.gaps[0].reason, GapReason::Timeout);
//! ```

use std::{
    collections::{BTreeMap, BTreeSet, HashMap, VecDeque, btree_map},
    hash::Hash,
    ops::RangeInclusive,
    time::Duration,
};

use bytes::Bytes;
use thiserror::Error;
use tokio::time::Instant;

use crate::{envelope::Envelope, transport::Header};

/// The record header holding an event's sequence number within its entity.
pub const SEQUENCE_HEADER: &str = "herald_seq";

/// Gaps given up on, by `group`, `topic` and `reason` (`timeout`, `entity_full`,
/// `buffer_full`).
pub const GAPS: &str = "herald_sdk_resequencer_gaps_total";
/// Events dropped because their sequence number was delivered already.
pub const DUPLICATES: &str = "herald_sdk_resequencer_duplicates_total";
/// Events that arrived after their gap was given up on (dropped or dead-lettered).
pub const LATE: &str = "herald_sdk_resequencer_late_total";

/// How many given-up gaps an entity remembers, to tell late events from duplicates.
const GAPS_REMEMBERED: usize = 16;

/// `envelope` with sequence number `seq` in its [`SEQUENCE_HEADER`] (replacing any).
pub fn with_sequence(mut envelope: Envelope, seq: u64) -> Envelope {
    envelope.extensions.retain(|h| h.key != SEQUENCE_HEADER);
    envelope.with_extension(SEQUENCE_HEADER, seq.to_string())
}

/// A [`SEQUENCE_HEADER`] that is not an unsigned 64-bit decimal integer.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("header {SEQUENCE_HEADER} {value:?} is not an unsigned 64-bit decimal integer")]
pub struct SequenceError {
    /// The header value, lossily decoded.
    pub value: String,
}

/// The sequence number in `headers`: `None` without a [`SEQUENCE_HEADER`].
pub fn sequence_of(headers: &[Header]) -> Option<Result<u64, SequenceError>> {
    let header = headers.iter().rev().find(|h| h.key == SEQUENCE_HEADER)?;
    let parsed = header
        .value_str()
        .filter(|s| !s.starts_with('+'))
        .and_then(|s| s.parse::<u64>().ok());
    Some(parsed.ok_or_else(|| {
        SequenceError {
            value: header
                .value
                .as_deref()
                .map_or_else(|| "null".to_owned(), |v| String::from_utf8_lossy(v).into()),
        }
    }))
}

/// What happens to an event that arrives after its gap was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GapPolicy {
    /// Drop it (logged and counted): delivering it now would break the order.
    #[default]
    Skip,
    /// Send it to the group's dead-letter topic as failed, where it can be inspected and
    /// replayed (a replay is delivered without resequencing).
    DeadLetter,
}

/// Tuning of a [`Resequencer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResequencerConfig {
    /// Longest a held event waits for its predecessors.
    pub timeout: Duration,
    /// Events held per entity; one more gives up the entity's oldest gap.
    pub max_per_entity: usize,
    /// Events held in all; one more gives up the gap that would time out first. In a
    /// router, keep it below [`RouterConfig::max_in_flight`](crate::RouterConfig::max_in_flight):
    /// held events count as in flight, and polling pauses at that many.
    pub max_total: usize,
    /// What happens to events that arrive after their gap was given up on.
    pub policy: GapPolicy,
    /// The number every entity starts at; `None`: the first number seen starts it.
    pub first_sequence: Option<u64>,
    /// An entity with nothing held and no event for this long is forgotten (its next
    /// event starts it again, as a new entity would).
    pub forget_idle_after: Duration,
}

impl Default for ResequencerConfig {
    /// 5 s timeout, 64 events per entity, 512 in all, [`GapPolicy::Skip`], numbering
    /// from the first event seen, idle entities forgotten after an hour.
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_per_entity: 64,
            max_total: 512,
            policy: GapPolicy::Skip,
            first_sequence: None,
            forget_idle_after: Duration::from_secs(3600),
        }
    }
}

impl ResequencerConfig {
    /// Sets the timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the per-entity bound (at least 1).
    pub fn with_max_per_entity(mut self, n: usize) -> Self {
        self.max_per_entity = n.max(1);
        self
    }

    /// Sets the total bound (at least 1).
    pub fn with_max_total(mut self, n: usize) -> Self {
        self.max_total = n.max(1);
        self
    }

    /// Sets the policy for late events.
    pub fn with_policy(mut self, policy: GapPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets where numbering starts.
    pub fn with_first_sequence(mut self, first: Option<u64>) -> Self {
        self.first_sequence = first;
        self
    }

    /// Sets how long an idle entity is remembered.
    pub fn with_forget_idle_after(mut self, after: Duration) -> Self {
        self.forget_idle_after = after;
        self
    }
}

/// An entity of a resequenced topic in a router: a record key within a partition.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityKey {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Record key.
    pub key: Bytes,
}

/// Why a gap was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GapReason {
    /// The oldest held event of the entity waited the whole timeout.
    Timeout,
    /// The entity held its maximum.
    EntityFull,
    /// The resequencer held its maximum in all.
    BufferFull,
}

impl GapReason {
    /// The metric label: `timeout`, `entity_full` or `buffer_full`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::EntityFull => "entity_full",
            Self::BufferFull => "buffer_full",
        }
    }
}

/// Sequence numbers given up on: delivery of the entity continued after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GapReport<K> {
    /// The entity.
    pub entity: K,
    /// The numbers that never arrived.
    pub missing: RangeInclusive<u64>,
    /// Why the gap was given up on.
    pub reason: GapReason,
    /// Held events delivered right after the gap (the run that follows it).
    pub released: usize,
    /// How long the oldest held event of the entity had waited.
    pub waited: Duration,
}

/// What a push or an expiry lets go of.
#[derive(Debug)]
#[must_use = "released items must be delivered or dropped"]
pub struct Released<K, T> {
    /// Items to deliver now, in order within each entity.
    pub deliver: Vec<T>,
    /// Items whose number was delivered (or is held) already.
    pub duplicates: Vec<T>,
    /// Items whose number fell in a gap given up on.
    pub late: Vec<T>,
    /// Gaps given up on.
    pub gaps: Vec<GapReport<K>>,
}

impl<K, T> Default for Released<K, T> {
    fn default() -> Self {
        Self {
            deliver: Vec::new(),
            duplicates: Vec::new(),
            late: Vec::new(),
            gaps: Vec::new(),
        }
    }
}

/// What the resequencer knows of one entity.
struct Entity<T> {
    /// The number to deliver next; `None` until the first event when numbering starts at
    /// the first one seen.
    next: Option<u64>,
    /// Events ahead of `next`, with when each arrived.
    held: BTreeMap<u64, (Instant, T)>,
    /// Gaps given up on, newest last.
    skipped: VecDeque<RangeInclusive<u64>>,
    /// When the oldest held event times out (also a key of `Resequencer::deadlines`).
    deadline: Option<Instant>,
    last_seen: Instant,
}

impl<T> Entity<T> {
    /// Moves the run of held events that continues `next` to `deliver`; returns how many.
    fn release(&mut self, deliver: &mut Vec<T>) -> usize {
        let mut released = 0;
        while let Some(entry) = self.held.first_entry() {
            let seq = *entry.key();
            if Some(seq) != self.next {
                break;
            }
            deliver.push(entry.remove().1);
            self.next = Some(seq.saturating_add(1));
            released += 1;
        }
        released
    }

    fn oldest_arrival(&self) -> Option<Instant> {
        self.held.values().map(|(at, _)| *at).min()
    }
}

/// Holds events that arrive ahead of their entity's next sequence number and lets them go
/// in order. Time is passed in (`now`), so it runs on paused Tokio time in tests.
pub struct Resequencer<K, T> {
    config: ResequencerConfig,
    entities: HashMap<K, Entity<T>>,
    /// Deadline of every entity holding events, soonest first.
    deadlines: BTreeSet<(Instant, K)>,
    held: usize,
    next_sweep: Option<Instant>,
}

impl<K, T> std::fmt::Debug for Resequencer<K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resequencer")
            .field("config", &self.config)
            .field("entities", &self.entities.len())
            .field("held", &self.held)
            .finish()
    }
}

impl<K: Clone + Ord + Hash, T> Resequencer<K, T> {
    /// An empty resequencer.
    pub fn new(config: ResequencerConfig) -> Self {
        Self {
            config,
            entities: HashMap::new(),
            deadlines: BTreeSet::new(),
            held: 0,
            next_sweep: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ResequencerConfig {
        &self.config
    }

    /// Events held in all.
    pub fn held(&self) -> usize {
        self.held
    }

    /// When [`expire`](Self::expire) next has a gap to give up on.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Offers `item`, number `seq` of `entity`, arrived at `now`.
    pub fn push(&mut self, entity: K, seq: u64, item: T, now: Instant) -> Released<K, T> {
        let mut out = Released::default();
        self.sweep(now);
        let first = self.config.first_sequence;
        let state = self
            .entities
            .entry(entity.clone())
            .or_insert_with(|| Entity {
                next: first,
                held: BTreeMap::new(),
                skipped: VecDeque::new(),
                deadline: None,
                last_seen: now,
            });
        state.last_seen = now;
        let next = *state.next.get_or_insert(seq);
        if seq < next {
            if state.skipped.iter().any(|gap| gap.contains(&seq)) {
                out.late.push(item);
            } else {
                out.duplicates.push(item);
            }
            return out;
        }
        if seq == next {
            out.deliver.push(item);
            state.next = Some(seq.saturating_add(1));
            let released = state.release(&mut out.deliver);
            self.held -= released;
            self.reschedule(&entity);
            return out;
        }
        match state.held.entry(seq) {
            btree_map::Entry::Occupied(_) => {
                out.duplicates.push(item);
                return out;
            }
            btree_map::Entry::Vacant(slot) => {
                slot.insert((now, item));
            }
        }
        let entity_full = state.held.len() > self.config.max_per_entity.max(1);
        self.held += 1;
        self.reschedule(&entity);
        if entity_full {
            self.give_up(&entity, GapReason::EntityFull, now, &mut out);
        }
        while self.held > self.config.max_total.max(1) {
            let Some((_, soonest)) = self.deadlines.first().cloned() else {
                break;
            };
            self.give_up(&soonest, GapReason::BufferFull, now, &mut out);
        }
        out
    }

    /// Gives up the gaps whose oldest held event has waited the timeout by `now`.
    pub fn expire(&mut self, now: Instant) -> Released<K, T> {
        let mut out = Released::default();
        self.sweep(now);
        while let Some((at, entity)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.give_up(&entity, GapReason::Timeout, now, &mut out);
        }
        out
    }

    /// Starts `entity` at `next`, with `gaps` given up on earlier (numbers below `next`
    /// are duplicates, or late when in one of `gaps`), unless it is known already: state
    /// saved before a restart. Returns whether it was restored.
    pub fn restore(
        &mut self,
        entity: K,
        next: u64,
        gaps: Vec<RangeInclusive<u64>>,
        now: Instant,
    ) -> bool {
        if self.entities.contains_key(&entity) {
            return false;
        }
        let skip = gaps.len().saturating_sub(GAPS_REMEMBERED);
        self.entities.insert(
            entity,
            Entity {
                next: Some(next),
                held: BTreeMap::new(),
                skipped: gaps.into_iter().skip(skip).collect(),
                deadline: None,
                last_seen: now,
            },
        );
        true
    }

    /// The gaps `entity` gave up on that it still remembers, oldest first.
    pub fn gaps(&self, entity: &K) -> Vec<RangeInclusive<u64>> {
        self.entities
            .get(entity)
            .map(|e| e.skipped.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets every entity `which` selects, with what it holds; returns the held items.
    pub fn forget(&mut self, mut which: impl FnMut(&K) -> bool) -> Vec<T> {
        let doomed: Vec<K> = self.entities.keys().filter(|k| which(k)).cloned().collect();
        let mut items = Vec::new();
        for entity in doomed {
            if let Some(state) = self.entities.remove(&entity) {
                if let Some(at) = state.deadline {
                    self.deadlines.remove(&(at, entity));
                }
                self.held -= state.held.len();
                items.extend(state.held.into_values().map(|(_, item)| item));
            }
        }
        items
    }

    /// Skips the entity's first gap: delivery continues at its lowest held number.
    fn give_up(&mut self, entity: &K, reason: GapReason, now: Instant, out: &mut Released<K, T>) {
        let Some(state) = self.entities.get_mut(entity) else {
            return;
        };
        let Some(&lowest) = state.held.keys().next() else {
            return;
        };
        let next = state.next.unwrap_or(lowest);
        let missing = next..=lowest.saturating_sub(1);
        let waited = state.oldest_arrival().map_or(Duration::ZERO, |at| now - at);
        if state.skipped.len() == GAPS_REMEMBERED {
            state.skipped.pop_front();
        }
        state.skipped.push_back(missing.clone());
        state.next = Some(lowest);
        let released = state.release(&mut out.deliver);
        self.held -= released;
        self.reschedule(entity);
        out.gaps.push(GapReport {
            entity: entity.clone(),
            missing,
            reason,
            released,
            waited,
        });
    }

    /// Moves the entity's deadline to its oldest held event's arrival plus the timeout.
    fn reschedule(&mut self, entity: &K) {
        let Some(state) = self.entities.get_mut(entity) else {
            return;
        };
        let deadline = state.oldest_arrival().map(|at| at + self.config.timeout);
        if deadline == state.deadline {
            return;
        }
        if let Some(old) = state.deadline.take() {
            self.deadlines.remove(&(old, entity.clone()));
        }
        if let Some(new) = deadline {
            self.deadlines.insert((new, entity.clone()));
        }
        state.deadline = deadline;
    }

    /// Forgets idle entities, at most twice per `forget_idle_after`.
    fn sweep(&mut self, now: Instant) {
        let every = self.config.forget_idle_after / 2;
        match self.next_sweep {
            None => self.next_sweep = Some(now + every),
            Some(at) if now >= at => {
                let idle = self.config.forget_idle_after;
                self.entities
                    .retain(|_, e| !e.held.is_empty() || now.duration_since(e.last_seen) < idle);
                self.next_sweep = Some(now + every);
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_one() -> ResequencerConfig {
        ResequencerConfig::default().with_first_sequence(Some(1))
    }

    #[test]
    fn sequence_headers_parse_strictly() {
        let h = |v: &str| vec![Header::new(SEQUENCE_HEADER, v)];
        assert_eq!(sequence_of(&h("42")), Some(Ok(42)));
        assert_eq!(sequence_of(&[]), None);
        for bad in ["", "-1", "+1", "1.0", "x", "18446744073709551616"] {
            assert!(matches!(sequence_of(&h(bad)), Some(Err(_))), "{bad:?}");
        }
        let e = with_sequence(with_sequence(Envelope::new("s", "t", ""), 1), 2);
        assert_eq!(
            sequence_of(&e.to_headers()),
            Some(Ok(2)),
            "replaced, not added"
        );
    }

    #[test]
    fn a_gap_is_reported_once_and_late_events_are_told_from_duplicates() {
        let mut r = Resequencer::new(from_one().with_timeout(Duration::from_secs(1)));
        let t0 = Instant::now();
        assert_eq!(r.push("e", 1, 1, t0).deliver, [1]);
        assert!(r.push("e", 3, 3, t0).deliver.is_empty());
        assert!(
            r.push("e", 5, 5, t0 + Duration::from_millis(500))
                .deliver
                .is_empty()
        );
        assert_eq!(r.held(), 2);
        assert!(r.expire(t0 + Duration::from_millis(999)).gaps.is_empty());
        let out = r.expire(t0 + Duration::from_secs(1));
        assert_eq!(out.deliver, [3]);
        assert_eq!(out.gaps.len(), 1, "5 has not waited its timeout yet");
        assert_eq!(
            (out.gaps[0].missing.clone(), out.gaps[0].released),
            (2..=2, 1)
        );
        assert_eq!(r.next_deadline(), Some(t0 + Duration::from_millis(1500)));
        let out = r.push("e", 2, 2, t0 + Duration::from_secs(1));
        assert_eq!((out.late, out.duplicates), (vec![2], vec![]));
        let out = r.push("e", 1, 1, t0 + Duration::from_secs(1));
        assert_eq!((out.late, out.duplicates), (vec![], vec![1]));
    }

    #[test]
    fn the_total_bound_gives_up_the_gap_that_would_time_out_first() {
        let mut r = Resequencer::new(from_one().with_max_total(2));
        let t0 = Instant::now();
        let _ = r.push("a", 2, "a2", t0);
        let _ = r.push("b", 2, "b2", t0 + Duration::from_millis(1));
        let out = r.push("b", 3, "b3", t0 + Duration::from_millis(2));
        assert_eq!(out.deliver, ["a2"]);
        assert_eq!(out.gaps[0].entity, "a");
        assert_eq!(out.gaps[0].reason, GapReason::BufferFull);
        assert_eq!(r.held(), 2);
    }

    #[test]
    fn a_restored_entity_continues_its_numbering_and_its_gaps() {
        let mut r = Resequencer::new(ResequencerConfig::default());
        let t0 = Instant::now();
        assert!(r.restore("a", 5, vec![2..=3], t0));
        assert!(
            !r.restore("a", 9, Vec::new(), t0),
            "known entities are kept"
        );
        assert!(r.push("a", 6, "a6", t0).deliver.is_empty(), "6 waits for 5");
        assert_eq!(r.push("a", 5, "a5", t0).deliver, ["a5", "a6"]);
        assert_eq!(r.push("a", 3, "a3", t0).late, ["a3"]);
        assert_eq!(r.push("a", 4, "a4", t0).duplicates, ["a4"]);
        assert_eq!(r.gaps(&"a"), [2..=3]);
    }

    #[test]
    fn forgetting_an_entity_returns_what_it_held() {
        let mut r = Resequencer::new(from_one());
        let t0 = Instant::now();
        let _ = r.push("a", 3, "a3", t0);
        let _ = r.push("b", 3, "b3", t0);
        assert_eq!(r.forget(|e| *e == "a"), ["a3"]);
        assert_eq!(r.held(), 1);
        assert_eq!(r.next_deadline(), Some(t0 + r.config().timeout));
        assert_eq!(r.push("a", 1, "a1", t0).deliver, ["a1"], "a starts afresh");
    }

    #[test]
    fn idle_entities_are_forgotten() {
        let config = ResequencerConfig::default().with_forget_idle_after(Duration::from_secs(10));
        let mut r = Resequencer::new(config);
        let t0 = Instant::now();
        assert_eq!(r.push("e", 7, 7, t0).deliver, [7]);
        let _ = r.expire(t0 + Duration::from_secs(20));
        assert_eq!(
            r.push("e", 3, 3, t0 + Duration::from_secs(20)).deliver,
            [3],
            "forgotten: 3 starts the entity again instead of being a duplicate"
        );
    }
}
