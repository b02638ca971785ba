//! [`BrokerTransport`]: the SDK's [`Publisher`] and [`TopicReader`] straight over the
//! broker in this process, for the dead-letter routes. No client, no socket, no
//! credentials: the routes read and append as the broker's own Produce and Fetch
//! handlers do, with the same checks (partition, record size, schema ids).

use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use herald::transport::{
    ConsumedRecord, OutgoingRecord, Publisher, RecordPosition, Result, TopicPartition, TopicReader,
    TransportError,
};
use herald_broker::{Acks, Broker, ProduceError, ReadError};
use herald_format::records::{BatchBuilder, Compression, decode_batches};

/// Bytes of keys, values and headers per appended batch: well under the default
/// `max.message.bytes` (1 MiB), as a Kafka producer's `batch.size` keeps it.
const BATCH_BYTES: usize = 256 * 1024;
/// Bytes asked of the log per read.
const READ_BYTES: usize = 1 << 20;

/// The broker of this process as an SDK transport that publishes (acks=all: a record is
/// acknowledged once durable) and reads partitions. Cheap to clone.
#[derive(Clone)]
pub(crate) struct BrokerTransport {
    broker: Broker,
    round_robin: Arc<AtomicU32>,
}

impl std::fmt::Debug for BrokerTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTransport").finish_non_exhaustive()
    }
}

impl BrokerTransport {
    pub(crate) fn new(broker: Broker) -> Self {
        Self {
            broker,
            round_robin: Arc::default(),
        }
    }

    fn partition_count(&self, topic: &str) -> Result<u32> {
        self.broker
            .topics()
            .get(topic)
            .map(|t| t.partition_count().max(0) as u32)
            .ok_or_else(|| TransportError::UnknownTopic(topic.to_owned()))
    }

    /// The partition's log start offset and high watermark.
    fn offsets(&self, tp: &TopicPartition) -> Result<(u64, u64)> {
        let count = self.partition_count(&tp.topic)?;
        let partition = self
            .broker
            .topics()
            .partition(&tp.topic, tp.partition as i32)
            .ok_or_else(|| unknown_partition(&tp.topic, tp.partition, count))?;
        let (start, end) = partition.offsets().map_err(|e| read_error(tp, 0, e))?;
        Ok((start.max(0) as u64, end.max(0) as u64))
    }
}

fn unknown_partition(topic: &str, partition: u32, partitions: u32) -> TransportError {
    TransportError::UnknownPartition {
        topic: topic.to_owned(),
        partition,
        partitions,
    }
}

fn read_error(tp: &TopicPartition, offset: u64, e: ReadError) -> TransportError {
    match e {
        ReadError::OffsetOutOfRange(_) => TransportError::OffsetOutOfRange {
            partition: tp.clone(),
            offset,
        },
        ReadError::UnknownTopicOrPartition { .. } => TransportError::UnknownTopic(tp.topic.clone()),
        e => TransportError::Storage(format!("reading {tp}: {e}").into()),
    }
}

/// A broker refusal of the records (size, schema ids) says so, as the Kafka transport's
/// would; a failing log is a storage error.
fn produce_error(topic: &str, partition: u32, e: ProduceError) -> TransportError {
    let operation = format!("appending to {topic}-{partition}");
    match e {
        ProduceError::Storage(e) => TransportError::Storage(format!("{operation}: {e}").into()),
        ProduceError::UnknownTopicOrPartition { .. } => {
            TransportError::UnknownTopic(topic.to_owned())
        }
        e => TransportError::Kafka {
            operation: operation.into(),
            message: format!("the broker refused the records: {e}").into(),
        },
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn size_of(r: &OutgoingRecord) -> usize {
    let headers: usize = r
        .headers
        .iter()
        .map(|h| h.key.len() + h.value.as_ref().map_or(0, Vec::len))
        .sum();
    r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + headers
}

impl Publisher for BrokerTransport {
    async fn publish(
        &self,
        topic: &str,
        records: Vec<OutgoingRecord>,
    ) -> Result<Vec<RecordPosition>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let count = self.partition_count(topic)?;
        // Where each record goes (as the SDK's other transports place them), then the
        // records of each partition in publish order, in batches of about BATCH_BYTES.
        let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            let next = || self.round_robin.fetch_add(1, Ordering::Relaxed);
            let p = r
                .partition_in(count, next)
                .map_err(|p| unknown_partition(topic, p, count))?;
            by_partition.entry(p).or_default().push(i);
        }
        let now = now_ms();
        let mut positions = vec![
            RecordPosition {
                partition: 0,
                offset: 0,
            };
            records.len()
        ];
        for (p, indexes) in by_partition {
            let mut rest = &indexes[..];
            while !rest.is_empty() {
                let mut builder = BatchBuilder::new(Compression::None);
                let (mut bytes, mut taken) = (0, 0);
                for &i in rest {
                    let r = &records[i];
                    if taken > 0 && bytes + size_of(r) > BATCH_BYTES {
                        break;
                    }
                    bytes += size_of(r);
                    taken += 1;
                    builder.push(
                        r.timestamp.unwrap_or(now),
                        r.key.as_deref(),
                        r.value.as_deref(),
                        &r.headers,
                    );
                }
                let batch = builder.build().map_err(|e| {
                    TransportError::Storage(format!("building a batch for {topic}: {e}").into())
                })?;
                let produced = self
                    .broker
                    .produce(topic, p as i32, batch, Acks::All)
                    .await
                    .map_err(|e| produce_error(topic, p, e))?;
                for (n, &i) in rest[..taken].iter().enumerate() {
                    positions[i] = RecordPosition {
                        partition: p,
                        offset: produced.base_offset as u64 + n as u64,
                    };
                }
                rest = &rest[taken..];
            }
        }
        Ok(positions)
    }
}

impl TopicReader for BrokerTransport {
    async fn partitions(&self, topic: &str) -> Result<Option<u32>> {
        match self.partition_count(topic) {
            Ok(n) => Ok(Some(n)),
            Err(TransportError::UnknownTopic(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn end_offset(&self, partition: &TopicPartition) -> Result<u64> {
        Ok(self.offsets(partition)?.1)
    }

    async fn start_offset(&self, partition: &TopicPartition) -> Result<u64> {
        Ok(self.offsets(partition)?.0)
    }

    async fn read(
        &self,
        partition: &TopicPartition,
        offset: u64,
        max_records: usize,
    ) -> Result<Vec<ConsumedRecord>> {
        let (start, end) = self.offsets(partition)?;
        if offset < start || offset > end {
            return Err(TransportError::OffsetOutOfRange {
                partition: partition.clone(),
                offset,
            });
        }
        let mut out = Vec::new();
        let mut next = offset;
        while out.len() < max_records && next < end {
            let read = self
                .broker
                .read(
                    &partition.topic,
                    partition.partition as i32,
                    next as i64,
                    READ_BYTES,
                )
                .await
                .map_err(|e| read_error(partition, next, e))?;
            let before = next;
            for batch in decode_batches(&read.bytes) {
                let batch = batch.map_err(|e| {
                    TransportError::Storage(format!("stored batch of {partition}: {e}").into())
                })?;
                next = next.max(batch.header.last_offset() as u64 + 1);
                out.extend(
                    batch
                        .records
                        .into_iter()
                        .filter(|r| r.offset as u64 >= before)
                        .map(|r| ConsumedRecord::decoded(partition, r)),
                );
            }
            if next == before {
                break; // nothing readable (yet) at `next`
            }
        }
        out.truncate(max_records);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use herald::transport::{Header, partition_for_key};
    use herald_broker::{BrokerConfig, NewTopic};

    use super::*;

    async fn broker(dir: &std::path::Path) -> herald_broker::BrokerHandle {
        Broker::start(BrokerConfig::new(dir, "127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap()
    }

    fn record(key: Option<&str>, value: &str) -> OutgoingRecord {
        OutgoingRecord {
            key: key.map(|k| k.as_bytes().to_vec().into()),
            value: Some(value.as_bytes().to_vec().into()),
            headers: vec![Header::new("h", "v")],
            timestamp: Some(1_700_000_000_000),
            partition: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn publishes_durably_and_reads_back_what_it_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let handle = broker(dir.path()).await;
        let b = handle.broker().clone();
        b.create_topic(NewTopic {
            name: "orders".into(),
            partitions: 3,
            configs: Default::default(),
        })
        .await
        .unwrap();
        let t = BrokerTransport::new(b);
        assert_eq!(t.partitions("orders").await.unwrap(), Some(3));
        assert_eq!(t.partitions("nope").await.unwrap(), None);

        // Keyed records go where the Kafka clients put them; explicit partitions win.
        let mut explicit = record(None, "p2");
        explicit.partition = Some(2);
        let published = vec![
            record(Some("order-1"), "a"),
            record(Some("order-1"), "b"),
            explicit,
        ];
        let positions = t.publish("orders", published.clone()).await.unwrap();
        let keyed = partition_for_key(b"order-1", 3);
        assert_eq!(
            positions[0],
            RecordPosition {
                partition: keyed,
                offset: 0
            }
        );
        assert_eq!(
            positions[1],
            RecordPosition {
                partition: keyed,
                offset: 1
            }
        );
        assert_eq!(positions[2].partition, 2);

        let tp = TopicPartition::new("orders", keyed);
        assert_eq!(
            (
                t.start_offset(&tp).await.unwrap(),
                t.end_offset(&tp).await.unwrap()
            ),
            (0, 2)
        );
        let read = t.read(&tp, 0, 10).await.unwrap();
        assert_eq!(read.len(), 2);
        assert_eq!(read[1].offset, 1);
        assert_eq!(read[1].key.as_deref(), Some(&b"order-1"[..]));
        assert_eq!(read[1].value.as_deref(), Some(&b"b"[..]));
        assert_eq!(read[1].headers, vec![Header::new("h", "v")]);
        assert_eq!(read[1].timestamp, 1_700_000_000_000);
        assert_eq!(t.read(&tp, 1, 10).await.unwrap().len(), 1, "from an offset");
        assert_eq!(
            t.read(&tp, 0, 1).await.unwrap().len(),
            1,
            "at most max_records"
        );
        assert!(matches!(
            t.read(&tp, 3, 10).await,
            Err(TransportError::OffsetOutOfRange { .. })
        ));

        // Many records for one partition are split into batches and keep their order.
        t.broker
            .create_topic(NewTopic {
                name: "big".into(),
                partitions: 2,
                configs: Default::default(),
            })
            .await
            .unwrap();
        let big: Vec<_> = (0..40)
            .map(|i| {
                let mut r = record(None, &"x".repeat(20_000));
                r.partition = Some(1);
                r.headers = vec![Header::new("n", i.to_string())];
                r
            })
            .collect();
        let positions = t.publish("big", big).await.unwrap();
        assert!(
            positions
                .iter()
                .enumerate()
                .all(|(i, p)| p.offset == i as u64)
        );
        let back = t
            .read(&TopicPartition::new("big", 1), 0, 100)
            .await
            .unwrap();
        assert_eq!(back.len(), 40);
        assert!(
            back.iter()
                .enumerate()
                .all(|(i, r)| r.headers[0].value.as_deref() == Some(i.to_string().as_bytes()))
        );

        assert!(matches!(
            t.publish("nope", vec![record(None, "x")]).await,
            Err(TransportError::UnknownTopic(_))
        ));
        let mut bad = record(None, "x");
        bad.partition = Some(7);
        assert!(matches!(
            t.publish("orders", vec![bad]).await,
            Err(TransportError::UnknownPartition {
                partition: 7,
                partitions: 3,
                ..
            })
        ));

        // A refusal by the broker says why, and is not a storage failure.
        t.broker
            .create_topic(NewTopic {
                name: "small".into(),
                partitions: 1,
                configs: [("max.message.bytes".to_owned(), "2000".to_owned())].into(),
            })
            .await
            .unwrap();
        let err = t
            .publish("small", vec![record(None, &"y".repeat(5_000))])
            .await
            .unwrap_err();
        assert!(
            matches!(&err, TransportError::Kafka { message, .. } if message.contains("max.message.bytes")),
            "{err}"
        );
        handle.shutdown().await.unwrap();
    }
}
