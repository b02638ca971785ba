//! `herald serve` against herald-log: what the Kafka protocol costs.
//!
//! One run starts the broker in process (default topic settings: group commit), drives
//! it with librdkafka producers (`acks=all`, batching on, see [`crate::kafka`]), and in
//! the same process, on the same disk, appends to a plain herald-log [`Log`] with the
//! very batches the broker stored: after every broker round the batches of that round
//! are read back from the partition, byte for byte, and the next raw round appends
//! those. The raw side has as many appender threads as the broker has producer
//! connections, each appending synchronously, because that is what the broker does per
//! connection (it handles a connection's requests one after another and answers a
//! produce once the batch is durable).
//!
//! Rounds alternate (raw, broker, broker, raw, ...: the order rotates), and the ratio is
//! the median of the per-round ratios, so a slow phase of the disk hits both sides.
//!
//! End-to-end latency: one producer on a fixed-rate schedule and one consumer of the
//! same partition, each message stamped with its scheduled send time
//! ([`crate::latency`]).

use std::{
    fmt::Write as _,
    sync::Barrier,
    thread,
    time::{Duration, Instant},
};

use herald_format::batch::BatchHeader;
use herald_log::{Durability, Log};
use serde_json::json;

use crate::{
    BenchError, Result,
    kafka::{self, InProcessBroker, KafkaConsumer, KafkaProducer},
    stats::{median, quantile},
    target::{self, LatencyRun, Producer, Profile},
    workload::{Scratch, Shape, log_config},
};

/// What the broker benchmark runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerBenchConfig {
    /// Time each side runs per round.
    pub slot: Duration,
    /// Interleaved rounds per case (after one warm-up round of the broker).
    pub rounds: usize,
    /// Record value sizes.
    pub value_sizes: Vec<usize>,
    /// Producer connections (and raw appender threads).
    pub producers: Vec<usize>,
    /// Fixed rates of the latency runs, in messages per second.
    pub latency_rates: Vec<f64>,
    /// Length of each latency run.
    pub latency_duration: Duration,
    /// Value size of the latency runs.
    pub latency_bytes: usize,
    /// The durability of every topic and of the raw log.
    pub durability: (&'static str, Durability),
    /// Smallest acceptable broker/raw ratio for 1 KiB records.
    pub goal: f64,
}

impl Default for BrokerBenchConfig {
    /// 10 rounds of 1 s per side for 100 B and 1 KiB with 1 and 4 producers (~3 min),
    /// then 10 s of latency at each of 1k, 10k and 50k messages/s (~40 s).
    fn default() -> Self {
        Self {
            slot: Duration::from_secs(1),
            rounds: 10,
            value_sizes: vec![100, 1024],
            producers: vec![1, 4],
            latency_rates: vec![1_000.0, 10_000.0, 50_000.0],
            latency_duration: Duration::from_secs(10),
            latency_bytes: 1024,
            durability: ("group_commit", Durability::group_commit()),
            goal: 0.7,
        }
    }
}

/// Bytes of stored batches each raw round appends from (cycled).
const KEEP_BYTES: usize = 64 << 20;

/// One throughput case: broker and raw log, round by round.
#[derive(Debug, Clone)]
pub struct ThroughputCase {
    /// Record value bytes.
    pub value_bytes: usize,
    /// Producer connections = raw appender threads.
    pub producers: usize,
    /// Broker records/s per round.
    pub broker_rates: Vec<f64>,
    /// Raw-log records/s per round.
    pub raw_rates: Vec<f64>,
    /// Mean bytes of the batches the broker stored, per round.
    pub batch_bytes: Vec<f64>,
    /// Mean records of the batches the broker stored, per round.
    pub batch_records: Vec<f64>,
    /// The goal, if this case has one.
    pub goal: Option<f64>,
}

impl ThroughputCase {
    /// broker/raw of each round.
    pub fn ratios(&self) -> Vec<f64> {
        self.broker_rates
            .iter()
            .zip(&self.raw_rates)
            .map(|(b, r)| b / r)
            .collect()
    }

    /// Median of the per-round ratios.
    pub fn ratio(&self) -> f64 {
        median(&self.ratios())
    }

    /// Whether the median ratio meets the goal (`None` without one).
    pub fn pass(&self) -> Option<bool> {
        self.goal.map(|g| self.ratio() >= g)
    }

    /// Payload MB/s (10^6 bytes) of a records/s rate.
    pub fn mb_per_s(&self, records_per_s: f64) -> f64 {
        records_per_s * self.value_bytes as f64 / 1e6
    }
}

/// The outcome of a broker benchmark run.
#[derive(Debug, Clone)]
pub struct BrokerReport {
    /// Settings of the run.
    pub config: BrokerBenchConfig,
    /// Throughput cases, in the order run.
    pub throughput: Vec<ThroughputCase>,
    /// Latency runs, in the order of the rates.
    pub latency: Vec<LatencyRun>,
    /// librdkafka's version.
    pub librdkafka: String,
}

/// Runs the benchmark in `scratch`, printing a progress line per step through
/// `progress`.
pub fn run(
    scratch: &Scratch,
    config: &BrokerBenchConfig,
    progress: &mut dyn FnMut(&str),
) -> Result<BrokerReport> {
    let log_config = log_config(config.durability.1);
    let broker = InProcessBroker::start(&scratch.case_dir("broker")?, log_config.clone())?;
    let mut throughput = Vec::new();
    for &value_bytes in &config.value_sizes {
        for &producers in &config.producers {
            let case = throughput_case(scratch, &broker, config, value_bytes, producers, progress)?;
            throughput.push(case);
        }
    }
    let mut latency = Vec::new();
    for (i, &rate) in config.latency_rates.iter().enumerate() {
        let topic = format!("latency-{i}");
        broker.create_topic(&topic)?;
        let bootstrap = broker.bootstrap();
        let mut producer =
            KafkaProducer::new(&kafka::producer_config(bootstrap, Profile::Latency), &topic)?;
        let mut consumer =
            KafkaConsumer::new(&kafka::consumer_config(bootstrap, "latency"), &topic)?;
        let run = target::latency(
            &mut producer,
            &mut consumer,
            config.latency_bytes,
            rate,
            config.latency_duration,
        )?;
        let s = run.summary();
        progress(&format!(
            "latency {rate:.0}/s: p50 {:?} p99 {:?} p999 {:?} ({} of {} received, {:.0}/s)",
            s.p50, s.p99, s.p999, run.received, run.sent, run.achieved_rate
        ));
        latency.push(run);
        drop((producer, consumer));
        broker.delete_topic(&topic)?;
    }
    broker.shutdown()?;
    Ok(BrokerReport {
        config: config.clone(),
        throughput,
        latency,
        librdkafka: rdkafka::util::get_rdkafka_version().1,
    })
}

fn throughput_case(
    scratch: &Scratch,
    broker: &InProcessBroker,
    config: &BrokerBenchConfig,
    value_bytes: usize,
    producers: usize,
    progress: &mut dyn FnMut(&str),
) -> Result<ThroughputCase> {
    let label = format!("{}_{producers}p", Shape::new(value_bytes, 1).label());
    let topic = format!("throughput-{label}");
    broker.create_topic(&topic)?;
    let producer_config = kafka::producer_config(broker.bootstrap(), Profile::Throughput);
    let mut clients: Vec<Box<dyn Producer>> = (0..producers)
        .map(|_| Ok(Box::new(KafkaProducer::new(&producer_config, &topic)?) as Box<dyn Producer>))
        .collect::<Result<_>>()?;
    let raw_dir = scratch.case_dir(&format!("raw-{label}"))?;
    let raw = Log::open(&raw_dir, log_config(config.durability.1))?;

    let broker_round = |clients: &mut [Box<dyn Producer>]| -> Result<(f64, StoredStats)> {
        let (_, before) = broker.offsets(&topic)?;
        let rate = target::throughput(clients, value_bytes, config.slot)?;
        let (_, after) = broker.offsets(&topic)?;
        let stored = broker.stored_batches(&topic, before, after, KEEP_BYTES)?;
        broker.trim(&topic)?;
        if stored.records != rate.messages {
            return Err(BenchError::client(
                "herald-kafka",
                "count stored records",
                format!("{} acknowledged, {} stored", rate.messages, stored.records),
            ));
        }
        Ok((rate.per_sec(), StoredStats::from(stored)))
    };
    // Warm-up: connections, metadata, and the first batches for the raw side.
    let (_, mut batches) = broker_round(&mut clients)?;
    let mut case = ThroughputCase {
        value_bytes,
        producers,
        broker_rates: Vec::new(),
        raw_rates: Vec::new(),
        batch_bytes: Vec::new(),
        batch_records: Vec::new(),
        goal: (value_bytes == 1024).then_some(config.goal),
    };
    for round in 0..config.rounds {
        let mut sides = [Side::Raw, Side::Broker];
        sides.rotate_left(round % 2);
        for side in sides {
            match side {
                Side::Raw => {
                    let rate = raw_round(&raw, &batches, producers, config.slot)?;
                    raw.apply_retention()?;
                    case.raw_rates.push(rate);
                }
                Side::Broker => {
                    let (rate, stored) = broker_round(&mut clients)?;
                    case.broker_rates.push(rate);
                    case.batch_bytes.push(stored.mean_bytes);
                    case.batch_records.push(stored.mean_records);
                    batches = stored;
                }
            }
        }
        progress(&format!(
            "{label} round {}/{}: broker {:.0} records/s, raw {:.0} records/s, batches of {:.0} records",
            round + 1,
            config.rounds,
            case.broker_rates.last().expect("pushed"),
            case.raw_rates.last().expect("pushed"),
            case.batch_records.last().expect("pushed"),
        ));
    }
    drop(clients);
    raw.destroy()?;
    broker.delete_topic(&topic)?;
    Ok(case)
}

#[derive(Clone, Copy)]
enum Side {
    Raw,
    Broker,
}

/// The batches of one broker round, for the raw side to append.
struct StoredStats {
    batches: Vec<Vec<u8>>,
    mean_bytes: f64,
    mean_records: f64,
}

impl From<kafka::StoredBatches> for StoredStats {
    fn from(s: kafka::StoredBatches) -> Self {
        Self {
            mean_bytes: s.mean_bytes(),
            mean_records: s.mean_records(),
            batches: s.kept,
        }
    }
}

/// `writers` threads append `batches` (cycled, each thread from its own starting point)
/// synchronously for `slot`; returns records/s.
fn raw_round(log: &Log, stored: &StoredStats, writers: usize, slot: Duration) -> Result<f64> {
    let batches = &stored.batches;
    if batches.is_empty() {
        return Err(BenchError::client(
            "herald-kafka",
            "read back",
            "no batches stored",
        ));
    }
    let start_line = Barrier::new(writers + 1);
    let (started, results) = thread::scope(|s| {
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let start_line = &start_line;
                let appender = thread::Builder::new().name("raw-appender".into());
                let spawned = appender.spawn_scoped(s, move || -> Result<u64> {
                    let mut own: Vec<Vec<u8>> = batches.clone();
                    let counts: Vec<u64> = own
                        .iter()
                        .map(|b| BatchHeader::parse(b).map_or(0, |h| h.record_count.max(0) as u64))
                        .collect();
                    let mut i = w * own.len() / writers;
                    let mut records = 0;
                    start_line.wait();
                    let deadline = Instant::now() + slot;
                    while Instant::now() < deadline {
                        log.append(&mut own[i])?;
                        records += counts[i];
                        i = (i + 1) % own.len();
                    }
                    Ok(records)
                });
                spawned.expect("spawn an appender thread")
            })
            .collect();
        start_line.wait();
        let started = Instant::now();
        let results: Vec<_> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        (started, results)
    });
    let elapsed = started.elapsed();
    let records = results.into_iter().sum::<Result<u64>>()?;
    Ok(records as f64 / elapsed.as_secs_f64())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl BrokerReport {
    /// The throughput table and the latency table, in markdown.
    pub fn markdown(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "Throughput ({} interleaved rounds of {} ms per side after one warm-up round; \
             durability {}; ratio = median of per-round broker/raw ratios, p25–p75 in \
             brackets; MB = 10^6 bytes of record values)\n\n\
             | records | producers = raw appenders | broker median | raw herald-log median | \
             ratio (p25–p75) | broker batches (mean) | goal | result |\n\
             |---|--:|--:|--:|--:|--:|--:|---|\n",
            c.rounds,
            c.slot.as_millis(),
            c.durability.0,
        );
        for t in &self.throughput {
            let ratios = t.ratios();
            let (b, r) = (median(&t.broker_rates), median(&t.raw_rates));
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} rec/s ({:.1} MB/s) | {:.0} rec/s ({:.1} MB/s) | {:.0}% ({:.0}–{:.0}%) | {:.0} records, {:.0} KiB | {} | {} |",
                Shape::new(t.value_bytes, 1).label().trim_end_matches("_x1"),
                t.producers,
                b,
                t.mb_per_s(b),
                r,
                t.mb_per_s(r),
                t.ratio() * 100.0,
                quantile(&ratios, 0.25) * 100.0,
                quantile(&ratios, 0.75) * 100.0,
                median(&t.batch_records),
                median(&t.batch_bytes) / 1024.0,
                t.goal
                    .map_or("—".into(), |g| format!("≥ {:.0}%", g * 100.0)),
                match t.pass() {
                    Some(true) => "PASS",
                    Some(false) => "FAIL",
                    None => "(context)",
                },
            );
        }
        let _ = write!(
            out,
            "\nEnd-to-end latency ({} B values, one producer with linger.ms 0, one consumer, \
             {} s per rate, from scheduled send to receive)\n\n\
             | rate | received | achieved | p50 | p99 | p99.9 | max |\n\
             |--:|--:|--:|--:|--:|--:|--:|\n",
            c.latency_bytes,
            c.latency_duration.as_secs(),
        );
        for l in &self.latency {
            let s = l.summary();
            let _ = writeln!(
                out,
                "| {:.0}/s | {} of {} | {:.0}/s{} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
                l.target_rate,
                l.received,
                l.sent,
                l.achieved_rate,
                if l.sustained() {
                    ""
                } else {
                    " (not sustained)"
                },
                ms(s.p50),
                ms(s.p99),
                ms(s.p999),
                ms(s.max),
            );
        }
        out
    }

    /// Everything as JSON, for scripts.
    pub fn json(&self) -> serde_json::Value {
        let c = &self.config;
        json!({
            "bench": "herald-serve",
            "librdkafka": self.librdkafka,
            "slot_ms": c.slot.as_millis() as u64,
            "rounds": c.rounds,
            "durability": c.durability.0,
            "throughput": self.throughput.iter().map(|t| {
                let ratios = t.ratios();
                json!({
                    "value_bytes": t.value_bytes,
                    "producers": t.producers,
                    "broker_records_per_s_median": median(&t.broker_rates),
                    "raw_records_per_s_median": median(&t.raw_rates),
                    "ratio": t.ratio(),
                    "ratio_p25": quantile(&ratios, 0.25),
                    "ratio_p75": quantile(&ratios, 0.75),
                    "goal": t.goal,
                    "pass": t.pass(),
                    "batch_bytes_mean": median(&t.batch_bytes),
                    "batch_records_mean": median(&t.batch_records),
                    "broker_rates": t.broker_rates,
                    "raw_rates": t.raw_rates,
                })
            }).collect::<Vec<_>>(),
            "latency": self.latency.iter().map(|l| {
                let s = l.summary();
                json!({
                    "rate": l.target_rate,
                    "value_bytes": c.latency_bytes,
                    "sent": l.sent,
                    "received": l.received,
                    "achieved_rate": l.achieved_rate,
                    "sustained": l.sustained(),
                    "p50_ms": ms(s.p50),
                    "p99_ms": ms(s.p99),
                    "p999_ms": ms(s.p999),
                    "max_ms": ms(s.max),
                })
            }).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::Latencies;

    #[test]
    fn report_tables_show_ratio_verdict_and_percentiles() {
        let mut latencies = Latencies::new();
        for us in [500, 1_000, 2_000] {
            latencies.record(Duration::from_micros(us));
        }
        let report = BrokerReport {
            config: BrokerBenchConfig::default(),
            throughput: vec![ThroughputCase {
                value_bytes: 1024,
                producers: 4,
                broker_rates: vec![60.0, 80.0, 90.0],
                raw_rates: vec![100.0, 100.0, 100.0],
                batch_bytes: vec![1024.0 * 1000.0],
                batch_records: vec![950.0],
                goal: Some(0.7),
            }],
            latency: vec![LatencyRun {
                target_rate: 1000.0,
                sent: 3,
                received: 3,
                achieved_rate: 1000.0,
                latencies,
                scheduled: 3,
            }],
            librdkafka: "2.12.1".into(),
        };
        let md = report.markdown();
        assert!(
            md.contains("| 1KiB | 4 | 80 rec/s (0.1 MB/s) | 100 rec/s (0.1 MB/s) | 80% (70–85%) | 950 records, 1000 KiB | ≥ 70% | PASS |"),
            "{md}"
        );
        assert!(
            md.contains("| 1000/s | 3 of 3 | 1000/s | 1.00 ms |"),
            "{md}"
        );
        let json = report.json();
        assert_eq!(json["throughput"][0]["pass"], true);
        assert_eq!(json["latency"][0]["received"], 3);
    }
}
