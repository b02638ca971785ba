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
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use base64::Engine;
use clap::{Args, Subcommand};
use herald::{
    DeadLetter, DeadLetterFilter, DeadLetterQueue, KafkaTransport, ReplayTarget,
    dlq::{DeadLetterKind, DlqCounts},
    transport::kafka::KafkaConfig,
};
use serde_json::{Value, json};

use crate::{client::Output, error::CliError, output};

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

/// Runs `herald dlq ...`.
pub(crate) async fn dlq(command: DlqCommand) -> Result<(), CliError> {
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
    let transport =
        KafkaTransport::new(KafkaConfig::new(queue.bootstrap.clone()).with_client_id("herald-cli"))
            .map_err(|e| CliError::runtime(format!("cannot create a Kafka client: {e}")))?;
    Ok(DeadLetterQueue::new(transport, &queue.topic, &queue.group))
}

fn failed(e: herald::dlq::DlqError) -> CliError {
    CliError::runtime(format!("dead-letter operation failed: {e}"))
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
