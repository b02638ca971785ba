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

use std::process::ExitCode;

use clap::Parser;
use herald_bench::{
    broker,
    cli::{self, BrokerArgs},
};

fn main() -> ExitCode {
    let args = BrokerArgs::parse();
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("broker-bench: {message}");
            return ExitCode::from(2);
        }
    };
    let result = cli::open_scratch(&cli::target_dir())
        .and_then(|scratch| broker::run(&scratch, &config, &mut |line| eprintln!("{line}")));
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
