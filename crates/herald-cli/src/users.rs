//! `herald users`: the SCRAM users of a data directory, for a `SASL_PLAINTEXT://` or
//! `SASL_SSL://` Kafka listener. Works on the data directory with `herald serve`
//! stopped (it takes the directory's lock), as Kafka's storage tool bootstraps the
//! first users; passwords come from standard input only, never from the command line.

use std::{
    io::BufRead,
    path::{Path, PathBuf},
};

use clap::{Args, Subcommand, ValueEnum};
use herald_security::{ScramHash, UserStore, scram::DEFAULT_ITERATIONS};

use crate::{client::Output, error::CliError, output};

/// The data directory a users command works on.
#[derive(Debug, Clone, Args)]
pub(crate) struct DataDirArg {
    /// Data directory of the broker (stop `herald serve` first)
    #[arg(
        long,
        env = "HERALD_DATA_DIR",
        default_value = "./herald-data",
        value_name = "DIR"
    )]
    data_dir: PathBuf,
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
        /// Output format
        #[arg(long, short, value_enum, default_value_t = Output::Table)]
        output: Output,
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
pub(crate) fn users(command: UsersCommand) -> Result<(), CliError> {
    match command {
        UsersCommand::Add {
            name,
            dir,
            password_stdin: _,
            mechanisms,
            iterations,
        } => {
            let (_lock, store) = open(&dir.data_dir)?;
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
        UsersCommand::List { dir, output } => {
            let (_lock, store) = open(&dir.data_dir)?;
            let users = store.list();
            match output {
                Output::Json => output::json(
                    &users
                        .iter()
                        .map(|u| {
                            serde_json::json!({
                                "name": u.name,
                                "mechanisms": u.mechanisms.iter().map(|(h, i)| serde_json::json!({
                                    "mechanism": h.mechanism(), "iterations": i
                                })).collect::<Vec<_>>(),
                            })
                        })
                        .collect::<Vec<_>>(),
                ),
                Output::Table => {
                    let rows: Vec<Vec<String>> = users
                        .iter()
                        .map(|u| {
                            let m: Vec<String> = u
                                .mechanisms
                                .iter()
                                .map(|(h, i)| format!("{} ({i})", h.mechanism()))
                                .collect();
                            vec![u.name.clone(), m.join(", ")]
                        })
                        .collect();
                    output::table(&["USER", "MECHANISMS (ITERATIONS)"], &rows);
                    Ok(())
                }
            }
        }
        UsersCommand::Remove {
            name,
            dir,
            mechanism,
        } => {
            let (_lock, store) = open(&dir.data_dir)?;
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
