//! Where `herald serve` takes its settings from, in order of precedence: a flag, then
//! its `HERALD_*` environment variable, then the TOML file (`--config`), then the
//! default. Each setting is declared once, in [`declared::SETTINGS`]; its flag, variable
//! and the tables in `docs/configuration.md` follow from that (a test compares them).
//!
//! The file is one TOML table: the broker's settings at the top level (the fields of
//! [`BrokerConfig`], with topic defaults under `[default_topic_config]`) and the settings
//! of the binary (`http_listen`, `http_max_body_bytes`, `http_allowed_hosts`,
//! `registry_listen`, `log_level`).

mod declared;
#[cfg(test)]
mod docs;

use std::{net::SocketAddr, path::PathBuf};

use herald_broker::{BrokerConfig, http::HttpConfig};
use herald_security::{Mechanism, TlsFiles};
use toml::{Table, Value};

pub(crate) use self::declared::ServeArgs;
use self::declared::{CONFIG_ENV, Kind, SETTINGS};
use crate::error::CliError;

/// Default schema-registry address.
pub(crate) const DEFAULT_REGISTRY_LISTEN: &str = "127.0.0.1:8081";

/// Everything `herald serve` runs with.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) broker: BrokerConfig,
    pub(crate) http: HttpConfig,
    /// Where the schema registry's REST API listens.
    pub(crate) registry_listen: SocketAddr,
    /// The certificate files of the TLS listeners, when any listener uses TLS.
    pub(crate) tls: Option<TlsFiles>,
    /// Which listeners use TLS, and whether the Kafka listener uses SASL.
    pub(crate) tls_on: TlsOn,
    /// Kafka listeners after the first, as (TLS, SASL, address).
    pub(crate) more_kafka: Vec<(bool, bool, SocketAddr)>,
    /// The loaded certificate, once `herald serve` has read it.
    pub(crate) loaded_tls: Option<herald_security::TlsServer>,
    /// The SASL settings of the SASL listeners, once the users are open.
    pub(crate) sasl: Option<herald_broker::SaslConfig>,
    /// The SASL mechanisms of a SASL Kafka listener (empty without one).
    pub(crate) sasl_mechanisms: Vec<Mechanism>,
    /// The HTTP API and the registry ask for HTTP Basic credentials (`http_auth`).
    pub(crate) http_basic_auth: bool,
    /// Principals every ACL check allows (`super_users`), as `User:NAME`.
    pub(crate) super_users: Vec<String>,
    /// An explicit log filter; `None` falls back to `RUST_LOG`, then `info`.
    pub(crate) log_level: Option<String>,
}

/// Which listeners serve TLS (`SSL://`, `SASL_SSL://`, `https://`), and whether the Kafka
/// listener asks for SASL (`SASL_PLAINTEXT://`, `SASL_SSL://`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct TlsOn {
    /// The first Kafka listener.
    pub(crate) kafka: bool,
    pub(crate) http: bool,
    pub(crate) registry: bool,
    /// The first Kafka listener.
    pub(crate) kafka_sasl: bool,
    /// Any Kafka listener uses TLS.
    pub(crate) any_kafka_tls: bool,
    /// Any Kafka listener uses SASL.
    pub(crate) any_kafka_sasl: bool,
}

impl TlsOn {
    fn any(self) -> bool {
        self.any_kafka_tls || self.http || self.registry
    }
}

/// A listener setting's text split into (TLS, SASL, address). Kafka listeners take
/// Kafka's security protocol names, HTTP ones `http`/`https`; no scheme is plaintext.
fn split_listener(key: &str, raw: &str) -> Result<(bool, bool, SocketAddr), CliError> {
    let raw = raw.trim();
    let (scheme, addr) = match raw.split_once("://") {
        Some((scheme, addr)) => (Some(scheme), addr),
        None => (None, raw),
    };
    let kafka = key == "kafka_listen";
    let (tls, sasl) = match (kafka, scheme.map(str::to_ascii_uppercase).as_deref()) {
        (_, None) | (true, Some("PLAINTEXT")) | (false, Some("HTTP")) => (false, false),
        (true, Some("SSL")) | (false, Some("HTTPS")) => (true, false),
        (true, Some("SASL_PLAINTEXT")) => (false, true),
        (true, Some("SASL_SSL")) => (true, true),
        (true, Some(other)) => {
            return Err(CliError::usage(format!(
                "configuration: `{key}` = {raw:?}: unknown security protocol {other:?}; use \
                 PLAINTEXT://, SSL://, SASL_PLAINTEXT:// or SASL_SSL:// before host:port"
            )));
        }
        (false, Some(other)) => {
            return Err(CliError::usage(format!(
                "configuration: `{key}` = {raw:?}: unknown scheme {other:?}; use \
                 http://host:port or https://host:port"
            )));
        }
    };
    Ok((tls, sasl, parse_addr(key, addr)?))
}

/// A setting's text (named `source`: its flag or variable) as the TOML value it sets.
fn parse_value(source: &str, raw: &str, kind: Kind) -> Result<Value, CliError> {
    let bad = |what: &str| CliError::usage(format!("{source}={raw:?}: expected {what}"));
    Ok(match kind {
        Kind::Str | Kind::Path => Value::String(raw.to_string()),
        // The address is checked here, so the error names the flag or variable; the
        // scheme once every source is in (`split_listener`).
        Kind::Listener | Kind::Listeners => {
            let raw = raw.trim();
            let parts: Vec<&str> = if kind == Kind::Listeners {
                raw.split(',').map(str::trim).collect()
            } else {
                vec![raw]
            };
            for part in parts {
                let addr = part.split_once("://").map_or(part, |(_, addr)| addr);
                addr.parse::<SocketAddr>().map_err(|_| {
                    bad("an IP address and port such as 127.0.0.1:9092, optionally with a scheme (SSL://, https://); several Kafka listeners are separated by commas")
                })?;
            }
            Value::String(raw.to_string())
        }
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
    let config_path = args
        .config
        .clone()
        .or_else(|| env(CONFIG_ENV).map(PathBuf::from));
    let mut table = match &config_path {
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
    for s in SETTINGS {
        let name = s.env();
        if let Some(raw) = env(&name) {
            set(&mut table, s.key, parse_value(&name, &raw, s.kind)?)?;
        }
    }
    for (s, raw) in &args.flags {
        let flag = format!("--{}", s.long().unwrap_or_default());
        set(&mut table, s.key, parse_value(&flag, raw, s.kind)?)?;
    }
    let mut tls_on = TlsOn::default();
    let mut more_kafka = Vec::new();
    if let Some(listen) = take::<String>(&mut table, "kafka_listen")? {
        // Kafka's `listeners`: comma-separated, each with its security protocol.
        let mut all = Vec::new();
        for part in listen.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            all.push(split_listener("kafka_listen", part)?);
        }
        let Some(&(tls, sasl, addr)) = all.first() else {
            return Err(CliError::usage("configuration: `kafka_listen` is empty"));
        };
        (tls_on.kafka, tls_on.kafka_sasl) = (tls, sasl);
        tls_on.any_kafka_tls = all.iter().any(|l| l.0);
        tls_on.any_kafka_sasl = all.iter().any(|l| l.1);
        more_kafka = all[1..].to_vec();
        table.insert("kafka_listen".into(), Value::String(addr.to_string()));
    }
    let mut http = HttpConfig::default();
    if let Some(listen) = take::<String>(&mut table, "http_listen")? {
        (tls_on.http, _, http.listen) = split_listener("http_listen", &listen)?;
    }
    if let Some(max) = take::<usize>(&mut table, "http_max_body_bytes")? {
        if max < 1024 {
            return Err(CliError::usage(format!(
                "configuration: http_max_body_bytes must be at least 1024, got {max}"
            )));
        }
        http.max_body_bytes = max;
    }
    let allowed = take::<String>(&mut table, "http_allowed_hosts")?.unwrap_or_default();
    http.allowed_hosts = allowed
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .collect();
    let registry_listen = match take::<String>(&mut table, "registry_listen")? {
        Some(a) => {
            let (tls, _, addr) = split_listener("registry_listen", &a)?;
            tls_on.registry = tls;
            addr
        }
        None => DEFAULT_REGISTRY_LISTEN.parse().expect("valid default"),
    };
    let http_basic_auth = match take::<String>(&mut table, "http_auth")?.as_deref() {
        None | Some("none") => false,
        Some("basic") => true,
        Some(other) => {
            return Err(CliError::usage(format!(
                "configuration: `http_auth` = {other:?}: use \"none\" or \"basic\""
            )));
        }
    };
    http.metrics_auth = take::<bool>(&mut table, "http_auth_metrics")?.unwrap_or(false);
    let sasl_mechanisms = sasl_mechanisms(
        tls_on.any_kafka_sasl,
        take::<String>(&mut table, "sasl_mechanisms")?,
    )?;
    let super_users = super_users(take::<String>(&mut table, "super_users")?)?;
    let tls = tls_files(
        tls_on,
        take::<PathBuf>(&mut table, "tls_cert")?,
        take::<PathBuf>(&mut table, "tls_key")?,
        take::<PathBuf>(&mut table, "tls_client_ca")?,
    )?;
    let log_level = take::<String>(&mut table, "log_level")?;
    let broker: BrokerConfig = Value::Table(table)
        .try_into()
        .map_err(|e| CliError::usage(format!("configuration: {}", one_line(&e.to_string()))))?;
    broker
        .validate()
        .map_err(|e| CliError::usage(format!("configuration: {e}")))?;
    // The name Kafka clients are told to use is one the HTTP servers answer to as well.
    if let Some(host) = &broker.advertised_host {
        http.allowed_hosts.push(host.clone());
    }
    let mut all = vec![
        ("kafka_listen", broker.kafka_listen),
        ("http_listen", http.listen),
        ("registry_listen", registry_listen),
    ];
    all.extend(more_kafka.iter().map(|l| ("kafka_listen", l.2)));
    distinct_listeners(&all)?;
    Ok(ServeConfig {
        broker,
        http,
        registry_listen,
        tls,
        tls_on,
        more_kafka,
        loaded_tls: None,
        sasl: None,
        sasl_mechanisms,
        http_basic_auth,
        super_users,
        log_level,
    })
}

/// `super_users`: `User:NAME` principals separated by `;` as Kafka's `super.users` (a
/// certificate subject has commas in it); a bare `NAME` means `User:NAME`.
fn super_users(list: Option<String>) -> Result<Vec<String>, CliError> {
    let mut out = Vec::new();
    for item in list.iter().flat_map(|l| l.split(';')).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let principal = match item.split_once(':') {
            Some(("User", name)) if !name.is_empty() => item.to_owned(),
            Some(_) => {
                return Err(CliError::usage(format!(
                    "configuration: super user {item:?}: use User:NAME or NAME"
                )));
            }
            None => format!("User:{item}"),
        };
        out.push(principal);
    }
    Ok(out)
}

/// The mechanisms of `sasl_mechanisms` (all three by default) for a SASL listener.
fn sasl_mechanisms(sasl: bool, list: Option<String>) -> Result<Vec<Mechanism>, CliError> {
    match (sasl, list) {
        (false, None) => Ok(Vec::new()),
        (false, Some(_)) => Err(CliError::usage(
            "configuration: --sasl-mechanisms is for a SASL Kafka listener: use \
             SASL_PLAINTEXT://host:port or SASL_SSL://host:port",
        )),
        (true, None) => Ok(Mechanism::ALL.to_vec()),
        (true, Some(list)) => {
            let mut out = Vec::new();
            for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let m = Mechanism::parse(&name.to_ascii_uppercase()).ok_or_else(|| {
                    CliError::usage(format!(
                        "configuration: unknown SASL mechanism {name:?}: use PLAIN, \
                         SCRAM-SHA-256 or SCRAM-SHA-512"
                    ))
                })?;
                if !out.contains(&m) {
                    out.push(m);
                }
            }
            if out.is_empty() {
                return Err(CliError::usage("configuration: --sasl-mechanisms is empty"));
            }
            Ok(out)
        }
    }
}

/// The TLS files, which every TLS listener needs and no plaintext-only setup takes.
fn tls_files(
    on: TlsOn,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    client_ca: Option<PathBuf>,
) -> Result<Option<TlsFiles>, CliError> {
    match (on.any(), cert, key) {
        (true, Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert,
            key,
            client_ca,
        })),
        (true, _, _) => Err(CliError::usage(
            "configuration: a TLS listener (SSL:// or https://) needs both --tls-cert and \
             --tls-key (PEM files)",
        )),
        (false, None, None) if client_ca.is_none() => Ok(None),
        (false, _, _) => Err(CliError::usage(
            "configuration: --tls-cert, --tls-key and --tls-client-ca are for TLS listeners, \
             and none is one: use SSL://host:port for Kafka, https://host:port for HTTP",
        )),
    }
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
            ..ServeArgs::default()
        }
        .with("data_dir", "/from/flag");
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

        let args = ServeArgs::default().with("http_listen", "127.0.0.1:9092");
        let e = resolve(&args, env(&[])).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("kafka_listen and http_listen")),
            "{e}"
        );
        let args = ServeArgs::default()
            .with("kafka_listen", "127.0.0.1:0")
            .with("http_listen", "127.0.0.1:0");
        resolve(&args, env(&[])).expect("port 0 twice is fine");

        let args = ServeArgs {
            config: Some("/no/such/herald.toml".into()),
            ..ServeArgs::default()
        };
        assert!(matches!(resolve(&args, env(&[])), Err(CliError::Usage(_))));
    }

    #[test]
    fn a_flag_beats_its_variable_and_a_bad_flag_names_itself() {
        let args = ServeArgs::default().with("kafka_listen", "127.0.0.1:7");
        let c = resolve(&args, env(&[("HERALD_KAFKA_LISTEN", "127.0.0.1:8")])).unwrap();
        assert_eq!(c.broker.kafka_listen.to_string(), "127.0.0.1:7");

        let args = ServeArgs::default().with("kafka_listen", "nowhere");
        let e = resolve(&args, env(&[])).unwrap_err();
        assert!(
            matches!(&e, CliError::Usage(m) if m.contains("--kafka-listen=\"nowhere\"")),
            "{e}"
        );
    }

    #[test]
    fn the_config_file_comes_from_herald_config_too() {
        let (_dir, path) = file("default_partitions = 4\n");
        let c = resolve(
            &ServeArgs::default(),
            env(&[("HERALD_CONFIG", path.to_str().unwrap())]),
        )
        .unwrap();
        assert_eq!(c.broker.default_partitions, 4);
    }

    #[test]
    fn listeners_take_kafka_and_http_schemes() {
        let ok = |key, raw| split_listener(key, raw).unwrap();
        assert_eq!(
            ok("kafka_listen", "127.0.0.1:9092"),
            (false, false, "127.0.0.1:9092".parse().unwrap())
        );
        assert!(ok("kafka_listen", "SASL_PLAINTEXT://127.0.0.1:9094").1);
        let sasl_ssl = ok("kafka_listen", "SASL_SSL://127.0.0.1:9094");
        assert!(sasl_ssl.0 && sasl_ssl.1);
        assert!(!ok("kafka_listen", "PLAINTEXT://127.0.0.1:9092").0);
        assert!(ok("kafka_listen", "SSL://127.0.0.1:9093").0);
        assert!(ok("kafka_listen", "ssl://127.0.0.1:9093").0);
        assert!(ok("http_listen", "https://127.0.0.1:8443").0);
        assert!(!ok("registry_listen", "http://127.0.0.1:8081").0);
        for (key, raw, says) in [
            (
                "kafka_listen",
                "SASL_GSSAPI://127.0.0.1:9094",
                "unknown security protocol",
            ),
            (
                "kafka_listen",
                "https://127.0.0.1:9094",
                "unknown security protocol",
            ),
            ("http_listen", "SSL://127.0.0.1:8443", "unknown scheme"),
            (
                "http_listen",
                "https://localhost:8443",
                "IP address and port",
            ),
        ] {
            let err = split_listener(key, raw).unwrap_err().to_string();
            assert!(err.contains(says) && err.contains(key), "{raw}: {err}");
        }
    }

    #[test]
    fn several_kafka_listeners_each_with_its_protocol() {
        let c = resolve(
            &ServeArgs::default(),
            env(&[(
                "HERALD_KAFKA_LISTEN",
                "PLAINTEXT://127.0.0.1:9092, SASL_SSL://0.0.0.0:9094",
            )]),
        );
        // SASL_SSL needs the TLS files.
        assert!(c.unwrap_err().to_string().contains("tls"));
        let c = resolve(
            &ServeArgs::default(),
            env(&[(
                "HERALD_KAFKA_LISTEN",
                "PLAINTEXT://127.0.0.1:9092,SASL_PLAINTEXT://0.0.0.0:9094",
            )]),
        )
        .unwrap();
        assert_eq!(c.broker.kafka_listen.to_string(), "127.0.0.1:9092");
        assert!(!c.tls_on.kafka_sasl && c.tls_on.any_kafka_sasl);
        assert_eq!(
            c.more_kafka,
            vec![(false, true, "0.0.0.0:9094".parse().unwrap())]
        );
        let err = resolve(
            &ServeArgs::default(),
            env(&[("HERALD_KAFKA_LISTEN", "127.0.0.1:9092,127.0.0.1:9092")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("both 127.0.0.1:9092"), "{err}");
    }

    #[test]
    fn super_users_are_principals() {
        let c = resolve(
            &ServeArgs::default(),
            env(&[("HERALD_SUPER_USERS", "admin; User:ops;User:CN=ci,O=Acme;")]),
        )
        .unwrap();
        assert_eq!(
            c.super_users,
            vec!["User:admin", "User:ops", "User:CN=ci,O=Acme"]
        );
        let err = resolve(
            &ServeArgs::default(),
            env(&[("HERALD_SUPER_USERS", "Group:x")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("User:NAME"), "{err}");
    }

    #[test]
    fn sasl_mechanisms_default_to_all_and_need_a_sasl_listener() {
        let sasl = ServeArgs::default().with("kafka_listen", "SASL_PLAINTEXT://127.0.0.1:0");
        let c = resolve(&sasl, env(&[])).unwrap();
        assert!(c.tls_on.kafka_sasl && !c.tls_on.kafka);
        assert_eq!(c.sasl_mechanisms, Mechanism::ALL.to_vec());
        let c = resolve(&sasl, env(&[("HERALD_SASL_MECHANISMS", "scram-sha-512")])).unwrap();
        assert_eq!(
            c.sasl_mechanisms,
            vec![Mechanism::Scram(herald_security::ScramHash::Sha512)]
        );
        let err = resolve(&sasl, env(&[("HERALD_SASL_MECHANISMS", "GSSAPI")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("GSSAPI"), "{err}");
        let err = resolve(
            &ServeArgs::default(),
            env(&[("HERALD_SASL_MECHANISMS", "PLAIN")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("SASL_PLAINTEXT://"), "{err}");
    }

    #[test]
    fn tls_listeners_need_a_certificate_and_certificates_need_a_tls_listener() {
        let args = ServeArgs::default()
            .with("kafka_listen", "SSL://127.0.0.1:0")
            .with("tls_cert", "/c.pem")
            .with("tls_key", "/k.pem");
        let c = resolve(&args, env(&[])).unwrap();
        assert!(c.tls_on.kafka && !c.tls_on.http);
        assert_eq!(c.broker.kafka_listen.to_string(), "127.0.0.1:0");
        assert_eq!(c.tls.unwrap().cert, PathBuf::from("/c.pem"));

        let no_key = ServeArgs::default()
            .with("http_listen", "https://127.0.0.1:0")
            .with("tls_cert", "/c.pem");
        let err = resolve(&no_key, env(&[])).unwrap_err().to_string();
        assert!(err.contains("--tls-key"), "{err}");
        let stray = ServeArgs::default().with("tls_cert", "/c.pem");
        let err = resolve(&stray, env(&[("HERALD_TLS_KEY", "/k.pem")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none is one"), "{err}");
        let from_env = resolve(
            &ServeArgs::default(),
            env(&[
                ("HERALD_REGISTRY_LISTEN", "https://127.0.0.1:0"),
                ("HERALD_TLS_CERT", "/c.pem"),
                ("HERALD_TLS_KEY", "/k.pem"),
            ]),
        )
        .unwrap();
        assert!(from_env.tls_on.registry);
    }
}
