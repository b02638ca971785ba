//! `herald demo`: the reference shop (crates/herald-shop) in this process on the embedded
//! default — no broker, no database server — with orders placed over its HTTP API,
//! failures injected, and a summary at the end.

use std::{path::PathBuf, sync::Mutex, time::Duration};

use clap::Args;
use herald_shop::demo::{self, DemoConfig, Progress};
use indicatif::{ProgressBar, ProgressStyle};

use crate::error::CliError;

/// `herald demo` flags.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 100)]
    orders: usize,
    /// Where the event log and the services' SQLite databases go (default: a new
    /// directory under the system's temporary directory, kept after the run).
    #[arg(long, env = "HERALD_DEMO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Share of orders paid with a card the gateway declines (stock is released).
    #[arg(long, default_value_t = 0.1)]
    decline_rate: f64,
    /// Share of orders for the limited edition, which sells out half way.
    #[arg(long, default_value_t = 0.05)]
    out_of_stock_rate: f64,
    /// Share of orders to an address no carrier serves (refund, then release).
    #[arg(long, default_value_t = 0.05)]
    unshippable_rate: f64,
    /// How long the (slow) mail server takes per email, in milliseconds.
    #[arg(long, default_value_t = 25)]
    email_latency_ms: u64,
    /// How long the crashed payment consumer stays down, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    crash_ms: u64,
    /// Do not crash the payment consumer.
    #[arg(long)]
    no_crash: bool,
    /// Do not publish the poison message.
    #[arg(long)]
    no_poison: bool,
    /// Clients placing orders at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Seed of the order mix (which orders fail how).
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Give up when the shop has not settled this many seconds after the last order.
    #[arg(long, default_value_t = 120)]
    settle_timeout_secs: u64,
    /// No progress bar (also when standard error is not a terminal).
    #[arg(long)]
    quiet: bool,
}

impl DemoArgs {
    fn config(&self) -> Result<DemoConfig, CliError> {
        let config = DemoConfig {
            orders: self.orders,
            data_dir: self.data_dir.clone(),
            decline_rate: self.decline_rate,
            out_of_stock_rate: self.out_of_stock_rate,
            unshippable_rate: self.unshippable_rate,
            poison: !self.no_poison,
            email_latency: Duration::from_millis(self.email_latency_ms),
            crash_for: (!self.no_crash).then(|| Duration::from_millis(self.crash_ms)),
            concurrency: self.concurrency,
            seed: self.seed,
            settle_timeout: Duration::from_secs(self.settle_timeout_secs),
        };
        config.validate().map_err(CliError::usage)?;
        Ok(config)
    }
}

/// Runs the demo; exit code 1 when an invariant does not hold.
pub(crate) async fn demo(args: DemoArgs) -> Result<(), CliError> {
    let config = args.config()?;
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(config.orders as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{msg:<28} [{bar:40}] {pos}/{len} orders ({elapsed})")
            .expect("a valid progress template")
            .progress_chars("=> "),
    );
    bar.set_message("placing orders");
    let printer = bar.clone();
    let last_settle = Mutex::new(None);
    let report = demo::run(config, move |p| match p {
        Progress::Started { api, data_dir } => printer.println(format!(
            "The shop is up: order API {api}, data in {}\n\
             Placing orders; payment declines, a product that sells out, an unserved \
             address, a slow mail server, a poison message and a consumer crash are injected.",
            data_dir.display()
        )),
        Progress::Placing { placed, .. } => printer.set_position(placed as u64),
        Progress::Note(note) => printer.println(format!("  {note}")),
        Progress::Settling { open, lag } => {
            let mut last = last_settle.lock().expect("progress lock");
            if *last != Some((open, lag)) {
                printer.set_message(format!("settling: {open} open, {lag} unconsumed"));
                *last = Some((open, lag));
            }
        }
    })
    .await
    .map_err(CliError::runtime)?;
    bar.finish_and_clear();
    println!("{report}");
    if report.ok() {
        println!("Every invariant holds.");
        Ok(())
    } else {
        Err(CliError::runtime("an invariant does not hold (see above)"))
    }
}
