//! `herald groups ...`: consumer groups, their members, offsets and lag over the HTTP API.

use clap::Subcommand;
use herald_api::groups::{GroupDetail, GroupList};

use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output,
};

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

/// `-` for none, else the value.
fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Runs a `herald groups` subcommand.
pub(crate) async fn groups(command: GroupsCommand) -> Result<(), CliError> {
    match command {
        GroupsCommand::List { client: args } => {
            let c = Client::new(&args)?;
            let list: GroupList = c.get(&["groups"]).await?;
            if args.output == Output::Json {
                return output::json(&list);
            }
            let rows: Vec<Vec<String>> = list
                .groups
                .iter()
                .map(|g| {
                    vec![
                        g.group_id.clone(),
                        g.state.clone(),
                        g.members.to_string(),
                        g.lag_messages.to_string(),
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
            let g: GroupDetail = c.get(&["groups", &id]).await?;
            if args.output == Output::Json {
                return output::json(&g);
            }
            describe(&g);
            Ok(())
        }
    }
}

fn describe(g: &GroupDetail) {
    println!("group       {}", g.group_id);
    println!("state       {}", g.state);
    println!("protocol    {} {}", g.protocol_type, g.protocol);
    println!("generation  {}", g.generation);
    println!("lag         {} messages", g.lag_messages);
    let members: Vec<Vec<String>> = g
        .members
        .iter()
        .map(|m| {
            let assignment = m
                .assignment
                .iter()
                .flatten()
                .map(|a| {
                    let parts: Vec<String> = a.partitions.iter().map(i32::to_string).collect();
                    format!("{}[{}]", a.topic, parts.join(","))
                })
                .collect::<Vec<_>>()
                .join(" ");
            vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.client_host.clone(),
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
    let offsets: Vec<Vec<String>> = g
        .offsets
        .iter()
        .map(|o| {
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                o.committed_offset.to_string(),
                or_dash(o.high_watermark),
                or_dash(o.lag_messages),
                o.lag_seconds.map_or("-".into(), |s| format!("{s:.1}")),
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
}
