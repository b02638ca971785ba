//! DescribeConfigs v1–v4, IncrementalAlterConfigs v0–v1 and the legacy AlterConfigs
//! v0–v2 (KIP-133: the given configs replace all of a topic's overrides) for topics, and
//! a read-only description of the broker's own defaults.

use std::collections::{BTreeMap, HashSet};

use kafka_protocol::{
    ResponseError,
    messages::{
        AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
        describe_configs_response::{
            DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
        },
        incremental_alter_configs_request::AlterConfigsResource,
        incremental_alter_configs_response::AlterConfigsResourceResponse,
    },
    protocol::StrBytes,
};

use herald_security::Operation;

use super::Ctx;
use crate::{
    broker::Broker,
    config::BrokerConfig,
    error::TopicError,
    topic_config::{self, CLEANUP_POLICY, ConfigEntry, ConfigSource, ConfigType},
};

/// Kafka's resource type for topics.
const TOPIC: i8 = 2;
/// Kafka's resource type for brokers.
const BROKER: i8 = 4;

/// Kafka's check of a config request: `operation` (DESCRIBE_CONFIGS or ALTER_CONFIGS)
/// on the topic, or on the cluster for a broker resource; the refusal when it fails.
fn config_denied(ctx: &Ctx<'_>, kind: i8, name: &str, operation: Operation) -> Option<Refusal> {
    let (allowed, code, what) = match kind {
        TOPIC => (
            ctx.may_on_topic(operation, name),
            ResponseError::TopicAuthorizationFailed.code(),
            format!("topic {name:?}"),
        ),
        BROKER => (
            ctx.may_on_cluster(operation),
            ResponseError::ClusterAuthorizationFailed.code(),
            "the cluster".to_string(),
        ),
        _ => return None,
    };
    (!allowed).then(|| {
        (
            code,
            format!("{} may not {operation} on {what}", ctx.principal),
        )
    })
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    let mut s = DescribeConfigsSynonym::default();
    s.name = StrBytes::from_string(name.to_owned());
    s.value = Some(StrBytes::from_string(value.to_owned()));
    s.source = source;
    s
}

/// One topic config as DescribeConfigs reports it. Synonyms go from the most specific
/// to the least, as Kafka lists them: the topic's override, the broker setting from
/// `herald serve`'s configuration, the built-in default; the broker ones under Kafka's
/// broker names (`log.retention.ms` for `retention.ms`).
fn describe_entry(
    ctx: &Ctx<'_>,
    e: ConfigEntry,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default();
    r.name = StrBytes::from_static_str(e.name);
    r.value = Some(StrBytes::from_string(e.value.clone()));
    r.config_source = e.source.kafka_code();
    if synonyms {
        let broker_name = topic_config::broker_synonym(e.name);
        if e.source == ConfigSource::Topic {
            r.synonyms
                .push(synonym(e.name, &e.value, ConfigSource::Topic.kafka_code()));
        }
        if e.default_source == ConfigSource::StaticBroker {
            r.synonyms.push(synonym(
                broker_name,
                &e.default_value,
                ConfigSource::StaticBroker.kafka_code(),
            ));
        }
        r.synonyms.push(synonym(
            broker_name,
            &e.builtin_value,
            ConfigSource::Default.kafka_code(),
        ));
    }
    if ctx.version >= 3 {
        r.config_type = e.config_type.kafka_code();
        if documentation {
            r.documentation = Some(StrBytes::from_static_str(e.documentation));
        }
    }
    r
}

/// One broker setting: Kafka name, value, Herald's built-in default, type.
struct BrokerEntry {
    name: &'static str,
    value: String,
    builtin: String,
    config_type: ConfigType,
    documentation: &'static str,
}

/// The broker's own settings, read-only (they come from `herald serve`'s configuration):
/// the topic defaults under Kafka's broker names, and the broker's other settings.
fn broker_entries(broker: &Broker) -> Vec<BrokerEntry> {
    let c = broker.config();
    let builtin = BrokerConfig::default();
    let mut out: Vec<BrokerEntry> =
        topic_config::describe(broker.topics().defaults(), &BTreeMap::new(), None)
            .into_iter()
            .filter(|e| !topic_config::is_topic_only(e.name))
            .map(|e| BrokerEntry {
                name: topic_config::broker_synonym(e.name),
                value: e.default_value,
                builtin: e.builtin_value,
                config_type: e.config_type,
                documentation: e.documentation,
            })
            .collect();
    let mut plain = |name, value: String, builtin: String, config_type, documentation| {
        out.push(BrokerEntry {
            name,
            value,
            builtin,
            config_type,
            documentation,
        });
    };
    plain(
        "auto.create.topics.enable",
        c.auto_create_topics.to_string(),
        builtin.auto_create_topics.to_string(),
        ConfigType::Boolean,
        "Create a topic when a client asks for its metadata or produces to it.",
    );
    plain(
        "broker.id",
        c.node_id.to_string(),
        builtin.node_id.to_string(),
        ConfigType::Int,
        "This broker's node id.",
    );
    plain(
        "num.partitions",
        c.default_partitions.to_string(),
        builtin.default_partitions.to_string(),
        ConfigType::Int,
        "Partitions of an auto-created topic.",
    );
    plain(
        "socket.request.max.bytes",
        c.max_frame_bytes.to_string(),
        builtin.max_frame_bytes.to_string(),
        ConfigType::Int,
        "Largest request the broker reads.",
    );
    out.sort_by_key(|e| e.name);
    out
}

/// One broker setting as DescribeConfigs reports it: read-only, from the static
/// configuration when it differs from the built-in default.
fn describe_broker_entry(
    ctx: &Ctx<'_>,
    e: BrokerEntry,
    synonyms: bool,
    documentation: bool,
) -> DescribeConfigsResourceResult {
    let mut c = DescribeConfigsResourceResult::default();
    c.name = StrBytes::from_static_str(e.name);
    c.value = Some(StrBytes::from_string(e.value.clone()));
    c.read_only = true;
    let set = e.value != e.builtin;
    c.config_source = if set {
        ConfigSource::StaticBroker
    } else {
        ConfigSource::Default
    }
    .kafka_code();
    if synonyms {
        if set {
            c.synonyms.push(synonym(
                e.name,
                &e.value,
                ConfigSource::StaticBroker.kafka_code(),
            ));
        }
        c.synonyms.push(synonym(
            e.name,
            &e.builtin,
            ConfigSource::Default.kafka_code(),
        ));
    }
    if ctx.version >= 3 {
        c.config_type = e.config_type.kafka_code();
        if documentation {
            c.documentation = Some(StrBytes::from_static_str(e.documentation));
        }
    }
    c
}

/// DescribeConfigs.
pub(crate) async fn describe_configs(
    ctx: Ctx<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = ctx.broker;
    let documentation = ctx.version >= 3 && req.include_documentation;
    let mut resp = DescribeConfigsResponse::default();
    for resource in req.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name.clone();
        let keys: Option<Vec<String>> = resource
            .configuration_keys
            .as_ref()
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        if let Some((code, message)) = config_denied(
            &ctx,
            resource.resource_type,
            &resource.resource_name,
            Operation::DescribeConfigs,
        ) {
            r.error_code = code;
            r.error_message = Some(StrBytes::from_string(message));
            resp.results.push(r);
            continue;
        }
        match resource.resource_type {
            TOPIC => match broker.topics().get(&resource.resource_name) {
                Some(topic) => {
                    r.configs = topic_config::describe(
                        broker.topics().defaults(),
                        &topic.configs(),
                        keys.as_deref(),
                    )
                    .into_iter()
                    .map(|e| describe_entry(&ctx, e, req.include_synonyms, documentation))
                    .collect();
                }
                None => {
                    r.error_code = ResponseError::UnknownTopicOrPartition.code();
                    r.error_message = Some(StrBytes::from_string(format!(
                        "unknown topic {:?}",
                        resource.resource_name.as_str()
                    )));
                }
            },
            BROKER
                if resource.resource_name.is_empty()
                    || resource.resource_name.as_str() == broker.config().node_id.to_string() =>
            {
                r.configs = broker_entries(broker)
                    .into_iter()
                    .filter(|e| keys.as_ref().is_none_or(|k| k.iter().any(|k| k == e.name)))
                    .map(|e| describe_broker_entry(&ctx, e, req.include_synonyms, documentation))
                    .collect();
            }
            other => {
                r.error_code = ResponseError::InvalidRequest.code();
                r.error_message = Some(StrBytes::from_string(format!(
                    "cannot describe resource type {other} named {:?}; Herald describes topics and broker {}",
                    resource.resource_name.as_str(),
                    broker.config().node_id
                )));
            }
        }
        resp.results.push(r);
    }
    resp
}

/// Applies the operations of one resource to a topic's current overrides.
fn altered(
    current: BTreeMap<String, String>,
    resource: &AlterConfigsResource,
) -> Result<BTreeMap<String, String>, TopicError> {
    let mut seen = HashSet::new();
    let mut next = current;
    for op in &resource.configs {
        let key = op.name.as_str();
        if !seen.insert(key) {
            return Err(TopicError::InvalidConfig(format!(
                "{key:?} appears more than once"
            )));
        }
        if !topic_config::is_known_key(key) {
            return Err(TopicError::InvalidConfig(format!(
                "unknown topic config {key:?}"
            )));
        }
        let value = op.value.as_ref().map(|v| v.to_string());
        match (op.config_operation, value) {
            (SET, Some(v)) => {
                next.insert(key.to_string(), v);
            }
            (SET, None) => {
                return Err(TopicError::InvalidConfig(format!(
                    "SET {key:?} needs a value"
                )));
            }
            (DELETE, _) => {
                next.remove(key);
            }
            // cleanup.policy is a list; the only member Herald knows is "delete".
            (APPEND, Some(v)) if key == CLEANUP_POLICY && v == "delete" => {
                next.insert(key.to_string(), v);
            }
            (op, _) => {
                return Err(TopicError::InvalidConfig(format!(
                    "operation {op} on {key:?} is not supported (SET and DELETE are; APPEND only adds \"delete\" to cleanup.policy)"
                )));
            }
        }
    }
    Ok(next)
}

/// A refused resource: the Kafka error code and a message.
type Refusal = (i16, String);

/// Alters topic or broker resource `(kind, name)`: for a topic, `next` computes its new
/// overrides from the current ones, which are then validated and stored (unless
/// `validate_only`).
async fn alter_resource(
    broker: &Broker,
    kind: i8,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
) -> Result<(), Refusal> {
    match kind {
        TOPIC => {
            let topic = broker.topics().get(name).ok_or_else(|| {
                (
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("unknown topic {name:?}"),
                )
            })?;
            let next = next(topic.configs()).map_err(|e| (e.kafka_code(), e.to_string()))?;
            let n = name.to_owned();
            match broker
                .with_topics(move |t| t.set_configs(&n, next, validate_only))
                .await
            {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err((e.kafka_code(), e.to_string())),
                Err(e) => Err((ResponseError::KafkaStorageError.code(), e.to_string())),
            }
        }
        BROKER => Err((
            ResponseError::InvalidRequest.code(),
            "broker settings are static in Herald: change the configuration file".into(),
        )),
        other => Err((
            ResponseError::InvalidRequest.code(),
            format!("cannot alter resource type {other}"),
        )),
    }
}

/// [`alter_resource`] once ALTER_CONFIGS on the resource is allowed.
async fn checked_alter(
    ctx: &Ctx<'_>,
    kind: i8,
    name: &str,
    validate_only: bool,
    next: impl FnOnce(BTreeMap<String, String>) -> Result<BTreeMap<String, String>, TopicError>,
) -> Result<(), Refusal> {
    if let Some(refusal) = config_denied(ctx, kind, name, Operation::AlterConfigs) {
        return Err(refusal);
    }
    alter_resource(ctx.broker, kind, name, validate_only, next).await
}

/// Logs a refusal and gives its code and message for the response.
fn refusal(name: &str, result: Result<(), Refusal>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (0, None),
        Err((code, message)) => {
            tracing::info!(resource = %name, error = %message, "alter configs refused");
            (code, Some(StrBytes::from_string(message)))
        }
    }
}

/// IncrementalAlterConfigs.
pub(crate) async fn incremental_alter_configs(
    ctx: Ctx<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let result = checked_alter(
            &ctx,
            resource.resource_type,
            &name,
            req.validate_only,
            |current| altered(current, &resource),
        )
        .await;
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        (r.error_code, r.error_message) = refusal(&name, result);
        resp.responses.push(r);
    }
    resp
}

/// The legacy AlterConfigs: a topic's overrides become exactly the configs given; every
/// config not given goes back to its default (Kafka's KIP-133 semantics). A config named
/// twice, an unknown one or one without a value is refused, and nothing changes.
pub(crate) async fn alter_configs(ctx: Ctx<'_>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut resp = AlterConfigsResponse::default();
    for resource in req.resources {
        let name = resource.resource_name.to_string();
        let result = checked_alter(
            &ctx,
            resource.resource_type,
            &name,
            req.validate_only,
            |_current| replaced(&resource.configs),
        )
        .await;
        let mut r =
            kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse::default(
            );
        r.resource_type = resource.resource_type;
        r.resource_name = resource.resource_name;
        (r.error_code, r.error_message) = refusal(&name, result);
        resp.responses.push(r);
    }
    resp
}

/// The overrides a legacy AlterConfigs sets.
fn replaced(
    configs: &[kafka_protocol::messages::alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, String>, TopicError> {
    let mut next = BTreeMap::new();
    for c in configs {
        let key = c.name.to_string();
        if !topic_config::is_known_key(&key) {
            return Err(TopicError::InvalidConfig(format!(
                "unknown topic config {key:?}"
            )));
        }
        let Some(value) = &c.value else {
            return Err(TopicError::InvalidConfig(format!(
                "{key:?} has no value (AlterConfigs sets every override it names; leave a \
                 config out to return it to its default)"
            )));
        };
        if next.insert(key.clone(), value.to_string()).is_some() {
            return Err(TopicError::InvalidConfig(format!(
                "{key:?} appears more than once"
            )));
        }
    }
    Ok(next)
}
