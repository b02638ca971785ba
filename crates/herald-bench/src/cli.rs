//! The command lines of the benchmark binaries, one clap parser each: `herald-bench`
//! (the comparison suite, [`SuiteArgs`] and [`main`]), `broker-bench` ([`BrokerArgs`])
//! and `log-bench-summary` ([`SummaryArgs`]), with what they share: seconds and list
//! values, and where scratch data goes.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use clap::Parser;

use crate::{
    broker::BrokerBenchConfig,
    suite::{self, PeerUrls, SuiteConfig},
    summary::SummaryConfig,
    workload::{Scratch, policies},
};

pub use crate::workload::target_dir;

/// Seconds as a fraction, e.g. `0.5`.
fn seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("{e}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// A comma-separated list option, e.g. `100,1024`; empty for `none`.
#[derive(Debug, Clone, PartialEq)]
pub struct List<T>(pub Vec<T>);

fn list<T: std::str::FromStr>(s: &str) -> Result<List<T>, String>
where
    T::Err: std::fmt::Display,
{
    if s == "none" {
        return Ok(List(Vec::new()));
    }
    s.split(',')
        .map(|v| v.trim().parse().map_err(|e| format!("{v:?}: {e}")))
        .collect::<Result<_, _>>()
        .map(List)
}

/// A path made absolute now, whatever directory later steps run in.
fn absolute(s: &str) -> Result<PathBuf, String> {
    std::path::absolute(s).map_err(|e| e.to_string())
}

/// Where scratch data goes: `$HERALD_BENCH_DIR`, or else `tmp/` under `default_root`, so
/// Herald and its peers run on the same (real) disk.
pub fn scratch_root(default_root: &Path) -> PathBuf {
    std::env::var_os("HERALD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| default_root.join("tmp"))
}

/// The scratch directory, with the disk it is on reported.
pub fn open_scratch(default_root: &Path) -> Result<Scratch, crate::BenchError> {
    let scratch = Scratch::new(scratch_root(default_root))?;
    if let Some((device, fstype)) = scratch.filesystem() {
        eprintln!(
            "scratch: {} on {device} ({fstype})",
            scratch.path().display()
        );
    }
    Ok(scratch)
}

const PEERS_HELP: &str = "Peers: HERALD_TEST_NATS_URL, HERALD_TEST_REDIS_URL, \
HERALD_TEST_AMQP_URL (default: local ports); HERALD_BENCH_NATS_SERVER / \
HERALD_BENCH_REDIS_SERVER pick the server binaries the fsync modes start (default: on \
PATH). HERALD_BENCH_DIR: scratch directory (default: tmp/ in cargo's target directory).";

/// `herald-bench`: Herald against NATS JetStream, Redis Streams and RabbitMQ.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "herald-bench", version, after_help = PEERS_HELP)]
pub struct SuiteArgs {
    /// Short run (~2 min): 1 round, 0.5 s slots, 2 s latency runs, 200k backlog
    #[arg(long)]
    pub quick: bool,
    /// Only targets whose name contains NAME (repeatable), e.g. herald, nats, redis
    #[arg(long, value_name = "NAME")]
    pub only: Vec<String>,
    /// Write report.md, report.json and latency.svg there [default: herald-bench-report/
    /// in cargo's target directory]
    #[arg(long, value_name = "DIR", value_parser = absolute)]
    pub out: Option<PathBuf>,
    /// Interleaved throughput rounds [default: 3; 1 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
    /// Seconds per throughput sample [default: 1; 0.5 with --quick]
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub slot_secs: Option<Duration>,
    /// Also run herald-kafka over SASL_SSL (SCRAM-SHA-512, TLS) in the same rounds, and
    /// report its throughput as a ratio to plaintext (`--only herald-kafka` keeps both)
    #[arg(long)]
    pub sasl_ssl: bool,
}

impl SuiteArgs {
    /// The suite's settings these options ask for.
    pub fn config(&self) -> SuiteConfig {
        let mut config = SuiteConfig::default();
        if self.quick {
            config.rounds = 1;
            config.slot = Duration::from_millis(500);
            config.latency_duration = Duration::from_secs(2);
            config.fan_out_slot = Duration::from_secs(1);
            config.backlog = 200_000;
            config.backlog_bound = Duration::from_secs(5);
        }
        config.only = self.only.clone();
        config.sasl_ssl = self.sasl_ssl;
        if let Some(rounds) = self.rounds {
            config.rounds = rounds as usize;
        }
        if let Some(slot) = self.slot_secs {
            config.slot = slot;
        }
        config
    }
}

/// `broker-bench`: `herald serve` against herald-log's raw append rate, and end-to-end
/// latency at fixed rates.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "broker-bench", version)]
pub struct BrokerArgs {
    /// Interleaved throughput rounds
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
    /// Seconds per throughput sample
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub slot_secs: Option<Duration>,
    /// Seconds per latency run
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub latency_secs: Option<Duration>,
    /// The log's durability: group_commit, never or every_append
    #[arg(long, value_name = "POLICY")]
    pub durability: Option<String>,
    /// Value sizes in bytes, e.g. 100,1024
    #[arg(long, value_name = "LIST", value_parser = list::<usize>)]
    pub value_bytes: Option<List<usize>>,
    /// Producer counts, e.g. 1,4
    #[arg(long, value_name = "LIST", value_parser = list::<usize>)]
    pub producers: Option<List<usize>>,
    /// Fixed rates of the latency runs, e.g. 1000,10000,50000, or none
    #[arg(long, value_name = "LIST", value_parser = list::<f64>)]
    pub latency_rates: Option<List<f64>>,
}

impl BrokerArgs {
    /// The benchmark's settings these options ask for.
    pub fn config(&self) -> Result<BrokerBenchConfig, String> {
        let mut config = BrokerBenchConfig::default();
        if let Some(r) = self.rounds {
            config.rounds = r as usize;
        }
        if let Some(s) = self.slot_secs {
            config.slot = s;
        }
        if let Some(s) = self.latency_secs {
            config.latency_duration = s;
        }
        if let Some(v) = &self.value_bytes {
            config.value_sizes = v.0.clone();
        }
        if let Some(p) = &self.producers {
            config.producers = p.0.clone();
        }
        if let Some(r) = &self.latency_rates {
            config.latency_rates = r.0.clone();
        }
        if let Some(name) = &self.durability {
            config.durability = policies()
                .into_iter()
                .find(|(n, _)| n == name)
                .ok_or(format!(
                    "--durability: unknown policy {name}: use group_commit, never or every_append"
                ))?;
        }
        Ok(config)
    }
}

/// `log-bench-summary`: only the herald-log target check (about 80 s).
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "log-bench-summary", version)]
pub struct SummaryArgs {
    /// Interleaved throughput rounds
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: Option<u32>,
    /// Seconds per throughput sample
    #[arg(long, value_name = "S", value_parser = seconds)]
    pub slot_secs: Option<Duration>,
}

impl SummaryArgs {
    /// The check's settings these options ask for.
    pub fn config(&self) -> SummaryConfig {
        let mut config = SummaryConfig::default();
        if let Some(r) = self.rounds {
            config.rounds = r as usize;
        }
        if let Some(s) = self.slot_secs {
            config.slot = s;
        }
        config
    }
}

/// Runs the suite with `args` (the options, parsed); returns the process exit code (0
/// ran, 1 failed). `default_root` is where scratch data and the report go unless told
/// otherwise.
pub fn main(args: &SuiteArgs, default_root: &Path) -> i32 {
    let config = args.config();
    let scratch = match open_scratch(default_root) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("herald-bench: {e}");
            return 1;
        }
    };
    let started = std::time::Instant::now();
    let report = suite::run(&scratch, &config, &PeerUrls::from_env(), &mut |line| {
        eprintln!("[{:>5.1}s] {line}", started.elapsed().as_secs_f64())
    });
    drop(scratch);
    let markdown = report.markdown();
    println!("{markdown}");
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| default_root.join("herald-bench-report"));
    let files = [
        ("report.md", markdown),
        (
            "report.json",
            serde_json::to_string_pretty(&report.json()).unwrap_or_default(),
        ),
        ("latency.svg", report.latency_svg()),
    ];
    if let Err(e) = std::fs::create_dir_all(&out) {
        eprintln!("herald-bench: create {}: {e}", out.display());
        return 1;
    }
    for (name, text) in files {
        let path = out.join(name);
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("herald-bench: write {}: {e}", path.display());
            return 1;
        }
    }
    eprintln!("report written to {}", out.display());
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suite(s: &str) -> Result<SuiteArgs, clap::Error> {
        SuiteArgs::try_parse_from(std::iter::once("herald-bench").chain(s.split_whitespace()))
    }

    #[test]
    fn options_parse() {
        let o = suite("--quick --only herald --only nats --out /tmp/x").unwrap();
        assert_eq!(o.config().rounds, 1);
        assert_eq!(o.config().only, vec!["herald", "nats"]);
        assert_eq!(o.out, Some(PathBuf::from("/tmp/x")));
        assert_eq!(suite("").unwrap().config(), SuiteConfig::default());
        assert_eq!(suite("--quick --rounds 2").unwrap().config().rounds, 2);
        assert!(suite("--quick --sasl-ssl").unwrap().config().sasl_ssl);
        assert!(!suite("--quick").unwrap().config().sasl_ssl);
        assert_eq!(
            suite("--slot-secs 0.25").unwrap().config().slot,
            Duration::from_millis(250)
        );
        assert!(suite("--rounds 0").is_err());
        assert!(suite("--slot-secs -1").is_err());
        assert!(suite("--bogus").is_err());
        assert!(suite("--only").is_err());
    }

    #[test]
    fn broker_and_summary_options_parse() {
        let b = BrokerArgs::try_parse_from([
            "broker-bench",
            "--value-bytes",
            "100,1024",
            "--latency-rates",
            "none",
            "--durability",
            "every_append",
        ])
        .unwrap();
        let c = b.config().unwrap();
        assert_eq!(c.value_sizes, [100, 1024]);
        assert!(c.latency_rates.is_empty());
        assert_eq!(c.durability.0, "every_append");
        let bad = BrokerArgs::try_parse_from(["broker-bench", "--durability", "sometimes"]);
        assert!(bad.unwrap().config().unwrap_err().contains("sometimes"));
        assert!(BrokerArgs::try_parse_from(["broker-bench", "--producers", "1,x"]).is_err());
        let s = SummaryArgs::try_parse_from(["log-bench-summary", "--rounds", "2"]).unwrap();
        assert_eq!(s.config().rounds, 2);
        assert!(SummaryArgs::try_parse_from(["log-bench-summary", "--rounds", "0"]).is_err());
    }

    #[test]
    fn relative_out_and_scratch_root_give_absolute_peer_paths() {
        let o = suite("--out rel/report").unwrap();
        let out = o.out.unwrap();
        assert!(out.is_absolute(), "{}", out.display());
        assert!(out.ends_with("rel/report"));
        // The scratch root beside a relative report directory, as a herald-bench run
        // from the current directory gets it: every peer's case directory is absolute.
        let root = format!("target/tmp-relative-{}", std::process::id());
        let scratch = Scratch::new(&root).unwrap();
        assert!(scratch.path().is_absolute(), "{}", scratch.path().display());
        for case in ["suite-nats", "suite-redis", "suite-herald-kafka"] {
            let dir = scratch.case_dir(case).unwrap();
            assert!(dir.is_absolute(), "{}", dir.display());
        }
        drop(scratch);
        let _ = std::fs::remove_dir_all(&root);
    }
}
