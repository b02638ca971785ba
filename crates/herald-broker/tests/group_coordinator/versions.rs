//! Every version in the advertised ranges works end to end through the codec: an
//! advertised version is a promise.

use herald_broker::group::{
    DELETE_GROUPS_VERSIONS, DESCRIBE_GROUPS_VERSIONS, FIND_COORDINATOR_VERSIONS,
    HEARTBEAT_VERSIONS, JOIN_GROUP_VERSIONS, LEAVE_GROUP_VERSIONS, LIST_GROUPS_VERSIONS,
    OFFSET_COMMIT_VERSIONS, OFFSET_FETCH_VERSIONS, SYNC_GROUP_VERSIONS,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest,
    OffsetFetchRequest, offset_fetch_request::OffsetFetchRequestGroup,
    offset_fetch_request::OffsetFetchRequestTopics,
};

use super::*;

fn versions((min, max): (i16, i16)) -> std::ops::RangeInclusive<i16> {
    min..=max
}

#[tokio::test]
async fn membership_lifecycle_at_every_supported_version() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    for join_v in versions(JOIN_GROUP_VERSIONS) {
        let sync_v = join_v.min(SYNC_GROUP_VERSIONS.1);
        let heartbeat_v = join_v.min(HEARTBEAT_VERSIONS.1);
        let leave_v = join_v.min(LEAVE_GROUP_VERSIONS.1);
        let mut a = Client::new(&format!("g-v{join_v}"), "client");
        let resp = soon("join", a.join(&c, join_v)).await;
        assert_eq!(resp.error_code, NONE, "JoinGroup v{join_v}");
        assert_eq!(
            resp.protocol_name.as_deref(),
            Some("range"),
            "JoinGroup v{join_v}"
        );
        if join_v >= 7 {
            assert_eq!(resp.protocol_type.as_deref(), Some("consumer"));
        }
        let resp = soon("sync", a.sync(&c, &[(&a.member_id, b"x")], sync_v)).await;
        assert_eq!(
            (resp.error_code, resp.assignment.as_ref()),
            (NONE, &b"x"[..]),
            "SyncGroup v{sync_v}"
        );
        if sync_v >= 5 {
            assert_eq!(resp.protocol_name.as_deref(), Some("range"));
        }
        assert_eq!(
            a.heartbeat_v(&c, heartbeat_v).await,
            NONE,
            "Heartbeat v{heartbeat_v}"
        );
        assert_eq!(a.leave(&c, leave_v).await, NONE, "LeaveGroup v{leave_v}");
    }
    // The versions a join or leave did not reach above.
    for v in versions(HEARTBEAT_VERSIONS) {
        let mut a = Client::new(&format!("hb-v{v}"), "client");
        a.join(&c, 5).await;
        a.sync(&c, &[(&a.member_id, b"x")], 3).await;
        assert_eq!(a.heartbeat_v(&c, v).await, NONE, "Heartbeat v{v}");
    }
    // Errors are shaped for old versions too.
    let mut late = Client::new("g-v9", "late");
    late.member_id = "late-unknown".into();
    for v in versions(JOIN_GROUP_VERSIONS) {
        assert_eq!(
            late.join_once(&c, v).await.error_code,
            UNKNOWN_MEMBER_ID,
            "JoinGroup v{v}"
        );
    }
}

#[tokio::test]
async fn offsets_at_every_supported_version() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    for commit_v in versions(OFFSET_COMMIT_VERSIONS) {
        let group = format!("o-v{commit_v}");
        let resp = commit_as(
            &c,
            &group,
            -1,
            "",
            &[("t", 0, i64::from(commit_v) * 10, Some("meta"))],
            commit_v,
        )
        .await;
        assert_eq!(commit_codes(&resp), vec![NONE], "OffsetCommit v{commit_v}");
        assert_eq!(resp.topics[0].name.as_str(), "t");
    }
    for fetch_v in versions(OFFSET_FETCH_VERSIONS).filter(|v| *v < 8) {
        for commit_v in versions(OFFSET_COMMIT_VERSIONS) {
            let got = fetch(
                &c,
                &format!("o-v{commit_v}"),
                &[("t", 0), ("t", 1)],
                fetch_v,
            )
            .await;
            assert_eq!(
                got,
                vec![
                    (i64::from(commit_v) * 10, "meta".into()),
                    (-1, String::new())
                ],
                "OffsetFetch v{fetch_v} of a v{commit_v} commit"
            );
        }
    }
    for fetch_v in versions(OFFSET_FETCH_VERSIONS).filter(|v| *v >= 8) {
        let mut req = OffsetFetchRequest::default();
        req.groups = versions(OFFSET_COMMIT_VERSIONS)
            .map(|v| {
                let mut g = OffsetFetchRequestGroup::default();
                g.group_id = GroupId(s(&format!("o-v{v}")));
                let mut t = OffsetFetchRequestTopics::default();
                t.name = TopicName(s("t"));
                t.partition_indexes = vec![0];
                g.topics = Some(vec![t]);
                g
            })
            .collect();
        let resp = check(c.offset_fetch(wire(&req, fetch_v), fetch_v).await, fetch_v);
        for (g, v) in resp.groups.iter().zip(versions(OFFSET_COMMIT_VERSIONS)) {
            let p = &g.topics[0].partitions[0];
            assert_eq!(
                p.committed_offset,
                i64::from(v) * 10,
                "OffsetFetch v{fetch_v}"
            );
            assert_eq!(p.committed_leader_epoch, if v >= 6 { 5 } else { -1 });
        }
    }
}

#[tokio::test]
async fn admin_apis_at_every_supported_version() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("admin", "a");
    a.join(&c, 5).await;
    a.sync(&c, &[(&a.member_id, b"x")], 3).await;
    for v in versions(LIST_GROUPS_VERSIONS) {
        let resp = check(
            c.list_groups(wire(&ListGroupsRequest::default(), v), v)
                .await,
            v,
        );
        assert_eq!(resp.groups.len(), 1, "ListGroups v{v}");
    }
    for v in versions(DESCRIBE_GROUPS_VERSIONS) {
        let mut req = DescribeGroupsRequest::default();
        req.groups = vec![GroupId(s("admin"))];
        let resp = check(c.describe_groups(wire(&req, v), v).await, v);
        assert_eq!(resp.groups[0].members.len(), 1, "DescribeGroups v{v}");
        assert_eq!(resp.groups[0].members[0].member_assignment.as_ref(), b"x");
    }
    for v in versions(FIND_COORDINATOR_VERSIONS) {
        let mut req = FindCoordinatorRequest::default();
        if v >= 4 {
            req.coordinator_keys = vec![s("admin")];
        } else {
            req.key = s("admin");
        }
        let resp = check(c.find_coordinator(wire(&req, v), v).await, v);
        let port = if v >= 4 {
            resp.coordinators[0].port
        } else {
            resp.port
        };
        assert_eq!(port, 19092, "FindCoordinator v{v}");
    }
    for v in versions(DELETE_GROUPS_VERSIONS) {
        let group = format!("del-v{v}");
        commit_as(&c, &group, -1, "", &[("t", 0, 1, None)], 8).await;
        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![GroupId(s(&group))];
        let resp = check(c.delete_groups(wire(&req, v), v).await, v);
        assert_eq!(resp.results[0].error_code, NONE, "DeleteGroups v{v}");
    }
}
