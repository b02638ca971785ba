//! `herald tail TOPIC`: prints records. By default the last ten of each partition, then
//! exits; `--from-beginning` or `--offset N` choose where to start, `--follow` keeps
//! printing new records as they arrive (long polls, one task per partition).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use clap::Args;
use herald_api::{
    records::{ConsumeResponse, RecordOut},
    topics::{PartitionInfo, TopicDetail},
};
use reqwest::Method;
use tokio::sync::mpsc;

use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output,
};

/// How long one long poll waits for new records when following.
const FOLLOW_WAIT_MS: u64 = 5_000;

/// Arguments of `herald tail` (the line format is in its `--help`).
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// Topic to read.
    topic: String,
    /// Only this partition [default: all]
    #[arg(long, short)]
    partition: Option<i32>,
    /// Start at the first record still in the log.
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset (in every partition read).
    #[arg(long)]
    offset: Option<i64>,
    /// How many of the last records of each partition to print when no start is given.
    #[arg(long, short = 'n', default_value_t = 10, value_name = "N")]
    last: i64,
    /// Keep printing new records until interrupted.
    #[arg(long, short)]
    follow: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Text of a key, value or header value: as is, `base64:...`, or `null`.
fn text(bytes: Option<&[u8]>) -> String {
    match bytes {
        None => "null".into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => format!("base64:{}", BASE64.encode(b)),
        },
    }
}

fn line(partition: i32, r: &RecordOut) -> String {
    let headers: Vec<String> = r
        .headers
        .iter()
        .map(|h| format!("{}={}", h.key, text(h.value.as_deref())))
        .collect();
    let headers = if headers.is_empty() {
        String::new()
    } else {
        format!(" headers={{{}}}", headers.join(","))
    };
    format!(
        "[{partition}:{}] {} key={}{headers} {}",
        r.offset,
        output::timestamp(r.timestamp),
        text(r.key.as_deref()),
        text(r.value.as_deref()),
    )
}

/// Reads one partition from `offset`, sending each answer's records on `tx`; stops at
/// `end` unless following.
async fn read_partition(
    c: Client,
    topic: String,
    partition: i32,
    mut offset: i64,
    end: i64,
    follow: bool,
    tx: mpsc::Sender<(i32, Vec<RecordOut>)>,
) -> Result<(), CliError> {
    let p = partition.to_string();
    loop {
        if !follow && offset >= end {
            return Ok(());
        }
        let mut url = c.url(&["topics", &topic, "partitions", &p, "records"]);
        let wait = if follow { FOLLOW_WAIT_MS } else { 0 };
        url.query_pairs_mut()
            .append_pair("offset", &offset.to_string())
            .append_pair("wait_ms", &wait.to_string());
        let resp: ConsumeResponse = c
            .send(Method::GET, url, None, Duration::from_millis(wait + 30_000))
            .await?;
        let next = resp.next_offset;
        let records = resp.records;
        if !follow && records.is_empty() && next <= offset {
            // Nothing more below `end` (records deleted by retention meanwhile).
            return Ok(());
        }
        offset = next;
        if !records.is_empty() && tx.send((partition, records)).await.is_err() {
            return Ok(());
        }
    }
}

/// Runs `herald tail`.
pub(crate) async fn tail(args: TailArgs) -> Result<(), CliError> {
    let c = Client::new(&args.client)?;
    let described: TopicDetail = c.get(&["topics", &args.topic]).await?;
    let partitions = described.partitions;
    let count = partitions.len();
    let chosen: Vec<&PartitionInfo> = match args.partition {
        None => partitions.iter().collect(),
        Some(p) => {
            let found: Vec<&PartitionInfo> =
                partitions.iter().filter(|v| v.partition == p).collect();
            if found.is_empty() {
                return Err(CliError::runtime(format!(
                    "topic {} has no partition {p}: it has {count} (0 to {})",
                    args.topic,
                    count.saturating_sub(1)
                )));
            }
            found
        }
    };
    let (tx, mut rx) = mpsc::channel(64);
    let mut tasks = tokio::task::JoinSet::new();
    for p in chosen {
        let partition = p.partition;
        let log_start = p.log_start_offset;
        let hw = p.high_watermark;
        let start = match (args.offset, args.from_beginning) {
            (Some(o), _) => o,
            (None, true) => log_start,
            (None, false) => (hw - args.last.max(0)).max(log_start),
        };
        tasks.spawn(read_partition(
            c.clone(),
            args.topic.clone(),
            partition,
            start,
            hw,
            args.follow,
            tx.clone(),
        ));
    }
    drop(tx);
    let json = args.client.output == Output::Json;
    let mut printed = 0usize;
    while let Some((partition, records)) = rx.recv().await {
        for r in records {
            printed += 1;
            if json {
                let mut r = serde_json::to_value(&r)
                    .map_err(|e| CliError::runtime(format!("cannot print JSON: {e}")))?;
                r["partition"] = partition.into();
                println!("{r}");
            } else {
                println!("{}", line(partition, &r));
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| CliError::runtime(format!("reader task failed: {e}")))??;
    }
    if printed == 0 && !json {
        eprintln!(
            "no records in {} at the chosen offsets; try --from-beginning or --follow",
            args.topic
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_record_prints_on_one_line() {
        let r: RecordOut = serde_json::from_value(json!({"offset": 5, "timestamp": 0, "key": "k",
            "headers": [{"key": "h", "value": "v"}, {"key": "b", "value_base64": "/w=="}],
            "value_base64": "AP8="}))
        .unwrap();
        assert_eq!(
            line(2, &r),
            "[2:5] 1970-01-01T00:00:00.000Z key=k headers={h=v,b=base64:/w==} base64:AP8="
        );
        let bare: RecordOut = serde_json::from_value(
            json!({"offset": 0, "timestamp": 0, "key": null, "headers": [], "value": "x"}),
        )
        .unwrap();
        assert_eq!(line(0, &bare), "[0:0] 1970-01-01T00:00:00.000Z key=null x");
    }
}
