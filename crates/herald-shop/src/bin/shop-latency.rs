//! `shop-latency`: the article's "2.8 s → 340 ms" claim, reproduced — the same order flow
//! synchronous and event-driven in one run, then with the email service down
//! (herald_shop::latency; results in docs/benchmarks.md).
//!
//! ```text
//! cargo run --release -p herald-shop --bin shop-latency -- --orders 200 --concurrency 16
//! ```

use std::process::ExitCode;

use clap::Parser;
use herald_shop::latency::{self, Latencies, LatencyConfig};

/// Synchronous vs event-driven order latency with the articles' downstream latencies.
#[derive(Debug, Parser)]
#[command(name = "shop-latency")]
struct Args {
    /// Orders per design with every service up.
    #[arg(long, default_value_t = 200)]
    orders: usize,
    /// Orders per design while the email service is down.
    #[arg(long, default_value_t = 50)]
    outage_orders: usize,
    /// Clients placing orders at once.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Multiply every downstream latency (1.0: the article's scale).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.scale > 0.0 && args.scale <= 10.0) || args.orders == 0 || args.concurrency == 0 {
        eprintln!("error: --scale must be in (0, 10], --orders and --concurrency at least 1");
        return ExitCode::from(2);
    }
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: creating a temporary directory: {e}");
            return ExitCode::from(1);
        }
    };
    let config = LatencyConfig {
        latencies: Latencies::article().scaled(args.scale),
        orders: args.orders,
        concurrency: args.concurrency,
        outage_orders: args.outage_orders,
        dir: dir.path().to_owned(),
    };
    eprintln!(
        "placing {} orders per design ({} clients), then {} with the email service down...",
        args.orders, args.concurrency, args.outage_orders
    );
    match latency::run(config).await {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
