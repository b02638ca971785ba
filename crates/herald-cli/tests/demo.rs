//! `herald demo --orders 200`, the binary end to end: it exits 0 only when every
//! invariant holds, and its summary says so, invariant by invariant — every order
//! completed or compensated, stock and payments balance, no event lost (emails,
//! analytics, loyalty, sagas), the dead-letter topics hold exactly the poison message,
//! correlation ids end to end. Bad flags are a usage error that starts nothing.

use std::{
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn herald() -> Command {
    Command::new(env!("CARGO_BIN_EXE_herald"))
}

#[test]
fn demo_with_200_orders_keeps_every_invariant() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut child = herald()
        .args([
            "demo",
            "--orders",
            "200",
            "--quiet",
            "--settle-timeout-secs",
            "120",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded in time: a run that hangs is killed and fails.
    let deadline = started + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("herald demo did not finish within 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(stdout.contains("Every invariant holds."), "{stdout}");
    assert!(!stdout.contains("[FAILED]"), "{stdout}");
    for invariant in [
        "[ok] every order is completed or cancelled: 200 placed",
        "[ok] every saga ended, none stuck or failed",
        "[ok] stock balances: reserved - released = shipped",
        "[ok] payments balance: charged - refunded = completed orders' totals",
        "[ok] every order got its emails, once: 200 confirmations",
        "[ok] analytics counted every event once: placed 200",
        "[ok] loyalty awarded every completed order once",
        "[ok] the dead-letter topics hold exactly the poison message",
        "[ok] correlation ids carried end to end: 200 correlation ids for 200 orders",
    ] {
        assert!(
            stdout.contains(invariant),
            "missing {invariant:?} in\n{stdout}"
        );
    }
    // Every kind of failure was injected and compensated.
    for reason in ["payment declined", "out of stock", "shipment rejected"] {
        assert!(stdout.contains(reason), "no {reason:?} orders in\n{stdout}");
    }
    assert!(stdout.contains("Dead letters (2)"), "{stdout}");
    assert!(dir.path().join("db/order.db").exists());
    assert!(dir.path().join("log").is_dir());
}

#[test]
fn bad_demo_flags_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value, message) in [
        ("--orders", "0", "--orders must be 1 to 1000000"),
        (
            "--decline-rate",
            "1.5",
            "--decline-rate must be between 0 and 1",
        ),
        ("--concurrency", "0", "--concurrency must be 1 to 256"),
    ] {
        let out = herald()
            .args(["demo", flag, value])
            .arg("--data-dir")
            .arg(dir.path().join("never"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{flag} {value}: {stderr}");
        assert!(
            !dir.path().join("never").exists(),
            "a refused run wrote nothing"
        );
    }
}
