//! `herald dlq`: the dead letters of a consumer group, over the Kafka protocol.
//!
//! Unlike the other client commands this one does not use the HTTP API: it reads and
//! writes the dead-letter topic (`<topic>.<group>.dlq`) through the SDK's
//! [`KafkaTransport`], so it works unchanged against Apache Kafka or Redpanda. A letter's
//! id is its event id; `P:O` (its partition and offset in the dead-letter topic, as
//! `list` prints it) also works where an event id is ambiguous.
//!
//! With `--output json` every subcommand prints one JSON document on stdout, the same
//! documents the HTTP API's `/api/v1/dlq` routes answer (docs/http-api.md): `list` an
//! object with `topic`, `group`, `dlq_topic`, `count`, `failed`, `parked` and `letters`;
//! `show` one letter (`id`, `letter`, `kind`, `group`, `key`, `reason`, `error_chain`,
//! `attempts`, `first_failure`, `last_failure`, `blocked_by`, `traceparent`, `original`
//! {`topic`, `partition`, `offset`}, `headers` [{`key`, `value`}], `payload`); `replay`
//! and `discard` `{"matched", "replayed", "discarded"}`. Bytes are UTF-8 text, or
//! `base64:...` when they are not; times are RFC 3339 UTC. Errors still go to stderr with
//! the exit codes of every command, and a confirmation prompt goes to stderr.

use std::{
    io::{BufRead, IsTerminal, Write},
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use clap::{Args, Subcommand, ValueEnum};
use herald::{
    DeadLetter, DeadLetterFilter, DeadLetterQueue, KafkaTransport, ReplayTarget,
    dlq::{DeadLetterKind, DlqCounts},
    transport::kafka::KafkaConfig,
};
use serde_json::{Value, json};

use crate::{
    client::{Output, credentials},
    error::CliError,
    output,
};

/// How long to wait for a TCP connection to a bootstrap server before saying there is
/// no broker.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `herald dlq ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DlqCommand {
    /// List the unresolved dead letters of a group, with counts.
    List {
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        filter: FilterArgs,
    },
    /// Print one dead letter in full: headers, payload and error chain.
    Show {
        /// The letter's event id (or `P:O` in the dead-letter topic).
        id: String,
        #[command(flatten)]
        queue: QueueArgs,
    },
    /// Publish dead letters back to their original topic and partition, keeping their ids.
    Replay {
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        select: SelectArgs,
        /// Only the dead letter's group handles the replayed events; other groups skip
        /// them. Without it every group on the topic sees them (groups with an inbox that
        /// handled them already skip them by id).
        #[arg(long)]
        to_group_only: bool,
    },
    /// Mark dead letters resolved without replaying them (releasing a sequenced key).
    Discard {
        #[command(flatten)]
        queue: QueueArgs,
        #[command(flatten)]
        select: SelectArgs,
    },
}

/// Which broker and which dead-letter topic.
#[derive(Debug, Args)]
pub(crate) struct QueueArgs {
    /// Kafka bootstrap servers (`host:port[,host:port...]`).
    #[arg(long, env = "HERALD_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    bootstrap: String,
    /// The topic the events were consumed from.
    #[arg(long)]
    topic: String,
    /// The consumer group that dead-lettered them.
    #[arg(long)]
    group: String,
    /// Output format: `json` prints one JSON document (the HTTP API's shape)
    #[arg(long, short, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(flatten)]
    security: SecurityArgs,
}

/// Kafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum SecurityProtocol {
    /// No TLS, no SASL.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    fn parse(name: &str) -> Option<Self> {
        Self::from_str(name, true).ok()
    }

    fn sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }

    fn tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

/// Kafka's `sasl.mechanism`, of those librdkafka speaks without Kerberos or OAuth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SaslMechanism {
    /// User name and password in the clear (over TLS only, please).
    #[value(name = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// How to reach a secured Kafka listener, as Kafka clients are configured.
#[derive(Debug, Clone, Args)]
pub(crate) struct SecurityArgs {
    /// Kafka security protocol [default: PLAINTEXT, or the --kafka-config file's]
    #[arg(
        long,
        env = "HERALD_KAFKA_SECURITY_PROTOCOL",
        value_enum,
        ignore_case = true,
        value_name = "PROTOCOL"
    )]
    security_protocol: Option<SecurityProtocol>,
    /// SASL mechanism for SASL_PLAINTEXT and SASL_SSL [default: SCRAM-SHA-512]
    #[arg(
        long,
        env = "HERALD_KAFKA_SASL_MECHANISM",
        value_enum,
        ignore_case = true,
        value_name = "MECHANISM"
    )]
    sasl_mechanism: Option<SaslMechanism>,
    /// SASL user; the password comes from the HERALD_PASSWORD environment variable,
    /// never from the command line
    #[arg(long, env = "HERALD_USER", value_name = "NAME")]
    user: Option<String>,
    /// CA certificate (PEM) that signed the broker's certificate, for SSL and SASL_SSL
    /// (librdkafka's ssl.ca.location) [default: the system's CAs]
    #[arg(long, env = "HERALD_CA_FILE", value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// librdkafka properties file, one `key=value` a line, `#` comments (like kcat -F);
    /// the flags above override it
    #[arg(long, value_name = "FILE")]
    kafka_config: Option<PathBuf>,
}

/// Whether the option's value is the environment variable's (not a flag's).
fn from_env(var: &str, value: impl AsRef<std::ffi::OsStr>) -> bool {
    std::env::var_os(var).is_some_and(|v| v == value.as_ref())
}

/// The librdkafka `key=value` properties of a file like kcat's `-F`: blank lines and
/// lines starting with `#` are skipped, keys and values trimmed.
fn read_properties(path: &Path) -> Result<Vec<(String, String)>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::usage(format!(
            "--kafka-config {}: cannot read it: {e}",
            path.display()
        ))
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => {
                out.push((k.trim().to_owned(), v.trim().to_owned()))
            }
            _ => {
                return Err(CliError::usage(format!(
                    "--kafka-config {} line {}: expected key=value (a librdkafka property, \
                     e.g. security.protocol=SASL_SSL), got {line:?}",
                    path.display(),
                    n + 1
                )));
            }
        }
    }
    Ok(out)
}

impl SecurityArgs {
    /// The transport's settings for `bootstrap`: the file's properties, then the flags.
    fn kafka_config(&self, bootstrap: &str) -> Result<KafkaConfig, CliError> {
        let mut config = KafkaConfig::new(bootstrap).with_client_id("herald-cli");
        let mut file_protocol = None;
        let mut file_user = false;
        if let Some(path) = &self.kafka_config {
            for (k, v) in read_properties(path)? {
                match k.as_str() {
                    "security.protocol" => {
                        file_protocol = Some(SecurityProtocol::parse(&v).ok_or_else(|| {
                            CliError::usage(format!(
                                "--kafka-config {}: security.protocol={v} is not one of \
                                 PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
                                path.display()
                            ))
                        })?)
                    }
                    "sasl.username" => file_user = true,
                    _ => {}
                }
                config = config.set(k, v);
            }
        }
        let protocol = self
            .security_protocol
            .or(file_protocol)
            .unwrap_or(SecurityProtocol::Plaintext);
        config = config.set("security.protocol", protocol.name());
        if !protocol.sasl() {
            // HERALD_USER and HERALD_CA_FILE also serve the HTTP commands: set in the
            // environment, they are no mistake on a listener without SASL or TLS.
            if let Some(user) = self.user.as_ref().filter(|u| !from_env("HERALD_USER", u)) {
                return Err(CliError::usage(format!(
                    "--user {user:?} logs in with SASL, but the security protocol is {}: add \
                     --security-protocol SASL_SSL (or SASL_PLAINTEXT), or drop --user (and \
                     HERALD_USER)",
                    protocol.name()
                )));
            }
            if self.sasl_mechanism.is_some() {
                return Err(CliError::usage(format!(
                    "--sasl-mechanism needs a SASL security protocol, not {}: add \
                     --security-protocol SASL_SSL (or SASL_PLAINTEXT)",
                    protocol.name()
                )));
            }
        } else {
            match credentials(self.user.as_deref())? {
                Some((user, password)) => {
                    config = config
                        .set("sasl.username", user)
                        .set("sasl.password", password);
                }
                None if !file_user => {
                    return Err(CliError::usage(format!(
                        "{} needs a user: add --user NAME (or set HERALD_USER) with its \
                         password in the HERALD_PASSWORD environment variable",
                        protocol.name()
                    )));
                }
                None => {}
            }
            let file_mechanism = config
                .properties
                .keys()
                .any(|k| k == "sasl.mechanism" || k == "sasl.mechanisms");
            match self.sasl_mechanism {
                Some(m) => {
                    config.properties.remove("sasl.mechanisms");
                    config = config.set("sasl.mechanism", m.name());
                }
                None if !file_mechanism => {
                    config = config.set("sasl.mechanism", SaslMechanism::ScramSha512.name());
                }
                None => {}
            }
        }
        if let Some(ca) = &self.ca_file {
            if !protocol.tls() && from_env("HERALD_CA_FILE", ca) {
                return Ok(config);
            }
            if !protocol.tls() {
                return Err(CliError::usage(format!(
                    "--ca-file is for TLS, but the security protocol is {}: add \
                     --security-protocol SSL (or SASL_SSL), or drop --ca-file (and \
                     HERALD_CA_FILE)",
                    protocol.name()
                )));
            }
            if let Err(e) = std::fs::metadata(ca) {
                return Err(CliError::usage(format!(
                    "--ca-file {}: cannot read it: {e}",
                    ca.display()
                )));
            }
            config = config.set("ssl.ca.location", ca.display().to_string());
        }
        Ok(config)
    }
}

/// Conditions on the letters; all must hold.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only letters whose reason contains this text.
    #[arg(long)]
    reason: Option<String>,
    /// Only letters of this record key.
    #[arg(long)]
    key: Option<String>,
    /// Only letters whose last failure is at or after this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    since: Option<SystemTime>,
    /// Only letters whose last failure is before this RFC 3339 time.
    #[arg(long, value_parser = parse_time)]
    until: Option<SystemTime>,
}

impl FilterArgs {
    fn is_empty(&self) -> bool {
        self.reason.is_none() && self.key.is_none() && self.since.is_none() && self.until.is_none()
    }

    fn to_filter(&self) -> DeadLetterFilter {
        let mut f = DeadLetterFilter::all().between(self.since, self.until);
        if let Some(r) = &self.reason {
            f = f.reason_contains(r.clone());
        }
        if let Some(k) = &self.key {
            f = f.key(k.clone().into_bytes());
        }
        f
    }
}

/// Which letters a replay or discard applies to.
#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// One letter, by event id (or `P:O`).
    #[arg(long, conflicts_with = "all")]
    id: Option<String>,
    /// Every unresolved letter of the group.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    filter: FilterArgs,
    /// Do not ask for confirmation (required without a terminal for --all and filters).
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Runs `herald dlq ...` on a runtime of its own. After a failure (a refused login above
/// all) the transport's librdkafka calls may block until their own timeouts (30 s); the
/// command exits at once instead of waiting for them.
pub(crate) async fn dlq(command: DlqCommand) -> Result<(), CliError> {
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| CliError::runtime(format!("cannot start the async runtime: {e}")))?;
        let result = runtime.block_on(run(command));
        match result {
            // What is left is closing the clients, quick once nothing waits on them.
            Ok(()) => runtime.shutdown_timeout(Duration::from_secs(5)),
            Err(_) => runtime.shutdown_background(),
        }
        result
    })
    .await
    .map_err(|e| CliError::runtime(format!("herald dlq stopped: {e}")))?
}

async fn run(command: DlqCommand) -> Result<(), CliError> {
    match command {
        DlqCommand::List { queue, filter } => {
            let q = open(&queue).await?;
            let letters = q.list(&filter.to_filter()).await.map_err(failed)?;
            match queue.output {
                Output::Table => print_list(&letters),
                Output::Json => {
                    output::json(&list_json(&queue.topic, &queue.group, q.topic(), &letters))?
                }
            }
            Ok(())
        }
        DlqCommand::Show { id, queue } => {
            let q = open(&queue).await?;
            let letter = find(&q, &queue, &id).await?;
            match queue.output {
                Output::Table => print_letter(q.topic(), &letter),
                Output::Json => output::json(&letter_json(&letter))?,
            }
            Ok(())
        }
        DlqCommand::Replay {
            queue,
            select,
            to_group_only,
        } => {
            let target = if to_group_only {
                ReplayTarget::OwnGroup
            } else {
                ReplayTarget::AllGroups
            };
            check_selection(&queue, &select, "replay")?;
            let q = open(&queue).await?;
            let Some(filter) = selection(&q, &queue, &select, "replay").await? else {
                return Ok(());
            };
            let counts = q.replay(&filter, target).await.map_err(failed)?;
            match queue.output {
                Output::Table => println!(
                    "matched {}, replayed {} to {}{}",
                    counts.matched,
                    counts.replayed,
                    queue.topic,
                    if to_group_only {
                        format!(" (group {} only)", queue.group)
                    } else {
                        String::new()
                    }
                ),
                Output::Json => output::json(&counts_json(counts))?,
            }
            Ok(())
        }
        DlqCommand::Discard { queue, select } => {
            check_selection(&queue, &select, "discard")?;
            let q = open(&queue).await?;
            let Some(filter) = selection(&q, &queue, &select, "discard").await? else {
                return Ok(());
            };
            let counts = q.discard(&filter).await.map_err(failed)?;
            match queue.output {
                Output::Table => {
                    println!("matched {}, discarded {}", counts.matched, counts.discarded)
                }
                Output::Json => output::json(&counts_json(counts))?,
            }
            Ok(())
        }
    }
}

/// The dead-letter queue of `queue`, after checking that a broker answers.
async fn open(queue: &QueueArgs) -> Result<DeadLetterQueue<KafkaTransport>, CliError> {
    // Mistakes in the security options first: they need no broker to show.
    let config = queue.security.kafka_config(&queue.bootstrap)?;
    let servers: Vec<&str> = queue
        .bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err(CliError::usage(
            "--bootstrap is empty: give host:port of a broker",
        ));
    }
    // librdkafka retries an unreachable broker until its own timeouts; a plain TCP
    // connection first turns "nothing listens there" into an immediate, clear error.
    let mut reachable = false;
    for server in &servers {
        if let Ok(Ok(_)) =
            tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(server)).await
        {
            reachable = true;
            break;
        }
    }
    if !reachable {
        return Err(CliError::runtime(format!(
            "no broker at {}: start one with `herald serve` (or point --bootstrap / \
             HERALD_BOOTSTRAP at a Kafka cluster)",
            queue.bootstrap
        )));
    }
    let transport = KafkaTransport::new(config).map_err(|e| {
        CliError::usage(format!(
            "cannot create a Kafka client: {e} (check --security-protocol, --sasl-mechanism, \
             --ca-file and the --kafka-config file)"
        ))
    })?;
    Ok(DeadLetterQueue::new(transport, &queue.topic, &queue.group))
}

fn failed(e: herald::dlq::DlqError) -> CliError {
    let e = e.to_string();
    // The transport names librdkafka's properties; say which flags set them.
    let hint = if e.contains("the broker refused the connection") {
        " (here: --user or HERALD_USER with HERALD_PASSWORD, --sasl-mechanism, --ca-file or \
         HERALD_CA_FILE, and --security-protocol)"
    } else {
        ""
    };
    CliError::runtime(format!("dead-letter operation failed: {e}{hint}"))
}

/// How to see the ids, for error messages.
fn list_hint(queue: &QueueArgs) -> String {
    format!(
        "`herald dlq list --topic {} --group {}` shows the ids",
        queue.topic, queue.group
    )
}

/// The letters `id` names: its event id, or `P:O` in the dead-letter topic.
async fn by_id(q: &DeadLetterQueue<KafkaTransport>, id: &str) -> Result<Vec<DeadLetter>, CliError> {
    let all = q.list(&DeadLetterFilter::all()).await.map_err(failed)?;
    Ok(all
        .into_iter()
        .filter(|l| l.event_id == id || l.letter_id() == id)
        .collect())
}

async fn find(
    q: &DeadLetterQueue<KafkaTransport>,
    queue: &QueueArgs,
    id: &str,
) -> Result<DeadLetter, CliError> {
    let mut found = by_id(q, id).await?;
    match found.len() {
        0 => Err(CliError::runtime(format!(
            "no unresolved dead letter {id:?} in {}: {}",
            q.topic(),
            list_hint(queue)
        ))),
        _ => Ok(found.remove(0)),
    }
}

/// Checks that a replay or discard says which letters, before any connection is made.
fn check_selection(queue: &QueueArgs, select: &SelectArgs, verb: &str) -> Result<(), CliError> {
    if select.id.is_some() && !select.filter.is_empty() {
        return Err(CliError::usage(format!(
            "--id selects one letter: drop --reason/--key/--since/--until, or {verb} by \
             filter without --id"
        )));
    }
    if select.id.is_none() && !select.all && select.filter.is_empty() {
        return Err(CliError::usage(format!(
            "say which letters to {verb}: --id ID, --all, or filters (--reason, --key, \
             --since, --until); {}",
            list_hint(queue)
        )));
    }
    Ok(())
}

/// The filter of a replay or discard, once confirmed; `None` when the user declined.
async fn selection(
    q: &DeadLetterQueue<KafkaTransport>,
    queue: &QueueArgs,
    select: &SelectArgs,
    verb: &str,
) -> Result<Option<DeadLetterFilter>, CliError> {
    if let Some(id) = &select.id {
        let found = by_id(q, id).await?;
        let Some(letter) = found.first() else {
            return Err(CliError::runtime(format!(
                "no unresolved dead letter {id:?} in {}: {}",
                q.topic(),
                list_hint(queue)
            )));
        };
        return Ok(Some(DeadLetterFilter::event(letter.event_id.clone())));
    }
    let filter = select.filter.to_filter();
    if select.yes {
        return Ok(Some(filter));
    }
    let n = q.list(&filter).await.map_err(failed)?.len();
    if n == 0 {
        return Ok(Some(filter));
    }
    if !std::io::stdin().is_terminal() {
        return Err(CliError::usage(format!(
            "{verb} of {n} dead letter(s) needs confirmation: add --yes"
        )));
    }
    // The prompt goes to stderr under --output json, so stdout stays one JSON document.
    let prompt = format!("{verb} {n} dead letter(s) of {}? [y/N] ", q.topic());
    match queue.output {
        Output::Table => {
            print!("{prompt}");
            let _ = std::io::stdout().flush();
        }
        Output::Json => {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
    }
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CliError::runtime(format!("cannot read the answer: {e}")))?;
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(Some(filter))
    } else {
        match queue.output {
            Output::Table => println!("nothing done"),
            Output::Json => output::json(&counts_json(DlqCounts::default()))?,
        }
        Ok(None)
    }
}

pub(crate) fn time(t: SystemTime) -> String {
    let ms = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    };
    output::timestamp(ms)
}

/// Bytes as UTF-8 text, or `base64:...` when they are not.
pub(crate) fn text(b: Option<&[u8]>) -> String {
    match b {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_owned(),
            Err(_) => format!(
                "base64:{}",
                base64::engine::general_purpose::STANDARD.encode(b)
            ),
        },
    }
}

pub(crate) fn kind_name(k: DeadLetterKind) -> &'static str {
    match k {
        DeadLetterKind::Failed => "failed",
        DeadLetterKind::Parked => "parked",
    }
}

/// A letter as JSON (`show`, and each of `list`'s letters; also the HTTP API's).
pub(crate) fn letter_json(l: &DeadLetter) -> Value {
    json!({
        "id": l.event_id,
        "letter": l.letter_id(),
        "kind": kind_name(l.kind),
        "group": l.group,
        "key": l.key.as_deref().map(|k| text(Some(k))),
        "reason": l.failure.reason,
        "error_chain": l.failure.error_chain,
        "attempts": l.failure.attempts,
        "first_failure": time(l.failure.first_failure),
        "last_failure": time(l.failure.last_failure),
        "blocked_by": l.blocked_by,
        "traceparent": l.traceparent,
        "original": {
            "topic": l.original_topic,
            "partition": l.original_partition,
            "offset": l.original_offset,
        },
        "headers": l.headers.iter()
            .map(|h| json!({ "key": h.key, "value": h.value.as_deref().map(|v| text(Some(v))) }))
            .collect::<Vec<_>>(),
        "payload": l.value.as_deref().map(|v| text(Some(v))),
    })
}

/// A group's letters with their counts as JSON (`list`; also the HTTP API's).
pub(crate) fn list_json(
    topic: &str,
    group: &str,
    dlq_topic: &str,
    letters: &[DeadLetter],
) -> Value {
    let failed = letters
        .iter()
        .filter(|l| l.kind == DeadLetterKind::Failed)
        .count();
    json!({
        "topic": topic,
        "group": group,
        "dlq_topic": dlq_topic,
        "count": letters.len(),
        "failed": failed,
        "parked": letters.len() - failed,
        "letters": letters.iter().map(letter_json).collect::<Vec<_>>(),
    })
}

/// What a replay or discard did, as JSON (also the HTTP API's).
pub(crate) fn counts_json(c: DlqCounts) -> Value {
    json!({ "matched": c.matched, "replayed": c.replayed, "discarded": c.discarded })
}

fn print_list(letters: &[DeadLetter]) {
    let rows: Vec<Vec<String>> = letters
        .iter()
        .map(|l| {
            vec![
                l.event_id.clone(),
                l.letter_id(),
                text(l.key.as_deref()),
                kind_name(l.kind).into(),
                l.failure.reason.clone(),
                l.failure.attempts.to_string(),
                time(l.failure.first_failure),
                time(l.failure.last_failure),
                format!(
                    "{}/{}:{}",
                    l.original_topic, l.original_partition, l.original_offset
                ),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "LETTER",
            "KEY",
            "KIND",
            "REASON",
            "ATTEMPTS",
            "FIRST FAILURE",
            "LAST FAILURE",
            "ORIGINAL",
        ],
        &rows,
    );
    let failed = letters
        .iter()
        .filter(|l| l.kind == DeadLetterKind::Failed)
        .count();
    println!(
        "{} dead letter(s): {failed} failed, {} parked",
        letters.len(),
        letters.len() - failed
    );
}

fn print_letter(topic: &str, l: &DeadLetter) {
    let mut out = std::io::stdout().lock();
    let mut line = |k: &str, v: &str| {
        let _ = writeln!(out, "{k:<16}{v}");
    };
    line("id", &l.event_id);
    line("letter", &format!("{topic}:{}", l.letter_id()));
    line("kind", kind_name(l.kind));
    line("group", &l.group);
    line(
        "original",
        &format!(
            "{} partition {} offset {}",
            l.original_topic, l.original_partition, l.original_offset
        ),
    );
    line("key", &text(l.key.as_deref()));
    line("reason", &l.failure.reason);
    line("attempts", &l.failure.attempts.to_string());
    line("first failure", &time(l.failure.first_failure));
    line("last failure", &time(l.failure.last_failure));
    if let Some(b) = &l.blocked_by {
        line("blocked by", b);
    }
    if let Some(t) = &l.traceparent {
        line("traceparent", t);
    }
    let _ = writeln!(out, "error chain:");
    for (i, e) in l.failure.error_chain.iter().enumerate() {
        let _ = writeln!(out, "  {i}: {e}");
    }
    let _ = writeln!(out, "headers:");
    for h in &l.headers {
        let _ = writeln!(out, "  {}={}", h.key, text(h.value.as_deref()));
    }
    let _ = writeln!(out, "payload:");
    let _ = writeln!(out, "{}", text(l.value.as_deref()));
}

/// Parses an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)`, with the
/// SDK's parser (the one that reads CloudEvents `time` attributes).
pub(crate) fn parse_time(s: &str) -> Result<SystemTime, String> {
    herald::rfc3339::parse(s)
        .map_err(|e| format!("{s:?} is not an RFC 3339 time like 2024-05-01T12:30:00Z ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_parse_with_offsets_and_fractions() {
        let t = |s| {
            parse_time(s)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis()
        };
        assert_eq!(t("2023-11-14T22:13:20Z"), 1_700_000_000_000);
        assert_eq!(t("2023-11-14T22:13:20.123Z"), 1_700_000_000_123);
        assert_eq!(t("2023-11-15T00:13:20+02:00"), 1_700_000_000_000);
        assert_eq!(t("2000-02-29T00:00:00Z"), 951_782_400_000);
        assert!(parse_time("2023-11-14").is_err());
        assert!(parse_time("2023-11-14T22:13:20").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}
