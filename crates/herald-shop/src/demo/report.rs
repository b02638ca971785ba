//! The demo's summary: what happened, the invariants, and where to look next.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use herald::EmbeddedTransport;

use super::{
    DemoConfig, PlacedOrder,
    checks::{self, Books, Check},
};
use crate::{
    ShopError, inventory, observed::Observed, payment, reactions, saga::OrderSaga, shipping,
    shop::Shop,
};

/// Median and 99th percentile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
}

impl Percentiles {
    /// Of `samples` (nearest rank); zero when empty.
    pub fn of(samples: &[Duration]) -> Self {
        let mut s = samples.to_vec();
        s.sort_unstable();
        let at = |q: f64| {
            if s.is_empty() {
                Duration::ZERO
            } else {
                s[((q * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]
            }
        };
        Self {
            p50: at(0.50),
            p99: at(0.99),
        }
    }
}

/// A consumer group's lag: the most seen during the run, and at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupLag {
    /// The group.
    pub group: &'static str,
    /// Most records not yet committed at once.
    pub max: u64,
    /// Records not committed at the end.
    pub end: u64,
}

/// What `herald demo` reports.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Orders accepted by `POST /orders`.
    pub placed: usize,
    /// Completed.
    pub completed: i64,
    /// Cancelled, by reason.
    pub cancelled: BTreeMap<String, i64>,
    /// Dead letters: `(dead-letter topic, event id, reason)`.
    pub dead_letters: Vec<(String, String, String)>,
    /// Lag per consumer group.
    pub lag: Vec<GroupLag>,
    /// `POST /orders` latency, as the clients measured it.
    pub order_latency: Percentiles,
    /// From placing an order to its saga's end.
    pub completion_latency: Percentiles,
    /// How long placing the orders took.
    pub placing_took: Duration,
    /// Charged and refunded, in cents.
    pub payments: payment::PaymentBook,
    /// The inventory's books.
    pub stock: inventory::StockBook,
    /// How long the payment consumer was down after its crash, if it crashed.
    pub crash: Option<Duration>,
    /// The invariants.
    pub checks: Vec<Check>,
    /// The data directory.
    pub data_dir: PathBuf,
}

impl DemoReport {
    /// Whether every invariant held.
    pub fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// Orders cancelled in all.
    pub fn cancelled_total(&self) -> i64 {
        self.cancelled.values().sum()
    }
}

pub(super) async fn build(
    shop: &Shop<Observed<EmbeddedTransport>>,
    config: &DemoConfig,
    placed: &[PlacedOrder],
    poison_id: Option<&str>,
    max_lag: &Mutex<Vec<u64>>,
    placing_took: Duration,
    data_dir: &Path,
) -> Result<DemoReport, ShopError> {
    let bus = shop.transport();
    let db = |name: &str| {
        shop.db(name)
            .ok_or_else(|| ShopError::Other(format!("no service {name}")))
    };
    let orders = shop.orders();
    let order_book = orders.book().await?;
    let mut statuses = BTreeMap::new();
    let mut cancelled: BTreeMap<String, i64> = BTreeMap::new();
    for p in placed {
        let view = orders
            .get(&p.placed.order_id)
            .await
            .map_err(|e| ShopError::Other(e.to_string()))?;
        if view.status == "cancelled" {
            let reason = view.reason.clone().unwrap_or_default();
            let reason = reason.split(':').next().unwrap_or_default().to_owned();
            *cancelled.entry(reason).or_default() += 1;
        }
        statuses.insert(view.order_id, view.status);
    }
    let saga = OrderSaga::open(db("order")?, shop.settings()).await?;
    let books = Books {
        orders: order_book,
        statuses,
        stock: inventory::book(db(inventory::NAME)?).await?,
        limited_stock: shop
            .settings()
            .product("limited-edition")
            .map_or(0, |p| p.initial_stock),
        payments: payment::book(db(payment::NAME)?).await?,
        shipped: shipping::shipped(db(shipping::NAME)?).await?,
        reactions: reactions::reactions(
            db(reactions::NOTIFICATION)?,
            db(reactions::ANALYTICS)?,
            db(reactions::LOYALTY)?,
        )
        .await?,
        sagas: saga.counts().await?,
    };
    let mut all = checks::books(placed, &books);
    let dead_letters = checks::dead_letters(bus).await?;
    all.push(checks::dead_letter_check(&dead_letters, poison_id));
    let events = checks::all_events(bus).await?;
    all.push(checks::correlation_check(placed, &events));

    let mut lag = Vec::new();
    let max = max_lag.lock().expect("lag lock").clone();
    for (i, (group, topics)) in super::groups().into_iter().enumerate() {
        let end = bus.lag(group, &topics).await?;
        lag.push(GroupLag {
            group,
            max: max[i].max(end),
            end,
        });
    }
    let timings = orders.timings().await?;
    let completion: Vec<Duration> = timings
        .iter()
        .map(|(placed, finished)| Duration::from_millis((finished - placed).max(0) as u64))
        .collect();
    let latencies: Vec<Duration> = placed.iter().map(|p| p.latency).collect();
    Ok(DemoReport {
        placed: placed.len(),
        completed: books.orders.completed,
        cancelled,
        dead_letters,
        lag,
        order_latency: Percentiles::of(&latencies),
        completion_latency: Percentiles::of(&completion),
        placing_took,
        payments: books.payments,
        stock: books.stock,
        crash: config.crash_for,
        checks: all,
        data_dir: data_dir.to_owned(),
    })
}

fn ms(d: Duration) -> String {
    if d >= Duration::from_secs(10) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    }
}

fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

impl fmt::Display for DemoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Orders")?;
        writeln!(
            f,
            "  placed       {:>6}   in {} over HTTP (POST /orders)",
            self.placed,
            ms(self.placing_took)
        )?;
        writeln!(
            f,
            "  completed    {:>6}   stock reserved, card charged, shipment created",
            self.completed
        )?;
        writeln!(
            f,
            "  compensated  {:>6}   the saga undid what it had done, last step first:",
            self.cancelled_total()
        )?;
        for (reason, n) in &self.cancelled {
            let undo = match reason.as_str() {
                "payment declined" => "stock released",
                "shipment rejected" => "payment refunded, then stock released",
                _ => "nothing to undo",
            };
            writeln!(f, "    {n:>6} {reason} ({undo})")?;
        }
        writeln!(
            f,
            "  money        {} charged, {} refunded; stock: {} units reserved, {} released",
            euros(self.payments.charged_cents),
            euros(self.payments.refunded_cents),
            self.stock.reserved,
            self.stock.released
        )?;
        writeln!(f)?;
        writeln!(f, "Latency")?;
        writeln!(
            f,
            "  order accepted (POST /orders)    p50 {:>9}   p99 {:>9}",
            ms(self.order_latency.p50),
            ms(self.order_latency.p99)
        )?;
        writeln!(
            f,
            "  order completed or compensated   p50 {:>9}   p99 {:>9}",
            ms(self.completion_latency.p50),
            ms(self.completion_latency.p99)
        )?;
        writeln!(f)?;
        writeln!(f, "Dead letters ({})", self.dead_letters.len())?;
        for (topic, id, reason) in &self.dead_letters {
            writeln!(f, "  {topic}  {id}  {reason}")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "Consumer lag (records not yet committed: most during the run, at the end)"
        )?;
        for l in &self.lag {
            writeln!(f, "  {:<14} {:>6} {:>6}", l.group, l.max, l.end)?;
        }
        if let Some(down) = self.crash {
            writeln!(
                f,
                "  (the payment consumer crashed and was down {}; it resumed from its last commit, and its inbox kept redelivered commands from taking effect twice)",
                ms(down)
            )?;
        }
        writeln!(f)?;
        writeln!(f, "Invariants")?;
        for c in &self.checks {
            writeln!(
                f,
                "  [{}] {}: {}",
                if c.ok { "ok" } else { "FAILED" },
                c.name,
                c.detail
            )?;
        }
        writeln!(f)?;
        let dir = self.data_dir.display();
        writeln!(f, "Data")?;
        writeln!(
            f,
            "  {dir}/log                  the event log (herald-log, one directory per partition)"
        )?;
        writeln!(
            f,
            "  {dir}/db/<service>.db      each service's SQLite database (outbox, inbox, its tables)"
        )?;
        writeln!(f)?;
        writeln!(f, "Try next")?;
        writeln!(
            f,
            "  sqlite3 {dir}/db/order.db \"SELECT status, reason, COUNT(*) FROM orders GROUP BY 1, 2\""
        )?;
        writeln!(
            f,
            "  sqlite3 {dir}/db/order.db \"SELECT saga_id, status, step_name FROM herald_saga_instances LIMIT 5\""
        )?;
        writeln!(
            f,
            "  herald demo --orders 1000 --decline-rate 0.3      more orders, more failures"
        )?;
        writeln!(
            f,
            "  docs/shop.md                                      the services, topics and saga; running them as processes"
        )?;
        Ok(())
    }
}
