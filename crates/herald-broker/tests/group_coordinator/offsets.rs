//! Committed offsets: who may commit, what survives a restart, deletion and expiry.

use std::time::Duration;

use herald_broker::group::{GroupConfig, GroupState};
use herald_log::{Log, LogConfig};
use kafka_protocol::messages::{
    DeleteGroupsRequest, OffsetFetchRequest, offset_fetch_request::OffsetFetchRequestGroup,
    offset_fetch_request::OffsetFetchRequestTopics,
};

use super::*;

#[tokio::test]
async fn offsets_and_metadata_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path(), test_config());
        // A standalone consumer (no group membership) commits with generation -1.
        let resp = commit_as(
            &c,
            "standalone",
            -1,
            "",
            &[("orders", 0, 42, Some("m0")), ("orders", 1, 7, None)],
            8,
        )
        .await;
        assert_eq!(commit_codes(&resp), vec![NONE, NONE]);
        let resp = commit_as(
            &c,
            "standalone",
            -1,
            "",
            &[("orders", 0, 43, Some("m1"))],
            2,
        )
        .await;
        assert_eq!(commit_codes(&resp), vec![NONE]);
        // A member of a stable group commits with its generation.
        let mut a = Client::new("members", "a");
        a.join(&c, 5).await;
        a.sync(&c, &[(&a.member_id, b"x")], 3).await;
        let resp = a
            .commit(&c, &[("payments", 3, 1000, Some("from a"))], 8)
            .await;
        assert_eq!(commit_codes(&resp), vec![NONE]);
        c.shutdown().await;
    }
    let c = open(dir.path(), test_config());
    let got = fetch(
        &c,
        "standalone",
        &[
            ("orders", 0),
            ("orders", 1),
            ("orders", 2),
            ("unknown-topic", 0),
        ],
        7,
    )
    .await;
    assert_eq!(
        got,
        vec![
            (43, "m1".into()),
            (7, String::new()),
            (-1, String::new()),
            (-1, String::new())
        ]
    );
    assert_eq!(
        fetch(&c, "members", &[("payments", 3)], 5).await,
        vec![(1000, "from a".into())]
    );

    let all = c.committed_offsets();
    assert_eq!(all.len(), 3);
    let payments = all.iter().find(|o| o.topic == "payments").unwrap();
    assert_eq!(
        (payments.group.as_str(), payments.partition, payments.offset),
        ("members", 3, 1000)
    );
    assert_eq!(
        payments.leader_epoch, 5,
        "the leader epoch sent with v6+ is kept"
    );
    assert!(payments.commit_timestamp_ms > 1_600_000_000_000);

    // Groups that only have offsets come back as Empty groups.
    let groups = c.groups();
    let names: Vec<&str> = groups.iter().map(|g| g.group_id.as_str()).collect();
    assert_eq!(names, vec!["members", "standalone"]);
    assert!(groups.iter().all(|g| g.state == GroupState::Empty));
    // The old member is unknown now and must rejoin.
    let resp = commit_as(
        &c,
        "members",
        1,
        "a-gone",
        &[("payments", 3, 1001, None)],
        8,
    )
    .await;
    assert_eq!(commit_codes(&resp), vec![UNKNOWN_MEMBER_ID]);
}

#[tokio::test]
async fn a_dropped_coordinator_releases_its_directory() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    commit_as(&c, "g", -1, "", &[("t", 0, 5, None)], 8).await;
    drop(c);
    let c = open(dir.path(), test_config());
    assert_eq!(
        fetch(&c, "g", &[("t", 0)], 7).await,
        vec![(5, String::new())]
    );
}

#[tokio::test]
async fn commits_from_members_are_checked_against_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    let mut a = Client::new("g", "a");
    a.join(&c, 5).await;

    // Joined but not yet synced: the member must finish the rebalance first.
    let resp = a.commit(&c, &[("t", 0, 1, None)], 8).await;
    assert_eq!(commit_codes(&resp), vec![REBALANCE_IN_PROGRESS]);
    a.sync(&c, &[(&a.member_id, b"x")], 3).await;
    assert_eq!(
        commit_codes(&a.commit(&c, &[("t", 0, 1, None)], 8).await),
        vec![NONE]
    );

    let resp = commit_as(&c, "g", a.generation, "stranger", &[("t", 0, 2, None)], 8).await;
    assert_eq!(commit_codes(&resp), vec![UNKNOWN_MEMBER_ID]);
    let resp = commit_as(
        &c,
        "g",
        a.generation + 1,
        &a.member_id,
        &[("t", 0, 2, None)],
        8,
    )
    .await;
    assert_eq!(commit_codes(&resp), vec![ILLEGAL_GENERATION]);
    // A group with members does not take standalone commits.
    let resp = commit_as(&c, "g", -1, "", &[("t", 0, 2, None)], 8).await;
    assert_eq!(commit_codes(&resp), vec![UNKNOWN_MEMBER_ID]);
    // An unknown group with a real generation: the member is from before a restart.
    let resp = commit_as(&c, "nobody", 3, "m", &[("t", 0, 2, None)], 8).await;
    assert_eq!(commit_codes(&resp), vec![ILLEGAL_GENERATION]);
    // Oversized metadata is refused per partition; the rest is committed.
    let big = "x".repeat(5000);
    let resp = a
        .commit(&c, &[("t", 0, 3, Some(&big)), ("t", 1, 9, None)], 8)
        .await;
    assert_eq!(
        commit_codes(&resp),
        vec![12, NONE],
        "OFFSET_METADATA_TOO_LARGE"
    );
    assert_eq!(
        fetch(&c, "g", &[("t", 0), ("t", 1)], 7).await,
        vec![(1, String::new()), (9, String::new())]
    );
}

#[tokio::test]
async fn batched_offset_fetch_answers_several_groups_and_all_topics() {
    let dir = tempfile::tempdir().unwrap();
    let c = open(dir.path(), test_config());
    commit_as(
        &c,
        "g1",
        -1,
        "",
        &[("a", 0, 1, None), ("b", 2, 3, Some("meta"))],
        8,
    )
    .await;
    commit_as(&c, "g2", -1, "", &[("a", 0, 10, None)], 8).await;

    for version in [8, 9] {
        let mut req = OffsetFetchRequest::default();
        let mut all_of_g1 = OffsetFetchRequestGroup::default();
        all_of_g1.group_id = GroupId(s("g1"));
        all_of_g1.topics = None;
        let mut some_of_g2 = OffsetFetchRequestGroup::default();
        some_of_g2.group_id = GroupId(s("g2"));
        let mut t = OffsetFetchRequestTopics::default();
        t.name = TopicName(s("a"));
        t.partition_indexes = vec![0, 1];
        some_of_g2.topics = Some(vec![t]);
        let mut unknown = OffsetFetchRequestGroup::default();
        unknown.group_id = GroupId(s("never-committed"));
        let mut t = OffsetFetchRequestTopics::default();
        t.name = TopicName(s("a"));
        t.partition_indexes = vec![0];
        unknown.topics = Some(vec![t]);
        req.groups = vec![all_of_g1, some_of_g2, unknown];
        let resp = check(c.offset_fetch(wire(&req, version), version).await, version);

        let flat = |g: usize| -> Vec<(String, i32, i64, String)> {
            resp.groups[g]
                .topics
                .iter()
                .flat_map(|t| {
                    t.partitions.iter().map(|p| {
                        (
                            t.name.to_string(),
                            p.partition_index,
                            p.committed_offset,
                            p.metadata.as_deref().unwrap_or("").to_owned(),
                        )
                    })
                })
                .collect()
        };
        assert!(resp.groups.iter().all(|g| g.error_code == NONE));
        assert_eq!(
            flat(0),
            vec![
                ("a".into(), 0, 1, String::new()),
                ("b".into(), 2, 3, "meta".into())
            ]
        );
        assert_eq!(
            flat(1),
            vec![
                ("a".into(), 0, 10, String::new()),
                ("a".into(), 1, -1, String::new())
            ]
        );
        assert_eq!(flat(2), vec![("a".into(), 0, -1, String::new())]);
    }
}

#[tokio::test]
async fn deleting_a_group_deletes_its_offsets_but_only_when_it_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = open(dir.path(), test_config());
        commit_as(&c, "done", -1, "", &[("t", 0, 5, None)], 8).await;
        let mut a = Client::new("busy", "a");
        a.join(&c, 5).await;

        let mut req = DeleteGroupsRequest::default();
        req.groups_names = vec![
            GroupId(s("done")),
            GroupId(s("busy")),
            GroupId(s("missing")),
        ];
        let resp = check(c.delete_groups(wire(&req, 2), 2).await, 2);
        let codes: Vec<(String, i16)> = resp
            .results
            .iter()
            .map(|r| (r.group_id.to_string(), r.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![
                ("done".into(), NONE),
                ("busy".into(), 68),
                ("missing".into(), 69)
            ],
            "NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND"
        );
        assert_eq!(
            fetch(&c, "done", &[("t", 0)], 7).await,
            vec![(-1, String::new())]
        );
        assert!(c.groups().iter().all(|g| g.group_id != "done"));
        c.shutdown().await;
    }
    let c = open(dir.path(), test_config());
    assert_eq!(
        fetch(&c, "done", &[("t", 0)], 7).await,
        vec![(-1, String::new())],
        "tombstones are durable"
    );
    assert!(c.committed_offsets().is_empty());
}

#[tokio::test]
async fn offsets_of_an_abandoned_group_expire_after_the_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = GroupConfig {
        offsets_retention: Duration::from_millis(200),
        maintenance_interval: Duration::from_millis(100),
        ..test_config()
    };
    let c = open(dir.path(), config);
    commit_as(&c, "old", -1, "", &[("t", 0, 5, None)], 8).await;
    let mut a = Client::new("active", "a");
    a.join(&c, 5).await;
    a.sync(&c, &[(&a.member_id, b"x")], 3).await;
    a.commit(&c, &[("t", 0, 9, None)], 8).await;

    let deadline = tokio::time::Instant::now() + SOON;
    while c.committed_offsets().iter().any(|o| o.group == "old") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "offsets never expired"
        );
        assert_eq!(a.heartbeat(&c).await, NONE);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.heartbeat(&c).await, NONE);
    // The group with a member keeps its offsets; the empty one is forgotten entirely.
    assert_eq!(
        fetch(&c, "active", &[("t", 0)], 7).await,
        vec![(9, String::new())]
    );
    assert!(c.groups().iter().all(|g| g.group_id != "old"));
}

#[tokio::test]
async fn reopening_rewrites_an_overgrown_offsets_log_as_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let config = GroupConfig {
        offsets_compaction_min_records: 20,
        offsets_segment_bytes: 4096,
        offsets_max_batch_bytes: 4096,
        ..test_config()
    };
    {
        let c = open(dir.path(), config.clone());
        for i in 0..100 {
            let resp = commit_as(
                &c,
                "g",
                -1,
                "",
                &[("t", 0, i, Some("some metadata")), ("t", 1, 2 * i, None)],
                8,
            )
            .await;
            assert_eq!(commit_codes(&resp), vec![NONE, NONE]);
        }
        c.shutdown().await;
    }
    let (before, start_before, _) = log_stats(dir.path());
    assert_eq!(start_before, 0);
    {
        let c = open(dir.path(), config.clone());
        assert_eq!(
            fetch(&c, "g", &[("t", 0), ("t", 1)], 7).await,
            vec![(99, "some metadata".into()), (198, String::new())]
        );
        c.shutdown().await;
    }
    let (after, start, end) = log_stats(dir.path());
    assert!(
        after < before / 2,
        "log not compacted: {before} -> {after} bytes"
    );
    assert_eq!(end - start, 2, "only the snapshot is left");
    let c = open(dir.path(), config);
    assert_eq!(
        fetch(&c, "g", &[("t", 0), ("t", 1)], 7).await,
        vec![(99, "some metadata".into()), (198, String::new())]
    );
}

/// (size in bytes, log start offset, high watermark) of the offsets log.
fn log_stats(dir: &Path) -> (u64, u64, u64) {
    let config = LogConfig {
        segment_bytes: 4096,
        max_batch_bytes: 4096,
        retention_age: None,
        ..LogConfig::default()
    };
    let log = Log::open(dir.join("__consumer_offsets-0"), config).unwrap();
    (
        log.size_bytes(),
        log.log_start_offset(),
        log.high_watermark(),
    )
}
