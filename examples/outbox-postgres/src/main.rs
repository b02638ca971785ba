//! The order service: `cargo run -p outbox-postgres` (see the crate docs for settings).

use std::path::PathBuf;

use anyhow::Context;
use herald::{EmbeddedTransport, KafkaTransport, transport::Admin};
use herald_sql::HeraldDb;
use outbox_postgres::{Orders, TOPIC, router};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let db = HeraldDb::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let orders = Orders::new(db.clone()).await?;

    let relay = match std::env::var("HERALD_BOOTSTRAP") {
        Ok(bootstrap) => {
            let bus = KafkaTransport::connect(&bootstrap)?;
            bus.create_topic(TOPIC, 3).await?;
            tracing::info!(%bootstrap, "relaying to Kafka");
            db.relay(bus).start()
        }
        Err(_) => {
            let dir = PathBuf::from(
                std::env::var("HERALD_DATA_DIR").unwrap_or_else(|_| "outbox-data".into()),
            );
            let bus = EmbeddedTransport::open(&dir)?;
            bus.create_topic(TOPIC, 3).await?;
            tracing::info!(dir = %dir.display(), "relaying to the embedded log");
            db.relay(bus).start()
        }
    };

    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    tracing::info!(%listen, "POST /orders");
    axum::serve(listener, router(orders))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let stats = relay.shutdown().await?;
    tracing::info!(published = stats.published, "relay stopped");
    Ok(())
}
