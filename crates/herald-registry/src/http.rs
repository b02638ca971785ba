//! The Confluent Schema Registry REST API over a [`Registry`], served at the root of its
//! own listener (`herald serve --registry-listen`, default 127.0.0.1:8081).
//!
//! Bodies are JSON with content type `application/vnd.schemaregistry.v1+json`,
//! `application/vnd.schemaregistry+json` or `application/json` (or none); answers are
//! `application/vnd.schemaregistry.v1+json`. Errors are `{"error_code": N, "message":
//! "..."}` with Confluent's codes ([`crate::error::codes`]). A refused request changes
//! nothing. docs/schema-registry.md lists every endpoint.

use std::{collections::HashMap, net::SocketAddr};

use axum::{
    Extension, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Path, Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::{
    error::{RegistryError, codes},
    registry::{Registry, StoredSchema, VersionSpec},
    types::{CompatibilityLevel, Mode, SchemaRequest, SchemaType, SubjectVersion},
};

/// The content type of every answer.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";
/// Content types a request body may declare.
pub const ACCEPTED_CONTENT_TYPES: [&str; 3] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
];
/// Default largest request body: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// An answer: JSON with the registry content type, or a Confluent-style error.
struct Reply(StatusCode, Value);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        let mut resp = (self.0, self.1.to_string()).into_response();
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        resp
    }
}

/// An error answer.
#[derive(Debug)]
pub struct HttpError(RegistryError);

impl From<RegistryError> for HttpError {
    fn from(e: RegistryError) -> Self {
        HttpError(e)
    }
}

impl From<herald_schema::types::TypeError> for HttpError {
    fn from(e: herald_schema::types::TypeError) -> Self {
        HttpError(e.into())
    }
}

fn error_reply(status: u16, code: u32, message: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(%status, code, %message, "schema registry request failed");
    } else {
        tracing::debug!(%status, code, %message, "schema registry request refused");
    }
    Reply(status, json!({ "error_code": code, "message": message })).into_response()
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        error_reply(self.0.status(), self.0.error_code(), self.0.to_string())
    }
}

type ApiResult = Result<Reply, HttpError>;

fn ok(v: impl serde::Serialize) -> ApiResult {
    Ok(Reply(
        StatusCode::OK,
        serde_json::to_value(v).unwrap_or(Value::Null),
    ))
}

/// A JSON body in one of the accepted content types.
struct Body<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if let Some(ct) = req.headers().get(header::CONTENT_TYPE) {
            let ct = ct.to_str().unwrap_or_default();
            let essence = ct
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase();
            if !ACCEPTED_CONTENT_TYPES.contains(&essence.as_str()) {
                return Err(HttpError(RegistryError::BadRequest {
                    status: 415,
                    message: format!(
                        "HTTP 415 Unsupported Media Type: {ct:?}; send Content-Type: application/vnd.schemaregistry.v1+json"
                    ),
                }));
            }
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            HttpError(RegistryError::BadRequest {
                status: r.status().as_u16(),
                message: if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "HTTP 413 Payload Too Large: the request body is larger than the registry accepts".into()
                } else {
                    format!("cannot read the request body: {}", r.body_text())
                },
            })
        })?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| {
            use serde_json::error::Category;
            HttpError(RegistryError::BadRequest {
                status: if matches!(e.classify(), Category::Data) {
                    422
                } else {
                    400
                },
                message: format!("Unrecognized request body: {e}"),
            })
        })
    }
}

type Params = Query<HashMap<String, String>>;

fn flag(params: &HashMap<String, String>, name: &str) -> bool {
    params
        .get(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true") || v.is_empty())
}

fn version_spec(s: &str) -> Result<VersionSpec, HttpError> {
    Ok(s.parse()?)
}

fn schema_id(s: &str) -> Result<u32, HttpError> {
    s.parse::<u32>().map_err(|_| {
        HttpError(RegistryError::schema_id_not_found(0))
            .with_message(format!("Schema {s} not found"))
    })
}

impl HttpError {
    fn with_message(self, m: String) -> Self {
        match self.0 {
            RegistryError::SchemaNotFound(_) => HttpError(RegistryError::SchemaNotFound(m)),
            e => HttpError(e),
        }
    }
}

/// The schema text as a request's `format` asks for it: Protobuf schemas come as .proto
/// text (the normalised rendering when they were registered as a descriptor) or, with
/// `format=serialized`, as a base64 `FileDescriptorProto`.
fn shown_text(
    registry: &Registry,
    s: &StoredSchema,
    format: Option<&str>,
) -> Result<String, HttpError> {
    if s.schema_type != SchemaType::Protobuf {
        return Ok(s.schema.clone());
    }
    let registered_as_descriptor = !s.schema.trim().contains(char::is_whitespace);
    if format != Some("serialized") && !registered_as_descriptor {
        return Ok(s.schema.clone());
    }
    let parsed = registry.parsed(s.id)?;
    if format != Some("serialized") {
        return Ok(parsed.canonical().to_string());
    }
    parsed.protobuf_serialized().ok_or_else(|| {
        HttpError(RegistryError::Store(
            "protobuf schema without descriptor".into(),
        ))
    })
}

fn version_json(
    registry: &Registry,
    mut sv: SubjectVersion,
    format: Option<&str>,
) -> Result<Value, HttpError> {
    let stored = registry.schema(sv.id)?;
    sv.schema = shown_text(registry, &stored, format)?;
    Ok(serde_json::to_value(sv).unwrap_or(Value::Null))
}

// ---------------------------------------------------------------- handlers

async fn root() -> ApiResult {
    ok(json!({}))
}

async fn schema_types() -> ApiResult {
    ok(SchemaType::ALL.map(SchemaType::as_str))
}

async fn contexts() -> ApiResult {
    ok(["."])
}

async fn list_schemas(
    State(r): State<Registry>,
    caller: Option<Extension<herald_security::Caller>>,
    Query(p): Params,
) -> ApiResult {
    let prefix = p.get("subjectPrefix").map(String::as_str);
    let mut list = r.all_versions(prefix, flag(&p, "deleted"), flag(&p, "latestOnly"));
    if let Some(Extension(caller)) = caller {
        list.retain(|sv| crate::authz::sees(&caller, &sv.subject));
    }
    let format = p.get("format").map(String::as_str);
    let out: Result<Vec<Value>, HttpError> = list
        .into_iter()
        .map(|sv| version_json(&r, sv, format))
        .collect();
    ok(out?)
}

async fn schema_by_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let id = schema_id(&id)?;
    let s = r.schema(id)?;
    let mut body = json!({ "schema": shown_text(&r, &s, p.get("format").map(String::as_str))? });
    if s.schema_type != SchemaType::Avro {
        body["schemaType"] = json!(s.schema_type);
    }
    if !s.references.is_empty() {
        body["references"] = json!(s.references);
    }
    if flag(&p, "fetchMaxId") {
        body["maxId"] = json!(r.max_id());
    }
    ok(body)
}

async fn schema_text_by_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> Result<Response, HttpError> {
    let s = r.schema(schema_id(&id)?)?;
    raw(shown_text(&r, &s, p.get("format").map(String::as_str))?)
}

fn raw(text: String) -> Result<Response, HttpError> {
    let mut resp = text.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    Ok(resp)
}

async fn id_subjects(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    let mut subjects: Vec<String> = r
        .id_versions(schema_id(&id)?, flag(&p, "deleted"))?
        .into_iter()
        .map(|sv| sv.subject)
        .collect();
    subjects.dedup();
    ok(subjects)
}

async fn id_versions(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(p): Params,
) -> ApiResult {
    ok(r.id_versions(schema_id(&id)?, flag(&p, "deleted"))?)
}

async fn list_subjects(
    State(r): State<Registry>,
    caller: Option<Extension<herald_security::Caller>>,
    Query(p): Params,
) -> ApiResult {
    let mut subjects = r.subjects(
        p.get("subjectPrefix").map(String::as_str),
        flag(&p, "deleted"),
    );
    if let Some(Extension(caller)) = caller {
        subjects.retain(|s| crate::authz::sees(&caller, s));
    }
    ok(subjects)
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
    Body(req): Body<SchemaRequest>,
) -> ApiResult {
    let sv = r.lookup(&subject, &req, flag(&p, "deleted"))?;
    ok(version_json(&r, sv, p.get("format").map(String::as_str))?)
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    ok(r.delete_subject(&subject, flag(&p, "permanent")).await?)
}

async fn list_versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    ok(r.versions(&subject, flag(&p, "deleted"))?)
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Body(req): Body<SchemaRequest>,
) -> ApiResult {
    let id = r.register(&subject, req).await?;
    ok(json!({ "id": id }))
}

async fn get_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    let sv = r.version(&subject, version_spec(&version)?, flag(&p, "deleted"))?;
    ok(version_json(&r, sv, p.get("format").map(String::as_str))?)
}

async fn get_version_schema(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> Result<Response, HttpError> {
    let sv = r.version(&subject, version_spec(&version)?, flag(&p, "deleted"))?;
    let s = r.schema(sv.id)?;
    raw(shown_text(&r, &s, p.get("format").map(String::as_str))?)
}

async fn referenced_by(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> ApiResult {
    ok(r.referenced_by(&subject, version_spec(&version)?)?)
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
) -> ApiResult {
    ok(
        r.delete_version(&subject, version_spec(&version)?, flag(&p, "permanent"))
            .await?,
    )
}

fn compat_reply(result: crate::registry::CompatibilityResult, verbose: bool) -> ApiResult {
    let mut body = json!({ "is_compatible": result.is_compatible });
    if verbose {
        body["messages"] = json!(result.messages);
    }
    ok(body)
}

async fn compat_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(p): Params,
    Body(req): Body<SchemaRequest>,
) -> ApiResult {
    let result = r.test_compatibility(&subject, Some(version_spec(&version)?), &req)?;
    compat_reply(result, flag(&p, "verbose"))
}

async fn compat_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
    Body(req): Body<SchemaRequest>,
) -> ApiResult {
    let result = r.test_compatibility(&subject, None, &req)?;
    compat_reply(result, flag(&p, "verbose"))
}

fn level_of(body: &Value) -> Result<CompatibilityLevel, HttpError> {
    let level = body
        .get("compatibility")
        .or_else(|| body.get("compatibilityLevel"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            HttpError(RegistryError::unprocessable(
                "the body must be {\"compatibility\": LEVEL}",
            ))
        })?;
    Ok(level.parse()?)
}

async fn get_global_config(State(r): State<Registry>) -> ApiResult {
    ok(json!({ "compatibilityLevel": r.config(None, true)? }))
}

async fn put_global_config(State(r): State<Registry>, Body(body): Body<Value>) -> ApiResult {
    let level = level_of(&body)?;
    r.set_config(None, level).await?;
    ok(json!({ "compatibility": level }))
}

async fn delete_global_config(State(r): State<Registry>) -> ApiResult {
    ok(json!({ "compatibilityLevel": r.delete_config(None).await? }))
}

async fn get_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    ok(json!({ "compatibilityLevel": r.config(Some(&subject), flag(&p, "defaultToGlobal"))? }))
}

async fn put_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Body(body): Body<Value>,
) -> ApiResult {
    let level = level_of(&body)?;
    r.set_config(Some(&subject), level).await?;
    ok(json!({ "compatibility": level }))
}

async fn delete_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> ApiResult {
    ok(json!({ "compatibilityLevel": r.delete_config(Some(&subject)).await? }))
}

fn mode_of(body: &Value) -> Result<Mode, HttpError> {
    let mode = body.get("mode").and_then(Value::as_str).ok_or_else(|| {
        HttpError(RegistryError::unprocessable(
            "the body must be {\"mode\": MODE}",
        ))
    })?;
    Ok(mode.parse()?)
}

async fn get_global_mode(State(r): State<Registry>) -> ApiResult {
    ok(json!({ "mode": r.mode(None, true)? }))
}

async fn put_global_mode(
    State(r): State<Registry>,
    Query(p): Params,
    Body(body): Body<Value>,
) -> ApiResult {
    let mode = mode_of(&body)?;
    r.set_mode(None, mode, flag(&p, "force")).await?;
    ok(json!({ "mode": mode }))
}

async fn get_subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
) -> ApiResult {
    ok(json!({ "mode": r.mode(Some(&subject), flag(&p, "defaultToGlobal"))? }))
}

async fn put_subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(p): Params,
    Body(body): Body<Value>,
) -> ApiResult {
    let mode = mode_of(&body)?;
    r.set_mode(Some(&subject), mode, flag(&p, "force")).await?;
    ok(json!({ "mode": mode }))
}

async fn delete_subject_mode(State(r): State<Registry>, Path(subject): Path<String>) -> ApiResult {
    ok(json!({ "mode": r.delete_mode(&subject).await? }))
}

async fn not_found() -> Response {
    error_reply(
        404,
        codes::NOT_FOUND,
        "HTTP 404 Not Found: no such endpoint (docs/schema-registry.md lists them)".into(),
    )
}

async fn method_not_allowed() -> Response {
    error_reply(
        405,
        codes::METHOD_NOT_ALLOWED,
        "HTTP 405 Method Not Allowed".into(),
    )
}

/// 403 with Confluent's 40301, as its ACL authorizer answers a denied request.
pub(crate) fn forbidden(message: String) -> Response {
    error_reply(403, codes::FORBIDDEN, message)
}

/// The refusal of the browser guard in the registry's error format.
fn refused(r: herald_security::Rejection) -> Response {
    let code = match r.status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => codes::UNSUPPORTED_MEDIA_TYPE,
        StatusCode::UNAUTHORIZED => codes::UNAUTHORIZED,
        _ => codes::FORBIDDEN,
    };
    error_reply(r.status.as_u16(), code, r.message)
}

/// The REST API as an axum router, with a body limit of `max_body_bytes`, behind the
/// browser guard allowing `allowed_hosts` (beyond IP literals and `localhost`), with
/// `basic_auth` HTTP Basic authentication against those users, and with `authorizer`
/// each request checked against Kafka's ACLs ([`crate::authz`]).
pub fn router(
    registry: Registry,
    max_body_bytes: usize,
    allowed_hosts: &[String],
    basic_auth: Option<&herald_security::UserStore>,
    authorizer: Option<&herald_security::Authorizer>,
) -> Router {
    let checked = authorizer.map(|a| crate::authz::Authorization {
        registry: registry.clone(),
        authorizer: a.clone(),
        deny: forbidden,
    });
    let guard = herald_security::BrowserGuard::new(
        herald_security::HostAllowlist::with_names(allowed_hosts),
        refused,
    );
    let routes = Router::new()
        .route("/", get(root))
        .route("/contexts", get(contexts))
        .route("/schemas", get(list_schemas))
        .route("/schemas/types", get(schema_types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/subjects", get(id_subjects))
        .route("/schemas/ids/{id}/versions", get(id_versions))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route(
            "/subjects/{subject}/versions/{version}",
            get(get_version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compat_all),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compat_version),
        )
        .route(
            "/config",
            get(get_global_config)
                .put(put_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(get_subject_config)
                .put(put_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(get_global_mode).put(put_global_mode))
        .route(
            "/mode/{subject}",
            get(get_subject_mode)
                .put(put_subject_mode)
                .delete(delete_subject_mode),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(registry);
    // Inside authentication, which names the user.
    let routes = match checked {
        None => routes,
        Some(settings) => routes.route_layer(axum::middleware::from_fn_with_state(
            settings,
            crate::authz::authorize,
        )),
    };
    let routes = match basic_auth {
        None => routes,
        Some(users) => herald_security::BasicAuth::new(
            users.clone(),
            "herald schema registry",
            Vec::new(),
            refused,
        )
        .protect(routes),
    };
    guard
        .protect(routes)
        .layer(DefaultBodyLimit::max(max_body_bytes))
}

/// Settings of the registry's listener.
#[derive(Debug, Clone)]
pub struct RegistryHttpConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest request body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Host names the registry answers to beyond IP literals and `localhost`.
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this TLS configuration; `None` serves plain HTTP.
    pub tls: Option<herald_security::TlsServer>,
    /// HTTP Basic authentication against these users (every endpoint); `None` asks for
    /// none.
    pub basic_auth: Option<herald_security::UserStore>,
    /// Kafka's ACLs, checked on every request ([`crate::authz`]); `None` allows all.
    pub authorizer: Option<herald_security::Authorizer>,
}

impl RegistryHttpConfig {
    /// Defaults with the listen address set.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_hosts: Vec::new(),
            tls: None,
            basic_auth: None,
            authorizer: None,
        }
    }
}

/// A running registry listener.
#[derive(Debug)]
pub struct RegistryServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl RegistryServer {
    /// Binds and starts serving `registry`.
    pub async fn bind(config: RegistryHttpConfig, registry: Registry) -> std::io::Result<Self> {
        let listener = TcpListener::bind(config.listen).await?;
        let addr = listener.local_addr()?;
        let (stop, mut stop_rx) = watch::channel(false);
        let app = router(
            registry,
            config.max_body_bytes,
            &config.allowed_hosts,
            config.basic_auth.as_ref(),
            config.authorizer.as_ref(),
        );
        let graceful = async move {
            let _ = stop_rx.wait_for(|s| *s).await;
        };
        let task = herald_security::tls::spawn_http(
            listener,
            app,
            config.tls.as_ref(),
            graceful,
            "schema registry",
        )?;
        tracing::info!(%addr, tls = config.tls.is_some(), "schema registry listening");
        Ok(Self {
            addr,
            stop,
            task: Some(task),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for requests in flight.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        tracing::info!(addr = %self.addr, "schema registry stopped");
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}
