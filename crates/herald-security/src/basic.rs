//! HTTP Basic authentication for the HTTP API and the schema registry, against the same
//! users as SASL ([`UserStore`]): what schema-registry clients send with
//! `basic.auth.user.info`. A request without valid credentials gets 401 with a
//! `WWW-Authenticate` challenge and reaches no handler; the authenticated principal
//! (`User:<name>`) is put in the request's extensions as [`Principal`].
//!
//! Checking a password derives its SCRAM key (thousands of PBKDF2 rounds), too slow to
//! repeat on every request of a busy client: a successful check is remembered for
//! [`CACHE_TTL`] under an HMAC of user and password with a key made at start, so the
//! password itself is never kept, and a changed password takes effect within that time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ring::{hmac, rand::SystemRandom};

use crate::{
    Rejection, RejectionResponder, UserStore,
    scram::{CredentialLookup, ScramHash},
};

/// How long a checked password is trusted without deriving its key again.
pub const CACHE_TTL: Duration = Duration::from_secs(300);

/// The authenticated user of a request, in Kafka's principal form `User:<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub String);

/// Basic authentication of one server.
#[derive(Clone)]
pub struct BasicAuth {
    inner: Arc<Inner>,
}

struct Inner {
    users: UserStore,
    realm: &'static str,
    /// Paths answered without credentials (`/health`).
    open: Vec<&'static str>,
    respond: RejectionResponder,
    cache_key: hmac::Key,
    cache: Mutex<HashMap<Vec<u8>, (String, Instant, u64)>>,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("realm", &self.inner.realm)
            .field("open", &self.inner.open)
            .finish_non_exhaustive()
    }
}

impl BasicAuth {
    /// Authentication against `users`; `open` paths need none; refusals are worded by
    /// `respond` (each server has its own error body).
    pub fn new(
        users: UserStore,
        realm: &'static str,
        open: Vec<&'static str>,
        respond: RejectionResponder,
    ) -> Self {
        let cache_key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .expect("the system's random source works");
        Self {
            inner: Arc::new(Inner {
                users,
                realm,
                open,
                respond,
                cache_key,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// `router` with authentication in front of each of its routes.
    pub fn protect<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self, authenticate))
    }

    /// The user an `Authorization` header value authenticates, if any.
    pub fn check(&self, authorization: Option<&str>) -> Option<String> {
        let encoded = authorization?.strip_prefix("Basic ")?.trim();
        let decoded = B64.decode(encoded).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (user, password) = text.split_once(':')?;
        let tag = hmac::sign(&self.inner.cache_key, text.as_bytes())
            .as_ref()
            .to_vec();
        let now = Instant::now();
        // A change to any user (a new password, a removal) empties the cache's meaning.
        let generation = self.inner.users.generation();
        {
            let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
            match cache.get(&tag) {
                Some((name, at, seen))
                    if now.duration_since(*at) < CACHE_TTL && *seen == generation =>
                {
                    return Some(name.clone());
                }
                Some(_) => {
                    cache.remove(&tag);
                }
                None => {}
            }
        }
        let credential = ScramHash::ALL
            .iter()
            .rev()
            .find_map(|h| self.inner.users.credential(user, *h))?;
        if !credential.verify_password(password.as_bytes()) {
            return None;
        }
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() > 10_000 {
            cache.retain(|_, (_, at, _)| now.duration_since(*at) < CACHE_TTL);
        }
        cache.insert(tag, (user.to_owned(), now, generation));
        Some(user.to_owned())
    }
}

async fn authenticate(State(auth): State<BasicAuth>, mut request: Request, next: Next) -> Response {
    if auth.inner.open.contains(&request.uri().path()) {
        return next.run(request).await;
    }
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let given = header.is_some();
    // The PBKDF2 work runs off the async threads.
    let checker = auth.clone();
    let header = header.map(str::to_owned);
    let user = tokio::task::spawn_blocking(move || checker.check(header.as_deref()))
        .await
        .ok()
        .flatten();
    match user {
        Some(user) => {
            request
                .extensions_mut()
                .insert(Principal(format!("User:{user}")));
            next.run(request).await
        }
        None => {
            tracing::info!(path = %request.uri().path(), credentials = given,
                "HTTP request without valid credentials refused");
            let message = if given {
                "invalid user name or password"
            } else {
                "this server needs HTTP Basic credentials of a herald user"
            };
            let mut response = (auth.inner.respond)(Rejection {
                status: StatusCode::UNAUTHORIZED,
                message: message.into(),
            });
            let challenge = format!("Basic realm=\"{}\", charset=\"UTF-8\"", auth.inner.realm);
            if let Ok(v) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::{body::Body, response::IntoResponse, routing::get};
    use tower::ServiceExt;

    use super::*;
    use crate::scram::MIN_ITERATIONS;

    fn auth(dir: &std::path::Path) -> BasicAuth {
        let users = UserStore::open(dir).unwrap();
        users
            .set_password(
                "alice",
                b"s3cret:with:colons",
                &[ScramHash::Sha256],
                MIN_ITERATIONS,
            )
            .unwrap();
        BasicAuth::new(users, "herald", vec!["/health"], |r| {
            (r.status, r.message).into_response()
        })
    }

    fn basic(user_pass: &str) -> String {
        format!("Basic {}", B64.encode(user_pass))
    }

    #[test]
    fn credentials_are_checked_and_remembered_without_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let a = auth(dir.path());
        assert_eq!(
            a.check(Some(&basic("alice:s3cret:with:colons"))).as_deref(),
            Some("alice")
        );
        assert_eq!(
            a.check(Some(&basic("alice:s3cret:with:colons"))).as_deref(),
            Some("alice"),
            "cached"
        );
        assert_eq!(a.check(Some(&basic("alice:wrong"))), None);
        assert_eq!(a.check(Some(&basic("bob:s3cret:with:colons"))), None);
        assert_eq!(a.check(Some("Bearer x")), None);
        assert_eq!(a.check(Some("Basic !!!")), None);
        assert_eq!(a.check(None), None);
        let cache = a.inner.cache.lock().unwrap();
        assert_eq!(cache.len(), 1);
        assert!(
            cache
                .keys()
                .all(|k| !String::from_utf8_lossy(k).contains("s3cret"))
        );
    }

    #[tokio::test]
    async fn requests_without_credentials_get_401_and_a_challenge() {
        let dir = tempfile::tempdir().unwrap();
        let app = auth(dir.path()).protect(
            Router::new()
                .route("/health", get(|| async { "ok" }))
                .route("/topics", get(|| async { "topics" })),
        );
        let send = |path: &str, authorization: Option<String>| {
            let mut req = Request::get(path);
            if let Some(a) = authorization {
                req = req.header(header::AUTHORIZATION, a);
            }
            app.clone().oneshot(req.body(Body::empty()).unwrap())
        };
        assert_eq!(
            send("/health", None).await.unwrap().status(),
            StatusCode::OK
        );
        let refused = send("/topics", None).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert!(
            refused.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Basic realm=\"herald\"")
        );
        let wrong = send("/topics", Some(basic("alice:nope"))).await.unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
        let ok = send("/topics", Some(basic("alice:s3cret:with:colons")))
            .await
            .unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
    }
}
