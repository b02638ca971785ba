//! The suite's results as a markdown report, JSON, and an SVG latency chart.
//!
//! The goal check compares Herald over Kafka with every peer that acknowledges only
//! after an fsync (matched durability): throughput at least [`THROUGHPUT_GOAL`] times
//! the peer's in every throughput scenario (median of the per-round ratios), and the
//! lowest p99 latency at [`LATENCY_GOAL_RATE`] messages per second. With the SASL_SSL
//! target in the run ([`SuiteReport::sasl_ssl`]), Herald over SASL_SSL against Herald
//! over plaintext: at least [`SASL_SSL_GOAL`] of its throughput.

use std::{fmt::Write as _, time::Duration};

use serde_json::json;

use crate::{
    stats::median,
    target::{CatchUp, FanOut, LatencyRun},
    workload::SuiteConfig,
};

/// Smallest Herald/peer throughput ratio the goal asks for.
pub const THROUGHPUT_GOAL: f64 = 1.5;
/// The rate whose p99 Herald should lead.
pub const LATENCY_GOAL_RATE: f64 = 10_000.0;
/// The Herald target the goals are checked for.
pub const HERALD: &str = "herald-kafka";
/// How the name of Herald over Kafka with a SASL_SSL listener starts.
pub const HERALD_SASL_SSL: &str = "herald-kafka (SASL_SSL";
/// Smallest SASL_SSL/plaintext throughput ratio the SASL_SSL comparison asks for.
pub const SASL_SSL_GOAL: f64 = 0.7;

/// One scenario of Herald over SASL_SSL against Herald over plaintext.
#[derive(Debug, Clone, PartialEq)]
pub struct SecurityRow {
    /// The scenario: a throughput one, `catch-up write` or `catch-up read`.
    pub scenario: String,
    /// Value size, for MB/s.
    pub bytes: usize,
    /// Plaintext messages/s (the median of the rounds for throughput).
    pub plaintext: f64,
    /// SASL_SSL messages/s.
    pub sasl_ssl: f64,
    /// SASL_SSL / plaintext: the median of the per-round ratios for throughput.
    pub ratio: f64,
}

impl SecurityRow {
    /// Whether the ratio meets [`SASL_SSL_GOAL`].
    pub fn pass(&self) -> bool {
        self.ratio >= SASL_SSL_GOAL
    }
}

/// A target as the report describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    /// Its name.
    pub name: String,
    /// Its settings.
    pub settings: String,
    /// Whether it acknowledges only after an fsync.
    pub fsync_before_ack: bool,
    /// Why it did not run, if it did not.
    pub skipped: Option<String>,
}

/// The percentiles of a latency run, without the histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyStats {
    /// Asked-for rate.
    pub rate: f64,
    /// Messages in the schedule.
    pub scheduled: u64,
    /// Messages sent (fewer than scheduled if the producer fell too far behind).
    pub sent: u64,
    /// Messages received.
    pub received: u64,
    /// Received per second.
    pub achieved: f64,
    /// Whether the target kept up.
    pub sustained: bool,
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Largest.
    pub max: Duration,
}

impl From<LatencyRun> for LatencyStats {
    fn from(run: LatencyRun) -> Self {
        let s = run.summary();
        Self {
            rate: run.target_rate,
            scheduled: run.scheduled,
            sent: run.sent,
            received: run.received,
            achieved: run.achieved_rate,
            sustained: run.sustained(),
            p50: s.p50,
            p99: s.p99,
            p999: s.p999,
            max: s.max,
        }
    }
}

/// What one scenario measured for one target.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Messages/s of each interleaved round.
    Throughput {
        /// Value size.
        bytes: usize,
        /// Acknowledged messages per second, per round.
        rates: Vec<f64>,
    },
    /// A fixed-rate latency run.
    Latency(LatencyStats),
    /// A fan-out run.
    FanOut(FanOut),
    /// A catch-up run.
    CatchUp(CatchUp),
    /// The scenario failed with this error.
    Failed(String),
}

/// One scenario of one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// Target name.
    pub target: String,
    /// Scenario name, e.g. `throughput 1024 B ×4`, `latency 10000/s`.
    pub scenario: String,
    /// The result.
    pub outcome: Outcome,
}

impl Measured {
    /// A result row.
    pub fn new(target: &str, scenario: &str, outcome: Outcome) -> Self {
        Self {
            target: target.to_string(),
            scenario: scenario.to_string(),
            outcome,
        }
    }
}

/// Everything one suite run produced.
#[derive(Debug, Clone)]
pub struct SuiteReport {
    /// The settings.
    pub config: SuiteConfig,
    /// Every target, run or skipped.
    pub targets: Vec<TargetInfo>,
    /// Every scenario of every target that ran.
    pub results: Vec<Measured>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
    /// CPU, cores and kernel of this machine.
    pub machine: String,
}

/// A one-line description of the machine (CPU model, cores, kernel).
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {}", kernel.trim())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e4 {
        format!("{:.0}k", r / 1e3)
    } else if r >= 1e3 {
        format!("{:.1}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

impl SuiteReport {
    fn ran(&self) -> impl Iterator<Item = &TargetInfo> {
        self.targets.iter().filter(|t| t.skipped.is_none())
    }

    fn get(&self, target: &str, scenario: &str) -> Option<&Outcome> {
        self.results
            .iter()
            .find(|m| m.target == target && m.scenario == scenario)
            .map(|m| &m.outcome)
    }

    fn throughput_scenarios(&self) -> Vec<String> {
        let mut out = Vec::new();
        for m in &self.results {
            if matches!(m.outcome, Outcome::Throughput { .. }) && !out.contains(&m.scenario) {
                out.push(m.scenario.clone());
            }
        }
        out
    }

    fn latency_scenarios(&self) -> Vec<String> {
        self.config
            .latency_rates
            .iter()
            .map(|r| format!("latency {r:.0}/s"))
            .collect()
    }

    fn herald(&self) -> Option<&TargetInfo> {
        self.ran()
            .find(|t| t.name.starts_with(HERALD) && !t.name.starts_with(HERALD_SASL_SSL))
    }

    /// Herald over SASL_SSL against Herald over plaintext, scenario by scenario: every
    /// throughput scenario, then writing and reading the catch-up backlog. Empty unless
    /// both ran.
    pub fn sasl_ssl(&self) -> Vec<SecurityRow> {
        let (Some(plain), Some(secured)) = (
            self.herald(),
            self.ran().find(|t| t.name.starts_with(HERALD_SASL_SSL)),
        ) else {
            return Vec::new();
        };
        let mut rows = Vec::new();
        for scenario in self.throughput_scenarios() {
            let (
                Some(Outcome::Throughput { bytes, rates: p }),
                Some(Outcome::Throughput { rates: s, .. }),
            ) = (
                self.get(&plain.name, &scenario),
                self.get(&secured.name, &scenario),
            )
            else {
                continue;
            };
            let Some(ratio) = self.throughput_ratio(&secured.name, &plain.name, &scenario) else {
                continue;
            };
            rows.push(SecurityRow {
                scenario,
                bytes: *bytes,
                plaintext: median(p),
                sasl_ssl: median(s),
                ratio,
            });
        }
        if let (Some(Outcome::CatchUp(p)), Some(Outcome::CatchUp(s))) = (
            self.get(&plain.name, "catch-up"),
            self.get(&secured.name, "catch-up"),
        ) {
            for (scenario, p, s) in [
                ("catch-up write", p.fill.per_sec(), s.fill.per_sec()),
                ("catch-up read", p.read.per_sec(), s.read.per_sec()),
            ] {
                rows.push(SecurityRow {
                    scenario: scenario.into(),
                    bytes: self.config.backlog_bytes,
                    plaintext: p,
                    sasl_ssl: s,
                    ratio: if p > 0.0 { s / p } else { 0.0 },
                });
            }
        }
        rows
    }

    /// Herald/peer per-round ratios' median for one throughput scenario.
    pub fn throughput_ratio(&self, herald: &str, peer: &str, scenario: &str) -> Option<f64> {
        let (
            Some(Outcome::Throughput { rates: h, .. }),
            Some(Outcome::Throughput { rates: p, .. }),
        ) = (self.get(herald, scenario), self.get(peer, scenario))
        else {
            return None;
        };
        let ratios: Vec<f64> = h.iter().zip(p).map(|(h, p)| h / p).collect();
        Some(median(&ratios))
    }

    /// The goal rows: for each matched-durability peer, the throughput ratios and the
    /// p99 comparison at [`LATENCY_GOAL_RATE`].
    pub fn goals(&self) -> Vec<Goal> {
        let Some(herald) = self.herald() else {
            return Vec::new();
        };
        let p99 =
            |target: &str| match self.get(target, &format!("latency {LATENCY_GOAL_RATE:.0}/s")) {
                Some(Outcome::Latency(l)) => Some(l.p99),
                _ => None,
            };
        let herald_p99 = p99(&herald.name);
        self.ran()
            .filter(|t| t.fsync_before_ack && !t.name.starts_with("herald"))
            .map(|peer| {
                let ratios: Vec<(String, Option<f64>)> = self
                    .throughput_scenarios()
                    .into_iter()
                    .map(|s| {
                        let r = self.throughput_ratio(&herald.name, &peer.name, &s);
                        (s, r)
                    })
                    .collect();
                let peer_p99 = p99(&peer.name);
                Goal {
                    peer: peer.name.clone(),
                    throughput_pass: ratios
                        .iter()
                        .all(|(_, r)| r.is_some_and(|r| r >= THROUGHPUT_GOAL)),
                    ratios,
                    herald_p99,
                    peer_p99,
                    latency_pass: matches!((herald_p99, peer_p99), (Some(h), Some(p)) if h <= p),
                }
            })
            .collect()
    }

    /// The whole report in markdown: settings, throughput, latency, fan-out and
    /// catch-up tables, the goal check, and skipped targets.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Machine: {}. Suite time: {:.0} s.\n\nTargets and settings:\n",
            self.machine,
            self.elapsed.as_secs_f64()
        );
        for t in &self.targets {
            match &t.skipped {
                None => {
                    let _ = writeln!(
                        out,
                        "- **{}**{}: {}",
                        t.name,
                        if t.fsync_before_ack {
                            " — fsync before ack"
                        } else {
                            " — no fsync before ack"
                        },
                        t.settings
                    );
                }
                Some(why) => {
                    let _ = writeln!(out, "- **{}**: SKIPPED — {why}", t.name);
                }
            }
        }
        let scenarios = self.throughput_scenarios();
        let _ = write!(
            out,
            "\nProducer throughput, acknowledged messages/s (median of {} interleaved rounds of {} ms; MB/s of values in brackets):\n\n| target |",
            c.rounds,
            c.slot.as_millis()
        );
        for s in &scenarios {
            let _ = write!(out, " {} |", s.trim_start_matches("throughput "));
        }
        out.push_str("\n|---|");
        out.push_str(&"--:|".repeat(scenarios.len()));
        out.push('\n');
        for t in self.ran() {
            let _ = write!(out, "| {} |", t.name);
            for s in &scenarios {
                let cell = match self.get(&t.name, s) {
                    Some(Outcome::Throughput { bytes, rates }) => {
                        let m = median(rates);
                        format!("{} ({:.1})", fmt_rate(m), m * *bytes as f64 / 1e6)
                    }
                    Some(Outcome::Failed(e)) => format!("failed: {}", first_words(e)),
                    _ => "—".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        let _ = write!(
            out,
            "\nEnd-to-end latency, {} B messages, one producer, one consumer, {} s per rate (p50 / p99 / p99.9 in ms; ✗ = rate not sustained or messages missing):\n\n| target |",
            c.message_bytes,
            c.latency_duration.as_secs_f64()
        );
        let lat = self.latency_scenarios();
        for s in &lat {
            let _ = write!(out, " {} |", s.trim_start_matches("latency "));
        }
        out.push_str("\n|---|");
        out.push_str(&"--:|".repeat(lat.len()));
        out.push('\n');
        for t in self.ran() {
            let _ = write!(out, "| {} |", t.name);
            for s in &lat {
                let cell = match self.get(&t.name, s) {
                    Some(Outcome::Latency(l)) => format!(
                        "{:.2} / {:.2} / {:.2}{}",
                        ms(l.p50),
                        ms(l.p99),
                        ms(l.p999),
                        if l.sustained {
                            String::new()
                        } else {
                            format!(
                                " ✗ ({} of {}, {}/s)",
                                l.received,
                                l.scheduled,
                                fmt_rate(l.achieved)
                            )
                        }
                    ),
                    Some(Outcome::Failed(e)) => format!("failed: {}", first_words(e)),
                    _ => "—".into(),
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
        let _ = write!(
            out,
            "\nFan-out ({} groups, one producer at full speed for {} s, {} B) and catch-up (backlog of up to {} messages of {} B, at most {} s to write and {} s to read):\n\n\
             | target | fan-out deliveries/s | catch-up backlog | backlog written msg/s | catch-up read msg/s |\n|---|--:|--:|--:|--:|\n",
            crate::peers::MAX_GROUPS,
            c.fan_out_slot.as_secs_f64(),
            c.message_bytes,
            c.backlog,
            c.backlog_bytes,
            c.backlog_bound.as_secs_f64(),
            c.backlog_bound.as_secs_f64(),
        );
        for t in self.ran() {
            let fan = match self.get(&t.name, "fan-out") {
                Some(Outcome::FanOut(f)) => format!(
                    "{}{}",
                    fmt_rate(f.delivered.per_sec()),
                    if f.complete { "" } else { " (incomplete)" }
                ),
                Some(Outcome::Failed(e)) => format!("failed: {}", first_words(e)),
                _ => "—".into(),
            };
            let (backlog, fill, read) = match self.get(&t.name, "catch-up") {
                Some(Outcome::CatchUp(cu)) => (
                    cu.backlog.to_string(),
                    fmt_rate(cu.fill.per_sec()),
                    format!(
                        "{}{}",
                        fmt_rate(cu.read.per_sec()),
                        if cu.read.messages < cu.backlog {
                            " (incomplete)"
                        } else {
                            ""
                        }
                    ),
                ),
                Some(Outcome::Failed(e)) => (
                    format!("failed: {}", first_words(e)),
                    "—".into(),
                    "—".into(),
                ),
                _ => ("—".into(), "—".into(), "—".into()),
            };
            let _ = writeln!(out, "| {} | {fan} | {backlog} | {fill} | {read} |", t.name);
        }
        let goals = self.goals();
        if !goals.is_empty() {
            let _ = write!(
                out,
                "\nGoal: {HERALD} ≥ {THROUGHPUT_GOAL}× every matched-durability peer's throughput (median per-round ratio) and the lowest p99 at {LATENCY_GOAL_RATE:.0} msg/s:\n\n| peer (fsync before ack) |"
            );
            for s in &scenarios {
                let _ = write!(out, " {} |", s.trim_start_matches("throughput "));
            }
            out.push_str(" throughput | p99 @10k herald / peer | latency |\n|---|");
            out.push_str(&"--:|".repeat(scenarios.len()));
            out.push_str("---|--:|---|\n");
            for g in &goals {
                let _ = write!(out, "| {} |", g.peer);
                for (_, r) in &g.ratios {
                    let _ = write!(out, " {} |", r.map_or("—".into(), |r| format!("{r:.2}×")));
                }
                let p99 = |d: Option<Duration>| d.map_or("—".into(), |d| format!("{:.2}", ms(d)));
                let _ = writeln!(
                    out,
                    " {} | {} / {} ms | {} |",
                    verdict(g.throughput_pass),
                    p99(g.herald_p99),
                    p99(g.peer_p99),
                    verdict(g.latency_pass)
                );
            }
        }
        let security = self.sasl_ssl();
        if !security.is_empty() {
            let _ = write!(
                out,
                "\nSASL_SSL vs plaintext ({HERALD} with a SASL_SSL listener against {HERALD} over plaintext, otherwise the same settings; ratio = SASL_SSL / plaintext, for throughput the median of the per-round ratios; goal ≥ {SASL_SSL_GOAL}):\n\n\
                 | scenario | plaintext msg/s (MB/s) | SASL_SSL msg/s (MB/s) | ratio | goal |\n|---|--:|--:|--:|---|\n"
            );
            for r in &security {
                let cell =
                    |rate: f64| format!("{} ({:.1})", fmt_rate(rate), rate * r.bytes as f64 / 1e6);
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.2} | {} |",
                    r.scenario.trim_start_matches("throughput "),
                    cell(r.plaintext),
                    cell(r.sasl_ssl),
                    r.ratio,
                    verdict(r.pass())
                );
            }
        }
        if let Some((name, p99)) = self.lowest_p99() {
            let _ = writeln!(
                out,
                "\nLowest p99 at {LATENCY_GOAL_RATE:.0} msg/s over all targets (any durability, rate sustained): {name}, {:.2} ms.",
                ms(p99)
            );
        }
        let skipped: Vec<(&str, &str)> = self
            .targets
            .iter()
            .filter_map(|t| Some((t.name.as_str(), t.skipped.as_deref()?)))
            .collect();
        if !skipped.is_empty() {
            out.push_str("\nNot measured (absent from every table and from the goal check):\n\n");
            for (name, why) in skipped {
                let _ = writeln!(out, "- {name}: skipped: {why}");
            }
        }
        out
    }

    /// The target with the lowest p99 at [`LATENCY_GOAL_RATE`] among those that
    /// sustained it, whatever their durability.
    pub fn lowest_p99(&self) -> Option<(String, Duration)> {
        let scenario = format!("latency {LATENCY_GOAL_RATE:.0}/s");
        self.ran()
            .filter_map(|t| match self.get(&t.name, &scenario) {
                Some(Outcome::Latency(l)) if l.sustained => Some((t.name.clone(), l.p99)),
                _ => None,
            })
            .min_by_key(|(_, p99)| *p99)
    }

    /// Everything as JSON.
    pub fn json(&self) -> serde_json::Value {
        let outcome = |o: &Outcome| match o {
            Outcome::Throughput { bytes, rates } => json!({
                "kind": "throughput", "value_bytes": bytes, "median_msgs_per_s": median(rates), "rates": rates,
            }),
            Outcome::Latency(l) => json!({
                "kind": "latency", "rate": l.rate, "scheduled": l.scheduled, "sent": l.sent, "received": l.received,
                "achieved_rate": l.achieved, "sustained": l.sustained,
                "p50_ms": ms(l.p50), "p99_ms": ms(l.p99), "p999_ms": ms(l.p999), "max_ms": ms(l.max),
            }),
            Outcome::FanOut(f) => json!({
                "kind": "fan-out", "produced": f.produced, "delivered": f.delivered.messages,
                "seconds": f.delivered.elapsed.as_secs_f64(), "deliveries_per_s": f.delivered.per_sec(),
                "complete": f.complete,
            }),
            Outcome::CatchUp(c) => json!({
                "kind": "catch-up", "backlog": c.backlog, "fill_msgs_per_s": c.fill.per_sec(),
                "read": c.read.messages, "read_msgs_per_s": c.read.per_sec(),
            }),
            Outcome::Failed(e) => json!({ "kind": "failed", "error": e }),
        };
        json!({
            "bench": "herald-bench suite",
            "machine": self.machine,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "config": {
                "slot_ms": self.config.slot.as_millis() as u64,
                "rounds": self.config.rounds,
                "latency_seconds": self.config.latency_duration.as_secs_f64(),
                "message_bytes": self.config.message_bytes,
                "backlog": self.config.backlog,
                "backlog_bytes": self.config.backlog_bytes,
            },
            "targets": self.targets.iter().map(|t| json!({
                "name": t.name, "settings": t.settings, "fsync_before_ack": t.fsync_before_ack,
                "skipped": t.skipped,
            })).collect::<Vec<_>>(),
            "results": self.results.iter().map(|m| json!({
                "target": m.target, "scenario": m.scenario, "outcome": outcome(&m.outcome),
            })).collect::<Vec<_>>(),
            "sasl_ssl_vs_plaintext": self.sasl_ssl().iter().map(|r| json!({
                "scenario": r.scenario, "value_bytes": r.bytes,
                "plaintext_msgs_per_s": r.plaintext, "sasl_ssl_msgs_per_s": r.sasl_ssl,
                "plaintext_mb_per_s": r.plaintext * r.bytes as f64 / 1e6,
                "sasl_ssl_mb_per_s": r.sasl_ssl * r.bytes as f64 / 1e6,
                "ratio": r.ratio, "goal": SASL_SSL_GOAL, "pass": r.pass(),
            })).collect::<Vec<_>>(),
            "goals": self.goals().iter().map(|g| json!({
                "peer": g.peer,
                "throughput_ratios": g.ratios.iter().map(|(s, r)| json!({"scenario": s, "ratio": r})).collect::<Vec<_>>(),
                "throughput_pass": g.throughput_pass,
                "herald_p99_ms": g.herald_p99.map(ms),
                "peer_p99_ms": g.peer_p99.map(ms),
                "latency_pass": g.latency_pass,
            })).collect::<Vec<_>>(),
        })
    }

    /// The latency chart: one panel per rate, one group of bars (p50, p99, p99.9) per
    /// target, on a logarithmic millisecond axis.
    pub fn latency_svg(&self) -> String {
        let panels: Vec<crate::chart::Panel> = self
            .latency_scenarios()
            .into_iter()
            .map(|s| {
                let rows = self
                    .ran()
                    .map(|t| {
                        let stats = match self.get(&t.name, &s) {
                            Some(Outcome::Latency(l)) => Some(*l),
                            _ => None,
                        };
                        (t.name.clone(), stats)
                    })
                    .collect();
                (s, rows)
            })
            .collect();
        crate::chart::latency_panels(&panels)
    }
}

fn verdict(pass: bool) -> &'static str {
    if pass { "PASS" } else { "FAIL" }
}

fn first_words(e: &str) -> String {
    let short: String = e.chars().take(60).collect();
    short.replace('|', "/")
}

/// Herald against one matched-durability peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Goal {
    /// The peer.
    pub peer: String,
    /// Herald/peer throughput ratio per throughput scenario.
    pub ratios: Vec<(String, Option<f64>)>,
    /// Whether every ratio is at least [`THROUGHPUT_GOAL`].
    pub throughput_pass: bool,
    /// Herald's p99 at [`LATENCY_GOAL_RATE`].
    pub herald_p99: Option<Duration>,
    /// The peer's.
    pub peer_p99: Option<Duration>,
    /// Whether Herald's p99 is the lower (or equal).
    pub latency_pass: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::{CatchUp, Rate};

    fn stats(rate: f64, p99_ms: u64) -> LatencyStats {
        LatencyStats {
            rate,
            scheduled: 100,
            sent: 100,
            received: 100,
            achieved: rate,
            sustained: true,
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(p99_ms),
            p999: Duration::from_millis(p99_ms * 2),
            max: Duration::from_millis(p99_ms * 3),
        }
    }

    fn report() -> SuiteReport {
        let info = |name: &str, fsync: bool| TargetInfo {
            name: name.into(),
            settings: "s".into(),
            fsync_before_ack: fsync,
            skipped: None,
        };
        let tp = |rates: &[f64]| Outcome::Throughput {
            bytes: 1000,
            rates: rates.to_vec(),
        };
        SuiteReport {
            config: SuiteConfig {
                latency_rates: vec![10_000.0],
                ..SuiteConfig::default()
            },
            targets: vec![
                info("herald-kafka (group commit)", true),
                info("peer-a (fsync)", true),
                info("peer-b (default)", false),
                TargetInfo {
                    skipped: Some("connection refused".into()),
                    ..info("peer-c", true)
                },
            ],
            results: vec![
                Measured::new(
                    "herald-kafka (group commit)",
                    "throughput 1000 B ×1",
                    tp(&[300.0, 200.0, 300.0]),
                ),
                Measured::new(
                    "peer-a (fsync)",
                    "throughput 1000 B ×1",
                    tp(&[100.0, 100.0, 200.0]),
                ),
                Measured::new("peer-b (default)", "throughput 1000 B ×1", tp(&[1000.0; 3])),
                Measured::new(
                    "herald-kafka (group commit)",
                    "latency 10000/s",
                    Outcome::Latency(stats(10_000.0, 3)),
                ),
                Measured::new(
                    "peer-a (fsync)",
                    "latency 10000/s",
                    Outcome::Latency(stats(10_000.0, 2)),
                ),
                Measured::new(
                    "peer-b (default)",
                    "latency 10000/s",
                    Outcome::Latency(LatencyStats {
                        sent: 40,
                        received: 40,
                        sustained: false,
                        p99: Duration::from_micros(100),
                        ..stats(10_000.0, 1)
                    }),
                ),
                Measured::new(
                    "peer-a (fsync)",
                    "fan-out",
                    Outcome::FanOut(FanOut {
                        produced: 10,
                        delivered: Rate {
                            messages: 40,
                            elapsed: Duration::from_secs(2),
                        },
                        complete: true,
                    }),
                ),
            ],
            elapsed: Duration::from_secs(60),
            machine: "test machine".into(),
        }
    }

    #[test]
    fn goals_compare_with_matched_durability_peers_only() {
        let r = report();
        let goals = r.goals();
        assert_eq!(goals.len(), 1, "{goals:?}");
        let g = &goals[0];
        assert_eq!(g.peer, "peer-a (fsync)");
        // Per-round ratios 3, 2, 1.5: median 2.
        assert_eq!(
            g.ratios,
            vec![("throughput 1000 B ×1".to_string(), Some(2.0))]
        );
        assert!(g.throughput_pass);
        assert!(!g.latency_pass, "herald p99 3 ms vs peer 2 ms");
    }

    #[test]
    fn markdown_has_every_table_and_the_skip_reason() {
        let md = report().markdown();
        assert!(
            md.contains("| herald-kafka (group commit) | 300 (0.3) |"),
            "{md}"
        );
        assert!(
            md.contains("| peer-a (fsync) | 1.00 / 2.00 / 4.00 |"),
            "{md}"
        );
        assert!(md.contains("✗ (40 of 100, 10k/s)"), "{md}");
        // peer-b is faster but did not keep up, so it does not count.
        assert!(
            md.contains(
                "over all targets (any durability, rate sustained): peer-a (fsync), 2.00 ms."
            ),
            "{md}"
        );
        assert!(
            md.contains("**peer-c**: SKIPPED — connection refused"),
            "{md}"
        );
        assert!(md.contains("| peer-a (fsync) | 20 | — |"), "{md}");
        assert!(
            md.contains("| peer-a (fsync) | 2.00× | PASS | 3.00 / 2.00 ms | FAIL |"),
            "{md}"
        );
    }

    #[test]
    fn a_skipped_peer_is_listed_with_its_reason_under_the_results() {
        let mut r = report();
        r.targets.push(TargetInfo {
            name: "nats-jetstream (sync always)".into(),
            settings: String::new(),
            fsync_before_ack: false,
            skipped: Some(
                "nats: start with sync_interval: always: nats-server is nats-server: v2.9.10, \
                 which has no sync_interval"
                    .into(),
            ),
        });
        let md = r.markdown();
        let tail = &md[md.find("Not measured").expect(&md)..];
        assert!(
            tail.contains("- peer-c: skipped: connection refused"),
            "{md}"
        );
        assert!(
            tail.contains("- nats-jetstream (sync always): skipped: nats: start with sync_interval: always: nats-server is nats-server: v2.9.10, which has no sync_interval"),
            "{md}"
        );
        assert!(!tail.contains("peer-a"), "{md}");
    }

    #[test]
    fn json_carries_results_and_goals() {
        let j = report().json();
        assert_eq!(j["targets"][3]["skipped"], "connection refused");
        assert_eq!(j["results"][0]["outcome"]["median_msgs_per_s"], 300.0);
        assert_eq!(j["goals"][0]["throughput_pass"], true);
        assert_eq!(j["goals"][0]["latency_pass"], false);
    }

    #[test]
    fn sasl_ssl_is_compared_with_plaintext_and_is_no_peer() {
        let mut r = report();
        assert!(r.sasl_ssl().is_empty(), "no SASL_SSL target ran");
        let secured = "herald-kafka (SASL_SSL, group commit)";
        r.targets.insert(
            1,
            TargetInfo {
                name: secured.into(),
                settings: "s".into(),
                fsync_before_ack: true,
                skipped: None,
            },
        );
        r.results.push(Measured::new(
            secured,
            "throughput 1000 B ×1",
            Outcome::Throughput {
                bytes: 1000,
                rates: vec![240.0, 100.0, 150.0],
            },
        ));
        let catch_up = |fill: u64, read: u64| {
            Outcome::CatchUp(CatchUp {
                backlog: 1000,
                fill: Rate {
                    messages: fill,
                    elapsed: Duration::from_secs(1),
                },
                read: Rate {
                    messages: read,
                    elapsed: Duration::from_secs(1),
                },
            })
        };
        r.results.push(Measured::new(
            "herald-kafka (group commit)",
            "catch-up",
            catch_up(1000, 1000),
        ));
        r.results
            .push(Measured::new(secured, "catch-up", catch_up(900, 600)));
        let rows = r.sasl_ssl();
        // Per-round ratios 0.8, 0.5, 0.5: median 0.5.
        assert_eq!(rows[0].scenario, "throughput 1000 B ×1");
        assert_eq!((rows[0].plaintext, rows[0].sasl_ssl), (300.0, 150.0));
        assert_eq!(rows[0].ratio, 0.5);
        assert!(!rows[0].pass());
        assert_eq!(rows[1].scenario, "catch-up write");
        assert!(rows[1].pass());
        assert_eq!(rows[2].scenario, "catch-up read");
        assert_eq!(rows[2].bytes, r.config.backlog_bytes);
        assert!((rows[2].ratio - 0.6).abs() < 1e-9);
        assert!(!rows[2].pass());
        // Still one goal row: the SASL_SSL target is Herald, not a peer.
        assert_eq!(r.goals().len(), 1);
        let md = r.markdown();
        assert!(
            md.contains("| 1000 B ×1 | 300 (0.3) | 150 (0.1) | 0.50 | FAIL |"),
            "{md}"
        );
        assert!(
            md.contains("| catch-up read | 1.0k (0.1) | 600 (0.1) | 0.60 | FAIL |"),
            "{md}"
        );
        let j = r.json();
        assert_eq!(j["sasl_ssl_vs_plaintext"][0]["ratio"], 0.5);
        assert_eq!(j["sasl_ssl_vs_plaintext"][2]["pass"], false);
    }

    #[test]
    fn rates_are_short() {
        assert_eq!(fmt_rate(950.0), "950");
        assert_eq!(fmt_rate(9_500.0), "9.5k");
        assert_eq!(fmt_rate(95_000.0), "95k");
        assert_eq!(fmt_rate(1_500_000.0), "1.50M");
    }
}
