//! `herald dlq` as a user runs it: a broker started in-process on port 0, a poison event
//! dead-lettered by an SDK router on the Kafka transport, then `list`, `show`, `replay`
//! and `discard` through the binary, and the mistakes a user makes (no broker, unknown
//! id, a filter-wide operation without `--yes`). Against a SASL_SSL `herald serve`:
//! `list` with the security flags, the password from HERALD_PASSWORD, or a
//! `--kafka-config` file; a wrong password and incomplete security options.

use std::{
    io::Write,
    path::Path,
    process::{Command, Output, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use herald::{
    Envelope, Event, HandlerContext, HandlerError, KafkaTransport, RetryPolicy, Router,
    RouterHandle,
    transport::{Admin, PublisherExt, kafka::KafkaConfig},
};
use herald_broker::{Broker, BrokerConfig};
use herald_test_support::{HeraldServe, TestCa, herald_command, output_within};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

#[derive(Serialize, Deserialize, Debug, Clone)]
struct Payment {
    key: String,
    cents: u32,
}

impl Event for Payment {
    const TYPE: &'static str = "test.payment";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

fn payment(key: &str, cents: u32) -> Envelope {
    Envelope::from_event(
        "urn:test",
        &Payment {
            key: key.into(),
            cents,
        },
    )
    .unwrap()
}

/// Runs `herald dlq ARGS --bootstrap ADDR` off the async runtime.
async fn dlq(bootstrap: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(HERALD);
    cmd.arg("dlq")
        .args(args)
        .arg("--bootstrap")
        .arg(bootstrap)
        .env_remove("HERALD_BOOTSTRAP")
        .stdin(Stdio::null());
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

/// Runs a `herald dlq` command that must succeed; returns its stdout.
async fn ok(bootstrap: &str, args: &[&str]) -> String {
    let out = dlq(bootstrap, args).await;
    assert!(
        out.status.success(),
        "herald dlq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Lists until the count line says `n` letters (the router writes them asynchronously).
async fn wait_for_letters(bootstrap: &str, n: usize) -> String {
    let want = format!("{n} dead letter(s)");
    for _ in 0..120 {
        let out = ok(
            bootstrap,
            &["list", "--topic", "payments", "--group", "ledger"],
        )
        .await;
        if out.contains(&want) {
            return out;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("never saw {want}");
}

/// A Kafka transport on `bootstrap` with fast rebalances.
fn transport(bootstrap: &str) -> KafkaTransport {
    KafkaTransport::new(
        KafkaConfig::new(bootstrap)
            .with_join_timeout(Duration::from_secs(30))
            .set_consumer("session.timeout.ms", "6000")
            .set_consumer("heartbeat.interval.ms", "100"),
    )
    .unwrap()
}

/// Group `ledger` on `payments`: key "bad" fails until the flag is set, "worse" always
/// fails (two attempts, then a dead letter); handled event ids go to the receiver.
async fn ledger(
    t: &KafkaTransport,
) -> (
    RouterHandle,
    Arc<AtomicBool>,
    mpsc::UnboundedReceiver<String>,
) {
    let fixed = Arc::new(AtomicBool::new(false));
    let (tx, handled) = mpsc::unbounded_channel();
    let is_fixed = fixed.clone();
    let router = Router::builder(t.clone(), "ledger")
        .retry(
            RetryPolicy::default()
                .with_max_attempts(2)
                .with_delays(Duration::from_millis(10), Duration::from_millis(20), 2.0)
                .with_max_elapsed(None),
        )
        .on("payments", move |p: Payment, ctx: HandlerContext| {
            let (tx, is_fixed) = (tx.clone(), is_fixed.clone());
            async move {
                if p.key == "worse" || (p.key == "bad" && !is_fixed.load(Ordering::SeqCst)) {
                    return Err(HandlerError::transient(std::io::Error::other(
                        "card declined",
                    )));
                }
                let _ = tx.send(ctx.envelope().id.clone());
                Ok(())
            }
        })
        .start()
        .await
        .unwrap();
    (router, fixed, handled)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_is_listed_shown_replayed_with_its_id_and_discarded() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    config.group_initial_rebalance_delay_ms = 50;
    config.group_min_session_timeout_ms = 1000;
    let broker = Broker::start(config).await.unwrap();
    let bootstrap = broker.kafka_addr().to_string();
    let t = transport(&bootstrap);
    t.create_topic("payments", 1).await.unwrap();

    let (router, fixed, mut handled) = ledger(&t).await;

    let good = payment("good", 1);
    let poison = payment("bad", 2);
    t.publish_envelopes("payments", &[good.clone(), poison.clone()])
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(60), handled.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first, good.id);

    let listed = wait_for_letters(&bootstrap, 1).await;
    assert!(listed.contains(&poison.id), "{listed}");
    assert!(listed.contains("card declined"), "{listed}");
    assert!(listed.contains("payments/0:1"), "{listed}");
    assert!(
        listed.contains("1 dead letter(s): 1 failed, 0 parked"),
        "{listed}"
    );

    // --output json: one document each, the HTTP API's field names.
    let listed: serde_json::Value = serde_json::from_str(
        &ok(
            &bootstrap,
            &[
                "list", "--topic", "payments", "--group", "ledger", "--output", "json",
            ],
        )
        .await,
    )
    .expect("list --output json is one JSON document");
    assert_eq!(listed["topic"], "payments");
    assert_eq!(listed["group"], "ledger");
    assert_eq!(listed["dlq_topic"], "payments.ledger.dlq");
    assert_eq!(listed["count"], 1);
    assert_eq!(listed["failed"], 1);
    assert_eq!(listed["parked"], 0);
    let letter = &listed["letters"][0];
    assert_eq!(letter["id"], poison.id.as_str());
    assert_eq!(letter["kind"], "failed");
    assert_eq!(letter["key"], "bad");
    assert_eq!(letter["attempts"], 2);
    assert_eq!(letter["original"]["topic"], "payments");
    assert_eq!(letter["original"]["partition"], 0);
    assert_eq!(letter["original"]["offset"], 1);
    let shown: serde_json::Value = serde_json::from_str(
        &ok(
            &bootstrap,
            &[
                "show", &poison.id, "--topic", "payments", "--group", "ledger", "-o", "json",
            ],
        )
        .await,
    )
    .expect("show --output json is one JSON document");
    assert_eq!(&shown, letter, "show prints the letter list prints");
    assert_eq!(shown["error_chain"][0], "card declined");
    assert!(shown["reason"].as_str().unwrap().contains("card declined"));
    assert!(shown["last_failure"].as_str().unwrap().ends_with('Z'));
    let payload: serde_json::Value =
        serde_json::from_str(shown["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["key"], "bad");
    assert!(
        shown["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["key"] == "ce_id" && h["value"] == poison.id.as_str()),
        "{shown}"
    );

    let shown = ok(
        &bootstrap,
        &[
            "show", &poison.id, "--topic", "payments", "--group", "ledger",
        ],
    )
    .await;
    assert!(shown.contains("attempts        2"), "{shown}");
    assert!(shown.contains("  0: card declined"), "{shown}");
    assert!(shown.contains(r#""key":"bad""#), "payload as text: {shown}");
    assert!(shown.contains(&format!("ce_id={}", poison.id)), "{shown}");

    let unknown = dlq(
        &bootstrap,
        &[
            "show",
            "no-such-id",
            "--topic",
            "payments",
            "--group",
            "ledger",
        ],
    )
    .await;
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.contains("herald dlq list --topic payments --group ledger"),
        "{err}"
    );

    let unconfirmed = dlq(
        &bootstrap,
        &[
            "replay", "--all", "--topic", "payments", "--group", "ledger",
        ],
    )
    .await;
    assert_eq!(unconfirmed.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unconfirmed.stderr).contains("--yes"));
    wait_for_letters(&bootstrap, 1).await;

    fixed.store(true, Ordering::SeqCst);
    let replayed = ok(
        &bootstrap,
        &[
            "replay",
            "--id",
            &poison.id,
            "--topic",
            "payments",
            "--group",
            "ledger",
            "--to-group-only",
        ],
    )
    .await;
    assert!(replayed.contains("matched 1, replayed 1"), "{replayed}");
    let again = tokio::time::timeout(Duration::from_secs(60), handled.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, poison.id, "the replayed event keeps its id");
    wait_for_letters(&bootstrap, 0).await;

    let worse = payment("worse", 3);
    t.publish_envelopes("payments", std::slice::from_ref(&worse))
        .await
        .unwrap();
    let listed = wait_for_letters(&bootstrap, 1).await;
    assert!(listed.contains(&worse.id), "{listed}");
    let discarded = ok(
        &bootstrap,
        &[
            "discard", "--reason", "declined", "--yes", "--topic", "payments", "--group", "ledger",
        ],
    )
    .await;
    assert!(discarded.contains("matched 1, discarded 1"), "{discarded}");
    wait_for_letters(&bootstrap, 0).await;
    let none: serde_json::Value = serde_json::from_str(
        &ok(
            &bootstrap,
            &[
                "discard", "--all", "--yes", "--topic", "payments", "--group", "ledger", "-o",
                "json",
            ],
        )
        .await,
    )
    .unwrap();
    assert_eq!(
        none,
        serde_json::json!({ "matched": 0, "replayed": 0, "discarded": 0 })
    );

    router.shutdown().await.unwrap();
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_broker_the_error_says_how_to_start_one() {
    // Bind and drop a listener: a port on which nothing listens.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = dlq(
        &addr.to_string(),
        &["list", "--topic", "payments", "--group", "ledger"],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("no broker at {addr}")), "{err}");
    assert!(err.contains("herald serve"), "{err}");
}

#[test]
fn replay_without_a_selection_is_a_usage_error_before_any_connection() {
    let out = Command::new(HERALD)
        .args(["dlq", "replay", "--topic", "t", "--group", "g"])
        .args(["--bootstrap", "127.0.0.1:1"])
        .env_remove("HERALD_BOOTSTRAP")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--id ID, --all, or filters"), "{err}");
}

#[test]
fn an_unknown_output_format_is_a_usage_error() {
    let out = Command::new(HERALD)
        .args([
            "dlq", "list", "--topic", "t", "--group", "g", "--output", "yaml",
        ])
        .args(["--bootstrap", "127.0.0.1:1"])
        .env_remove("HERALD_BOOTSTRAP")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("json"), "the error lists the formats: {err}");
}

/// Lists through the HTTP API until `count` is `n`; returns the answer.
async fn wait_for_http_letters(http: &reqwest::Client, url: &str, n: u64) -> serde_json::Value {
    for _ in 0..120 {
        let v: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
        if v["count"] == n {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("never saw {n} letters at {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_api_lists_shows_replays_and_discards_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let serve = HeraldServe::start(
        HERALD,
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
    );
    let t = transport(&serve.kafka);
    t.create_topic("payments", 1).await.unwrap();
    let (router, fixed, mut handled) = ledger(&t).await;
    let poison = payment("bad", 1);
    let worse = payment("worse", 2);
    t.publish_envelopes("payments", &[poison.clone(), worse.clone()])
        .await
        .unwrap();

    let http = reqwest::Client::new();
    let base = format!("{}/api/v1/dlq/payments/ledger", serve.http);
    let listed = wait_for_http_letters(&http, &base, 2).await;
    assert_eq!(listed["dlq_topic"], "payments.ledger.dlq");
    assert_eq!(
        (listed["failed"].clone(), listed["parked"].clone()),
        (2.into(), 0.into())
    );
    assert_eq!(listed["letters"][0]["id"], poison.id.as_str());
    assert_eq!(listed["letters"][0]["attempts"], 2);
    let filtered: serde_json::Value = http
        .get(format!("{base}?key=worse"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(filtered["count"], 1);
    assert_eq!(filtered["letters"][0]["id"], worse.id.as_str());

    let shown: serde_json::Value = http
        .get(format!("{base}/{}", poison.id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["error_chain"], serde_json::json!(["card declined"]));
    assert_eq!(shown["original"]["topic"], "payments");
    assert!(
        shown["payload"]
            .as_str()
            .unwrap()
            .contains(r#""key":"bad""#)
    );

    // Names Kafka cannot hold are the client's mistake: 400, not 500.
    for bad in ["bad%20topic/ledger", &format!("{}/g", "t".repeat(250))] {
        let refused = http
            .get(format!("{}/api/v1/dlq/{bad}", serve.http))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 400, "{bad}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains("topic"),
            "{bad}: {body}"
        );
    }

    let missing = http.get(format!("{base}/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error_code"], 40405);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("GET /api/v1/dlq/payments/ledger")
    );

    let unselected = http
        .post(format!("{base}/replay"))
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(unselected.status(), 400);
    let body: serde_json::Value = unselected.json().await.unwrap();
    assert_eq!(body["error_code"], 40002);

    fixed.store(true, std::sync::atomic::Ordering::SeqCst);
    let replayed: serde_json::Value = http
        .post(format!("{base}/replay"))
        .json(&serde_json::json!({ "ids": [poison.id], "target": "group" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        replayed,
        serde_json::json!({ "matched": 1, "replayed": 1, "discarded": 0 })
    );
    let again = tokio::time::timeout(Duration::from_secs(60), handled.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again, poison.id, "the replayed event keeps its id");

    let discarded: serde_json::Value = http
        .post(format!("{base}/discard"))
        .json(&serde_json::json!({ "filter": { "reason": "declined" } }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discarded,
        serde_json::json!({ "matched": 1, "replayed": 0, "discarded": 1 })
    );
    wait_for_http_letters(&http, &base, 0).await;
    router.shutdown().await.unwrap();
}

/// The value of the series `name` (without labels) in a Prometheus text exposition.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// `POST`s `body` as JSON and returns the answer, which must be a success.
async fn post_ok(http: &reqwest::Client, url: &str, body: serde_json::Value) -> serde_json::Value {
    let response = http.post(url).json(&body).send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "POST {url}: {status} {text}");
    serde_json::from_str(&text).unwrap()
}

/// The headers that make a record of a dead-letter topic a letter of group `ledger`.
fn letter_headers(event_id: &str, partition: u32) -> serde_json::Value {
    serde_json::json!({
        "herald_dlq_kind": "failed",
        "herald_dlq_event_id": event_id,
        "herald_dlq_group": "ledger",
        "herald_dlq_reason": "retries exhausted: card declined",
        "herald_dlq_policy": "sequenced",
        "herald_dlq_original_topic": "payments",
        "herald_dlq_original_partition": partition.to_string(),
        "herald_dlq_original_offset": "0",
    })
}

/// The routes work on the broker in process: letters written, listed, replayed and
/// discarded over HTTP alone, and the broker never accepts a Kafka connection (it counts
/// them in `herald_kafka_connections_opened_total`, which the end of the test checks
/// does count one).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_dead_letter_routes_open_no_kafka_connection() {
    let dir = tempfile::tempdir().unwrap();
    let serve = HeraldServe::start(
        HERALD,
        &dir.path().join("data"),
        &dir.path().join("serve.log"),
    );
    let http = reqwest::Client::new();
    let api = format!("{}/api/v1", serve.http);
    for (name, partitions) in [("payments", 2), ("payments.ledger.dlq", 1)] {
        post_ok(
            &http,
            &format!("{api}/topics"),
            serde_json::json!({ "name": name, "partitions": partitions }),
        )
        .await;
    }
    post_ok(
        &http,
        &format!("{api}/topics/payments.ledger.dlq/records"),
        serde_json::json!({ "records": [
            { "key": "a", "value": "event a", "headers": letter_headers("e-a", 1) },
            { "key": "b", "value": "event b", "headers": letter_headers("e-b", 0) },
        ] }),
    )
    .await;

    let base = format!("{api}/dlq/payments/ledger");
    let listed = wait_for_http_letters(&http, &base, 2).await;
    assert_eq!(listed["letters"][0]["id"], "e-b", "in original order");
    let replayed = post_ok(
        &http,
        &format!("{base}/replay"),
        serde_json::json!({ "ids": ["e-a"] }),
    )
    .await;
    assert_eq!(
        replayed,
        serde_json::json!({ "matched": 1, "replayed": 1, "discarded": 0 })
    );
    let discarded = post_ok(
        &http,
        &format!("{base}/discard"),
        serde_json::json!({ "ids": ["e-b"] }),
    )
    .await;
    assert_eq!(
        discarded,
        serde_json::json!({ "matched": 1, "replayed": 0, "discarded": 1 })
    );
    wait_for_http_letters(&http, &base, 0).await;

    // The replay went back to its partition with its id; the discard of a sequenced
    // letter released its key with a control record on the key's partition.
    let header = |r: &serde_json::Value, key: &str| {
        r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["key"] == key)
            .map(|h| h["value"].clone())
    };
    let read = |p: u32| {
        let url = format!("{api}/topics/payments/partitions/{p}/records");
        let http = http.clone();
        async move {
            let v: serde_json::Value = http.get(url).send().await.unwrap().json().await.unwrap();
            v["records"].as_array().unwrap().clone()
        }
    };
    let replay = read(1).await;
    assert_eq!(replay.len(), 1);
    assert_eq!(
        (replay[0]["key"].clone(), replay[0]["value"].clone()),
        ("a".into(), "event a".into())
    );
    assert_eq!(header(&replay[0], "herald_replay_id"), Some("e-a".into()));
    let control = read(0).await;
    assert_eq!(control.len(), 1);
    assert_eq!(control[0]["key"], "b");
    assert_eq!(
        header(&control[0], "herald_control"),
        Some("unblock".into())
    );

    let scrape = || {
        let (http, url) = (http.clone(), format!("{}/metrics", serve.http));
        async move { http.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let opened = metric(&scrape().await, "herald_kafka_connections_opened_total");
    assert!(
        opened.unwrap_or(0.0) == 0.0,
        "the routes opened Kafka connections: {opened:?}"
    );
    // The counter does count: one connection of our own shows up in it.
    let _kafka = tokio::net::TcpStream::connect(&serve.kafka).await.unwrap();
    for _ in 0..120 {
        if metric(&scrape().await, "herald_kafka_connections_opened_total") == Some(1.0) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the broker never counted the test's own Kafka connection");
}

/// The SASL user of the secured broker, and its password.
const SVC: (&str, &str) = ("svc", "dead-letters-over-tls");

/// A `herald serve` with a SASL_SSL Kafka listener (the test CA's certificate), user
/// `svc` (SCRAM-SHA-512) added before it starts, and `svc` a super user.
fn sasl_ssl_serve(dir: &Path, ca: &TestCa) -> HeraldServe {
    let data = dir.join("data");
    herald_test_support::add_user(
        HERALD,
        &data,
        SVC.0,
        SVC.1,
        &["--mechanism", "SCRAM-SHA-512"],
    );
    herald_test_support::sasl_ssl_serve(HERALD, &data, ca, SVC.0, &dir.join("serve.log"))
}

/// `herald dlq ARGS --bootstrap ADDR` with only `env` of the HERALD_* variables, off
/// the async runtime and bounded in time.
async fn dlq_env(bootstrap: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = herald_command(HERALD);
    cmd.arg("dlq").args(args).arg("--bootstrap").arg(bootstrap);
    for (k, v) in env {
        cmd.env(k, v);
    }
    tokio::task::spawn_blocking(move || output_within(&mut cmd, None, Duration::from_secs(60)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_over_sasl_ssl() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let serve = sasl_ssl_serve(dir.path(), &ca);
    let ca_file = ca.ca.display().to_string();
    let t = KafkaTransport::new(
        KafkaConfig::new(&serve.kafka)
            .with_join_timeout(Duration::from_secs(30))
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", "SCRAM-SHA-512")
            .set("sasl.username", SVC.0)
            .set("sasl.password", SVC.1)
            .set("ssl.ca.location", &ca_file)
            .set_consumer("session.timeout.ms", "6000")
            .set_consumer("heartbeat.interval.ms", "100"),
    )
    .unwrap();
    t.create_topic("payments", 1).await.unwrap();
    let (router, _fixed, _handled) = ledger(&t).await;
    let worse = payment("worse", 3);
    t.publish_envelopes("payments", std::slice::from_ref(&worse))
        .await
        .unwrap();

    let queue = ["list", "--topic", "payments", "--group", "ledger"];
    let flags = [
        "--security-protocol",
        "SASL_SSL",
        "--sasl-mechanism",
        "SCRAM-SHA-512",
        "--user",
        SVC.0,
        "--ca-file",
        &ca_file,
    ];
    let args: Vec<&str> = queue.iter().chain(&flags).copied().collect();
    let mut listed = String::new();
    for _ in 0..120 {
        let out = dlq_env(&serve.kafka, &args, &[("HERALD_PASSWORD", SVC.1)]).await;
        assert!(
            out.status.success(),
            "herald dlq list over SASL_SSL: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        listed = String::from_utf8(out.stdout).unwrap();
        if listed.contains("1 dead letter(s)") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(listed.contains(&worse.id), "{listed}");
    assert!(listed.contains("card declined"), "{listed}");

    // The same from the environment and a librdkafka properties file (kcat -F style).
    let properties = dir.path().join("client.properties");
    std::fs::write(
        &properties,
        format!(
            "# herald dlq --kafka-config\nsecurity.protocol=SASL_SSL\n\nsasl.mechanism = \
             SCRAM-SHA-512\nsasl.username={}\nsasl.password={}\nssl.ca.location={ca_file}\n",
            SVC.0, SVC.1
        ),
    )
    .unwrap();
    let properties = properties.display().to_string();
    let args: Vec<&str> = queue
        .iter()
        .copied()
        .chain(["--kafka-config", &properties, "-o", "json"])
        .collect();
    let out = dlq_env(&serve.kafka, &args, &[]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["count"], 1, "{json}");
    assert_eq!(json["letters"][0]["id"], worse.id.as_str());
    let out = dlq_env(
        &serve.kafka,
        &queue,
        &[
            ("HERALD_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
            ("HERALD_USER", SVC.0),
            ("HERALD_PASSWORD", SVC.1),
            ("HERALD_CA_FILE", &ca_file),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "the environment's settings (SCRAM-SHA-512 by default): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&worse.id));

    // A wrong password: a runtime error soon, with the broker's reason and what to fix.
    let started = std::time::Instant::now();
    let args: Vec<&str> = queue.iter().chain(&flags).copied().collect();
    let out = dlq_env(&serve.kafka, &args, &[("HERALD_PASSWORD", "wrong")]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(20), "{took:?}: {err}");
    assert!(err.contains("the broker refused the connection"), "{err}");
    assert!(err.contains("HERALD_PASSWORD"), "{err}");

    // Incomplete options are usage errors before any connection.
    let out = dlq_env(&serve.kafka, &args, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERALD_PASSWORD"));
    let out = dlq_env(
        &serve.kafka,
        &[
            &queue[..],
            &["--security-protocol", "SASL_SSL", "--ca-file", &ca_file],
        ]
        .concat(),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("SASL_SSL needs a user: add --user NAME"),
        "{err}"
    );
    let out = dlq_env(
        &serve.kafka,
        &[&queue[..], &["--user", SVC.0]].concat(),
        &[("HERALD_PASSWORD", SVC.1)],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--security-protocol SASL_SSL"), "{err}");
    let mut bad = std::fs::File::create(dir.path().join("bad.properties")).unwrap();
    writeln!(bad, "security.protocol=SASL_SSL\nnot a property").unwrap();
    let bad = dir.path().join("bad.properties").display().to_string();
    let out = dlq_env(
        &serve.kafka,
        &[&queue[..], &["--kafka-config", &bad]].concat(),
        &[],
    )
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2: expected key=value"), "{err}");

    router.shutdown().await.unwrap();
}
