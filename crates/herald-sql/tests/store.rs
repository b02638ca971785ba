//! The event store, on SQLite and PostgreSQL: versions and expected versions, typed
//! conflicts (two writers with one expected version: exactly one wins), atomic
//! multi-stream appends, forward and backward reads, the global order, tombstones,
//! snapshots, upcasting on read, and the store as an outbox.

mod common;

use std::sync::Arc;

use common::*;
use herald::{Envelope, MemoryTransport};
use herald_sql::{Direction, Error, ExpectedVersion, HeraldDb, StreamAppend, Upcasters, enqueue};
use tokio::sync::Barrier;

fn versions(events: &[herald_sql::RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version).collect()
}

fn steps(key: &str, range: std::ops::RangeInclusive<u32>) -> Vec<Envelope> {
    range.map(|i| step(key, i)).collect()
}

both!(appends_and_reads_both_ways, appends_and_reads_case);
async fn appends_and_reads_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    let first = store
        .append(
            "order-1",
            ExpectedVersion::NoStream,
            steps("order-1", 1..=3),
        )
        .await
        .unwrap();
    assert_eq!((first.first_version, first.version), (1, 3));
    assert_eq!(first.last_position, first.first_position + 2);
    let second = store
        .append(
            "order-1",
            ExpectedVersion::Exact(3),
            steps("order-1", 4..=5),
        )
        .await
        .unwrap();
    assert_eq!((second.first_version, second.version), (4, 5));
    assert_eq!(second.first_position, first.last_position + 1);

    let all = store
        .read_stream("order-1", 1, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(versions(&all), [1, 2, 3, 4, 5]);
    let seqs: Vec<u32> = all
        .iter()
        .map(|e| e.decode::<Step>().unwrap().seq)
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5]);
    assert!(all.windows(2).all(|w| w[0].position < w[1].position));
    let page = store
        .read_stream("order-1", 3, Direction::Forward, 2)
        .await
        .unwrap();
    assert_eq!(versions(&page), [3, 4]);
    let tail = store
        .read_stream("order-1", u64::MAX, Direction::Backward, 2)
        .await
        .unwrap();
    assert_eq!(versions(&tail), [5, 4]);
    let head = store
        .read_stream("order-1", 2, Direction::Backward, 10)
        .await
        .unwrap();
    assert_eq!(versions(&head), [2, 1]);
    assert_eq!(store.stream_version("order-1").await.unwrap(), Some(5));
    assert_eq!(store.stream_version("nobody").await.unwrap(), None);
    assert!(
        store
            .read_stream("nobody", 1, Direction::Forward, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.last_position().await.unwrap(), second.last_position);
}

both!(expected_versions_are_enforced, expected_versions_case);
async fn expected_versions_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    store
        .append("s", ExpectedVersion::Exact(0), steps("s", 1..=2))
        .await
        .unwrap();
    let conflict = |e: Error| e.as_conflict().cloned().unwrap_or_else(|| panic!("{e}"));
    let c = conflict(
        store
            .append("s", ExpectedVersion::NoStream, steps("s", 3..=3))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (c.stream.as_str(), c.expected, c.actual),
        ("s", ExpectedVersion::NoStream, Some(2))
    );
    let c = conflict(
        store
            .append("s", ExpectedVersion::Exact(1), steps("s", 3..=3))
            .await
            .unwrap_err(),
    );
    assert_eq!(c.actual, Some(2));
    assert!(
        c.to_string()
            .contains("expected version 1, found version 2"),
        "{c}"
    );
    let c = conflict(
        store
            .append("new", ExpectedVersion::Exact(4), steps("new", 1..=1))
            .await
            .unwrap_err(),
    );
    assert_eq!(c.actual, None);
    // Refused appends wrote nothing.
    assert_eq!(store.stream_version("s").await.unwrap(), Some(2));
    assert_eq!(store.stream_version("new").await.unwrap(), None);
    let any = store
        .append("s", ExpectedVersion::Any, steps("s", 3..=3))
        .await
        .unwrap();
    assert_eq!(any.version, 3);
    let created = store
        .append("t", ExpectedVersion::Any, steps("t", 1..=1))
        .await
        .unwrap();
    assert_eq!(created.version, 1);
}

both!(
    two_writers_one_expected_version_exactly_one_wins,
    two_writers_case
);
async fn two_writers_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    store
        .append("acct", ExpectedVersion::NoStream, steps("acct", 1..=1))
        .await
        .unwrap();
    for round in 1..=5u64 {
        let writers = 4;
        let barrier = Arc::new(Barrier::new(writers));
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let (store, barrier) = (store.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    store
                        .append(
                            "acct",
                            ExpectedVersion::Exact(round),
                            vec![step("acct", 100 + w as u32)],
                        )
                        .await
                })
            })
            .collect();
        let mut wins = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    wins += 1;
                    assert_eq!(r.version, round + 1);
                }
                Err(e) => {
                    let c = e
                        .as_conflict()
                        .unwrap_or_else(|| panic!("not a conflict: {e}"));
                    assert_eq!(c.actual, Some(round + 1));
                }
            }
        }
        assert_eq!(wins, 1, "round {round}");
    }
    let events = store
        .read_stream("acct", 1, Direction::Forward, 100)
        .await
        .unwrap();
    assert_eq!(versions(&events), [1, 2, 3, 4, 5, 6]);
}

both!(multi_stream_appends_are_atomic, multi_stream_case);
async fn multi_stream_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    store
        .append("b", ExpectedVersion::NoStream, steps("b", 1..=1))
        .await
        .unwrap();
    let err = store
        .append_many(vec![
            StreamAppend::new("a", ExpectedVersion::NoStream, steps("a", 1..=2)),
            StreamAppend::new("b", ExpectedVersion::NoStream, steps("b", 2..=2)),
        ])
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(
        store.stream_version("a").await.unwrap(),
        None,
        "nothing written to a"
    );
    let done = store
        .append_many(vec![
            StreamAppend::new("b", ExpectedVersion::Exact(1), steps("b", 2..=2)),
            StreamAppend::new("a", ExpectedVersion::NoStream, steps("a", 1..=2)),
        ])
        .await
        .unwrap();
    assert_eq!((done[0].version, done[1].version), (2, 2));
    assert_eq!(
        done[1].first_position,
        done[0].last_position + 1,
        "positions in input order"
    );
    let twice = store
        .append_many(vec![
            StreamAppend::new("c", ExpectedVersion::Any, steps("c", 1..=1)),
            StreamAppend::new("c", ExpectedVersion::Any, steps("c", 2..=2)),
        ])
        .await
        .unwrap_err();
    assert!(matches!(twice, Error::InvalidInput(_)), "{twice}");
    for bad in ["", "a\nb"] {
        let err = store
            .append(bad, ExpectedVersion::Any, steps("x", 1..=1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    }
    let err = store
        .append("d", ExpectedVersion::Any, vec![])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert_eq!(store.stream_version("c").await.unwrap(), None);
}

both!(read_all_follows_the_global_order, read_all_case);
async fn read_all_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    store
        .append("x", ExpectedVersion::Any, steps("x", 1..=2))
        .await
        .unwrap();
    // Outbox-only messages share the positions but are not store events.
    let mut tx = db.begin().await.unwrap();
    enqueue(&mut tx, "orders", &step("o", 1)).await.unwrap();
    tx.commit().await.unwrap();
    store
        .append("y", ExpectedVersion::Any, steps("y", 1..=1))
        .await
        .unwrap();
    store
        .append("x", ExpectedVersion::Any, steps("x", 3..=3))
        .await
        .unwrap();
    let all = store.read_all(0, 100).await.unwrap();
    let order: Vec<(String, u64)> = all
        .iter()
        .map(|e| (e.stream_id.clone(), e.version))
        .collect();
    assert_eq!(
        order,
        [
            ("x".into(), 1),
            ("x".into(), 2),
            ("y".into(), 1),
            ("x".into(), 3)
        ]
    );
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        [1, 2, 4, 5]
    );
    let after = store.read_all(2, 1).await.unwrap();
    assert_eq!(after[0].stream_id, "y");
    assert!(store.read_all(5, 10).await.unwrap().is_empty());
}

both!(tombstoned_streams_refuse_reads_and_appends, tombstone_case);
async fn tombstone_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    store
        .append("gone", ExpectedVersion::NoStream, steps("gone", 1..=2))
        .await
        .unwrap();
    let err = store
        .delete_stream("gone", ExpectedVersion::Exact(1))
        .await
        .unwrap_err();
    assert!(err.is_conflict(), "{err}");
    store
        .delete_stream("gone", ExpectedVersion::Exact(2))
        .await
        .unwrap();
    let deleted = |e: Error| matches!(e, Error::StreamDeleted { ref stream } if stream == "gone");
    assert!(deleted(
        store
            .read_stream("gone", 1, Direction::Forward, 10)
            .await
            .unwrap_err()
    ));
    assert!(deleted(
        store
            .append("gone", ExpectedVersion::Any, steps("gone", 3..=3))
            .await
            .unwrap_err()
    ));
    assert!(deleted(
        store
            .append("gone", ExpectedVersion::Exact(2), steps("gone", 3..=3))
            .await
            .unwrap_err()
    ));
    assert!(deleted(store.stream_version("gone").await.unwrap_err()));
    assert!(deleted(
        store
            .delete_stream("gone", ExpectedVersion::Any)
            .await
            .unwrap_err()
    ));
    // History stays in the global order.
    assert_eq!(store.read_all(0, 10).await.unwrap().len(), 2);
    // A stream that never existed can be tombstoned so it is never created.
    store
        .delete_stream("never", ExpectedVersion::NoStream)
        .await
        .unwrap();
    let err = store
        .append("never", ExpectedVersion::NoStream, steps("never", 1..=1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StreamDeleted { .. }), "{err}");
}

both!(snapshots_keep_the_latest, snapshots_case);
async fn snapshots_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store();
    assert_eq!(store.load_snapshot("s").await.unwrap(), None);
    store.save_snapshot("s", 5, 1, b"five").await.unwrap();
    store.save_snapshot("s", 3, 1, b"three").await.unwrap();
    let snap = store.load_snapshot("s").await.unwrap().unwrap();
    assert_eq!(
        (snap.version, snap.schema_version, &snap.state[..]),
        (5, 1, &b"five"[..])
    );
    // A new state schema replaces the old snapshot whatever its version.
    store.save_snapshot("s", 2, 2, b"two-v2").await.unwrap();
    let snap = store.load_snapshot("s").await.unwrap().unwrap();
    assert_eq!((snap.version, snap.schema_version), (2, 2));
}

both!(old_event_versions_are_upcast_on_read, upcast_case);
async fn upcast_case<DB: TestSql>(db: HeraldDb<DB>) {
    let plain = db.event_store();
    let old = Envelope::new("urn:test", "test.renamed", r#"{"name":"a"}"#).with_schema_version(1);
    plain
        .append("u", ExpectedVersion::Any, vec![old])
        .await
        .unwrap();
    let store = plain
        .clone()
        .with_upcasters(Upcasters::new().json("test.renamed", 1, |mut v| {
            v["title"] = v["name"].take();
            v.as_object_mut().unwrap().remove("name");
            Ok(v)
        }));
    let read = store
        .read_stream("u", 1, Direction::Forward, 1)
        .await
        .unwrap();
    assert_eq!(read[0].envelope.schema_version, Some(2));
    assert_eq!(&read[0].envelope.data[..], br#"{"title":"a"}"#);
    assert_eq!(
        store.read_all(0, 1).await.unwrap()[0].envelope,
        read[0].envelope
    );
    // Stored rows are unchanged.
    let raw = plain
        .read_stream("u", 1, Direction::Forward, 1)
        .await
        .unwrap();
    assert_eq!(&raw[0].envelope.data[..], br#"{"name":"a"}"#);
}

both!(
    store_events_reach_the_bus_through_the_relay,
    store_is_an_outbox_case
);
async fn store_is_an_outbox_case<DB: TestSql>(db: HeraldDb<DB>) {
    let store = db.event_store().with_topic("accounts").unwrap();
    assert!(db.event_store().with_topic("no spaces").is_err());
    let unkeyed = Envelope::new("urn:bank", "bank.opened", "{}");
    store
        .append(
            "account-7",
            ExpectedVersion::NoStream,
            vec![unkeyed.clone()],
        )
        .await
        .unwrap();
    // Appended in a transaction that rolls back: never published.
    let mut tx = db.begin().await.unwrap();
    store
        .append_in(
            &mut tx,
            "account-8",
            ExpectedVersion::NoStream,
            vec![step("account-8", 1)],
        )
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(store.stream_version("account-8").await.unwrap(), None);
    let bus = MemoryTransport::new();
    db.relay(bus.clone()).run_once().await.unwrap();
    let out: Vec<Envelope> = bus
        .records("accounts")
        .iter()
        .map(|r| Envelope::from_record(r).unwrap())
        .collect();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].id, unkeyed.id);
    assert_eq!(out[0].key_str(), Some("account-7"), "keyed by stream");
    // A store without a topic stores without publishing.
    db.event_store()
        .append("quiet", ExpectedVersion::Any, steps("quiet", 1..=1))
        .await
        .unwrap();
    assert_eq!(db.relay(bus.clone()).run_once().await.unwrap(), 0);
}
