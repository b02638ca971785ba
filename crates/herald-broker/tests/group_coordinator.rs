//! The group coordinator, driven directly through its async handlers (no network).
//!
//! Every request is encoded and decoded at the version under test before the coordinator
//! sees it, and every response is encoded at that version, so a field set that the
//! version does not have fails the test as it would fail on the wire.

// Joining, syncing, heartbeats, leaving, timeouts, static members.
#[path = "group_coordinator/membership.rs"]
mod membership;
// Committed offsets: checks, durability across reopen, deletion, expiry, snapshots.
#[path = "group_coordinator/offsets.rs"]
mod offsets;
// ListGroups, DescribeGroups, FindCoordinator.
#[path = "group_coordinator/admin.rs"]
mod admin;
// Every advertised version of every API, through the codec.
#[path = "group_coordinator/versions.rs"]
mod versions;

use std::{path::Path, sync::Arc, time::Duration};

use bytes::{Bytes, BytesMut};
use herald_broker::group::{ClientInfo, CoordinatorNode, GroupConfig, GroupCoordinator};
use kafka_protocol::{
    messages::{
        GroupId, HeartbeatRequest, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
        OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
        SyncGroupRequest, SyncGroupResponse, TopicName,
        join_group_request::JoinGroupRequestProtocol,
        leave_group_request::MemberIdentity,
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        offset_fetch_request::OffsetFetchRequestTopic,
        sync_group_request::SyncGroupRequestAssignment,
    },
    protocol::{Decodable, Encodable, StrBytes},
};

pub(crate) const NONE: i16 = 0;
pub(crate) const ILLEGAL_GENERATION: i16 = 22;
pub(crate) const UNKNOWN_MEMBER_ID: i16 = 25;
pub(crate) const REBALANCE_IN_PROGRESS: i16 = 27;
pub(crate) const MEMBER_ID_REQUIRED: i16 = 79;

/// Upper bound for anything that should happen "soon": generous for a loaded 2-core CI.
pub(crate) const SOON: Duration = Duration::from_secs(5);

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Short timeouts so that tests take well under a second each.
pub(crate) fn test_config() -> GroupConfig {
    GroupConfig {
        min_session_timeout: Duration::from_millis(100),
        initial_rebalance_delay: Duration::from_millis(50),
        ..GroupConfig::default()
    }
}

pub(crate) fn node() -> CoordinatorNode {
    CoordinatorNode {
        node_id: 7,
        host: "127.0.0.1".into(),
        port: 19092,
    }
}

pub(crate) fn open(dir: &Path, config: GroupConfig) -> Arc<GroupCoordinator> {
    Arc::new(GroupCoordinator::open(dir, config, node()).expect("open coordinator"))
}

/// What a request looks like after the codec at `version`: fields the version lacks are
/// gone, as they would be coming off the wire.
pub(crate) fn wire<R: Encodable + Decodable>(req: &R, version: i16) -> R {
    let mut buf = BytesMut::new();
    req.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("request does not encode at v{version}: {e}"));
    let mut bytes = buf.freeze();
    let decoded = R::decode(&mut bytes, version).expect("request decodes");
    assert!(bytes.is_empty(), "request v{version} left bytes over");
    decoded
}

/// Encodes a response at `version` (failing the test if a field is set that the version
/// lacks) and decodes it as a client would.
pub(crate) fn check<R: Encodable + Decodable>(resp: R, version: i16) -> R {
    let mut buf = BytesMut::new();
    resp.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("response does not encode at v{version}: {e}"));
    let mut bytes = buf.freeze();
    let decoded = R::decode(&mut bytes, version).expect("response decodes");
    assert!(bytes.is_empty(), "response v{version} left bytes over");
    decoded
}

/// A consumer member as a test drives it.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub(crate) group: String,
    pub(crate) client_id: String,
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) session_ms: i32,
    pub(crate) rebalance_ms: i32,
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) generation: i32,
}

impl Client {
    pub(crate) fn new(group: &str, client_id: &str) -> Self {
        Client {
            group: group.into(),
            client_id: client_id.into(),
            member_id: String::new(),
            instance_id: None,
            session_ms: 10_000,
            rebalance_ms: 10_000,
            protocols: vec![
                (
                    "range".into(),
                    Bytes::from(format!("sub-range-{client_id}")),
                ),
                (
                    "roundrobin".into(),
                    Bytes::from(format!("sub-rr-{client_id}")),
                ),
            ],
            generation: -1,
        }
    }

    pub(crate) fn session_ms(mut self, ms: i32) -> Self {
        self.session_ms = ms;
        self
    }

    pub(crate) fn rebalance_ms(mut self, ms: i32) -> Self {
        self.rebalance_ms = ms;
        self
    }

    pub(crate) fn join_request(&self, version: i16) -> JoinGroupRequest {
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.session_timeout_ms = self.session_ms;
        if version >= 1 {
            req.rebalance_timeout_ms = self.rebalance_ms;
        }
        req.member_id = s(&self.member_id);
        if version >= 5 {
            req.group_instance_id = self.instance_id.as_deref().map(s);
        }
        req.protocol_type = s("consumer");
        req.protocols = self
            .protocols
            .iter()
            .map(|(name, meta)| {
                let mut p = JoinGroupRequestProtocol::default();
                p.name = s(name);
                p.metadata = meta.clone();
                p
            })
            .collect();
        req
    }

    /// One JoinGroup, through the codec; adopts the member id and generation it returns.
    pub(crate) async fn join_once(
        &mut self,
        c: &GroupCoordinator,
        version: i16,
    ) -> JoinGroupResponse {
        let req = wire(&self.join_request(version), version);
        let info = ClientInfo {
            client_id: self.client_id.clone(),
            client_host: "/127.0.0.1".into(),
        };
        let resp = check(
            soon("JoinGroup", c.join_group_from(req, version, &info)).await,
            version,
        );
        if !resp.member_id.is_empty() {
            self.member_id = resp.member_id.to_string();
        }
        if resp.error_code == NONE {
            self.generation = resp.generation_id;
        }
        resp
    }

    /// JoinGroup as a client does it: a second request after MEMBER_ID_REQUIRED.
    pub(crate) async fn join(&mut self, c: &GroupCoordinator, version: i16) -> JoinGroupResponse {
        let resp = self.join_once(c, version).await;
        if resp.error_code == MEMBER_ID_REQUIRED {
            return self.join_once(c, version).await;
        }
        resp
    }

    pub(crate) fn sync_request(
        &self,
        assignments: &[(&str, &[u8])],
        version: i16,
    ) -> SyncGroupRequest {
        let mut req = SyncGroupRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.generation_id = self.generation;
        req.member_id = s(&self.member_id);
        if version >= 3 {
            req.group_instance_id = self.instance_id.as_deref().map(s);
        }
        if version >= 5 {
            req.protocol_type = Some(s("consumer"));
        }
        req.assignments = assignments
            .iter()
            .map(|(member, bytes)| {
                let mut a = SyncGroupRequestAssignment::default();
                a.member_id = s(member);
                a.assignment = Bytes::copy_from_slice(bytes);
                a
            })
            .collect();
        req
    }

    pub(crate) async fn sync(
        &self,
        c: &GroupCoordinator,
        assignments: &[(&str, &[u8])],
        version: i16,
    ) -> SyncGroupResponse {
        let req = wire(&self.sync_request(assignments, version), version);
        check(soon("SyncGroup", c.sync_group(req, version)).await, version)
    }

    pub(crate) async fn heartbeat_v(&self, c: &GroupCoordinator, version: i16) -> i16 {
        let mut req = HeartbeatRequest::default();
        req.group_id = GroupId(s(&self.group));
        req.generation_id = self.generation;
        req.member_id = s(&self.member_id);
        if version >= 3 {
            req.group_instance_id = self.instance_id.as_deref().map(s);
        }
        let req = wire(&req, version);
        check(c.heartbeat(req, version).await, version).error_code
    }

    pub(crate) async fn heartbeat(&self, c: &GroupCoordinator) -> i16 {
        self.heartbeat_v(c, 3).await
    }

    pub(crate) async fn leave(&self, c: &GroupCoordinator, version: i16) -> i16 {
        let mut req = LeaveGroupRequest::default();
        req.group_id = GroupId(s(&self.group));
        if version >= 3 {
            let mut m = MemberIdentity::default();
            m.member_id = s(&self.member_id);
            m.group_instance_id = self.instance_id.as_deref().map(s);
            req.members = vec![m];
        } else {
            req.member_id = s(&self.member_id);
        }
        let resp = check(c.leave_group(wire(&req, version), version).await, version);
        if version >= 3 {
            assert_eq!(resp.error_code, NONE);
            resp.members[0].error_code
        } else {
            resp.error_code
        }
    }

    pub(crate) async fn commit(
        &self,
        c: &GroupCoordinator,
        offsets: &[(&str, i32, i64, Option<&str>)],
        version: i16,
    ) -> OffsetCommitResponse {
        commit_as(
            c,
            &self.group,
            self.generation,
            &self.member_id,
            offsets,
            version,
        )
        .await
    }
}

/// An OffsetCommit with the given credentials: (topic, partition, offset, metadata).
pub(crate) async fn commit_as(
    c: &GroupCoordinator,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64, Option<&str>)],
    version: i16,
) -> OffsetCommitResponse {
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(s(group));
    req.generation_id_or_member_epoch = generation;
    req.member_id = s(member_id);
    for (topic, partition, offset, metadata) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        p.committed_metadata = metadata.map(s);
        if version >= 6 {
            p.committed_leader_epoch = 5;
        }
        match req.topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partitions.push(p);
                req.topics.push(t);
            }
        }
    }
    check(
        soon(
            "OffsetCommit",
            c.offset_commit(wire(&req, version), version),
        )
        .await,
        version,
    )
}

/// Every partition error code of an OffsetCommit response, in order.
pub(crate) fn commit_codes(resp: &OffsetCommitResponse) -> Vec<i16> {
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect()
}

/// OffsetFetch (v1-7 form) of the given partitions: (offset, metadata) each.
pub(crate) async fn fetch(
    c: &GroupCoordinator,
    group: &str,
    partitions: &[(&str, i32)],
    version: i16,
) -> Vec<(i64, String)> {
    let mut req = OffsetFetchRequest::default();
    req.group_id = GroupId(s(group));
    let mut topics: Vec<OffsetFetchRequestTopic> = Vec::new();
    for (topic, partition) in partitions {
        match topics.iter_mut().find(|t| t.name.as_str() == *topic) {
            Some(t) => t.partition_indexes.push(*partition),
            None => {
                let mut t = OffsetFetchRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partition_indexes.push(*partition);
                topics.push(t);
            }
        }
    }
    req.topics = Some(topics);
    let resp: OffsetFetchResponse =
        check(c.offset_fetch(wire(&req, version), version).await, version);
    assert_eq!(resp.error_code, NONE);
    resp.topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            assert_eq!(p.error_code, NONE);
            (
                p.committed_offset,
                p.metadata.as_deref().unwrap_or("<null>").to_owned(),
            )
        })
        .collect()
}

/// Runs `f` with a deadline so that a hang fails the test instead of blocking CI.
pub(crate) async fn soon<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(SOON, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {SOON:?}"))
}
