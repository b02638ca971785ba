//! Produce v3–v9: one record batch per partition, stored verbatim; acks 0, 1 and -1.

use kafka_protocol::{
    ResponseError,
    messages::{
        ProduceRequest, ProduceResponse,
        produce_response::{PartitionProduceResponse, TopicProduceResponse},
    },
    protocol::StrBytes,
};

use super::Ctx;
use crate::{
    broker::{Acks, PendingProduce},
    error::ProduceError,
};

fn partition_error(
    ctx: &Ctx<'_>,
    index: i32,
    code: i16,
    message: Option<String>,
) -> PartitionProduceResponse {
    let mut p = PartitionProduceResponse::default();
    p.index = index;
    p.error_code = code;
    p.base_offset = -1;
    p.log_append_time_ms = -1;
    if ctx.version >= 5 {
        p.log_start_offset = -1;
    }
    if ctx.version >= 8 {
        p.error_message = message.map(StrBytes::from_string);
    }
    p
}

/// Produce. `None` for acks=0: the client expects no response.
pub(crate) async fn handle(ctx: Ctx<'_>, req: ProduceRequest) -> Option<ProduceResponse> {
    let acks = Acks::from_kafka(req.acks);
    let mut resp = ProduceResponse::default();
    // First write every partition, then wait for durability of all of them together.
    let mut pending: Vec<Vec<(i32, Result<PendingProduce, ProduceError>)>> = Vec::new();
    for topic in &req.topic_data {
        let mut parts = Vec::with_capacity(topic.partition_data.len());
        for data in &topic.partition_data {
            if acks.is_none() {
                continue;
            }
            let records = data.records.as_deref().unwrap_or_default().to_vec();
            let started = ctx
                .broker
                .start_produce(&topic.name, data.index, records)
                .await;
            parts.push((data.index, started));
        }
        pending.push(parts);
    }
    for (topic, parts) in req.topic_data.iter().zip(pending) {
        let mut t = TopicProduceResponse::default();
        t.name = topic.name.clone();
        let Some(acks) = acks else {
            t.partition_responses = topic
                .partition_data
                .iter()
                .map(|d| {
                    partition_error(
                        &ctx,
                        d.index,
                        ResponseError::InvalidRequiredAcks.code(),
                        Some(format!("acks must be 0, 1 or -1, got {}", req.acks)),
                    )
                })
                .collect();
            resp.responses.push(t);
            continue;
        };
        for (index, started) in parts {
            let result = match started {
                Ok(p) => p.finish(acks).await,
                Err(e) => Err(e),
            };
            let p = match result {
                Ok(produced) => {
                    let mut p = PartitionProduceResponse::default();
                    p.index = index;
                    p.base_offset = produced.base_offset;
                    p.log_append_time_ms = -1;
                    if ctx.version >= 5 {
                        p.log_start_offset = produced.log_start_offset;
                    }
                    p
                }
                Err(e) => {
                    let code = e.kafka_code(ctx.version);
                    match &e {
                        ProduceError::UnknownTopicOrPartition { .. } => {
                            tracing::debug!(topic = %topic.name.0, partition = index, error = %e, "produce refused")
                        }
                        ProduceError::Storage(_) => {
                            tracing::error!(topic = %topic.name.0, partition = index, error = %e, "produce failed")
                        }
                        _ => {
                            tracing::info!(topic = %topic.name.0, partition = index, error = %e, "produce refused")
                        }
                    }
                    partition_error(&ctx, index, code, Some(e.to_string()))
                }
            };
            t.partition_responses.push(p);
        }
        resp.responses.push(t);
    }
    if acks == Some(Acks::None) {
        return None;
    }
    Some(resp)
}
