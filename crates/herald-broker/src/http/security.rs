//! `/api/v1/acls` and `/api/v1/users`: the broker's ACLs and SCRAM users, managed while
//! it runs (`herald acls`, `herald users`). The same stores the Kafka APIs (CreateAcls,
//! AlterUserScramCredentials, ...) change; the route checks of [`super::authz`] ask for
//! DESCRIBE (reads) or ALTER (changes) on the cluster, as Kafka does.

use axum::{extract::State, http::StatusCode, response::IntoResponse};
use herald_api::{
    codes,
    security::{Acl, AclList, AclQuery, SetPassword, UserInfo, UserList, UserMechanism},
};
use herald_security::{
    AclBinding, AclFilter, Authorizer, PatternType, ScramHash, UserStore,
    scram::{DEFAULT_ITERATIONS, MAX_ITERATIONS, MIN_ITERATIONS},
};
use serde::de::DeserializeOwned;

use super::{
    AppState,
    error::{ApiError, JsonBody, Path, Query},
};

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_SECURITY, message)
}

fn authorizer(shared: &AppState) -> Result<Authorizer, ApiError> {
    shared.broker()?.config().authorizer.clone().ok_or_else(|| {
        invalid(
            "authorization is off (no listener authenticates), so ACLs would not apply: \
             give the Kafka listener SASL or client certificates, or set http_auth = \
             \"basic\" (docs/security.md)",
        )
    })
}

fn users(shared: &AppState) -> Result<UserStore, ApiError> {
    let broker = shared.broker()?;
    let config = broker.config();
    match config
        .users
        .as_ref()
        .or(config.sasl.as_ref().map(|s| &s.users))
    {
        Some(u) => Ok(u.clone()),
        None => UserStore::open(&config.data_dir).map_err(|e| ApiError::internal(e.to_string())),
    }
}

/// A Kafka name in capitals (`TOPIC`, `WRITE`, ...) as the type serde reads it.
fn parse_name<T: DeserializeOwned>(what: &str, value: &str) -> Result<T, ApiError> {
    serde_json::from_value(serde_json::Value::String(value.to_ascii_uppercase()))
        .map_err(|_| invalid(format!("{what} {value:?} is not one of Kafka's")))
}

fn to_binding(a: &Acl) -> Result<AclBinding, ApiError> {
    let b = AclBinding {
        resource_type: parse_name("resource type", &a.resource_type)?,
        resource_name: a.resource_name.clone(),
        pattern_type: parse_name("pattern type", &a.pattern_type)?,
        principal: a.principal.clone(),
        host: a.host.clone(),
        operation: parse_name("operation", &a.operation)?,
        permission: parse_name("permission", &a.permission)?,
    };
    b.validate().map_err(|e| invalid(e.to_string()))?;
    Ok(b)
}

fn to_acl(b: AclBinding) -> Acl {
    let name = |v: serde_json::Value| v.as_str().unwrap_or_default().to_owned();
    let value = |x: serde_json::Result<serde_json::Value>| name(x.unwrap_or_default());
    Acl {
        resource_type: value(serde_json::to_value(b.resource_type)),
        resource_name: b.resource_name,
        pattern_type: value(serde_json::to_value(b.pattern_type)),
        principal: b.principal,
        host: b.host,
        operation: value(serde_json::to_value(b.operation)),
        permission: value(serde_json::to_value(b.permission)),
    }
}

fn opt<T: DeserializeOwned>(what: &str, v: &Option<String>) -> Result<Option<T>, ApiError> {
    v.as_deref().map(|v| parse_name(what, v)).transpose()
}

fn to_filter(q: &AclQuery) -> Result<AclFilter, ApiError> {
    let matching = q
        .pattern_type
        .as_deref()
        .is_some_and(|p| p.eq_ignore_ascii_case("MATCH"));
    let pattern_type: Option<PatternType> = if matching {
        None
    } else {
        opt("pattern type", &q.pattern_type)?
    };
    Ok(AclFilter {
        resource_type: opt("resource type", &q.resource_type)?,
        resource_name: q.resource_name.clone(),
        pattern_type,
        matching,
        principal: q.principal.clone(),
        host: q.host.clone(),
        operation: opt("operation", &q.operation)?,
        permission: opt("permission", &q.permission)?,
    })
}

/// `GET /api/v1/acls?...`
pub(crate) async fn list_acls(
    State(shared): State<AppState>,
    Query(q): Query<AclQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = authorizer(&shared)?;
    let filter = to_filter(&q)?;
    let acls = auth.describe(&filter).into_iter().map(to_acl).collect();
    Ok(axum::Json(AclList { acls }))
}

/// `POST /api/v1/acls` with `{"acls": [...]}`: all stored, or none.
pub(crate) async fn create_acls(
    State(shared): State<AppState>,
    JsonBody(body): JsonBody<AclList>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = authorizer(&shared)?;
    let bindings = body
        .acls
        .iter()
        .map(to_binding)
        .collect::<Result<Vec<_>, _>>()?;
    if bindings.is_empty() {
        return Err(invalid("no ACLs given"));
    }
    let stored = bindings.clone();
    tokio::task::spawn_blocking(move || auth.create(&stored))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| invalid(e.to_string()))?;
    tracing::info!(acls = bindings.len(), "ACLs created over HTTP");
    let acls = bindings.into_iter().map(to_acl).collect();
    Ok((StatusCode::CREATED, axum::Json(AclList { acls })))
}

/// `DELETE /api/v1/acls?...`: removes what the filter matches; at least one condition.
pub(crate) async fn delete_acls(
    State(shared): State<AppState>,
    Query(q): Query<AclQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let auth = authorizer(&shared)?;
    if q == AclQuery::default() {
        return Err(invalid(
            "name at least one condition (principal, resource_type, resource_name, ...): \
             an empty filter would delete every ACL",
        ));
    }
    let filter = to_filter(&q)?;
    let gone = tokio::task::spawn_blocking(move || auth.delete(&filter))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    tracing::info!(acls = gone.len(), "ACLs deleted over HTTP");
    let acls = gone.into_iter().map(to_acl).collect();
    Ok(axum::Json(AclList { acls }))
}

/// `GET /api/v1/users`
pub(crate) async fn list_users(
    State(shared): State<AppState>,
) -> Result<impl IntoResponse, ApiError> {
    let users = users(&shared)?
        .list()
        .into_iter()
        .map(|u| UserInfo {
            name: u.name,
            mechanisms: u
                .mechanisms
                .into_iter()
                .map(|(h, iterations)| UserMechanism {
                    mechanism: h.mechanism().to_owned(),
                    iterations,
                })
                .collect(),
        })
        .collect();
    Ok(axum::Json(UserList { users }))
}

/// `PUT /api/v1/users/{name}` with `{"password": ...}`: creates the user or sets its
/// password (salted SCRAM credentials, durable before the answer).
pub(crate) async fn set_password(
    State(shared): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<SetPassword>,
) -> Result<impl IntoResponse, ApiError> {
    let store = users(&shared)?;
    let hashes = match &body.mechanisms {
        None => ScramHash::ALL.to_vec(),
        Some(list) => list
            .iter()
            .map(|m| {
                ScramHash::from_mechanism(&m.to_ascii_uppercase()).ok_or_else(|| {
                    invalid(format!(
                        "mechanism {m:?}: use SCRAM-SHA-256 or SCRAM-SHA-512"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let iterations = body.iterations.unwrap_or(DEFAULT_ITERATIONS);
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
        return Err(invalid(format!(
            "{iterations} iterations: use {MIN_ITERATIONS} to {MAX_ITERATIONS}"
        )));
    }
    if body.password.is_empty() {
        return Err(invalid("the password is empty"));
    }
    let user = name.clone();
    tokio::task::spawn_blocking(move || {
        store.set_password(&user, body.password.as_bytes(), &hashes, iterations)
    })
    .await
    .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
    .map_err(|e| invalid(e.to_string()))?;
    tracing::info!(user = %name, "user credentials set over HTTP");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /api/v1/users/{name}`
pub(crate) async fn remove_user(
    State(shared): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let store = users(&shared)?;
    let user = name.clone();
    let removed = tokio::task::spawn_blocking(move || store.remove(&user, None))
        .await
        .map_err(|e| ApiError::internal(format!("task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if !removed {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("no user {name:?}"),
        ));
    }
    tracing::info!(user = %name, "user removed over HTTP");
    Ok(StatusCode::NO_CONTENT)
}
