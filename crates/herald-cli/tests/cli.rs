//! The `herald` binary as a user runs it: `herald serve` on port 0 in a temporary
//! directory, the client commands against it, graceful shutdown on SIGTERM, restart, the
//! configuration sources, and the exit codes of mistakes.

use std::{
    io::{BufRead, BufReader},
    ops::{Deref, DerefMut},
    path::Path,
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use herald_test_support::{HeraldServe, PORT_0, herald_command, output_within};

const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// The binary with none of the test's `HERALD_*` variables: every test starts without
/// a developer's configuration.
fn herald() -> Command {
    herald_command(HERALD)
}

/// A running `herald serve` and the client commands run against it; killed if the test
/// ends without stopping it.
struct Serve(HeraldServe);

impl Serve {
    /// Starts `herald serve ARGS` and waits for its ready line.
    fn start(args: &[&str], env: &[(&str, &str)], log: &Path) -> Serve {
        let mut cmd = herald();
        cmd.arg("serve").args(args).envs(env.iter().copied());
        Serve(HeraldServe::spawn(cmd, log))
    }

    /// Runs a client command against this broker.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        run(herald().args(args).env("HERALD_SERVER", &self.http), stdin)
    }

    /// Runs a client command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.run(args, stdin);
        assert!(
            out.status.success(),
            "herald {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Deref for Serve {
    type Target = HeraldServe;
    fn deref(&self) -> &HeraldServe {
        &self.0
    }
}

impl DerefMut for Serve {
    fn deref_mut(&mut self) -> &mut HeraldServe {
        &mut self.0
    }
}

/// Runs a command with optional stdin, bounded in time.
fn run(cmd: &mut Command, stdin: Option<&str>) -> Output {
    output_within(cmd, stdin.map(str::as_bytes), Duration::from_secs(60))
}

fn port0(dir: &Path) -> Vec<String> {
    let mut args = vec!["--data-dir".into(), dir.join("data").display().to_string()];
    args.extend(PORT_0.map(String::from));
    args
}
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn help_works_and_mistakes_exit_2() {
    let out = run(herald().arg("--help"), None);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    for cmd in ["serve", "topics", "groups", "produce", "tail"] {
        assert!(help.contains(cmd), "{cmd} missing from --help:\n{help}");
    }
    let out = run(herald().args(["serve", "--help"]), None);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("--kafka-listen") && help.contains("HERALD_DATA_DIR"),
        "{help}"
    );

    let out = run(herald().args(["serve", "--no-such-flag"]), None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-flag"));
    let out = run(herald().args(["serve", "--kafka-listen", "nowhere"]), None);
    assert_eq!(out.status.code(), Some(2));
    let out = run(herald().arg("frobnicate"), None);
    assert_eq!(out.status.code(), Some(2));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    std::fs::write(&config, "data_dri = \"typo\"\n").unwrap();
    let out = run(
        herald().args(["serve", "--config", config.to_str().unwrap()]),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data_dri"));
    let out = run(
        herald().arg("serve").env("HERALD_NODE_ID", "minus one"),
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HERALD_NODE_ID"));
}

#[test]
fn no_broker_at_the_server_url_says_how_to_start_one() {
    // Port 9 (discard) is not served on loopback here.
    let out = run(
        herald().args(["topics", "list", "--server", "http://127.0.0.1:9"]),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no herald at") && err.contains("herald serve"),
        "{err}"
    );
}

#[test]
fn serve_topics_produce_tail_stop_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = port0(dir.path());
    let log = dir.path().join("serve.log");
    let mut s = Serve::start(&strs(&args), &[], &log);

    assert!(
        s.ok(&["topics", "create", "demo", "--partitions", "2"], None)
            .contains("demo")
    );
    s.ok(
        &[
            "topics",
            "create",
            "scratch",
            "--config",
            "retention.ms=60000",
        ],
        None,
    );
    let list = s.ok(&["topics", "list"], None);
    assert!(list.contains("demo") && list.contains("scratch"), "{list}");
    let json: serde_json::Value =
        serde_json::from_str(&s.ok(&["topics", "list", "--output", "json"], None)).unwrap();
    assert_eq!(json["topics"].as_array().unwrap().len(), 2);
    let described = s.ok(&["topics", "describe", "scratch"], None);
    assert!(
        described.contains("retention.ms") && described.contains("60000"),
        "{described}"
    );
    s.ok(&["topics", "delete", "scratch"], None);
    assert!(!s.ok(&["topics", "list"], None).contains("scratch"));
    let missing = s.run(&["topics", "describe", "scratch"], None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("unknown topic"));

    s.ok(&["produce", "demo"], Some("first\nsecond\nthird\n"));
    let one = s.ok(
        &[
            "produce", "demo", "--key", "k1", "--header", "src=cli", "keyed",
        ],
        None,
    );
    assert!(one.contains("offset"), "{one}");
    let tail = s.ok(&["tail", "demo", "--from-beginning"], None);
    for value in ["first", "second", "third", "keyed", "key=k1", "src=cli"] {
        assert!(tail.contains(value), "{value} missing from tail:\n{tail}");
    }
    assert_eq!(tail.lines().count(), 4, "{tail}");

    // --follow prints records as they arrive.
    let mut follow = herald()
        .args([
            "tail",
            "demo",
            "--partition",
            "0",
            "--follow",
            "--output",
            "json",
        ])
        .env("HERALD_SERVER", &s.http)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = follow.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    s.ok(&["produce", "demo", "--partition", "0", "followed"], None);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = false;
    while !seen && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen = line.contains("followed");
        }
    }
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(seen, "tail --follow printed the new record");

    assert!(
        s.ok(&["groups", "list", "--output", "json"], None)
            .contains("groups")
    );
    let unknown = s.run(&["groups", "describe", "nobody"], None);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown consumer group"));

    assert_eq!(s.terminate(), Some(0), "SIGTERM is a clean exit");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(log_text.contains("herald stopped"), "{log_text}");

    let mut s = Serve::start(&strs(&args), &[], &log);
    let tail = s.ok(
        &["tail", "demo", "--from-beginning", "--output", "json"],
        None,
    );
    let values: Vec<String> = tail
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["value"].to_string())
        .collect();
    assert_eq!(values.len(), 5, "records survive a restart: {tail}");
    assert_eq!(s.signal("-INT"), Some(0), "Ctrl-C is a clean exit too");
}

#[test]
fn a_second_herald_on_the_same_data_dir_or_port_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let args = port0(dir.path());
    let mut s = Serve::start(&strs(&args), &[], &dir.path().join("first.log"));

    let out = run(herald().arg("serve").args(&args), None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&dir.path().join("data").display().to_string()),
        "{err}"
    );

    let other = dir.path().join("other");
    let out = run(
        herald().args([
            "serve",
            "--data-dir",
            other.to_str().unwrap(),
            "--http-listen",
            "127.0.0.1:0",
            "--registry-listen",
            "127.0.0.1:0",
            "--kafka-listen",
            &s.kafka,
        ]),
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is another herald running"), "{err}");
    assert_eq!(s.terminate(), Some(0));
}

#[test]
fn embedded_and_serve_data_dirs_refuse_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let embedded = dir.path().join("embedded");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        drop(herald::EmbeddedTransport::open(&embedded).unwrap());
    });
    let mut args = vec!["serve", "--data-dir", embedded.to_str().unwrap()];
    args.extend(PORT_0);
    let out = run(herald().args(&args), None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is an EmbeddedTransport data directory"),
        "{err}"
    );
    assert!(err.contains("--data-dir"), "{err}");
    assert!(
        !embedded.join("herald.lock").exists() && !embedded.join("broker").exists(),
        "herald serve changed nothing"
    );

    let served = port0(dir.path());
    let mut s = Serve::start(&strs(&served), &[], &dir.path().join("serve.log"));
    assert_eq!(s.terminate(), Some(0));
    let e = runtime
        .block_on(async { herald::EmbeddedTransport::open(dir.path().join("data")).map(drop) })
        .unwrap_err();
    assert!(
        e.to_string().contains("is a `herald serve` data directory"),
        "{e}"
    );
    assert!(!dir.path().join("data").join("topics.meta").exists());
}

#[test]
fn the_config_file_and_herald_env_are_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("herald.toml");
    let file_dir = dir.path().join("from-file");
    let env_dir = dir.path().join("from-env");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nkafka_listen = \"127.0.0.1:0\"\nhttp_listen = \"127.0.0.1:0\"\n\
             registry_listen = \"127.0.0.1:0\"\n\
             default_partitions = 3\n[default_topic_config]\nretention_ms = 5000\n",
            file_dir.display().to_string()
        ),
    )
    .unwrap();
    let mut s = Serve::start(
        &["--config", config.to_str().unwrap()],
        &[
            ("HERALD_DATA_DIR", env_dir.to_str().unwrap()),
            ("HERALD_DEFAULT_TOPIC_CONFIG_RETENTION_MS", "12345"),
        ],
        &dir.path().join("serve.log"),
    );
    s.ok(&["topics", "create", "configured"], None);
    let json: serde_json::Value = serde_json::from_str(&s.ok(
        &["topics", "describe", "configured", "--output", "json"],
        None,
    ))
    .unwrap();
    assert_eq!(
        json["partition_count"], 3,
        "default_partitions from the file"
    );
    assert_eq!(
        json["configs"]["retention.ms"]["value"], "12345",
        "the environment beats the file"
    );
    assert!(
        env_dir.join("herald.lock").exists(),
        "HERALD_DATA_DIR beats data_dir"
    );
    assert!(!file_dir.exists());
    assert_eq!(s.terminate(), Some(0));
}

#[test]
fn serve_raises_a_low_open_file_limit_and_logs_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    // A shell with the common low soft limit, then herald serve in its place.
    let mut cmd = herald_command("sh");
    cmd.args([
        "-c",
        "ulimit -Sn 256 && exec \"$0\" \"$@\"",
        HERALD,
        "serve",
    ])
    .arg("--data-dir")
    .arg(dir.path().join("data"))
    .args(PORT_0);
    let mut serve = HeraldServe::spawn(cmd, &dir.path().join("serve.log"));
    assert_eq!(serve.terminate(), Some(0));
    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("open-file limit (RLIMIT_NOFILE) raised"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("before=256"), "{line}");
    assert!(!line.contains("open_files=256 "), "raised: {line}");
    assert!(log.contains("descriptor budget"), "{log}");
}
