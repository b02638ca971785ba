//! Membership and rebalances: the transitions of Kafka's classic group protocol.
//!
//! Everything here runs under the coordinator's groups lock and never awaits; a request
//! that must wait (a JoinGroup until the rebalance completes, a follower's SyncGroup until
//! the leader's arrives) parks a oneshot sender in its member and awaits the receiver
//! after the lock is released. Timers are tokio tasks that hold the coordinator weakly and
//! check, when they fire, that the rebalance or member they were started for still exists.
//!
//! How a rebalance goes (as in Kafka's `GroupCoordinator`):
//! 1. A member joins, a member's protocols change, the leader rejoins, or a member leaves
//!    or times out: the group moves to `PreparingRebalance`. SyncGroups waiting in
//!    `CompletingRebalance` get REBALANCE_IN_PROGRESS.
//! 2. From `Empty`, the rebalance waits [`GroupConfig::initial_rebalance_delay`]
//!    (extended while new members arrive, up to the rebalance timeout). Otherwise it
//!    completes as soon as every member has rejoined, or after the longest rebalance
//!    timeout, when members that did not rejoin are removed.
//! 3. Completing: generation + 1, protocol chosen, a leader that is still in the group
//!    (so a leader that left while the group was forming is replaced), every waiting
//!    JoinGroup answered, the leader's with all members' metadata. No members: `Empty`.
//! 4. The leader's SyncGroup stores the assignment, answers every waiting SyncGroup and
//!    makes the group `Stable`.
//!
//! [`GroupConfig::initial_rebalance_delay`]: super::GroupConfig::initial_rebalance_delay

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::{
    Inner,
    codes::*,
    members::{check_member, remove_member},
    state::{Group, GroupState, JoinOutcome, Member, SyncOutcome, new_member_id, send},
};

/// A JoinGroup, independent of its wire version.
#[derive(Debug)]
pub(crate) struct JoinParams {
    pub(crate) group_id: String,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) session_timeout_ms: i32,
    pub(crate) rebalance_timeout_ms: i32,
    pub(crate) protocol_type: String,
    pub(crate) protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ without an instance id: a new member first gets MEMBER_ID_REQUIRED.
    pub(crate) require_known_member_id: bool,
    /// JoinGroup v9+: the response can tell a leader to skip the assignment.
    pub(crate) supports_skip_assignment: bool,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
}

/// A SyncGroup, independent of its wire version.
#[derive(Debug)]
pub(crate) struct SyncParams {
    pub(crate) group_id: String,
    pub(crate) generation: i32,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) assignments: Vec<(String, Bytes)>,
}

/// An answer now, or one to wait for.
enum Reply<T> {
    Now(T),
    Later(oneshot::Receiver<T>),
}

impl<T> Reply<T> {
    async fn wait(self, gone: impl FnOnce() -> T) -> T {
        match self {
            Reply::Now(v) => v,
            Reply::Later(rx) => rx.await.unwrap_or_else(|_| gone()),
        }
    }
}

fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Inner {
    /// JoinGroup: returns when the member is in a completed rebalance, or with an error.
    pub(crate) async fn join(&self, p: JoinParams) -> JoinOutcome {
        let member_id = p.member_id.clone();
        let reply = {
            let mut groups = self.lock_groups();
            self.join_locked(&mut groups, p)
        };
        reply
            .wait(|| JoinOutcome::error(NOT_COORDINATOR, &member_id))
            .await
    }

    fn join_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        p: JoinParams,
    ) -> Reply<JoinOutcome> {
        let fail = |code| Reply::Now(JoinOutcome::error(code, &p.member_id));
        if self.is_closed() {
            return fail(COORDINATOR_NOT_AVAILABLE);
        }
        if p.group_id.is_empty() {
            return fail(INVALID_GROUP_ID);
        }
        let session = millis(p.session_timeout_ms);
        if p.session_timeout_ms < 0
            || session < self.config.min_session_timeout
            || session > self.config.max_session_timeout
        {
            return fail(INVALID_SESSION_TIMEOUT);
        }
        let known = !p.member_id.is_empty();
        if !groups.contains_key(&p.group_id) {
            if known {
                return fail(UNKNOWN_MEMBER_ID);
            }
            if p.protocol_type.is_empty() || p.protocols.is_empty() {
                return fail(INCONSISTENT_GROUP_PROTOCOL);
            }
        }
        let group = groups
            .entry(p.group_id.clone())
            .or_insert_with(|| Group::new(&p.group_id));
        if group.state == GroupState::Dead {
            return fail(COORDINATOR_NOT_AVAILABLE);
        }
        let joining = known.then_some(p.member_id.as_str());
        if !group.supports(joining, &p.protocol_type, &p.protocols) {
            return fail(INCONSISTENT_GROUP_PROTOCOL);
        }
        if known {
            self.join_known_member(group, p)
        } else {
            self.join_new_member(group, p)
        }
    }

    fn join_new_member(&self, group: &mut Group, p: JoinParams) -> Reply<JoinOutcome> {
        let id = new_member_id(&p.client_id);
        if let Some(instance) = &p.instance_id {
            if let Some(old) = group.static_member(instance).map(|m| m.id.clone()) {
                return self.replace_static_member(group, &old, id, p);
            }
            return self.add_member_and_rebalance(group, id, p);
        }
        if p.require_known_member_id {
            group.pending_members.insert(id.clone());
            self.expire_pending_member(group.id.clone(), id.clone(), millis(p.session_timeout_ms));
            return Reply::Now(JoinOutcome::error(MEMBER_ID_REQUIRED, &id));
        }
        self.add_member_and_rebalance(group, id, p)
    }

    /// KIP-345: a static member that rejoins with an unknown member id (it restarted)
    /// takes its previous incarnation's place: same position, assignment and leadership,
    /// under a new member id; the old id's waiting requests and any later ones get
    /// FENCED_INSTANCE_ID. A stable group whose protocol choice does not change answers
    /// at once from the current generation, without a rebalance (Kafka's
    /// `updateStaticMemberAndRebalance`); a group waiting for the leader's assignment
    /// rebalances, since that assignment may name the old id.
    fn replace_static_member(
        &self,
        group: &mut Group,
        old: &str,
        id: String,
        p: JoinParams,
    ) -> Reply<JoinOutcome> {
        let previous_leader = group.leader.clone().unwrap_or_default();
        let now = Instant::now();
        let session_timeout = millis(p.session_timeout_ms);
        let member = group
            .member_mut(old)
            .expect("caller found the static member");
        send(
            member.awaiting_join.take(),
            JoinOutcome::error(FENCED_INSTANCE_ID, old),
        );
        send(
            member.awaiting_sync.take(),
            SyncOutcome::error(FENCED_INSTANCE_ID),
        );
        member.id.clone_from(&id);
        member.client_id = p.client_id;
        member.client_host = p.client_host;
        member.protocols = p.protocols;
        member.session_timeout = session_timeout;
        if p.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = millis(p.rebalance_timeout_ms);
        }
        member.touch(now);
        if group.is_leader(old) {
            group.leader = Some(id.clone());
        }
        tracing::info!(group = %group.id, instance = ?p.instance_id, old_member = %old, new_member = %id,
            state = %group.state, "static member rejoined; its previous member id is fenced");
        self.watch_session(group.id.clone(), id.clone(), now + session_timeout);
        match group.state {
            GroupState::Stable if group.select_protocol() == group.protocol_name => {
                let mut outcome = current_generation(group, &id);
                if p.supports_skip_assignment && group.is_leader(&id) {
                    // The leader learns it leads (to watch metadata) but keeps the
                    // assignment: a stable group would not hand a new one out.
                    outcome.skip_assignment = true;
                } else {
                    // Before v9, the old leader id keeps a restarted leader from
                    // running the assignor for nothing: it sees itself as a follower.
                    outcome.members.clear();
                    outcome.leader = previous_leader;
                }
                Reply::Now(outcome)
            }
            _ => {
                let (tx, rx) = oneshot::channel();
                group.member_mut(&id).expect("just replaced").awaiting_join = Some(tx);
                self.rebalance_or_try_complete(group);
                Reply::Later(rx)
            }
        }
    }

    fn join_known_member(&self, group: &mut Group, p: JoinParams) -> Reply<JoinOutcome> {
        let fail = |code| Reply::Now(JoinOutcome::error(code, &p.member_id));
        if group.is_fenced(p.instance_id.as_deref(), &p.member_id) {
            return fail(FENCED_INSTANCE_ID);
        }
        if group.pending_members.contains(&p.member_id) {
            let id = p.member_id.clone();
            return self.add_member_and_rebalance(group, id, p);
        }
        let Some(member) = group.member(&p.member_id) else {
            return fail(UNKNOWN_MEMBER_ID);
        };
        let unchanged = member.same_protocols(&p.protocols);
        match group.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(group, p),
            GroupState::CompletingRebalance if unchanged => {
                Reply::Now(current_generation(group, &p.member_id))
            }
            GroupState::Stable if unchanged && !group.is_leader(&p.member_id) => {
                Reply::Now(current_generation(group, &p.member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(group, p)
            }
            GroupState::Empty | GroupState::Dead => fail(UNKNOWN_MEMBER_ID),
        }
    }

    fn add_member_and_rebalance(
        &self,
        group: &mut Group,
        id: String,
        p: JoinParams,
    ) -> Reply<JoinOutcome> {
        if group.state == GroupState::PreparingRebalance && group.initial_delay {
            group.new_member_added = true;
        }
        if group.members.is_empty() {
            group.protocol_type = Some(p.protocol_type.clone());
        }
        group.pending_members.remove(&id);
        let (tx, rx) = oneshot::channel();
        let now = Instant::now();
        let session_timeout = millis(p.session_timeout_ms);
        let rebalance_timeout = match p.rebalance_timeout_ms {
            ms if ms > 0 => millis(ms),
            _ => session_timeout,
        };
        group.members.push(Member {
            id: id.clone(),
            instance_id: p.instance_id,
            client_id: p.client_id,
            client_host: p.client_host,
            session_timeout,
            rebalance_timeout,
            protocols: p.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(tx),
            awaiting_sync: None,
            session_deadline: now + session_timeout,
        });
        if group.leader.is_none() {
            group.leader = Some(id.clone());
        }
        tracing::debug!(group = %group.id, member = %id, state = %group.state, "member added");
        self.watch_session(group.id.clone(), id, now + session_timeout);
        self.rebalance_or_try_complete(group);
        Reply::Later(rx)
    }

    fn update_member_and_rebalance(&self, group: &mut Group, p: JoinParams) -> Reply<JoinOutcome> {
        let (tx, rx) = oneshot::channel();
        let member = group
            .member_mut(&p.member_id)
            .expect("caller checked the member exists");
        member.protocols = p.protocols;
        member.session_timeout = millis(p.session_timeout_ms);
        if p.rebalance_timeout_ms > 0 {
            member.rebalance_timeout = millis(p.rebalance_timeout_ms);
        }
        // A second JoinGroup while one is parked: the client gave up on the first.
        let previous = member.awaiting_join.replace(tx);
        send(
            previous,
            JoinOutcome::error(REBALANCE_IN_PROGRESS, &p.member_id),
        );
        self.rebalance_or_try_complete(group);
        Reply::Later(rx)
    }

    fn rebalance_or_try_complete(&self, group: &mut Group) {
        match group.state {
            GroupState::Empty | GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(group);
            }
            GroupState::PreparingRebalance => self.try_complete_join(group),
            GroupState::Dead => {}
        }
    }

    fn prepare_rebalance(&self, group: &mut Group) {
        if group.state == GroupState::CompletingRebalance {
            for member in &mut group.members {
                member.assignment = Bytes::new();
                send(
                    member.awaiting_sync.take(),
                    SyncOutcome::error(REBALANCE_IN_PROGRESS),
                );
            }
        }
        let from_empty = group.state == GroupState::Empty;
        group.set_state(GroupState::PreparingRebalance);
        group.rebalance_epoch += 1;
        group.new_member_added = false;
        group.initial_delay = from_empty;
        tracing::info!(group = %group.id, generation = group.generation, members = group.members.len(),
            "preparing rebalance");
        let epoch = group.rebalance_epoch;
        let group_id = group.id.clone();
        let now = Instant::now();
        if from_empty {
            let delay = self.config.initial_rebalance_delay;
            let mut remaining = group.rebalance_timeout().saturating_sub(delay);
            self.spawn_timer(now + delay, move |inner| {
                let mut groups = inner.lock_groups();
                let group = groups.get_mut(&group_id).filter(|g| {
                    g.rebalance_epoch == epoch && g.state == GroupState::PreparingRebalance
                })?;
                if group.new_member_added && !remaining.is_zero() {
                    group.new_member_added = false;
                    let step = inner.config.initial_rebalance_delay.min(remaining);
                    remaining -= step;
                    return Some(Instant::now() + step);
                }
                inner.complete_join(group);
                None
            });
        } else {
            self.spawn_timer(now + group.rebalance_timeout(), move |inner| {
                let mut groups = inner.lock_groups();
                let group = groups.get_mut(&group_id).filter(|g| {
                    g.rebalance_epoch == epoch && g.state == GroupState::PreparingRebalance
                })?;
                inner.complete_join(group);
                None
            });
            self.try_complete_join(group);
        }
    }

    pub(super) fn try_complete_join(&self, group: &mut Group) {
        if group.state == GroupState::PreparingRebalance
            && !group.initial_delay
            && group.all_members_joined()
        {
            self.complete_join(group);
        }
    }

    fn complete_join(&self, group: &mut Group) {
        group.rebalance_epoch += 1;
        group.initial_delay = false;
        group.new_member_added = false;
        // Dynamic members that did not rejoin in time are out; static ones keep their
        // place until their session times out.
        let missing: Vec<String> = group
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in missing {
            tracing::info!(group = %group.id, member = %id, "member did not rejoin in time; removed");
            remove_member(group, &id, UNKNOWN_MEMBER_ID);
        }
        group.generation += 1;
        if group.members.is_empty() {
            group.protocol_name = None;
            group.leader = None;
            group.set_state(GroupState::Empty);
            tracing::info!(group = %group.id, generation = group.generation, "group is empty");
            return;
        }
        let leader_rejoined = group
            .leader
            .as_deref()
            .and_then(|l| group.member(l))
            .is_some_and(|m| m.awaiting_join.is_some());
        if !leader_rejoined {
            let joined = group.members.iter().find(|m| m.awaiting_join.is_some());
            group.leader = joined.or(group.members.first()).map(|m| m.id.clone());
        }
        group.protocol_name = group.select_protocol();
        group.set_state(GroupState::CompletingRebalance);
        let leader = group.leader.clone().unwrap_or_default();
        let protocol = group.protocol_name.clone().unwrap_or_default();
        let protocol_type = group.protocol_type.clone();
        let generation = group.generation;
        let all: Vec<(String, Option<String>, Bytes)> = group
            .members
            .iter()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
            .collect();
        tracing::info!(group = %group.id, generation, leader = %leader, protocol = %protocol,
            members = all.len(), "rebalance complete; waiting for the leader's assignment");
        let now = Instant::now();
        for member in &mut group.members {
            member.touch(now);
            member.assignment = Bytes::new();
            let outcome = JoinOutcome {
                error: NONE,
                generation,
                protocol_type: protocol_type.clone(),
                protocol_name: Some(protocol.clone()),
                leader: leader.clone(),
                member_id: member.id.clone(),
                members: if member.id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
                skip_assignment: false,
            };
            send(member.awaiting_join.take(), outcome);
        }
    }

    /// Removes a member and moves the group on: a stable group rebalances, a forming
    /// one may now be complete.
    pub(super) fn remove_member_and_update(&self, group: &mut Group, member_id: &str) {
        remove_member(group, member_id, UNKNOWN_MEMBER_ID);
        match group.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(group),
            GroupState::PreparingRebalance => self.try_complete_join(group),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// SyncGroup: the leader's carries the assignment; followers wait for it.
    pub(crate) async fn sync(&self, p: SyncParams) -> SyncOutcome {
        let reply = {
            let mut groups = self.lock_groups();
            self.sync_locked(&mut groups, p)
        };
        reply.wait(|| SyncOutcome::error(NOT_COORDINATOR)).await
    }

    fn sync_locked(
        &self,
        groups: &mut HashMap<String, Group>,
        p: SyncParams,
    ) -> Reply<SyncOutcome> {
        let fail = |code| Reply::Now(SyncOutcome::error(code));
        if self.is_closed() {
            return fail(COORDINATOR_NOT_AVAILABLE);
        }
        let Some(group) = groups.get_mut(&p.group_id) else {
            return fail(UNKNOWN_MEMBER_ID);
        };
        if let Err(code) = check_member(group, &p.member_id, p.instance_id.as_deref(), p.generation)
        {
            return fail(code);
        }
        let mismatch = |sent: &Option<String>, ours: &Option<String>| {
            sent.as_ref().is_some_and(|s| Some(s) != ours.as_ref())
        };
        if mismatch(&p.protocol_type, &group.protocol_type)
            || mismatch(&p.protocol_name, &group.protocol_name)
        {
            return fail(INCONSISTENT_GROUP_PROTOCOL);
        }
        let now = Instant::now();
        match group.state {
            GroupState::Empty | GroupState::Dead => fail(UNKNOWN_MEMBER_ID),
            GroupState::PreparingRebalance => fail(REBALANCE_IN_PROGRESS),
            GroupState::Stable => {
                let member = group.member_mut(&p.member_id).expect("checked");
                member.touch(now);
                Reply::Now(SyncOutcome {
                    error: NONE,
                    protocol_type: group.protocol_type.clone(),
                    protocol_name: group.protocol_name.clone(),
                    assignment: group
                        .member(&p.member_id)
                        .expect("checked")
                        .assignment
                        .clone(),
                })
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let member = group.member_mut(&p.member_id).expect("checked");
                member.touch(now);
                send(
                    member.awaiting_sync.replace(tx),
                    SyncOutcome::error(REBALANCE_IN_PROGRESS),
                );
                if group.is_leader(&p.member_id) {
                    let mut assignments: HashMap<String, Bytes> =
                        p.assignments.into_iter().collect();
                    group.set_state(GroupState::Stable);
                    let protocol_type = group.protocol_type.clone();
                    let protocol_name = group.protocol_name.clone();
                    for member in &mut group.members {
                        member.assignment = assignments.remove(&member.id).unwrap_or_default();
                        let outcome = SyncOutcome {
                            error: NONE,
                            protocol_type: protocol_type.clone(),
                            protocol_name: protocol_name.clone(),
                            assignment: member.assignment.clone(),
                        };
                        send(member.awaiting_sync.take(), outcome);
                    }
                    tracing::info!(group = %group.id, generation = group.generation, "group is stable");
                }
                Reply::Later(rx)
            }
        }
    }
}

/// A JoinGroup answered from the current generation (no rebalance needed).
fn current_generation(group: &Group, member_id: &str) -> JoinOutcome {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    let members = if group.is_leader(member_id) {
        group
            .members
            .iter()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
            .collect()
    } else {
        Vec::new()
    };
    JoinOutcome {
        error: NONE,
        generation: group.generation,
        protocol_type: group.protocol_type.clone(),
        protocol_name: Some(protocol),
        leader: group.leader.clone().unwrap_or_default(),
        member_id: member_id.to_owned(),
        members,
        skip_assignment: false,
    }
}
