//! `herald demo`: the whole shop in one process on the embedded default (herald-log and
//! SQLite files, no external service), driven over its HTTP API with failures injected,
//! then checked and summarised.
//!
//! The run:
//!
//! 1. starts every service on an [`EmbeddedTransport`] in `<data dir>/log`, each with its
//!    SQLite database in `<data dir>/db`, and the order API on a free local port;
//! 2. places [`DemoConfig::orders`] orders with `POST /orders` from a few concurrent
//!    clients. A share of them is made to fail: a declined card, a product that runs out,
//!    an address no carrier serves. Meanwhile the mail server is slow, one poison
//!    message (an `OrderPlaced` a buggy producer wrote) lands on the orders topic, and
//!    the payment service's consumer crashes and restarts;
//! 3. waits until every order is completed or cancelled and every consumer caught up;
//! 4. checks the invariants ([`checks`]) and returns a [`DemoReport`] whose `Display` is
//!    the summary `herald demo` prints.

pub mod checks;
mod report;

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use herald::{EmbeddedTransport, Envelope, transport::PublisherExt};
use rand::{Rng, SeedableRng, rngs::StdRng};

pub use report::{DemoReport, GroupLag, Percentiles};

use crate::{
    ShopError,
    db::Storage,
    events::{Address, ORDERS},
    observed::Observed,
    order::{OrderLine, PlaceOrder, Placed},
    payment,
    settings::{DECLINED_CARD, GOOD_CARD, Settings, UNSERVED_COUNTRY},
    shop::Shop,
};

/// What `herald demo` does.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Orders to place.
    pub orders: usize,
    /// Where the log and the databases go; a new directory under the system's temporary
    /// directory when `None` (kept after the run, so it can be looked at).
    pub data_dir: Option<PathBuf>,
    /// Share of orders paid with a card the gateway declines.
    pub decline_rate: f64,
    /// Share of orders for the limited edition, which sells out after a few.
    pub out_of_stock_rate: f64,
    /// Share of orders to an address no carrier serves (refund, then release).
    pub unshippable_rate: f64,
    /// Publish one poison message on the orders topic.
    pub poison: bool,
    /// How long the (slow) mail server takes per email.
    pub email_latency: Duration,
    /// Crash the payment service's consumer a third of the way in, and restart it after
    /// this long; `None`: no crash.
    pub crash_for: Option<Duration>,
    /// Clients placing orders at once.
    pub concurrency: usize,
    /// Seed of the order mix.
    pub seed: u64,
    /// How long to wait for the shop to settle after the last order.
    pub settle_timeout: Duration,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            orders: 100,
            data_dir: None,
            decline_rate: 0.1,
            out_of_stock_rate: 0.05,
            unshippable_rate: 0.05,
            poison: true,
            email_latency: Duration::from_millis(25),
            crash_for: Some(Duration::from_secs(1)),
            concurrency: 8,
            seed: 7,
            settle_timeout: Duration::from_secs(120),
        }
    }
}

impl DemoConfig {
    /// Checks the settings; a clear message for each bad one.
    pub fn validate(&self) -> Result<(), String> {
        if self.orders == 0 || self.orders > 1_000_000 {
            return Err(format!(
                "--orders must be 1 to 1000000, got {}",
                self.orders
            ));
        }
        for (name, rate) in [
            ("--decline-rate", self.decline_rate),
            ("--out-of-stock-rate", self.out_of_stock_rate),
            ("--unshippable-rate", self.unshippable_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(format!("{name} must be between 0 and 1, got {rate}"));
            }
        }
        if self.decline_rate + self.out_of_stock_rate + self.unshippable_rate > 1.0 {
            return Err("the failure rates add up to more than 1".into());
        }
        if self.concurrency == 0 || self.concurrency > 256 {
            return Err(format!(
                "--concurrency must be 1 to 256, got {}",
                self.concurrency
            ));
        }
        Ok(())
    }
}

/// What kind of order the driver places, and so what must become of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderKind {
    /// Must complete.
    Normal,
    /// Paid with the declined card: must be cancelled, its stock released.
    Declined,
    /// For the limited edition: completes while stock lasts, then is cancelled.
    Limited,
    /// Ships to an unserved country: must be cancelled, refunded and released.
    Unshippable,
}

/// Where the run is, for a progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Shop started; the order API listens at this address.
    Started {
        /// `http://127.0.0.1:PORT`.
        api: String,
        /// The data directory.
        data_dir: PathBuf,
    },
    /// `placed` of `total` orders were accepted.
    Placing {
        /// Accepted so far.
        placed: usize,
        /// To place.
        total: usize,
    },
    /// A failure was injected or a notable thing happened.
    Note(String),
    /// Waiting for the shop to settle: orders still open, events not yet consumed.
    Settling {
        /// Orders whose saga has not ended.
        open: i64,
        /// Records not yet committed, over all consumer groups.
        lag: u64,
    },
}

/// An order the driver placed.
#[derive(Debug, Clone)]
pub(crate) struct PlacedOrder {
    pub(crate) kind: OrderKind,
    pub(crate) placed: Placed,
    pub(crate) latency: Duration,
}

fn order_for(kind: OrderKind, i: usize, rng: &mut StdRng) -> PlaceOrder {
    let customer = format!("customer-{}", rng.random_range(0..(20 + i / 10)));
    let mut items = vec![OrderLine {
        sku: ["widget", "gadget", "gizmo"][rng.random_range(0..3)].into(),
        quantity: rng.random_range(1..=3),
    }];
    if kind == OrderKind::Limited {
        items = vec![OrderLine {
            sku: "limited-edition".into(),
            quantity: 1,
        }];
    } else if rng.random_bool(0.3) {
        items.push(OrderLine {
            sku: if items[0].sku == "widget" {
                "gadget"
            } else {
                "widget"
            }
            .into(),
            quantity: 1,
        });
    }
    PlaceOrder {
        email: format!("{customer}@example.com"),
        customer_id: customer,
        items,
        card: if kind == OrderKind::Declined {
            DECLINED_CARD
        } else {
            GOOD_CARD
        }
        .into(),
        address: Address {
            name: "Ada Lovelace".into(),
            street: "12 St James's Square".into(),
            city: if kind == OrderKind::Unshippable {
                "McMurdo"
            } else {
                "London"
            }
            .into(),
            country: if kind == OrderKind::Unshippable {
                UNSERVED_COUNTRY
            } else {
                "GB"
            }
            .into(),
        },
    }
}

/// The kinds of `n` orders: the configured shares of each failure, spread by `seed`.
pub fn order_mix(config: &DemoConfig) -> Vec<OrderKind> {
    let n = config.orders;
    let count = |rate: f64| ((n as f64) * rate).round() as usize;
    let mut kinds = Vec::with_capacity(n);
    kinds.extend(std::iter::repeat_n(
        OrderKind::Declined,
        count(config.decline_rate),
    ));
    kinds.extend(std::iter::repeat_n(
        OrderKind::Limited,
        count(config.out_of_stock_rate),
    ));
    kinds.extend(std::iter::repeat_n(
        OrderKind::Unshippable,
        count(config.unshippable_rate),
    ));
    kinds.truncate(n);
    kinds.resize(n, OrderKind::Normal);
    let mut rng = StdRng::seed_from_u64(config.seed);
    for i in (1..kinds.len()).rev() {
        kinds.swap(i, rng.random_range(0..=i));
    }
    kinds
}

/// The consumer groups of the shop and the topics each reads.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    use crate::events::*;
    vec![
        ("inventory", vec![INVENTORY_COMMANDS]),
        ("payment", vec![PAYMENT_COMMANDS]),
        ("shipping", vec![SHIPPING_COMMANDS]),
        ("notification", vec![ORDERS]),
        ("analytics", vec![ORDERS]),
        ("loyalty", vec![ORDERS]),
        (
            "saga-order",
            vec![INVENTORY_EVENTS, PAYMENT_EVENTS, SHIPPING_EVENTS],
        ),
    ]
}

/// The poison message: an `OrderPlaced` whose data is not an order, as a buggy
/// producer might write it. Every consumer of placed orders dead-letters it.
pub fn poison() -> Envelope {
    Envelope::new(
        "urn:legacy-checkout",
        "shop.order.placed",
        r##"{"order":"#42","total":"twelve euros"}"##,
    )
    .with_key("poison-42")
}

/// Runs the demo (see the module documentation); `progress` hears where it is.
pub async fn run(
    config: DemoConfig,
    progress: impl Fn(Progress) + Send + Sync + 'static,
) -> Result<DemoReport, ShopError> {
    config.validate().map_err(ShopError::Other)?;
    let progress = Arc::new(progress);
    let data_dir = match &config.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("herald-demo-{}", uuid::Uuid::now_v7())),
    };
    std::fs::create_dir_all(&data_dir)?;
    let bus =
        Observed::new(EmbeddedTransport::open(data_dir.join("log")).map_err(ShopError::Transport)?);
    let mut settings = Settings {
        email_latency: config.email_latency,
        ..Settings::default()
    };
    // The limited edition sells out half way through the orders for it.
    let limited = order_mix(&config)
        .iter()
        .filter(|k| **k == OrderKind::Limited)
        .count();
    for product in &mut settings.catalogue {
        if product.sku == "limited-edition" {
            product.initial_stock = (limited / 2) as i64;
        }
    }
    let mut shop = Shop::start(bus.clone(), Storage::Sqlite(data_dir.join("db")), settings).await?;
    let (addr, server) = shop.serve("127.0.0.1:0".parse().expect("address")).await?;
    let api = format!("http://{addr}");
    progress(Progress::Started {
        api: api.clone(),
        data_dir: data_dir.clone(),
    });
    let started = Instant::now();

    // Lag is sampled while the run goes on: the largest is what the summary shows.
    let max_lag: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(vec![0; groups().len()]));
    let sampler = {
        let (bus, max_lag) = (bus.clone(), max_lag.clone());
        tokio::spawn(async move {
            loop {
                for (i, (group, topics)) in groups().iter().enumerate() {
                    if let Ok(lag) = bus.lag(group, topics).await {
                        let mut max = max_lag.lock().expect("lag lock");
                        max[i] = max[i].max(lag);
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };

    let kinds = order_mix(&config);
    let poison = config.poison.then(poison);
    let placed = place_orders(
        &mut shop,
        &api,
        &config,
        &kinds,
        poison.as_ref(),
        progress.clone(),
    )
    .await;
    let placed = match placed {
        Ok(placed) => placed,
        Err(e) => {
            sampler.abort();
            server.abort();
            let _ = shop.shutdown().await;
            return Err(e);
        }
    };
    let placing_took = started.elapsed();

    let settled = settle(&shop, &bus, &config, progress.as_ref()).await;
    sampler.abort();
    let report = match settled {
        Ok(()) => {
            let poison_id = poison.as_ref().map(|p| p.id.as_str());
            report::build(
                &shop,
                &config,
                &placed,
                poison_id,
                &max_lag,
                placing_took,
                &data_dir,
            )
            .await
        }
        Err(e) => Err(e),
    };
    server.abort();
    shop.shutdown().await?;
    report
}

async fn place_orders(
    shop: &mut Shop<Observed<EmbeddedTransport>>,
    api: &str,
    config: &DemoConfig,
    kinds: &[OrderKind],
    poison: Option<&Envelope>,
    progress: Arc<dyn Fn(Progress) + Send + Sync>,
) -> Result<Vec<PlacedOrder>, ShopError> {
    let client = reqwest::Client::new();
    let total = kinds.len();
    let crash_at = config.crash_for.map(|_| total / 3);
    let poison_at = poison.map(|p| (total / 2, p));
    let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(1));
    let bodies: Vec<(OrderKind, PlaceOrder)> = kinds
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, order_for(*k, i, &mut rng)))
        .collect();
    let mut placed = Vec::with_capacity(total);
    let mut crashed: Option<Instant> = None;
    let mut crash_done = false;
    for (chunk_start, chunk) in (0..)
        .step_by(config.concurrency)
        .zip(bodies.chunks(config.concurrency))
    {
        if let Some(at) = crash_at
            && !crash_done
            && chunk_start >= at
        {
            shop.crash_consumers(payment::NAME).await?;
            crashed = Some(Instant::now());
            crash_done = true;
            progress(Progress::Note(
                "crashed the payment service's consumer (it restarts in a moment)".into(),
            ));
        }
        if let (Some(at), Some(down)) = (crashed, config.crash_for)
            && at.elapsed() >= down
            && !shop.failed_services().contains(&payment::NAME)
        {
            shop.restart_consumers(payment::NAME).await?;
            crashed = None;
            progress(Progress::Note(
                "restarted the payment service's consumer".into(),
            ));
        }
        if let Some((at, poison)) = poison_at
            && chunk_start <= at
            && at < chunk_start + chunk.len()
        {
            shop.transport().publish_envelope(ORDERS, poison).await?;
            progress(Progress::Note(
                "published a poison message on shop.orders".into(),
            ));
        }
        let requests = chunk.iter().cloned().map(|(kind, body)| {
            let client = client.clone();
            let url = format!("{api}/orders");
            async move {
                let t = Instant::now();
                let response = client.post(&url).json(&body).send().await;
                let latency = t.elapsed();
                match response {
                    Ok(r) if r.status() == reqwest::StatusCode::CREATED => {
                        let placed: Placed = r
                            .json()
                            .await
                            .map_err(|e| ShopError::Other(format!("reading an answer: {e}")))?;
                        Ok(PlacedOrder {
                            kind,
                            placed,
                            latency,
                        })
                    }
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        Err(ShopError::Other(format!(
                            "POST /orders answered {status}: {text}"
                        )))
                    }
                    Err(e) => Err(ShopError::Other(format!("POST /orders failed: {e}"))),
                }
            }
        });
        for result in futures_join_all(requests).await {
            placed.push(result?);
        }
        progress(Progress::Placing {
            placed: placed.len(),
            total,
        });
    }
    if let Some(at) = crashed {
        if let Some(down) = config.crash_for {
            tokio::time::sleep(down.saturating_sub(at.elapsed())).await;
        }
        shop.restart_consumers(payment::NAME).await?;
        progress(Progress::Note(
            "restarted the payment service's consumer".into(),
        ));
    }
    Ok(placed)
}

/// Runs futures concurrently and collects their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("an order request panicked"));
    }
    out
}

/// Waits until no order is open, every consumer group has committed everything and
/// every outbox is empty.
async fn settle(
    shop: &Shop<Observed<EmbeddedTransport>>,
    bus: &Observed<EmbeddedTransport>,
    config: &DemoConfig,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), ShopError> {
    let deadline = Instant::now() + config.settle_timeout;
    loop {
        let book = shop.orders().book().await?;
        let mut lag = 0;
        for (group, topics) in groups() {
            lag += bus.lag(group, &topics).await?;
        }
        let mut backlog = 0;
        for name in crate::shop::SERVICES {
            if let Some(db) = shop.db(name) {
                backlog += db.outbox_backlog().await?;
            }
        }
        progress(Progress::Settling {
            open: book.open,
            lag: lag + backlog,
        });
        if book.open == 0 && lag == 0 && backlog == 0 {
            return Ok(());
        }
        if let Some(failed) = shop.failed_services().first() {
            return Err(ShopError::Other(format!("the {failed} service stopped")));
        }
        if Instant::now() > deadline {
            return Err(ShopError::Other(format!(
                "the shop did not settle within {:?}: {} orders open, {lag} records not consumed, \
                 {backlog} outbox rows not published",
                config.settle_timeout, book.open
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
