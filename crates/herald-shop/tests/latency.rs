//! The latency scenario at a tenth of the article's scale: the synchronous design pays
//! for every side effect in the request, the event-driven one does not; with the email
//! service down, synchronous orders fail while event-driven orders are accepted, and
//! their side effects all happen once the service is back. (Latency targets themselves
//! are measured by `shop-latency`, not asserted here.)

use herald_shop::latency::{self, Latencies, LatencyConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_fails_synchronous_orders_and_delays_event_driven_side_effects() {
    let dir = tempfile::tempdir().unwrap();
    let latencies = Latencies::article().scaled(0.1);
    let report = latency::run(LatencyConfig {
        latencies: latencies.clone(),
        orders: 24,
        concurrency: 8,
        outage_orders: 8,
        dir: dir.path().to_owned(),
    })
    .await
    .unwrap();
    println!("{report}");
    // Every synchronous order waited for the gateway and all five side effects.
    assert_eq!((report.sync.ok, report.sync.failed), (24, 0));
    assert!(report.sync.latency.p50 >= latencies.payment + latencies.side_effects_total());
    assert_eq!((report.evented.ok, report.evented.failed), (24, 0));
    // Email down: every synchronous order fails, every event-driven one is accepted.
    assert_eq!((report.sync_outage.ok, report.sync_outage.failed), (0, 8));
    assert_eq!(
        (report.evented_outage.ok, report.evented_outage.failed),
        (8, 0)
    );
    // ...and after recovery each side effect happened for all 32 accepted orders.
    assert_eq!(report.evented_effects.len(), 5);
    for (name, done) in &report.evented_effects {
        assert_eq!(*done, 32, "{name}");
    }
}
