//! Every setting of `herald serve`, declared once. The declaration gives the TOML key;
//! the `HERALD_*` variable, the flag (for the settings that have one), the `--help`
//! text and the tables in `docs/configuration.md` all follow from it, so a new setting
//! is one entry here (and a field where it lands), never three edits that can drift.

use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Command};

/// How a setting's text (from a flag or the environment) becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Any text.
    Str,
    /// A file-system path (any text; relative to where `herald serve` runs).
    Path,
    /// An IP address and port such as `127.0.0.1:9092`, with an optional scheme:
    /// `SSL://127.0.0.1:9093`, `https://…`.
    Listener,
    /// Several [`Listener`]s, comma-separated (Kafka's `listeners`); the
    /// flag may also be repeated.
    Listeners,
    /// A whole number.
    Int,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`).
    Bool,
}

/// One setting of `herald serve`.
#[derive(Debug)]
pub(crate) struct Setting {
    /// The TOML key path: `["data_dir"]`, or `["default_topic_config", "retention_ms"]`.
    pub(crate) key: &'static [&'static str],
    /// The flag's value name (`ADDR`, `DIR`, ...) when the setting has a flag; the flag
    /// itself is the key with `-` for `_`.
    pub(crate) flag: Option<&'static str>,
    pub(crate) kind: Kind,
    /// The default, as `docs/configuration.md` shows it (Markdown).
    pub(crate) default: &'static str,
    /// What the setting does, as `docs/configuration.md` shows it (Markdown).
    pub(crate) what: &'static str,
}

impl Setting {
    /// The environment variable: `HERALD_` and the key path, upper-case, joined by `_`.
    pub(crate) fn env(&self) -> String {
        format!("HERALD_{}", self.key.join("_").to_uppercase())
    }

    /// The long flag, e.g. `kafka-listen`, when the setting has one.
    pub(crate) fn long(&self) -> Option<String> {
        self.flag.map(|_| self.key.join("-").replace('_', "-"))
    }

    /// The key as the TOML file spells it at its place (`retention_ms` inside
    /// `[default_topic_config]`).
    #[cfg(test)]
    pub(crate) fn file_key(&self) -> &'static str {
        self.key.last().expect("keys are not empty")
    }
}

const fn setting(
    key: &'static [&'static str],
    flag: Option<&'static str>,
    kind: Kind,
    default: &'static str,
    what: &'static str,
) -> Setting {
    Setting {
        key,
        flag,
        kind,
        default,
        what,
    }
}

/// The variable that names the TOML file; it is `--config`, which is no key of the file.
pub(crate) const CONFIG_ENV: &str = "HERALD_CONFIG";
/// What `--config` does, for `--help` and the docs.
pub(crate) const CONFIG_WHAT: &str = "TOML file with any of these settings";

use Kind::{Bool, Int, Listener, Listeners, Path, Str};

/// Every setting, in the order `docs/configuration.md` lists them: the ones with a flag,
/// then the broker's, then the topic defaults.
#[rustfmt::skip]
pub(crate) const SETTINGS: &[Setting] = &[
    setting(&["data_dir"], Some("DIR"), Path, "`./herald-data`",
        "all broker state; locked by one herald at a time (`DIR/herald.lock`)"),
    setting(&["kafka_listen"], Some("ADDR"), Listeners, "`127.0.0.1:9092`",
        "Kafka API: `host:port` or `PLAINTEXT://host:port`; `SSL://` for TLS, `SASL_PLAINTEXT://` or `SASL_SSL://` for SASL ([security.md](security.md)); several listeners comma-separated or with the flag repeated, each client told its own listener's address; port 0 picks a free port"),
    setting(&["sasl_mechanisms"], Some("LIST"), Str, "`PLAIN,SCRAM-SHA-256,SCRAM-SHA-512`",
        "SASL mechanisms a `SASL_*` Kafka listener offers, checked against the users of `herald users`"),
    setting(&["super_users"], Some("LIST"), Str, "none",
        "principals (`;`-separated as Kafka's `super.users`: `User:NAME`, `NAME`, or a client certificate's `User:CN=...`) that every ACL check allows; authorization is on whenever a listener authenticates ([security.md](security.md))"),
    setting(&["http_listen"], Some("ADDR"), Listener, "`127.0.0.1:8080`",
        "HTTP API, `/health`, `/ready`, `/metrics`; `https://host:port` for TLS"),
    setting(&["registry_listen"], Some("ADDR"), Listener, "`127.0.0.1:8081`",
        "schema registry (Confluent REST API, [schema-registry.md](schema-registry.md)); `https://host:port` for TLS; port 0 picks a free port"),
    setting(&["tls_cert"], Some("FILE"), Path, "none",
        "certificate chain (PEM) of every TLS listener; re-read with the key on SIGHUP"),
    setting(&["tls_key"], Some("FILE"), Path, "none",
        "private key (PEM) of `tls_cert`"),
    setting(&["tls_client_ca"], Some("FILE"), Path, "none",
        "CA certificates (PEM): TLS clients must present a certificate they signed (mutual TLS)"),
    setting(&["advertised_host"], Some("HOST"), Str, "the listen IP (`127.0.0.1` for `0.0.0.0`)",
        "host Kafka clients are told to connect to"),
    setting(&["advertised_port"], Some("PORT"), Int, "the bound port",
        "port Kafka clients are told to connect to"),
    setting(&["log_level"], Some("FILTER"), Str, "`RUST_LOG`, else `info`",
        "a `tracing` filter such as `debug` or `info,herald_broker=debug`"),
    setting(&["http_max_body_bytes"], None, Int, "`16777216`",
        "largest HTTP request body; larger gets 413"),
    setting(&["http_allowed_hosts"], None, Str, "none",
        "host names (comma-separated) the HTTP API and the registry answer to beyond IP literals, `localhost` and `advertised_host`; any other `Host` or `Origin` gets 403 ([security.md](security.md))"),
    setting(&["http_auth"], None, Str, "`none`",
        "`basic`: the HTTP API and the registry ask for HTTP Basic credentials of a `herald users` user (`/health`, `/ready` stay open)"),
    setting(&["http_auth_metrics"], None, Bool, "`false`",
        "with `http_auth = \"basic\"`, `/metrics` needs credentials too"),
    setting(&["auto_create_topics"], None, Bool, "`true`",
        "create unknown topics a Kafka Metadata request asks for"),
    setting(&["default_partitions"], None, Int, "`1`",
        "partitions of auto-created topics and of creates that give none"),
    setting(&["max_frame_bytes"], None, Int, "`104857600`",
        "largest Kafka request; a larger one closes the connection"),
    setting(&["node_id"], None, Int, "`1`", "this broker's node id in Metadata"),
    setting(&["cluster_id"], None, Str, "generated once, kept in the data directory",
        "cluster id in Metadata"),
    setting(&["retention_check_interval_ms"], None, Int, "`300000`", "how often retention runs"),
    setting(&["producer_state_scan_offsets"], None, Int, "`1000000`",
        "offsets per partition scanned at start to rebuild idempotent-producer state"),
    setting(&["max_partitions_per_topic"], None, Int, "`10000`",
        "largest partition count of one topic"),
    setting(&["group_initial_rebalance_delay_ms"], None, Int, "`3000`",
        "first rebalance of an empty group waits this long for more members"),
    setting(&["group_min_session_timeout_ms"], None, Int, "`6000`",
        "smallest consumer session timeout accepted"),
    setting(&["group_max_session_timeout_ms"], None, Int, "`1800000`",
        "largest consumer session timeout accepted"),
    setting(&["max_connections"], None, Int, "`10000`",
        "most Kafka connections open at once (Kafka's `max.connections`); beyond it new clients wait until one closes"),
    setting(&["max_connections_per_ip"], None, Int, "`0` (no limit)",
        "most Kafka connections from one address (Kafka's `max.connections.per.ip`); one more is closed at once"),
    setting(&["queued_max_request_bytes"], None, Int, "`268435456`",
        "most bytes of Kafka requests being received and not yet handled, over all connections (Kafka's `queued.max.request.bytes`); taken before a request's buffer is allocated, so stalled half-sent requests cannot hold more; at least `max_frame_bytes`"),
    setting(&["connections_max_idle_ms"], None, Int, "`600000`",
        "a Kafka connection without a request for this long is closed (Kafka's `connections.max.idle.ms`; 0 never)"),
    setting(&["offsets_retention_ms"], None, Int, "`604800000`",
        "committed offsets of an empty group are kept this long"),
    setting(&["default_topic_config", "segment_bytes"], None, Int, "`1073741824`",
        "segment size at which the log rolls"),
    setting(&["default_topic_config", "segment_ms"], None, Int, "`604800000`",
        "segment age at which the log rolls"),
    setting(&["default_topic_config", "retention_ms"], None, Int, "`604800000`",
        "age after which whole segments are deleted; `-1` keeps forever"),
    setting(&["default_topic_config", "retention_bytes"], None, Int, "`-1`",
        "size above which the oldest segments are deleted"),
    setting(&["default_topic_config", "max_message_bytes"], None, Int, "`1048588`",
        "largest record batch a producer may send"),
    setting(&["default_topic_config", "durability"], None, Str, "`group-commit`",
        "when a write is durable: `every-append`, `group-commit` or `none`"),
    setting(&["default_topic_config", "group_commit_max_delay_ms"], None, Int, "`0`",
        "extra wait to gather more writes into one fsync (group commit only)"),
    setting(&["default_topic_config", "group_commit_max_bytes"], None, Int, "`4194304`",
        "bytes that trigger the shared fsync at once (group commit only)"),
    setting(&["default_topic_config", "index_interval_bytes"], None, Int, "`4096`",
        "bytes between offset-index entries"),
    setting(&["default_topic_config", "verify_reads"], None, Bool, "`true`",
        "check CRCs of batches on every read"),
    setting(&["default_topic_config", "message_timestamp_type"], None, Str, "`CreateTime`",
        "`CreateTime` keeps producers' timestamps, `LogAppendTime` stamps the append time (Kafka's `log.message.timestamp.type`)"),
];

/// The flags of `herald serve`, as given: `--config` and the value of each setting
/// flag. Every flag is generated from [`SETTINGS`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeArgs {
    /// `--config FILE`.
    pub(crate) config: Option<PathBuf>,
    /// `(setting, text)` for each setting flag given, in [`SETTINGS`] order.
    pub(crate) flags: Vec<(&'static Setting, String)>,
}

impl ServeArgs {
    /// The args with one setting flag set, by its TOML key (for tests and callers that
    /// build the args in code).
    #[cfg(test)]
    pub(crate) fn with(mut self, key: &str, value: &str) -> Self {
        let setting = SETTINGS
            .iter()
            .find(|s| s.flag.is_some() && s.key.join(".") == key)
            .unwrap_or_else(|| panic!("no flag for {key}"));
        self.flags.push((setting, value.to_string()));
        self
    }
}

/// Markdown to plain text for `--help`: no backticks, links keep their text.
fn plain(markdown: &str) -> String {
    let mut out = String::new();
    let mut rest = markdown;
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(close) = rest[mid..].find(')').map(|i| mid + i) else {
            break;
        };
        out.push_str(&rest[..open]);
        out.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.replace('`', "")
}

impl clap::Args for ServeArgs {
    fn augment_args(cmd: Command) -> Command {
        let config = Arg::new("config")
            .long("config")
            .value_name("FILE")
            .value_parser(clap::value_parser!(PathBuf))
            .help(format!("{CONFIG_WHAT} [env: {CONFIG_ENV}] [default: none]"));
        SETTINGS
            .iter()
            .filter_map(|s| Some((s, s.long()?, s.flag?)))
            .fold(cmd.arg(config), |cmd, (s, long, value_name)| {
                cmd.arg(
                    Arg::new(long.clone())
                        .long(long)
                        .value_name(value_name)
                        .action(if s.kind == Kind::Listeners {
                            ArgAction::Append
                        } else {
                            ArgAction::Set
                        })
                        .help(format!(
                            "{} [env: {}] [default: {}]",
                            plain(s.what),
                            s.env(),
                            plain(s.default)
                        )),
                )
            })
    }

    fn augment_args_for_update(cmd: Command) -> Command {
        Self::augment_args(cmd)
    }
}

impl clap::FromArgMatches for ServeArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = ServeArgs::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        if let Some(path) = matches.get_one::<PathBuf>("config") {
            self.config = Some(path.clone());
        }
        for s in SETTINGS {
            let Some(long) = s.long() else { continue };
            let values: Vec<&String> = matches
                .get_many::<String>(&long)
                .map(Iterator::collect)
                .unwrap_or_default();
            if !values.is_empty() {
                let joined: Vec<&str> = values.iter().map(|v| v.as_str()).collect();
                self.flags.retain(|(given, _)| given.key != s.key);
                self.flags.push((s, joined.join(",")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_from_the_key() {
        let s = &SETTINGS[0];
        assert_eq!(s.env(), "HERALD_DATA_DIR");
        assert_eq!(s.long().as_deref(), Some("data-dir"));
        let topic = SETTINGS
            .iter()
            .find(|s| s.key == ["default_topic_config", "retention_ms"])
            .unwrap();
        assert_eq!(topic.env(), "HERALD_DEFAULT_TOPIC_CONFIG_RETENTION_MS");
        assert_eq!(topic.file_key(), "retention_ms");
        assert_eq!(topic.long(), None);
    }

    #[test]
    fn keys_are_unique_and_flags_are_top_level() {
        for (i, a) in SETTINGS.iter().enumerate() {
            assert!(
                SETTINGS[i + 1..].iter().all(|b| b.key != a.key),
                "{:?} is declared twice",
                a.key
            );
            if a.flag.is_some() {
                assert_eq!(
                    a.key.len(),
                    1,
                    "{:?}: only top-level keys get a flag",
                    a.key
                );
            }
        }
    }

    #[test]
    fn help_text_is_plain() {
        assert_eq!(
            plain("see [the page](x.md) for `a`; [b] stays"),
            "see the page for a; [b] stays"
        );
    }
}
