//! `herald schemas list|get|register|check`: the schema registry over its REST API
//! (`--registry`, default http://127.0.0.1:8081, which `herald serve` binds).

use std::{path::PathBuf, time::Duration};

use clap::{Args, Subcommand};
use herald_schema::serde::{SchemaRegistryClient, SerdeError};
use reqwest::Method;
use serde_json::{Value, json};

use crate::{
    client::Output,
    error::CliError,
    output::{self, cell},
};

/// Options of every `herald schemas` command.
#[derive(Debug, Clone, Args)]
pub(crate) struct RegistryArgs {
    /// URL of the schema registry (`herald serve` binds it on --registry-listen)
    #[arg(
        long,
        env = "HERALD_REGISTRY",
        default_value = "http://127.0.0.1:8081",
        value_name = "URL",
        global = true
    )]
    registry: String,
    /// User for a registry with HTTP Basic authentication; the password comes from the
    /// HERALD_PASSWORD environment variable
    #[arg(long, env = "HERALD_USER", value_name = "NAME", global = true)]
    user: Option<String>,
    /// Output format
    #[arg(long, short, value_enum, default_value_t = Output::Table, global = true)]
    output: Output,
}

/// `herald schemas ...`
#[derive(Debug, Subcommand)]
pub(crate) enum SchemasCommand {
    /// List subjects with their latest version, id and type.
    List {
        /// Only subjects starting with this
        #[arg(long)]
        prefix: Option<String>,
        /// Include soft-deleted subjects
        #[arg(long)]
        deleted: bool,
    },
    /// Print a schema: a subject's version (latest by default) or a schema id.
    Get {
        /// The subject (omit with --id)
        #[arg(required_unless_present = "id")]
        subject: Option<String>,
        /// Version number or `latest`
        #[arg(
            id = "schema_version",
            default_value = "latest",
            value_name = "VERSION"
        )]
        version: String,
        /// A global schema id instead of a subject
        #[arg(long, conflicts_with = "subject")]
        id: Option<u32>,
    },
    /// Register a schema file under a subject (`-` reads standard input).
    Register {
        /// The subject, e.g. orders-value
        subject: String,
        /// The schema file: .avsc (Avro), .json (JSON Schema) or .proto, or `-`
        file: PathBuf,
        #[command(flatten)]
        schema: SchemaOptions,
    },
    /// Check a schema file against a subject's versions without registering it; exits 1
    /// when it is incompatible.
    Check {
        /// The subject
        subject: String,
        /// The schema file, or `-`
        file: PathBuf,
        #[command(flatten)]
        schema: SchemaOptions,
        /// Check against this version only (default: as registration would, by the
        /// subject's compatibility level)
        #[arg(long, value_name = "VERSION")]
        against: Option<String>,
    },
}

/// How a schema file is read.
#[derive(Debug, Clone, Args)]
pub(crate) struct SchemaOptions {
    /// AVRO, JSON or PROTOBUF [default: from the file extension]
    #[arg(long = "type", value_name = "TYPE")]
    schema_type: Option<String>,
    /// A reference NAME=SUBJECT:VERSION (repeatable), e.g. shop.Address=address:1
    #[arg(long = "reference", value_name = "NAME=SUBJECT:VERSION")]
    references: Vec<String>,
}

struct Registry {
    client: SchemaRegistryClient,
    url: String,
}

impl Registry {
    fn new(args: &RegistryArgs) -> Result<Self, CliError> {
        let mut client = SchemaRegistryClient::new(&args.registry).map_err(|e| {
            CliError::usage(format!(
                "--registry {:?}: {e}; use e.g. http://127.0.0.1:8081",
                args.registry
            ))
        })?;
        if let Some((user, password)) = crate::client::credentials(args.user.as_deref())? {
            client = client.with_basic_auth(user, password);
        }
        Ok(Self {
            client,
            url: args.registry.clone(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let request = self.client.request(method, path, query, body);
        let answer = tokio::time::timeout(Duration::from_secs(60), request)
            .await
            .map_err(|_| {
                CliError::runtime(format!(
                    "the schema registry at {} did not answer in time",
                    self.url
                ))
            })?;
        answer.map_err(|e| match e {
            SerdeError::Unreachable { .. } => CliError::runtime(format!(
                "schema registry not reachable at {}: is `herald serve` running? Pass --registry URL \
                 (or set HERALD_REGISTRY) to use another one",
                self.url
            )),
            SerdeError::Registry { status, error_code, message } => {
                let hint = match error_code {
                    40401 => ": list subjects with `herald schemas list`",
                    40402 => ": `herald schemas get SUBJECT` shows the latest version",
                    409 => ": `herald schemas check` shows every rule the schema breaks",
                    42201 => ": fix the schema text (or pass --type if the extension misleads)",
                    _ => "",
                };
                CliError::runtime(format!("{message} (HTTP {status}, error_code {error_code}){hint}"))
            }
            e => CliError::runtime(e),
        })
    }
}

/// Runs `herald schemas`.
pub(crate) async fn schemas(args: RegistryArgs, command: SchemasCommand) -> Result<(), CliError> {
    let r = Registry::new(&args)?;
    match command {
        SchemasCommand::List { prefix, deleted } => list(&r, args.output, prefix, deleted).await,
        SchemasCommand::Get {
            subject,
            version,
            id,
        } => get(&r, args.output, subject, &version, id).await,
        SchemasCommand::Register {
            subject,
            file,
            schema,
        } => {
            let body = read_schema(&file, &schema)?;
            let answer = r
                .call(
                    Method::POST,
                    &["subjects", &subject, "versions"],
                    &[],
                    Some(&body),
                )
                .await?;
            let id = answer["id"].as_u64().unwrap_or_default();
            let found = r
                .call(Method::POST, &["subjects", &subject], &[], Some(&body))
                .await?;
            match args.output {
                Output::Json => output::json(
                    &json!({"subject": subject, "id": id, "version": found["version"]}),
                ),
                Output::Table => {
                    println!(
                        "registered {subject} version {} id {id}",
                        cell(&found["version"])
                    );
                    Ok(())
                }
            }
        }
        SchemasCommand::Check {
            subject,
            file,
            schema,
            against,
        } => {
            let body = read_schema(&file, &schema)?;
            let mut path = vec!["compatibility", "subjects", subject.as_str(), "versions"];
            if let Some(v) = &against {
                path.push(v);
            }
            let answer = r
                .call(Method::POST, &path, &[("verbose", "true")], Some(&body))
                .await?;
            let compatible = answer["is_compatible"].as_bool().unwrap_or(false);
            match args.output {
                Output::Json => output::json(&answer)?,
                Output::Table if compatible => println!("compatible with {subject}"),
                Output::Table => {
                    println!("NOT compatible with {subject}:");
                    for m in answer["messages"].as_array().into_iter().flatten() {
                        println!("  - {}", cell(m));
                    }
                }
            }
            if compatible {
                Ok(())
            } else {
                Err(CliError::runtime(format!(
                    "the schema is incompatible with {subject}: change it, or change the subject's \
                     level (PUT /config/{subject})"
                )))
            }
        }
    }
}

async fn list(
    r: &Registry,
    out: Output,
    prefix: Option<String>,
    deleted: bool,
) -> Result<(), CliError> {
    let mut query = vec![("latestOnly", "true")];
    if let Some(p) = &prefix {
        query.push(("subjectPrefix", p));
    }
    if deleted {
        query.push(("deleted", "true"));
    }
    let latest = r.call(Method::GET, &["schemas"], &query, None).await?;
    let rows = latest.as_array().cloned().unwrap_or_default();
    if out == Output::Json {
        let compact: Vec<Value> = rows
            .iter()
            .map(|v| json!({"subject": v["subject"], "version": v["version"], "id": v["id"], "schemaType": v.get("schemaType").cloned().unwrap_or(json!("AVRO"))}))
            .collect();
        return output::json(&Value::Array(compact));
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|v| {
            vec![
                cell(&v["subject"]),
                cell(&v["version"]),
                cell(&v["id"]),
                v["schemaType"].as_str().unwrap_or("AVRO").to_string(),
            ]
        })
        .collect();
    if table.is_empty() {
        println!("no subjects; register one with `herald schemas register SUBJECT FILE`");
        return Ok(());
    }
    output::table(&["SUBJECT", "LATEST", "ID", "TYPE"], &table);
    Ok(())
}

async fn get(
    r: &Registry,
    out: Output,
    subject: Option<String>,
    version: &str,
    id: Option<u32>,
) -> Result<(), CliError> {
    let answer = match (id, subject) {
        (Some(id), _) => {
            let id = id.to_string();
            r.call(Method::GET, &["schemas", "ids", &id], &[], None)
                .await?
        }
        (None, Some(subject)) => {
            r.call(
                Method::GET,
                &["subjects", &subject, "versions", version],
                &[],
                None,
            )
            .await?
        }
        (None, None) => return Err(CliError::usage("give a SUBJECT or --id N")),
    };
    if out == Output::Json {
        return output::json(&answer);
    }
    let schema_type = answer["schemaType"].as_str().unwrap_or("AVRO");
    if let Some(subject) = answer["subject"].as_str() {
        println!(
            "# {subject} version {} id {} ({schema_type})",
            cell(&answer["version"]),
            cell(&answer["id"])
        );
    } else {
        println!("# schema {} ({schema_type})", id.unwrap_or_default());
    }
    for r in answer["references"].as_array().into_iter().flatten() {
        println!(
            "# reference {} = {}:{}",
            cell(&r["name"]),
            cell(&r["subject"]),
            cell(&r["version"])
        );
    }
    let text = answer["schema"].as_str().unwrap_or_default();
    // JSON schemas print pretty; .proto text as it is.
    match serde_json::from_str::<Value>(text) {
        Ok(v) if schema_type != "PROTOBUF" => output::json(&v),
        _ => {
            println!("{}", text.trim_end());
            Ok(())
        }
    }
}

/// The request body for a schema file: its text, type and references.
fn read_schema(file: &std::path::Path, opts: &SchemaOptions) -> Result<Value, CliError> {
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| CliError::runtime(format!("cannot read standard input: {e}")))?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| CliError::usage(format!("cannot read {}: {e}", file.display())))?
    };
    let schema_type = match &opts.schema_type {
        Some(t) => t.to_ascii_uppercase(),
        None => match file.extension().and_then(|e| e.to_str()) {
            Some("avsc") | Some("avro") => "AVRO".to_string(),
            Some("json") => "JSON".to_string(),
            Some("proto") => "PROTOBUF".to_string(),
            _ => {
                return Err(CliError::usage(format!(
                    "cannot tell the schema type of {}: pass --type AVRO, JSON or PROTOBUF",
                    file.display()
                )));
            }
        },
    };
    if !["AVRO", "JSON", "PROTOBUF"].contains(&schema_type.as_str()) {
        return Err(CliError::usage(format!(
            "--type {schema_type}: use AVRO, JSON or PROTOBUF"
        )));
    }
    let mut references = Vec::new();
    for r in &opts.references {
        let parsed = r.split_once('=').and_then(|(name, rest)| {
            let (subject, version) = rest.rsplit_once(':')?;
            Some((name, subject, version.parse::<i32>().ok()?))
        });
        let Some((name, subject, version)) = parsed else {
            return Err(CliError::usage(format!(
                "--reference {r:?}: expected NAME=SUBJECT:VERSION"
            )));
        };
        references.push(json!({"name": name, "subject": subject, "version": version}));
    }
    Ok(json!({"schema": text, "schemaType": schema_type, "references": references}))
}
