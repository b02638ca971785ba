//! Metadata: this broker, and the topics asked for, creating unknown ones when the
//! client allows it and `auto_create_topics` is on (many client test suites rely on it).

use std::{collections::BTreeMap, sync::Arc};

use kafka_protocol::{
    ResponseError,
    messages::{
        BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest,
        MetadataResponse, TopicName,
        describe_cluster_response::DescribeClusterBroker,
        metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        },
    },
    protocol::StrBytes,
};

use herald_security::{CLUSTER_NAME, Operation, ResourceType};

use super::Ctx;
use crate::{
    broker::Broker,
    error::TopicError,
    topics::{NewTopic, Topic, validate_topic_name},
};

/// Finds `name`, creating it with the default partition count when allowed.
pub(crate) async fn get_or_create(
    broker: &Broker,
    name: &str,
    allow_create: bool,
) -> Result<Arc<Topic>, TopicError> {
    if let Some(t) = broker.topics().get(name) {
        return Ok(t);
    }
    validate_topic_name(name)?;
    if !allow_create || !broker.config().auto_create_topics {
        return Err(TopicError::Unknown(name.to_string()));
    }
    let new = NewTopic {
        name: name.to_string(),
        partitions: broker.config().default_partitions,
        configs: BTreeMap::new(),
    };
    match broker.create_topic(new).await {
        Ok(t) => Ok(t),
        // Another request created it meanwhile.
        Err(TopicError::AlreadyExists(_)) => broker
            .topics()
            .get(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string())),
        Err(e) => Err(e),
    }
}

fn describe_topic(ctx: &Ctx<'_>, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(ctx.broker.config().node_id);
    let mut t = MetadataResponseTopic::default();
    t.name = Some(TopicName(StrBytes::from_string(topic.name().to_string())));
    if ctx.version >= 10 {
        t.topic_id = topic.id();
    }
    t.partitions = (0..topic.partition_count())
        .map(|index| {
            let mut p = MetadataResponsePartition::default();
            p.partition_index = index;
            p.leader_id = node;
            if ctx.version >= 7 {
                p.leader_epoch = 0;
            }
            p.replica_nodes = vec![node];
            p.isr_nodes = vec![node];
            p
        })
        .collect();
    t
}

fn topic_error(name: Option<TopicName>, code: i16) -> MetadataResponseTopic {
    let mut t = MetadataResponseTopic::default();
    t.error_code = code;
    t.name = name;
    t
}

/// Metadata v0–v12.
pub(crate) async fn handle(ctx: Ctx<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let (host, port) = ctx.listener.advertised();
    let mut me = MetadataResponseBroker::default();
    me.node_id = BrokerId(broker.config().node_id);
    me.host = StrBytes::from_string(host.to_string());
    me.port = i32::from(port);

    let mut resp = MetadataResponse::default();
    resp.brokers = vec![me];
    if ctx.version >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(broker.cluster_id().to_string()));
    }
    resp.controller_id = BrokerId(broker.config().node_id);
    // Asked for (v8–v10; librdkafka's describe_cluster asks here): with no authorizer,
    // every cluster operation.
    if (8..=10).contains(&ctx.version) && req.include_cluster_authorized_operations {
        resp.cluster_authorized_operations =
            ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME);
    }
    let with_operations = ctx.version >= 8 && req.include_topic_authorized_operations;
    let describe = |topic: &Topic| {
        let mut t = describe_topic(&ctx, topic);
        if with_operations {
            t.topic_authorized_operations =
                ctx.authorized_operations(ResourceType::Topic, topic.name());
        }
        t
    };
    // v0 has no null topic list: an empty one means "all topics".
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    if all {
        // Topics the principal may not describe are left out, silently (Kafka).
        resp.topics = broker
            .topics()
            .list()
            .iter()
            .filter(|t| ctx.may_quietly(Operation::Describe, ResourceType::Topic, t.name()))
            .map(|t| describe(t))
            .collect();
        return resp;
    }
    let denied = || ResponseError::TopicAuthorizationFailed.code();
    let allow_create = ctx.version < 4 || req.allow_auto_topic_creation;
    for wanted in req.topics.unwrap_or_default() {
        // v10+ may name a topic by id; the name is then null (or, from some clients, empty).
        let by_id = ctx.version >= 10
            && !wanted.topic_id.is_nil()
            && wanted.name.as_ref().is_none_or(|n| n.is_empty());
        let entry = match wanted.name.filter(|_| !by_id) {
            Some(name) if !ctx.may_on_topic(Operation::Describe, &name) => {
                topic_error(Some(name), denied())
            }
            // Auto-creation needs CREATE on the cluster or on the topic.
            Some(name)
                if allow_create
                    && broker.config().auto_create_topics
                    && ctx.authorizing()
                    && broker.topics().get(&name).is_none()
                    && !ctx.may_quietly(Operation::Create, ResourceType::Cluster, CLUSTER_NAME)
                    && !ctx.may_on_topic(Operation::Create, &name) =>
            {
                topic_error(Some(name), denied())
            }
            Some(name) => match get_or_create(broker, &name, allow_create).await {
                Ok(topic) => describe(&topic),
                Err(e) => {
                    if !matches!(e, TopicError::Unknown(_)) {
                        tracing::info!(topic = %name.0, error = %e, "metadata: topic not available");
                    }
                    topic_error(Some(name), e.kafka_code())
                }
            },
            None => match broker.topics().get_by_id(wanted.topic_id) {
                Some(topic) if !ctx.may_on_topic(Operation::Describe, topic.name()) => {
                    let mut t = topic_error(None, denied());
                    t.topic_id = wanted.topic_id;
                    t
                }
                Some(topic) => describe(&topic),
                None => {
                    let mut t = topic_error(None, ResponseError::UnknownTopicId.code());
                    t.topic_id = wanted.topic_id;
                    t
                }
            },
        };
        resp.topics.push(entry);
    }
    resp
}

/// DescribeCluster v0–v1 (KIP-700): this broker, the cluster id, the controller (this
/// node). v1's endpoint type 2 (controllers) is UNSUPPORTED_ENDPOINT_TYPE, as a Kafka
/// broker answers it. Needs DESCRIBE on the cluster; the authorized cluster operations,
/// when asked, are a bit per Kafka operation code (all seven with no authorizer).
pub(crate) async fn describe_cluster(
    ctx: Ctx<'_>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = ctx.broker;
    let mut resp = DescribeClusterResponse::default();
    if ctx.version >= 1 {
        resp.endpoint_type = req.endpoint_type;
        if req.endpoint_type != 1 {
            resp.error_code = ResponseError::UnsupportedEndpointType.code();
            resp.error_message = Some(StrBytes::from_static_str(
                "this is a broker: ask it for endpoint type 1 (brokers)",
            ));
            return resp;
        }
    }
    if !ctx.may_on_cluster(Operation::Describe) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        resp.error_message = Some(StrBytes::from_string(format!(
            "{} may not DESCRIBE the cluster",
            ctx.principal
        )));
        return resp;
    }
    let (host, port) = ctx.listener.advertised();
    let mut me = DescribeClusterBroker::default();
    me.broker_id = BrokerId(broker.config().node_id);
    me.host = StrBytes::from_string(host.to_string());
    me.port = i32::from(port);
    resp.brokers = vec![me];
    resp.cluster_id = StrBytes::from_string(broker.cluster_id().to_string());
    resp.controller_id = BrokerId(broker.config().node_id);
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        ctx.authorized_operations(ResourceType::Cluster, CLUSTER_NAME)
    } else {
        i32::MIN
    };
    resp
}
