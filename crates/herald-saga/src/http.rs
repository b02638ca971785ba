//! The query API over HTTP: an axum [`Router`] a service mounts next to its own routes.
//!
//! - `GET /sagas?type=&status=&limit=&offset=`: a [`SagaPage`](crate::SagaPage), newest
//!   first.
//! - `GET /sagas/{id}?type=`: a [`SagaDetails`](crate::SagaDetails) (state and
//!   history). `type` is needed only when sagas of several types share the id.
//!
//! Errors are JSON `{ "error_code": ..., "message": ... }` like the broker's HTTP API:
//! 400 / 40002 for a bad query parameter, 404 / 40406 for an unknown saga, 409 / 40902
//! for an id shared by several saga types without `type`, 500 / 50001 when the database
//! fails.

use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Deserialize;

use crate::{SagaBackend, SagaError, SagaFilter, SagaStore};

/// `GET /sagas` and `GET /sagas/{id}` over `store`.
pub fn routes<DB: SagaBackend>(store: SagaStore<DB>) -> Router {
    Router::new()
        .route("/sagas", get(list::<DB>))
        .route("/sagas/{id}", get(show::<DB>))
        .with_state(store)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    #[serde(rename = "type")]
    saga_type: Option<String>,
    status: Option<String>,
    limit: Option<u32>,
    offset: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShowParams {
    #[serde(rename = "type")]
    saga_type: Option<String>,
}

struct ApiError {
    status: StatusCode,
    code: u32,
    message: String,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: 40002,
            message: message.into(),
        }
    }
}

impl From<SagaError> for ApiError {
    fn from(e: SagaError) -> Self {
        match e {
            SagaError::InvalidInput(m) => Self::bad_request(m),
            e => {
                tracing::warn!(error = %e, "saga query failed");
                Self {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    code: 50001,
                    message: e.to_string(),
                }
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error_code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

async fn list<DB: SagaBackend>(
    State(store): State<SagaStore<DB>>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let status = params
        .status
        .map(|s| s.parse())
        .transpose()
        .map_err(ApiError::bad_request)?;
    let filter = SagaFilter {
        saga_type: params.saga_type,
        status,
        limit: params.limit,
        offset: params.offset,
    };
    Ok(Json(store.list(&filter).await?).into_response())
}

async fn show<DB: SagaBackend>(
    State(store): State<SagaStore<DB>>,
    Path(id): Path<String>,
    params: Result<Query<ShowParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let saga_type = match params.saga_type {
        Some(t) => t,
        None => {
            let found = store.find(&id).await?;
            match found.as_slice() {
                [] => return Err(unknown(&id, None)),
                [one] => one.saga_type.clone(),
                many => {
                    let types: Vec<&str> = many.iter().map(|s| s.saga_type.as_str()).collect();
                    return Err(ApiError {
                        status: StatusCode::CONFLICT,
                        code: 40902,
                        message: format!(
                            "sagas of several types have id {id:?} ({}); add ?type=",
                            types.join(", ")
                        ),
                    });
                }
            }
        }
    };
    match store.get(&saga_type, &id).await? {
        Some(details) => Ok(Json(details).into_response()),
        None => Err(unknown(&id, Some(&saga_type))),
    }
}

fn unknown(id: &str, saga_type: Option<&str>) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: 40406,
        message: match saga_type {
            Some(t) => format!("no saga of type {t:?} with id {id:?}"),
            None => format!("no saga with id {id:?}"),
        },
    }
}
