//! Reading a range of one partition outside any group, for the dead-letter tools: assign
//! the partition at the first offset wanted, take records until the range is done or the
//! partition ends, unassign.

use bytes::Bytes;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer as _, StreamConsumer},
    error::KafkaError,
    message::{BorrowedMessage, Headers},
};

use super::{KafkaConfig, LogContext, kafka_error};
use crate::transport::{ConsumedRecord, Header, Result, TopicPartition, TransportError};

/// One reusable consumer, created on first use (it needs a Tokio runtime).
pub(super) struct PartitionReader {
    config: KafkaConfig,
    context: LogContext,
    consumer: Option<StreamConsumer<LogContext>>,
}

impl PartitionReader {
    pub(super) fn new(config: KafkaConfig, context: LogContext) -> Self {
        Self {
            config,
            context,
            consumer: None,
        }
    }

    /// The consumer, for closing it where blocking is allowed.
    pub(super) fn take_consumer(&mut self) -> Option<StreamConsumer<LogContext>> {
        self.consumer.take()
    }

    /// Records of `tp` from `from` up to `end` (exclusive), which the caller checked
    /// against the partition's watermarks. Returns fewer when the partition ends first
    /// (offsets taken by transaction markers or compaction).
    pub(super) async fn read(
        &mut self,
        tp: &TopicPartition,
        from: u64,
        end: u64,
    ) -> Result<Vec<ConsumedRecord>> {
        let operation = || format!("reading {tp} from offset {from}");
        if self.consumer.is_none() {
            let consumer = self
                .config
                .partition_reader()
                .create_with_context(self.context.clone())
                .map_err(|e| kafka_error("creating the partition reader", &e))?;
            self.consumer = Some(consumer);
        }
        let consumer = self.consumer.as_ref().expect("created above");
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&tp.topic, tp.partition as i32, Offset::Offset(from as i64))
            .map_err(|e| kafka_error(operation(), &e))?;
        consumer
            .assign(&assignment)
            .map_err(|e| kafka_error(operation(), &e))?;
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let mut out = Vec::with_capacity((end - from).min(1024) as usize);
        let mut next = from;
        let result = loop {
            if next >= end {
                break Ok(());
            }
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Err(_) => {
                    break Err(TransportError::Kafka {
                        operation: operation().into(),
                        message: format!(
                            "only {} of {} records arrived within {:?}",
                            out.len(),
                            end - from,
                            self.config.request_timeout
                        )
                        .into(),
                    });
                }
                Ok(Ok(m)) => {
                    if m.topic() != tp.topic || m.partition() != tp.partition as i32 {
                        continue;
                    }
                    let offset = m.offset() as u64;
                    if offset >= end {
                        break Ok(());
                    }
                    if offset >= next {
                        next = offset + 1;
                        out.push(consumed(&m));
                    }
                }
                Ok(Err(KafkaError::PartitionEOF(p))) if p == tp.partition as i32 => break Ok(()),
                Ok(Err(KafkaError::PartitionEOF(_))) => {}
                Ok(Err(e)) => {
                    if matches!(e, KafkaError::MessageConsumptionFatal(_)) {
                        break Err(kafka_error(operation(), &e));
                    }
                    tracing::debug!(partition = %tp, error = %e, "partition reader: transient error");
                }
            }
        };
        if let Err(e) = consumer.unassign() {
            tracing::warn!(error = %e, "partition reader: unassign failed; dropping the reader");
            self.consumer = None;
        }
        result.map(|()| out)
    }
}

/// A record as the SDK sees it. Headers keep their order, duplicates and null values.
pub(super) fn consumed(m: &BorrowedMessage<'_>) -> ConsumedRecord {
    let headers = m
        .headers()
        .map(|hs| {
            hs.iter()
                .map(|h| Header {
                    key: h.key.to_owned(),
                    value: h.value.map(<[u8]>::to_vec),
                })
                .collect()
        })
        .unwrap_or_default();
    ConsumedRecord {
        topic: m.topic().to_owned(),
        partition: m.partition() as u32,
        offset: m.offset() as u64,
        timestamp: m.timestamp().to_millis().unwrap_or(0),
        key: m.key().map(Bytes::copy_from_slice),
        value: m.payload().map(Bytes::copy_from_slice),
        headers,
    }
}
