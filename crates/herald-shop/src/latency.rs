//! The latency claim of the articles, reproduced: "moving five synchronous side effects to
//! event handlers cut median order placement latency from 2.8 s to 340 ms".
//!
//! One run places the same orders against two order endpoints on the same machine:
//!
//! - **synchronous**: validate, charge the card, store the order, then call the five
//!   side effects — confirmation email, inventory update, warehouse notification,
//!   analytics, loyalty points — one after the other over HTTP, and answer;
//! - **event-driven**: validate, charge the card, store the order and its
//!   `OrderPlaced` in one transaction (herald-sql's outbox), answer. A relay publishes
//!   the event to the embedded log, and five consumer groups (SDK routers with a SQLite
//!   inbox) call the same five services.
//!
//! Each downstream service is a real HTTP server that takes its configured latency
//! ([`Latencies`]). The article gives only the two medians; the split of the 2.46 s the
//! five side effects add is ours ([`Latencies::article`]).
//!
//! Then one downstream service (email) goes down: synchronous orders fail, event-driven
//! orders are accepted and their emails wait in the consumer's retries; when the service
//! is back, the run measures how long the side effects take to catch up.

use std::{
    collections::HashSet,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, http::StatusCode, routing::post};
use herald::{EmbeddedTransport, Envelope, HandlerError, RouterHandle, transport::Admin};
use herald_sql::{HeraldDb, RelayConfig, RelayHandle, SqliteInbox};
use serde::{Deserialize, Serialize};
use sqlx::Sqlite;

use crate::{
    ShopError,
    demo::Percentiles,
    events::OrderPlaced,
    order::{OrderLine, PlaceOrder, validate},
    service::retry_policy,
    settings::{GOOD_CARD, Settings},
};

const TOPIC: &str = "latency.orders";

/// How long each downstream call takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Latencies {
    /// The card gateway: in the request path in both designs.
    pub payment: Duration,
    /// The five side effects, in the order the synchronous endpoint calls them.
    pub side_effects: Vec<(&'static str, Duration)>,
}

impl Latencies {
    /// The article's scale: a request path of ~340 ms (the gateway) and five side
    /// effects adding 2.46 s, so that the synchronous median is ~2.8 s. The split among
    /// the five is an assumption: the article names the effects and the totals only.
    pub fn article() -> Self {
        Self {
            payment: Duration::from_millis(330),
            side_effects: vec![
                ("email", Duration::from_millis(900)),
                ("inventory", Duration::from_millis(350)),
                ("warehouse", Duration::from_millis(600)),
                ("analytics", Duration::from_millis(250)),
                ("loyalty", Duration::from_millis(360)),
            ],
        }
    }

    /// Every latency multiplied by `factor` (a quicker run of the same shape).
    pub fn scaled(&self, factor: f64) -> Self {
        let s = |d: Duration| d.mul_f64(factor);
        Self {
            payment: s(self.payment),
            side_effects: self.side_effects.iter().map(|(n, d)| (*n, s(*d))).collect(),
        }
    }

    /// The sum of the side effects.
    pub fn side_effects_total(&self) -> Duration {
        self.side_effects.iter().map(|(_, d)| *d).sum()
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct LatencyConfig {
    /// The downstream latencies.
    pub latencies: Latencies,
    /// Orders per design in the steady phase.
    pub orders: usize,
    /// Clients placing orders at once.
    pub concurrency: usize,
    /// Orders per design while the email service is down.
    pub outage_orders: usize,
    /// Where the event-driven design keeps its log and databases.
    pub dir: std::path::PathBuf,
}

/// One design's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Phase {
    /// Orders accepted.
    pub ok: usize,
    /// Orders refused (an error answer).
    pub failed: usize,
    /// Latency of accepted orders.
    pub latency: Percentiles,
}

/// The run's results.
#[derive(Debug, Clone)]
pub struct LatencyReport {
    /// The latencies used.
    pub latencies: Latencies,
    /// Synchronous, all services up.
    pub sync: Phase,
    /// Event-driven, all services up.
    pub evented: Phase,
    /// Synchronous, email down.
    pub sync_outage: Phase,
    /// Event-driven, email down.
    pub evented_outage: Phase,
    /// From the email service's recovery until every side effect of every accepted
    /// event-driven order was done.
    pub catch_up: Duration,
    /// Side effects done per service in the event-driven design, at the end.
    pub evented_effects: Vec<(&'static str, usize)>,
}

/// A downstream service: answers `POST /{name}` after its latency, or 503 when down.
struct Downstream {
    name: &'static str,
    latency: Duration,
    up: AtomicBool,
    seen: Mutex<HashSet<String>>,
}

#[derive(Serialize, Deserialize)]
struct Effect {
    order_id: String,
}

async fn downstream(State(d): State<Arc<Downstream>>, Json(effect): Json<Effect>) -> StatusCode {
    tokio::time::sleep(d.latency).await;
    if !d.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    d.seen.lock().expect("seen lock").insert(effect.order_id);
    StatusCode::NO_CONTENT
}

async fn serve(router: Router) -> Result<SocketAddr, ShopError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(addr)
}

/// The downstream services and a client for them.
#[derive(Clone)]
struct Services {
    client: reqwest::Client,
    base: String,
    effects: Vec<Arc<Downstream>>,
}

impl Services {
    async fn start(latencies: &Latencies) -> Result<Self, ShopError> {
        let make = |name, latency| {
            Arc::new(Downstream {
                name,
                latency,
                up: AtomicBool::new(true),
                seen: Mutex::default(),
            })
        };
        let payment = make("payment", latencies.payment);
        let effects: Vec<_> = latencies
            .side_effects
            .iter()
            .map(|(n, d)| make(n, *d))
            .collect();
        let mut router = Router::new();
        // The gateway is served like the side effects, and called in every request.
        for d in std::iter::once(&payment).chain(&effects) {
            router = router.route(
                &format!("/{}", d.name),
                post(downstream).with_state(d.clone()),
            );
        }
        let addr = serve(router).await?;
        Ok(Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .build()
                .map_err(|e| ShopError::Other(e.to_string()))?,
            base: format!("http://{addr}"),
            effects,
        })
    }

    async fn call(&self, name: &str, order_id: &str) -> Result<(), String> {
        let response = self
            .client
            .post(format!("{}/{name}", self.base))
            .json(&Effect {
                order_id: order_id.to_owned(),
            })
            .send()
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("{name} answered {}", response.status()))
        }
    }

    fn effect(&self, name: &str) -> &Arc<Downstream> {
        self.effects
            .iter()
            .find(|d| d.name == name)
            .expect("a configured side effect")
    }
}

/// The state behind both order endpoints.
#[derive(Clone)]
struct Endpoint {
    services: Services,
    db: HeraldDb<Sqlite>,
    settings: Arc<Settings>,
    evented: bool,
}

async fn place(
    State(e): State<Endpoint>,
    Json(order): Json<PlaceOrder>,
) -> Result<StatusCode, (StatusCode, String)> {
    let placed =
        validate(order, &e.settings).map_err(|x| (StatusCode::BAD_REQUEST, x.to_string()))?;
    let unavailable = |m: String| (StatusCode::BAD_GATEWAY, m);
    e.services
        .call("payment", &placed.order_id)
        .await
        .map_err(unavailable)?;
    let internal = |m: &dyn std::fmt::Display| (StatusCode::INTERNAL_SERVER_ERROR, m.to_string());
    let mut tx = e.db.begin().await.map_err(|x| internal(&x))?;
    sqlx::query("INSERT INTO orders (order_id, total_cents) VALUES ($1, $2)")
        .bind(&placed.order_id)
        .bind(placed.total_cents)
        .execute(&mut *tx)
        .await
        .map_err(|x| internal(&x))?;
    if e.evented {
        let envelope =
            Envelope::from_event("urn:latency:orders", &placed).map_err(|x| internal(&x))?;
        herald_sql::enqueue(&mut tx, TOPIC, &envelope)
            .await
            .map_err(|x| internal(&x))?;
        tx.commit().await.map_err(|x| internal(&x))?;
    } else {
        tx.commit().await.map_err(|x| internal(&x))?;
        for d in &e.services.effects {
            e.services
                .call(d.name, &placed.order_id)
                .await
                .map_err(unavailable)?;
        }
    }
    Ok(StatusCode::CREATED)
}

async fn endpoint(
    services: &Services,
    db_path: std::path::PathBuf,
    evented: bool,
) -> Result<(String, HeraldDb<Sqlite>), ShopError> {
    let db = HeraldDb::open(db_path)
        .await
        .map_err(|e| ShopError::Other(e.to_string()))?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, total_cents BIGINT NOT NULL)",
    )
    .execute(db.pool())
    .await
    .map_err(|e| ShopError::Other(e.to_string()))?;
    let state = Endpoint {
        services: services.clone(),
        db: db.clone(),
        settings: Arc::new(Settings::default()),
        evented,
    };
    let addr = serve(
        Router::new()
            .route("/orders", post(place))
            .with_state(state),
    )
    .await?;
    Ok((format!("http://{addr}/orders"), db))
}

/// The five consumer groups of the event-driven design, each calling its service.
async fn consumers(
    bus: &EmbeddedTransport,
    services: &Services,
    inbox: &SqliteInbox,
) -> Result<Vec<RouterHandle>, ShopError> {
    let mut routers = Vec::new();
    for d in &services.effects {
        let (services, name) = (services.clone(), d.name);
        let router = herald::Router::builder(bus.clone(), name)
            .inbox(Arc::new(inbox.clone()))
            // A service that is down is retried until it is back (an hour at most).
            .retry(retry_policy(Duration::from_secs(3600)))
            .concurrency(64)
            .on(TOPIC, move |order: OrderPlaced, _ctx| {
                let services = services.clone();
                async move {
                    services
                        .call(name, &order.order_id)
                        .await
                        .map_err(|e| HandlerError::transient(std::io::Error::other(e)))
                }
            })
            .start()
            .await?;
        routers.push(router);
    }
    Ok(routers)
}

async fn drive(url: &str, n: usize, concurrency: usize) -> Phase {
    let client = reqwest::Client::new();
    let body = PlaceOrder {
        customer_id: "ada".into(),
        email: "ada@example.com".into(),
        items: vec![OrderLine {
            sku: "widget".into(),
            quantity: 1,
        }],
        card: GOOD_CARD.into(),
        address: crate::events::Address {
            name: "Ada".into(),
            street: "1 Main St".into(),
            city: "London".into(),
            country: "GB".into(),
        },
    };
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = Arc::new(Mutex::new((Vec::new(), 0usize)));
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (client, body, next, results, url) = (
            client.clone(),
            body.clone(),
            next.clone(),
            results.clone(),
            url.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::SeqCst) < n {
                let t = Instant::now();
                let ok = matches!(
                    client.post(&url).json(&body).send().await,
                    Ok(r) if r.status() == StatusCode::CREATED
                );
                let mut r = results.lock().expect("results lock");
                if ok {
                    r.0.push(t.elapsed());
                } else {
                    r.1 += 1;
                }
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let (latencies, failed) = results.lock().expect("results lock").clone();
    Phase {
        ok: latencies.len(),
        failed,
        latency: Percentiles::of(&latencies),
    }
}

async fn evented_orders(db: &HeraldDb<Sqlite>) -> Result<HashSet<String>, ShopError> {
    let ids: Vec<String> = sqlx::query_scalar("SELECT order_id FROM orders")
        .fetch_all(db.pool())
        .await
        .map_err(|e| ShopError::Other(e.to_string()))?;
    Ok(ids.into_iter().collect())
}

/// Runs both designs as the module documentation says.
pub async fn run(config: LatencyConfig) -> Result<LatencyReport, ShopError> {
    std::fs::create_dir_all(&config.dir)?;
    let services = Services::start(&config.latencies).await?;
    let bus = EmbeddedTransport::open(config.dir.join("log"))?;
    bus.create_topic(TOPIC, 8).await?;
    let (sync_url, _sync_db) = endpoint(&services, config.dir.join("sync.db"), false).await?;
    let (evented_url, evented_db) =
        endpoint(&services, config.dir.join("evented.db"), true).await?;
    let relay: RelayHandle = evented_db
        .relay(bus.clone())
        .with_config(RelayConfig {
            poll_interval: Duration::from_millis(5),
            ..RelayConfig::default()
        })
        .start();
    let inbox = SqliteInbox::open(config.dir.join("consumers.db"))
        .await
        .map_err(|e| ShopError::Other(e.to_string()))?;
    let routers = consumers(&bus, &services, &inbox).await?;

    let c = config.concurrency;
    let sync = drive(&sync_url, config.orders, c).await;
    let evented = drive(&evented_url, config.orders, c).await;

    let email = services.effect("email").clone();
    email.up.store(false, Ordering::SeqCst);
    let sync_outage = drive(&sync_url, config.outage_orders, c).await;
    let evented_outage = drive(&evented_url, config.outage_orders, c).await;
    // Let the consumers run into the outage, then bring the service back.
    tokio::time::sleep(Duration::from_secs(1)).await;
    email.up.store(true, Ordering::SeqCst);
    let recovered = Instant::now();
    let expected = evented_orders(&evented_db).await?;
    let deadline = recovered + Duration::from_secs(600);
    loop {
        let done = services.effects.iter().all(|d| {
            let seen = d.seen.lock().expect("seen lock");
            expected.iter().all(|id| seen.contains(id))
        });
        if done {
            break;
        }
        if Instant::now() > deadline {
            return Err(ShopError::Other(
                "side effects did not catch up within 10 minutes".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let catch_up = recovered.elapsed();
    let evented_effects = services
        .effects
        .iter()
        .map(|d| {
            let seen = d.seen.lock().expect("seen lock");
            (
                d.name,
                expected.iter().filter(|id| seen.contains(*id)).count(),
            )
        })
        .collect();
    for router in routers {
        router.shutdown().await?;
    }
    relay
        .shutdown()
        .await
        .map_err(|e| ShopError::Other(e.to_string()))?;
    Ok(LatencyReport {
        latencies: config.latencies,
        sync,
        evented,
        sync_outage,
        evented_outage,
        catch_up,
        evented_effects,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

impl std::fmt::Display for LatencyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let l = &self.latencies;
        writeln!(
            f,
            "Downstream latencies: payment {} (in the request in both designs); side effects {} \
             ({} in all)",
            ms(l.payment),
            l.side_effects
                .iter()
                .map(|(n, d)| format!("{n} {}", ms(*d)))
                .collect::<Vec<_>>()
                .join(", "),
            ms(l.side_effects_total())
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "| design | services | orders accepted | failed | p50 | p99 |"
        )?;
        writeln!(f, "| --- | --- | ---: | ---: | ---: | ---: |")?;
        for (design, state, p) in [
            ("synchronous", "all up", &self.sync),
            ("event-driven", "all up", &self.evented),
            ("synchronous", "email down", &self.sync_outage),
            ("event-driven", "email down", &self.evented_outage),
        ] {
            let (p50, p99) = if p.ok > 0 {
                (ms(p.latency.p50), ms(p.latency.p99))
            } else {
                ("—".into(), "—".into())
            };
            writeln!(
                f,
                "| {design} | {state} | {} | {} | {p50} | {p99} |",
                p.ok, p.failed
            )?;
        }
        writeln!(f)?;
        let p50 = |p: &Phase| p.latency.p50.as_secs_f64();
        if p50(&self.evented) > 0.0 {
            writeln!(
                f,
                "Median ratio synchronous / event-driven: {:.1}x (the article: 2.8 s / 340 ms = 8.2x)",
                p50(&self.sync) / p50(&self.evented)
            )?;
        }
        writeln!(
            f,
            "After the email service came back, the event-driven side effects caught up in {} \
             (every accepted order: {}).",
            ms(self.catch_up),
            self.evented_effects
                .iter()
                .map(|(n, c)| format!("{n} {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}
