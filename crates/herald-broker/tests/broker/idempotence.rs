use herald_format::records::Compression;
use kafka_protocol::{
    messages::{InitProducerIdRequest, InitProducerIdResponse, TransactionalId},
    protocol::StrBytes,
};

use crate::common::{Client, batch_with, decode_all, rec, start};

async fn init_producer_id(c: &mut Client, version: i16) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    let resp: InitProducerIdResponse = c.call(version, req).await;
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

fn idem(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let recs: Vec<_> = (0..n).map(|i| rec(i as i64, b"v")).collect();
    batch_with(Compression::None, Some((pid, epoch, seq)), &recs)
}

#[tokio::test]
async fn init_producer_id_hands_out_fresh_ids_and_refuses_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let mut seen = Vec::new();
    for version in 0..=4 {
        let (pid, epoch) = init_producer_id(&mut c, version).await;
        assert_eq!(epoch, 0);
        assert!(!seen.contains(&pid));
        seen.push(pid);
    }
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx-1")));
    let resp: InitProducerIdResponse = c.call(4, req).await;
    assert_eq!(resp.error_code, 53, "TRANSACTIONAL_ID_AUTHORIZATION_FAILED");
    assert_eq!(resp.producer_id.0, -1);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn idempotent_producer_duplicates_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c, 4).await;

    let first = c.produce(9, -1, "t", 0, idem(pid, epoch, 0, 3)).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let second = c.produce(9, -1, "t", 0, idem(pid, epoch, 3, 2)).await;
    assert_eq!((second.error_code, second.base_offset), (0, 3));

    // A retry of either batch: success with the original offset, nothing written twice.
    let retry = c.produce(9, -1, "t", 0, idem(pid, epoch, 0, 3)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 0));
    let retry = c.produce(7, -1, "t", 0, idem(pid, epoch, 3, 2)).await;
    assert_eq!((retry.error_code, retry.base_offset), (0, 3));

    // A gap: sequence 6 when 5 is next.
    let gap = c.produce(9, -1, "t", 0, idem(pid, epoch, 6, 1)).await;
    assert_eq!(gap.error_code, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
    // An older epoch is fenced.
    let (pid2, _) = init_producer_id(&mut c, 4).await;
    c.produce(9, -1, "t", 0, idem(pid2, 3, 0, 1)).await;
    let stale = c.produce(9, -1, "t", 0, idem(pid2, 2, 1, 1)).await;
    assert_eq!(stale.error_code, 47, "INVALID_PRODUCER_EPOCH");
    // A producer id this broker never handed out.
    let unknown = c
        .produce(9, -1, "t", 0, idem(pid + 1_000_000, 0, 0, 1))
        .await;
    assert_eq!(unknown.error_code, 59, "UNKNOWN_PRODUCER_ID");

    let next = c.produce(9, -1, "t", 0, idem(pid, epoch, 5, 1)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 6));
    let p = c.fetch(12, "t", 0, 0, 0, 0).await;
    assert_eq!(decode_all(p.records.as_deref().unwrap()).len(), 7);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn producer_state_is_rebuilt_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c, 4).await;
    for seq in 0..7 {
        let r = c.produce(9, -1, "t", 0, idem(pid, epoch, seq * 2, 2)).await;
        assert_eq!(r.error_code, 0);
    }
    broker.shutdown().await.unwrap();

    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let retry = c.produce(9, -1, "t", 0, idem(pid, epoch, 12, 2)).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 12),
        "duplicate after restart"
    );
    let gap = c.produce(9, -1, "t", 0, idem(pid, epoch, 15, 1)).await;
    assert_eq!(gap.error_code, 45);
    let next = c.produce(9, -1, "t", 0, idem(pid, epoch, 14, 1)).await;
    assert_eq!((next.error_code, next.base_offset), (0, 14));
    let (fresh, _) = init_producer_id(&mut c, 4).await;
    assert!(fresh > pid, "producer ids never repeat across restarts");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn retried_batch_is_not_acknowledged_before_the_original_is_durable() {
    // A slow group commit keeps the original waiting for its fsync; its retry must wait
    // too, or a crash could lose a batch the producer was told is stored.
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path());
    config.default_topic_config.durability = herald_log::Durability::GroupCommit {
        max_delay: std::time::Duration::from_millis(400),
        max_bytes: u64::MAX,
    };
    let broker = herald_broker::Broker::start(config).await.unwrap();
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("slow", 1, &[]).await;
    let (pid, epoch) = init_producer_id(&mut c, 4).await;
    let core = broker.broker().clone();
    // Two sends of the same idempotent batch at once: whichever is written first is the
    // original, the other a retry. Each reports the high watermark when it returns.
    let send = |core: herald_broker::Broker| async move {
        let produced = core
            .produce("slow", 0, idem(pid, epoch, 0, 2), herald_broker::Acks::All)
            .await
            .unwrap();
        let (_, hw) = core
            .topics()
            .partition("slow", 0)
            .unwrap()
            .offsets()
            .unwrap();
        (produced, hw)
    };
    let (a, b) = tokio::join!(
        tokio::spawn(send(core.clone())),
        tokio::spawn(send(core.clone()))
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let (retry, hw_at_retry) = if a.0.duplicate { a } else { b };
    assert!(retry.duplicate, "exactly one of the two sends is a retry");
    assert_eq!(retry.base_offset, 0);
    assert!(
        hw_at_retry > retry.base_offset,
        "retry acknowledged at high watermark {hw_at_retry}, before the original was durable"
    );
    broker.shutdown().await.unwrap();
}
