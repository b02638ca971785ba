//! Errors of registry operations, each with the HTTP status and Confluent `error_code`
//! it becomes at the REST API.

use thiserror::Error;

/// Confluent Schema Registry's `error_code` values, as its REST API documents them.
pub mod codes {
    /// The request body is not JSON.
    pub const BAD_REQUEST: u32 = 400;
    /// No such endpoint.
    pub const NOT_FOUND: u32 = 404;
    /// The endpoint does not take that method.
    pub const METHOD_NOT_ALLOWED: u32 = 405;
    /// No valid HTTP Basic credentials.
    pub const UNAUTHORIZED: u32 = 40101;
    /// The browser guard refused the request's `Host` or `Origin`.
    pub const FORBIDDEN: u32 = 40301;
    /// The schema is incompatible with earlier versions.
    pub const INCOMPATIBLE_SCHEMA: u32 = 409;
    /// The body is larger than the registry accepts.
    pub const PAYLOAD_TOO_LARGE: u32 = 413;
    /// The body's content type is not one the registry takes.
    pub const UNSUPPORTED_MEDIA_TYPE: u32 = 415;
    /// The body is JSON of the wrong shape.
    pub const UNPROCESSABLE: u32 = 422;
    /// Subject not found.
    pub const SUBJECT_NOT_FOUND: u32 = 40401;
    /// Version not found.
    pub const VERSION_NOT_FOUND: u32 = 40402;
    /// Schema not found.
    pub const SCHEMA_NOT_FOUND: u32 = 40403;
    /// The subject was soft-deleted.
    pub const SUBJECT_SOFT_DELETED: u32 = 40404;
    /// A permanent delete of a subject that was not soft-deleted first.
    pub const SUBJECT_NOT_SOFT_DELETED: u32 = 40405;
    /// The version was soft-deleted.
    pub const VERSION_SOFT_DELETED: u32 = 40406;
    /// A permanent delete of a version that was not soft-deleted first.
    pub const VERSION_NOT_SOFT_DELETED: u32 = 40407;
    /// The subject has no compatibility level of its own.
    pub const SUBJECT_COMPATIBILITY_NOT_CONFIGURED: u32 = 40408;
    /// The subject has no mode of its own.
    pub const SUBJECT_MODE_NOT_CONFIGURED: u32 = 40409;
    /// The schema text, type or references are invalid.
    pub const INVALID_SCHEMA: u32 = 42201;
    /// The version is not `latest`, `-1` or a positive integer.
    pub const INVALID_VERSION: u32 = 42202;
    /// Not one of the seven compatibility levels.
    pub const INVALID_COMPATIBILITY_LEVEL: u32 = 42203;
    /// Not a known mode.
    pub const INVALID_MODE: u32 = 42204;
    /// The operation is not allowed now (read-only mode, import rules).
    pub const OPERATION_NOT_PERMITTED: u32 = 42205;
    /// The version is referenced by another schema.
    pub const REFERENCE_EXISTS: u32 = 42206;
    /// An import names an id already used by another schema.
    pub const ID_DOES_NOT_MATCH: u32 = 42207;
    /// The subject name is not allowed.
    pub const INVALID_SUBJECT: u32 = 42208;
    /// The registry's storage failed.
    pub const STORE_ERROR: u32 = 50001;
}

/// Why a registry operation failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistryError {
    /// No such subject (or only soft-deleted versions and `deleted` was not asked for).
    #[error("Subject '{0}' not found.")]
    SubjectNotFound(String),
    /// No such version of the subject.
    #[error("Version {version} not found for subject '{subject}'.")]
    VersionNotFound {
        /// The subject.
        subject: String,
        /// The version asked for, as given.
        version: String,
    },
    /// No schema with that id, or the schema is not registered under the subject.
    #[error("{0}")]
    SchemaNotFound(String),
    /// The subject was soft-deleted.
    #[error("Subject '{0}' was soft deleted. Set permanent=true to delete permanently")]
    SubjectSoftDeleted(String),
    /// Permanent delete of a subject that was not soft-deleted.
    #[error(
        "Subject '{0}' was not deleted first before being permanently deleted: delete it \
         without permanent=true first"
    )]
    SubjectNotSoftDeleted(String),
    /// The version was soft-deleted already.
    #[error(
        "Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"
    )]
    VersionSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// Permanent delete of a version that was not soft-deleted.
    #[error(
        "Subject '{subject}' Version {version} was not deleted first before being permanently \
         deleted: delete it without permanent=true first"
    )]
    VersionNotSoftDeleted {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
    },
    /// The subject has no compatibility level of its own.
    #[error("Subject '{0}' does not have subject-level compatibility configured")]
    SubjectCompatibilityNotConfigured(String),
    /// The subject has no mode of its own.
    #[error("Subject '{0}' does not have subject-level mode configured")]
    SubjectModeNotConfigured(String),
    /// The schema is incompatible with the versions it is checked against.
    #[error("Schema being registered is incompatible with an earlier schema for subject '{subject}', details: [{}]", .messages.join(", "))]
    Incompatible {
        /// The subject.
        subject: String,
        /// One line per violated rule, naming the field and the rule.
        messages: Vec<String>,
    },
    /// Invalid schema text, type or references.
    #[error("Invalid schema: {0}")]
    InvalidSchema(String),
    /// Invalid version.
    #[error(
        "The specified version '{0}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
    )]
    InvalidVersion(String),
    /// Unknown compatibility level.
    #[error(
        "Invalid compatibility level {0:?}: use one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    InvalidCompatibilityLevel(String),
    /// Unknown mode.
    #[error("Invalid mode {0:?}: use one of READWRITE, READONLY, READONLY_OVERRIDE, IMPORT")]
    InvalidMode(String),
    /// Not allowed now.
    #[error("{0}")]
    OperationNotPermitted(String),
    /// The version is referenced by other schemas.
    #[error(
        "One or more references exist to the schema {{subject={subject},version={version}}}: ids {ids:?}"
    )]
    ReferenceExists {
        /// The subject.
        subject: String,
        /// The version.
        version: i32,
        /// Ids of the schemas that reference it.
        ids: Vec<u32>,
    },
    /// An import names an id that another schema holds.
    #[error("{0}")]
    IdDoesNotMatch(String),
    /// The subject name is not allowed.
    #[error("Invalid subject {0:?}: a subject is 1 to 255 characters without control characters")]
    InvalidSubject(String),
    /// The request is malformed (bad JSON, bad parameter).
    #[error("{message}")]
    BadRequest {
        /// HTTP status (400 or 422).
        status: u16,
        /// What is wrong.
        message: String,
    },
    /// Storage failed; nothing was changed.
    #[error("Error in the backend data store: {0}")]
    Store(String),
}

impl From<herald_schema::types::TypeError> for RegistryError {
    fn from(e: herald_schema::types::TypeError) -> Self {
        use herald_schema::types::TypeError;
        match e {
            TypeError::CompatibilityLevel(s) => RegistryError::InvalidCompatibilityLevel(s),
            TypeError::Mode(s) => RegistryError::InvalidMode(s),
            other => RegistryError::InvalidSchema(other.to_string()),
        }
    }
}

impl RegistryError {
    /// The HTTP status of this error.
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::SubjectNotFound(_)
            | RegistryError::VersionNotFound { .. }
            | RegistryError::SchemaNotFound(_)
            | RegistryError::SubjectSoftDeleted(_)
            | RegistryError::SubjectNotSoftDeleted(_)
            | RegistryError::VersionSoftDeleted { .. }
            | RegistryError::VersionNotSoftDeleted { .. }
            | RegistryError::SubjectCompatibilityNotConfigured(_)
            | RegistryError::SubjectModeNotConfigured(_) => 404,
            RegistryError::Incompatible { .. } => 409,
            RegistryError::InvalidSchema(_)
            | RegistryError::InvalidVersion(_)
            | RegistryError::InvalidCompatibilityLevel(_)
            | RegistryError::InvalidMode(_)
            | RegistryError::OperationNotPermitted(_)
            | RegistryError::ReferenceExists { .. }
            | RegistryError::IdDoesNotMatch(_)
            | RegistryError::InvalidSubject(_) => 422,
            RegistryError::BadRequest { status, .. } => *status,
            RegistryError::Store(_) => 500,
        }
    }

    /// The Confluent `error_code` of this error.
    pub fn error_code(&self) -> u32 {
        use codes::*;
        match self {
            RegistryError::SubjectNotFound(_) => SUBJECT_NOT_FOUND,
            RegistryError::VersionNotFound { .. } => VERSION_NOT_FOUND,
            RegistryError::SchemaNotFound(_) => SCHEMA_NOT_FOUND,
            RegistryError::SubjectSoftDeleted(_) => SUBJECT_SOFT_DELETED,
            RegistryError::SubjectNotSoftDeleted(_) => SUBJECT_NOT_SOFT_DELETED,
            RegistryError::VersionSoftDeleted { .. } => VERSION_SOFT_DELETED,
            RegistryError::VersionNotSoftDeleted { .. } => VERSION_NOT_SOFT_DELETED,
            RegistryError::SubjectCompatibilityNotConfigured(_) => {
                SUBJECT_COMPATIBILITY_NOT_CONFIGURED
            }
            RegistryError::SubjectModeNotConfigured(_) => SUBJECT_MODE_NOT_CONFIGURED,
            RegistryError::Incompatible { .. } => INCOMPATIBLE_SCHEMA,
            RegistryError::InvalidSchema(_) => INVALID_SCHEMA,
            RegistryError::InvalidVersion(_) => INVALID_VERSION,
            RegistryError::InvalidCompatibilityLevel(_) => INVALID_COMPATIBILITY_LEVEL,
            RegistryError::InvalidMode(_) => INVALID_MODE,
            RegistryError::OperationNotPermitted(_) => OPERATION_NOT_PERMITTED,
            RegistryError::ReferenceExists { .. } => REFERENCE_EXISTS,
            RegistryError::IdDoesNotMatch(_) => ID_DOES_NOT_MATCH,
            RegistryError::InvalidSubject(_) => INVALID_SUBJECT,
            RegistryError::BadRequest { status, .. } => u32::from(*status),
            RegistryError::Store(_) => STORE_ERROR,
        }
    }

    pub(crate) fn schema_id_not_found(id: u32) -> Self {
        RegistryError::SchemaNotFound(format!("Schema {id} not found"))
    }

    pub(crate) fn unprocessable(message: impl Into<String>) -> Self {
        RegistryError::BadRequest {
            status: 422,
            message: message.into(),
        }
    }
}
