//! Liveness and membership checks: heartbeats, leaving, session and pending-member
//! timers, and the checks that SyncGroup, Heartbeat and OffsetCommit share.

use std::time::{Duration, Instant};

use super::{
    Inner,
    codes::*,
    state::{Group, GroupState, JoinOutcome, Member, SyncOutcome, send},
};

impl Inner {
    /// Heartbeat: keeps the session alive; tells the member when to rejoin.
    pub(crate) fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> i16 {
        if self.is_closed() {
            return COORDINATOR_NOT_AVAILABLE;
        }
        let mut groups = self.lock_groups();
        let Some(group) = groups.get_mut(group_id) else {
            return UNKNOWN_MEMBER_ID;
        };
        if let Err(code) = check_member(group, member_id, instance_id, generation) {
            return code;
        }
        let state = group.state;
        let member = group.member_mut(member_id).expect("checked");
        member.touch(Instant::now());
        match state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            GroupState::Stable | GroupState::CompletingRebalance => NONE,
            GroupState::Empty | GroupState::Dead => UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup for several members: (member id, instance id) each. Returns the
    /// group-level error and one error per member.
    pub(crate) fn leave(
        &self,
        group_id: &str,
        leaving: &[(String, Option<String>)],
    ) -> (i16, Vec<i16>) {
        if self.is_closed() {
            return (
                COORDINATOR_NOT_AVAILABLE,
                vec![COORDINATOR_NOT_AVAILABLE; leaving.len()],
            );
        }
        let mut groups = self.lock_groups();
        let Some(group) = groups.get_mut(group_id) else {
            return (NONE, vec![UNKNOWN_MEMBER_ID; leaving.len()]);
        };
        if group.state == GroupState::Dead {
            return (
                COORDINATOR_NOT_AVAILABLE,
                vec![COORDINATOR_NOT_AVAILABLE; leaving.len()],
            );
        }
        let results = leaving
            .iter()
            .map(|(member_id, instance_id)| {
                let target = match instance_id {
                    Some(instance) => match group.static_member(instance) {
                        None => return UNKNOWN_MEMBER_ID,
                        Some(m) if !member_id.is_empty() && m.id != *member_id => {
                            return FENCED_INSTANCE_ID;
                        }
                        Some(m) => m.id.clone(),
                    },
                    None if group.pending_members.remove(member_id) => {
                        self.try_complete_join(group);
                        return NONE;
                    }
                    None if group.has_member(member_id) => member_id.clone(),
                    None => return UNKNOWN_MEMBER_ID,
                };
                tracing::info!(group = %group.id, member = %target, "member left the group");
                self.remove_member_and_update(group, &target);
                NONE
            })
            .collect();
        (NONE, results)
    }

    /// Whether an OffsetCommit with these credentials may commit now. A commit with a
    /// negative generation to an empty or unknown group is a standalone commit (the
    /// group is created, Empty, if needed).
    pub(crate) fn check_commit(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), i16> {
        if self.is_closed() {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        if group_id.is_empty() {
            return Err(INVALID_GROUP_ID);
        }
        let mut groups = self.lock_groups();
        let Some(group) = groups.get_mut(group_id) else {
            if generation < 0 {
                groups.insert(group_id.to_owned(), Group::new(group_id));
                return Ok(());
            }
            return Err(ILLEGAL_GENERATION);
        };
        if group.state == GroupState::Dead {
            return Err(COORDINATOR_NOT_AVAILABLE);
        }
        if generation < 0 && group.state == GroupState::Empty {
            return Ok(());
        }
        check_member(group, member_id, instance_id, generation)?;
        match group.state {
            GroupState::Stable | GroupState::PreparingRebalance => {
                group
                    .member_mut(member_id)
                    .expect("checked")
                    .touch(Instant::now());
                Ok(())
            }
            GroupState::CompletingRebalance => Err(REBALANCE_IN_PROGRESS),
            GroupState::Empty | GroupState::Dead => Err(UNKNOWN_MEMBER_ID),
        }
    }

    /// Answers every parked JoinGroup and SyncGroup with NOT_COORDINATOR (shutdown).
    pub(crate) fn fail_all_waiters(&self) {
        let mut groups = self.lock_groups();
        for group in groups.values_mut() {
            for member in &mut group.members {
                send(
                    member.awaiting_join.take(),
                    JoinOutcome::error(NOT_COORDINATOR, &member.id),
                );
                send(
                    member.awaiting_sync.take(),
                    SyncOutcome::error(NOT_COORDINATOR),
                );
            }
        }
    }

    /// Removes the member once its session deadline passes without a heartbeat, unless a
    /// request of it is parked (that proves it alive; the deadline restarts when the
    /// request is answered).
    pub(super) fn watch_session(&self, group_id: String, member_id: String, first: Instant) {
        self.spawn_timer(first, move |inner| {
            let mut groups = inner.lock_groups();
            let group = groups.get_mut(&group_id)?;
            let member = group.member(&member_id)?;
            let now = Instant::now();
            let parked = |tx: Option<bool>| tx == Some(false);
            if parked(member.awaiting_join.as_ref().map(|t| t.is_closed()))
                || parked(member.awaiting_sync.as_ref().map(|t| t.is_closed()))
            {
                return Some(now.max(member.session_deadline) + member.session_timeout);
            }
            if member.session_deadline > now {
                return Some(member.session_deadline);
            }
            tracing::info!(group = %group_id, member = %member_id, "session timed out; removing member");
            inner.remove_member_and_update(group, &member_id);
            None
        });
    }

    /// Forgets a MEMBER_ID_REQUIRED member id that was not used within the session timeout.
    pub(super) fn expire_pending_member(
        &self,
        group_id: String,
        member_id: String,
        timeout: Duration,
    ) {
        self.spawn_timer(Instant::now() + timeout, move |inner| {
            let mut groups = inner.lock_groups();
            let group = groups.get_mut(&group_id)?;
            if group.pending_members.remove(&member_id) {
                tracing::debug!(group = %group_id, member = %member_id, "pending member id expired");
                inner.try_complete_join(group);
            }
            None
        });
    }

    /// Runs `f` at `at`, then again at each instant it returns, until it returns `None`,
    /// the coordinator shuts down or is dropped.
    pub(crate) fn spawn_timer(
        &self,
        at: Instant,
        mut f: impl FnMut(&Inner) -> Option<Instant> + Send + 'static,
    ) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("group coordinator timer needs a tokio runtime; not started");
            return;
        };
        let me = self.me.clone();
        let mut shutdown = self.shutdown.subscribe();
        runtime.spawn(async move {
            let mut at = at;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(at.into()) => {}
                    _ = shutdown.wait_for(|closed| *closed) => return,
                }
                let Some(inner) = me.upgrade() else { return };
                match f(&inner) {
                    Some(next) => at = next,
                    None => return,
                }
            }
        });
    }
}

/// The membership checks shared by SyncGroup, Heartbeat and OffsetCommit, in Kafka's order.
pub(super) fn check_member(
    group: &Group,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
) -> Result<(), i16> {
    if group.state == GroupState::Dead {
        return Err(COORDINATOR_NOT_AVAILABLE);
    }
    if group.is_fenced(instance_id, member_id) {
        return Err(FENCED_INSTANCE_ID);
    }
    if !group.has_member(member_id) {
        return Err(UNKNOWN_MEMBER_ID);
    }
    if generation != group.generation {
        return Err(ILLEGAL_GENERATION);
    }
    Ok(())
}

/// Takes a member out of the group, answering its parked requests with `error`, and
/// hands leadership to the next member if it led.
pub(super) fn remove_member(group: &mut Group, member_id: &str, error: i16) -> Option<Member> {
    let index = group.members.iter().position(|m| m.id == member_id)?;
    let mut member = group.members.remove(index);
    send(
        member.awaiting_join.take(),
        JoinOutcome::error(error, member_id),
    );
    send(member.awaiting_sync.take(), SyncOutcome::error(error));
    if group.is_leader(member_id) {
        group.leader = group.members.first().map(|m| m.id.clone());
    }
    Some(member)
}
