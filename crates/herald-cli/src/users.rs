//! `herald users`: the SCRAM users of a broker, for a `SASL_PLAINTEXT://` or
//! `SASL_SSL://` Kafka listener and HTTP Basic authentication. With `--data-dir` it works
//! on the data directory of a stopped `herald serve` (it takes the directory's lock), as
//! Kafka's storage tool bootstraps the first users; without, on the running broker at
//! `--server` (`/api/v1/users`, which needs ALTER on the cluster, as Kafka's
//! AlterUserScramCredentials). Passwords come from standard input only, never from the
//! command line.

use std::{
    io::BufRead,
    path::{Path, PathBuf},
};

use clap::{Args, Subcommand, ValueEnum};
use herald_security::{ScramHash, UserStore, scram::DEFAULT_ITERATIONS};

use crate::{
    client::{Client, ClientArgs, Output},
    error::CliError,
    output,
};

/// Where a users command works: a stopped broker's data directory, or a running broker.
#[derive(Debug, Clone, Args)]
pub(crate) struct DataDirArg {
    /// Data directory of a stopped broker; without it, the running broker at --server
    #[arg(long, env = "HERALD_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    client: ClientArgs,
}

/// A SCRAM mechanism on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum MechanismArg {
    #[value(name = "SCRAM-SHA-256")]
    ScramSha256,
    #[value(name = "SCRAM-SHA-512")]
    ScramSha512,
}

impl MechanismArg {
    fn hash(self) -> ScramHash {
        match self {
            MechanismArg::ScramSha256 => ScramHash::Sha256,
            MechanismArg::ScramSha512 => ScramHash::Sha512,
        }
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum UsersCommand {
    /// Add a user, or set a user's password: the password is read from standard input
    Add {
        /// User name (the principal is User:NAME)
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
        /// Read the password from standard input (one line); required, as a password is
        /// never taken from the command line
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Mechanisms to store credentials for (both by default; PLAIN uses them too)
        #[arg(long = "mechanism", value_enum)]
        mechanisms: Vec<MechanismArg>,
        /// PBKDF2 iterations (at least 4096)
        #[arg(long, default_value_t = DEFAULT_ITERATIONS)]
        iterations: u32,
    },
    /// List the users and their mechanisms
    List {
        #[command(flatten)]
        dir: DataDirArg,
    },
    /// Remove a user (or one of its mechanisms)
    Remove {
        /// User name
        name: String,
        #[command(flatten)]
        dir: DataDirArg,
        /// Only this mechanism's credential
        #[arg(long, value_enum)]
        mechanism: Option<MechanismArg>,
    },
}

fn open(dir: &Path) -> Result<(std::fs::File, UserStore), CliError> {
    let lock = crate::serve::lock_data_dir(dir)?;
    let store = UserStore::open(dir).map_err(|e| CliError::runtime(e.to_string()))?;
    Ok((lock, store))
}

/// Runs a `herald users` command.
pub(crate) async fn users(command: UsersCommand) -> Result<(), CliError> {
    let data_dir = match &command {
        UsersCommand::Add { dir, .. }
        | UsersCommand::List { dir }
        | UsersCommand::Remove { dir, .. } => dir.data_dir.clone(),
    };
    match data_dir {
        Some(data_dir) => offline(command, &data_dir),
        None => online(command).await,
    }
}

/// Prints users as a table or JSON.
fn print_users(out: Output, users: &[herald_api::security::UserInfo]) -> Result<(), CliError> {
    match out {
        Output::Json => output::json(&users),
        Output::Table => {
            let rows: Vec<Vec<String>> = users
                .iter()
                .map(|u| {
                    let m: Vec<String> = u
                        .mechanisms
                        .iter()
                        .map(|m| format!("{} ({})", m.mechanism, m.iterations))
                        .collect();
                    vec![u.name.clone(), m.join(", ")]
                })
                .collect();
            output::table(&["USER", "MECHANISMS (ITERATIONS)"], &rows);
            Ok(())
        }
    }
}

/// `herald users` against the running broker at `--server`.
async fn online(command: UsersCommand) -> Result<(), CliError> {
    match command {
        UsersCommand::Add {
            name,
            dir,
            password_stdin: _,
            mechanisms,
            iterations,
        } => {
            let client = Client::new(&dir.client)?;
            let password = read_password()?;
            let mechanisms: Vec<&str> = mechanisms.iter().map(|m| m.hash().mechanism()).collect();
            let body = serde_json::json!({
                "password": password,
                "mechanisms": if mechanisms.is_empty() { None } else { Some(mechanisms) },
                "iterations": iterations,
            });
            client
                .send::<()>(
                    reqwest::Method::PUT,
                    client.url(&["users", &name]),
                    Some(&body),
                    std::time::Duration::from_secs(30),
                )
                .await?;
            eprintln!("user {name:?} stored; it can authenticate now");
            Ok(())
        }
        UsersCommand::List { dir } => {
            let client = Client::new(&dir.client)?;
            let list: herald_api::security::UserList = client.get(&["users"]).await?;
            print_users(dir.client.output, &list.users)
        }
        UsersCommand::Remove {
            name,
            dir,
            mechanism,
        } => {
            if mechanism.is_some() {
                return Err(CliError::usage(
                    "--mechanism removes one credential with --data-dir only; on a running \
                     broker `herald users remove NAME` removes the user",
                ));
            }
            let client = Client::new(&dir.client)?;
            client
                .send::<()>(
                    reqwest::Method::DELETE,
                    client.url(&["users", &name]),
                    None,
                    std::time::Duration::from_secs(30),
                )
                .await?;
            eprintln!("user {name:?} removed");
            Ok(())
        }
    }
}

/// `herald users --data-dir DIR`, with the broker stopped.
fn offline(command: UsersCommand, data_dir: &Path) -> Result<(), CliError> {
    match command {
        UsersCommand::Add {
            name,
            dir: _,
            password_stdin: _,
            mechanisms,
            iterations,
        } => {
            let (_lock, store) = open(data_dir)?;
            let password = read_password()?;
            let hashes: Vec<ScramHash> = if mechanisms.is_empty() {
                ScramHash::ALL.to_vec()
            } else {
                mechanisms.iter().map(|m| m.hash()).collect()
            };
            store
                .set_password(&name, password.as_bytes(), &hashes, iterations)
                .map_err(|e| CliError::usage(e.to_string()))?;
            let names: Vec<&str> = hashes.iter().map(|h| h.mechanism()).collect();
            eprintln!(
                "user {name:?} stored in {} ({}); herald serve reads it at start",
                store.path().display(),
                names.join(", ")
            );
            Ok(())
        }
        UsersCommand::List { dir } => {
            let (_lock, store) = open(data_dir)?;
            let users: Vec<herald_api::security::UserInfo> = store
                .list()
                .into_iter()
                .map(|u| herald_api::security::UserInfo {
                    name: u.name,
                    mechanisms: u
                        .mechanisms
                        .into_iter()
                        .map(|(h, iterations)| herald_api::security::UserMechanism {
                            mechanism: h.mechanism().to_owned(),
                            iterations,
                        })
                        .collect(),
                })
                .collect();
            print_users(dir.client.output, &users)
        }
        UsersCommand::Remove {
            name,
            dir: _,
            mechanism,
        } => {
            let (_lock, store) = open(data_dir)?;
            if store
                .remove(&name, mechanism.map(MechanismArg::hash))
                .map_err(|e| CliError::runtime(e.to_string()))?
            {
                eprintln!("user {name:?} removed");
                Ok(())
            } else {
                Err(CliError::runtime(format!(
                    "no user {name:?} with that mechanism: `herald users list` shows them"
                )))
            }
        }
    }
}

/// One line of standard input, without its line ending.
fn read_password() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        CliError::runtime(format!("cannot read the password from standard input: {e}"))
    })?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(CliError::usage(
            "no password on standard input: pipe it in, e.g. `printf %s \"$PASSWORD\" | herald users add NAME --password-stdin`",
        ));
    }
    Ok(password)
}
