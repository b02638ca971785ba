//! Errors of the HTTP API: a status and a JSON body `{ "error_code": ..., "message": ... }`,
//! and the extractors that turn malformed requests into such errors.
//!
//! `error_code` follows the Confluent REST convention: the HTTP status followed by two
//! digits that say which error it is, so that a client can tell an unknown topic (40401)
//! from an unknown partition (40402) without parsing the message.

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
};

use crate::error::{ProduceError, ReadError, TopicError};

pub use herald_api::error::{ErrorBody, codes};

/// An error answer of the HTTP API.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    body: ErrorBody,
}

impl ApiError {
    /// An error with an explicit status, code and message.
    pub fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                error_code,
                message: message.into(),
            },
        }
    }

    pub(crate) fn bad_parameter(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_PARAMETER, message)
    }

    pub(crate) fn bad_body(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, codes::BAD_BODY, message)
    }

    pub(crate) fn unknown_topic(topic: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_TOPIC,
            format!("unknown topic {topic:?}"),
        )
    }

    pub(crate) fn unknown_partition(topic: &str, partition: i32, count: i32) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            codes::UNKNOWN_PARTITION,
            format!("topic {topic:?} has no partition {partition} (it has {count})"),
        )
    }

    pub(crate) fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, codes::NOT_AUTHORIZED, message)
    }

    pub(crate) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, message)
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body.
    pub fn body(&self) -> &ErrorBody {
        &self.body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, error_code = self.body.error_code,
                message = %self.body.message, "HTTP request failed");
        } else {
            tracing::debug!(status = %self.status, error_code = self.body.error_code,
                message = %self.body.message, "HTTP request refused");
        }
        (self.status, Json(self.body)).into_response()
    }
}

impl From<TopicError> for ApiError {
    fn from(e: TopicError) -> Self {
        let (status, code) = match &e {
            TopicError::Unknown(_) => (StatusCode::NOT_FOUND, codes::UNKNOWN_TOPIC),
            TopicError::AlreadyExists(_) => (StatusCode::CONFLICT, codes::TOPIC_EXISTS),
            TopicError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
            _ => (StatusCode::BAD_REQUEST, codes::INVALID_TOPIC),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<ProduceError> for ApiError {
    fn from(e: ProduceError) -> Self {
        let (status, code) = match &e {
            ProduceError::UnknownTopicOrPartition { .. } => {
                (StatusCode::NOT_FOUND, codes::UNKNOWN_PARTITION)
            }
            ProduceError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, codes::INVALID_RECORD),
            ProduceError::Storage(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
            _ => (StatusCode::BAD_REQUEST, codes::INVALID_RECORD),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let (status, code) = match &e {
            ReadError::UnknownTopicOrPartition { .. } => {
                (StatusCode::NOT_FOUND, codes::UNKNOWN_PARTITION)
            }
            ReadError::OffsetOutOfRange(_) => (StatusCode::BAD_REQUEST, codes::OFFSET_OUT_OF_RANGE),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        };
        Self::new(status, code, e.to_string())
    }
}

impl From<crate::BrokerError> for ApiError {
    fn from(e: crate::BrokerError) -> Self {
        Self::internal(e.to_string())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                codes::NOT_JSON,
                "the body must be JSON: send the header Content-Type: application/json",
            ),
            r if r.status() == StatusCode::PAYLOAD_TOO_LARGE => body_too_large(),
            JsonRejection::BytesRejection(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                body_too_large()
            }
            r => Self::bad_body(format!("invalid JSON body: {}", r.body_text())),
        }
    }
}

fn body_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BODY_TOO_LARGE,
        "the request body is larger than the server accepts (http_max_body_bytes)",
    )
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::bad_parameter(format!("invalid query parameters: {}", r.body_text()))
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        Self::bad_parameter(format!("invalid path parameter: {}", r.body_text()))
    }
}

/// `axum::Json` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub(crate) struct JsonBody<T>(pub(crate) T);

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub(crate) struct Query<T>(pub(crate) T);

/// `axum::extract::Path` whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub(crate) struct Path<T>(pub(crate) T);

/// Answer for routes that do not exist.
pub(crate) async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::NOT_FOUND,
        "no such endpoint; the API is under /api/v1 (see docs/http-api.md)",
    )
}

/// Answer for a known route with a method it does not have.
pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        "this endpoint does not support that method",
    )
}
