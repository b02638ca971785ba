//! `herald sagas list|show`: saga instances, their state and history, read from a
//! service's database (`--database`) or from a service's HTTP API that mounts
//! `herald_saga::http::routes` (`--url`).

use std::time::Duration;

use clap::{Args, Subcommand};
use herald_saga::{SagaBackend, SagaFilter, SagaStatus, SagaStore};
use reqwest::Url;
use serde_json::Value;

use crate::{
    client::Output,
    error::CliError,
    output::{self, cell},
};

/// Where the sagas are read from: one of the two.
#[derive(Debug, Clone, Args)]
pub(crate) struct SagaSource {
    /// The service's database: sqlite:PATH (or a .db file path) or postgres://... (its
    /// schema as ?options=-csearch_path%3DNAME)
    #[arg(
        long,
        env = "HERALD_SAGAS_DATABASE",
        value_name = "DATABASE",
        global = true,
        conflicts_with = "url"
    )]
    database: Option<String>,
    /// A service's HTTP API serving GET /sagas (herald_saga::http::routes), e.g.
    /// http://127.0.0.1:3000
    #[arg(long, env = "HERALD_SAGAS_URL", value_name = "URL", global = true)]
    url: Option<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

/// `herald sagas ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SagasCommand {
    /// List saga instances, newest first.
    List {
        /// Only sagas of this type (e.g. order)
        #[arg(long = "type", value_name = "TYPE")]
        saga_type: Option<String>,
        /// Only sagas in this status: running, compensating, completed, compensated, failed
        #[arg(long)]
        status: Option<String>,
        /// At most this many (1 to 1000)
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Skip this many (paging)
        #[arg(long, default_value_t = 0)]
        offset: u64,
    },
    /// Show one saga: its state, its data and its whole history.
    Show {
        /// The saga id
        id: String,
        /// The saga type, when sagas of several types share the id
        #[arg(long = "type", value_name = "TYPE")]
        saga_type: Option<String>,
    },
}

const WHERE: &str = "say where the sagas are: --database sqlite:PATH (the service's database file), \
     --database postgres://... or --url http://HOST:PORT (a service serving GET /sagas); \
     or set HERALD_SAGAS_DATABASE / HERALD_SAGAS_URL";

/// Runs `herald sagas`.
pub(crate) async fn sagas(source: SagaSource, command: SagasCommand) -> Result<(), CliError> {
    // Bad flags are usage errors, found before touching anything.
    if let SagasCommand::List {
        saga_type,
        status,
        limit,
        offset,
    } = &command
    {
        filter(saga_type, status, limit, offset)?;
    }
    let value = match (&source.database, &source.url) {
        (Some(db), _) => from_database(db, &command).await?,
        (None, Some(url)) => from_http(url, &command).await?,
        (None, None) => return Err(CliError::usage(WHERE)),
    };
    match source.output {
        Output::Json => output::json(&value),
        Output::Table => {
            match command {
                SagasCommand::List { .. } => print_list(&value),
                SagasCommand::Show { .. } => print_show(&value),
            }
            Ok(())
        }
    }
}

fn filter(
    saga_type: &Option<String>,
    status: &Option<String>,
    limit: &u32,
    offset: &u64,
) -> Result<SagaFilter, CliError> {
    let status = status
        .as_deref()
        .map(str::parse::<SagaStatus>)
        .transpose()
        .map_err(|e| CliError::usage(format!("--status: {e}")))?;
    if *limit == 0 || *limit > SagaFilter::MAX_LIMIT {
        return Err(CliError::usage(format!(
            "--limit must be 1 to {}, got {limit}",
            SagaFilter::MAX_LIMIT
        )));
    }
    Ok(SagaFilter {
        saga_type: saga_type.clone(),
        status,
        limit: Some(*limit),
        offset: Some(*offset),
    })
}

async fn from_database(database: &str, command: &SagasCommand) -> Result<Value, CliError> {
    if database.starts_with("postgres://") || database.starts_with("postgresql://") {
        let store = SagaStore::connect_existing(database)
            .await
            .map_err(runtime)?;
        query(&store, command).await
    } else {
        let path = database
            .strip_prefix("sqlite://")
            .or_else(|| database.strip_prefix("sqlite:"))
            .or_else(|| (!database.contains("://")).then_some(database))
            .ok_or_else(|| {
                CliError::usage(format!(
                    "--database {database:?}: expected sqlite:PATH or postgres://..."
                ))
            })?;
        let store = SagaStore::open_existing(path).await.map_err(runtime)?;
        query(&store, command).await
    }
}

fn runtime(e: herald_saga::SagaError) -> CliError {
    CliError::runtime(e)
}

async fn query<DB: SagaBackend>(
    store: &SagaStore<DB>,
    command: &SagasCommand,
) -> Result<Value, CliError> {
    let json = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| CliError::runtime(format!("cannot print a saga: {e}")))
    };
    match command {
        SagasCommand::List {
            saga_type,
            status,
            limit,
            offset,
        } => {
            let page = store
                .list(&filter(saga_type, status, limit, offset)?)
                .await
                .map_err(runtime)?;
            json(serde_json::to_value(page))
        }
        SagasCommand::Show { id, saga_type } => {
            let saga_type = match saga_type {
                Some(t) => t.clone(),
                None => {
                    let found = store.find(id).await.map_err(runtime)?;
                    match found.as_slice() {
                        [] => return Err(no_saga(id, None)),
                        [one] => one.saga_type.clone(),
                        many => {
                            let types: Vec<&str> =
                                many.iter().map(|s| s.saga_type.as_str()).collect();
                            return Err(CliError::usage(format!(
                                "sagas of several types have id {id:?} ({}); add --type",
                                types.join(", ")
                            )));
                        }
                    }
                }
            };
            match store.get(&saga_type, id).await.map_err(runtime)? {
                Some(details) => json(serde_json::to_value(details)),
                None => Err(no_saga(id, Some(&saga_type))),
            }
        }
    }
}

fn no_saga(id: &str, saga_type: Option<&str>) -> CliError {
    CliError::runtime(match saga_type {
        Some(t) => {
            format!("no saga of type {t:?} with id {id:?} (`herald sagas list` shows the ids)")
        }
        None => format!("no saga with id {id:?} (`herald sagas list` shows the ids)"),
    })
}

async fn from_http(url: &str, command: &SagasCommand) -> Result<Value, CliError> {
    let base = Url::parse(url).map_err(|e| {
        CliError::usage(format!(
            "--url {url:?} is not a URL ({e}); use e.g. http://127.0.0.1:3000"
        ))
    })?;
    if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
        return Err(CliError::usage(format!(
            "--url {url:?} must be an http:// or https:// URL"
        )));
    }
    let mut target = base.clone();
    {
        let mut path = target.path_segments_mut().expect("checked above");
        path.pop_if_empty().push("sagas");
        if let SagasCommand::Show { id, .. } = command {
            path.push(id);
        }
    }
    match command {
        SagasCommand::List {
            saga_type,
            status,
            limit,
            offset,
        } => {
            let f = filter(saga_type, status, limit, offset)?;
            let mut q = target.query_pairs_mut();
            if let Some(t) = &f.saga_type {
                q.append_pair("type", t);
            }
            if let Some(s) = f.status {
                q.append_pair("status", s.as_str());
            }
            q.append_pair("limit", &f.limit.unwrap_or(50).to_string());
            q.append_pair("offset", &f.offset.unwrap_or(0).to_string());
        }
        SagasCommand::Show {
            saga_type: Some(t), ..
        } => {
            target.query_pairs_mut().append_pair("type", t);
        }
        SagasCommand::Show { .. } => {}
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| CliError::runtime(format!("cannot build the HTTP client: {e}")))?;
    let response = http.get(target.clone()).send().await.map_err(|e| {
        CliError::runtime(format!(
            "cannot reach {base}: {e}; is the service running, and is --url its HTTP address?"
        ))
    })?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| CliError::runtime(format!("reading the answer of {target}: {e}")))?;
    let json: Option<Value> = serde_json::from_str(&body).ok();
    if status.is_success() {
        return json.ok_or_else(|| {
            CliError::runtime(format!(
                "{target} did not answer JSON; does the service mount herald_saga::http::routes?"
            ))
        });
    }
    let message = json
        .as_ref()
        .and_then(|j| j["message"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| body.chars().take(200).collect());
    let hint = match (
        status.as_u16(),
        json.as_ref().and_then(|j| j["error_code"].as_u64()),
    ) {
        (404, Some(40406)) => " (`herald sagas list` shows the ids)",
        (404, _) => "; does the service mount herald_saga::http::routes at this address?",
        (409, _) => "; add --type",
        _ => "",
    };
    Err(CliError::runtime(format!(
        "{target} answered {status}: {message}{hint}"
    )))
}

fn print_list(page: &Value) {
    let empty = Vec::new();
    let sagas = page["sagas"].as_array().unwrap_or(&empty);
    if sagas.is_empty() {
        println!("no sagas match");
        return;
    }
    let rows: Vec<Vec<String>> = sagas
        .iter()
        .map(|s| {
            vec![
                cell(&s["saga_id"]),
                cell(&s["saga_type"]),
                cell(&s["status"]),
                cell(&s["step_name"]),
                cell(&s["attempt"]),
                cell(&s["updated_at"]),
                cell(&s["error"]),
            ]
        })
        .collect();
    output::table(
        &[
            "ID", "TYPE", "STATUS", "STEP", "ATTEMPT", "UPDATED", "ERROR",
        ],
        &rows,
    );
    let total = page["total"].as_u64().unwrap_or(0);
    if total > sagas.len() as u64 {
        println!(
            "({} of {total}; --offset and --limit page through the rest)",
            sagas.len()
        );
    }
}

fn print_show(saga: &Value) {
    let fields = [
        ("id", "saga_id"),
        ("type", "saga_type"),
        ("status", "status"),
        ("step", "step_name"),
        ("attempt", "attempt"),
        ("deadline", "deadline"),
        ("error", "error"),
        ("correlation", "correlation_id"),
        ("created", "created_at"),
        ("updated", "updated_at"),
        ("version", "version"),
    ];
    for (label, key) in fields {
        println!("{:<12} {}", format!("{label}:"), cell(&saga[key]));
    }
    println!("{:<12} {}", "data:", saga["data"]);
    println!();
    let empty = Vec::new();
    let rows: Vec<Vec<String>> = saga["history"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .map(|h| {
            vec![
                cell(&h["seq"]),
                cell(&h["at"]),
                cell(&h["kind"]),
                cell(&h["step_name"]),
                cell(&h["attempt"]),
                cell(&h["event_type"]),
                cell(&h["event_id"]),
                cell(&h["detail"]),
            ]
        })
        .collect();
    output::table(
        &[
            "SEQ", "AT", "KIND", "STEP", "ATTEMPT", "EVENT", "EVENT ID", "DETAIL",
        ],
        &rows,
    );
}
