//! ListGroups, DescribeGroups and FindCoordinator, as admin tools and clients use them.

use kafka_protocol::messages::{DescribeGroupsRequest, FindCoordinatorRequest, ListGroupsRequest};

use super::*;

#[tokio::test]
async fn list_groups_shows_every_group_and_filters_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    commit_as(&c, "offsets-only", -1, "", &[("t", 0, 1, None)], 8).await;
    let mut a = Client::new("stable", "a");
    a.join(&c, 5).await;
    a.sync(&c, &[(&a.member_id, b"x")], 3).await;

    let resp = check(c.list_groups(ListGroupsRequest::default(), 3).await, 3);
    assert_eq!(resp.error_code, NONE);
    let mut listed: Vec<(String, String)> = resp
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.protocol_type.to_string()))
        .collect();
    listed.sort();
    assert_eq!(
        listed,
        vec![
            ("offsets-only".into(), String::new()),
            ("stable".into(), "consumer".into())
        ]
    );

    let mut req = ListGroupsRequest::default();
    req.states_filter = vec![s("stable")];
    let resp = check(c.list_groups(wire(&req, 4), 4).await, 4);
    let states: Vec<(String, String)> = resp
        .groups
        .iter()
        .map(|g| (g.group_id.to_string(), g.group_state.to_string()))
        .collect();
    assert_eq!(states, vec![("stable".into(), "Stable".into())]);

    let mut req = ListGroupsRequest::default();
    req.types_filter = vec![s("consumer")];
    let resp = check(c.list_groups(wire(&req, 5), 5).await, 5);
    assert!(resp.groups.is_empty(), "no KIP-848 groups here");
    req.types_filter = vec![s("classic")];
    let resp = check(c.list_groups(wire(&req, 5), 5).await, 5);
    assert_eq!(resp.groups.len(), 2);
    assert!(
        resp.groups
            .iter()
            .all(|g| g.group_type.as_str() == "classic")
    );
}

#[tokio::test]
async fn describe_groups_shows_members_with_metadata_and_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("g", "describer");
    a.join(&c, 5).await;

    let mut req = DescribeGroupsRequest::default();
    req.groups = vec![GroupId(s("g")), GroupId(s("nope"))];
    let resp = check(c.describe_groups(wire(&req, 5), 5).await, 5);
    let forming = &resp.groups[0];
    assert_eq!(forming.group_state.as_str(), "CompletingRebalance");
    assert_eq!(
        forming.protocol_data.as_str(),
        "",
        "no protocol shown until stable"
    );
    assert!(forming.members[0].member_assignment.is_empty());

    a.sync(&c, &[(&a.member_id, b"partitions")], 3).await;
    req.include_authorized_operations = true;
    let resp = check(c.describe_groups(wire(&req, 5), 5).await, 5);
    let g = &resp.groups[0];
    assert_eq!(g.error_code, NONE);
    assert_eq!(g.group_id.as_str(), "g");
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.protocol_type.as_str(), "consumer");
    assert_eq!(g.protocol_data.as_str(), "range");
    assert_ne!(g.authorized_operations, i32::MIN);
    let m = &g.members[0];
    assert_eq!(m.member_id.as_str(), a.member_id);
    assert_eq!(m.client_id.as_str(), "describer");
    assert_eq!(m.client_host.as_str(), "/127.0.0.1");
    assert_eq!(m.member_metadata.as_ref(), b"sub-range-describer");
    assert_eq!(m.member_assignment.as_ref(), b"partitions");

    let unknown = &resp.groups[1];
    assert_eq!(
        (unknown.error_code, unknown.group_state.as_str()),
        (NONE, "Dead")
    );
    assert!(unknown.members.is_empty());
}

#[tokio::test]
async fn find_coordinator_points_at_this_broker() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    for version in 0..=3 {
        let mut req = FindCoordinatorRequest::default();
        req.key = s("g");
        let resp = check(
            c.find_coordinator(wire(&req, version), version).await,
            version,
        );
        assert_eq!(resp.error_code, NONE);
        assert_eq!(
            (resp.node_id.0, resp.host.as_str(), resp.port),
            (7, "127.0.0.1", 19092)
        );
    }
    let mut req = FindCoordinatorRequest::default();
    req.coordinator_keys = vec![s("g1"), s("g2")];
    let resp = check(c.find_coordinator(wire(&req, 4), 4).await, 4);
    let keys: Vec<(&str, i16, i32)> = resp
        .coordinators
        .iter()
        .map(|k| (k.key.as_str(), k.error_code, k.port))
        .collect();
    assert_eq!(keys, vec![("g1", NONE, 19092), ("g2", NONE, 19092)]);

    let mut txn = FindCoordinatorRequest::default();
    txn.key = s("my-transactional-id");
    txn.key_type = 1;
    let resp = check(c.find_coordinator(wire(&txn, 2), 2).await, 2);
    assert_eq!(
        resp.error_code, 15,
        "COORDINATOR_NOT_AVAILABLE: no transaction coordinator"
    );

    c.shutdown().await;
    let mut req = FindCoordinatorRequest::default();
    req.key = s("g");
    let resp = check(c.find_coordinator(wire(&req, 2), 2).await, 2);
    assert_eq!(resp.error_code, 15);
}
