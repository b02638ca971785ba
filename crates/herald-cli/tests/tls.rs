//! `herald serve` with TLS on every listener (`SSL://`, `https://`), as users configure
//! their clients: confluent-kafka with `security.protocol=SSL`, kcat, the herald CLI
//! with `--ca-file`, Python's ssl module; client certificates; a certificate rotated
//! with SIGHUP; and a plaintext client on the TLS port.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use herald_test_support::{HeraldServe, TestCa, herald_command, output_within};
use serde_json::Value;

const HERALD: &str = env!("CARGO_BIN_EXE_herald");
const WITHIN: Duration = Duration::from_secs(60);

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tls/client.py")
}

/// `herald serve` with every listener on TLS, certificates from `ca`.
fn serve_tls(dir: &Path, ca: &TestCa, client_ca: bool) -> HeraldServe {
    let server = ca.server("server");
    let mut cmd = herald_command(HERALD);
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--kafka-listen",
            "SSL://127.0.0.1:0",
            "--http-listen",
            "https://127.0.0.1:0",
            "--registry-listen",
            "https://127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&server.cert)
        .arg("--tls-key")
        .arg(&server.key);
    if client_ca {
        // Client certificates turn authorization on; alice's subject is a super user.
        cmd.arg("--tls-client-ca")
            .arg(&ca.ca)
            .args(["--super-users", "User:CN=alice"]);
    }
    HeraldServe::spawn(cmd, &dir.join("serve.log"))
}

fn host_port(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

/// Runs client.py; its JSON, or `Err(stderr)`.
fn client(py: &Path, args: &[&str]) -> Result<Value, String> {
    let mut cmd = Command::new(py);
    cmd.arg(script()).args(args);
    let out = output_within(&mut cmd, None, WITHIN);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).expect("client.py prints JSON"))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn herald_cli(args: &[&str]) -> std::process::Output {
    let mut cmd = herald_command(HERALD);
    cmd.args(args);
    output_within(&mut cmd, None, WITHIN)
}

#[test]
fn every_listener_serves_tls_to_unmodified_clients() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let serve = serve_tls(dir.path(), &ca, false);
    let ca_file = ca.ca.to_str().unwrap();
    let http = format!("https://{}", host_port(&serve.http));
    let registry = format!("https://{}", host_port(&serve.registry));

    // The CLI over HTTPS: with the CA it works, without it says why not.
    let created = herald_cli(&[
        "topics",
        "create",
        "secure",
        "--server",
        &http,
        "--ca-file",
        ca_file,
    ]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    let untrusted = herald_cli(&["topics", "list", "--server", &http]);
    assert!(!untrusted.status.success());

    // confluent-kafka with security.protocol=SSL, hostname verification on.
    let got = client(
        &py,
        &[
            "round-trip",
            "--bootstrap",
            &serve.kafka,
            "--ca",
            ca_file,
            "--topic",
            "secure",
        ],
    )
    .unwrap();
    assert_eq!(
        got["values"],
        serde_json::json!(["secret-0", "secret-1", "secret-2"])
    );

    // kcat, metadata over SSL. Cargo points LD_LIBRARY_PATH at the build's own
    // librdkafka (built without OpenSSL); kcat must load Debian's.
    if let Some(kcat) = herald_test_support::kcat() {
        let mut cmd = Command::new(kcat);
        cmd.env_remove("LD_LIBRARY_PATH");
        cmd.args(["-b", &serve.kafka, "-X", "security.protocol=SSL", "-X"])
            .arg(format!("ssl.ca.location={ca_file}"))
            .args(["-L", "-t", "secure", "-m", "10"]);
        let out = output_within(&mut cmd, None, WITHIN);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("topic \"secure\""),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // The registry and /health over HTTPS.
    for url in [format!("{registry}/subjects"), format!("{http}/health")] {
        let got = client(&py, &["https-get", "--url", &url, "--ca", ca_file]).unwrap();
        assert_eq!(got["status"], 200, "{url}: {got}");
    }

    // A plaintext Kafka client on the SSL port: refused, and the operator is told.
    if let Some(kcat) = herald_test_support::kcat() {
        let mut cmd = Command::new(kcat);
        cmd.args(["-b", &serve.kafka, "-L", "-m", "3"]);
        let out = output_within(&mut cmd, None, WITHIN);
        assert!(
            !out.status.success(),
            "plaintext metadata over the SSL port"
        );
        let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
        assert!(
            log.contains("spoke plaintext to the SSL Kafka listener"),
            "{log}"
        );
    }
}

#[test]
fn client_certificates_are_required_with_a_client_ca() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let serve = serve_tls(dir.path(), &ca, true);
    let ca_file = ca.ca.to_str().unwrap();
    // A round trip with the client certificate of `who` (CN=who), or none.
    let round_trip = |who: Option<&str>| {
        let files = who.map(|name| ca.client(name, name));
        let mut args = vec![
            "round-trip".to_string(),
            "--bootstrap".into(),
            serve.kafka.clone(),
            "--ca".into(),
            ca_file.into(),
            "--topic".into(),
            "mtls".into(),
        ];
        if let Some(f) = &files {
            for (flag, path) in [("--cert", &f.cert), ("--key", &f.key)] {
                args.push(flag.into());
                args.push(path.to_str().unwrap().into());
            }
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        client(&py, &args)
    };
    let got = round_trip(Some("alice")).unwrap();
    assert_eq!(got["values"].as_array().unwrap().len(), 3);
    let refused = round_trip(None);
    assert!(refused.is_err(), "no client certificate: {refused:?}");
    // Another valid certificate authenticates, but its subject is the principal, and
    // no ACL lets CN=mallory write.
    let denied = round_trip(Some("mallory")).unwrap_err();
    assert!(denied.contains("AUTHORIZATION_FAILED"), "{denied}");
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(log.contains("User:CN=mallory"), "{log}");
}

#[test]
fn sighup_rotates_the_certificate_without_a_restart() {
    let Some(py) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(dir.path());
    let mut serve = serve_tls(dir.path(), &ca, false);
    let ca_file = ca.ca.to_str().unwrap();
    let cert_of = |address: &str| {
        client(&py, &["server-cert", "--address", address, "--ca", ca_file]).unwrap()["pem"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let pem_of = |path: &Path| std::fs::read_to_string(path).unwrap();
    let before = cert_of(&serve.kafka);
    assert_eq!(before.trim(), pem_of(&dir.path().join("server.pem")).trim());

    let rotated = ca.server("server"); // the same paths, a new certificate
    serve.notify("-HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut now = cert_of(&serve.kafka);
    while now == before && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        now = cert_of(&serve.kafka);
    }
    assert_eq!(
        now.trim(),
        pem_of(&rotated.cert).trim(),
        "the Kafka listener"
    );
    assert_eq!(
        cert_of(host_port(&serve.http)).trim(),
        pem_of(&rotated.cert).trim(),
        "the HTTP API"
    );
    assert_eq!(serve.terminate(), Some(0));
}
