//! `herald-shop <service>`: one service of the reference shop as its own process, on the
//! Kafka protocol (`herald serve`, Apache Kafka, Redpanda) with its database in
//! PostgreSQL (a schema per service) or a SQLite file.
//!
//! ```text
//! herald serve &
//! herald-shop inventory --kafka 127.0.0.1:9092 --database postgres://postgres@127.0.0.1/shop &
//! herald-shop order --kafka 127.0.0.1:9092 --database postgres://postgres@127.0.0.1/shop --listen 127.0.0.1:3000
//! ```
//!
//! The order service prints `order API on http://ADDR` once it serves. Every service
//! stops cleanly on Ctrl-C or SIGTERM (consumers drain and commit, relays hand over).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Parser;
use herald::{KafkaTransport, transport::kafka::KafkaConfig};
use herald_shop::{SERVICES, ServiceDb, Storage, create_topics, order, settings::Settings};

/// One service of the reference shop (see docs/shop.md).
#[derive(Debug, Parser)]
#[command(name = "herald-shop", version)]
struct Args {
    /// order, inventory, payment, shipping, notification, analytics or loyalty.
    service: String,
    /// Kafka bootstrap servers (`herald serve` listens on 127.0.0.1:9092).
    #[arg(long, env = "HERALD_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    kafka: String,
    /// PostgreSQL URL; each service works in its own schema (`<prefix><service>`).
    #[arg(long, env = "DATABASE_URL", conflicts_with = "data_dir")]
    database: Option<String>,
    /// Prefix of the services' PostgreSQL schemas.
    #[arg(long, default_value = "shop_")]
    schema_prefix: String,
    /// Directory of SQLite files (`<service>.db`), instead of PostgreSQL.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Where the order service's HTTP API listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: SocketAddr,
    /// How long the (simulated) mail server takes per email, in milliseconds.
    #[arg(long, default_value_t = 25)]
    email_latency_ms: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    if !SERVICES.contains(&args.service.as_str()) {
        anyhow::bail!(
            "unknown service {:?}; the services are {}",
            args.service,
            SERVICES.join(", ")
        );
    }
    let storage = match (&args.database, &args.data_dir) {
        (Some(url), _) => Storage::Postgres {
            url: url.clone(),
            schema_prefix: args.schema_prefix.clone(),
        },
        (None, Some(dir)) => Storage::Sqlite(dir.clone()),
        (None, None) => anyhow::bail!("give --database postgres://... or --data-dir DIR"),
    };
    let settings = Settings {
        email_latency: Duration::from_millis(args.email_latency_ms),
        ..Settings::default()
    };
    let config =
        KafkaConfig::new(&args.kafka).with_client_id(format!("herald-shop-{}", args.service));
    let bus = KafkaTransport::new(config)?;
    create_topics(&bus).await?;
    let handle = if args.service == order::NAME {
        let db = ServiceDb::open(&storage, order::NAME).await?;
        let (handle, orders) = herald_shop::start_order(bus, db, &settings).await?;
        let listener = tokio::net::TcpListener::bind(args.listen).await?;
        let addr = listener.local_addr()?;
        println!("order API on http://{addr}");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, order::http(orders)).await {
                tracing::error!(error = %e, "the order API stopped");
            }
        });
        handle
    } else {
        let handle = herald_shop::start_service(&args.service, bus, &storage, &settings).await?;
        println!("{} service running", args.service);
        handle
    };
    stopped().await;
    tracing::info!(service = %args.service, "stopping");
    let db = handle.db().clone();
    handle.shutdown().await.map_err(anyhow::Error::msg)?;
    db.close().await;
    Ok(())
}

/// Ctrl-C or SIGTERM.
async fn stopped() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
