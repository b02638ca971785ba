//! `herald produce TOPIC [VALUE]`: one record from the argument, or one record per line
//! of standard input, sent in batches.

use std::{
    io::{BufRead, IsTerminal},
    time::Duration,
};

use clap::Args;
use herald_api::records::{
    HeaderIn, HeadersIn, ProduceBody, ProduceResponse, RecordIn, RecordOffset,
};
use reqwest::Method;
use serde_json::Value;

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

fn record(args: &ProduceArgs, value: String) -> RecordIn {
    RecordIn {
        key: args.key.clone(),
        value: Some(Value::String(value)),
        headers: HeadersIn::List(
            args.headers
                .iter()
                .map(|(k, v)| HeaderIn {
                    key: k.clone(),
                    value: Some(v.clone()),
                    value_base64: None,
                })
                .collect(),
        ),
        partition: args.partition,
        ..RecordIn::default()
    }
}

async fn send(
    c: &Client,
    topic: &str,
    records: Vec<RecordIn>,
) -> Result<Vec<RecordOffset>, CliError> {
    let body = serde_json::to_value(ProduceBody { records })
        .map_err(|e| CliError::runtime(format!("cannot encode the request: {e}")))?;
    let resp: ProduceResponse = c
        .send(
            Method::POST,
            c.url(&["topics", topic, "records"]),
            Some(&body),
            Duration::from_secs(60),
        )
        .await?;
    Ok(resp.offsets)
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
        return output::json(&ProduceResponse {
            topic: args.topic,
            offsets,
        });
    }
    match offsets.as_slice() {
        [] => eprintln!("nothing to produce: standard input was empty"),
        [one] => println!(
            "produced 1 record to {}: partition {} offset {}",
            args.topic, one.partition, one.offset
        ),
        many => println!("produced {} records to {}", many.len(), args.topic),
    }
    Ok(())
}
