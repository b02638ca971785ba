//! The crate's error type.

use std::fmt;

use thiserror::Error;

use crate::version::ExpectedVersion;

/// Boxed error of user code (projections, upcasters).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in herald-sql.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused or failed a statement.
    #[error("{backend}: {operation}: {source}")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What herald-sql was doing, e.g. `appending to account-1`.
        operation: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },
    /// An append or delete found the stream at another version than expected: another
    /// writer got there first. Reload and decide again.
    #[error("{0}")]
    Conflict(#[from] Conflict),
    /// The stream was deleted (tombstoned); it cannot be read or appended to again.
    #[error("stream {stream:?} is deleted")]
    StreamDeleted {
        /// The stream id.
        stream: String,
    },
    /// Input that herald-sql refuses before touching the database.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A stored row could not be read back (damaged headers, an invalid envelope).
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt {
        /// Global position of the row.
        position: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// An upcaster failed to convert an old event.
    #[error("upcasting {event_type:?} from schema version {from_version}: {source}")]
    Upcast {
        /// The event type.
        event_type: String,
        /// The version the upcaster converts from.
        from_version: u32,
        /// What the upcaster reported.
        #[source]
        source: BoxError,
    },
    /// The database holds a component's schema written by a newer build.
    #[error(
        "the database's {component} schema is at version {found}; this build knows up to {supported}: upgrade {component}"
    )]
    SchemaTooNew {
        /// The component (`herald-sql`, `herald-saga`, ...).
        component: &'static str,
        /// Version found in the component's version table.
        found: i64,
        /// Latest version this build applies.
        supported: i64,
    },
    /// An inbox store failed (creating its table).
    #[error(transparent)]
    Inbox(#[from] herald::inbox::InboxError),
    /// A typed event could not be encoded or decoded.
    #[error(transparent)]
    Event(#[from] herald::EventError),
    /// A snapshot or aggregate state could not be (de)serialized.
    #[error("{context}: {source}")]
    Json {
        /// What was being (de)serialized.
        context: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// The relay could not publish to the transport.
    #[error("publishing to {topic}: {source}")]
    Publish {
        /// The topic.
        topic: String,
        /// What the transport reported.
        #[source]
        source: herald::transport::TransportError,
    },
    /// A background task (relay, projection runner) panicked or was cancelled.
    #[error("the {task} task ended abnormally: {reason}")]
    Task {
        /// Which task.
        task: &'static str,
        /// The panic message or cancellation.
        reason: String,
    },
    /// A projection's handler failed.
    #[error("projection {projection:?} failed at position {position}: {source}")]
    Projection {
        /// The projection's name.
        projection: String,
        /// Global position of the event it failed on.
        position: u64,
        /// What the projection reported.
        #[source]
        source: BoxError,
    },
}

impl Error {
    pub(crate) fn db(
        backend: &'static str,
        operation: impl Into<String>,
    ) -> impl FnOnce(sqlx::Error) -> Self {
        let operation = operation.into();
        move |source| Error::Database {
            backend,
            operation,
            source,
        }
    }

    /// Whether this is an optimistic-concurrency [`Conflict`].
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict(_))
    }

    /// The conflict, if this is one.
    pub fn as_conflict(&self) -> Option<&Conflict> {
        match self {
            Error::Conflict(c) => Some(c),
            _ => None,
        }
    }
}

/// An append whose expected version did not hold.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub struct Conflict {
    /// The stream.
    pub stream: String,
    /// What the writer expected.
    pub expected: ExpectedVersion,
    /// The stream's version when the append ran; `None` if the stream did not exist.
    pub actual: Option<u64>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "version conflict on stream {:?}: expected {}, found ",
            self.stream, self.expected
        )?;
        match self.actual {
            Some(v) => write!(f, "version {v}"),
            None => write!(f, "no stream"),
        }
    }
}

/// Result alias of herald-sql.
pub type Result<T, E = Error> = std::result::Result<T, E>;
