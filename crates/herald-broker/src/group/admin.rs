//! Group administration: ListGroups, DescribeGroups, DeleteGroups, and the periodic
//! maintenance (offset expiry, forgetting empty groups, offsets-log snapshots).

use std::{collections::BTreeSet, sync::Arc, time::Instant};

use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
    delete_groups_response::DeletableGroupResult,
    describe_groups_response::{DescribedGroup, DescribedGroupMember},
    list_groups_response::ListedGroup,
};

use super::{
    DELETE_GROUPS_VERSIONS, DESCRIBE_GROUPS_VERSIONS, GroupCoordinator, Inner,
    LIST_GROUPS_VERSIONS,
    codec::{OffsetKey, OffsetOp},
    codes::*,
    handlers::{in_range, strb},
    now_ms,
    offsets::WriteError,
    state::GroupState,
};

/// Operations a client may perform on a group, as DescribeGroups v3+ reports them when
/// asked: READ (3), DELETE (6), DESCRIBE (8). Herald has no ACLs.
const GROUP_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// The only group type this coordinator runs (ListGroups v5).
const GROUP_TYPE: &str = "classic";

impl GroupCoordinator {
    /// ListGroups: every group that is not dead, filtered by state (v4+) and type (v5+).
    pub async fn list_groups(&self, req: ListGroupsRequest, version: i16) -> ListGroupsResponse {
        let mut resp = ListGroupsResponse::default();
        if !in_range(version, LIST_GROUPS_VERSIONS) {
            resp.error_code = UNSUPPORTED_VERSION;
            return resp;
        }
        if self.inner.is_closed() {
            resp.error_code = COORDINATOR_NOT_AVAILABLE;
            return resp;
        }
        let lower = |v: &[kafka_protocol::protocol::StrBytes]| -> Vec<String> {
            v.iter().map(|s| s.to_lowercase()).collect()
        };
        let states = if version >= 4 {
            lower(&req.states_filter)
        } else {
            Vec::new()
        };
        let types = if version >= 5 {
            lower(&req.types_filter)
        } else {
            Vec::new()
        };
        if !types.is_empty() && !types.iter().any(|t| t == GROUP_TYPE) {
            return resp;
        }
        for summary in self.groups() {
            let state = summary.state.as_str();
            if !states.is_empty() && !states.contains(&state.to_lowercase()) {
                continue;
            }
            let mut g = ListedGroup::default();
            g.group_id = strb(summary.group_id).into();
            g.protocol_type = strb(summary.protocol_type);
            if version >= 4 {
                g.group_state = strb(state);
            }
            if version >= 5 {
                g.group_type = strb(GROUP_TYPE);
            }
            resp.groups.push(g);
        }
        resp
    }

    /// DescribeGroups: state, protocol and members. Member metadata and assignments and
    /// the protocol name are shown only for a stable group, as Kafka does; an unknown
    /// group is described as `Dead`.
    pub async fn describe_groups(
        &self,
        req: DescribeGroupsRequest,
        version: i16,
    ) -> DescribeGroupsResponse {
        let mut resp = DescribeGroupsResponse::default();
        let supported = in_range(version, DESCRIBE_GROUPS_VERSIONS);
        let groups = self.inner.lock_groups();
        for id in req.groups {
            let mut d = DescribedGroup::default();
            d.group_state = strb(GroupState::Dead.as_str());
            if version >= 3 && req.include_authorized_operations {
                d.authorized_operations = GROUP_OPERATIONS;
            }
            if !supported {
                d.error_code = UNSUPPORTED_VERSION;
            } else if self.inner.is_closed() {
                d.error_code = COORDINATOR_NOT_AVAILABLE;
            } else if id.is_empty() {
                d.error_code = INVALID_GROUP_ID;
            } else if let Some(group) = groups.get(id.as_str()) {
                let stable = group.state == GroupState::Stable;
                let protocol = group.protocol_name.clone().unwrap_or_default();
                d.group_state = strb(group.state.as_str());
                d.protocol_type = strb(group.protocol_type.clone().unwrap_or_default());
                if stable {
                    d.protocol_data = strb(protocol.clone());
                }
                d.members = group
                    .members
                    .iter()
                    .map(|m| {
                        let mut dm = DescribedGroupMember::default();
                        dm.member_id = strb(m.id.clone());
                        if version >= 4 {
                            dm.group_instance_id = m.instance_id.clone().map(strb);
                        }
                        dm.client_id = strb(m.client_id.clone());
                        dm.client_host = strb(m.client_host.clone());
                        if stable {
                            dm.member_metadata = m.metadata(&protocol);
                            dm.member_assignment = m.assignment.clone();
                        }
                        dm
                    })
                    .collect();
            }
            d.group_id = id;
            resp.groups.push(d);
        }
        resp
    }

    /// DeleteGroups: deletes empty groups and their committed offsets (tombstones in the
    /// offsets log, answered once durable). A group with members is NON_EMPTY_GROUP.
    pub async fn delete_groups(
        &self,
        req: DeleteGroupsRequest,
        version: i16,
    ) -> DeleteGroupsResponse {
        let mut resp = DeleteGroupsResponse::default();
        let mut tombstones = Vec::new();
        let mut deleted = Vec::new();
        {
            let mut groups = self.inner.lock_groups();
            let mut seen = BTreeSet::new();
            for id in req.groups_names {
                if !seen.insert(id.clone()) {
                    continue;
                }
                let code = if !in_range(version, DELETE_GROUPS_VERSIONS) {
                    UNSUPPORTED_VERSION
                } else if self.inner.is_closed() {
                    COORDINATOR_NOT_AVAILABLE
                } else if id.is_empty() {
                    INVALID_GROUP_ID
                } else {
                    match groups.get(id.as_str()).map(|g| g.state) {
                        None | Some(GroupState::Dead) => GROUP_ID_NOT_FOUND,
                        Some(GroupState::Empty) => {
                            groups.remove(id.as_str());
                            tombstones.extend(self.inner.offsets.tombstones_for(&id));
                            deleted.push(resp.results.len());
                            tracing::info!(group = %id.as_str(), "group deleted");
                            NONE
                        }
                        Some(_) => NON_EMPTY_GROUP,
                    }
                };
                let mut r = DeletableGroupResult::default();
                r.group_id = id;
                r.error_code = code;
                resp.results.push(r);
            }
        }
        if let Err(e) = self.inner.offsets.write(tombstones, now_ms()).await {
            let code = match e {
                WriteError::Closed => COORDINATOR_NOT_AVAILABLE,
                WriteError::TooLarge | WriteError::Log(_) => {
                    tracing::error!(error = ?e, "offset tombstones of deleted groups not written");
                    NOT_COORDINATOR
                }
            };
            for i in deleted {
                resp.results[i].error_code = code;
            }
        }
        resp
    }
}

/// Starts the periodic maintenance task, if a tokio runtime is running.
pub(crate) fn start_maintenance(inner: &Arc<Inner>) {
    let interval = inner.config.maintenance_interval;
    inner.spawn_timer(Instant::now() + interval, move |inner| {
        // The work awaits (log writes); run it as its own task so the timer stays simple.
        if let Some(me) = inner.me.upgrade() {
            tokio::spawn(async move { me.maintain().await });
        }
        Some(Instant::now() + interval)
    });
}

impl Inner {
    /// Expires offsets, forgets empty groups without offsets, compacts the offsets log.
    pub(crate) async fn maintain(&self) {
        if self.is_closed() {
            return;
        }
        let expired = self.expired_offsets(now_ms());
        if !expired.is_empty() {
            let count = expired.len();
            match self.offsets.write(expired, now_ms()).await {
                Ok(()) => tracing::info!(count, "expired committed offsets deleted"),
                Err(e) => tracing::error!(error = ?e, "expired offsets not deleted"),
            }
        }
        {
            let mut groups = self.lock_groups();
            groups.retain(|id, g| {
                !(g.state == GroupState::Empty
                    && g.members.is_empty()
                    && g.pending_members.is_empty()
                    && !self.offsets.has_offsets(id))
            });
        }
        if let Err(e) = self.offsets.compact_if_needed().await {
            tracing::error!(error = %e, "committed-offsets snapshot failed");
        }
    }

    /// Tombstones for offsets of groups without members whose retention has passed.
    fn expired_offsets(&self, now: i64) -> Vec<OffsetOp> {
        let retention =
            i64::try_from(self.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let groups = self.lock_groups();
        let mut out = Vec::new();
        for group_id in self.offsets.group_ids() {
            let empty_since = match groups.get(&group_id) {
                Some(g) if g.state != GroupState::Empty => continue,
                Some(g) => g.state_since_ms,
                None => None,
            };
            for ((topic, partition), value) in self.offsets.group_offsets(&group_id) {
                let since = empty_since.map_or(value.commit_timestamp_ms, |s| {
                    s.max(value.commit_timestamp_ms)
                });
                if now.saturating_sub(since) >= retention {
                    out.push(OffsetOp {
                        key: OffsetKey {
                            group: group_id.clone(),
                            topic,
                            partition,
                        },
                        value: None,
                    });
                }
            }
        }
        out
    }
}
