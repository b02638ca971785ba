//! Where `herald serve` takes its settings from, in order of precedence: a flag, then
//! its `HERALD_*` environment variable, then the TOML file (`--config`), then the
//! default. `docs/configuration.md` lists every setting; [`ENV_SETTINGS`] is the list of
//! the ones without a flag.
//!
//! The file is one TOML table: the broker's settings at the top level (the fields of
//! [`BrokerConfig`], with topic defaults under `[default_topic_config]`) and the settings
//! of the binary (`http_listen`, `http_max_body_bytes`, `registry_listen`, `log_level`).

use std::{net::SocketAddr, path::PathBuf};

use clap::Args;
use herald_broker::{BrokerConfig, http::HttpConfig};
use toml::{Table, Value};

use crate::error::CliError;

/// Default schema-registry address.
pub(crate) const DEFAULT_REGISTRY_LISTEN: &str = "127.0.0.1:8081";

/// Flags of `herald serve`. Each also reads its `HERALD_*` environment variable.
#[derive(Debug, Clone, Default, Args)]
pub(crate) struct ServeArgs {
    /// TOML configuration file [default: none]
    #[arg(long, env = "HERALD_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Directory for all broker data [default: ./herald-data]
    #[arg(long, env = "HERALD_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Kafka API address; port 0 picks a free port [default: 127.0.0.1:9092]
    #[arg(long, env = "HERALD_KAFKA_LISTEN", value_name = "ADDR")]
    pub(crate) kafka_listen: Option<SocketAddr>,
    /// HTTP API and /metrics address [default: 127.0.0.1:8080]
    #[arg(long, env = "HERALD_HTTP_LISTEN", value_name = "ADDR")]
    pub(crate) http_listen: Option<SocketAddr>,
    /// Schema registry (Confluent REST API) address [default: 127.0.0.1:8081]
    #[arg(long, env = "HERALD_REGISTRY_LISTEN", value_name = "ADDR")]
    pub(crate) registry_listen: Option<SocketAddr>,
    /// Host name Kafka clients are told to connect to [default: the listen address]
    #[arg(long, env = "HERALD_ADVERTISED_HOST", value_name = "HOST")]
    pub(crate) advertised_host: Option<String>,
    /// Port Kafka clients are told to connect to [default: the bound port]
    #[arg(long, env = "HERALD_ADVERTISED_PORT", value_name = "PORT")]
    pub(crate) advertised_port: Option<u16>,
    /// Log filter, e.g. `info` or `herald_broker=debug` [default: RUST_LOG, else info]
    #[arg(long, env = "HERALD_LOG_LEVEL", value_name = "FILTER")]
    pub(crate) log_level: Option<String>,
}

/// The type of a setting read from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    Bool,
}

/// Settings without a flag that an environment variable sets: the variable, the TOML
/// key path, and the type.
pub(crate) const ENV_SETTINGS: &[(&str, &[&str], Kind)] = &[
    (
        "HERALD_HTTP_MAX_BODY_BYTES",
        &["http_max_body_bytes"],
        Kind::Int,
    ),
    (
        "HERALD_AUTO_CREATE_TOPICS",
        &["auto_create_topics"],
        Kind::Bool,
    ),
    (
        "HERALD_DEFAULT_PARTITIONS",
        &["default_partitions"],
        Kind::Int,
    ),
    ("HERALD_MAX_FRAME_BYTES", &["max_frame_bytes"], Kind::Int),
    ("HERALD_NODE_ID", &["node_id"], Kind::Int),
    ("HERALD_CLUSTER_ID", &["cluster_id"], Kind::Str),
    (
        "HERALD_RETENTION_CHECK_INTERVAL_MS",
        &["retention_check_interval_ms"],
        Kind::Int,
    ),
    (
        "HERALD_PRODUCER_STATE_SCAN_OFFSETS",
        &["producer_state_scan_offsets"],
        Kind::Int,
    ),
    (
        "HERALD_MAX_PARTITIONS_PER_TOPIC",
        &["max_partitions_per_topic"],
        Kind::Int,
    ),
    (
        "HERALD_GROUP_INITIAL_REBALANCE_DELAY_MS",
        &["group_initial_rebalance_delay_ms"],
        Kind::Int,
    ),
    (
        "HERALD_GROUP_MIN_SESSION_TIMEOUT_MS",
        &["group_min_session_timeout_ms"],
        Kind::Int,
    ),
    (
        "HERALD_GROUP_MAX_SESSION_TIMEOUT_MS",
        &["group_max_session_timeout_ms"],
        Kind::Int,
    ),
    (
        "HERALD_OFFSETS_RETENTION_MS",
        &["offsets_retention_ms"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_SEGMENT_BYTES",
        &["default_topic_config", "segment_bytes"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_SEGMENT_MS",
        &["default_topic_config", "segment_ms"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_RETENTION_MS",
        &["default_topic_config", "retention_ms"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_RETENTION_BYTES",
        &["default_topic_config", "retention_bytes"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_MAX_MESSAGE_BYTES",
        &["default_topic_config", "max_message_bytes"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_DURABILITY",
        &["default_topic_config", "durability"],
        Kind::Str,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_GROUP_COMMIT_MAX_DELAY_MS",
        &["default_topic_config", "group_commit_max_delay_ms"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_GROUP_COMMIT_MAX_BYTES",
        &["default_topic_config", "group_commit_max_bytes"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_INDEX_INTERVAL_BYTES",
        &["default_topic_config", "index_interval_bytes"],
        Kind::Int,
    ),
    (
        "HERALD_DEFAULT_TOPIC_CONFIG_VERIFY_READS",
        &["default_topic_config", "verify_reads"],
        Kind::Bool,
    ),
];

/// Everything `herald serve` runs with.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) broker: BrokerConfig,
    pub(crate) http: HttpConfig,
    /// Where the schema registry's REST API listens.
    pub(crate) registry_listen: SocketAddr,
    /// An explicit log filter; `None` falls back to `RUST_LOG`, then `info`.
    pub(crate) log_level: Option<String>,
}

fn parse_env(name: &str, raw: &str, kind: Kind) -> Result<Value, CliError> {
    let bad = |what: &str| CliError::usage(format!("{name}={raw:?}: expected {what}"));
    Ok(match kind {
        Kind::Str => Value::String(raw.to_string()),
        Kind::Int => Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?),
        Kind::Bool => Value::Boolean(match raw.trim() {
            "true" | "1" | "yes" => true,
            "false" | "0" | "no" => false,
            _ => return Err(bad("true or false")),
        }),
    })
}

fn set(table: &mut Table, path: &[&str], value: Value) -> Result<(), CliError> {
    let (last, parents) = path.split_last().expect("paths are not empty");
    let mut t = table;
    for key in parents {
        let entry = t
            .entry(key.to_string())
            .or_insert_with(|| Value::Table(Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| CliError::usage(format!("configuration: `{key}` must be a table")))?;
    }
    t.insert(last.to_string(), value);
    Ok(())
}

/// Takes a binary-level key out of the table, parsed as `T`.
fn take<T: serde::de::DeserializeOwned>(
    table: &mut Table,
    key: &str,
) -> Result<Option<T>, CliError> {
    match table.remove(key) {
        None => Ok(None),
        Some(v) => v
            .try_into()
            .map(Some)
            .map_err(|e| CliError::usage(format!("configuration: `{key}`: {e}"))),
    }
}

/// Reads the file, the environment (through `env`) and the flags into one
/// configuration. Every failure is a usage error that names the setting.
pub(crate) fn resolve(
    args: &ServeArgs,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ServeConfig, CliError> {
    let mut table = match &args.config {
        None => Table::new(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::usage(format!(
                    "cannot read the config file {}: {e}",
                    path.display()
                ))
            })?;
            text.parse::<Table>().map_err(|e| {
                CliError::usage(format!(
                    "config file {} is not valid TOML: {e}",
                    path.display()
                ))
            })?
        }
    };
    for (name, path, kind) in ENV_SETTINGS {
        if let Some(raw) = env(name) {
            set(&mut table, path, parse_env(name, &raw, *kind)?)?;
        }
    }
    let flags: [(&str, Option<Value>); 7] = [
        (
            "data_dir",
            args.data_dir
                .as_ref()
                .map(|p| Value::String(p.display().to_string())),
        ),
        (
            "kafka_listen",
            args.kafka_listen.map(|a| Value::String(a.to_string())),
        ),
        (
            "http_listen",
            args.http_listen.map(|a| Value::String(a.to_string())),
        ),
        (
            "registry_listen",
            args.registry_listen.map(|a| Value::String(a.to_string())),
        ),
        (
            "advertised_host",
            args.advertised_host.clone().map(Value::String),
        ),
        (
            "advertised_port",
            args.advertised_port.map(|p| Value::Integer(p.into())),
        ),
        ("log_level", args.log_level.clone().map(Value::String)),
    ];
    for (key, value) in flags {
        if let Some(value) = value {
            table.insert(key.to_string(), value);
        }
    }
    let mut http = HttpConfig::default();
    if let Some(listen) = take::<String>(&mut table, "http_listen")? {
        http.listen = parse_addr("http_listen", &listen)?;
    }
    if let Some(max) = take::<usize>(&mut table, "http_max_body_bytes")? {
        if max < 1024 {
            return Err(CliError::usage(format!(
                "configuration: http_max_body_bytes must be at least 1024, got {max}"
            )));
        }
        http.max_body_bytes = max;
    }
    let registry_listen = match take::<String>(&mut table, "registry_listen")? {
        Some(a) => parse_addr("registry_listen", &a)?,
        None => DEFAULT_REGISTRY_LISTEN.parse().expect("valid default"),
    };
    let log_level = take::<String>(&mut table, "log_level")?;
    let broker: BrokerConfig = Value::Table(table)
        .try_into()
        .map_err(|e| CliError::usage(format!("configuration: {}", one_line(&e.to_string()))))?;
    broker
        .validate()
        .map_err(|e| CliError::usage(format!("configuration: {e}")))?;
    distinct_listeners(&[
        ("kafka_listen", broker.kafka_listen),
        ("http_listen", http.listen),
        ("registry_listen", registry_listen),
    ])?;
    Ok(ServeConfig {
        broker,
        http,
        registry_listen,
        log_level,
    })
}

/// Two listeners on one fixed address would fail later with "address in use"; say so now.
fn distinct_listeners(listeners: &[(&str, SocketAddr)]) -> Result<(), CliError> {
    for (i, (a, addr_a)) in listeners.iter().enumerate() {
        for (b, addr_b) in &listeners[i + 1..] {
            if addr_a.port() != 0 && addr_a == addr_b {
                return Err(CliError::usage(format!(
                    "configuration: {a} and {b} are both {addr_a}; give each its own port"
                )));
            }
        }
    }
    Ok(())
}

fn parse_addr(key: &str, s: &str) -> Result<SocketAddr, CliError> {
    s.parse().map_err(|_| {
        CliError::usage(format!(
            "configuration: `{key}` must be an IP address and port such as 127.0.0.1:8080, got {s:?}"
        ))
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("herald.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn defaults_without_anything() {
        let c = resolve(&ServeArgs::default(), env(&[])).unwrap();
        assert_eq!(c.broker.data_dir, PathBuf::from("./herald-data"));
        assert_eq!(c.broker.kafka_listen.to_string(), "127.0.0.1:9092");
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.registry_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.log_level, None);
    }

    #[test]
    fn flag_beats_env_beats_file() {
        let (_dir, path) = file(
            "data_dir = \"/from/file\"\ndefault_partitions = 3\nhttp_listen = \"127.0.0.1:1\"\n\
             [default_topic_config]\nretention_ms = 1000\n",
        );
        let args = ServeArgs {
            config: Some(path),
            data_dir: Some("/from/flag".into()),
            ..ServeArgs::default()
        };
        let c = resolve(
            &args,
            env(&[
                ("HERALD_DEFAULT_PARTITIONS", "5"),
                ("HERALD_DEFAULT_TOPIC_CONFIG_DURABILITY", "every-append"),
            ]),
        )
        .unwrap();
        assert_eq!(c.broker.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(c.broker.default_partitions, 5, "env beats file");
        assert_eq!(
            c.http.listen.to_string(),
            "127.0.0.1:1",
            "file beats default"
        );
        let topic = &c.broker.default_topic_config;
        assert_eq!(topic.retention_age.unwrap().as_millis(), 1000);
        assert_eq!(topic.durability, herald_log::Durability::EveryAppend);
    }

    #[test]
    fn mistakes_are_usage_errors_that_name_the_setting() {
        let (_dir, path) = file("data_dri = \"x\"\n");
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let e = resolve(&args, env(&[])).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("data_dri")),
            "{e}"
        );

        let e = resolve(&ServeArgs::default(), env(&[("HERALD_NODE_ID", "one")])).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("HERALD_NODE_ID")),
            "{e}"
        );

        let e = resolve(
            &ServeArgs::default(),
            env(&[("HERALD_DEFAULT_PARTITIONS", "0")]),
        )
        .unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("default_partitions")),
            "{e}"
        );

        let (_dir, path) = file("http_listen = \"localhost\"\n");
        let args = ServeArgs {
            config: Some(path),
            ..ServeArgs::default()
        };
        let e = resolve(&args, env(&[])).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("http_listen")),
            "{e}"
        );

        let args = ServeArgs {
            http_listen: Some("127.0.0.1:9092".parse().unwrap()),
            ..ServeArgs::default()
        };
        let e = resolve(&args, env(&[])).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("kafka_listen and http_listen")),
            "{e}"
        );
        let args = ServeArgs {
            kafka_listen: Some("127.0.0.1:0".parse().unwrap()),
            http_listen: Some("127.0.0.1:0".parse().unwrap()),
            ..ServeArgs::default()
        };
        resolve(&args, env(&[])).expect("port 0 twice is fine");

        let args = ServeArgs {
            config: Some("/no/such/herald.toml".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(resolve(&args, env(&[])), Err(CliError::Usage(_))));
    }

    #[test]
    fn every_environment_variable_is_documented() {
        let doc = include_str!("../../../../docs/configuration.md");
        let flags = [
            "HERALD_CONFIG",
            "HERALD_DATA_DIR",
            "HERALD_KAFKA_LISTEN",
            "HERALD_HTTP_LISTEN",
            "HERALD_REGISTRY_LISTEN",
            "HERALD_ADVERTISED_HOST",
            "HERALD_ADVERTISED_PORT",
            "HERALD_LOG_LEVEL",
            "HERALD_SERVER",
        ];
        for name in ENV_SETTINGS.iter().map(|(n, _, _)| *n).chain(flags) {
            assert!(
                doc.contains(&format!("`{name}`")),
                "{name} is missing from docs/configuration.md"
            );
        }
    }
}
