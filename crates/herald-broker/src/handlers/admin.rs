//! Topic administration: CreateTopics v2–v7, DeleteTopics v1–v6, CreatePartitions
//! v0–v3 and DeleteRecords v0–v2.

use std::collections::BTreeMap;

use kafka_protocol::{
    ResponseError,
    messages::{
        CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
        CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse, TopicName,
        create_partitions_response::CreatePartitionsTopicResult,
        create_topics_request::CreatableTopic,
        create_topics_response::{CreatableTopicConfigs, CreatableTopicResult},
        delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult},
        delete_topics_response::DeletableTopicResult,
    },
    protocol::StrBytes,
};

use herald_security::{CLUSTER_NAME, Operation, ResourceType};

use super::Ctx;
use crate::{
    broker::Broker,
    error::{BrokerError, TopicError},
    topic_config,
    topics::NewTopic,
};

fn flatten<T>(r: Result<Result<T, TopicError>, BrokerError>) -> Result<T, TopicError> {
    r.map_err(TopicError::Storage).and_then(|r| r)
}

/// Turns one CreatableTopic into a [`NewTopic`], checking what only the request can say.
fn new_topic(broker: &Broker, topic: &CreatableTopic) -> Result<NewTopic, TopicError> {
    let node = broker.config().node_id;
    if !matches!(topic.replication_factor, -1 | 1) && topic.assignments.is_empty() {
        return Err(TopicError::InvalidReplicationFactor(
            topic.replication_factor,
        ));
    }
    let partitions = if topic.assignments.is_empty() {
        match topic.num_partitions {
            -1 => broker.config().default_partitions,
            n => n,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            return Err(TopicError::InvalidReplicaAssignment(
                "with a replica assignment, num_partitions and replication_factor must be -1"
                    .into(),
            ));
        }
        let mut seen: Vec<i32> = topic
            .assignments
            .iter()
            .map(|a| a.partition_index)
            .collect();
        seen.sort_unstable();
        let contiguous = seen.iter().enumerate().all(|(i, p)| *p == i as i32);
        let ours = topic
            .assignments
            .iter()
            .all(|a| a.broker_ids.len() == 1 && a.broker_ids[0].0 == node);
        if !contiguous || !ours {
            return Err(TopicError::InvalidReplicaAssignment(format!(
                "partitions must be numbered from 0 and each placed on broker {node} alone"
            )));
        }
        seen.len() as i32
    };
    let mut configs = BTreeMap::new();
    for c in &topic.configs {
        let Some(value) = &c.value else { continue };
        if !topic_config::is_known_key(&c.name) {
            return Err(TopicError::InvalidConfig(format!(
                "unknown topic config {:?}",
                c.name.as_str()
            )));
        }
        configs.insert(c.name.to_string(), value.to_string());
    }
    Ok(NewTopic {
        name: topic.name.to_string(),
        partitions,
        configs,
    })
}

/// CreateTopics.
pub(crate) async fn create_topics(ctx: Ctx<'_>, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let broker = ctx.broker;
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for t in &req.topics {
        *counts.entry(t.name.as_str()).or_default() += 1;
    }
    let mut resp = CreateTopicsResponse::default();
    let cluster_create = ctx.authorizing()
        && ctx.may_quietly(Operation::Create, ResourceType::Cluster, CLUSTER_NAME);
    for topic in &req.topics {
        let mut r = CreatableTopicResult::default();
        r.name = topic.name.clone();
        let outcome = if !cluster_create && !ctx.may_on_topic(Operation::Create, &topic.name) {
            Err((
                ResponseError::TopicAuthorizationFailed.code(),
                format!(
                    "{} may not CREATE topic {:?} (needs CREATE on the cluster or the topic)",
                    ctx.principal,
                    topic.name.as_str()
                ),
            ))
        } else if counts[topic.name.as_str()] > 1 {
            Err((
                ResponseError::InvalidRequest.code(),
                format!(
                    "topic {:?} appears more than once in the request",
                    topic.name.as_str()
                ),
            ))
        } else {
            let result = match new_topic(broker, topic) {
                Err(e) => Err(e),
                Ok(new) if req.validate_only => {
                    let check = new.clone();
                    flatten(
                        broker
                            .with_topics(move |t| t.validate_new(&check).map(|_| ()))
                            .await,
                    )
                    .map(|()| (new, None))
                }
                Ok(new) => broker
                    .create_topic(new.clone())
                    .await
                    .map(|t| (new, Some(t.id()))),
            };
            result.map_err(|e| (e.kafka_code(), e.to_string()))
        };
        match outcome {
            Ok((new, id)) => {
                if ctx.version >= 7 {
                    r.topic_id = id.unwrap_or_default();
                }
                if ctx.version >= 5 && !ctx.may_on_topic(Operation::DescribeConfigs, &topic.name) {
                    // Created; its configs are not the principal's to see (Kafka).
                    r.num_partitions = new.partitions;
                    r.replication_factor = 1;
                    r.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
                    r.configs = None;
                } else if ctx.version >= 5 {
                    r.num_partitions = new.partitions;
                    r.replication_factor = 1;
                    let entries =
                        topic_config::describe(broker.topics().defaults(), &new.configs, None);
                    r.configs = Some(
                        entries
                            .into_iter()
                            .map(|e| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = StrBytes::from_static_str(e.name);
                                c.value = Some(StrBytes::from_string(e.value));
                                c.config_source = e.source.kafka_code();
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err((code, message)) => {
                tracing::info!(topic = %topic.name.0, error = %message, "create topic refused");
                r.error_code = code;
                r.error_message = Some(StrBytes::from_string(message));
                if ctx.version >= 5 {
                    r.configs = None;
                }
            }
        }
        resp.topics.push(r);
    }
    resp
}

/// DeleteTopics (by name; by id in v6).
pub(crate) async fn delete_topics(ctx: Ctx<'_>, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let broker = ctx.broker;
    // (name if known, id asked for, error if the id is unknown)
    let wanted: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| match &t.name {
                Some(name) => (Some(name.to_string()), t.topic_id),
                None => (
                    broker
                        .topics()
                        .get_by_id(t.topic_id)
                        .map(|t| t.name().to_string()),
                    t.topic_id,
                ),
            })
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in wanted {
        let mut r = DeletableTopicResult::default();
        r.name = name.clone().map(|n| TopicName(StrBytes::from_string(n)));
        if ctx.version >= 6 {
            r.topic_id = id;
        }
        let result = match &name {
            None => Err((
                ResponseError::UnknownTopicId.code(),
                format!("unknown topic id {id}"),
            )),
            Some(name) if !ctx.may_on_topic(Operation::Delete, name) => Err((
                ResponseError::TopicAuthorizationFailed.code(),
                format!("{} may not DELETE topic {name:?}", ctx.principal),
            )),
            Some(name) => {
                if ctx.version >= 6
                    && let Some(t) = broker.topics().get(name)
                {
                    r.topic_id = t.id();
                }
                broker
                    .delete_topic(name)
                    .await
                    .map_err(|e| (e.kafka_code(), e.to_string()))
            }
        };
        if let Err((code, message)) = result {
            r.error_code = code;
            if ctx.version >= 5 {
                r.error_message = Some(StrBytes::from_string(message));
            }
        }
        resp.responses.push(r);
    }
    resp
}

/// CreatePartitions.
pub(crate) async fn create_partitions(
    ctx: Ctx<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let broker = ctx.broker;
    let node = broker.config().node_id;
    let mut resp = CreatePartitionsResponse::default();
    for topic in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = topic.name.clone();
        let ours = topic.assignments.as_ref().is_none_or(|a| {
            a.iter()
                .all(|x| x.broker_ids.len() == 1 && x.broker_ids[0].0 == node)
        });
        let result = if !ctx.may_on_topic(Operation::Alter, &topic.name) {
            r.error_code = ResponseError::TopicAuthorizationFailed.code();
            r.error_message = Some(StrBytes::from_string(format!(
                "{} may not ALTER topic {:?}",
                ctx.principal,
                topic.name.as_str()
            )));
            resp.results.push(r);
            continue;
        } else if !ours {
            Err(TopicError::InvalidReplicaAssignment(format!(
                "each new partition must be placed on broker {node} alone"
            )))
        } else {
            let name = topic.name.to_string();
            let (count, validate_only) = (topic.count, req.validate_only);
            flatten(
                broker
                    .with_topics(move |t| t.add_partitions(&name, count, validate_only))
                    .await,
            )
        };
        if let Err(e) = result {
            tracing::info!(topic = %topic.name.0, error = %e, "create partitions refused");
            r.error_code = e.kafka_code();
            r.error_message = Some(StrBytes::from_string(e.to_string()));
        }
        resp.results.push(r);
    }
    resp
}

/// DeleteRecords: moves the log start offset (-1 means the high watermark).
pub(crate) async fn delete_records(
    ctx: Ctx<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let broker = ctx.broker;
    let mut resp = DeleteRecordsResponse::default();
    for topic in req.topics {
        let mut t = DeleteRecordsTopicResult::default();
        t.name = topic.name.clone();
        let allowed = ctx.may_on_topic(Operation::Delete, &topic.name);
        for wanted in topic.partitions {
            let mut p = DeleteRecordsPartitionResult::default();
            p.partition_index = wanted.partition_index;
            p.low_watermark = -1;
            match broker
                .topics()
                .partition(&topic.name, wanted.partition_index)
            {
                _ if !allowed => p.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => p.error_code = ResponseError::UnknownTopicOrPartition.code(),
                Some(_) if wanted.offset < -1 => {
                    p.error_code = ResponseError::OffsetOutOfRange.code()
                }
                Some(partition) => {
                    let offset = wanted.offset;
                    let result = tokio::task::spawn_blocking(move || {
                        let target = if offset == -1 {
                            partition.offsets()?.1
                        } else {
                            offset
                        };
                        partition.delete_records_before(target as u64)
                    })
                    .await;
                    match result {
                        Ok(Ok(start)) => p.low_watermark = start as i64,
                        Ok(Err(e)) => {
                            tracing::info!(topic = %topic.name.0, partition = wanted.partition_index, error = %e, "delete records refused");
                            p.error_code = e.kafka_code();
                        }
                        Err(e) => {
                            tracing::error!(error = %e, "delete records task failed");
                            p.error_code = ResponseError::UnknownServerError.code();
                        }
                    }
                }
            }
            t.partitions.push(p);
        }
        resp.topics.push(t);
    }
    resp
}
