//! Consumer-group APIs, answered by the group coordinator (`crate::group`). The
//! dispatcher adds what only the broker knows: who the client is, and which topics exist
//! (Kafka refuses offset commits for unknown topics with UNKNOWN_TOPIC_OR_PARTITION).

use kafka_protocol::{
    ResponseError,
    messages::{
        DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
        FindCoordinatorRequest, FindCoordinatorResponse, HeartbeatRequest, HeartbeatResponse,
        JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
        ListGroupsRequest, ListGroupsResponse, OffsetCommitRequest, OffsetCommitResponse,
        OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
        offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic},
    },
};

use herald_security::{Operation, ResourceType};
use kafka_protocol::protocol::StrBytes;

use super::Ctx;
use crate::group::ClientInfo;

const GROUP_DENIED: i16 = ResponseError::GroupAuthorizationFailed.code();
const TOPIC_DENIED: i16 = ResponseError::TopicAuthorizationFailed.code();

/// FindCoordinator.
pub(crate) async fn find_coordinator(
    ctx: Ctx<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    // DESCRIBE on the group (key type 0) or the transactional id (1), checked per key.
    let key_type = if ctx.version >= 1 { req.key_type } else { 0 };
    let denied = |key: &str| -> Option<i16> {
        match key_type {
            0 if !ctx.may_on_group(Operation::Describe, key) => Some(GROUP_DENIED),
            1 if !ctx.may(Operation::Describe, ResourceType::TransactionalId, key) => {
                Some(ResponseError::TransactionalIdAuthorizationFailed.code())
            }
            _ => None,
        }
    };
    let refusals: Vec<Option<i16>> = if ctx.version >= 4 {
        req.coordinator_keys.iter().map(|k| denied(k)).collect()
    } else {
        vec![denied(&req.key)]
    };
    let mut resp = ctx.broker.groups().find_coordinator(req, ctx.version).await;
    // The coordinator is this broker, reached the way this client came in: its
    // listener's address, not the first listener's.
    let (host, port) = ctx.listener.advertised();
    if ctx.version >= 4 {
        for c in resp.coordinators.iter_mut().filter(|c| c.error_code == 0) {
            (c.host, c.port) = (StrBytes::from_string(host.to_owned()), i32::from(port));
        }
    } else if resp.error_code == 0 {
        (resp.host, resp.port) = (StrBytes::from_string(host.to_owned()), i32::from(port));
    }
    let refuse = |code: i16| {
        (
            code,
            kafka_protocol::messages::BrokerId(-1),
            StrBytes::from_static_str(""),
            -1,
            Some(StrBytes::from_static_str("not authorized (ACLs)")),
        )
    };
    if ctx.version >= 4 {
        for (c, refusal) in resp.coordinators.iter_mut().zip(refusals) {
            if let Some(code) = refusal {
                (c.error_code, c.node_id, c.host, c.port, c.error_message) = refuse(code);
            }
        }
    } else if let Some(code) = refusals[0] {
        let message;
        (resp.error_code, resp.node_id, resp.host, resp.port, message) = refuse(code);
        if ctx.version >= 1 {
            resp.error_message = message;
        }
    }
    resp
}

/// JoinGroup, with the client id and host Kafka records for the member.
pub(crate) async fn join_group(ctx: Ctx<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
    if !ctx.may_on_group(Operation::Read, &req.group_id) {
        return crate::group::join_error(GROUP_DENIED, &req.member_id, ctx.version);
    }
    let client = ClientInfo {
        client_id: ctx.client_id.to_string(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    ctx.broker
        .groups()
        .join_group_from(req, ctx.version, &client)
        .await
}

/// SyncGroup.
pub(crate) async fn sync_group(ctx: Ctx<'_>, req: SyncGroupRequest) -> SyncGroupResponse {
    if !ctx.may_on_group(Operation::Read, &req.group_id) {
        let mut resp = SyncGroupResponse::default();
        resp.error_code = GROUP_DENIED;
        return resp;
    }
    ctx.broker.groups().sync_group(req, ctx.version).await
}

/// Heartbeat.
pub(crate) async fn heartbeat(ctx: Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    if !ctx.may_on_group(Operation::Read, &req.group_id) {
        let mut resp = HeartbeatResponse::default();
        resp.error_code = GROUP_DENIED;
        return resp;
    }
    ctx.broker.groups().heartbeat(req, ctx.version).await
}

/// LeaveGroup.
pub(crate) async fn leave_group(ctx: Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    if !ctx.may_on_group(Operation::Read, &req.group_id) {
        let mut resp = LeaveGroupResponse::default();
        resp.error_code = GROUP_DENIED;
        return resp;
    }
    ctx.broker.groups().leave_group(req, ctx.version).await
}

/// OffsetCommit: needs READ on the group (else every partition is answered
/// GROUP_AUTHORIZATION_FAILED) and READ on each topic (TOPIC_AUTHORIZATION_FAILED);
/// partitions of unknown topics are answered here with UNKNOWN_TOPIC_OR_PARTITION; the
/// rest go to the coordinator.
pub(crate) async fn offset_commit(
    ctx: Ctx<'_>,
    mut req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let topics = ctx.broker.topics();
    let group_allowed = ctx.may_on_group(Operation::Read, &req.group_id);
    let mut refused: Vec<OffsetCommitResponseTopic> = Vec::new();
    for topic in &mut req.topics {
        let code = if !group_allowed {
            GROUP_DENIED
        } else if !ctx.may_on_topic(Operation::Read, &topic.name) {
            TOPIC_DENIED
        } else {
            ResponseError::UnknownTopicOrPartition.code()
        };
        let known = topics
            .get(&topic.name)
            .filter(|_| code != GROUP_DENIED && code != TOPIC_DENIED);
        let (keep, unknown): (Vec<_>, Vec<_>) = std::mem::take(&mut topic.partitions)
            .into_iter()
            .partition(|p| {
                known
                    .as_ref()
                    .is_some_and(|t| t.partition(p.partition_index).is_some())
            });
        topic.partitions = keep;
        if !unknown.is_empty() {
            let mut t = OffsetCommitResponseTopic::default();
            t.name = topic.name.clone();
            t.partitions = unknown
                .into_iter()
                .map(|p| {
                    let mut r = OffsetCommitResponsePartition::default();
                    r.partition_index = p.partition_index;
                    r.error_code = code;
                    r
                })
                .collect();
            refused.push(t);
        }
    }
    req.topics.retain(|t| !t.partitions.is_empty());
    let mut resp = if req.topics.is_empty() && !refused.is_empty() {
        OffsetCommitResponse::default()
    } else {
        ctx.broker.groups().offset_commit(req, ctx.version).await
    };
    for t in refused {
        match resp.topics.iter_mut().find(|r| r.name == t.name) {
            Some(existing) => existing.partitions.extend(t.partitions),
            None => resp.topics.push(t),
        }
    }
    resp
}

/// OffsetFetch: DESCRIBE on the group (GROUP_AUTHORIZATION_FAILED), and on each topic:
/// a topic asked for by name is answered TOPIC_AUTHORIZATION_FAILED, and "all topics"
/// leaves out those the principal may not describe, as Kafka does.
pub(crate) async fn offset_fetch(ctx: Ctx<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    if !ctx.authorizing() {
        return ctx.broker.groups().offset_fetch(req, ctx.version).await;
    }
    let topic_ok = |name: &str| ctx.may_quietly(Operation::Describe, ResourceType::Topic, name);
    if ctx.version >= 8 {
        let denied: Vec<bool> = req
            .groups
            .iter()
            .map(|g| !ctx.may_on_group(Operation::Describe, &g.group_id))
            .collect();
        let listed: Vec<bool> = req.groups.iter().map(|g| g.topics.is_some()).collect();
        let mut resp = ctx.broker.groups().offset_fetch(req, ctx.version).await;
        for ((g, denied), listed) in resp.groups.iter_mut().zip(denied).zip(listed) {
            if denied {
                g.error_code = GROUP_DENIED;
                g.topics.clear();
                continue;
            }
            if !listed {
                g.topics.retain(|t| topic_ok(&t.name));
            }
            for t in g.topics.iter_mut().filter(|t| !topic_ok(&t.name)) {
                for p in &mut t.partitions {
                    (p.committed_offset, p.committed_leader_epoch, p.error_code) =
                        (-1, -1, TOPIC_DENIED);
                    p.metadata = Some(StrBytes::from_static_str(""));
                }
            }
        }
        return resp;
    }
    if !ctx.may_on_group(Operation::Describe, &req.group_id) {
        let mut resp = OffsetFetchResponse::default();
        resp.error_code = GROUP_DENIED;
        return resp;
    }
    let listed = req.topics.is_some();
    let mut resp = ctx.broker.groups().offset_fetch(req, ctx.version).await;
    if !listed {
        resp.topics.retain(|t| topic_ok(&t.name));
    }
    for t in resp.topics.iter_mut().filter(|t| !topic_ok(&t.name)) {
        for p in &mut t.partitions {
            (p.committed_offset, p.error_code) = (-1, TOPIC_DENIED);
            p.metadata = Some(StrBytes::from_static_str(""));
        }
    }
    resp
}

/// ListGroups: every group with DESCRIBE on the cluster; otherwise only the groups the
/// principal may describe (Kafka).
pub(crate) async fn list_groups(ctx: Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    let mut resp = ctx.broker.groups().list_groups(req, ctx.version).await;
    if ctx.authorizing()
        && !ctx.may_quietly(
            Operation::Describe,
            ResourceType::Cluster,
            herald_security::CLUSTER_NAME,
        )
    {
        resp.groups
            .retain(|g| ctx.may_quietly(Operation::Describe, ResourceType::Group, &g.group_id));
    }
    resp
}

/// DescribeGroups: DESCRIBE on each group (GROUP_AUTHORIZATION_FAILED); the authorized
/// operations, when asked, are the principal's.
pub(crate) async fn describe_groups(
    ctx: Ctx<'_>,
    mut req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let asked = std::mem::take(&mut req.groups);
    let (allowed, denied): (Vec<_>, Vec<_>) = asked
        .iter()
        .cloned()
        .partition(|g| ctx.may_on_group(Operation::Describe, g));
    let with_operations = ctx.version >= 3 && req.include_authorized_operations;
    req.groups = allowed;
    let mut described = ctx.broker.groups().describe_groups(req, ctx.version).await;
    for g in denied {
        let mut d = kafka_protocol::messages::describe_groups_response::DescribedGroup::default();
        d.error_code = GROUP_DENIED;
        d.group_id = g;
        described.groups.push(d);
    }
    // In the order asked.
    described
        .groups
        .sort_by_key(|d| asked.iter().position(|g| *g == d.group_id));
    if with_operations {
        for d in &mut described.groups {
            if d.error_code == 0 {
                d.authorized_operations =
                    ctx.authorized_operations(ResourceType::Group, &d.group_id);
            }
        }
    }
    described
}

/// DeleteGroups: DELETE on each group (GROUP_AUTHORIZATION_FAILED).
pub(crate) async fn delete_groups(
    ctx: Ctx<'_>,
    mut req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let asked = std::mem::take(&mut req.groups_names);
    let (allowed, denied): (Vec<_>, Vec<_>) = asked
        .iter()
        .cloned()
        .partition(|g| ctx.may_on_group(Operation::Delete, g));
    req.groups_names = allowed;
    let mut resp = ctx.broker.groups().delete_groups(req, ctx.version).await;
    for g in denied {
        let mut r =
            kafka_protocol::messages::delete_groups_response::DeletableGroupResult::default();
        r.error_code = GROUP_DENIED;
        r.group_id = g;
        resp.results.push(r);
    }
    resp.results
        .sort_by_key(|r| asked.iter().position(|g| *g == r.group_id));
    resp
}
