//! The harness of the client interop tests: finding the clients, an in-process broker
//! on 127.0.0.1:0, bounded subprocesses, and the record specs the scripts produce and
//! compare against.

use std::{
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use herald_broker::{Broker, BrokerConfig, BrokerHandle, NewTopic};
use herald_format::{
    batch::BatchHeader,
    records::{DecodedRecord, decode_batch},
};
use herald_test_support::skip_or_fail;
use serde_json::{Value, json};
use tempfile::TempDir;

/// Exit code of a script whose client library or codec is not installed.
const SKIP_CODE: i32 = 77;

/// Upper bound for one client run; the scripts give up after 30 s on their own.
pub(crate) const CLIENT_TIMEOUT: Duration = Duration::from_secs(45);

/// The clients: a Python with confluent-kafka, kafka-python and aiokafka, and kcat.
pub(crate) use herald_test_support::{kcat, python};

/// A script of tests/clients/.
pub(crate) fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(name)
}

/// Milliseconds since the epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------- broker

/// A broker on 127.0.0.1:0 in a temporary directory, with its own runtime so that
/// tests can block on subprocesses while it serves.
pub(crate) struct TestBroker {
    rt: tokio::runtime::Runtime,
    handle: Option<BrokerHandle>,
    dir: TempDir,
}

impl TestBroker {
    pub(crate) fn start() -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let handle = rt.block_on(Broker::start(Self::config(dir.path())));
        Self {
            rt,
            handle: Some(handle.expect("broker starts")),
            dir,
        }
    }

    fn config(dir: &Path) -> BrokerConfig {
        BrokerConfig::new(dir, "127.0.0.1:0".parse().unwrap())
    }

    fn handle(&self) -> &BrokerHandle {
        self.handle.as_ref().expect("broker running")
    }

    /// `host:port` for `bootstrap.servers`.
    pub(crate) fn bootstrap(&self) -> String {
        self.handle().kafka_addr().to_string()
    }

    pub(crate) fn create_topic(&self, name: &str, partitions: i32) {
        let new = NewTopic {
            name: name.to_string(),
            partitions,
            configs: Default::default(),
        };
        self.rt
            .block_on(self.handle().broker().create_topic(new))
            .unwrap_or_else(|e| panic!("create topic {name}: {e}"));
    }

    /// Graceful shutdown, then a new broker on the same directory (and a new port).
    pub(crate) fn restart(&mut self) {
        let handle = self.handle.take().unwrap();
        self.rt.block_on(handle.shutdown()).expect("clean shutdown");
        let handle = self
            .rt
            .block_on(Broker::start(Self::config(self.dir.path())));
        self.handle = Some(handle.expect("broker restarts on the same directory"));
    }

    /// Every batch of a partition as stored, with its decoded records.
    pub(crate) fn batches(
        &self,
        topic: &str,
        partition: i32,
    ) -> Vec<(BatchHeader, Vec<DecodedRecord>)> {
        let broker = self.handle().broker();
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let read = self
                .rt
                .block_on(broker.read(topic, partition, offset, 1 << 20))
                .unwrap_or_else(|e| panic!("read {topic}-{partition}@{offset}: {e}"));
            let mut bytes = &read.bytes[..];
            if bytes.is_empty() {
                return out;
            }
            while !bytes.is_empty() {
                let header = BatchHeader::parse(bytes).unwrap();
                let len = header.total_len();
                let decoded = decode_batch(&bytes[..len]).unwrap();
                offset = header.last_offset() + 1;
                out.push((header, decoded.records));
                bytes = &bytes[len..];
            }
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            let _ = self.rt.block_on(handle.shutdown());
        }
    }
}

// ---------------------------------------------------------------- subprocesses

/// A client process whose output is collected as it runs. Dropping it kills it, so a
/// failing test leaves nothing behind.
pub(crate) struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<thread::JoinHandle<()>>,
}

/// How a process ended.
pub(crate) struct Finished {
    pub(crate) code: Option<i32>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Proc {
    /// Starts `cmd` with piped stdio; `name` labels its output in failures.
    pub(crate) fn spawn(name: impl Into<String>, mut cmd: Command) -> Self {
        let name = name.into();
        let mut child = cmd
            // No __pycache__ next to the scripts in the source tree.
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {cmd:?}: {e}"));
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let out_buf = stdout.clone();
        let r1 = thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                out_buf.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut err = child.stderr.take().unwrap();
        let err_buf = stderr.clone();
        let r2 = thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut chunk) {
                err_buf
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&chunk[..n]));
            }
        });
        Self {
            name,
            stdin: child.stdin.take(),
            child,
            lines,
            stdout,
            stderr,
            readers: vec![r1, r2],
        }
    }

    /// Everything the process printed so far, for failure messages.
    pub(crate) fn output(&self) -> String {
        format!(
            "--- {} stdout:\n{}--- {} stderr:\n{}",
            self.name,
            self.stdout.lock().unwrap(),
            self.name,
            self.stderr.lock().unwrap()
        )
    }

    /// Writes to its stdin; `None` closes it.
    pub(crate) fn write_stdin(&mut self, data: Option<&[u8]>) {
        match data {
            Some(d) => {
                let stdin = self.stdin.as_mut().expect("stdin open");
                stdin.write_all(d).unwrap();
                stdin.flush().unwrap();
            }
            None => drop(self.stdin.take()),
        }
    }

    /// A stdout line already printed, without waiting.
    pub(crate) fn try_line(&self) -> Option<String> {
        self.lines.try_recv().ok()
    }

    /// SIGKILL.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; past `timeout` kills it and fails the test with
    /// its output.
    pub(crate) fn wait(mut self, timeout: Duration) -> Finished {
        drop(self.stdin.take());
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                self.kill();
                panic!(
                    "{} did not finish within {timeout:?}; killed it\n{}",
                    self.name,
                    self.output()
                );
            }
            thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        Finished {
            code: status.code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.kill();
        }
    }
}

/// Runs a script of tests/clients/ to completion and returns its last stdout line as
/// JSON. `None`: the script reported a missing library or codec and skipping is allowed.
pub(crate) fn run_script(python: &Path, name: &str, args: &[&str]) -> Option<Value> {
    let label = format!("{name} {}", args.join(" "));
    let mut cmd = Command::new(python);
    cmd.arg(script(name)).args(args);
    let done = Proc::spawn(label.clone(), cmd).wait(CLIENT_TIMEOUT);
    script_result(&label, done)
}

/// Interprets a finished script: JSON result, skip, or a failure with its output.
pub(crate) fn script_result(label: &str, done: Finished) -> Option<Value> {
    match done.code {
        Some(0) => {}
        Some(SKIP_CODE) => {
            return skip_or_fail(format!("{label}: {}", done.stderr.trim()));
        }
        code => panic!(
            "{label} failed (exit {code:?})\n--- stdout:\n{}--- stderr:\n{}",
            done.stdout, done.stderr
        ),
    }
    let last = done.stdout.lines().last().unwrap_or_default();
    Some(serde_json::from_str(last).unwrap_or_else(|e| {
        panic!(
            "{label}: last stdout line is not JSON ({e}): {last:?}\n{}",
            done.stderr
        )
    }))
}

// ---------------------------------------------------------------- record specs

/// One record as the scripts produce it and expect to read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpecRecord {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) value: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Option<Vec<u8>>)>,
    pub(crate) timestamp: i64,
}

/// First timestamp of the generated specs (2023-11-14).
pub(crate) const BASE_TS: i64 = 1_700_000_000_000;

/// Whether a client can send a header with a null value (kafka-python and aiokafka
/// refuse one in `send`, though they read them).
pub(crate) fn sends_null_headers(client: &str) -> bool {
    client == "confluent"
}

/// [`spec`] without what `client` cannot send.
pub(crate) fn spec_for(client: &str, n: usize, partitions: i32, binary: bool) -> Vec<SpecRecord> {
    let mut recs = spec(n, partitions, binary);
    if !sends_null_headers(client) {
        for r in &mut recs {
            r.headers.retain(|(_, v)| v.is_some());
        }
    }
    recs
}

/// `n` records over `partitions` partitions (record `i` to partition `i % partitions`)
/// that exercise what clients get wrong: a null key, a null value (tombstone), an empty
/// value, multi-byte UTF-8, duplicate header keys, empty and null header values, a
/// timestamp older than the record before it, and with `binary` non-UTF-8 keys, values
/// and header values.
pub(crate) fn spec(n: usize, partitions: i32, binary: bool) -> Vec<SpecRecord> {
    let mut next = vec![0i64; partitions as usize];
    (0..n)
        .map(|i| {
            let partition = (i % partitions as usize) as i32;
            let offset = next[partition as usize];
            next[partition as usize] += 1;
            let key = match i % 5 {
                4 => None,
                1 if binary => Some(vec![0, 0xff, i as u8, 0x80]),
                _ => Some(format!("key-{i}").into_bytes()),
            };
            let value = match i {
                7 => None,
                3 => Some(Vec::new()),
                _ if binary && i % 4 == 1 => Some((0..=255u8).chain([i as u8]).collect()),
                _ => Some(format!("värde {i} ✓ {}", "x".repeat(i * 13 % 200)).into_bytes()),
            };
            let headers = match i % 3 {
                0 => Vec::new(),
                1 => vec![
                    ("trace-id".to_string(), Some(format!("t-{i}").into_bytes())),
                    ("dup".to_string(), Some(b"a".to_vec())),
                    ("dup".to_string(), Some(b"b".to_vec())),
                ],
                _ => {
                    let mut h = vec![
                        ("empty".to_string(), Some(Vec::new())),
                        ("gone".to_string(), None),
                    ];
                    if binary {
                        h.push(("bin".to_string(), Some(vec![0, 1, 0xfe, 0xff])));
                    }
                    h
                }
            };
            let timestamp = if i == 5 {
                BASE_TS - 60_000
            } else {
                BASE_TS + i as i64 * 1000
            };
            SpecRecord {
                partition,
                offset,
                key,
                value,
                headers,
                timestamp,
            }
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn opt_hex(bytes: &Option<Vec<u8>>) -> Value {
    bytes
        .as_deref()
        .map_or(Value::Null, |b| Value::String(hex(b)))
}

impl SpecRecord {
    fn to_json(&self) -> Value {
        json!({
            "partition": self.partition,
            "offset": self.offset,
            "key": opt_hex(&self.key),
            "value": opt_hex(&self.value),
            "headers": self.headers.iter().map(|(k, v)| json!([k, opt_hex(v)])).collect::<Vec<_>>(),
            "timestamp": self.timestamp,
        })
    }

    /// The record as the broker stored it.
    pub(crate) fn from_stored(partition: i32, r: &DecodedRecord) -> Self {
        Self {
            partition,
            offset: r.offset,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            timestamp: r.timestamp,
        }
    }
}

/// Writes a spec where the scripts can read it.
pub(crate) fn write_spec(dir: &Path, name: &str, recs: &[SpecRecord]) -> PathBuf {
    let path = dir.join(format!("{name}.json"));
    let json = Value::Array(recs.iter().map(SpecRecord::to_json).collect());
    std::fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    path
}

/// What the broker stored in every partition of a topic, in (partition, offset) order.
pub(crate) fn stored(broker: &TestBroker, topic: &str, partitions: i32) -> Vec<SpecRecord> {
    (0..partitions)
        .flat_map(|p| {
            broker
                .batches(topic, p)
                .into_iter()
                .flat_map(move |(_, recs)| {
                    recs.into_iter()
                        .map(move |r| SpecRecord::from_stored(p, &r))
                })
        })
        .collect()
}

/// Sorts by (partition, offset), the order `stored` returns.
pub(crate) fn by_position(mut recs: Vec<SpecRecord>) -> Vec<SpecRecord> {
    recs.sort_by_key(|r| (r.partition, r.offset));
    recs
}

/// Asserts a produce script's delivery reports: each record at its spec's partition,
/// offset and timestamp.
pub(crate) fn assert_delivered(client: &str, result: &Value, recs: &[SpecRecord]) {
    let delivered = result["delivered"].as_array().expect("delivered list");
    assert_eq!(delivered.len(), recs.len(), "{client}: delivery reports");
    for (i, (d, r)) in delivered.iter().zip(recs).enumerate() {
        assert_eq!(
            (d["partition"].as_i64(), d["offset"].as_i64()),
            (Some(r.partition as i64), Some(r.offset)),
            "{client}: delivery report of record {i}"
        );
        // aiokafka 0.14 reports the first record's timestamp for every record of a batch
        // (MessageBatch.done reuses the variable); what it wrote is checked on reading.
        if client != "aiokafka" {
            assert_eq!(
                d["timestamp"].as_i64(),
                Some(r.timestamp),
                "{client}: delivery report timestamp of record {i}"
            );
        }
    }
}
