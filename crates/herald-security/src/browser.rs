//! The browser guard: three checks on every request, before any handler runs.
//!
//! 1. **Host.** A DNS-rebinding page (`http://evil.example` that re-resolves to
//!    127.0.0.1) reaches a loopback server with its own name in the `Host` header. The
//!    guard answers 403 unless the host is an IP literal, `localhost` (or a name under
//!    `.localhost`, which browsers resolve to loopback themselves), or a name the operator
//!    allowed ([`HostAllowlist`]). A request without `Host` (HTTP/1.0 tools) passes: a
//!    browser always sends one.
//! 2. **Origin.** A browser names the page that made a cross-origin request in `Origin`.
//!    When it is present and its host is not allowed by the same rule, 403. Tools send no
//!    `Origin`.
//! 3. **Content type.** A cross-site `<form>` or a `no-cors` `fetch` can POST without a
//!    preflight only as `text/plain`, `application/x-www-form-urlencoded`,
//!    `multipart/form-data`, or with no body and no type. So every POST must say
//!    `Content-Type: application/json` (or another `application/…+json`, such as the
//!    registry's `application/vnd.schemaregistry.v1+json`), even with an empty body;
//!    otherwise 415. PUT, PATCH and DELETE are not CORS-safelisted methods: a page can
//!    send them only after a preflight, which fails, as neither server sends CORS
//!    headers.
//!
//! A refused request reaches no handler, so it changes nothing.

use std::{net::IpAddr, sync::Arc};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderMap, Method, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};

/// The host names a server answers to, beyond IP literals and `localhost`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAllowlist {
    /// Lower-case, without a trailing dot.
    names: Vec<String>,
}

impl HostAllowlist {
    /// IP literals and `localhost` only: right for a listener on loopback.
    pub fn loopback() -> Self {
        Self::default()
    }

    /// Also `names` (host names without ports, such as `herald.internal`), case-insensitive.
    pub fn with_names<I, S>(names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let names = names
            .into_iter()
            .map(|n| normalize(n.as_ref()))
            .filter(|n| !n.is_empty())
            .collect();
        Self { names }
    }

    /// The names allowed beyond IP literals and `localhost`.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Whether a `Host` header value (`name`, `name:port`, `[v6]:port`) is allowed.
    pub fn allows(&self, host_header: &str) -> bool {
        let Some(host) = host_of(host_header) else {
            return false;
        };
        if host.parse::<IpAddr>().is_ok() {
            return true;
        }
        let host = normalize(host);
        host == "localhost" || host.ends_with(".localhost") || self.names.contains(&host)
    }

    /// Whether an `Origin` header value (`scheme://host[:port]`, or `null`) is allowed.
    pub fn allows_origin(&self, origin: &str) -> bool {
        match origin.split_once("://") {
            Some((_, rest)) if !rest.contains('/') => self.allows(rest),
            // "null" (sandboxed frames, file: pages) and anything malformed.
            _ => false,
        }
    }
}

fn normalize(name: &str) -> String {
    name.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// The host part of a `Host` value: `[::1]:8080` → `::1`, `a.b:80` → `a.b`.
fn host_of(value: &str) -> Option<&str> {
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        return (after.is_empty() || port_ok(after.strip_prefix(':')?)).then_some(inside);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if port_ok(port) && !host.contains(':') => Some(host),
        Some(_) => None,
        None => Some(value),
    }
    .filter(|h| !h.is_empty())
}

fn port_ok(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// Why the guard refused a request, for the server to answer in its own error format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 403 for a host or origin, 415 for a content type.
    pub status: StatusCode,
    /// What was wrong and what to do, for the client.
    pub message: String,
}

/// Builds a server's error answer (each server has its own JSON error body).
pub type RejectionResponder = fn(Rejection) -> Response;

/// The browser guard of one server: what hosts it answers to and how it words a refusal.
#[derive(Debug, Clone)]
pub struct BrowserGuard {
    hosts: Arc<HostAllowlist>,
    respond: RejectionResponder,
}

impl BrowserGuard {
    /// A guard allowing `hosts`, answering refusals with `respond`.
    pub fn new(hosts: HostAllowlist, respond: RejectionResponder) -> Self {
        Self {
            hosts: Arc::new(hosts),
            respond,
        }
    }

    /// `router` with the guard in front of each of its routes (call it once every route
    /// is in). A request that matches no route still gets the router's 404 or 405: it
    /// reaches no handler either.
    pub fn protect<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self, guard))
    }

    /// The checks, in order; `None` when the request may go on.
    pub fn check(&self, method: &Method, headers: &HeaderMap) -> Option<Rejection> {
        let text = |name| headers.get(name).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        if let Some(host) = text(header::HOST)
            && !self.hosts.allows(host)
        {
            return Some(Rejection {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "Host {host:?} is not a name this server answers to (a DNS-rebinding \
                     page would look like this); add it to http_allowed_hosts"
                ),
            });
        }
        if let Some(origin) = text(header::ORIGIN)
            && !self.hosts.allows_origin(origin)
        {
            return Some(Rejection {
                status: StatusCode::FORBIDDEN,
                message: format!(
                    "requests from the web page at {origin:?} are refused; tools send no \
                     Origin, and a page's host must be in http_allowed_hosts"
                ),
            });
        }
        if method == Method::POST && !text(header::CONTENT_TYPE).is_some_and(is_json) {
            return Some(Rejection {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                message: format!(
                    "{method} needs Content-Type: application/json (even with an empty \
                     body), so that a web page cannot send it as a form"
                ),
            });
        }
        None
    }
}

/// `application/json`, or any `application/…+json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || sub.ends_with("+json"))
}

async fn guard(State(guard): State<BrowserGuard>, request: Request, next: Next) -> Response {
    match guard.check(request.method(), request.headers()) {
        None => next.run(request).await,
        Some(rejection) => {
            tracing::info!(method = %request.method(), path = %request.uri().path(),
                status = rejection.status.as_u16(), reason = %rejection.message,
                "HTTP request refused by the browser guard");
            (guard.respond)(rejection)
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{
        body::Body,
        response::IntoResponse,
        routing::{get, post},
    };
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn hosts_ip_literals_localhost_and_named_ones() {
        let hosts = HostAllowlist::with_names(["Herald.Internal."]);
        for ok in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8081",
            "[::1]",
            "10.1.2.3:80",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:3000",
            "herald.internal:8080",
            "HERALD.INTERNAL",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "",
            ":8080",
            "[::1",
            "host:port",
            "a:b:c",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        assert!(!HostAllowlist::loopback().allows("herald.internal"));
    }

    #[test]
    fn origins_by_the_same_rule() {
        let hosts = HostAllowlist::loopback();
        assert!(hosts.allows_origin("http://localhost:3000"));
        assert!(hosts.allows_origin("http://127.0.0.1:8080"));
        assert!(!hosts.allows_origin("https://evil.example"));
        assert!(!hosts.allows_origin("null"));
        assert!(!hosts.allows_origin("http://localhost/path"));
    }

    #[test]
    fn json_content_types() {
        for ok in [
            "application/json",
            "application/json; charset=utf-8",
            "Application/JSON",
            "application/vnd.schemaregistry.v1+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "text/json",
            "application/jsonp",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    fn app() -> Router {
        let respond: RejectionResponder =
            |r| (r.status, format!("refused: {}", r.message)).into_response();
        let router = Router::new()
            .route("/read", get(|| async { "read" }))
            .route("/write", post(|| async { "written" }));
        BrowserGuard::new(HostAllowlist::loopback(), respond).protect(router)
    }

    async fn status(req: axum::http::request::Builder) -> StatusCode {
        app()
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap()
            .status()
    }

    #[tokio::test]
    async fn the_guard_runs_before_the_handlers() {
        let get = |host: &str| Request::get("/read").header(header::HOST, host);
        assert_eq!(status(get("127.0.0.1:8080")).await, StatusCode::OK);
        assert_eq!(
            status(get("rebound.evil.example:8080")).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(get("localhost").header(header::ORIGIN, "http://evil.example")).await,
            StatusCode::FORBIDDEN
        );
        let post = || Request::post("/write").header(header::HOST, "localhost:8080");
        assert_eq!(
            status(post()).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "no content type"
        );
        assert_eq!(
            status(post().header(header::CONTENT_TYPE, "text/plain")).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            status(post().header(header::CONTENT_TYPE, "application/json")).await,
            StatusCode::OK
        );
        // A method or path the router does not have keeps its own answer.
        assert_eq!(
            status(Request::put("/write").header(header::HOST, "localhost")).await,
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
