//! The order service's HTTP API: a valid order is 201 with its id, total and correlation
//! id (the caller's `x-correlation-id` is kept) and `GET /orders/{id}` follows it to
//! `completed`; every kind of bad input is a 400 with a message saying what is wrong, and
//! writes nothing (no order row, nothing in the outbox, no saga); an unknown id is 404.

mod common;

use std::time::{Duration, Instant};

use common::*;
use herald_shop::{order::Placed, settings::Settings};
use serde_json::{Value, json};

fn valid() -> Value {
    json!({
        "customer_id": "ada", "email": "ada@example.com",
        "items": [{"sku": "widget", "quantity": 2}, {"sku": "gadget", "quantity": 1}],
        "card": "4242424242424242",
        "address": {"name": "Ada", "street": "1 Main St", "city": "London", "country": "gb"}
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_over_http() {
    let h = start(Settings::default()).await;
    let (addr, _server) = h.shop.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/orders");

    let refused = [
        (json!({"customer_id": ""}), "the body is not an order"),
        (
            with(valid(), "customer_id", json!(" ")),
            "customer_id must be 1 to 100 characters",
        ),
        (
            with(valid(), "email", json!("ada")),
            "is not an email address",
        ),
        (
            with(valid(), "items", json!([])),
            "an order has 1 to 50 lines",
        ),
        (
            with(valid(), "items", json!([{"sku": "nope", "quantity": 1}])),
            "unknown product \"nope\"",
        ),
        (
            with(valid(), "items", json!([{"sku": "widget", "quantity": 0}])),
            "quantity of \"widget\" must be 1 to 1000",
        ),
        (
            with(
                valid(),
                "items",
                json!([{"sku": "widget", "quantity": 1}, {"sku": "widget", "quantity": 1}]),
            ),
            "is on two lines",
        ),
        (
            with(valid(), "card", json!("4242")),
            "card must be 12 to 19 digits",
        ),
        (
            with(
                valid(),
                "address",
                json!({"name": "Ada", "street": "", "city": "London", "country": "GB"}),
            ),
            "address needs a name, a street and a city",
        ),
        (
            with(
                valid(),
                "address",
                json!({"name": "Ada", "street": "1", "city": "London", "country": "GBR"}),
            ),
            "two-letter ISO code",
        ),
    ];
    for (body, message) in refused {
        let r = client.post(&url).json(&body).send().await.unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["error_code"], "invalid_order");
        let text = answer["message"].as_str().unwrap();
        assert!(text.contains(message), "{body}: {text}");
    }
    let book = h.shop.orders().book().await.unwrap();
    assert_eq!(
        (book.open, book.completed, book.cancelled),
        (0, 0, 0),
        "nothing written"
    );
    assert_eq!(
        h.shop.db("order").unwrap().outbox_backlog().await.unwrap(),
        0
    );
    assert_eq!(h.shop.orders().saga().counts().await.unwrap().running, 0);

    let r = client
        .post(&url)
        .header("x-correlation-id", "checkout-7")
        .json(&valid())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let placed: Placed = r.json().await.unwrap();
    assert_eq!(placed.total_cents, 2 * 1_250 + 4_999);
    assert_eq!(placed.correlation_id, "checkout-7");
    assert_eq!(placed.status, "placed");

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let view: Value = client
            .get(format!("{url}/{}", placed.order_id))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if view["status"] == "completed" {
            assert_eq!(view["correlation_id"], "checkout-7");
            assert!(
                view["finished_at_ms"].as_i64().unwrap() >= view["placed_at_ms"].as_i64().unwrap()
            );
            break;
        }
        assert!(Instant::now() < deadline, "{view}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing = client
        .get(format!("{url}/order-nope"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    h.shop.shutdown().await.unwrap();
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}
