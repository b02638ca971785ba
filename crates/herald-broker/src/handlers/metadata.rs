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
    let (host, port) = broker.advertised_address();
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
        resp.cluster_authorized_operations = CLUSTER_OPERATIONS;
    }
    // v0 has no null topic list: an empty one means "all topics".
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    if all {
        resp.topics = broker
            .topics()
            .list()
            .iter()
            .map(|t| describe_topic(&ctx, t))
            .collect();
        return resp;
    }
    let allow_create = ctx.version < 4 || req.allow_auto_topic_creation;
    for wanted in req.topics.unwrap_or_default() {
        // v10+ may name a topic by id; the name is then null (or, from some clients, empty).
        let by_id = ctx.version >= 10
            && !wanted.topic_id.is_nil()
            && wanted.name.as_ref().is_none_or(|n| n.is_empty());
        let entry = match wanted.name.filter(|_| !by_id) {
            Some(name) => match get_or_create(broker, &name, allow_create).await {
                Ok(topic) => describe_topic(&ctx, &topic),
                Err(e) => {
                    if !matches!(e, TopicError::Unknown(_)) {
                        tracing::info!(topic = %name.0, error = %e, "metadata: topic not available");
                    }
                    topic_error(Some(name), e.kafka_code())
                }
            },
            None => match broker.topics().get_by_id(wanted.topic_id) {
                Some(topic) => describe_topic(&ctx, &topic),
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

/// The cluster operations DescribeCluster reports as authorized when asked: with no
/// authorizer every one is (ALTER, ALTER_CONFIGS, CLUSTER_ACTION, CREATE, DESCRIBE,
/// DESCRIBE_CONFIGS, IDEMPOTENT_WRITE), as a bit per Kafka operation code.
const CLUSTER_OPERATIONS: i32 = 1 << 5 | 1 << 7 | 1 << 8 | 1 << 9 | 1 << 10 | 1 << 11 | 1 << 12;

/// DescribeCluster v0–v1 (KIP-700): this broker, the cluster id, the controller (this
/// node). v1's endpoint type 2 (controllers) is UNSUPPORTED_ENDPOINT_TYPE, as a Kafka
/// broker answers it.
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
    let (host, port) = broker.advertised_address();
    let mut me = DescribeClusterBroker::default();
    me.broker_id = BrokerId(broker.config().node_id);
    me.host = StrBytes::from_string(host.to_string());
    me.port = i32::from(port);
    resp.brokers = vec![me];
    resp.cluster_id = StrBytes::from_string(broker.cluster_id().to_string());
    resp.controller_id = BrokerId(broker.config().node_id);
    resp.cluster_authorized_operations = if req.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        i32::MIN
    };
    resp
}
