//! What the embedded transport promises beyond the conformance suite: its bytes on disk
//! are Kafka batches herald-log can serve, its metadata survives restarts and refuses
//! damage, and consumers wake when records become durable.

mod common;

use common::*;
use herald::{
    EmbeddedTransport,
    transport::{
        Admin, Consumer, PublisherExt, Subscriber, TopicPartition, TopicReader, TransportError,
    },
};
use herald_format::records::decode_batch;
use herald_log::{Log, LogConfig};

#[tokio::test]
async fn records_are_stored_as_kafka_v2_batches_in_one_log_per_partition() {
    let mut h = EmbeddedHarness::new();
    let events = [step("a", 0), step("a", 1), step("a", 2)];
    {
        let t = h.transport();
        t.create_topic("orders", 1).await.unwrap();
        t.publish_envelopes("orders", &events).await.unwrap();
    }
    h.close();
    let log = Log::open(h.path().join("topics/orders-0"), LogConfig::default()).unwrap();
    let read = log.read(0, 1 << 20).unwrap();
    let batch = decode_batch(&read.bytes).unwrap();
    assert_eq!(batch.header.base_offset, 0);
    assert_eq!(batch.records.len(), 3, "one publish call is one batch");
    for (record, event) in batch.records.iter().zip(&events) {
        assert_eq!(record.key.as_deref(), Some(&b"a"[..]));
        let id = record.headers.iter().find(|h| h.key == "ce_id").unwrap();
        assert_eq!(id.value.as_deref(), Some(event.id.as_bytes()));
        assert_eq!(record.value.as_deref(), Some(&event.data[..]));
    }
}

#[tokio::test]
async fn topics_persist_and_conflicting_partition_counts_are_refused() {
    let mut h = EmbeddedHarness::new();
    h.transport().create_topic("orders", 3).await.unwrap();
    h.restart().await;
    let t = h.transport();
    assert_eq!(t.partitions("orders").await.unwrap(), Some(3));
    t.create_topic("orders", 3).await.unwrap();
    assert!(matches!(
        t.create_topic("orders", 2).await,
        Err(TransportError::TopicExists {
            existing: 3,
            requested: 2,
            ..
        })
    ));
    assert_eq!(t.partitions("missing").await.unwrap(), None);
}

#[tokio::test]
async fn a_damaged_offsets_file_is_an_error_not_a_reset() {
    let mut h = EmbeddedHarness::new();
    {
        let t = h.transport();
        t.publish_envelope("orders", &step("a", 0)).await.unwrap();
        let mut c = t.subscribe("billing", &["orders"]).await.unwrap();
        c.poll(1).await.unwrap();
        c.commit(&[herald::transport::CommitOffset {
            partition: TopicPartition::new("orders", 0),
            offset: 1,
        }])
        .await
        .unwrap();
    }
    h.restart().await;
    let path = h.path().join("groups/billing.offsets");
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = h
        .transport()
        .subscribe("billing", &["orders"])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("corrupt"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_consumer_wakes_when_records_become_durable() {
    let h = EmbeddedHarness::new();
    let t: EmbeddedTransport = h.transport();
    t.create_topic("orders", 2).await.unwrap();
    let mut c = t.subscribe("g", &["orders"]).await.unwrap();
    let waiting = tokio::spawn(async move { c.poll(10).await });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    let e = step("k", 0);
    let at = t.publish_envelope("orders", &e).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(60), waiting)
        .await
        .expect("the consumer woke")
        .unwrap()
        .unwrap();
    assert_eq!((got[0].partition, got[0].offset), (at.partition, at.offset));
    let tp = TopicPartition::new("orders", at.partition);
    assert_eq!(t.end_offset(&tp).await.unwrap(), 1);
}

#[tokio::test]
async fn a_group_behind_the_log_start_resumes_from_the_start() {
    let h = EmbeddedHarness::new();
    let t = h.transport();
    t.create_topic("orders", 1).await.unwrap();
    for seq in 0..5 {
        t.publish_envelope("orders", &step("k", seq)).await.unwrap();
    }
    let tp = TopicPartition::new("orders", 0);
    assert_eq!(t.delete_records_before(&tp, 3).unwrap(), 3);
    assert_eq!(t.start_offset(&tp).await.unwrap(), 3);
    assert!(matches!(
        t.read(&tp, 0, 10).await,
        Err(TransportError::OffsetOutOfRange { .. })
    ));
    let mut c = t.subscribe("late", &["orders"]).await.unwrap();
    let got = c.poll(10).await.unwrap();
    assert_eq!(got.iter().map(|r| r.offset).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(t.apply_retention().unwrap(), 0, "nothing is old enough");
}

#[tokio::test]
async fn polls_smaller_than_a_batch_hand_out_each_record_once_in_order() {
    let h = EmbeddedHarness::new();
    let t = h.transport();
    t.create_topic("orders", 1).await.unwrap();
    // Two publishes: two stored batches of 10 records.
    let events: Vec<_> = (0..20).map(|i| step("a", i)).collect();
    t.publish_envelopes("orders", &events[..10]).await.unwrap();
    t.publish_envelopes("orders", &events[10..]).await.unwrap();
    let tp = TopicPartition::new("orders", 0);
    assert_eq!(
        t.read(&tp, 2, 3).await.unwrap().len(),
        3,
        "a read keeps to max"
    );

    // Polls of 3 cut through both batches; the rest of a batch is handed out next poll.
    let mut c = t.subscribe("billing", &["orders"]).await.unwrap();
    let mut offsets = Vec::new();
    while offsets.len() < 8 {
        let records = c.poll(3).await.unwrap();
        assert!(records.len() <= 3);
        offsets.extend(records.iter().map(|r| r.offset));
    }
    assert_eq!(offsets, (0..offsets.len() as u64).collect::<Vec<_>>());
    let at = offsets.len() as u64;
    c.commit(&[herald::transport::CommitOffset {
        partition: tp.clone(),
        offset: 5,
    }])
    .await
    .unwrap();
    let mut rest = Vec::new();
    while rest.len() < (20 - at) as usize {
        rest.extend(c.poll(7).await.unwrap().into_iter().map(|r| r.offset));
    }
    assert_eq!(rest, (at..20).collect::<Vec<_>>());
    drop(c);

    // What a member read ahead is its own: the next member starts at the commit.
    let mut next = t.subscribe("billing", &["orders"]).await.unwrap();
    let again = next.poll(100).await.unwrap();
    assert_eq!(again.first().map(|r| r.offset), Some(5));
    assert_eq!(again.last().map(|r| r.offset), Some(19));
}
