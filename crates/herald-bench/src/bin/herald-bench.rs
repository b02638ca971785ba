//! Herald against NATS JetStream, Redis Streams and RabbitMQ on one workload; see
//! `herald_bench::suite` and `--help`.
//!
//! ```text
//! cargo run --release -p herald-bench --bin herald-bench [-- --quick --only NAME --out DIR]
//! ```

use std::{path::PathBuf, process::ExitCode};

fn main() -> ExitCode {
    // Cargo's target directory, found from this binary's path (`target/<profile>/...`).
    let target = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"));
    ExitCode::from(herald_bench::cli::main(std::env::args().skip(1), &target) as u8)
}
