//! `herald schemas` against `herald serve` on port 0: list, register, get, check, the
//! error a user sees for an incompatible schema and for no registry, schemas across a
//! restart, and broker-side validation of a topic as `herald produce` meets it.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

use herald_test_support::{HeraldServe, herald_command, output_within};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

fn herald() -> Command {
    herald_command(HERALD)
}

/// A running `herald serve` on port 0 and the client commands run against it; killed
/// when dropped.
struct Serve(HeraldServe);

impl Serve {
    fn start(data: &Path, log: &Path) -> Serve {
        Serve(HeraldServe::start(HERALD, data, log))
    }

    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = herald();
        cmd.args(args)
            .env("HERALD_REGISTRY", &self.0.registry)
            .env("HERALD_SERVER", &self.0.http);
        run(&mut cmd, stdin)
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, None);
        assert!(
            out.status.success(),
            "herald {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// SIGTERM, and waits until it exited.
    fn stop(mut self) {
        self.0.terminate();
    }
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    output_within(cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

const V1: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long","default":0}]}"#;
// Adds a field without a default: cannot read data written with V2.
const BAD: &str = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"string"},{"name":"note","type":"string"}]}"#;

#[test]
fn register_get_list_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(&dir.path().join("data"), &dir.path().join("serve.log"));
    assert!(s.ok(&["schemas", "list"]).contains("no subjects"));
    let v1 = write(dir.path(), "order.avsc", V1);
    let out = s.ok(&["schemas", "register", "orders-value", v1.to_str().unwrap()]);
    assert_eq!(out.trim(), "registered orders-value version 1 id 1");
    let v2 = write(dir.path(), "order2.avsc", V2);
    assert!(
        s.ok(&["schemas", "check", "orders-value", v2.to_str().unwrap()])
            .contains("compatible")
    );
    s.ok(&["schemas", "register", "orders-value", v2.to_str().unwrap()]);
    let proto = write(
        dir.path(),
        "pay.proto",
        "syntax = \"proto3\";\nmessage Paid { string id = 1; }\n",
    );
    s.ok(&[
        "schemas",
        "register",
        "payments-value",
        proto.to_str().unwrap(),
    ]);

    let list = s.ok(&["schemas", "list"]);
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["SUBJECT", "LATEST", "ID", "TYPE"]
    );
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["orders-value", "2", "2", "AVRO"]
    );
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["payments-value", "1", "3", "PROTOBUF"]
    );
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["schemas", "list", "-o", "json"])).unwrap();
    assert_eq!(json[1]["schemaType"], "PROTOBUF");

    let got = s.ok(&["schemas", "get", "orders-value", "1"]);
    assert!(
        got.starts_with("# orders-value version 1 id 1 (AVRO)"),
        "{got}"
    );
    assert!(got.contains("\"name\": \"Order\""), "{got}");
    assert!(
        s.ok(&["schemas", "get", "--id", "3"])
            .contains("message Paid")
    );

    let bad = write(dir.path(), "bad.avsc", BAD);
    let out = s.run(
        &["schemas", "check", "orders-value", bad.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("NOT compatible") && stdout.contains("READER_FIELD_MISSING_DEFAULT_VALUE"),
        "{stdout}"
    );
    let out = s.run(
        &["schemas", "register", "orders-value", bad.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error_code 409") && err.contains("herald schemas check"),
        "{err}"
    );

    let out = s.run(&["schemas", "get", "nobody"], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("herald schemas list"));
    let unknown = write(dir.path(), "x.txt", "{}");
    let out = s.run(
        &["schemas", "register", "x", unknown.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--type"));

    // Schemas survive a restart of herald serve.
    let data = dir.path().join("data");
    s.stop();
    let s = Serve::start(&data, &dir.path().join("serve2.log"));
    let got = s.ok(&["schemas", "get", "orders-value"]);
    assert!(got.starts_with("# orders-value version 2 id 2"), "{got}");
}

#[test]
fn no_registry_says_what_to_do() {
    let out = run(
        herald().args(["schemas", "list", "--registry", "http://127.0.0.1:9"]),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not reachable at http://127.0.0.1:9")
            && err.contains("herald serve")
            && err.contains("--registry"),
        "{err}"
    );
}

#[test]
fn a_validated_topic_refuses_records_without_a_registered_schema() {
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(&dir.path().join("data"), &dir.path().join("serve.log"));
    s.ok(&[
        "topics",
        "create",
        "orders",
        "--config",
        "confluent.value.schema.validation=true",
    ]);
    let described = s.ok(&["topics", "describe", "orders"]);
    assert!(
        described.contains("confluent.value.schema.validation") && described.contains("true"),
        "{described}"
    );
    let out = s.run(&["produce", "orders", "not framed"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("schema validation failed") && err.contains("magic byte"),
        "{err}"
    );
    let tail = s.ok(&["tail", "orders", "--from-beginning", "-o", "json"]);
    assert!(tail.trim().is_empty(), "nothing was written: {tail}");
    let out = s.run(
        &[
            "topics",
            "create",
            "t2",
            "--config",
            "confluent.value.schema.validation=maybe",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not true or false"));
}

/// Confluent's own Python client and serializers against the `herald serve` binary (the
/// registry crate's `confluent_clients` test runs the same script against the broker and
/// registry in process, plus records written by Herald's Rust serdes): register, fetch,
/// produce and consume Avro, JSON Schema and Protobuf values with confluent-kafka, and the
/// broker refuses unframed records on a validated topic.
#[test]
fn confluent_kafka_serializers_round_trip_through_herald_serve() {
    let Some(python) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let s = Serve::start(&dir.path().join("data"), &dir.path().join("serve.log"));
    for topic in ["avro-py", "json-py", "proto-py"] {
        s.ok(&[
            "topics",
            "create",
            topic,
            "--config",
            "confluent.value.schema.validation=true",
        ]);
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../herald-registry/tests/clients/confluent_sr.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args([s.0.registry.as_str(), s.0.kafka.as_str(), "--no-rust"])
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = output_within(&mut cmd, None, Duration::from_secs(120));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "confluent_sr.py failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- serve log\n{}",
        std::fs::read_to_string(dir.path().join("serve.log")).unwrap_or_default()
    );
    let result: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(result["client_api"], "ok", "{result}");
    assert_eq!(
        result["round_trip"],
        serde_json::json!({"avro-py": 5, "json-py": 5, "proto-py": 5})
    );
    assert_eq!(result["refused"], 2, "{result}");
    s.stop();
}
