//! The order service against PostgreSQL (`HERALD_TEST_POSTGRES_URL`; skipped with a
//! message when unset, failing with `HERALD_REQUIRE_SERVICES=1`), in a schema of its
//! own: an order placed over HTTP is in the table and its event reaches the bus with
//! its id; an invalid order is a 400 and writes nothing.

use std::time::Duration;

use herald::{Envelope, MemoryTransport};
use herald_sql::HeraldDb;
use outbox_postgres::{OrderPlaced, Orders, Placed, TOPIC, router};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn post(addr: std::net::SocketAddr, body: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST /orders HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    let status = out[9..12].parse().unwrap();
    let body = out.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_written_and_relayed_together() {
    let Some(url) = herald_test_support::postgres_url() else {
        return;
    };
    let schema = format!("outbox_example_{}", std::process::id());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&admin)
        .await
        .unwrap();
    let options: PgConnectOptions = url.parse().unwrap();
    let pool = PgPoolOptions::new()
        .connect_with(options.options([("search_path", schema.as_str())]))
        .await
        .unwrap();
    let db = HeraldDb::new(pool).await.unwrap();
    let orders = Orders::new(db.clone()).await.unwrap();
    let bus = MemoryTransport::new();
    let relay = db.relay(bus.clone()).start();

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router(orders)).await });

    let (status, body) = post(addr, r#"{"customer":"ada","total_cents":1250}"#).await;
    assert_eq!(status, 201, "{body}");
    let placed: Placed = serde_json::from_str(&body).unwrap();
    let (status, body) = post(addr, r#"{"customer":"ada","total_cents":0}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("total_cents must be positive"), "{body}");

    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while bus.records(TOPIC).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the event was not relayed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let records = bus.records(TOPIC);
    assert_eq!(records.len(), 1, "the refused order published nothing");
    let event = Envelope::from_record(&records[0]).unwrap();
    assert_eq!(event.id, placed.event_id);
    assert_eq!(event.key_str(), Some(placed.order_id.as_str()));
    let order: OrderPlaced = event.decode().unwrap();
    assert_eq!((order.customer.as_str(), order.total_cents), ("ada", 1250));
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {schema}.orders"))
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(rows, 1);

    relay.shutdown().await.unwrap();
    server.abort();
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await
        .unwrap();
}
