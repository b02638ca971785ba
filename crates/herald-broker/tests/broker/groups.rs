//! The consumer-group APIs through the broker's dispatcher (the coordinator's own logic
//! is tested in tests/group_coordinator).

use bytes::Bytes;
use herald_broker::{Broker, BrokerHandle};
use kafka_protocol::{
    messages::{
        ApiVersionsRequest, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest,
        DescribeGroupsResponse, FindCoordinatorRequest, FindCoordinatorResponse, GroupId,
        HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
        LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
        OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
        SyncGroupRequest, SyncGroupResponse,
        join_group_request::JoinGroupRequestProtocol,
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        offset_fetch_request::OffsetFetchRequestTopic,
        sync_group_request::SyncGroupRequestAssignment,
    },
    protocol::StrBytes,
};

use crate::common::{Client, config, init_tracing, topic_name};

async fn start_fast(dir: &std::path::Path) -> BrokerHandle {
    init_tracing();
    let mut c = config(dir);
    c.group_initial_rebalance_delay_ms = 10;
    Broker::start(c).await.unwrap()
}

fn group(id: &str) -> GroupId {
    GroupId(StrBytes::from_string(id.to_string()))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

async fn commit(
    c: &mut Client,
    generation: i32,
    member: &str,
    parts: &[(&str, i32, i64)],
) -> Vec<(String, i32, i16)> {
    let mut req = OffsetCommitRequest::default();
    req.group_id = group("g");
    req.generation_id_or_member_epoch = generation;
    req.member_id = s(member);
    req.group_instance_id = None;
    for (topic, partition, offset) in parts {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_metadata = Some(s("meta"));
        let mut t = OffsetCommitRequestTopic::default();
        t.name = topic_name(topic);
        t.partitions = vec![p];
        req.topics.push(t);
    }
    let resp: OffsetCommitResponse = c.call(8, req).await;
    let mut out: Vec<_> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.to_string(), p.partition_index, p.error_code))
        })
        .collect();
    out.sort();
    out
}

async fn fetch_offset(c: &mut Client, topic: &str, partition: i32) -> (i64, Option<String>) {
    let mut req = OffsetFetchRequest::default();
    req.group_id = group("g");
    let mut t = OffsetFetchRequestTopic::default();
    t.name = topic_name(topic);
    t.partition_indexes = vec![partition];
    req.topics = Some(vec![t]);
    let resp: OffsetFetchResponse = c.call(5, req).await;
    assert_eq!(resp.error_code, 0);
    let p = &resp.topics[0].partitions[0];
    (
        p.committed_offset,
        p.metadata.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test]
async fn consumer_group_lifecycle_over_the_wire() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_fast(dir.path()).await;
    let addr = broker.kafka_addr();
    let mut c = Client::connect(addr).await;
    c.create_topic("t", 2, &[]).await;

    let versions = c.call(3, ApiVersionsRequest::default()).await;
    for (api, max) in [
        (10i16, 4i16),
        (11, 9),
        (14, 5),
        (12, 4),
        (13, 5),
        (8, 9),
        (9, 9),
        (16, 5),
        (15, 5),
        (42, 2),
    ] {
        let v = versions.api_keys.iter().find(|k| k.api_key == api);
        assert_eq!(v.map(|v| v.max_version), Some(max), "API {api}");
    }

    let mut req = FindCoordinatorRequest::default();
    req.key = s("g");
    let found: FindCoordinatorResponse = c.call(2, req).await;
    assert_eq!(
        (found.error_code, found.node_id.0, found.port),
        (0, 1, i32::from(addr.port()))
    );

    // JoinGroup v5: the first join asks for a member id, the second joins.
    let join = |member: &str| {
        let mut req = JoinGroupRequest::default();
        req.group_id = group("g");
        req.session_timeout_ms = 10_000;
        req.rebalance_timeout_ms = 10_000;
        req.member_id = s(member);
        req.group_instance_id = None;
        req.protocol_type = s("consumer");
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from_static(b"subscription");
        req.protocols = vec![p];
        req
    };
    let first: JoinGroupResponse = c.call(5, join("")).await;
    assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
    assert!(
        first.member_id.starts_with("herald-test-"),
        "member ids start with the client id"
    );
    let member = first.member_id.to_string();
    let joined: JoinGroupResponse = c.call(5, join(&member)).await;
    assert_eq!(joined.error_code, 0);
    assert_eq!(joined.leader, joined.member_id);
    let generation = joined.generation_id;

    let mut sync = SyncGroupRequest::default();
    sync.group_id = group("g");
    sync.generation_id = generation;
    sync.member_id = s(&member);
    sync.group_instance_id = None;
    let mut a = SyncGroupRequestAssignment::default();
    a.member_id = s(&member);
    a.assignment = Bytes::from_static(b"t:0,1");
    sync.assignments = vec![a];
    let synced: SyncGroupResponse = c.call(3, sync).await;
    assert_eq!(
        (synced.error_code, &synced.assignment[..]),
        (0, &b"t:0,1"[..])
    );

    let mut hb = HeartbeatRequest::default();
    hb.group_id = group("g");
    hb.generation_id = generation;
    hb.member_id = s(&member);
    hb.group_instance_id = None;
    let beat: HeartbeatResponse = c.call(3, hb).await;
    assert_eq!(beat.error_code, 0);

    // Commits for unknown topics or partitions are refused by the broker; the rest land.
    let codes = commit(
        &mut c,
        generation,
        &member,
        &[("t", 0, 42), ("t", 7, 1), ("nope", 0, 1)],
    )
    .await;
    assert_eq!(
        codes,
        [
            ("nope".into(), 0, 3),
            ("t".into(), 0, 0),
            ("t".into(), 7, 3)
        ]
    );
    assert_eq!(
        fetch_offset(&mut c, "t", 0).await,
        (42, Some("meta".into()))
    );

    let listed: ListGroupsResponse = c.call(3, ListGroupsRequest::default()).await;
    assert_eq!(listed.groups.len(), 1);
    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![group("g")];
    let described: DescribeGroupsResponse = c.call(5, req).await;
    let g = &described.groups[0];
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.members[0].client_id.as_str(), "herald-test");
    assert_eq!(g.members[0].client_host.as_str(), "/127.0.0.1");

    let mut leave = LeaveGroupRequest::default();
    leave.group_id = group("g");
    leave.member_id = s(&member);
    let left: LeaveGroupResponse = c.call(1, leave).await;
    assert_eq!(left.error_code, 0);

    // Committed offsets survive a restart of the broker.
    broker.shutdown().await.unwrap();
    let broker = start_fast(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    assert_eq!(fetch_offset(&mut c, "t", 0).await.0, 42);
    let mut req = DeleteGroupsRequest::default();
    req.groups_names = vec![group("g")];
    let deleted: DeleteGroupsResponse = c.call(2, req).await;
    assert_eq!(deleted.results[0].error_code, 0);
    assert_eq!(fetch_offset(&mut c, "t", 0).await.0, -1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_answers_a_waiting_join() {
    let dir = tempfile::tempdir().unwrap();
    init_tracing();
    let mut cfg = config(dir.path());
    // A long initial delay keeps the JoinGroup waiting.
    cfg.group_initial_rebalance_delay_ms = 60_000;
    let broker = Broker::start(cfg).await.unwrap();
    let addr = broker.kafka_addr();
    let waiting = tokio::spawn(async move {
        let mut c = Client::connect(addr).await;
        let mut req = JoinGroupRequest::default();
        req.group_id = group("slow");
        req.session_timeout_ms = 10_000;
        req.rebalance_timeout_ms = 120_000;
        req.member_id = s("");
        req.protocol_type = s("consumer");
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        req.protocols = vec![p];
        let resp: JoinGroupResponse = c.call(3, req).await;
        resp.error_code
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    broker.shutdown().await.unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_ne!(
        waiting.await.unwrap(),
        0,
        "the waiting join got an error, not silence"
    );
}
