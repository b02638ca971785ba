//! `herald topics ...`: list, create, describe and delete topics over the HTTP API.

use std::time::Duration;

use clap::Subcommand;
use herald_api::topics::{ConfigInput, CreateTopic, TopicDetail, TopicList};
use reqwest::Method;
use serde_json::json;

use super::key_value;
use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output,
};

/// `herald topics` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopicsCommand {
    /// List topics with their partition count, records and size.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Create a topic.
    Create {
        /// Topic name: letters, digits, '.', '_' and '-'.
        name: String,
        /// Partition count [default: the broker's default_partitions]
        #[arg(long, short)]
        partitions: Option<i32>,
        /// A topic setting such as retention.ms=86400000 (repeatable).
        #[arg(long = "config", short = 'c', value_name = "KEY=VALUE", value_parser = key_value)]
        configs: Vec<(String, String)>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a topic's partitions (offsets, size) and settings.
    Describe {
        /// Topic name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete a topic and all its records.
    Delete {
        /// Topic name.
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a `herald topics` subcommand.
pub(crate) async fn topics(command: TopicsCommand) -> Result<(), CliError> {
    match command {
        TopicsCommand::List { client: args } => {
            let c = Client::new(&args)?;
            let list: TopicList = c.get(&["topics"]).await?;
            if args.output == Output::Json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .topics
                .iter()
                .map(|t| {
                    vec![
                        t.name.clone(),
                        t.partition_count.to_string(),
                        t.records.to_string(),
                        output::bytes(t.size_bytes),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("no topics yet: create one with `herald topics create NAME`");
                return Ok(());
            }
            output::table(&["TOPIC", "PARTITIONS", "RECORDS", "SIZE"], &rows);
            Ok(())
        }
        TopicsCommand::Create {
            name,
            partitions,
            configs,
            client: args,
        } => {
            let c = Client::new(&args)?;
            let body = CreateTopic {
                name,
                partitions,
                configs: configs
                    .into_iter()
                    .map(|(k, v)| (k, ConfigInput::Text(v)))
                    .collect(),
            };
            let body = serde_json::to_value(&body)
                .map_err(|e| CliError::runtime(format!("cannot encode the request: {e}")))?;
            let created: TopicDetail = c
                .send(
                    Method::POST,
                    c.url(&["topics"]),
                    Some(&body),
                    Duration::from_secs(60),
                )
                .await?;
            if args.output == Output::Json {
                return output::json(&created);
            }
            println!(
                "created topic {} with {} partition(s)",
                created.name, created.partition_count
            );
            Ok(())
        }
        TopicsCommand::Describe { name, client: args } => {
            let c = Client::new(&args)?;
            let t: TopicDetail = c.get(&["topics", &name]).await?;
            if args.output == Output::Json {
                return output::json(&t);
            }
            println!("topic       {}", t.name);
            println!("id          {}", t.id);
            println!("partitions  {}", t.partition_count);
            println!();
            let parts: Vec<Vec<String>> = t
                .partitions
                .iter()
                .map(|p| {
                    vec![
                        p.partition.to_string(),
                        p.log_start_offset.to_string(),
                        p.high_watermark.to_string(),
                        output::bytes(p.size_bytes),
                    ]
                })
                .collect();
            output::table(
                &["PARTITION", "LOG-START", "HIGH-WATERMARK", "SIZE"],
                &parts,
            );
            println!();
            let configs: Vec<Vec<String>> = t
                .configs
                .iter()
                .map(|(k, v)| vec![k.clone(), v.value.clone(), v.source.clone()])
                .collect();
            output::table(&["CONFIG", "VALUE", "SOURCE"], &configs);
            Ok(())
        }
        TopicsCommand::Delete { name, client: args } => {
            let c = Client::new(&args)?;
            c.send::<()>(
                Method::DELETE,
                c.url(&["topics", &name]),
                None,
                Duration::from_secs(60),
            )
            .await?;
            if args.output == Output::Json {
                return output::json(&json!({ "deleted": name }));
            }
            println!("deleted topic {name}");
            Ok(())
        }
    }
}
