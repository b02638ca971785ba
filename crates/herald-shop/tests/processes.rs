//! The shop as seven processes (`herald-shop <service>`) against a Herald broker (the
//! broker `herald serve` runs, started here on port 0) and PostgreSQL
//! (`HERALD_TEST_POSTGRES_URL`; skipped with a message when unset, failing with
//! `HERALD_REQUIRE_SERVICES=1`), each service in a schema of its own: an order placed over
//! HTTP completes, a declined card is cancelled with its stock released, an unshippable
//! order is refunded and released, and every process's database shows its part.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use herald_broker::{Broker, BrokerConfig};
use herald_shop::{
    SERVICES,
    events::Address,
    order::{OrderLine, OrderView, PlaceOrder, Placed},
    settings::{DECLINED_CARD, GOOD_CARD, UNSERVED_COUNTRY},
};
use herald_test_support::{ReadyProcess, postgres_url};

fn order(card: &str, country: &str) -> PlaceOrder {
    PlaceOrder {
        customer_id: "ada".into(),
        email: "ada@example.com".into(),
        items: vec![OrderLine {
            sku: "widget".into(),
            quantity: 2,
        }],
        card: card.into(),
        address: Address {
            name: "Ada".into(),
            street: "1 Main St".into(),
            city: "London".into(),
            country: country.into(),
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_as_processes_on_kafka_and_postgres() {
    let Some(url) = postgres_url() else { return };
    let prefix = format!("shop_proc_{}_", std::process::id());
    let admin = sqlx::PgPool::connect(&url).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    config.group_initial_rebalance_delay_ms = 50;
    config.group_min_session_timeout_ms = 1000;
    let broker = Broker::start(config).await.unwrap();
    let bootstrap = broker.kafka_addr().to_string();

    // Killed when the test ends however it ends.
    let mut processes = Vec::new();
    let mut api = None;
    for service in SERVICES {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald-shop"));
        cmd.args([service, "--kafka", &bootstrap, "--database", &url])
            .args(["--schema-prefix", &prefix, "--listen", "127.0.0.1:0"])
            .args(["--email-latency-ms", "1"])
            .env("RUST_LOG", "warn");
        // Each process says on its first line that it runs (the order service: where).
        let process = ReadyProcess::start(cmd, None, |_| true);
        if let Some(addr) = process.ready_line().trim().strip_prefix("order API on ") {
            api = Some(addr.to_owned());
        }
        processes.push(process);
    }
    let api = api.expect("the order service printed its address");

    let client = reqwest::Client::new();
    let mut placed = Vec::new();
    for (card, country) in [
        (GOOD_CARD, "GB"),
        (DECLINED_CARD, "GB"),
        (GOOD_CARD, UNSERVED_COUNTRY),
    ] {
        let response = client
            .post(format!("{api}/orders"))
            .json(&order(card, country))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        placed.push(response.json::<Placed>().await.unwrap());
    }
    let bad = client
        .post(format!("{api}/orders"))
        .json(&serde_json::json!({"customer_id": "ada"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400, "a bad body is refused");

    let deadline = Instant::now() + Duration::from_secs(120);
    let mut views = Vec::new();
    for p in &placed {
        loop {
            let view: OrderView = client
                .get(format!("{api}/orders/{}", p.order_id))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if view.status != "placed" {
                views.push(view);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "order {} did not finish",
                p.order_id
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    assert_eq!(views[0].status, "completed");
    assert_eq!(views[1].status, "cancelled");
    assert!(
        views[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("payment declined")
    );
    assert_eq!(views[2].status, "cancelled");
    assert!(
        views[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("shipment rejected")
    );

    // Each process's own schema holds its part of the story.
    let scalar = |sql: String| {
        let admin = admin.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&sql)
                .fetch_one(&admin)
                .await
                .unwrap()
        }
    };
    assert_eq!(
        scalar(format!(
            "SELECT count(*) FROM {prefix}payment.payments WHERE state = 'refunded'"
        ))
        .await,
        1
    );
    assert_eq!(
        scalar(format!(
            "SELECT count(*) FROM {prefix}payment.payments WHERE state = 'charged'"
        ))
        .await,
        1
    );
    assert_eq!(
        scalar(format!("SELECT count(*) FROM {prefix}shipping.shipments")).await,
        1
    );
    assert_eq!(
        scalar(format!(
            "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) FROM {prefix}inventory.reservations
             WHERE released = 0"
        ))
        .await,
        2,
        "only the completed order still holds stock"
    );
    // The emails follow the orders' events; wait for the last ones.
    let deadline = Instant::now() + Duration::from_secs(60);
    while scalar(format!("SELECT count(*) FROM {prefix}notification.emails")).await < 6 {
        assert!(Instant::now() < deadline, "the emails did not all go out");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    drop(processes);
    broker.shutdown().await.unwrap();
    for service in SERVICES {
        sqlx::query(&format!("DROP SCHEMA IF EXISTS {prefix}{service} CASCADE"))
            .execute(&admin)
            .await
            .unwrap();
    }
}
