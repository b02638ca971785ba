//! The `herald` command line: `herald serve` runs the broker; `topics`, `groups`,
//! `produce` and `tail` talk to a running one over its HTTP API; `dlq` speaks the Kafka
//! protocol through the SDK, so it also works against Kafka or Redpanda.
//!
//! Exit codes: 0 success, 1 runtime error (including a refused request), 2 usage or
//! configuration error. Every error message says what to do next.
#![deny(missing_docs)]

mod acls;
mod client;
mod commands;
mod dlq;
mod error;
mod output;
mod serve;
mod users;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::{
    commands::{GroupsCommand, ProduceArgs, TailArgs, TopicsCommand},
    serve::ServeArgs,
};

/// Herald: a Kafka-compatible event broker in one binary.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    propagate_version = true,
    after_help = "Start a broker with `herald serve`; the other commands talk to it over HTTP \
                  (--server, default http://127.0.0.1:8080)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the broker: the Kafka API, the HTTP API and /metrics.
    #[command(
        after_help = "Every setting also comes from HERALD_* environment variables and a \
                            TOML file (--config): a flag beats its variable, which beats the \
                            file. docs/configuration.md lists them all. Stop with SIGTERM or \
                            Ctrl-C: requests in flight finish and the logs are synced first."
    )]
    Serve(Box<ServeArgs>),
    /// List, create, describe and delete topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// List and describe consumer groups, with their lag.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Produce records: the VALUE argument, or one record per line of standard input.
    Produce(ProduceArgs),
    /// Print records of a topic: the last ten of each partition, or from an offset.
    #[command(after_help = "Each record is printed as \
                            `[PARTITION:OFFSET] TIMESTAMP key=KEY headers={K=V,...} VALUE`; \
                            bytes that are not UTF-8 show as base64:... \
                            With --output json, one JSON object per line.")]
    Tail(TailArgs),
    /// List, show, replay and discard a consumer group's dead letters (Kafka protocol:
    /// --bootstrap, default 127.0.0.1:9092).
    Dlq {
        #[command(subcommand)]
        command: dlq::DlqCommand,
    },
    /// List, show, register and check schemas in the schema registry (--registry,
    /// default http://127.0.0.1:8081).
    Schemas {
        #[command(flatten)]
        registry: commands::RegistryArgs,
        #[command(subcommand)]
        command: commands::SchemasCommand,
    },
    /// Manage the SCRAM users (SASL, HTTP Basic): of a stopped broker's data directory
    /// with --data-dir, else of the running broker at --server.
    Users {
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Manage Kafka ACLs on the running broker at --server (authorization is on whenever
    /// a listener authenticates; docs/security.md).
    Acls {
        #[command(subcommand)]
        command: acls::AclsCommand,
    },
    /// Run the reference shop (crates/herald-shop) in this process with no external service:
    /// place orders, inject failures, print a summary (`herald demo --help`).
    Demo(commands::DemoArgs),
    /// List saga instances and show one with its history, from a service's database
    /// (--database sqlite:PATH | postgres://...) or its HTTP API (--url).
    Sagas {
        #[command(flatten)]
        source: commands::SagaSource,
        #[command(subcommand)]
        command: commands::SagasCommand,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and exit 0; usage errors exit 2.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Topics { command } => commands::topics(command).await,
            Command::Groups { command } => commands::groups(command).await,
            Command::Produce(args) => commands::produce(args).await,
            Command::Tail(args) => commands::tail(args).await,
            Command::Dlq { command } => dlq::dlq(command).await,
            Command::Schemas { registry, command } => commands::schemas(registry, command).await,
            Command::Demo(args) => commands::demo(args).await,
            Command::Users { command } => users::users(command).await,
            Command::Acls { command } => acls::acls(command).await,
            Command::Sagas { source, command } => commands::sagas(source, command).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
