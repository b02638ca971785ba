//! `herald acls`: Kafka's ACLs on the running broker at `--server` (`/api/v1/acls`,
//! which needs ALTER on the cluster to change and DESCRIBE to list, as Kafka's
//! CreateAcls and DescribeAcls). The flags follow `kafka-acls.sh`: a principal, one or
//! more operations, a resource (`--topic`, `--group`, `--cluster`,
//! `--transactional-id`), `--prefixed` for a prefix pattern, `--deny` for a DENY.

use clap::{Args, Subcommand, ValueEnum};
use herald_api::security::{Acl, AclList, AclQuery};
use reqwest::Method;
use std::time::Duration;

use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output,
};

/// An operation, with Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum OperationArg {
    All,
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
    ClusterAction,
    DescribeConfigs,
    AlterConfigs,
    IdempotentWrite,
}

impl OperationArg {
    fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// The resource an ACL is about.
#[derive(Debug, Clone, Args)]
#[group(required = false, multiple = false)]
pub(crate) struct ResourceArgs {
    /// A topic (`*` for all)
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// A consumer group (`*` for all)
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    /// The cluster
    #[arg(long)]
    cluster: bool,
    /// A transactional id
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
}

impl ResourceArgs {
    /// `(type, name)`, if one was given.
    fn resource(&self) -> Option<(&'static str, String)> {
        if let Some(t) = &self.topic {
            Some(("TOPIC", t.clone()))
        } else if let Some(g) = &self.group {
            Some(("GROUP", g.clone()))
        } else if self.cluster {
            Some(("CLUSTER", herald_security::CLUSTER_NAME.to_owned()))
        } else {
            self.transactional_id
                .as_ref()
                .map(|t| ("TRANSACTIONAL_ID", t.clone()))
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum AclsCommand {
    /// Add ACLs: PRINCIPAL may (or, with --deny, may not) do each OPERATION to the resource
    Add {
        /// Who: User:NAME, User:* for everyone, or a certificate subject (User:CN=...)
        #[arg(long, value_name = "PRINCIPAL")]
        principal: String,
        /// An operation (repeat for several)
        #[arg(long = "operation", value_enum, required = true)]
        operations: Vec<OperationArg>,
        #[command(flatten)]
        resource: ResourceArgs,
        /// The name is a prefix: the ACL covers every resource whose name starts with it
        #[arg(long)]
        prefixed: bool,
        /// A DENY (it wins over any ALLOW)
        #[arg(long)]
        deny: bool,
        /// Only from this client IP address
        #[arg(long, default_value = "*", value_name = "IP")]
        host: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List ACLs; with a resource, those that apply to it (literal, `*` and prefixes)
    List {
        /// Only this principal's
        #[arg(long, value_name = "PRINCIPAL")]
        principal: Option<String>,
        #[command(flatten)]
        resource: ResourceArgs,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove the ACLs that match: name at least a principal or a resource
    Remove {
        /// Only this principal's
        #[arg(long, value_name = "PRINCIPAL")]
        principal: Option<String>,
        /// Only this operation's
        #[arg(long, value_enum)]
        operation: Option<OperationArg>,
        #[command(flatten)]
        resource: ResourceArgs,
        /// Only prefixed ACLs on the resource name (default: literal ones)
        #[arg(long)]
        prefixed: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

fn print(out: Output, acls: &[Acl]) -> Result<(), CliError> {
    match out {
        Output::Json => output::json(&acls),
        Output::Table => {
            let rows: Vec<Vec<String>> = acls
                .iter()
                .map(|a| {
                    vec![
                        a.principal.clone(),
                        a.permission.clone(),
                        a.operation.clone(),
                        a.resource_type.clone(),
                        a.resource_name.clone(),
                        a.pattern_type.clone(),
                        a.host.clone(),
                    ]
                })
                .collect();
            output::table(
                &[
                    "PRINCIPAL",
                    "PERMISSION",
                    "OPERATION",
                    "RESOURCE",
                    "NAME",
                    "PATTERN",
                    "HOST",
                ],
                &rows,
            );
            Ok(())
        }
    }
}

fn query_url(client: &Client, q: &AclQuery) -> Url {
    let mut url = client.url(&["acls"]);
    {
        let mut pairs = url.query_pairs_mut();
        let fields = [
            ("resource_type", &q.resource_type),
            ("resource_name", &q.resource_name),
            ("pattern_type", &q.pattern_type),
            ("principal", &q.principal),
            ("operation", &q.operation),
        ];
        for (k, v) in fields {
            if let Some(v) = v {
                pairs.append_pair(k, v);
            }
        }
    }
    url
}

use reqwest::Url;

const TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a `herald acls` command.
pub(crate) async fn acls(command: AclsCommand) -> Result<(), CliError> {
    match command {
        AclsCommand::Add {
            principal,
            operations,
            resource,
            prefixed,
            deny,
            host,
            client,
        } => {
            let Some((resource_type, resource_name)) = resource.resource() else {
                return Err(CliError::usage(
                    "name the resource: --topic NAME, --group ID, --cluster or --transactional-id ID",
                ));
            };
            let acls: Vec<Acl> = operations
                .iter()
                .map(|op| Acl {
                    resource_type: resource_type.to_owned(),
                    resource_name: resource_name.clone(),
                    pattern_type: if prefixed { "PREFIXED" } else { "LITERAL" }.to_owned(),
                    principal: principal.clone(),
                    host: host.clone(),
                    operation: op.name(),
                    permission: if deny { "DENY" } else { "ALLOW" }.to_owned(),
                })
                .collect();
            let http = Client::new(&client)?;
            let body = serde_json::to_value(AclList { acls }).expect("serializes");
            let created: AclList = http
                .send(Method::POST, http.url(&["acls"]), Some(&body), TIMEOUT)
                .await?;
            eprintln!("{} ACL(s) added", created.acls.len());
            print(client.output, &created.acls)
        }
        AclsCommand::List {
            principal,
            resource,
            client,
        } => {
            let resource = resource.resource();
            let q = AclQuery {
                resource_type: resource.as_ref().map(|(t, _)| (*t).to_owned()),
                pattern_type: resource.as_ref().map(|_| "MATCH".to_owned()),
                resource_name: resource.map(|(_, n)| n),
                principal,
                ..AclQuery::default()
            };
            let http = Client::new(&client)?;
            let list: AclList = http
                .send(Method::GET, query_url(&http, &q), None, TIMEOUT)
                .await?;
            print(client.output, &list.acls)
        }
        AclsCommand::Remove {
            principal,
            operation,
            resource,
            prefixed,
            client,
        } => {
            let resource = resource.resource();
            if principal.is_none() && resource.is_none() {
                return Err(CliError::usage(
                    "name what to remove: --principal and/or a resource (--topic, --group, --cluster, --transactional-id)",
                ));
            }
            let q = AclQuery {
                resource_type: resource.as_ref().map(|(t, _)| (*t).to_owned()),
                pattern_type: resource
                    .as_ref()
                    .map(|_| if prefixed { "PREFIXED" } else { "LITERAL" }.to_owned()),
                resource_name: resource.map(|(_, n)| n),
                principal,
                operation: operation.map(OperationArg::name),
                ..AclQuery::default()
            };
            let http = Client::new(&client)?;
            let gone: AclList = http
                .send(Method::DELETE, query_url(&http, &q), None, TIMEOUT)
                .await?;
            eprintln!("{} ACL(s) removed", gone.acls.len());
            print(client.output, &gone.acls)
        }
    }
}
