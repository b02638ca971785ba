//! The dead-letter routes of the HTTP API: `/api/v1/dlq/{topic}/{group}[/{id}|/replay|
//! /discard]`.
//!
//! They live in the binary, not in herald-broker: the broker stays free of the SDK. The
//! routes run the SDK's [`DeadLetterQueue`] (the same code as `herald dlq`) on a
//! [`BrokerTransport`], which appends and reads through the broker in this process: no
//! Kafka client, no loopback connection, nothing to authenticate. The transport is set
//! once the broker has started; until then (and after shutdown begins) the routes
//! answer 503.

use std::sync::{Arc, RwLock};

use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        rejection::{JsonRejection, PathRejection, QueryRejection},
    },
    http::StatusCode,
    routing::{get, post},
};
use herald::{
    DeadLetterFilter, DeadLetterQueue, ReplayTarget,
    dlq::{DeadLetterKind, DlqCounts},
};
use herald_broker::http::{ApiError, error::codes};
use serde::Deserialize;
use serde_json::Value;

use super::broker_transport::BrokerTransport;
use crate::dlq::{self, letter_json, parse_time};

/// `error_code` of an id that names no unresolved dead letter.
pub(crate) const UNKNOWN_DEAD_LETTER: u32 = 40405;

/// The transport the routes use, once the broker listens.
#[derive(Debug, Clone, Default)]
pub(crate) struct DlqState(Arc<RwLock<Option<BrokerTransport>>>);

impl DlqState {
    /// Serves the routes through `transport` from now on (`None`: answer 503).
    pub(crate) fn set(&self, transport: Option<BrokerTransport>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = transport;
    }

    fn queue(
        &self,
        topic: &str,
        group: &str,
    ) -> Result<DeadLetterQueue<BrokerTransport>, ApiError> {
        let transport = self
            .0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::UNAVAILABLE,
                    "the broker is starting or shutting down",
                )
            })?;
        Ok(DeadLetterQueue::new(transport, topic, group))
    }
}

/// The routes, with full paths, for [`HttpServer::bind_with_routes`](herald_broker::http::HttpServer::bind_with_routes).
pub(crate) fn routes(state: DlqState) -> Router {
    Router::new()
        .route("/api/v1/dlq/{topic}/{group}", get(list))
        .route("/api/v1/dlq/{topic}/{group}/replay", post(replay))
        .route("/api/v1/dlq/{topic}/{group}/discard", post(discard))
        .route("/api/v1/dlq/{topic}/{group}/{id}", get(show))
        .with_state(state)
}

/// Filters, as query parameters of a list or fields of a replay or discard body.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilterParams {
    /// Reason contains this text.
    reason: Option<String>,
    /// Record key (UTF-8).
    key: Option<String>,
    /// Last failure at or after (RFC 3339).
    since: Option<String>,
    /// Last failure before (RFC 3339).
    until: Option<String>,
    /// `failed` or `parked`.
    kind: Option<String>,
}

impl FilterParams {
    fn is_empty(&self) -> bool {
        self.reason.is_none()
            && self.key.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.kind.is_none()
    }

    fn to_filter(&self) -> Result<DeadLetterFilter, ApiError> {
        let at = |v: &Option<String>, name: &str| {
            v.as_deref()
                .map(parse_time)
                .transpose()
                .map_err(|e| bad(format!("{name}: {e}")))
        };
        let mut f =
            DeadLetterFilter::all().between(at(&self.since, "since")?, at(&self.until, "until")?);
        if let Some(r) = &self.reason {
            f = f.reason_contains(r.clone());
        }
        if let Some(k) = &self.key {
            f = f.key(k.clone().into_bytes());
        }
        f.kind = match self.kind.as_deref() {
            None => None,
            Some("failed") => Some(DeadLetterKind::Failed),
            Some("parked") => Some(DeadLetterKind::Parked),
            Some(other) => return Err(bad(format!("kind {other:?} is not failed or parked"))),
        };
        Ok(f)
    }
}

/// The body of a replay or discard: ids, or `all`, or a filter.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    /// Event ids of the letters.
    #[serde(default)]
    ids: Vec<String>,
    /// Every unresolved letter.
    #[serde(default)]
    all: bool,
    /// Conditions on the letters.
    #[serde(default)]
    filter: FilterParams,
    /// Replay only: `group` (only the dead letter's group handles the events) or `all`
    /// (the default: every group on the topic).
    target: Option<String>,
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_PARAMETER, message)
}

fn failed(e: herald::dlq::DlqError) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        codes::INTERNAL,
        format!("dead-letter operation failed: {e}"),
    )
}

/// The topic and group of the path, checked: a name Kafka cannot hold is the client's
/// mistake (400), not the broker's.
fn path(p: Result<Path<(String, String)>, PathRejection>) -> Result<(String, String), ApiError> {
    let (topic, group) = p.map(|Path(v)| v).map_err(|e| bad(e.body_text()))?;
    let invalid = |what: String| ApiError::new(StatusCode::BAD_REQUEST, codes::INVALID_TOPIC, what);
    herald::transport::validate_topic_name(&topic)
        .map_err(|e| invalid(format!("topic {topic:?}: {e}")))?;
    if group.is_empty() {
        return Err(bad("the group id is empty"));
    }
    let dlq = herald::dlq::dlq_topic(&topic, &group);
    herald::transport::validate_topic_name(&dlq).map_err(|e| {
        invalid(format!(
            "topic {topic:?} with group {group:?} makes dead-letter topic {dlq:?}, which Kafka cannot hold: {e}"
        ))
    })?;
    Ok((topic, group))
}

fn unknown(topic: &str, group: &str, id: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        UNKNOWN_DEAD_LETTER,
        format!(
            "no unresolved dead letter {id:?} of group {group:?} for topic {topic:?}: \
             GET /api/v1/dlq/{topic}/{group} lists them"
        ),
    )
}

fn counts_json(c: DlqCounts) -> Json<Value> {
    Json(dlq::counts_json(c))
}

async fn list(
    State(state): State<DlqState>,
    p: Result<Path<(String, String)>, PathRejection>,
    q: Result<Query<FilterParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let (topic, group) = path(p)?;
    let Query(params) = q.map_err(|e| bad(e.body_text()))?;
    let queue = state.queue(&topic, &group)?;
    let letters = queue.list(&params.to_filter()?).await.map_err(failed)?;
    Ok(Json(dlq::list_json(
        &topic,
        &group,
        queue.topic(),
        &letters,
    )))
}

async fn show(
    State(state): State<DlqState>,
    p: Result<Path<(String, String, String)>, PathRejection>,
) -> Result<Json<Value>, ApiError> {
    let Path((topic, group, id)) = p.map_err(|e| bad(e.body_text()))?;
    let queue = state.queue(&topic, &group)?;
    let letters = queue.list(&DeadLetterFilter::all()).await.map_err(failed)?;
    letters
        .iter()
        .find(|l| l.event_id == id || l.letter_id() == id)
        .map(|l| Json(letter_json(l)))
        .ok_or_else(|| unknown(&topic, &group, &id))
}

/// The filters a replay or discard runs: one per id, or the body's filter.
async fn selection(
    queue: &DeadLetterQueue<BrokerTransport>,
    topic: &str,
    group: &str,
    body: &ResolveBody,
) -> Result<Vec<DeadLetterFilter>, ApiError> {
    if !body.ids.is_empty() {
        if body.all || !body.filter.is_empty() {
            return Err(bad("give ids, or all, or a filter: not several"));
        }
        let letters = queue.list(&DeadLetterFilter::all()).await.map_err(failed)?;
        return body
            .ids
            .iter()
            .map(|id| {
                if letters.iter().any(|l| l.event_id == *id) {
                    Ok(DeadLetterFilter::event(id.clone()))
                } else {
                    Err(unknown(topic, group, id))
                }
            })
            .collect();
    }
    if !body.all && body.filter.is_empty() {
        return Err(bad(
            "say which letters: \"ids\": [...], \"all\": true, or a \"filter\"",
        ));
    }
    Ok(vec![body.filter.to_filter()?])
}

fn body(b: Result<Json<ResolveBody>, JsonRejection>) -> Result<ResolveBody, ApiError> {
    b.map(|Json(b)| b)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_BODY, e.body_text()))
}

async fn replay(
    State(state): State<DlqState>,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<ResolveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let (topic, group) = path(p)?;
    let body = body(b)?;
    let target = match body.target.as_deref() {
        None | Some("all") => ReplayTarget::AllGroups,
        Some("group") => ReplayTarget::OwnGroup,
        Some(other) => return Err(bad(format!("target {other:?} is not group or all"))),
    };
    let queue = state.queue(&topic, &group)?;
    let mut total = DlqCounts::default();
    for filter in selection(&queue, &topic, &group, &body).await? {
        let c = queue.replay(&filter, target).await.map_err(failed)?;
        total.matched += c.matched;
        total.replayed += c.replayed;
    }
    Ok(counts_json(total))
}

async fn discard(
    State(state): State<DlqState>,
    p: Result<Path<(String, String)>, PathRejection>,
    b: Result<Json<ResolveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let (topic, group) = path(p)?;
    let body = body(b)?;
    if body.target.is_some() {
        return Err(bad("target applies to replay only"));
    }
    let queue = state.queue(&topic, &group)?;
    let mut total = DlqCounts::default();
    for filter in selection(&queue, &topic, &group, &body).await? {
        let c = queue.discard(&filter).await.map_err(failed)?;
        total.matched += c.matched;
        total.discarded += c.discarded;
    }
    Ok(counts_json(total))
}
