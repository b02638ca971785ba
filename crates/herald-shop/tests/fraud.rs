//! A fraud check added to a running shop without touching any producer: a new consumer
//! group on the orders topic reads every order placed so far and after, and flags the
//! suspicious ones (a total above the threshold; a customer shipping to a new country).

mod common;

use std::time::{Duration, Instant};

use common::*;
use herald_shop::{
    ServiceDb, Storage, fraud,
    settings::{GOOD_CARD, Settings},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_consumer_sees_every_order_and_flags_suspicious_ones() {
    let h = start(Settings::default()).await;
    // Orders placed before the fraud check exists.
    let mut placed = vec![
        h.place(good("ada")).await,
        h.place(order("bob", "gizmo", 11, GOOD_CARD, "GB")).await, // 2 189.00: above 2 000.00
        h.place(order("cy", "widget", 1, GOOD_CARD, "GB")).await,
    ];
    for p in &placed {
        h.finished(p, Duration::from_secs(60)).await;
    }

    // The new service: its own database and consumer group, nothing else changes.
    let db = ServiceDb::open(&Storage::Sqlite(h.dir.path().join("db")), fraud::NAME)
        .await
        .unwrap();
    let checker = fraud::start(h.shop.transport().clone(), &db, h.shop.settings())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while fraud::results(&db).await.unwrap().0 < 3 {
        assert!(
            Instant::now() < deadline,
            "the fraud check did not read the earlier orders"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Orders placed after it caught up.
    placed.push(h.place(order("cy", "widget", 1, GOOD_CARD, "FR")).await); // a new country
    placed.push(h.place(good("dee")).await);

    let deadline = Instant::now() + Duration::from_secs(60);
    let (checked, flags) = loop {
        let (checked, flags) = fraud::results(&db).await.unwrap();
        if checked == placed.len() as i64 {
            break (checked, flags);
        }
        assert!(
            Instant::now() < deadline,
            "the fraud check saw {checked} orders"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(checked, 5, "every order, before and after it joined");
    let flagged: Vec<(&str, &str)> = flags
        .iter()
        .map(|f| (f.order_id.as_str(), f.reason.as_str()))
        .collect();
    let mut expected = vec![
        (
            placed[1].order_id.as_str(),
            "total 218900 cents is above 200000",
        ),
        (placed[3].order_id.as_str(), "ships to FR after GB"),
    ];
    expected.sort();
    assert_eq!(flagged, expected);
    checker.shutdown().await.unwrap();
    h.shop.shutdown().await.unwrap();
}
