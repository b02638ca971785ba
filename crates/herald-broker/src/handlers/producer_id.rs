//! InitProducerId v0–v4: producer ids for idempotent producers. Herald has no
//! transactions, so a request with a transactional id is refused.

use kafka_protocol::{
    ResponseError,
    messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId},
};

use herald_security::{Operation, ResourceType};

use super::Ctx;

/// InitProducerId. As in Kafka, an idempotent producer (no transactional id) always gets
/// a fresh producer id with epoch 0, also when it asks to bump the epoch of an old one.
pub(crate) async fn init_producer_id(
    ctx: Ctx<'_>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    if let Some(id) = req.transactional_id.as_ref().filter(|id| !id.is_empty()) {
        // The closest Kafka error a client treats as final: transactions are not
        // available to it here.
        tracing::info!(transactional_id = %id.0, "refusing a transactional producer: Herald has no transactions");
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return resp;
    }
    // KIP-679: IDEMPOTENT_WRITE on the cluster, or WRITE on any topic.
    if ctx.authorizing()
        && !ctx.may_quietly(
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            herald_security::CLUSTER_NAME,
        )
        && !ctx.may_on_any(Operation::Write, ResourceType::Topic)
    {
        ctx.may_on_cluster(Operation::IdempotentWrite); // logs and counts the denial
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    let core = ctx.broker.core.clone();
    match tokio::task::spawn_blocking(move || core.producer_ids.allocate()).await {
        Ok(Ok(id)) => {
            resp.producer_id = ProducerId(id);
            resp.producer_epoch = 0;
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot allocate a producer id");
            resp.error_code = ResponseError::KafkaStorageError.code();
        }
        Err(e) => {
            tracing::error!(error = %e, "producer id task failed");
            resp.error_code = ResponseError::UnknownServerError.code();
        }
    }
    resp
}
