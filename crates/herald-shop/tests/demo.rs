//! The demo driver end to end, in process (`herald demo` runs the same code).

use std::time::Duration;

use herald_shop::demo::{self, DemoConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_small_demo_run_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let config = DemoConfig {
        orders: 60,
        data_dir: Some(dir.path().to_owned()),
        email_latency: Duration::from_millis(5),
        crash_for: Some(Duration::from_millis(300)),
        ..DemoConfig::default()
    };
    let report = demo::run(config, |p| eprintln!("{p:?}")).await.unwrap();
    println!("{report}");
    assert!(report.ok(), "{report}");
}
