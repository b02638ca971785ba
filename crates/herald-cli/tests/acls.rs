//! Kafka ACLs on a SASL listener, administered and felt through confluent-kafka's
//! AdminClient, Producer and Consumer: a super user creates ACLs and a user at run time;
//! produce, fetch, group join, topic create and delete are allowed or denied with
//! Kafka's error codes, a denied produce writes nothing, Metadata hides what a principal
//! may not describe, and the ACLs and the run-time user survive a restart.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use herald_test_support::{HeraldServe, herald_command, output_within};
use serde_json::Value;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const WITHIN: Duration = Duration::from_secs(240);

const PASSWORDS: [(&str, &str); 4] = [
    ("admin", "admin-secret"),
    ("alice", "alice-secret"),
    ("bob", "bob-secret"),
    ("carol", "carol-secret"),
];

fn add_user(data: &Path, name: &str, password: &str) {
    herald_test_support::add_user(HERALD, data, name, password, &[]);
}

fn start(dir: &Path) -> HeraldServe {
    let mut cmd = herald_command(HERALD);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--kafka-listen",
            "SASL_PLAINTEXT://127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--registry-listen",
            "127.0.0.1:0",
            "--super-users",
            "admin",
        ]);
    HeraldServe::spawn(cmd, &dir.join("serve.log"))
}

fn scenario(py: &Path, phase: &str, bootstrap: &str) -> Value {
    let script: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acls/acls.py");
    let mut cmd = Command::new(py);
    cmd.arg(script).arg(phase).args(["--bootstrap", bootstrap]);
    for (user, password) in PASSWORDS {
        cmd.env(format!("{}_PASSWORD", user.to_uppercase()), password);
    }
    let out = output_within(&mut cmd, None, WITHIN);
    assert!(
        out.status.success(),
        "{phase}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

#[test]
fn acls_allow_and_deny_every_kind_of_request_and_survive_a_restart() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (user, password) in &PASSWORDS[..3] {
        add_user(&data, user, password);
    }
    let mut serve = start(dir.path());
    let got = scenario(&py, "setup", &serve.kafka);
    let is = |key: &str, want: Value| assert_eq!(got[key], want, "{key}: {got:#}");
    // The user made at run time, with the iterations asked for.
    is(
        "users",
        serde_json::json!(["admin", "alice", "bob", "carol"]),
    );
    is("carol_iterations", serde_json::json!([8192]));
    is("acls", 7.into());
    is("acls_matching_bob_locked", 2.into());
    // Produce: WRITE allowed; no ACL; a DENY beats the prefix's ALLOW. Nothing written.
    is("alice_produce", "ok".into());
    is("bob_produce", "TOPIC_AUTHORIZATION_FAILED".into());
    is("orders_high_watermark", 1.into());
    is("bob_create_locked", "ok".into());
    is("bob_produce_locked", "TOPIC_AUTHORIZATION_FAILED".into());
    is("bob_locked_high_watermark", 0.into());
    // Fetch and groups: READ on topic and group.
    is("alice_consume", "from alice".into());
    is(
        "alice_consume_other_group",
        "GROUP_AUTHORIZATION_FAILED".into(),
    );
    is("bob_consume", "TOPIC_AUTHORIZATION_FAILED".into());
    // Create (on the cluster or the topic) and delete.
    is("alice_create", "TOPIC_AUTHORIZATION_FAILED".into());
    is("carol_create", "ok".into());
    is("bob_delete_orders", "TOPIC_AUTHORIZATION_FAILED".into());
    is("bob_create_own", "ok".into());
    is("bob_delete_own", "ok".into());
    is("alice_sees", serde_json::json!(["orders"]));
    is("bob_grants_himself", "CLUSTER_AUTHORIZATION_FAILED".into());
    is("deleted", 1.into());
    is("acls_left", 6.into());

    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(
        log.contains("authorization denied") && log.contains("User:bob"),
        "denials are logged: {log}"
    );
    assert!(!log.contains("secret"), "no password in the log");
    let stored = std::fs::read_to_string(data.join("security/users.json")).unwrap();
    assert!(stored.contains("carol") && !stored.contains("carol-secret"));

    assert_eq!(serve.terminate(), Some(0));
    let serve = start(dir.path());
    let got = scenario(&py, "after-restart", &serve.kafka);
    assert_eq!(got["acls"], 6, "{got}");
    assert_eq!(got["carol_create"], "ok", "{got}");
    assert_eq!(got["alice_produce"], "ok", "{got}");
    assert_eq!(got["bob_produce"], "TOPIC_AUTHORIZATION_FAILED", "{got}");
    assert_eq!(got["orders_high_watermark"], 2, "{got}");
}

/// `herald ARGS` as `user` (its password in HERALD_PASSWORD), `stdin` piped in.
fn herald_as(user: &str, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    let password = PASSWORDS
        .iter()
        .find(|(u, _)| *u == user)
        .map_or("wrong", |(_, p)| p);
    let mut cmd = herald_command(HERALD);
    cmd.args(args)
        .env("HERALD_USER", user)
        .env("HERALD_PASSWORD", password);
    output_within(&mut cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
}

fn ok(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

fn refused(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "expected a refusal");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_http_api_the_registry_and_herald_acls_follow_the_acls() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (user, password) in &PASSWORDS[..2] {
        add_user(&data, user, password);
    }
    let serve = herald_test_support::basic_auth_serve(
        HERALD,
        &data,
        "admin",
        &dir.path().join("serve.log"),
    );
    let server = ["--server", serve.http.as_str()];
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(server.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |user: &str, args: Vec<String>, stdin: Option<&str>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        herald_as(user, &args, stdin)
    };

    // The super user grants alice WRITE (and so DESCRIBE) on orders; alice cannot grant.
    ok(&run(
        "admin",
        with(&[
            "acls",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "WRITE",
            "--operation",
            "READ",
            "--topic",
            "orders",
            "-o",
            "json",
        ]),
        None,
    ));
    let listed = ok(&run(
        "admin",
        with(&["acls", "list", "--topic", "orders", "-o", "json"]),
        None,
    ));
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let err = refused(&run(
        "alice",
        with(&[
            "acls",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "ALL",
            "--cluster",
        ]),
        None,
    ));
    assert!(err.contains("HTTP 403") && err.contains("40302"), "{err}");

    // Topics: create needs CREATE, lists hide what alice may not describe.
    ok(&run("admin", with(&["topics", "create", "orders"]), None));
    ok(&run("admin", with(&["topics", "create", "payments"]), None));
    let err = refused(&run("alice", with(&["topics", "create", "mine"]), None));
    assert!(err.contains("HTTP 403") && err.contains("CREATE"), "{err}");
    let topics = ok(&run("alice", with(&["topics", "list", "-o", "json"]), None));
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .or(topics.as_array())
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"], "{topics}");
    ok(&run("alice", with(&["produce", "orders"]), Some("hello\n")));
    let err = refused(&run("alice", with(&["produce", "payments"]), Some("no\n")));
    assert!(err.contains("HTTP 403"), "{err}");
    let err = refused(&run("alice", with(&["topics", "delete", "orders"]), None));
    assert!(err.contains("HTTP 403") && err.contains("DELETE"), "{err}");
    let detail = ok(&run(
        "admin",
        with(&["topics", "describe", "payments", "-o", "json"]),
        None,
    ));
    assert_eq!(
        detail["partitions"][0]["high_watermark"], 0,
        "nothing written: {detail}"
    );

    // The registry: a subject is governed by its topic.
    let schema = dir.path().join("order.avsc");
    std::fs::write(
        &schema,
        r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#,
    )
    .unwrap();
    let schema = schema.to_str().unwrap();
    let registry = ["--registry", serve.registry.as_str()];
    let reg = |user: &str, args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(registry);
        herald_as(user, &all, None)
    };
    ok(&reg(
        "alice",
        &["schemas", "register", "orders-value", schema, "-o", "json"],
    ));
    let err = refused(&reg(
        "alice",
        &["schemas", "register", "payments-value", schema],
    ));
    assert!(err.contains("403") && err.contains("40301"), "{err}");
    ok(&reg(
        "admin",
        &[
            "schemas",
            "register",
            "payments-value",
            schema,
            "-o",
            "json",
        ],
    ));
    let subjects = ok(&reg("alice", &["schemas", "list", "-o", "json"]));
    let text = subjects.to_string();
    assert!(
        text.contains("orders-value") && !text.contains("payments-value"),
        "{text}"
    );

    // Users at run time, through the HTTP API.
    ok(&run(
        "admin",
        with(&["users", "add", "carol", "--password-stdin"]),
        Some("carol-secret\n"),
    ));
    let users = ok(&run("admin", with(&["users", "list", "-o", "json"]), None));
    assert!(users.to_string().contains("carol"), "{users}");
    let carol = ok(&run("carol", with(&["topics", "list", "-o", "json"]), None));
    assert!(
        !carol.to_string().contains("orders"),
        "carol sees nothing: {carol}"
    );
    let err = refused(&run(
        "alice",
        with(&["users", "add", "mallory", "--password-stdin"]),
        Some("x\n"),
    ));
    assert!(err.contains("HTTP 403"), "{err}");
    ok(&run("admin", with(&["users", "remove", "carol"]), None));
    let err = refused(&run("carol", with(&["topics", "list"]), None));
    assert!(
        err.contains("401"),
        "a removed user is refused at once: {err}"
    );
    drop(serve);
}

#[test]
fn each_kafka_listener_has_its_own_security_and_advertised_address() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    add_user(&data, "admin", "admin-secret");
    let mut cmd = herald_command(HERALD);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(&data)
        // Kafka's `listeners`: the flag repeated (a comma-separated value works too).
        .args(["--kafka-listen", "PLAINTEXT://127.0.0.1:0"])
        .args(["--kafka-listen", "SASL_PLAINTEXT://127.0.0.1:0"])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--registry-listen",
            "127.0.0.1:0",
        ])
        .args(["--super-users", "admin"]);
    let serve = HeraldServe::spawn(cmd, &dir.path().join("serve.log"));
    let plain = serve.kafka.clone();
    // The ready line names the listeners after the first.
    let sasl = serve.field("kafka_more");
    let mut script = Command::new(&py);
    script
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/acls/listeners.py"))
        .args(["--plain", &plain, "--sasl", &sasl])
        .env("ADMIN_PASSWORD", "admin-secret");
    let out = output_within(&mut script, None, WITHIN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["plain_brokers"], serde_json::json!([plain]), "{got}");
    assert_eq!(got["sasl_brokers"], serde_json::json!([sasl]), "{got}");
    assert_eq!(got["plain_produce_public"], "ok", "{got}");
    assert_eq!(got["plain_consume_public"], "anonymous", "{got}");
    assert_eq!(
        got["plain_produce_secret"], "TOPIC_AUTHORIZATION_FAILED",
        "{got}"
    );
    assert_eq!(got["sasl_produce_secret"], "ok", "{got}");
}
