//! SASL on the Kafka listener as users configure their clients: `herald users` bootstraps
//! the users with `herald serve` stopped; confluent-kafka (PLAIN, SCRAM-SHA-256,
//! SCRAM-SHA-512 over SASL_PLAINTEXT and SASL_SSL), kafka-python and aiokafka
//! authenticate; a wrong password, an unknown user and a client without SASL are refused.

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use herald_test_support::{HeraldServe, TestCa, herald_command, output_within};
use serde_json::Value;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const WITHIN: Duration = Duration::from_secs(90);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sasl/client.py")
}

/// `herald users ARGS --data-dir DATA`, the password (if any) on standard input.
fn users(data: &Path, args: &[&str], password: Option<&str>) -> std::process::Output {
    let mut cmd = herald_command(HERALD);
    cmd.arg("users").args(args).arg("--data-dir").arg(data);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("herald users starts");
    if let Some(p) = password {
        child.stdin.take().unwrap().write_all(p.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("herald users finishes")
}

fn serve(dir: &Path, kafka: &str, tls: Option<&TestCa>) -> HeraldServe {
    let mut cmd = herald_command(HERALD);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--kafka-listen",
            kafka,
            "--http-listen",
            "127.0.0.1:0",
            "--registry-listen",
            "127.0.0.1:0",
            // Authorization is on with SASL; these tests are about authentication
            // (tests/acls.rs is about ACLs).
            "--super-users",
            "alice;bob;svc",
        ]);
    if let Some(ca) = tls {
        let server = ca.server("server");
        cmd.arg("--tls-cert")
            .arg(server.cert)
            .arg("--tls-key")
            .arg(server.key);
    }
    HeraldServe::spawn(cmd, &dir.join("serve.log"))
}

struct Login<'a> {
    client: &'a str,
    protocol: &'a str,
    mechanism: &'a str,
    user: &'a str,
    password: &'a str,
    topic: &'a str,
    ca: Option<&'a Path>,
    timeout: &'a str,
}

fn login(py: &Path, bootstrap: &str, l: &Login<'_>) -> Result<Value, String> {
    let mut cmd = Command::new(py);
    cmd.arg(script())
        .arg(l.client)
        .args([
            "--bootstrap",
            bootstrap,
            "--protocol",
            l.protocol,
            "--mechanism",
            l.mechanism,
        ])
        .args(["--user", l.user, "--topic", l.topic, "--timeout", l.timeout])
        .env("SASL_PASSWORD", l.password);
    if let Some(ca) = l.ca {
        cmd.arg("--ca").arg(ca);
    }
    let out = output_within(&mut cmd, None, WITHIN);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn users_authenticate_with_every_mechanism_and_client() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Bootstrap the users before the broker runs; the password never on the command line.
    let added = users(
        &data,
        &["add", "alice", "--password-stdin"],
        Some("wonderland\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let added = users(
        &data,
        &[
            "add",
            "bob",
            "--password-stdin",
            "--mechanism",
            "SCRAM-SHA-512",
        ],
        Some("builder"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let listed = users(&data, &["list", "--output", "json"], None);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    let stored = std::fs::read_to_string(data.join("security/users.json")).unwrap();
    assert!(!stored.contains("wonderland") && !stored.contains("builder"));

    let mut serve = serve(dir.path(), "SASL_PLAINTEXT://127.0.0.1:0", None);
    let base = Login {
        client: "confluent",
        protocol: "SASL_PLAINTEXT",
        mechanism: "PLAIN",
        user: "alice",
        password: "wonderland",
        topic: "sasl",
        ca: None,
        timeout: "15",
    };
    for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let got = login(&py, &serve.kafka, &Login { mechanism, ..base })
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        assert_eq!(got["value"], "authenticated", "{mechanism}");
    }
    let bob = Login {
        user: "bob",
        password: "builder",
        mechanism: "SCRAM-SHA-512",
        ..base
    };
    login(&py, &serve.kafka, &bob).unwrap();
    for client in ["kafka-python", "aiokafka"] {
        for mechanism in ["PLAIN", "SCRAM-SHA-256"] {
            let got = login(
                &py,
                &serve.kafka,
                &Login {
                    client,
                    mechanism,
                    topic: "sasl-py",
                    ..base
                },
            )
            .unwrap_or_else(|e| panic!("{client} {mechanism}: {e}"));
            assert_eq!(got["value"], "authenticated");
        }
    }

    // Refusals: a wrong password, an unknown user, a mechanism bob has no credential for.
    for (what, l) in [
        (
            "wrong password",
            Login {
                password: "wrong",
                timeout: "4",
                ..base
            },
        ),
        (
            "wrong SCRAM password",
            Login {
                mechanism: "SCRAM-SHA-256",
                password: "wrong",
                timeout: "4",
                ..base
            },
        ),
        (
            "unknown user",
            Login {
                user: "mallory",
                timeout: "4",
                ..base
            },
        ),
        (
            "no SHA-256 for bob",
            Login {
                mechanism: "SCRAM-SHA-256",
                timeout: "4",
                ..bob
            },
        ),
    ] {
        let err = login(&py, &serve.kafka, &l).unwrap_err();
        assert!(
            err.contains("Authentication failed") || err.contains("SASL"),
            "{what}: {err}"
        );
    }
    // A client without SASL settings gets nothing.
    if let Some(kcat) = herald_test_support::kcat() {
        let mut cmd = Command::new(kcat);
        cmd.env_remove("LD_LIBRARY_PATH")
            .args(["-b", &serve.kafka, "-L", "-m", "3"]);
        assert!(!output_within(&mut cmd, None, WITHIN).status.success());
    }
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("SASL authentication failed"), "{log}");
    assert!(
        !log.contains("wonderland") && !log.contains("wrong"),
        "no secret in the log"
    );
    // While it runs, the users cannot be changed underneath it.
    let busy = users(&data, &["list"], None);
    assert!(!busy.status.success());
    assert_eq!(serve.terminate(), Some(0));

    let removed = users(&data, &["remove", "bob"], None);
    assert!(removed.status.success());
    let listed = users(&data, &["list", "--output", "json"], None);
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["name"], "alice");
    assert_eq!(listed.as_array().unwrap().len(), 1);
}

#[test]
fn sasl_ssl_with_scram() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let added = users(
        &data,
        &["add", "svc", "--password-stdin"],
        Some("tls-and-scram"),
    );
    assert!(added.status.success());
    let ca = TestCa::new(dir.path());
    let serve = serve(dir.path(), "SASL_SSL://127.0.0.1:0", Some(&ca));
    let l = Login {
        client: "confluent",
        protocol: "SASL_SSL",
        mechanism: "SCRAM-SHA-512",
        user: "svc",
        password: "tls-and-scram",
        topic: "sasl-ssl",
        ca: Some(&ca.ca),
        timeout: "15",
    };
    assert_eq!(
        login(&py, &serve.kafka, &l).unwrap()["value"],
        "authenticated"
    );
    let got = login(
        &py,
        &serve.kafka,
        &Login {
            client: "kafka-python",
            mechanism: "PLAIN",
            ..l
        },
    )
    .unwrap();
    assert_eq!(got["value"], "authenticated");
}

#[test]
fn http_basic_authentication_guards_the_api_and_the_registry() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let added = users(
        &data,
        &["add", "ops", "--password-stdin"],
        Some("http-secret"),
    );
    assert!(added.status.success());
    // Authentication turns authorization on; ops may do everything (tests/acls.rs covers
    // the ACLs).
    let serve =
        herald_test_support::basic_auth_serve(HERALD, &data, "ops", &dir.path().join("serve.log"));

    let mut check = Command::new(&py);
    check
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sasl/basic_auth.py"))
        .args([
            "--http",
            &serve.http,
            "--registry",
            &serve.registry,
            "--user",
            "ops",
        ])
        .env("SASL_PASSWORD", "http-secret");
    let out = output_within(&mut check, None, WITHIN);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got["health"], 200, "{got}");
    assert_eq!(got["anonymous"], 401, "{got}");
    assert_eq!(got["wrong"], 401, "{got}");
    assert_eq!(got["authenticated"], 200, "{got}");
    assert!(
        got["registry_anonymous"].as_str().unwrap().contains("401"),
        "{got}"
    );
    assert_eq!(got["registry_id"], 1, "{got}");

    // The CLI: --user with HERALD_PASSWORD; without, the 401 says what to do.
    let topics = |user: Option<&str>| {
        let mut cmd = herald_command(HERALD);
        cmd.args(["topics", "list", "--server", &serve.http]);
        if let Some(u) = user {
            cmd.args(["--user", u])
                .env("HERALD_PASSWORD", "http-secret");
        }
        output_within(&mut cmd, None, WITHIN)
    };
    assert!(topics(Some("ops")).status.success());
    let refused = topics(None);
    assert!(!refused.status.success());
    let mut schemas = herald_command(HERALD);
    schemas
        .args([
            "schemas",
            "list",
            "--registry",
            &serve.registry,
            "--user",
            "ops",
        ])
        .env("HERALD_PASSWORD", "http-secret");
    let listed = output_within(&mut schemas, None, WITHIN);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    assert!(String::from_utf8_lossy(&listed.stdout).contains("orders-value"));
}
