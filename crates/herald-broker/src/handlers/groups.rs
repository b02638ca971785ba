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

use super::Ctx;
use crate::group::ClientInfo;

/// FindCoordinator.
pub(crate) async fn find_coordinator(
    ctx: Ctx<'_>,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    ctx.broker.groups().find_coordinator(req, ctx.version).await
}

/// JoinGroup, with the client id and host Kafka records for the member.
pub(crate) async fn join_group(ctx: Ctx<'_>, req: JoinGroupRequest) -> JoinGroupResponse {
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
    ctx.broker.groups().sync_group(req, ctx.version).await
}

/// Heartbeat.
pub(crate) async fn heartbeat(ctx: Ctx<'_>, req: HeartbeatRequest) -> HeartbeatResponse {
    ctx.broker.groups().heartbeat(req, ctx.version).await
}

/// LeaveGroup.
pub(crate) async fn leave_group(ctx: Ctx<'_>, req: LeaveGroupRequest) -> LeaveGroupResponse {
    ctx.broker.groups().leave_group(req, ctx.version).await
}

/// OffsetCommit: partitions of unknown topics are answered here with
/// UNKNOWN_TOPIC_OR_PARTITION; the rest go to the coordinator.
pub(crate) async fn offset_commit(
    ctx: Ctx<'_>,
    mut req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let topics = ctx.broker.topics();
    let mut refused: Vec<OffsetCommitResponseTopic> = Vec::new();
    for topic in &mut req.topics {
        let known = topics.get(&topic.name);
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
                    r.error_code = ResponseError::UnknownTopicOrPartition.code();
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

/// OffsetFetch.
pub(crate) async fn offset_fetch(ctx: Ctx<'_>, req: OffsetFetchRequest) -> OffsetFetchResponse {
    ctx.broker.groups().offset_fetch(req, ctx.version).await
}

/// ListGroups.
pub(crate) async fn list_groups(ctx: Ctx<'_>, req: ListGroupsRequest) -> ListGroupsResponse {
    ctx.broker.groups().list_groups(req, ctx.version).await
}

/// DescribeGroups.
pub(crate) async fn describe_groups(
    ctx: Ctx<'_>,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    ctx.broker.groups().describe_groups(req, ctx.version).await
}

/// DeleteGroups.
pub(crate) async fn delete_groups(ctx: Ctx<'_>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    ctx.broker.groups().delete_groups(req, ctx.version).await
}
