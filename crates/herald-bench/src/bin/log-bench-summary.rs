//! Runs only the herald-log target check (about 80 s) and prints its table and JSON.
//!
//! ```text
//! cargo run --release -p herald-bench --bin log-bench-summary [-- --rounds N --slot-secs S]
//! ```
//!
//! The scratch directory is `$HERALD_BENCH_DIR`, or else `tmp/` in cargo's target
//! directory, so the log and its baselines run on the same (real) disk.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use herald_bench::{
    summary::{self, SummaryConfig},
    workload::Scratch,
};

fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("log-bench-summary: {message}");
            eprintln!("usage: log-bench-summary [--rounds N] [--slot-secs S]");
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
        summary::run(&scratch, &config)
    });
    match result {
        Ok(summary) => {
            println!("{}", summary.markdown());
            println!("{}", summary.json());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("log-bench-summary: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `target/tmp`, found from this binary's path (`target/<profile>/log-bench-summary`).
fn target_tmp() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("tmp")))
        .unwrap_or_else(|| PathBuf::from("target/tmp"))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<SummaryConfig, String> {
    let mut config = SummaryConfig::default();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--rounds" => {
                config.rounds = value()?.parse().map_err(|e| format!("--rounds: {e}"))?;
            }
            "--slot-secs" => {
                let secs: f64 = value()?.parse().map_err(|e| format!("--slot-secs: {e}"))?;
                config.slot =
                    Duration::try_from_secs_f64(secs).map_err(|e| format!("--slot-secs: {e}"))?;
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if config.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(config)
}
