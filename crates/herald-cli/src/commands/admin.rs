//! `herald topics ...` and `herald groups ...`.

use std::time::Duration;

use clap::Subcommand;
use reqwest::Method;
use serde_json::{Map, Value, json};

use super::{field, key_value};
use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output::{self, cell},
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

/// `herald groups` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum GroupsCommand {
    /// List consumer groups with their state, members and total lag.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Show a group's members, committed offsets and lag per partition.
    Describe {
        /// Group id.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn rows(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Runs a `herald topics` subcommand.
pub(crate) async fn topics(command: TopicsCommand) -> Result<(), CliError> {
    match command {
        TopicsCommand::List { client: args } => {
            let c = Client::new(&args)?;
            let list = c.get(&["topics"]).await?;
            if args.output == Output::Json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = rows(field(&list, "topics")?)
                .iter()
                .map(|t| {
                    vec![
                        cell(&t["name"]),
                        cell(&t["partition_count"]),
                        cell(&t["records"]),
                        output::bytes(u64_of(&t["size_bytes"])),
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
            let mut body = json!({ "name": name });
            if let Some(p) = partitions {
                body["partitions"] = p.into();
            }
            let configs: Map<String, Value> = configs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            body["configs"] = Value::Object(configs);
            let created = c
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
                cell(&created["name"]),
                cell(&created["partition_count"])
            );
            Ok(())
        }
        TopicsCommand::Describe { name, client: args } => {
            let c = Client::new(&args)?;
            let t = c.get(&["topics", &name]).await?;
            if args.output == Output::Json {
                return output::json(&t);
            }
            println!("topic       {}", cell(&t["name"]));
            println!("id          {}", cell(&t["id"]));
            println!("partitions  {}", cell(&t["partition_count"]));
            println!();
            let parts: Vec<Vec<String>> = rows(field(&t, "partitions")?)
                .iter()
                .map(|p| {
                    vec![
                        cell(&p["partition"]),
                        cell(&p["log_start_offset"]),
                        cell(&p["high_watermark"]),
                        output::bytes(u64_of(&p["size_bytes"])),
                    ]
                })
                .collect();
            output::table(
                &["PARTITION", "LOG-START", "HIGH-WATERMARK", "SIZE"],
                &parts,
            );
            println!();
            let configs: Vec<Vec<String>> = field(&t, "configs")?
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| vec![k.clone(), cell(&v["value"]), cell(&v["source"])])
                        .collect()
                })
                .unwrap_or_default();
            output::table(&["CONFIG", "VALUE", "SOURCE"], &configs);
            Ok(())
        }
        TopicsCommand::Delete { name, client: args } => {
            let c = Client::new(&args)?;
            c.send(
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

/// Runs a `herald groups` subcommand.
pub(crate) async fn groups(command: GroupsCommand) -> Result<(), CliError> {
    match command {
        GroupsCommand::List { client: args } => {
            let c = Client::new(&args)?;
            let list = c.get(&["groups"]).await?;
            if args.output == Output::Json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = rows(field(&list, "groups")?)
                .iter()
                .map(|g| {
                    vec![
                        cell(&g["group_id"]),
                        cell(&g["state"]),
                        cell(&g["members"]),
                        cell(&g["lag_messages"]),
                    ]
                })
                .collect();
            if rows.is_empty() {
                eprintln!("no consumer groups yet");
                return Ok(());
            }
            output::table(&["GROUP", "STATE", "MEMBERS", "LAG"], &rows);
            Ok(())
        }
        GroupsCommand::Describe { id, client: args } => {
            let c = Client::new(&args)?;
            let g = c.get(&["groups", &id]).await?;
            if args.output == Output::Json {
                return output::json(&g);
            }
            println!("group       {}", cell(&g["group_id"]));
            println!("state       {}", cell(&g["state"]));
            println!(
                "protocol    {} {}",
                cell(&g["protocol_type"]),
                cell(&g["protocol"])
            );
            println!("generation  {}", cell(&g["generation"]));
            println!("lag         {} messages", cell(&g["lag_messages"]));
            let members: Vec<Vec<String>> = rows(field(&g, "members")?)
                .iter()
                .map(|m| {
                    let assignment = rows(&m["assignment"])
                        .iter()
                        .map(|a| {
                            let parts: Vec<String> =
                                rows(&a["partitions"]).iter().map(cell).collect();
                            format!("{}[{}]", cell(&a["topic"]), parts.join(","))
                        })
                        .collect::<Vec<_>>()
                        .join(" ");
                    vec![
                        cell(&m["member_id"]),
                        cell(&m["client_id"]),
                        cell(&m["client_host"]),
                        if assignment.is_empty() {
                            "-".into()
                        } else {
                            assignment
                        },
                    ]
                })
                .collect();
            if !members.is_empty() {
                println!();
                output::table(&["MEMBER", "CLIENT", "HOST", "ASSIGNMENT"], &members);
            }
            let offsets: Vec<Vec<String>> = rows(field(&g, "offsets")?)
                .iter()
                .map(|o| {
                    vec![
                        cell(&o["topic"]),
                        cell(&o["partition"]),
                        cell(&o["committed_offset"]),
                        cell(&o["high_watermark"]),
                        cell(&o["lag_messages"]),
                        o["lag_seconds"]
                            .as_f64()
                            .map_or("-".into(), |s| format!("{s:.1}")),
                    ]
                })
                .collect();
            println!();
            output::table(
                &[
                    "TOPIC",
                    "PARTITION",
                    "COMMITTED",
                    "HIGH-WATERMARK",
                    "LAG",
                    "LAG-SECONDS",
                ],
                &offsets,
            );
            Ok(())
        }
    }
}
