//! [`ExpectedVersion`]: what an append expects of its stream, named by the store,
//! the backend's statements and the conflict error.

use std::fmt;

/// The version an append expects its stream to be at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ExpectedVersion {
    /// Whatever it is (the stream is created if missing).
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must be this version (`Exact(0)` is the same as
    /// [`NoStream`](Self::NoStream)).
    Exact(u64),
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any version"),
            Self::NoStream | Self::Exact(0) => f.write_str("no stream"),
            Self::Exact(v) => write!(f, "version {v}"),
        }
    }
}
