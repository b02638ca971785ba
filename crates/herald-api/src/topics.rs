//! `/api/v1/topics`: list, create, describe, delete, add partitions.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One topic in the list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    /// The topic's name.
    pub name: String,
    /// The topic id (a UUID, as Kafka's Metadata reports it).
    pub id: String,
    /// How many partitions it has.
    pub partition_count: i32,
    /// Records between log start and high watermark, over all partitions.
    pub records: i64,
    /// Bytes on disk over all partitions.
    pub size_bytes: u64,
}

/// Response of `GET /api/v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicList {
    /// Every topic, by name.
    pub topics: Vec<TopicSummary>,
}

/// One partition of a described topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// The partition's index.
    pub partition: i32,
    /// The first offset still kept.
    pub log_start_offset: i64,
    /// The offset the next record will get.
    pub high_watermark: i64,
    /// Bytes on disk.
    pub size_bytes: u64,
}

/// One effective configuration value of a described topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigValue {
    /// The value, as Kafka's DescribeConfigs gives it.
    pub value: String,
    /// `topic` for an override, `default` for the broker default.
    pub source: String,
}

/// Response of `GET /api/v1/topics/{name}` (and of a create).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDetail {
    /// The topic's name.
    pub name: String,
    /// The topic id.
    pub id: String,
    /// How many partitions it has.
    pub partition_count: i32,
    /// Each partition, by index.
    pub partitions: Vec<PartitionInfo>,
    /// Every configuration key with its effective value.
    pub configs: BTreeMap<String, ConfigValue>,
}

/// Body of `POST /api/v1/topics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTopic {
    /// The new topic's name.
    pub name: String,
    /// Its partition count; the broker's `default_partitions` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partitions: Option<i32>,
    /// Kafka topic configuration (`retention.ms`, ...) overriding the broker defaults.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, ConfigInput>,
}

/// A configuration value as JSON: a string, or a number or boolean taken as its text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ConfigInput {
    /// `"3600000"`.
    Text(String),
    /// `3600000`.
    Int(i64),
    /// `true`.
    Bool(bool),
}

impl ConfigInput {
    /// The value as Kafka's configuration text.
    pub fn into_string(self) -> String {
        match self {
            ConfigInput::Text(s) => s,
            ConfigInput::Int(i) => i.to_string(),
            ConfigInput::Bool(b) => b.to_string(),
        }
    }
}

/// Body of `POST /api/v1/topics/{name}/partitions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddPartitions {
    /// The new total partition count.
    pub count: i32,
}
