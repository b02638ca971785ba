//! The crate's error type.

use thiserror::Error;

/// What went wrong in herald-saga.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SagaError {
    /// The database refused or failed a statement.
    #[error("{backend}: {operation}: {source}")]
    Database {
        /// `sqlite` or `postgres`.
        backend: &'static str,
        /// What herald-saga was doing, e.g. `loading saga order/o-1`.
        operation: String,
        /// What sqlx reported.
        #[source]
        source: sqlx::Error,
    },
    /// herald-sql failed (enqueueing a command into the outbox).
    #[error(transparent)]
    Sql(#[from] herald_sql::Error),
    /// A saga definition is not valid (no steps, duplicate names, a reply type declared
    /// twice in a step, an invalid topic). Nothing was started.
    #[error("invalid saga definition {saga:?}: {reason}")]
    InvalidDefinition {
        /// The saga type.
        saga: String,
        /// What is wrong.
        reason: String,
    },
    /// Input refused before anything was written (an empty saga id, a bad filter).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A saga of this type with this id exists already; the new one was not started and
    /// the caller's transaction is still usable.
    #[error("saga {saga_type}/{saga_id} already exists")]
    AlreadyExists {
        /// The saga type.
        saga_type: String,
        /// The saga id.
        saga_id: String,
    },
    /// A saga's data, a command or a reply could not be (de)serialized.
    #[error("{context}: {source}")]
    Json {
        /// What was being (de)serialized.
        context: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
    /// A command could not be built into an event, or a reply did not decode into the
    /// type its step declared.
    #[error(transparent)]
    Event(#[from] herald::EventError),
    /// A stored saga is inconsistent with its definition (a step index beyond the
    /// definition, an unknown status): the definition changed incompatibly while
    /// instances were running.
    #[error("saga {saga_type}/{saga_id} is unreadable: {reason}")]
    Corrupt {
        /// The saga type.
        saga_type: String,
        /// The saga id.
        saga_id: String,
        /// What is wrong.
        reason: String,
    },
    /// Another writer changed the saga at the same time, again and again; the operation
    /// gave up after retrying (the runtime's caller retries it later).
    #[error("saga {saga_type}/{saga_id}: concurrent updates kept conflicting")]
    Contended {
        /// The saga type.
        saga_type: String,
        /// The saga id.
        saga_id: String,
    },
    /// A database opened to read sagas from ([`SagaStore::open_existing`],
    /// [`SagaStore::connect_existing`]) is missing or has no herald-saga tables.
    ///
    /// [`SagaStore::open_existing`]: crate::SagaStore::open_existing
    /// [`SagaStore::connect_existing`]: crate::SagaStore::connect_existing
    #[error("{database}: {reason}")]
    NoSagaDatabase {
        /// The path or URL.
        database: String,
        /// What is missing, and what to do.
        reason: String,
    },
    /// The runtime's router failed to start or stopped with an error.
    #[error("saga runtime: {0}")]
    Router(#[from] herald::router::RouterError),
    /// A background task of the runtime panicked or was cancelled.
    #[error("the saga {task} task ended abnormally: {reason}")]
    Task {
        /// Which task.
        task: &'static str,
        /// The panic message or cancellation.
        reason: String,
    },
}

impl SagaError {
    pub(crate) fn db(
        backend: &'static str,
        operation: impl Into<String>,
    ) -> impl FnOnce(sqlx::Error) -> Self {
        let operation = operation.into();
        move |source| SagaError::Database {
            backend,
            operation,
            source,
        }
    }

    pub(crate) fn json(context: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Self {
        let context = context.into();
        move |source| SagaError::Json { context, source }
    }
}

/// Result alias of herald-saga.
pub type Result<T, E = SagaError> = std::result::Result<T, E>;
