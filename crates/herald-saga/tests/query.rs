//! The query API from Rust and over HTTP: list with filters and paging, show with
//! history, counts, and the errors a caller gets. Every test runs on SQLite and on
//! PostgreSQL.

mod common;

use axum::body::Body;
use common::{
    Fixture,
    shop::{
        Answer, ChargePayment, Driver, Order, ReserveStock, StockReserved, Timing, order,
        order_saga,
    },
};
use herald::Event;
use herald_saga::{SagaBackend, SagaDefinition, SagaError, SagaFilter, SagaPage, SagaStatus, Step};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// Five orders: o-0, o-2, o-4 completed, o-1 and o-3 compensated.
async fn five<DB: SagaBackend>(f: &Fixture<DB>) -> Driver<DB> {
    let mut d = Driver::new(&f.db, &f.store, order_saga(&Timing::default()));
    for i in 0..5 {
        let id = format!("o-{i}");
        if i % 2 == 1 {
            d.script.set_for(&id, ChargePayment::TYPE, Answer::Fail);
        }
        d.manager.start(&id, order(&id)).await.unwrap();
        // Distinct creation times, so "newest first" is one order.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    d.pump().await;
    d
}

fn ids(page: &SagaPage) -> Vec<&str> {
    page.sagas.iter().map(|s| s.saga_id.as_str()).collect()
}

async fn list<DB: SagaBackend>(f: &Fixture<DB>) {
    five(f).await;
    let all = f.store.list(&SagaFilter::all()).await.unwrap();
    assert_eq!(all.total, 5);
    assert_eq!(ids(&all), ["o-4", "o-3", "o-2", "o-1", "o-0"]);
    let done = f
        .store
        .list(&SagaFilter::all().status(SagaStatus::Completed))
        .await
        .unwrap();
    assert_eq!((done.total, ids(&done)), (3, vec!["o-4", "o-2", "o-0"]));
    let page = f
        .store
        .list(&SagaFilter::all().saga_type("order").limit(2).offset(2))
        .await
        .unwrap();
    assert_eq!((page.total, ids(&page)), (5, vec!["o-2", "o-1"]));
    let none = f
        .store
        .list(&SagaFilter::all().saga_type("invoice"))
        .await
        .unwrap();
    assert_eq!((none.total, none.sagas.len()), (0, 0));
    for bad in [0, SagaFilter::MAX_LIMIT + 1] {
        let err = f
            .store
            .list(&SagaFilter::all().limit(bad))
            .await
            .unwrap_err();
        assert!(matches!(err, SagaError::InvalidInput(_)), "{err}");
    }
    let counts = f.store.counts(None).await.unwrap();
    assert_eq!(
        (counts.completed, counts.compensated, counts.active()),
        (3, 2, 0)
    );
    assert!(f.store.get("order", "nope").await.unwrap().is_none());
    assert!(f.store.find("nope").await.unwrap().is_empty());
    let found = f.store.find("o-1").await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].status, SagaStatus::Compensated);
}
both!(list_filters_and_pages_newest_first, list);

/// A second saga type, so ids can be shared between types.
fn invoice_saga() -> SagaDefinition<Order> {
    SagaDefinition::builder("invoice")
        .reply_topic("inventory-events")
        .step(
            Step::new("reserve")
                .command("inventory-commands", |o: &Order| ReserveStock {
                    order_id: o.order_id.clone(),
                })
                .succeeds_on::<StockReserved>(),
        )
        .build()
        .unwrap()
}

async fn get(app: &axum::Router, uri: &str) -> (u16, serde_json::Value) {
    let response = app
        .clone()
        .oneshot(
            axum::http::Request::builder()
                .uri(uri)
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

async fn http<DB: SagaBackend>(f: &Fixture<DB>) {
    five(f).await;
    let app = herald_saga::http::routes(f.store.clone());

    let (status, body) = get(&app, "/sagas").await;
    assert_eq!(status, 200);
    assert_eq!(body["total"], 5);
    assert_eq!(body["sagas"][0]["saga_id"], "o-4");
    assert_eq!(body["sagas"][0]["status"], "completed");
    let (_, body) = get(
        &app,
        "/sagas?status=compensated&type=order&limit=1&offset=1",
    )
    .await;
    assert_eq!(
        (body["total"].clone(), body["sagas"][0]["saga_id"].clone()),
        (2.into(), "o-1".into())
    );

    let (status, body) = get(&app, "/sagas/o-1").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "compensated");
    assert_eq!(body["data"]["decline_reason"], "card declined");
    assert!(body["error"].as_str().unwrap().contains("payment.declined"));
    let history = body["history"].as_array().unwrap();
    assert_eq!(history[0]["kind"], "started");
    assert_eq!(history.last().unwrap()["kind"], "compensated");
    assert_eq!(history[1]["step_name"], "reserve-stock");
    assert!(history[1]["at"].as_str().unwrap().ends_with('Z'));

    for (uri, message) in [
        ("/sagas?status=done", "unknown saga status"),
        ("/sagas?limit=0", "limit must be 1 to 1000"),
        ("/sagas?limit=many", "limit"),
        ("/sagas?colour=red", "colour"),
    ] {
        let (status, body) = get(&app, uri).await;
        assert_eq!(
            (status, body["error_code"].clone()),
            (400, 40002.into()),
            "{uri}"
        );
        assert!(
            body["message"].as_str().unwrap().contains(message),
            "{uri}: {body}"
        );
    }
    let (status, body) = get(&app, "/sagas/nope").await;
    assert_eq!((status, body["error_code"].clone()), (404, 40406.into()));
    assert!(body["message"].as_str().unwrap().contains("\"nope\""));

    // The same id in two saga types: ambiguous without ?type=.
    f.store
        .manager(invoice_saga())
        .start("o-1", order("o-1"))
        .await
        .unwrap();
    let (status, body) = get(&app, "/sagas/o-1").await;
    assert_eq!((status, body["error_code"].clone()), (409, 40902.into()));
    assert!(
        body["message"].as_str().unwrap().contains("invoice, order"),
        "{body}"
    );
    let (status, body) = get(&app, "/sagas/o-1?type=invoice").await;
    assert_eq!((status, body["status"].clone()), (200, "running".into()));
    assert!(body["deadline"].is_string());
    let (status, _) = get(&app, "/sagas/o-1?type=refund").await;
    assert_eq!(status, 404);
}
both!(http_api_lists_and_shows, http);

#[test]
fn filters_read_from_query_strings_and_json() {
    let f: SagaFilter =
        serde_json::from_str(r#"{"type":"order","status":"failed","limit":5}"#).unwrap();
    assert_eq!(
        f,
        SagaFilter::all()
            .saga_type("order")
            .status(SagaStatus::Failed)
            .limit(5)
    );
}
