//! The comparison suite: every target through the same scenarios in one run.
//!
//! The targets ([`TargetSpec`]) are Herald over Kafka and herald-log direct, each with
//! its default durability (group commit: acknowledged after fsync), and each peer in
//! its fsync-before-acknowledge mode and in its default mode. A peer that cannot be
//! reached (or started) is skipped with the reason, and the rest of the suite runs.
//!
//! Scenarios ([`SuiteConfig`] bounds every one of them in time):
//!
//! 1. producer throughput for each value size × producer count, **interleaved**: every
//!    round runs each target once, in an order that rotates, and the comparison with
//!    Herald is the median of the per-round ratios;
//! 2. end-to-end latency at each fixed rate, one producer and one consumer;
//! 3. fan-out: one producer at full speed, [`crate::peers::MAX_GROUPS`] groups;
//! 4. catch-up: a backlog (up to a million messages, bounded in time) read by one
//!    consumer from the start.
//!
//! With [`SuiteConfig::sasl_ssl`] (`herald-bench --sasl-ssl`) Herald over Kafka runs a
//! second time, over SASL_SSL, interleaved with the others; the report compares it with
//! plaintext ([`crate::report::SuiteReport::sasl_ssl`]).

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use herald_log::Durability;

use crate::{
    Result,
    kafka::HeraldKafka,
    peers::{
        MAX_GROUPS,
        log_direct::LogDirect,
        nats::Nats,
        rabbitmq::{Layout, RabbitMq},
        redis::Redis,
    },
    report::{Measured, Outcome, SuiteReport, TargetInfo},
    target::{self, Profile, Target},
    workload::{Scratch, log_config},
};

pub use crate::workload::SuiteConfig;

/// Where the peers are: each `HERALD_TEST_*` variable, or the usual local address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUrls {
    /// The machine's NATS server (default settings).
    pub nats: String,
    /// The machine's Redis (default settings).
    pub redis: String,
    /// RabbitMQ.
    pub amqp: String,
}

impl PeerUrls {
    /// From `HERALD_TEST_NATS_URL`, `HERALD_TEST_REDIS_URL`, `HERALD_TEST_AMQP_URL`.
    pub fn from_env() -> Self {
        let var =
            |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
        Self {
            nats: var("HERALD_TEST_NATS_URL", "nats://127.0.0.1:4222"),
            redis: var("HERALD_TEST_REDIS_URL", "redis://127.0.0.1:6379"),
            amqp: var(
                "HERALD_TEST_AMQP_URL",
                "amqp://guest:guest@127.0.0.1:5672/%2f",
            ),
        }
    }
}

/// One target of the suite, before it is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetSpec {
    /// `herald serve` in process, librdkafka clients, group commit.
    HeraldKafka,
    /// The same over SASL_SSL (SCRAM-SHA-512, TLS), only with [`SuiteConfig::sasl_ssl`].
    HeraldKafkaSaslSsl,
    /// herald-log in process through a bench-only client (not the SDK's embedded
    /// transport), group commit.
    HeraldLogDirect,
    /// A nats-server started with `sync_interval: always`.
    NatsSyncAlways,
    /// The machine's nats-server.
    NatsDefault,
    /// A redis-server started with `appendfsync always`.
    RedisFsyncAlways,
    /// The machine's Redis.
    RedisDefault,
    /// RabbitMQ, durable classic queues, persistent messages, confirms.
    RabbitDurable,
    /// RabbitMQ, a stream queue, confirms.
    RabbitStream,
}

impl TargetSpec {
    /// Every target, Herald first.
    pub const ALL: [TargetSpec; 9] = [
        TargetSpec::HeraldKafka,
        TargetSpec::HeraldKafkaSaslSsl,
        TargetSpec::HeraldLogDirect,
        TargetSpec::NatsSyncAlways,
        TargetSpec::NatsDefault,
        TargetSpec::RedisFsyncAlways,
        TargetSpec::RedisDefault,
        TargetSpec::RabbitDurable,
        TargetSpec::RabbitStream,
    ];

    /// The name it is reported under before it starts (and if it cannot).
    pub fn label(self) -> &'static str {
        match self {
            TargetSpec::HeraldKafka => "herald-kafka (group commit)",
            TargetSpec::HeraldKafkaSaslSsl => "herald-kafka (SASL_SSL, group commit)",
            TargetSpec::HeraldLogDirect => "herald-log-direct (group commit)",
            TargetSpec::NatsSyncAlways => "nats-jetstream (sync always)",
            TargetSpec::NatsDefault => "nats-jetstream (default)",
            TargetSpec::RedisFsyncAlways => "redis-streams (appendfsync always)",
            TargetSpec::RedisDefault => "redis-streams (default)",
            TargetSpec::RabbitDurable => "rabbitmq (durable queue, confirms)",
            TargetSpec::RabbitStream => "rabbitmq (stream queue, confirms)",
        }
    }

    /// Starts or connects to it.
    pub fn start(self, scratch: &Scratch, urls: &PeerUrls) -> Result<Box<dyn Target>> {
        let group_commit = ("group_commit", Durability::group_commit());
        Ok(match self {
            TargetSpec::HeraldKafka => Box::new(HeraldKafka::start(
                &scratch.case_dir("suite-herald-kafka")?,
                log_config(group_commit.1),
                "group commit",
            )?),
            TargetSpec::HeraldKafkaSaslSsl => Box::new(HeraldKafka::start_sasl_ssl(
                &scratch.case_dir("suite-herald-kafka-sasl-ssl")?,
                log_config(group_commit.1),
                "group commit",
            )?),
            TargetSpec::HeraldLogDirect => Box::new(LogDirect::new(
                &scratch.case_dir("suite-herald-log-direct")?,
                group_commit,
            )),
            TargetSpec::NatsSyncAlways => {
                Box::new(Nats::start_sync_always(&scratch.case_dir("suite-nats")?)?)
            }
            TargetSpec::NatsDefault => Box::new(Nats::connect(&urls.nats)?),
            TargetSpec::RedisFsyncAlways => Box::new(Redis::start_fsync_always(
                &scratch.case_dir("suite-redis")?,
            )?),
            TargetSpec::RedisDefault => Box::new(Redis::connect(&urls.redis)?),
            TargetSpec::RabbitDurable => {
                Box::new(RabbitMq::connect(&urls.amqp, Layout::DurableQueues)?)
            }
            TargetSpec::RabbitStream => Box::new(RabbitMq::connect(&urls.amqp, Layout::Stream)?),
        })
    }
}

/// Stream names are never reused within a process, so no group offsets or queued
/// messages of an earlier scenario can leak into a later one.
fn stream_name(kind: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "hb{}-{}-{kind}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn groups(n: usize) -> Vec<String> {
    (0..n).map(|g| format!("g{g}")).collect()
}

/// Runs the suite; `progress` gets a line per step.
pub fn run(
    scratch: &Scratch,
    config: &SuiteConfig,
    urls: &PeerUrls,
    progress: &mut dyn FnMut(&str),
) -> SuiteReport {
    let started = Instant::now();
    let mut infos = Vec::new();
    let mut targets: Vec<Box<dyn Target>> = Vec::new();
    for spec in TargetSpec::ALL {
        let label = spec.label();
        if !config.only.is_empty() && !config.only.iter().any(|o| label.contains(o.as_str())) {
            continue;
        }
        if spec == TargetSpec::HeraldKafkaSaslSsl && !config.sasl_ssl {
            continue;
        }
        match spec.start(scratch, urls) {
            Ok(t) => {
                progress(&format!("ready: {} — {}", t.name(), t.settings()));
                infos.push(TargetInfo {
                    name: t.name(),
                    settings: t.settings(),
                    fsync_before_ack: t.fsync_before_ack(),
                    skipped: None,
                });
                targets.push(t);
            }
            Err(e) => {
                progress(&format!("SKIPPED {label}: {e}"));
                infos.push(TargetInfo {
                    name: label.to_string(),
                    settings: String::new(),
                    fsync_before_ack: false,
                    skipped: Some(e.to_string()),
                });
            }
        }
    }
    let mut results = Vec::new();
    for &bytes in &config.value_sizes {
        for &producers in &config.producers {
            let scenario = format!("throughput {bytes} B ×{producers}");
            let mut samples: Vec<Vec<Result<f64>>> = targets.iter().map(|_| Vec::new()).collect();
            for round in 0..config.rounds {
                for k in 0..targets.len() {
                    let i = (round + k) % targets.len();
                    let rate = throughput_sample(&*targets[i], bytes, producers, config.slot);
                    match &rate {
                        Ok(r) => progress(&format!(
                            "{scenario} round {}: {} {r:.0} msg/s",
                            round + 1,
                            targets[i].name()
                        )),
                        Err(e) => {
                            progress(&format!("{scenario}: {} FAILED: {e}", targets[i].name()))
                        }
                    }
                    samples[i].push(rate);
                }
            }
            for (t, s) in targets.iter().zip(samples) {
                let outcome = match s.into_iter().collect::<Result<Vec<f64>>>() {
                    Ok(rates) => Outcome::Throughput { bytes, rates },
                    Err(e) => Outcome::Failed(e.to_string()),
                };
                results.push(Measured::new(&t.name(), &scenario, outcome));
            }
        }
    }
    // Rate by rate, every target in turn, so that a slow phase of the shared disk does
    // not fall on one target's whole latency series.
    for &rate in &config.latency_rates {
        for t in &targets {
            let scenario = format!("latency {rate:.0}/s");
            let outcome = match latency_run(&**t, config, rate) {
                Ok(run) => {
                    let s = run.summary();
                    progress(&format!(
                        "{scenario}: {} p50 {:?} p99 {:?} p999 {:?} ({} of {})",
                        t.name(),
                        s.p50,
                        s.p99,
                        s.p999,
                        run.received,
                        run.scheduled
                    ));
                    Outcome::Latency(run.into())
                }
                Err(e) => {
                    progress(&format!("{scenario}: {} FAILED: {e}", t.name()));
                    Outcome::Failed(e.to_string())
                }
            };
            results.push(Measured::new(&t.name(), &scenario, outcome));
        }
    }
    for t in &targets {
        let outcome = match fan_out_run(&**t, config) {
            Ok(f) => {
                progress(&format!(
                    "fan-out: {} {:.0} deliveries/s{}",
                    t.name(),
                    f.delivered.per_sec(),
                    if f.complete { "" } else { " (incomplete)" }
                ));
                Outcome::FanOut(f)
            }
            Err(e) => {
                progress(&format!("fan-out: {} FAILED: {e}", t.name()));
                Outcome::Failed(e.to_string())
            }
        };
        results.push(Measured::new(&t.name(), "fan-out", outcome));
        let outcome = match catch_up_run(&**t, config) {
            Ok(c) => {
                progress(&format!(
                    "catch-up: {} backlog {} written at {:.0}/s, read at {:.0}/s",
                    t.name(),
                    c.backlog,
                    c.fill.per_sec(),
                    c.read.per_sec()
                ));
                Outcome::CatchUp(c)
            }
            Err(e) => {
                progress(&format!("catch-up: {} FAILED: {e}", t.name()));
                Outcome::Failed(e.to_string())
            }
        };
        results.push(Measured::new(&t.name(), "catch-up", outcome));
    }
    drop(targets);
    SuiteReport {
        config: config.clone(),
        targets: infos,
        results,
        elapsed: started.elapsed(),
        machine: crate::report::machine(),
    }
}

/// Runs `f` on a fresh stream with `groups` groups and deletes the stream afterwards,
/// whatever `f` returned.
fn on_stream<T>(
    target: &dyn Target,
    kind: &str,
    groups: usize,
    f: impl FnOnce(&str, &[String]) -> Result<T>,
) -> Result<T> {
    let stream = stream_name(kind);
    let groups = self::groups(groups.max(1));
    target.create_stream(&stream, &groups)?;
    let result = f(&stream, &groups);
    let deleted = target.delete_stream(&stream);
    let value = result?;
    deleted?;
    Ok(value)
}

fn throughput_sample(
    target: &dyn Target,
    bytes: usize,
    producers: usize,
    slot: Duration,
) -> Result<f64> {
    on_stream(target, "tp", 1, |stream, _| {
        let mut clients = (0..producers)
            .map(|_| target.producer(stream, Profile::Throughput))
            .collect::<Result<Vec<_>>>()?;
        Ok(target::throughput(&mut clients, bytes, slot)?.per_sec())
    })
}

fn latency_run(target: &dyn Target, config: &SuiteConfig, rate: f64) -> Result<target::LatencyRun> {
    on_stream(target, "lat", 1, |stream, groups| {
        let mut consumer = target.consumer(stream, &groups[0])?;
        let mut producer = target.producer(stream, Profile::Latency)?;
        target::latency(
            &mut *producer,
            &mut *consumer,
            config.message_bytes,
            rate,
            config.latency_duration,
        )
    })
}

fn fan_out_run(target: &dyn Target, config: &SuiteConfig) -> Result<target::FanOut> {
    on_stream(target, "fan", MAX_GROUPS, |stream, groups| {
        let mut consumers = groups
            .iter()
            .map(|g| target.consumer(stream, g))
            .collect::<Result<Vec<_>>>()?;
        let mut producer = target.producer(stream, Profile::Throughput)?;
        target::fan_out(
            &mut *producer,
            &mut consumers,
            config.message_bytes,
            config.fan_out_slot,
        )
    })
}

fn catch_up_run(target: &dyn Target, config: &SuiteConfig) -> Result<target::CatchUp> {
    on_stream(target, "catch", 1, |stream, groups| {
        let mut producers = (0..4)
            .map(|_| target.producer(stream, Profile::Throughput))
            .collect::<Result<Vec<_>>>()?;
        // The group exists from the start (created with the stream); its consumer
        // connects only once the backlog is written, so nothing is prefetched early.
        target::catch_up(
            &mut producers,
            || target.consumer(stream, &groups[0]),
            config.backlog_bytes,
            config.backlog,
            config.backlog_bound,
            config.backlog_bound,
        )
    })
}
