//! Membership: what a consumer relies on while it joins, works and leaves.

use std::time::{Duration, Instant};

use herald_broker::group::{GroupConfig, GroupState};

use super::*;

#[tokio::test]
async fn single_member_joins_syncs_and_heartbeats_without_waiting_for_the_session_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("g", "rdkafka").session_ms(45_000);

    let started = Instant::now();
    let first = a.join_once(&c, 5).await;
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    assert!(
        a.member_id.starts_with("rdkafka-"),
        "member id {}",
        a.member_id
    );

    let joined = soon("join", a.join_once(&c, 5)).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "first join took {:?}",
        started.elapsed()
    );
    assert_eq!(joined.error_code, NONE);
    assert_eq!(joined.generation_id, 1);
    assert_eq!(joined.leader.as_str(), a.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1);
    assert_eq!(joined.members[0].metadata.as_ref(), b"sub-range-rdkafka");

    let synced = soon("sync", a.sync(&c, &[(&a.member_id, b"all of it")], 3)).await;
    assert_eq!(synced.error_code, NONE);
    assert_eq!(synced.assignment.as_ref(), b"all of it");
    assert_eq!(a.heartbeat(&c).await, NONE);

    let groups = c.groups();
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].state, GroupState::Stable);
    assert_eq!(groups[0].members[0].client_id, "rdkafka");
    assert_eq!(groups[0].members[0].assignment, b"all of it");
}

/// Joins `clients` concurrently into one generation; returns the join responses.
async fn join_all(c: &Arc<GroupCoordinator>, clients: &mut [Client]) -> Vec<JoinGroupResponse> {
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|mut client| {
            let c = Arc::clone(c);
            tokio::spawn(async move {
                let resp = client.join(&c, 5).await;
                (client, resp)
            })
        })
        .collect();
    let mut out = Vec::new();
    for (task, slot) in tasks.into_iter().zip(clients.iter_mut()) {
        let (client, resp) = soon("join", task).await.unwrap();
        *slot = client;
        out.push(resp);
    }
    out
}

/// Syncs every client (followers first, so they must wait for the leader) and returns
/// the assignments they received. The leader hands out "for <member id>".
async fn sync_all(c: &Arc<GroupCoordinator>, clients: &[Client], leader: &str) -> Vec<Vec<u8>> {
    let mut tasks = Vec::new();
    for client in clients.iter().filter(|cl| cl.member_id != leader) {
        let (c, client) = (Arc::clone(c), client.clone());
        tasks.push(tokio::spawn(async move { client.sync(&c, &[], 3).await }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let leader_client = clients.iter().find(|cl| cl.member_id == leader).unwrap();
    let plan: Vec<(String, Vec<u8>)> = clients
        .iter()
        .map(|cl| {
            (
                cl.member_id.clone(),
                format!("for {}", cl.member_id).into_bytes(),
            )
        })
        .collect();
    let plan_refs: Vec<(&str, &[u8])> = plan
        .iter()
        .map(|(m, a)| (m.as_str(), a.as_slice()))
        .collect();
    let leader_resp = leader_client.sync(c, &plan_refs, 3).await;
    assert_eq!(leader_resp.error_code, NONE);
    let mut out = vec![leader_resp.assignment.to_vec()];
    for task in tasks {
        let resp = soon("follower sync", task).await.unwrap();
        assert_eq!(resp.error_code, NONE);
        out.push(resp.assignment.to_vec());
    }
    out
}

#[tokio::test]
async fn two_members_both_get_their_assignment_from_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut clients = vec![Client::new("g", "a"), Client::new("g", "b")];
    let responses = join_all(&c, &mut clients).await;

    let leader = responses[0].leader.to_string();
    assert!(
        responses
            .iter()
            .all(|r| r.error_code == NONE && r.generation_id == 1)
    );
    assert!(responses.iter().all(|r| r.leader.as_str() == leader));
    for (client, resp) in clients.iter().zip(&responses) {
        if client.member_id == leader {
            let mut ids: Vec<String> = resp
                .members
                .iter()
                .map(|m| m.member_id.to_string())
                .collect();
            ids.sort();
            let mut expected: Vec<String> = clients.iter().map(|c| c.member_id.clone()).collect();
            expected.sort();
            assert_eq!(ids, expected, "the leader sees every member");
        } else {
            assert!(resp.members.is_empty(), "followers get no member list");
        }
    }

    let assignments = sync_all(&c, &clients, &leader).await;
    let mut got: Vec<String> = assignments
        .into_iter()
        .map(|a| String::from_utf8(a).unwrap())
        .collect();
    got.sort();
    let mut expected: Vec<String> = clients
        .iter()
        .map(|c| format!("for {}", c.member_id))
        .collect();
    expected.sort();
    assert_eq!(got, expected);
    for client in &clients {
        assert_eq!(client.heartbeat(&c).await, NONE);
    }
}

#[tokio::test]
async fn a_member_that_stops_heartbeating_is_evicted_and_the_survivor_gets_everything() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut clients = vec![
        Client::new("g", "alive").session_ms(600),
        Client::new("g", "silent").session_ms(600),
    ];
    let responses = join_all(&c, &mut clients).await;
    let leader = responses[0].leader.to_string();
    sync_all(&c, &clients, &leader).await;

    let (alive, silent) = (clients[0].clone(), clients[1].clone());
    let deadline = Instant::now() + SOON;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        match alive.heartbeat(&c).await {
            NONE => assert!(Instant::now() < deadline, "silent member never evicted"),
            REBALANCE_IN_PROGRESS => break,
            other => panic!("unexpected heartbeat error {other}"),
        }
    }
    let mut alive = alive;
    let rejoined = soon("rejoin", alive.join(&c, 5)).await;
    assert_eq!(rejoined.error_code, NONE);
    assert_eq!(rejoined.generation_id, 2);
    assert_eq!(rejoined.leader.as_str(), alive.member_id);
    assert_eq!(rejoined.members.len(), 1);
    let synced = alive
        .sync(&c, &[(&alive.member_id, b"everything")], 3)
        .await;
    assert_eq!(synced.assignment.as_ref(), b"everything");
    assert_eq!(silent.heartbeat(&c).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn leaving_triggers_a_rebalance_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut clients = vec![Client::new("g", "a"), Client::new("g", "b")];
    let responses = join_all(&c, &mut clients).await;
    sync_all(&c, &clients, responses[0].leader.as_str()).await;

    assert_eq!(clients[1].leave(&c, 1).await, NONE);
    assert_eq!(clients[0].heartbeat(&c).await, REBALANCE_IN_PROGRESS);
    let mut a = clients[0].clone();
    let rejoined = soon("rejoin", a.join(&c, 5)).await;
    assert_eq!((rejoined.error_code, rejoined.generation_id), (NONE, 2));
    assert_eq!(rejoined.leader.as_str(), a.member_id);
    assert_eq!(rejoined.members.len(), 1);
    // The member that left is gone for good.
    assert_eq!(clients[1].heartbeat(&c).await, UNKNOWN_MEMBER_ID);
    assert_eq!(clients[1].leave(&c, 3).await, UNKNOWN_MEMBER_ID);
}

#[tokio::test]
async fn leader_leaving_while_the_group_forms_does_not_leave_it_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let config = GroupConfig {
        initial_rebalance_delay: Duration::from_millis(300),
        ..test_config()
    };
    let c = open(dir.path(), config);
    let mut first = Client::new("g", "first");
    assert_eq!(first.join_once(&c, 5).await.error_code, MEMBER_ID_REQUIRED);
    // `first` is the first member, so it would lead; its JoinGroup waits out the delay.
    let first_join = {
        let (c, mut first) = (Arc::clone(&c), first.clone());
        tokio::spawn(async move { first.join_once(&c, 5).await })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let mut second = Client::new("g", "second");
    assert_eq!(second.join_once(&c, 5).await.error_code, MEMBER_ID_REQUIRED);
    let second_join = {
        let (c, mut second) = (Arc::clone(&c), second.clone());
        tokio::spawn(async move {
            let resp = second.join_once(&c, 5).await;
            (second, resp)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let forming = &c.groups()[0];
    assert_eq!(forming.state, GroupState::PreparingRebalance);
    assert_eq!(
        forming.leader, first.member_id,
        "the first member would lead"
    );
    assert_eq!(forming.members.len(), 2);
    assert_eq!(first.leave(&c, 3).await, NONE);

    let first_resp = soon("first join", first_join).await.unwrap();
    assert_eq!(
        first_resp.error_code, UNKNOWN_MEMBER_ID,
        "the parked JoinGroup of a leaver is answered"
    );
    let (second_client, resp) = soon("second join", second_join).await.unwrap();
    second = second_client;
    assert_eq!(resp.error_code, NONE);
    assert_eq!(
        resp.leader.as_str(),
        second.member_id,
        "the leader is a member that is still here"
    );
    assert_eq!(resp.members.len(), 1);
    let synced = soon("sync", second.sync(&c, &[(&second.member_id, b"p0")], 3)).await;
    assert_eq!(
        (synced.error_code, synced.assignment.as_ref()),
        (NONE, &b"p0"[..])
    );
    assert_eq!(c.groups()[0].state, GroupState::Stable);
}

#[tokio::test]
async fn leader_leaving_before_its_sync_sends_waiting_followers_back_to_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut clients = vec![Client::new("g", "a"), Client::new("g", "b")];
    let responses = join_all(&c, &mut clients).await;
    let leader = responses[0].leader.to_string();
    let (leader_client, follower) = if clients[0].member_id == leader {
        (clients[0].clone(), clients[1].clone())
    } else {
        (clients[1].clone(), clients[0].clone())
    };
    let waiting = {
        let (c, follower) = (Arc::clone(&c), follower.clone());
        tokio::spawn(async move { follower.sync(&c, &[], 3).await })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert_eq!(leader_client.leave(&c, 0).await, NONE);
    let resp = soon("follower sync", waiting).await.unwrap();
    assert_eq!(resp.error_code, REBALANCE_IN_PROGRESS);

    let mut follower = follower;
    let rejoined = soon("rejoin", follower.join(&c, 5)).await;
    assert_eq!((rejoined.error_code, rejoined.generation_id), (NONE, 2));
    assert_eq!(rejoined.leader.as_str(), follower.member_id);
}

#[tokio::test]
async fn member_id_required_round_trip_only_from_v4() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());

    let mut new = Client::new("g4", "kafka-python");
    let resp = new.join_once(&c, 4).await;
    assert_eq!(resp.error_code, MEMBER_ID_REQUIRED);
    assert_eq!(resp.generation_id, -1);
    let handed_out = resp.member_id.to_string();
    assert!(handed_out.starts_with("kafka-python-"));
    let resp = soon("join", new.join_once(&c, 4)).await;
    assert_eq!(resp.error_code, NONE);
    assert_eq!(
        resp.member_id.as_str(),
        handed_out,
        "the handed-out id is the member id"
    );

    let mut old = Client::new("g3", "old-client");
    let resp = soon("join", old.join_once(&c, 3)).await;
    assert_eq!(resp.error_code, NONE, "v3 joins in one request");
    assert!(resp.member_id.starts_with("old-client-"));

    // A member id the coordinator never handed out is refused.
    let mut stranger = Client::new("g4", "x");
    stranger.member_id = "x-made-up".into();
    assert_eq!(
        stranger.join_once(&c, 5).await.error_code,
        UNKNOWN_MEMBER_ID
    );
}

#[tokio::test]
async fn requests_from_an_older_generation_get_illegal_generation() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("g", "a");
    a.join(&c, 5).await;
    a.sync(&c, &[(&a.member_id, b"x")], 3).await;
    let gen1 = a.clone();

    // The leader rejoining starts generation 2.
    let resp = soon("rejoin", a.join(&c, 5)).await;
    assert_eq!(resp.generation_id, 2);
    assert_eq!(gen1.sync(&c, &[], 3).await.error_code, ILLEGAL_GENERATION);
    assert_eq!(gen1.heartbeat(&c).await, ILLEGAL_GENERATION);
    let commit = gen1.commit(&c, &[("t", 0, 1, None)], 8).await;
    assert_eq!(commit_codes(&commit), vec![ILLEGAL_GENERATION]);
    assert_eq!(
        a.sync(&c, &[(&a.member_id, b"y")], 3).await.error_code,
        NONE
    );
}

#[tokio::test]
async fn a_member_that_does_not_rejoin_within_the_rebalance_timeout_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut clients = vec![
        Client::new("g", "a").rebalance_ms(400),
        Client::new("g", "b").rebalance_ms(400),
    ];
    let responses = join_all(&c, &mut clients).await;
    sync_all(&c, &clients, responses[0].leader.as_str()).await;

    // A third member arrives; `a` rejoins, `b` keeps heartbeating but never rejoins.
    let mut third = Client::new("g", "c").rebalance_ms(400);
    let third_join = {
        let (c, mut third) = (Arc::clone(&c), third.clone());
        tokio::spawn(async move {
            let resp = third.join(&c, 5).await;
            (third, resp)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(clients[1].heartbeat(&c).await, REBALANCE_IN_PROGRESS);
    let mut a = clients[0].clone();
    let started = Instant::now();
    let a_resp = soon("a rejoin", a.join(&c, 5)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "waited for b: {:?}",
        started.elapsed()
    );
    let (t, third_resp) = soon("third join", third_join).await.unwrap();
    third = t;
    assert_eq!((a_resp.error_code, third_resp.error_code), (NONE, NONE));
    assert_eq!(a_resp.generation_id, 2);
    let leader = a_resp.leader.to_string();
    let leader_resp = if leader == a.member_id {
        &a_resp
    } else {
        &third_resp
    };
    assert_eq!(leader_resp.members.len(), 2, "b is out of generation 2");
    assert_eq!(clients[1].heartbeat(&c).await, UNKNOWN_MEMBER_ID);
    assert!(third.member_id != clients[1].member_id);
}

#[tokio::test]
async fn joins_that_do_not_fit_the_group_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("g", "a");
    a.join(&c, 5).await;

    let mut other_assignor = Client::new("g", "b");
    other_assignor.protocols = vec![("sticky".into(), Bytes::new())];
    assert_eq!(
        other_assignor.join(&c, 5).await.error_code,
        23,
        "INCONSISTENT_GROUP_PROTOCOL"
    );

    let mut bad_timeout = Client::new("g", "c").session_ms(10);
    assert_eq!(
        bad_timeout.join(&c, 5).await.error_code,
        26,
        "INVALID_SESSION_TIMEOUT"
    );

    let mut no_group = Client::new("", "d");
    assert_eq!(
        no_group.join(&c, 5).await.error_code,
        24,
        "INVALID_GROUP_ID"
    );
}

#[tokio::test]
async fn the_protocol_every_member_supports_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("g", "a");
    a.protocols = vec![
        ("cooperative-sticky".into(), Bytes::new()),
        ("range".into(), Bytes::from_static(b"ra")),
    ];
    let mut b = Client::new("g", "b");
    b.protocols = vec![("range".into(), Bytes::from_static(b"rb"))];
    let mut clients = vec![a, b];
    let responses = join_all(&c, &mut clients).await;
    for resp in &responses {
        assert_eq!(resp.protocol_name.as_deref(), Some("range"));
    }
    let leader = responses.iter().find(|r| !r.members.is_empty()).unwrap();
    let mut metadata: Vec<&[u8]> = leader.members.iter().map(|m| m.metadata.as_ref()).collect();
    metadata.sort();
    assert_eq!(
        metadata,
        vec![&b"ra"[..], &b"rb"[..]],
        "the leader gets the chosen protocol's metadata"
    );
}

#[tokio::test]
async fn a_restarted_static_member_fences_its_previous_incarnation() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut before = Client::new("g", "app");
    before.instance_id = Some("app-1".into());
    let resp = soon("join", before.join_once(&c, 5)).await;
    assert_eq!(
        resp.error_code, NONE,
        "static members skip MEMBER_ID_REQUIRED"
    );
    before.sync(&c, &[(&before.member_id, b"p0")], 3).await;

    let mut after = before.clone();
    after.member_id.clear();
    let resp = soon("rejoin", after.join_once(&c, 5)).await;
    assert_eq!(resp.error_code, NONE);
    assert_ne!(after.member_id, before.member_id);
    assert_eq!(before.heartbeat(&c).await, 82, "FENCED_INSTANCE_ID");
    assert_eq!(
        after
            .sync(&c, &[(&after.member_id, b"p0")], 3)
            .await
            .error_code,
        NONE
    );
    assert_eq!(after.heartbeat(&c).await, NONE);
    // Leaving by instance id.
    assert_eq!(after.leave(&c, 3).await, NONE);
    assert_eq!(c.groups()[0].state, GroupState::Empty);
}

/// Two static members, `app-1` and `app-2`, joined and synced into a stable generation 1;
/// the leader handed out "for <member id>".
async fn stable_static_pair(c: &Arc<GroupCoordinator>) -> (Vec<Client>, String) {
    let mut clients = vec![Client::new("g", "a"), Client::new("g", "b")];
    for (i, client) in clients.iter_mut().enumerate() {
        client.instance_id = Some(format!("app-{}", i + 1));
    }
    let responses = join_all(c, &mut clients).await;
    let leader = responses[0].leader.to_string();
    sync_all(c, &clients, &leader).await;
    assert_eq!(c.groups()[0].state, GroupState::Stable);
    (clients, leader)
}

#[tokio::test]
async fn a_static_member_restarting_within_its_session_gets_its_assignment_back_without_a_rebalance()
 {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let (clients, leader) = stable_static_pair(&c).await;
    let follower = clients.iter().find(|cl| cl.member_id != leader).unwrap();
    let other = clients.iter().find(|cl| cl.member_id == leader).unwrap();

    let mut restarted = follower.clone();
    restarted.member_id.clear();
    let resp = soon("rejoin", restarted.join_once(&c, 5)).await;
    assert_eq!(resp.error_code, NONE);
    assert_eq!(resp.generation_id, 1, "same generation: no rebalance");
    assert_eq!(resp.leader.as_str(), leader);
    assert!(resp.members.is_empty());
    assert_ne!(restarted.member_id, follower.member_id);

    let synced = soon("sync", restarted.sync(&c, &[], 3)).await;
    assert_eq!(synced.error_code, NONE);
    assert_eq!(
        synced.assignment.as_ref(),
        format!("for {}", follower.member_id).as_bytes(),
        "the previous incarnation's assignment"
    );
    assert_eq!(
        other.heartbeat(&c).await,
        NONE,
        "the other member keeps going"
    );
    assert_eq!(restarted.heartbeat(&c).await, NONE);
    assert_eq!(follower.heartbeat(&c).await, 82, "FENCED_INSTANCE_ID");
    let group = &c.groups()[0];
    assert_eq!((group.state, group.generation), (GroupState::Stable, 1));
    assert_eq!(group.members.len(), 2);
}

#[tokio::test]
async fn a_restarted_static_leader_is_not_asked_to_assign_again() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let (clients, leader) = stable_static_pair(&c).await;
    let old_leader = clients.iter().find(|cl| cl.member_id == leader).unwrap();

    // Before JoinGroup v9 the answer names the old leader id, so the client acts as a
    // follower and fetches the assignment that stands.
    let mut restarted = old_leader.clone();
    restarted.member_id.clear();
    let resp = soon("rejoin v5", restarted.join_once(&c, 5)).await;
    assert_eq!((resp.error_code, resp.generation_id), (NONE, 1));
    assert_eq!(resp.leader.as_str(), leader, "the old leader id");
    assert!(resp.members.is_empty());
    let synced = soon("sync", restarted.sync(&c, &[], 3)).await;
    assert_eq!(
        synced.assignment.as_ref(),
        format!("for {leader}").as_bytes()
    );
    assert_eq!(c.groups()[0].leader, restarted.member_id, "it still leads");

    // From v9 it is told it leads, with every member, and to skip the assignment.
    let mut again = restarted.clone();
    again.member_id.clear();
    let resp = soon("rejoin v9", again.join_once(&c, 9)).await;
    assert_eq!((resp.error_code, resp.generation_id), (NONE, 1));
    assert_eq!(resp.leader.as_str(), again.member_id);
    assert!(resp.skip_assignment);
    assert_eq!(resp.members.len(), 2);
    let followers = clients.iter().find(|cl| cl.member_id != leader).unwrap();
    assert_eq!(followers.heartbeat(&c).await, NONE);
    assert_eq!(c.groups()[0].generation, 1);
}

#[tokio::test]
async fn a_static_member_rejoining_with_other_protocols_rebalances_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let (clients, leader) = stable_static_pair(&c).await;
    let follower = clients.iter().find(|cl| cl.member_id != leader).unwrap();
    let other = clients.iter().find(|cl| cl.member_id == leader).unwrap();

    let mut restarted = follower.clone();
    restarted.member_id.clear();
    restarted.protocols = vec![("roundrobin".into(), Bytes::from_static(b"rr"))];
    let c2 = Arc::clone(&c);
    let rejoin = tokio::spawn(async move {
        let resp = restarted.join_once(&c2, 5).await;
        (restarted, resp)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        other.heartbeat(&c).await,
        REBALANCE_IN_PROGRESS,
        "the chosen protocol changes: everyone rejoins"
    );
    let mut other = other.clone();
    let resp = soon("leader rejoin", other.join_once(&c, 5)).await;
    assert_eq!((resp.error_code, resp.generation_id), (NONE, 2));
    assert_eq!(resp.protocol_name.as_deref(), Some("roundrobin"));
    let (_, resp) = soon("static rejoin", rejoin).await.unwrap();
    assert_eq!((resp.error_code, resp.generation_id), (NONE, 2));
}

#[tokio::test]
async fn a_static_member_that_does_not_come_back_is_removed_when_its_session_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut clients = vec![
        Client::new("g", "a").session_ms(300),
        Client::new("g", "b").session_ms(300),
    ];
    for (i, client) in clients.iter_mut().enumerate() {
        client.instance_id = Some(format!("app-{}", i + 1));
    }
    let responses = join_all(&c, &mut clients).await;
    let leader = responses[0].leader.to_string();
    sync_all(&c, &clients, &leader).await;
    let survivor = clients.iter().find(|cl| cl.member_id == leader).unwrap();

    // The other one is gone without a LeaveGroup (static members do not send one).
    let deadline = Instant::now() + SOON;
    let mut code = NONE;
    while Instant::now() < deadline && code == NONE {
        tokio::time::sleep(Duration::from_millis(50)).await;
        code = survivor.heartbeat(&c).await;
    }
    assert_eq!(code, REBALANCE_IN_PROGRESS, "session expiry rebalances");
    let mut survivor = survivor.clone();
    let resp = soon("rejoin", survivor.join_once(&c, 5)).await;
    assert_eq!((resp.error_code, resp.generation_id), (NONE, 2));
    assert_eq!(resp.members.len(), 1);
}
