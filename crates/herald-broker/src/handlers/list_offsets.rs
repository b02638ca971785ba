//! ListOffsets v1–v7: earliest (-2), latest (-1), max timestamp (-3) and the first offset
//! whose record timestamp is at or after a given time.

use kafka_protocol::{
    ResponseError,
    messages::{
        ListOffsetsRequest, ListOffsetsResponse,
        list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
    },
};

use herald_security::Operation;

use super::Ctx;
use crate::{error::ReadError, partition::Partition};

/// Kafka's special timestamps.
const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;

/// `(offset, timestamp)` for one lookup; `(-1, -1)` when no record qualifies.
fn lookup(partition: &Partition, timestamp: i64) -> Result<(i64, i64), ReadError> {
    let found = |t: Option<herald_log::TimestampOffset>| {
        t.map_or((-1, -1), |t| (t.offset as i64, t.timestamp))
    };
    match timestamp {
        LATEST => Ok((partition.offsets()?.1, -1)),
        EARLIEST => Ok((partition.offsets()?.0, -1)),
        MAX_TIMESTAMP => Ok(found(partition.max_timestamp_offset()?)),
        t => Ok(found(partition.offset_for_timestamp(t)?)),
    }
}

/// ListOffsets.
pub(crate) async fn handle(ctx: Ctx<'_>, req: ListOffsetsRequest) -> ListOffsetsResponse {
    let broker = ctx.broker;
    let version = ctx.version;
    let mut resp = ListOffsetsResponse::default();
    for topic in req.topics {
        let mut t = ListOffsetsTopicResponse::default();
        t.name = topic.name.clone();
        let allowed = ctx.may_on_topic(Operation::Describe, &topic.name);
        for wanted in topic.partitions {
            let mut p = ListOffsetsPartitionResponse::default();
            p.partition_index = wanted.partition_index;
            p.timestamp = -1;
            p.offset = -1;
            let partition = broker
                .topics()
                .partition(&topic.name, wanted.partition_index);
            let result = match partition {
                _ if !allowed => Err(ResponseError::TopicAuthorizationFailed.code()),
                None => Err(ResponseError::UnknownTopicOrPartition.code()),
                Some(_) if wanted.timestamp < MAX_TIMESTAMP => {
                    Err(ResponseError::InvalidRequest.code())
                }
                Some(partition) => {
                    let ts = wanted.timestamp;
                    match tokio::task::spawn_blocking(move || lookup(&partition, ts)).await {
                        Ok(Ok(r)) => Ok(r),
                        Ok(Err(e)) => {
                            tracing::error!(topic = %topic.name.0, partition = wanted.partition_index, error = %e, "list offsets failed");
                            Err(e.kafka_code())
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "list offsets task failed");
                            Err(ResponseError::UnknownServerError.code())
                        }
                    }
                }
            };
            match result {
                Ok((offset, timestamp)) => {
                    p.offset = offset;
                    p.timestamp = timestamp;
                    if version >= 4 {
                        p.leader_epoch = if offset >= 0 { 0 } else { -1 };
                    }
                }
                Err(code) => p.error_code = code,
            }
            t.partitions.push(p);
        }
        resp.topics.push(t);
    }
    resp
}
