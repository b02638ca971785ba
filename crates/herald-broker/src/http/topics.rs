//! `/api/v1/topics`: list, create, describe, delete, add partitions.

use std::sync::Arc;

use axum::{Extension, extract::State, http::StatusCode, response::IntoResponse};
use herald_api::topics::{
    AddPartitions, ConfigValue, CreateTopic, PartitionInfo, TopicDetail, TopicList, TopicSummary,
};
use herald_security::{Caller, Operation, ResourceType};

use super::{
    AppState,
    error::{ApiError, JsonBody, Path},
};
use crate::{
    broker::Broker,
    topic_config::{self, ConfigSource},
    topics::{NewTopic, Topic},
};

fn partition_infos(topic: &Topic) -> Result<Vec<PartitionInfo>, ApiError> {
    topic
        .partitions()
        .iter()
        .map(|p| {
            let (log_start_offset, high_watermark) = p.offsets()?;
            Ok(PartitionInfo {
                partition: p.index(),
                log_start_offset,
                high_watermark,
                size_bytes: p.size_bytes()?,
            })
        })
        .collect()
}

/// Describes a topic (blocking: reads log state).
fn detail(broker: &Broker, topic: &Topic) -> Result<TopicDetail, ApiError> {
    let overrides = topic.configs();
    let configs = topic_config::describe(broker.topics().defaults(), &overrides, None)
        .into_iter()
        .map(|e| {
            let source = match e.source {
                ConfigSource::Topic => "topic",
                ConfigSource::StaticBroker => "broker",
                ConfigSource::Default => "default",
            };
            (
                e.name.to_string(),
                ConfigValue {
                    value: e.value,
                    source: source.to_string(),
                },
            )
        })
        .collect();
    Ok(TopicDetail {
        name: topic.name().to_string(),
        id: topic.id().to_string(),
        partition_count: topic.partition_count(),
        partitions: partition_infos(topic)?,
        configs,
    })
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
}

fn existing(broker: &Broker, name: &str) -> Result<Arc<Topic>, ApiError> {
    broker
        .topics()
        .get(name)
        .ok_or_else(|| ApiError::unknown_topic(name))
}

/// `GET /api/v1/topics`
pub(crate) async fn list(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<impl IntoResponse, ApiError> {
    let broker = shared.broker()?;
    let topics = blocking(move || {
        broker
            .topics()
            .list()
            .iter()
            // What the caller may not describe is left out, as Kafka's Metadata does.
            .filter(|t| caller.may(Operation::Describe, ResourceType::Topic, t.name()))
            .map(|t| {
                let parts = partition_infos(t)?;
                Ok(TopicSummary {
                    name: t.name().to_string(),
                    id: t.id().to_string(),
                    partition_count: t.partition_count(),
                    records: parts
                        .iter()
                        .map(|p| p.high_watermark - p.log_start_offset)
                        .sum(),
                    size_bytes: parts.iter().map(|p| p.size_bytes).sum(),
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await?;
    Ok(axum::Json(TopicList { topics }))
}

/// `POST /api/v1/topics`
pub(crate) async fn create(
    State(shared): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(body): JsonBody<CreateTopic>,
) -> Result<impl IntoResponse, ApiError> {
    super::authz::require_create_topic(&caller, &body.name)?;
    let broker = shared.broker()?;
    let new = NewTopic {
        partitions: body
            .partitions
            .unwrap_or(broker.config().default_partitions),
        name: body.name,
        configs: body
            .configs
            .into_iter()
            .map(|(k, v)| (k, v.into_string()))
            .collect(),
    };
    let topic = broker.create_topic(new).await?;
    let detail = blocking(move || detail(&broker, &topic)).await?;
    Ok((StatusCode::CREATED, axum::Json(detail)))
}

/// `GET /api/v1/topics/{name}`
pub(crate) async fn describe(
    State(shared): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let broker = shared.broker()?;
    let topic = existing(&broker, &name)?;
    Ok(axum::Json(blocking(move || detail(&broker, &topic)).await?))
}

/// `DELETE /api/v1/topics/{name}`
pub(crate) async fn delete(
    State(shared): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let broker = shared.broker()?;
    broker.delete_topic(&name).await?;
    shared.forget_topic(&name);
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/topics/{name}/partitions`
pub(crate) async fn add_partitions(
    State(shared): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<AddPartitions>,
) -> Result<impl IntoResponse, ApiError> {
    let broker = shared.broker()?;
    existing(&broker, &name)?;
    let detail = blocking(move || {
        broker.topics().add_partitions(&name, body.count, false)?;
        let topic = existing(&broker, &name)?;
        detail(&broker, &topic)
    })
    .await?;
    Ok(axum::Json(detail))
}
