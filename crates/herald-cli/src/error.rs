//! The two kinds of failure the binary reports, and their exit codes.

use std::fmt;

/// A failure of a command.
#[derive(Debug)]
pub(crate) enum CliError {
    /// Bad flags, environment or configuration file: exit code 2.
    Usage(String),
    /// Anything that went wrong while running: exit code 1.
    Runtime(anyhow::Error),
}

impl CliError {
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        CliError::Usage(message.into())
    }

    pub(crate) fn runtime(message: impl fmt::Display) -> Self {
        CliError::Runtime(anyhow::anyhow!("{message}"))
    }

    /// The process exit code for this error.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Usage(m) => f.write_str(m),
            // `{:#}` prints the whole anyhow context chain on one line.
            CliError::Runtime(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<anyhow::Error> for CliError {
    fn from(e: anyhow::Error) -> Self {
        CliError::Runtime(e)
    }
}
