//! The data of one classic group: its state, generation, members and their protocols.
//! The transitions between states live in `rebalance.rs`.

use std::{
    collections::{HashMap, HashSet, hash_map::RandomState},
    hash::BuildHasher,
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use bytes::Bytes;
use tokio::sync::oneshot;

/// The state of a classic group, as Kafka names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum GroupState {
    /// No members; the group may still have committed offsets.
    Empty,
    /// A rebalance started: members must (re)send JoinGroup.
    PreparingRebalance,
    /// JoinGroup answered; waiting for the leader's SyncGroup with the assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// The group was deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka uses on the wire (ListGroups, DescribeGroups).
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a JoinGroup is answered with, before it is shaped for the request's version.
#[derive(Debug, Clone)]
pub(crate) struct JoinOutcome {
    pub(crate) error: i16,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: String,
    pub(crate) member_id: String,
    /// Filled for the leader only: (member id, group instance id, metadata).
    pub(crate) members: Vec<(String, Option<String>, Bytes)>,
    /// JoinGroup v9+ (KIP-814): the leader of a stable group whose static member
    /// rejoined is told not to run the assignor; the current assignment stands.
    pub(crate) skip_assignment: bool,
}

impl JoinOutcome {
    pub(crate) fn error(error: i16, member_id: &str) -> Self {
        JoinOutcome {
            error,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_owned(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// What a SyncGroup is answered with.
#[derive(Debug, Clone)]
pub(crate) struct SyncOutcome {
    pub(crate) error: i16,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignment: Bytes,
}

impl SyncOutcome {
    pub(crate) fn error(error: i16) -> Self {
        SyncOutcome {
            error,
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// One member of a group.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    /// (name, metadata) in the member's order of preference.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    /// The member's JoinGroup waiting for the rebalance to complete.
    pub(crate) awaiting_join: Option<oneshot::Sender<JoinOutcome>>,
    /// The member's SyncGroup waiting for the leader's assignment.
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncOutcome>>,
    /// The member is removed when this passes without a heartbeat (unless a JoinGroup or
    /// SyncGroup of it is waiting: a request in flight proves it alive).
    pub(crate) session_deadline: Instant,
}

impl Member {
    /// The metadata the member sent for `protocol`.
    pub(crate) fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    /// Whether the member sent exactly these protocols before.
    pub(crate) fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    pub(crate) fn touch(&mut self, now: Instant) {
        self.session_deadline = now + self.session_timeout;
    }
}

/// One classic group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) id: String,
    pub(crate) state: GroupState,
    /// Wall-clock time (ms) of the last state change; `None` for groups recreated from
    /// committed offsets on open.
    pub(crate) state_since_ms: Option<i64>,
    pub(crate) generation: i32,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) leader: Option<String>,
    /// Members in join order; the first one becomes leader when the leader goes.
    pub(crate) members: Vec<Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED and not yet used (JoinGroup v4+).
    pub(crate) pending_members: HashSet<String>,
    /// During the initial delay: a member joined since the delay was last extended.
    pub(crate) new_member_added: bool,
    /// The current rebalance is still in its initial delay (no early completion).
    pub(crate) initial_delay: bool,
    /// Bumped on every rebalance start and completion; timers of older ones do nothing.
    pub(crate) rebalance_epoch: u64,
}

impl Group {
    pub(crate) fn new(id: &str) -> Self {
        Group {
            id: id.to_owned(),
            state: GroupState::Empty,
            state_since_ms: Some(now_ms()),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_members: HashSet::new(),
            new_member_added: false,
            initial_delay: false,
            rebalance_epoch: 0,
        }
    }

    pub(crate) fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_since_ms = Some(now_ms());
    }

    pub(crate) fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    pub(crate) fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members.iter_mut().find(|m| m.id == id)
    }

    pub(crate) fn has_member(&self, id: &str) -> bool {
        self.member(id).is_some()
    }

    pub(crate) fn is_leader(&self, id: &str) -> bool {
        self.leader.as_deref() == Some(id)
    }

    /// The member that holds `instance_id`, if any.
    pub(crate) fn static_member(&self, instance_id: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.instance_id.as_deref() == Some(instance_id))
    }

    /// A request carrying `instance_id` and `member_id` comes from a fenced (replaced)
    /// incarnation of a static member.
    pub(crate) fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_member(i))
            .is_some_and(|m| m.id != member_id)
    }

    /// Every member's JoinGroup is waiting and no handed-out member id is still unused.
    pub(crate) fn all_members_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.iter().all(|m| m.awaiting_join.is_some())
    }

    /// The longest rebalance timeout among the members (how long a rebalance waits).
    pub(crate) fn rebalance_timeout(&self) -> Duration {
        self.members
            .iter()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO)
    }

    /// Whether a member with this protocol type and these protocols may join: the first
    /// member sets the type; later ones must share it and at least one protocol that
    /// every other member supports.
    pub(crate) fn supports(
        &self,
        joining: Option<&str>,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        let others: Vec<&Member> = self
            .members
            .iter()
            .filter(|m| Some(m.id.as_str()) != joining)
            .collect();
        if others.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            others
                .iter()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Kafka's protocol selection: among the protocols every member supports, each member
    /// votes for the first one in its own preference order; most votes wins, ties going
    /// to the one the leader prefers.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let first = self.members.first()?;
        let candidates: Vec<&str> = first
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .filter(|name| {
                self.members
                    .iter()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in &self.members {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let leader_order: Vec<&str> = self
            .leader
            .as_deref()
            .and_then(|l| self.member(l))
            .unwrap_or(first)
            .protocols
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let rank = |name: &str| {
            leader_order
                .iter()
                .position(|n| *n == name)
                .unwrap_or(usize::MAX)
        };
        votes
            .into_iter()
            .max_by(|(a, va), (b, vb)| va.cmp(vb).then_with(|| rank(b).cmp(&rank(a))))
            .map(|(name, _)| name.to_owned())
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A new member id as Kafka makes them: `<client id>-<random UUID>`.
///
/// The UUID is version 4 in form. Its 122 random bits come from SipHash with the
/// process's randomly keyed `RandomState` over a counter and the clock: unpredictable
/// enough for an identifier that only has to be unique within a group, without another
/// dependency.
pub(crate) fn new_member_id(client_id: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let state = RandomState::new();
    let hi = state.hash_one((n, nanos, 0u8));
    let lo = state.hash_one((n, nanos, 1u8));
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&hi.to_be_bytes());
    bytes[8..].copy_from_slice(&lo.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{client_id}-{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Answers a waiting request, if it still waits.
pub(super) fn send<T>(tx: Option<oneshot::Sender<T>>, value: T) {
    if let Some(tx) = tx {
        // The receiver is gone when the client disconnected; nothing to tell it.
        let _ = tx.send(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str, protocols: &[&str]) -> Member {
        Member {
            id: id.into(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::new()))
                .collect(),
            assignment: Bytes::new(),
            awaiting_join: None,
            awaiting_sync: None,
            session_deadline: Instant::now(),
        }
    }

    #[test]
    fn protocol_with_most_votes_among_common_ones_wins() {
        let mut group = Group::new("g");
        group.protocol_type = Some("consumer".into());
        group.members.push(member("a", &["range", "roundrobin"]));
        group
            .members
            .push(member("b", &["roundrobin", "range", "sticky"]));
        group.members.push(member("c", &["roundrobin", "range"]));
        group.leader = Some("a".into());
        assert_eq!(group.select_protocol().as_deref(), Some("roundrobin"));
    }

    #[test]
    fn tie_goes_to_the_leaders_preference() {
        let mut group = Group::new("g");
        group.members.push(member("a", &["range", "roundrobin"]));
        group.members.push(member("b", &["roundrobin", "range"]));
        group.leader = Some("b".into());
        assert_eq!(group.select_protocol().as_deref(), Some("roundrobin"));
        group.leader = Some("a".into());
        assert_eq!(group.select_protocol().as_deref(), Some("range"));
    }

    #[test]
    fn member_ids_are_unique_and_prefixed() {
        let a = new_member_id("rdkafka");
        let b = new_member_id("rdkafka");
        assert_ne!(a, b);
        assert!(a.starts_with("rdkafka-"));
        assert_eq!(a.len(), "rdkafka-".len() + 36);
    }
}
