//! The order saga in the running shop, as its history records it: success; a declined
//! card compensates the stock reservation; a rejected shipment compensates the payment,
//! then the stock (reverse order); an unavailable product fails the first step with
//! nothing to undo; a step whose replies never come times out, is re-sent, and then
//! compensates; a crashed consumer resumes and its sagas finish.

mod common;

use std::time::Duration;

use common::*;
use herald_saga::{HistoryKind, SagaStatus};
use herald_shop::{
    order::Placed,
    settings::{DECLINED_CARD, GOOD_CARD, Settings, UNSERVED_COUNTRY},
    shipping,
};

/// The saga's history: (kind, step name) in order.
async fn history(h: &Harness, placed: &Placed) -> (SagaStatus, Vec<(HistoryKind, Option<String>)>) {
    let details = h
        .shop
        .orders()
        .saga()
        .details(&placed.order_id)
        .await
        .unwrap()
        .expect("the order has a saga");
    let entries = details
        .history
        .into_iter()
        .map(|e| (e.kind, e.step_name))
        .collect();
    (details.instance.status, entries)
}

fn compensations(entries: &[(HistoryKind, Option<String>)]) -> Vec<&str> {
    entries
        .iter()
        .filter(|(k, _)| *k == HistoryKind::CompensationSucceeded)
        .filter_map(|(_, s)| s.as_deref())
        .collect()
}

const WAIT: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn success_and_every_failure_path_compensate_in_reverse_order() {
    let h = start(Settings::default()).await;
    let ok = h.place(good("ada")).await;
    let declined = h
        .place(order("bob", "gadget", 2, DECLINED_CARD, "GB"))
        .await;
    let unshippable = h
        .place(order("cy", "gizmo", 1, GOOD_CARD, UNSERVED_COUNTRY))
        .await;
    let sold_out = h
        .place(order("di", "limited-edition", 6, GOOD_CARD, "GB"))
        .await;

    assert_eq!(h.finished(&ok, WAIT).await.status, "completed");
    let (status, entries) = history(&h, &ok).await;
    assert_eq!(status, SagaStatus::Completed);
    let succeeded: Vec<_> = entries
        .iter()
        .filter(|(k, _)| *k == HistoryKind::StepSucceeded)
        .filter_map(|(_, s)| s.as_deref())
        .collect();
    assert_eq!(
        succeeded,
        ["reserve-stock", "charge-payment", "create-shipment"]
    );

    let view = h.finished(&declined, WAIT).await;
    assert_eq!(view.status, "cancelled");
    assert_eq!(
        view.reason.as_deref(),
        Some("payment declined: card_declined")
    );
    let (status, entries) = history(&h, &declined).await;
    assert_eq!(status, SagaStatus::Compensated);
    assert_eq!(compensations(&entries), ["reserve-stock"]);

    let view = h.finished(&unshippable, WAIT).await;
    assert_eq!(view.status, "cancelled");
    assert!(view.reason.unwrap().starts_with("shipment rejected"));
    let (_, entries) = history(&h, &unshippable).await;
    assert_eq!(compensations(&entries), ["charge-payment", "reserve-stock"]);

    let view = h.finished(&sold_out, WAIT).await;
    assert_eq!(view.status, "cancelled");
    assert!(
        view.reason
            .unwrap()
            .starts_with("out of stock: limited-edition")
    );
    let (_, entries) = history(&h, &sold_out).await;
    assert!(
        compensations(&entries).is_empty(),
        "nothing was done, nothing undone"
    );

    // The books: only the completed order holds stock and money.
    let payments = herald_shop::payment::book(h.shop.db("payment").unwrap())
        .await
        .unwrap();
    assert_eq!(payments.charged_cents - payments.refunded_cents, 1_250);
    let stock = herald_shop::inventory::book(h.shop.db("inventory").unwrap())
        .await
        .unwrap();
    assert_eq!(stock.reserved - stock.released, 1);
    h.shop.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_step_without_replies_times_out_and_compensates() {
    let settings = Settings {
        step_timeout: Duration::from_millis(300),
        ..Settings::default()
    };
    let mut h = start(settings).await;
    // The shipping service's consumer is down for good: CreateShipment is never answered.
    h.shop.crash_consumers(shipping::NAME).await.unwrap();
    let placed = h.place(good("eve")).await;
    let view = h.finished(&placed, WAIT).await;
    assert_eq!(view.status, "cancelled");
    let (status, entries) = history(&h, &placed).await;
    assert_eq!(status, SagaStatus::Compensated);
    let timeouts = entries
        .iter()
        .filter(|(k, s)| *k == HistoryKind::StepTimedOut && s.as_deref() == Some("create-shipment"))
        .count();
    assert_eq!(timeouts, 3, "three attempts, each timed out: {entries:?}");
    // The timed-out step has no compensation; the two before it are undone, last first.
    assert_eq!(compensations(&entries), ["charge-payment", "reserve-stock"]);
    h.shop.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sagas_resume_after_a_consumer_crash() {
    let mut h = start(Settings::default()).await;
    h.shop.crash_consumers("payment").await.unwrap();
    let mut placed = Vec::new();
    for i in 0..10 {
        placed.push(h.place(good(&format!("c{i}"))).await);
    }
    // Stock is reserved, then the sagas wait for the payment service...
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(h.shop.orders().book().await.unwrap().open, 10);
    // ...which comes back and takes the commands from where its group left off.
    h.shop.restart_consumers("payment").await.unwrap();
    for p in &placed {
        assert_eq!(h.finished(p, WAIT).await.status, "completed");
    }
    let payments = herald_shop::payment::book(h.shop.db("payment").unwrap())
        .await
        .unwrap();
    assert_eq!(payments.charges, 10, "each order charged once");
    h.shop.shutdown().await.unwrap();
}
