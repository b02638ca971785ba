//! The error body every failed request answers with.
//!
//! `error_code` follows the Confluent REST convention: the HTTP status followed by two
//! digits that say which error it is, so that a client can tell an unknown topic (40401)
//! from an unknown partition (40402) without parsing the message.

use serde::{Deserialize, Serialize};

/// Every `error_code` the HTTP API returns.
pub mod codes {
    /// The body is not valid JSON or does not have the expected shape.
    pub const BAD_BODY: u32 = 40001;
    /// A path or query parameter is invalid.
    pub const BAD_PARAMETER: u32 = 40002;
    /// The topic name, partition count or configuration is refused.
    pub const INVALID_TOPIC: u32 = 40003;
    /// The fetch offset is outside the partition's range.
    pub const OFFSET_OUT_OF_RANGE: u32 = 40004;
    /// A record is refused (too large, bad encoding).
    pub const INVALID_RECORD: u32 = 40005;
    /// An ACL or user request this broker cannot take: a bad name, a bad ACL, or ACLs
    /// while authorization is off.
    pub const INVALID_SECURITY: u32 = 40006;
    /// No topic of that name.
    pub const UNKNOWN_TOPIC: u32 = 40401;
    /// The topic has no partition of that index.
    pub const UNKNOWN_PARTITION: u32 = 40402;
    /// No consumer group of that id.
    pub const UNKNOWN_GROUP: u32 = 40403;
    /// No such endpoint.
    pub const NOT_FOUND: u32 = 40404;
    /// No unresolved dead letter has that id.
    pub const UNKNOWN_DEAD_LETTER: u32 = 40405;
    /// The endpoint exists but not with this method.
    pub const METHOD_NOT_ALLOWED: u32 = 40501;
    /// No valid HTTP Basic credentials (`http_auth = "basic"`).
    pub const UNAUTHORIZED: u32 = 40101;
    /// The browser guard refused the request's `Host` or `Origin` (docs/security.md).
    pub const REFUSED_ORIGIN: u32 = 40301;
    /// The ACLs do not allow the caller this operation (docs/security.md).
    pub const NOT_AUTHORIZED: u32 = 40302;
    /// A topic of that name exists.
    pub const TOPIC_EXISTS: u32 = 40901;
    /// The body is larger than the configured limit.
    pub const BODY_TOO_LARGE: u32 = 41301;
    /// The body is not declared as `application/json`.
    pub const NOT_JSON: u32 = 41501;
    /// The broker failed (storage, task).
    pub const INTERNAL: u32 = 50001;
    /// The broker is starting or shutting down.
    pub const UNAVAILABLE: u32 = 50301;
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// HTTP status followed by two digits; see [`codes`].
    pub error_code: u32,
    /// What went wrong and, where it helps, what to do.
    pub message: String,
}
