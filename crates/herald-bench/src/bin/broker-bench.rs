//! `herald serve` against herald-log's raw append rate, interleaved in one run, and
//! end-to-end latency at fixed rates; prints a markdown report and one line of JSON.
//!
//! ```text
//! cargo run --release -p herald-bench --bin broker-bench \
//!     [-- --rounds N --slot-secs S --latency-secs S --durability group_commit|never|every_append
//!         --value-bytes 100,1024 --producers 1,4 --latency-rates 1000,10000,50000|none]
//! ```
//!
//! The scratch directory is `$HERALD_BENCH_DIR`, or else `tmp/` in cargo's target
//! directory, so the broker and the raw log run on the same (real) disk.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use herald_bench::{
    broker::{self, BrokerBenchConfig},
    workload::{Scratch, policies},
};

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("broker-bench: {message}");
            eprintln!(
                "usage: broker-bench [--rounds N] [--slot-secs S] [--latency-secs S] \
                 [--durability group_commit|never|every_append] [--value-bytes 100,1024] \
                 [--producers 1,4] [--latency-rates 1000,10000,50000|none]"
            );
            return ExitCode::from(2);
        }
    };
    let root = std::env::var_os("HERALD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(target_tmp);
    let result = Scratch::new(&root).and_then(|scratch| {
        if let Some((device, fstype)) = scratch.filesystem() {
            eprintln!(
                "scratch: {} on {device} ({fstype})",
                scratch.path().display()
            );
        }
        broker::run(&scratch, &config, &mut |line| eprintln!("{line}"))
    });
    match result {
        Ok(report) => {
            println!("{}", report.markdown());
            println!("{}", report.json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("broker-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `target/tmp`, found from this binary's path (`target/<profile>/broker-bench`).
fn target_tmp() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("tmp")))
        .unwrap_or_else(|| PathBuf::from("target/tmp"))
}

/// A comma-separated list, e.g. `100,1024`; empty for `none`.
fn list<T: std::str::FromStr>(arg: &str, value: &str) -> Result<Vec<T>, String>
where
    T::Err: std::fmt::Display,
{
    if value == "none" {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|v| v.trim().parse().map_err(|e| format!("{arg}: {e}")))
        .collect()
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<BrokerBenchConfig, String> {
    let mut config = BrokerBenchConfig::default();
    let secs = |arg: &str, v: String| -> Result<Duration, String> {
        let s: f64 = v.parse().map_err(|e| format!("{arg}: {e}"))?;
        Duration::try_from_secs_f64(s).map_err(|e| format!("{arg}: {e}"))
    };
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--rounds" => config.rounds = value.parse().map_err(|e| format!("--rounds: {e}"))?,
            "--slot-secs" => config.slot = secs(&arg, value)?,
            "--latency-secs" => config.latency_duration = secs(&arg, value)?,
            "--value-bytes" => {
                config.value_sizes = list(&arg, &value)?;
            }
            "--producers" => {
                config.producers = list(&arg, &value)?;
            }
            "--latency-rates" => {
                config.latency_rates = list::<f64>(&arg, &value)?;
            }
            "--durability" => {
                config.durability = policies()
                    .into_iter()
                    .find(|(name, _)| *name == value)
                    .ok_or(format!("--durability: unknown policy {value}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(config)
}
