//! Fetch v4–v12: whole batches (even when the fetch offset is inside one), per-partition
//! and per-response byte limits, and long polling on `max_wait_ms` / `min_bytes` with a
//! per-partition notification when the high watermark moves.
//!
//! Incremental fetch sessions (KIP-227) are declined: every response carries session id
//! 0, which tells the client to keep sending full fetch requests.

use std::{pin::Pin, sync::Arc, task::Poll, time::Duration};

use bytes::Bytes;
use kafka_protocol::{
    ResponseError,
    messages::{
        BrokerId, FetchRequest, FetchResponse, TopicName,
        fetch_response::{FetchableTopicResponse, PartitionData},
    },
};
use tokio::{sync::Notify, time::Instant};

use herald_security::Operation;

use super::Ctx;
use crate::{error::ReadError, partition::Partition};

/// One partition to read, resolved once per request.
struct Wanted {
    index: i32,
    /// The partition, or the error code to answer (unknown, or not authorized).
    partition: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    max_bytes: i32,
}

struct Plan {
    topics: Vec<(TopicName, Vec<Wanted>)>,
    response_max_bytes: usize,
    version: i16,
    read_committed: bool,
}

impl Plan {
    fn error(&self, index: i32, code: i16) -> PartitionData {
        let mut p = PartitionData::default();
        p.partition_index = index;
        p.error_code = code;
        p.high_watermark = -1;
        p.last_stable_offset = -1;
        if self.version >= 5 {
            p.log_start_offset = -1;
        }
        p.records = Some(Bytes::new());
        p
    }

    /// Reads every partition once. Returns the topics, the record bytes gathered and
    /// whether any partition has an error (which answers a long poll at once).
    fn read(&self) -> (Vec<FetchableTopicResponse>, usize, bool) {
        let mut remaining = self.response_max_bytes;
        let mut total = 0usize;
        let mut any_error = false;
        let mut topics = Vec::with_capacity(self.topics.len());
        for (name, wanted) in &self.topics {
            let mut t = FetchableTopicResponse::default();
            t.topic = name.clone();
            for w in wanted {
                let partition = match &w.partition {
                    Ok(p) => p,
                    Err(code) => {
                        any_error = true;
                        t.partitions.push(self.error(w.index, *code));
                        continue;
                    }
                };
                let limit = (w.max_bytes.max(0) as usize).min(remaining);
                let result = if limit == 0 {
                    partition
                        .offsets()
                        .map(|(start, hw)| (Vec::new(), start, hw))
                } else {
                    partition
                        .read(w.fetch_offset, limit)
                        .map(|r| (r.bytes, r.log_start_offset as i64, r.high_watermark as i64))
                };
                match result {
                    Ok((mut bytes, log_start, hw)) => {
                        // The first batch of the response is sent whole even when it is
                        // larger than the limits (so a consumer can always progress);
                        // after that, a partition whose batches do not fit waits.
                        if bytes.len() > remaining && total > 0 {
                            bytes.clear();
                        }
                        total += bytes.len();
                        remaining = remaining.saturating_sub(bytes.len());
                        let mut p = PartitionData::default();
                        p.partition_index = w.index;
                        p.high_watermark = hw;
                        p.last_stable_offset = hw;
                        if self.version >= 5 {
                            p.log_start_offset = log_start;
                        }
                        if self.read_committed {
                            p.aborted_transactions = Some(Vec::new());
                        }
                        if self.version >= 11 {
                            p.preferred_read_replica = BrokerId(-1);
                        }
                        p.records = Some(Bytes::from(bytes));
                        t.partitions.push(p);
                    }
                    Err(e) => {
                        any_error = true;
                        if let ReadError::Storage(_) = e {
                            tracing::error!(topic = %name.0, partition = w.index, error = %e, "fetch failed");
                        }
                        t.partitions.push(self.error(w.index, e.kafka_code()));
                    }
                }
            }
            topics.push(t);
        }
        (topics, total, any_error)
    }
}

/// Resolves when any of `waits` is notified.
async fn any_notified(waits: &mut [Pin<Box<tokio::sync::futures::Notified<'_>>>]) {
    std::future::poll_fn(|cx| {
        for w in waits.iter_mut() {
            if w.as_mut().poll(cx).is_ready() {
                return Poll::Ready(());
            }
        }
        Poll::Pending
    })
    .await
}

/// Fetch.
pub(crate) async fn handle(ctx: Ctx<'_>, req: FetchRequest) -> FetchResponse {
    let mut resp = FetchResponse::default();
    if ctx.version >= 7 && req.session_id != 0 {
        // We never hand out session ids, so any id is unknown.
        resp.error_code = ResponseError::FetchSessionIdNotFound.code();
        return resp;
    }
    let broker = ctx.broker;
    let plan = Arc::new(Plan {
        topics: req
            .topics
            .into_iter()
            .map(|t| {
                // READ is checked before the topic's existence, as Kafka does.
                let topic = if ctx.may_on_topic(Operation::Read, &t.topic) {
                    broker
                        .topics()
                        .get(&t.topic)
                        .ok_or(ResponseError::UnknownTopicOrPartition.code())
                } else {
                    Err(ResponseError::TopicAuthorizationFailed.code())
                };
                let wanted = t
                    .partitions
                    .into_iter()
                    .map(|p| Wanted {
                        index: p.partition,
                        partition: topic.as_ref().map_err(|c| *c).and_then(|t| {
                            t.partition(p.partition)
                                .ok_or(ResponseError::UnknownTopicOrPartition.code())
                        }),
                        fetch_offset: p.fetch_offset,
                        max_bytes: p.partition_max_bytes,
                    })
                    .collect();
                (t.topic, wanted)
            })
            .collect(),
        response_max_bytes: if req.max_bytes <= 0 {
            i32::MAX as usize
        } else {
            req.max_bytes as usize
        },
        version: ctx.version,
        read_committed: req.isolation_level == 1,
    });
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let min_bytes = req.min_bytes.max(0) as usize;
    let notifies: Vec<Arc<Notify>> = plan
        .topics
        .iter()
        .flat_map(|(_, w)| w.iter())
        .filter_map(|w| {
            w.partition
                .as_ref()
                .ok()
                .map(|p| p.watermark_notify().clone())
        })
        .collect();
    let mut shutdown = broker.core.shutdown.clone();
    loop {
        // Register for wake-ups before reading, so an append between the read and the
        // wait is not missed.
        let mut waits: Vec<_> = notifies.iter().map(|n| Box::pin(n.notified())).collect();
        for w in &mut waits {
            w.as_mut().enable();
        }
        let reader = plan.clone();
        let (topics, total, any_error) =
            match tokio::task::spawn_blocking(move || reader.read()).await {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "fetch task failed");
                    resp.error_code = ResponseError::UnknownServerError.code();
                    return resp;
                }
            };
        if total >= min_bytes
            || any_error
            || Instant::now() >= deadline
            || broker.is_shutting_down()
        {
            crate::telemetry::RecordsFetched::emit_response(&topics);
            resp.responses = topics;
            return resp;
        }
        tokio::select! {
            _ = any_notified(&mut waits) => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = crate::server::stopped(&mut shutdown) => {}
        }
    }
}
