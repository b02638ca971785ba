//! Per-topic configuration in Kafka's names (`retention.ms`, `max.message.bytes`, ...)
//! and how it maps onto [`LogConfig`].
//!
//! A topic stores only its overrides, as Kafka strings; its effective [`LogConfig`] is the
//! broker default with the overrides applied. That way a changed broker default reaches
//! every topic that did not override it.

use std::{collections::BTreeMap, time::Duration};

use herald_format::records::Compression;
use herald_log::{Durability, LogConfig};

/// `retention.ms`: age after which whole segments are deleted; -1 keeps forever.
pub(crate) const RETENTION_MS: &str = "retention.ms";
/// `retention.bytes`: size above which the oldest segments are deleted; -1 for no limit.
pub(crate) const RETENTION_BYTES: &str = "retention.bytes";
/// `segment.bytes`: size at which a segment rolls.
pub(crate) const SEGMENT_BYTES: &str = "segment.bytes";
/// `segment.ms`: age at which a segment rolls.
pub(crate) const SEGMENT_MS: &str = "segment.ms";
/// `max.message.bytes`: largest record batch a producer may send.
pub(crate) const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
/// `cleanup.policy`: only `delete` is supported.
pub(crate) const CLEANUP_POLICY: &str = "cleanup.policy";
/// `herald.durability`: `every-append`, `group-commit` or `none`.
pub(crate) const DURABILITY: &str = "herald.durability";
/// `compression.type`: `producer` (keep the producer's codec, the default) or the codec
/// every batch is stored with: `uncompressed`, `gzip`, `snappy`, `lz4`, `zstd`.
pub(crate) const COMPRESSION_TYPE: &str = "compression.type";
/// `message.timestamp.before.max.ms` (KIP-937): how far in the past a CreateTime
/// record's timestamp may be, against the broker's clock; the default allows any.
pub(crate) const TIMESTAMP_BEFORE_MAX_MS: &str = "message.timestamp.before.max.ms";
/// `message.timestamp.after.max.ms` (KIP-937): how far in the future it may be.
pub(crate) const TIMESTAMP_AFTER_MAX_MS: &str = "message.timestamp.after.max.ms";
/// `message.timestamp.difference.max.ms`: the bound of both directions before KIP-937,
/// deprecated by Kafka 3.6 but still honoured: it applies to each direction whose own
/// bound is not set.
pub(crate) const TIMESTAMP_DIFFERENCE_MAX_MS: &str = "message.timestamp.difference.max.ms";
/// `message.timestamp.type`: `CreateTime` (the producer's timestamps, the default) or
/// `LogAppendTime` (the broker stamps each batch with its append time).
pub(crate) const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";

/// `min.insync.replicas`: with acks=all, a produce is refused with NOT_ENOUGH_REPLICAS
/// unless this many replicas are in sync. Herald keeps one replica, so any value above 1
/// refuses acks=all produces, as a Kafka topic with too few in-sync replicas does.
pub(crate) const MIN_INSYNC_REPLICAS: &str = "min.insync.replicas";
/// `message.format.version`: accepted and ignored, as Kafka 3.x does once the
/// inter-broker protocol is 3.0 or later (every batch is stored in the v2 format).
pub(crate) const MESSAGE_FORMAT_VERSION: &str = "message.format.version";

/// `delete.retention.ms`: how long a compacted topic keeps tombstones. The four
/// compaction settings are accepted on every topic, as Kafka does, and shape only
/// compacted topics (`cleanup.policy=compact`, issue 14).
pub(crate) const DELETE_RETENTION_MS: &str = "delete.retention.ms";
/// `min.compaction.lag.ms`: the least time a record stays uncompacted.
pub(crate) const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
/// `max.compaction.lag.ms`: the longest time a record may stay uncompacted.
pub(crate) const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";
/// `min.cleanable.dirty.ratio`: the share of uncompacted log that triggers a clean.
pub(crate) const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";

/// `confluent.key.schema.validation`: `true` makes the broker refuse records whose key
/// does not carry a schema id registered under `<topic>-key` (see [`crate::validation`]).
pub(crate) const KEY_SCHEMA_VALIDATION: &str = "confluent.key.schema.validation";
/// `confluent.value.schema.validation`: as [`KEY_SCHEMA_VALIDATION`], for values and the
/// subject `<topic>-value`.
pub(crate) const VALUE_SCHEMA_VALIDATION: &str = "confluent.value.schema.validation";

/// Every topic configuration key Herald knows, in the order DescribeConfigs lists them.
pub(crate) const KEYS: [&str; 20] = [
    CLEANUP_POLICY,
    COMPRESSION_TYPE,
    KEY_SCHEMA_VALIDATION,
    VALUE_SCHEMA_VALIDATION,
    DELETE_RETENTION_MS,
    DURABILITY,
    MAX_COMPACTION_LAG_MS,
    MAX_MESSAGE_BYTES,
    MESSAGE_FORMAT_VERSION,
    TIMESTAMP_AFTER_MAX_MS,
    TIMESTAMP_BEFORE_MAX_MS,
    TIMESTAMP_DIFFERENCE_MAX_MS,
    MESSAGE_TIMESTAMP_TYPE,
    MIN_CLEANABLE_DIRTY_RATIO,
    MIN_COMPACTION_LAG_MS,
    MIN_INSYNC_REPLICAS,
    RETENTION_BYTES,
    RETENTION_MS,
    SEGMENT_BYTES,
    SEGMENT_MS,
];

/// The broker setting that gives a topic key its default, by Kafka's name (the name
/// DescribeConfigs synonyms carry): `retention.ms` comes from `log.retention.ms`.
pub(crate) fn broker_synonym(key: &str) -> &'static str {
    match key {
        CLEANUP_POLICY => "log.cleanup.policy",
        COMPRESSION_TYPE => "compression.type",
        MAX_MESSAGE_BYTES => "message.max.bytes",
        MESSAGE_FORMAT_VERSION => "log.message.format.version",
        TIMESTAMP_AFTER_MAX_MS => "log.message.timestamp.after.max.ms",
        TIMESTAMP_BEFORE_MAX_MS => "log.message.timestamp.before.max.ms",
        TIMESTAMP_DIFFERENCE_MAX_MS => "log.message.timestamp.difference.max.ms",
        MESSAGE_TIMESTAMP_TYPE => "log.message.timestamp.type",
        MIN_INSYNC_REPLICAS => "min.insync.replicas",
        DELETE_RETENTION_MS => "log.cleaner.delete.retention.ms",
        MIN_COMPACTION_LAG_MS => "log.cleaner.min.compaction.lag.ms",
        MAX_COMPACTION_LAG_MS => "log.cleaner.max.compaction.lag.ms",
        MIN_CLEANABLE_DIRTY_RATIO => "log.cleaner.min.cleanable.ratio",
        RETENTION_BYTES => "log.retention.bytes",
        RETENTION_MS => "log.retention.ms",
        SEGMENT_BYTES => "log.segment.bytes",
        SEGMENT_MS => "log.roll.ms",
        DURABILITY => "herald.durability",
        KEY_SCHEMA_VALIDATION => KEY_SCHEMA_VALIDATION,
        VALUE_SCHEMA_VALIDATION => VALUE_SCHEMA_VALIDATION,
        _ => "",
    }
}

/// Where a described value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigSource {
    /// The broker default (Kafka's `DEFAULT_CONFIG`, 5).
    Default,
    /// An override set on the topic (Kafka's `DYNAMIC_TOPIC_CONFIG`, 1).
    Topic,
    /// A broker default set in `herald serve`'s configuration (Kafka's
    /// `STATIC_BROKER_CONFIG`, 4).
    StaticBroker,
}

impl ConfigSource {
    /// Kafka's numeric config source.
    pub(crate) fn kafka_code(self) -> i8 {
        match self {
            ConfigSource::Default => 5,
            ConfigSource::Topic => 1,
            ConfigSource::StaticBroker => 4,
        }
    }
}

/// Kafka's config value type (DescribeConfigs v3+).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigType {
    /// A string.
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A comma-separated list.
    List,
    /// `true` or `false`.
    Boolean,
    /// A floating-point number.
    Double,
}

impl ConfigType {
    /// Kafka's numeric config type.
    pub(crate) fn kafka_code(self) -> i8 {
        match self {
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::List => 7,
            ConfigType::Boolean => 1,
            ConfigType::Double => 6,
        }
    }
}

/// One described configuration value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigEntry {
    /// Kafka name of the setting.
    pub name: &'static str,
    /// Current value, as Kafka would print it.
    pub value: String,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// The broker default, for DescribeConfigs synonyms.
    pub default_value: String,
    /// Where the broker default comes from: `Default`, or `StaticBroker` when
    /// `herald serve`'s configuration sets it.
    pub default_source: ConfigSource,
    /// Herald's built-in default (what the broker default is when nothing sets it).
    pub builtin_value: String,
    /// Value type.
    pub config_type: ConfigType,
    /// One line saying what it does.
    pub documentation: &'static str,
}

fn key_info(key: &str) -> Option<(&'static str, ConfigType, &'static str)> {
    Some(match key {
        RETENTION_MS => (
            RETENTION_MS,
            ConfigType::Long,
            "Age in ms after which old segments are deleted; -1 keeps them forever.",
        ),
        RETENTION_BYTES => (
            RETENTION_BYTES,
            ConfigType::Long,
            "Size in bytes above which the oldest segments are deleted; -1 for no limit.",
        ),
        SEGMENT_BYTES => (
            SEGMENT_BYTES,
            ConfigType::Int,
            "Segment size in bytes at which the log rolls a new segment.",
        ),
        SEGMENT_MS => (
            SEGMENT_MS,
            ConfigType::Long,
            "Age in ms at which the log rolls a new segment.",
        ),
        MAX_MESSAGE_BYTES => (
            MAX_MESSAGE_BYTES,
            ConfigType::Int,
            "Largest record batch size in bytes a producer may send.",
        ),
        CLEANUP_POLICY => (
            CLEANUP_POLICY,
            ConfigType::List,
            "Retention policy; Herald supports only delete.",
        ),
        DURABILITY => (
            DURABILITY,
            ConfigType::String,
            "When an append is durable: every-append, group-commit or none.",
        ),
        COMPRESSION_TYPE => (
            COMPRESSION_TYPE,
            ConfigType::String,
            "Codec batches are stored with: producer keeps the producer's; uncompressed, gzip, snappy, lz4 or zstd recompresses on append.",
        ),
        TIMESTAMP_BEFORE_MAX_MS => (
            TIMESTAMP_BEFORE_MAX_MS,
            ConfigType::Long,
            "Largest age in ms of a CreateTime record's timestamp against the broker's clock; older batches are refused.",
        ),
        TIMESTAMP_AFTER_MAX_MS => (
            TIMESTAMP_AFTER_MAX_MS,
            ConfigType::Long,
            "Largest lead in ms of a CreateTime record's timestamp over the broker's clock; later batches are refused.",
        ),
        TIMESTAMP_DIFFERENCE_MAX_MS => (
            TIMESTAMP_DIFFERENCE_MAX_MS,
            ConfigType::Long,
            "Deprecated (KIP-937): the bound in ms of each direction whose before/after bound is not set.",
        ),
        MESSAGE_TIMESTAMP_TYPE => (
            MESSAGE_TIMESTAMP_TYPE,
            ConfigType::String,
            "CreateTime keeps the producer's timestamps; LogAppendTime stamps each batch with the broker's append time.",
        ),
        DELETE_RETENTION_MS => (
            DELETE_RETENTION_MS,
            ConfigType::Long,
            "How long in ms a compacted topic keeps tombstones; shapes compacted topics only.",
        ),
        MIN_COMPACTION_LAG_MS => (
            MIN_COMPACTION_LAG_MS,
            ConfigType::Long,
            "Least time in ms a record stays uncompacted; shapes compacted topics only.",
        ),
        MAX_COMPACTION_LAG_MS => (
            MAX_COMPACTION_LAG_MS,
            ConfigType::Long,
            "Longest time in ms a record may stay uncompacted; shapes compacted topics only.",
        ),
        MIN_CLEANABLE_DIRTY_RATIO => (
            MIN_CLEANABLE_DIRTY_RATIO,
            ConfigType::Double,
            "Share of uncompacted log that triggers a clean; shapes compacted topics only.",
        ),
        MIN_INSYNC_REPLICAS => (
            MIN_INSYNC_REPLICAS,
            ConfigType::Int,
            "Replicas that must be in sync for an acks=all produce; Herald keeps one, so above 1 such produces get NOT_ENOUGH_REPLICAS.",
        ),
        MESSAGE_FORMAT_VERSION => (
            MESSAGE_FORMAT_VERSION,
            ConfigType::String,
            "Accepted and ignored, as by Kafka 3.x: batches are stored in the v2 format.",
        ),
        KEY_SCHEMA_VALIDATION => (
            KEY_SCHEMA_VALIDATION,
            ConfigType::Boolean,
            "Refuse records whose key lacks a schema id registered under <topic>-key.",
        ),
        VALUE_SCHEMA_VALIDATION => (
            VALUE_SCHEMA_VALIDATION,
            ConfigType::Boolean,
            "Refuse records whose value lacks a schema id registered under <topic>-value.",
        ),
        _ => return None,
    })
}

/// Whether `key` is set per topic only, with no broker-wide default (the schema
/// validation switches, as on Confluent Server).
pub(crate) fn is_topic_only(key: &str) -> bool {
    matches!(key, KEY_SCHEMA_VALIDATION | VALUE_SCHEMA_VALIDATION)
}

/// Whether `key` is a topic setting Herald knows.
pub(crate) fn is_known_key(key: &str) -> bool {
    key_info(key).is_some()
}

/// Parses a durability name; `group-commit` keeps the group-commit tuning of `current`
/// when it already is group commit.
pub(crate) fn parse_durability(name: &str, current: Durability) -> Result<Durability, String> {
    match name {
        "every-append" => Ok(Durability::EveryAppend),
        "group-commit" => Ok(match current {
            d @ Durability::GroupCommit { .. } => d,
            _ => Durability::group_commit(),
        }),
        "none" => Ok(Durability::Never),
        other => Err(format!(
            "unknown durability {other:?}: use every-append, group-commit or none"
        )),
    }
}

fn durability_name(d: &Durability) -> &'static str {
    match d {
        Durability::EveryAppend => "every-append",
        Durability::GroupCommit { .. } => "group-commit",
        _ => "none",
    }
}

fn parse_i64(key: &str, value: &str, min: i64, max: i64) -> Result<i64, String> {
    let v: i64 = value
        .trim()
        .parse()
        .map_err(|_| format!("{key}: {value:?} is not an integer"))?;
    if v < min || v > max {
        return Err(format!("{key}: {v} is outside [{min}, {max}]"));
    }
    Ok(v)
}

fn ms_or_none(v: i64) -> Option<Duration> {
    (v >= 0).then(|| Duration::from_millis(v as u64))
}

/// Applies one `key = value` to `config`, refusing unknown keys and bad values.
pub(crate) fn apply_one(config: &mut LogConfig, key: &str, value: &str) -> Result<(), String> {
    match key {
        RETENTION_MS => config.retention_age = ms_or_none(parse_i64(key, value, -1, i64::MAX)?),
        RETENTION_BYTES => {
            let v = parse_i64(key, value, -1, i64::MAX)?;
            config.retention_bytes = (v >= 0).then_some(v as u64);
        }
        SEGMENT_BYTES => {
            config.segment_bytes = parse_i64(
                key,
                value,
                1024,
                herald_log::config::MAX_SEGMENT_BYTES as i64,
            )? as u64
        }
        SEGMENT_MS => config.segment_age = ms_or_none(parse_i64(key, value, 1, i64::MAX)?),
        MAX_MESSAGE_BYTES => {
            config.max_batch_bytes = parse_i64(key, value, 0, i64::from(i32::MAX))? as u32
        }
        CLEANUP_POLICY => {
            if value.trim() != "delete" {
                return Err(format!(
                    "{key}: {value:?} is not supported; Herald supports only \"delete\""
                ));
            }
        }
        DURABILITY => config.durability = parse_durability(value.trim(), config.durability)?,
        MESSAGE_TIMESTAMP_TYPE => {
            config.log_append_time = match value.trim() {
                "CreateTime" => false,
                "LogAppendTime" => true,
                other => {
                    return Err(format!(
                        "{key}: {other:?} is not CreateTime or LogAppendTime"
                    ));
                }
            }
        }
        // Not log settings: checked here, read by the produce path (schema_validation,
        // compression).
        KEY_SCHEMA_VALIDATION | VALUE_SCHEMA_VALIDATION => {
            parse_bool(key, value)?;
        }
        COMPRESSION_TYPE => {
            parse_compression(value)?;
        }
        TIMESTAMP_BEFORE_MAX_MS | TIMESTAMP_AFTER_MAX_MS | TIMESTAMP_DIFFERENCE_MAX_MS => {
            parse_i64(key, value, 0, i64::MAX)?;
        }
        MIN_INSYNC_REPLICAS => {
            parse_i64(key, value, 1, i64::from(i32::MAX))?;
        }
        DELETE_RETENTION_MS | MIN_COMPACTION_LAG_MS => {
            parse_i64(key, value, 0, i64::MAX)?;
        }
        MAX_COMPACTION_LAG_MS => {
            parse_i64(key, value, 1, i64::MAX)?;
        }
        MIN_CLEANABLE_DIRTY_RATIO => {
            let ratio: f64 = value
                .trim()
                .parse()
                .map_err(|_| format!("{key}: {value:?} is not a number"))?;
            if !(0.0..=1.0).contains(&ratio) {
                return Err(format!("{key}: {ratio} is outside [0, 1]"));
            }
        }
        MESSAGE_FORMAT_VERSION => parse_message_format_version(value)?,
        other => return Err(format!("unknown topic config {other:?}")),
    }
    Ok(())
}

/// Kafka's `message.format.version` values: a release (`0.10.2`, `2.8`, `3.0`), with
/// an optional internal version (`3.0-IV1`).
fn parse_message_format_version(value: &str) -> Result<(), String> {
    let v = value.trim();
    let (release, iv) = v.split_once("-IV").map_or((v, None), |(r, i)| (r, Some(i)));
    let parts: Vec<&str> = release.split('.').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // Kafka names old versions with four parts (0.10.0.0) and new ones with two or three.
    if (2..=4).contains(&parts.len()) && parts.iter().all(|p| digits(p)) && iv.is_none_or(digits) {
        Ok(())
    } else {
        Err(format!(
            "{MESSAGE_FORMAT_VERSION}: {value:?} is not a Kafka version such as 2.8 or 3.0-IV1"
        ))
    }
}

/// The topic's `min.insync.replicas` (1 when not set).
pub(crate) fn min_insync_replicas(overrides: &BTreeMap<String, String>) -> i64 {
    overrides
        .get(MIN_INSYNC_REPLICAS)
        .and_then(|v| parse_i64(MIN_INSYNC_REPLICAS, v, 1, i64::from(i32::MAX)).ok())
        .unwrap_or(1)
}

/// How far a CreateTime record's timestamp may be behind and ahead of the broker's
/// clock, when a topic limits it (KIP-937); `None` when it does not, or when the topic
/// stamps append times (the producer's timestamps are then not kept).
/// `stamped_by_default` is the broker default of `message.timestamp.type`.
pub(crate) fn timestamp_bounds(
    overrides: &BTreeMap<String, String>,
    stamped_by_default: bool,
) -> Option<(i64, i64)> {
    let limit = |key| {
        overrides
            .get(key)
            .and_then(|v| parse_i64(key, v, 0, i64::MAX).ok())
            .unwrap_or(i64::MAX)
    };
    let stamped = overrides
        .get(MESSAGE_TIMESTAMP_TYPE)
        .map_or(stamped_by_default, |v| v.trim() == "LogAppendTime");
    // Kafka's rule: a direction's own bound when set, else the deprecated difference.
    let difference = limit(TIMESTAMP_DIFFERENCE_MAX_MS);
    let or_difference = |v| if v == i64::MAX { difference } else { v };
    let bounds = (
        or_difference(limit(TIMESTAMP_BEFORE_MAX_MS)),
        or_difference(limit(TIMESTAMP_AFTER_MAX_MS)),
    );
    (!stamped && bounds != (i64::MAX, i64::MAX)).then_some(bounds)
}

/// A `compression.type` value: `None` for `producer`.
fn parse_compression(value: &str) -> Result<Option<Compression>, String> {
    Ok(Some(match value.trim() {
        "producer" => return Ok(None),
        "uncompressed" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => {
            return Err(format!(
                "{COMPRESSION_TYPE}: {other:?} is not producer, uncompressed, gzip, snappy, lz4 or zstd"
            ));
        }
    }))
}

/// The codec a topic stores its batches with, from its overrides; `None` keeps the
/// producer's (overrides that fail to parse were refused when they were set).
pub(crate) fn compression(overrides: &BTreeMap<String, String>) -> Option<Compression> {
    overrides
        .get(COMPRESSION_TYPE)
        .and_then(|v| parse_compression(v).ok().flatten())
}

fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{key}: {value:?} is not true or false")),
    }
}

/// Which parts of a topic's records must carry a registered schema id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Validation {
    /// `confluent.key.schema.validation`.
    pub key: bool,
    /// `confluent.value.schema.validation`.
    pub value: bool,
}

impl Validation {
    /// Whether anything is validated.
    pub fn any(self) -> bool {
        self.key || self.value
    }
}

/// Which parts of a topic's records the broker validates against the schema registry
/// (overrides that fail to parse were refused when they were set, and count as off).
pub(crate) fn schema_validation(overrides: &BTreeMap<String, String>) -> Validation {
    let on = |key| {
        overrides
            .get(key)
            .is_some_and(|v| parse_bool(key, v).unwrap_or(false))
    };
    Validation {
        key: on(KEY_SCHEMA_VALIDATION),
        value: on(VALUE_SCHEMA_VALIDATION),
    }
}

/// The effective log configuration of a topic: `defaults` with `overrides` applied, and
/// checked as a whole (for example `max.message.bytes` must fit in `segment.bytes`).
pub(crate) fn effective(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<LogConfig, String> {
    let mut config = defaults.clone();
    for (k, v) in overrides {
        apply_one(&mut config, k, v)?;
    }
    config.validate()?;
    Ok(config)
}

/// The value of `key` in `config`, as Kafka prints it.
fn value_of(config: &LogConfig, key: &str) -> String {
    let ms = |d: Option<Duration>, none: i64| {
        d.map_or(none, |d| d.as_millis().min(i64::MAX as u128) as i64)
            .to_string()
    };
    match key {
        RETENTION_MS => ms(config.retention_age, -1),
        RETENTION_BYTES => config
            .retention_bytes
            .map_or(-1, |b| b.min(i64::MAX as u64) as i64)
            .to_string(),
        SEGMENT_BYTES => config.segment_bytes.to_string(),
        SEGMENT_MS => ms(config.segment_age, i64::MAX),
        MAX_MESSAGE_BYTES => config.max_batch_bytes.to_string(),
        CLEANUP_POLICY => "delete".to_string(),
        DURABILITY => durability_name(&config.durability).to_string(),
        MESSAGE_TIMESTAMP_TYPE => if config.log_append_time {
            "LogAppendTime"
        } else {
            "CreateTime"
        }
        .to_string(),
        KEY_SCHEMA_VALIDATION | VALUE_SCHEMA_VALIDATION => "false".to_string(),
        COMPRESSION_TYPE => "producer".to_string(),
        TIMESTAMP_BEFORE_MAX_MS | TIMESTAMP_AFTER_MAX_MS | TIMESTAMP_DIFFERENCE_MAX_MS => {
            i64::MAX.to_string()
        }
        MIN_INSYNC_REPLICAS => "1".to_string(),
        DELETE_RETENTION_MS => "86400000".to_string(),
        MIN_COMPACTION_LAG_MS => "0".to_string(),
        MAX_COMPACTION_LAG_MS => i64::MAX.to_string(),
        MIN_CLEANABLE_DIRTY_RATIO => "0.5".to_string(),
        MESSAGE_FORMAT_VERSION => "3.0-IV1".to_string(),
        _ => String::new(),
    }
}

/// Describes `keys` (all known keys when `None`) of a topic. Unknown keys are skipped,
/// as Kafka does.
pub(crate) fn describe(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
    keys: Option<&[String]>,
) -> Vec<ConfigEntry> {
    let effective = effective(defaults, overrides).unwrap_or_else(|_| defaults.clone());
    let wanted: Vec<&str> = match keys {
        Some(keys) => keys.iter().map(String::as_str).collect(),
        None => KEYS.to_vec(),
    };
    wanted
        .into_iter()
        .filter_map(key_info)
        .map(|(name, config_type, documentation)| {
            let default_value = value_of(defaults, name);
            let builtin_value = value_of(&LogConfig::default(), name);
            let default_source = if default_value == builtin_value {
                ConfigSource::Default
            } else {
                ConfigSource::StaticBroker
            };
            ConfigEntry {
                name,
                value: match name {
                    KEY_SCHEMA_VALIDATION | VALUE_SCHEMA_VALIDATION => overrides
                        .get(name)
                        .map_or_else(|| "false".to_string(), |v| v.trim().to_ascii_lowercase()),
                    COMPRESSION_TYPE
                    | TIMESTAMP_BEFORE_MAX_MS
                    | TIMESTAMP_AFTER_MAX_MS
                    | TIMESTAMP_DIFFERENCE_MAX_MS
                    | MIN_INSYNC_REPLICAS
                    | DELETE_RETENTION_MS
                    | MIN_COMPACTION_LAG_MS
                    | MAX_COMPACTION_LAG_MS
                    | MIN_CLEANABLE_DIRTY_RATIO
                    | MESSAGE_FORMAT_VERSION => overrides
                        .get(name)
                        .map_or_else(|| default_value.clone(), |v| v.trim().to_string()),
                    _ => value_of(&effective, name),
                },
                source: if overrides.contains_key(name) {
                    ConfigSource::Topic
                } else {
                    default_source
                },
                default_value,
                default_source,
                builtin_value,
                config_type,
                documentation,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn overrides(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_map_onto_log_config() {
        let c = effective(
            &LogConfig::default(),
            &overrides(&[
                (RETENTION_MS, "-1"),
                (RETENTION_BYTES, "5000"),
                (SEGMENT_BYTES, "1048576"),
                (SEGMENT_MS, "60000"),
                (MAX_MESSAGE_BYTES, "2048"),
                (DURABILITY, "every-append"),
                (CLEANUP_POLICY, "delete"),
            ]),
        )
        .unwrap();
        assert_eq!(c.retention_age, None);
        assert_eq!(c.retention_bytes, Some(5000));
        assert_eq!(c.segment_bytes, 1 << 20);
        assert_eq!(c.segment_age, Some(Duration::from_secs(60)));
        assert_eq!(c.max_batch_bytes, 2048);
        assert_eq!(c.durability, Durability::EveryAppend);
    }

    #[test]
    fn bad_values_are_refused_with_the_key_named() {
        for (k, v) in [
            (RETENTION_MS, "soon"),
            (RETENTION_MS, "-2"),
            (SEGMENT_BYTES, "10"),
            (CLEANUP_POLICY, "compact"),
            (DURABILITY, "maybe"),
            (VALUE_SCHEMA_VALIDATION, "yes"),
            (KEY_SCHEMA_VALIDATION, ""),
            ("retention.hours", "1"),
        ] {
            let err = effective(&LogConfig::default(), &overrides(&[(k, v)])).unwrap_err();
            assert!(err.contains(k) || err.contains(v), "{k}={v}: {err}");
        }
        // Checked by the log's own validation: a batch limit of zero.
        let err = effective(
            &LogConfig::default(),
            &overrides(&[(MAX_MESSAGE_BYTES, "0")]),
        )
        .unwrap_err();
        assert!(err.contains("max_batch_bytes"), "{err}");
    }

    #[test]
    fn schema_validation_keys_are_booleans_described_per_topic() {
        let o = overrides(&[
            (VALUE_SCHEMA_VALIDATION, "TRUE"),
            (KEY_SCHEMA_VALIDATION, "false"),
        ]);
        effective(&LogConfig::default(), &o).unwrap();
        let v = schema_validation(&o);
        assert!(v.value && !v.key);
        assert!(!schema_validation(&BTreeMap::new()).any());
        let entries = describe(&LogConfig::default(), &o, None);
        let value = entries
            .iter()
            .find(|e| e.name == VALUE_SCHEMA_VALIDATION)
            .unwrap();
        assert_eq!(
            (
                value.value.as_str(),
                value.source,
                value.default_value.as_str()
            ),
            ("true", ConfigSource::Topic, "false")
        );
        let key = entries
            .iter()
            .find(|e| e.name == KEY_SCHEMA_VALIDATION)
            .unwrap();
        assert_eq!(key.value, "false");
    }

    #[test]
    fn the_deprecated_difference_bounds_each_direction_without_its_own() {
        let o = overrides(&[
            (TIMESTAMP_DIFFERENCE_MAX_MS, "5000"),
            (TIMESTAMP_AFTER_MAX_MS, "100"),
        ]);
        assert_eq!(timestamp_bounds(&o, false), Some((5000, 100)));
        assert_eq!(
            timestamp_bounds(&o, true),
            None,
            "LogAppendTime ignores bounds"
        );
        assert_eq!(timestamp_bounds(&BTreeMap::new(), false), None);
        let err = effective(
            &LogConfig::default(),
            &overrides(&[(TIMESTAMP_DIFFERENCE_MAX_MS, "-1")]),
        )
        .unwrap_err();
        assert!(err.contains(TIMESTAMP_DIFFERENCE_MAX_MS), "{err}");
    }

    #[test]
    fn describe_reports_sources_and_defaults() {
        let entries = describe(
            &LogConfig::default(),
            &overrides(&[(RETENTION_MS, "1000")]),
            None,
        );
        assert_eq!(entries.len(), KEYS.len());
        let retention = entries.iter().find(|e| e.name == RETENTION_MS).unwrap();
        assert_eq!(retention.value, "1000");
        assert_eq!(retention.source, ConfigSource::Topic);
        assert_eq!(retention.default_value, "604800000");
        let segment = entries.iter().find(|e| e.name == SEGMENT_BYTES).unwrap();
        assert_eq!(segment.source, ConfigSource::Default);
        assert_eq!(segment.value, (1u64 << 30).to_string());
        let durability = entries.iter().find(|e| e.name == DURABILITY).unwrap();
        assert_eq!(durability.value, "group-commit");

        let some = describe(
            &LogConfig::default(),
            &BTreeMap::new(),
            Some(&["cleanup.policy".to_string(), "nonsense".to_string()]),
        );
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].value, "delete");
    }
}
