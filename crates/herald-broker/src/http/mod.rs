//! The HTTP API beside the Kafka listener: liveness and readiness, Prometheus metrics, a
//! JSON admin API for topics and consumer groups, and REST produce and consume.
//!
//! | endpoint | what |
//! | --- | --- |
//! | `GET /health` | 200 while the process serves HTTP |
//! | `GET /ready` | 200 once topics are loaded and the Kafka listener is bound; 503 while starting or shutting down |
//! | `GET /metrics` | Prometheus text (docs/http-api.md lists the series) |
//! | `GET, POST /api/v1/topics` | list topics; create one `{"name", "partitions"?, "configs"?}` |
//! | `GET, DELETE /api/v1/topics/{name}` | partitions (log start, high watermark, size) and configs; delete |
//! | `POST /api/v1/topics/{name}/partitions` | grow to `{"count": N}` partitions |
//! | `POST /api/v1/topics/{name}/records` | produce `{"records": [{"key", "value", "headers", "partition"}]}` |
//! | `GET /api/v1/topics/{name}/partitions/{p}/records` | consume, `?offset=&max_bytes=&wait_ms=` (long poll) |
//! | `GET /api/v1/groups`, `GET /api/v1/groups/{id}` | consumer groups, members, committed offsets, lag |
//! | `GET, POST, DELETE /api/v1/acls` | Kafka's ACLs (`herald acls`) |
//! | `GET /api/v1/users`, `PUT, DELETE /api/v1/users/{name}` | SCRAM users (`herald users`) |
//!
//! Errors are JSON `{ "error_code": ..., "message": ... }` (see [`error::codes`]); a
//! refused request changes nothing. Every route, `/health` included, is behind the
//! browser guard ([`herald_security::BrowserGuard`]): a `Host` or `Origin` the server
//! does not answer to gets 403, a POST without a JSON content type 415. `docs/http-api.md` has the request and response shapes.
//!
//! The server is bound before the broker starts so that `/health` and `/ready` answer
//! while the data directory is recovered:
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_broker::{Broker, BrokerConfig, http::{HttpConfig, HttpServer}};
//!
//! let http = HttpServer::bind(HttpConfig::new("127.0.0.1:0".parse()?)).await?;
//! let broker = Broker::start(BrokerConfig::new("/tmp/herald", "127.0.0.1:0".parse()?)).await?;
//! http.set_ready(broker.broker().clone());
//! println!("HTTP API on http://{}", http.local_addr());
//! // ... until told to stop:
//! http.shutdown().await;
//! broker.shutdown().await?;
//! # Ok(())
//! # }
//! ```

mod authz;
pub mod error;
mod groups;
mod metrics;
mod records;
mod security;
mod topics;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex, RwLock},
};

use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use tokio::{net::TcpListener, sync::watch, task::JoinHandle};

use crate::broker::Broker;
pub use error::{ApiError, ErrorBody};

/// Default largest request body: 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;
/// Longest long poll of the consume endpoint.
pub const MAX_WAIT_MS: u64 = 60_000;

/// Settings of the HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpConfig {
    /// Address to bind; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Largest request body accepted; larger ones get 413.
    pub max_body_bytes: usize,
    /// Host names the server answers to beyond IP literals and `localhost` (the browser
    /// guard, [`herald_security::BrowserGuard`]).
    pub allowed_hosts: Vec<String>,
    /// Serve HTTPS with this TLS configuration; `None` serves plain HTTP.
    #[serde(skip)]
    pub tls: Option<herald_security::TlsServer>,
    /// HTTP Basic authentication against these users; `None` asks for none. `/health`
    /// and `/ready` stay open, `/metrics` too unless [`metrics_auth`](Self::metrics_auth).
    #[serde(skip)]
    pub basic_auth: Option<herald_security::UserStore>,
    /// Whether `/metrics` needs credentials too when [`basic_auth`](Self::basic_auth) is on.
    pub metrics_auth: bool,
    /// Kafka's ACLs, checked on every route (docs/security.md maps routes to operations);
    /// `None` allows everything. The authenticated user, or `User:ANONYMOUS`, asks.
    #[serde(skip)]
    pub authorizer: Option<herald_security::Authorizer>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            allowed_hosts: Vec::new(),
            tls: None,
            basic_auth: None,
            metrics_auth: false,
            authorizer: None,
        }
    }
}

impl HttpConfig {
    /// Defaults with the listen address set.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            ..Self::default()
        }
    }
}

/// Why the HTTP server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The listener could not bind.
    #[error("cannot listen on {addr} (HTTP): {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Where the server is in its life.
#[derive(Debug, Clone)]
enum Phase {
    Starting,
    Ready(Broker),
    ShuttingDown,
}

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    phase: RwLock<Phase>,
    /// Next partition per topic for records without key or partition.
    round_robin: Mutex<HashMap<String, u64>>,
    stop: watch::Receiver<bool>,
}

type AppState = Arc<Shared>;

impl Shared {
    /// The broker, or 503 while starting or shutting down.
    pub(crate) fn broker(&self) -> Result<Broker, ApiError> {
        match &*self.phase.read().unwrap_or_else(|p| p.into_inner()) {
            Phase::Ready(b) if !b.is_shutting_down() => Ok(b.clone()),
            Phase::Starting => Err(ApiError::unavailable(
                "herald is starting (recovering the data directory); retry shortly",
            )),
            _ => Err(ApiError::unavailable("herald is shutting down")),
        }
    }

    /// Picks the next partition of `topic` in turn.
    pub(crate) fn next_partition(&self, topic: &str, count: i32) -> i32 {
        let mut rr = self.round_robin.lock().unwrap_or_else(|p| p.into_inner());
        let next = rr.entry(topic.to_string()).or_insert(0);
        let p = (*next % count.max(1) as u64) as i32;
        *next = next.wrapping_add(1);
        p
    }

    /// Forgets the round-robin position of a deleted topic.
    pub(crate) fn forget_topic(&self, topic: &str) {
        self.round_robin
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(topic);
    }

    /// A receiver that sees `true` once the server stops; long polls end on it.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.clone()
    }
}

/// A running HTTP server.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    shared: AppState,
    stop_tx: watch::Sender<bool>,
    /// `None` once [`shutdown`](Self::shutdown) has waited for it.
    task: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// Binds the listener and starts serving. Until [`set_ready`](Self::set_ready),
    /// `/ready` and the API answer 503.
    pub async fn bind(config: HttpConfig) -> Result<Self, HttpError> {
        Self::bind_with_routes(config, Router::new()).await
    }

    /// Like [`bind`](Self::bind), also serving `extra`: routes that a binary mounts beside
    /// the broker's (full paths, e.g. `/api/v1/dlq/...`; no fallback of their own). The
    /// body limit applies to them too. `herald serve` mounts the dead-letter API this way.
    pub async fn bind_with_routes(config: HttpConfig, extra: Router) -> Result<Self, HttpError> {
        let bind_err = |source| HttpError::Bind {
            addr: config.listen,
            source,
        };
        crate::telemetry::install();
        let listener = TcpListener::bind(config.listen).await.map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            phase: RwLock::new(Phase::Starting),
            round_robin: Mutex::new(HashMap::new()),
            stop: stop_rx.clone(),
        });
        let app = router(shared.clone(), &config, extra);
        let mut stop = stop_rx;
        let graceful = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let task = herald_security::tls::spawn_http(
            listener,
            app,
            config.tls.as_ref(),
            graceful,
            "HTTP API",
        )
        .map_err(bind_err)?;
        tracing::info!(%addr, tls = config.tls.is_some(), "HTTP API listening");
        Ok(Self {
            addr,
            shared,
            stop_tx,
            task: Some(task),
        })
    }

    /// The bound address (with the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the API from `broker`; `/ready` answers 200 from now on.
    pub fn set_ready(&self, broker: Broker) {
        *self.shared.phase.write().unwrap_or_else(|p| p.into_inner()) = Phase::Ready(broker);
    }

    /// `/ready` and the API answer 503 from now on; the server still runs.
    pub fn begin_shutdown(&self) {
        *self.shared.phase.write().unwrap_or_else(|p| p.into_inner()) = Phase::ShuttingDown;
    }

    /// Stops gracefully: stops accepting, ends long polls, waits for requests in flight.
    pub async fn shutdown(mut self) {
        self.begin_shutdown();
        let _ = self.stop_tx.send(true);
        if let Some(task) = self.task.take()
            && let Err(e) = task.await
        {
            tracing::error!(error = %e, "HTTP server task failed");
        }
        tracing::info!(addr = %self.addr, "HTTP API stopped");
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Without shutdown(): the server stops accepting and ends on its own.
        let _ = self.stop_tx.send(true);
    }
}

/// The refusal of the browser guard in the API's error format.
fn refused(r: herald_security::Rejection) -> Response {
    let code = match r.status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => error::codes::NOT_JSON,
        StatusCode::UNAUTHORIZED => error::codes::UNAUTHORIZED,
        _ => error::codes::REFUSED_ORIGIN,
    };
    ApiError::new(r.status, code, r.message).into_response()
}

fn router(shared: AppState, config: &HttpConfig, extra: Router) -> Router {
    let guard = herald_security::BrowserGuard::new(
        herald_security::HostAllowlist::with_names(&config.allowed_hosts),
        refused,
    );
    let api = Router::new()
        .route("/topics", get(topics::list).post(topics::create))
        .route(
            "/topics/{name}",
            get(topics::describe).delete(topics::delete),
        )
        .route("/topics/{name}/partitions", post(topics::add_partitions))
        .route("/topics/{name}/records", post(records::produce))
        .route(
            "/topics/{name}/partitions/{partition}/records",
            get(records::consume),
        )
        .route("/groups", get(groups::list))
        .route("/groups/{id}", get(groups::describe))
        .route(
            "/acls",
            get(security::list_acls)
                .post(security::create_acls)
                .delete(security::delete_acls),
        )
        .route("/users", get(security::list_users))
        .route(
            "/users/{name}",
            axum::routing::put(security::set_password).delete(security::remove_user),
        );
    let routes = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics::scrape))
        .nest("/api/v1", api)
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .with_state(shared)
        .merge(extra)
        // Inside authentication (which names the user), around every route.
        .route_layer(axum::middleware::from_fn_with_state(
            authz::Authorization {
                authorizer: config.authorizer.clone(),
                metrics_auth: config.metrics_auth,
            },
            authz::authorize,
        ));
    // Authentication inside the browser guard: a page's request is refused before any
    // password is checked.
    let routes = match &config.basic_auth {
        None => routes,
        Some(users) => {
            let mut open = vec!["/health", "/ready"];
            if !config.metrics_auth {
                open.push("/metrics");
            }
            herald_security::BasicAuth::new(users.clone(), "herald", open, refused).protect(routes)
        }
    };
    guard
        .protect(routes)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn ready(State(shared): State<AppState>) -> Response {
    match shared.broker() {
        Ok(_) => Json(serde_json::json!({ "status": "ready" })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "status": "unavailable",
                "error_code": e.body().error_code,
                "message": e.body().message,
            })),
        )
            .into_response(),
    }
}
