//! The idempotent producer: librdkafka with enable.idempotence=true, and the sequence
//! checks over the raw protocol (InitProducerId, a replayed batch, a gap).

use herald_format::records::Compression;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};

use crate::{
    common::{self, Client, batch_with, decode_all, rec},
    support::{
        TestBroker, assert_delivered, by_position, python, run_script, spec, stored, write_spec,
    },
};

#[test]
fn confluent_kafka_idempotent_producer_writes_each_record_once() {
    let Some(py) = python() else { return };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("idem", 3);
    let dir = tempfile::tempdir().unwrap();
    let recs = spec(300, 3, true);
    let path = write_spec(dir.path(), "idem", &recs);
    let path = path.to_str().unwrap();
    let common = [
        "--client",
        "confluent",
        "--bootstrap",
        &bootstrap,
        "--topic",
        "idem",
    ];
    let produce = [&common[..], &["--spec", path, "--idempotence"]].concat();
    let Some(result) = run_script(&py, "produce.py", &produce) else {
        return;
    };
    assert_delivered("confluent", &result, &recs);
    assert_eq!(
        stored(&broker, "idem", 3),
        by_position(recs.clone()),
        "no duplicates, no gaps"
    );
    // The batches really came from an idempotent producer, one producer id throughout.
    let mut pids = std::collections::BTreeSet::new();
    for p in 0..3 {
        let mut next_seq = 0;
        for (header, records) in broker.batches("idem", p) {
            assert!(
                header.producer_id >= 0,
                "partition {p}: batch without producer id"
            );
            assert_eq!(
                header.base_sequence, next_seq,
                "partition {p}: sequences are contiguous"
            );
            next_seq += records.len() as i32;
            pids.insert((header.producer_id, header.producer_epoch));
        }
    }
    assert_eq!(pids.len(), 1, "one producer id and epoch: {pids:?}");
    let consume = [&common[..], &["--expect", path, "--partitions", "3"]].concat();
    run_script(&py, "consume.py", &consume);
}

async fn init_producer_id(c: &mut Client) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60_000;
    let resp: InitProducerIdResponse = c.call(4, req).await;
    assert_eq!(resp.error_code, 0, "InitProducerId v4");
    (resp.producer_id.0, resp.producer_epoch)
}

fn idempotent_batch(pid: i64, epoch: i16, first_seq: i32, values: &[&'static [u8]]) -> Vec<u8> {
    let recs: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| rec(i as i64, v))
        .collect();
    batch_with(Compression::None, Some((pid, epoch, first_seq)), &recs)
}

const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;

#[tokio::test]
async fn replayed_idempotent_batch_returns_the_first_offset_and_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c).await;
    // Something before it, so that the batch's offset is not 0 by accident.
    let before = c
        .produce(
            9,
            -1,
            "t",
            0,
            idempotent_batch(pid, epoch, 0, &[b"a", b"b"]),
        )
        .await;
    assert_eq!((before.error_code, before.base_offset), (0, 0));

    let batch = idempotent_batch(pid, epoch, 2, &[b"c", b"d", b"e"]);
    let first = c.produce(9, -1, "t", 0, batch.clone()).await;
    assert_eq!((first.error_code, first.base_offset), (0, 2));
    // The same bytes again, as a producer retrying after a lost response would send them.
    for version in [9, 3] {
        let again = c.produce(version, -1, "t", 0, batch.clone()).await;
        assert_eq!(
            (again.error_code, again.base_offset),
            (0, 2),
            "Produce v{version}: a duplicate is acknowledged with the first offset"
        );
    }
    let p = c.fetch(12, "t", 0, 0, 0, 0).await;
    let values: Vec<_> = decode_all(p.records.as_deref().unwrap())
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(
        values,
        [b"a", b"b", b"c", b"d", b"e"],
        "the log holds one copy"
    );
    assert_eq!(p.high_watermark, 5);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn out_of_order_sequence_is_refused_and_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c).await;
    let ok = c
        .produce(9, -1, "t", 0, idempotent_batch(pid, epoch, 0, &[b"a"]))
        .await;
    assert_eq!(ok.error_code, 0);
    // Sequence 1 is next: 2 skips one.
    let gap = c
        .produce(9, -1, "t", 0, idempotent_batch(pid, epoch, 2, &[b"x"]))
        .await;
    assert_eq!(
        gap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "a gap in the sequence"
    );
    // The producer continues where it left off.
    let next = c
        .produce(9, -1, "t", 0, idempotent_batch(pid, epoch, 1, &[b"b"]))
        .await;
    assert_eq!((next.error_code, next.base_offset), (0, 1));
    // Overlapping what was written without being an exact retry of a batch (Kafka
    // matches retries by first and last sequence).
    let overlap = c
        .produce(
            9,
            -1,
            "t",
            0,
            idempotent_batch(pid, epoch, 0, &[b"y", b"z"]),
        )
        .await;
    assert_eq!(
        overlap.error_code, OUT_OF_ORDER_SEQUENCE_NUMBER,
        "an overlapping batch"
    );
    let p = c.fetch(12, "t", 0, 0, 0, 0).await;
    let values: Vec<_> = decode_all(p.records.as_deref().unwrap())
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    assert_eq!(values, [b"a", b"b"], "refused batches are not written");
    broker.shutdown().await.unwrap();
}
