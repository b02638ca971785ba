//! `herald produce TOPIC [VALUE]`: one record from the argument, or one record per line
//! of standard input, sent in batches.

use std::{
    io::{BufRead, IsTerminal},
    time::Duration,
};

use clap::Args;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::key_value;
use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output,
};

/// Records per request when reading standard input.
const LINES_PER_REQUEST: usize = 500;
/// Bytes of values per request when reading standard input.
const BYTES_PER_REQUEST: usize = 512 * 1024;

/// Arguments of `herald produce`.
#[derive(Debug, Args)]
pub(crate) struct ProduceArgs {
    /// Topic to produce to.
    topic: String,
    /// The record's value; without it, each line of standard input is one record.
    value: Option<String>,
    /// Record key (the partition is chosen from it as Kafka's default partitioner does).
    #[arg(long, short)]
    key: Option<String>,
    /// A record header (repeatable).
    #[arg(long = "header", short = 'H', value_name = "KEY=VALUE", value_parser = key_value)]
    headers: Vec<(String, String)>,
    /// Partition to write to [default: from the key, else round-robin]
    #[arg(long, short)]
    partition: Option<i32>,
    #[command(flatten)]
    client: ClientArgs,
}

fn record(args: &ProduceArgs, value: String) -> Value {
    let mut r = Map::new();
    if let Some(k) = &args.key {
        r.insert("key".into(), Value::String(k.clone()));
    }
    r.insert("value".into(), Value::String(value));
    if !args.headers.is_empty() {
        let headers: Vec<Value> = args
            .headers
            .iter()
            .map(|(k, v)| json!({ "key": k, "value": v }))
            .collect();
        r.insert("headers".into(), Value::Array(headers));
    }
    if let Some(p) = args.partition {
        r.insert("partition".into(), p.into());
    }
    Value::Object(r)
}

async fn send(c: &Client, topic: &str, records: Vec<Value>) -> Result<Vec<Value>, CliError> {
    let body = json!({ "records": records });
    let resp = c
        .send(
            Method::POST,
            c.url(&["topics", topic, "records"]),
            Some(&body),
            Duration::from_secs(60),
        )
        .await?;
    Ok(resp["offsets"].as_array().cloned().unwrap_or_default())
}

/// Runs `herald produce`.
pub(crate) async fn produce(args: ProduceArgs) -> Result<(), CliError> {
    let c = Client::new(&args.client)?;
    let mut offsets = Vec::new();
    if let Some(value) = args.value.clone() {
        offsets = send(&c, &args.topic, vec![record(&args, value)]).await?;
    } else {
        let stdin = std::io::stdin();
        if stdin.is_terminal() {
            eprintln!("type one record per line; end with Ctrl-D");
        }
        let mut batch = Vec::new();
        let mut batch_bytes = 0;
        for line in stdin.lock().lines() {
            let line =
                line.map_err(|e| CliError::runtime(format!("cannot read standard input: {e}")))?;
            batch_bytes += line.len();
            batch.push(record(&args, line));
            if batch.len() >= LINES_PER_REQUEST || batch_bytes >= BYTES_PER_REQUEST {
                offsets.extend(send(&c, &args.topic, std::mem::take(&mut batch)).await?);
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            offsets.extend(send(&c, &args.topic, batch).await?);
        }
    }
    if args.client.output == Output::Json {
        return output::json(&json!({ "topic": args.topic, "offsets": offsets }));
    }
    match offsets.as_slice() {
        [] => eprintln!("nothing to produce: standard input was empty"),
        [one] => println!(
            "produced 1 record to {}: partition {} offset {}",
            args.topic,
            output::cell(&one["partition"]),
            output::cell(&one["offset"])
        ),
        many => println!("produced {} records to {}", many.len(), args.topic),
    }
    Ok(())
}
