//! Runs only the herald-log target check (about 80 s) and prints its table and JSON.
//!
//! ```text
//! cargo run --release -p herald-bench --bin log-bench-summary [-- --rounds N --slot-secs S]
//! ```
//!
//! The scratch directory is `$HERALD_BENCH_DIR`, or else `tmp/` in cargo's target
//! directory, so the log and its baselines run on the same (real) disk.

use std::process::ExitCode;

use clap::Parser;
use herald_bench::{
    cli::{self, SummaryArgs},
    summary,
};

fn main() -> ExitCode {
    let config = SummaryArgs::parse().config();
    let result =
        cli::open_scratch(&cli::target_dir()).and_then(|scratch| summary::run(&scratch, &config));
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
