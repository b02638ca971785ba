//! Herald against NATS JetStream, Redis Streams and RabbitMQ on one workload; see
//! `herald_bench::suite` and `--help`.
//!
//! ```text
//! cargo run --release -p herald-bench --bin herald-bench [-- --quick --only NAME --out DIR]
//! ```

use std::process::ExitCode;

use clap::Parser;
use herald_bench::cli::{self, SuiteArgs};

fn main() -> ExitCode {
    let args = SuiteArgs::parse();
    ExitCode::from(cli::main(&args, &cli::target_dir()) as u8)
}
