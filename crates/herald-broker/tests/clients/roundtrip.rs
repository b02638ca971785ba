//! Each client produces records with keys, headers and timestamps and reads them back
//! exactly; records written by one client are read exactly by every other.

use std::{path::Path, process::Command};

use serde_json::Value;

use crate::support::{
    CLIENT_TIMEOUT, Proc, SpecRecord, TestBroker, assert_delivered, by_position, kcat, now_ms,
    python, run_script, script, script_result, spec_for, stored, write_spec,
};

/// The Python clients, by the name produce.py and consume.py take.
const PY_CLIENTS: [&str; 3] = ["confluent", "kafka-python", "aiokafka"];

fn round_trip(client: &str) {
    let Some(py) = python() else { return };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    broker.create_topic("rt", 2);
    let recs = spec_for(client, 24, 2, true);
    let path = write_spec(dir.path(), "rt", &recs);
    let path = path.to_str().unwrap();
    let common = [
        "--client",
        client,
        "--bootstrap",
        &bootstrap,
        "--topic",
        "rt",
    ];
    let Some(result) = run_script(
        &py,
        "produce.py",
        &[&common[..], &["--spec", path]].concat(),
    ) else {
        return;
    };
    assert_delivered(client, &result, &recs);
    assert_eq!(
        stored(&broker, "rt", 2),
        by_position(recs.clone()),
        "{client}: the broker stores exactly what was sent"
    );
    let args = [&common[..], &["--expect", path, "--partitions", "2"]].concat();
    let Some(result) = run_script(&py, "consume.py", &args) else {
        return;
    };
    assert_eq!(result["records"].as_array().unwrap().len(), recs.len());
}

#[test]
fn confluent_kafka_round_trips_keys_values_headers_timestamps() {
    round_trip("confluent");
}

#[test]
fn kafka_python_round_trips_keys_values_headers_timestamps() {
    round_trip("kafka-python");
}

#[test]
fn aiokafka_round_trips_keys_values_headers_timestamps() {
    round_trip("aiokafka");
}

/// kcat's producer input: `key:value` lines, with an empty side meaning null (`-Z`).
const KCAT_LINES: [&str; 8] = [
    "k0:v0",
    "k1:värde ✓",
    "k2:",
    ":v3",
    "k4:{\"json\": [1, 2]}",
    "k5:v5",
    "k6:v6",
    "k7:v7",
];

/// A record's key and value; `None` is null.
type KeyValue = (Option<Vec<u8>>, Option<Vec<u8>>);

/// The records KCAT_LINES become, without timestamps.
fn kcat_expected() -> Vec<KeyValue> {
    let side = |s: &str| (!s.is_empty()).then(|| s.as_bytes().to_vec());
    KCAT_LINES
        .iter()
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (side(k), side(v))
        })
        .collect()
}

const KCAT_HEADERS: [(&str, &str); 3] = [("source", "kcat"), ("dup", "1"), ("dup", "2")];

fn kcat_produce(kcat: &Path, bootstrap: &str, topic: &str) {
    let mut cmd = Command::new(kcat);
    cmd.args([
        "-P", "-b", bootstrap, "-t", topic, "-p", "0", "-K", ":", "-Z",
    ])
    .args(["-X", "acks=all", "-X", "linger.ms=20"]);
    for (k, v) in KCAT_HEADERS {
        cmd.args(["-H", &format!("{k}={v}")]);
    }
    let mut p = Proc::spawn(format!("kcat -P -t {topic}"), cmd);
    p.write_stdin(Some(format!("{}\n", KCAT_LINES.join("\n")).as_bytes()));
    let done = p.wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "kcat -P failed:\n{}", done.stderr);
}

/// Reads every partition of a topic with `kcat -C -J` until the end.
fn kcat_read(kcat: &Path, bootstrap: &str, topic: &str) -> Vec<(SpecRecord, String)> {
    let mut cmd = Command::new(kcat);
    cmd.args([
        "-C",
        "-b",
        bootstrap,
        "-t",
        topic,
        "-o",
        "beginning",
        "-e",
        "-J",
        "-q",
    ]);
    let done = Proc::spawn(format!("kcat -C -t {topic}"), cmd).wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "kcat -C failed:\n{}", done.stderr);
    let text = |v: &Value| v.as_str().map(|s| s.as_bytes().to_vec());
    let recs = done
        .stdout
        .lines()
        .map(|line| {
            let j: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("kcat -J printed {line:?}: {e}"));
            let headers = j["headers"].as_array().cloned().unwrap_or_default();
            let rec = SpecRecord {
                partition: j["partition"].as_i64().unwrap() as i32,
                offset: j["offset"].as_i64().unwrap(),
                key: text(&j["key"]),
                value: text(&j["payload"]),
                headers: headers
                    .chunks(2)
                    .map(|kv| (kv[0].as_str().unwrap().to_string(), text(&kv[1])))
                    .collect(),
                timestamp: j["ts"].as_i64().unwrap(),
            };
            (rec, j["tstype"].as_str().unwrap_or_default().to_string())
        })
        .collect();
    by_position_typed(recs)
}

fn by_position_typed(mut recs: Vec<(SpecRecord, String)>) -> Vec<(SpecRecord, String)> {
    recs.sort_by_key(|(r, _)| (r.partition, r.offset));
    recs
}

/// `kcat -Q`: the offset ListOffsets gives for a timestamp.
fn kcat_offset_for(kcat: &Path, bootstrap: &str, topic: &str, ts: i64) -> i64 {
    let mut cmd = Command::new(kcat);
    cmd.args(["-Q", "-b", bootstrap, "-t", &format!("{topic}:0:{ts}")]);
    let done = Proc::spawn("kcat -Q", cmd).wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "kcat -Q failed:\n{}", done.stderr);
    // "<topic> [0]  offset <n>"
    let out = done.stdout.trim();
    out.rsplit_once("offset")
        .and_then(|(_, n)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("kcat -Q printed {out:?}"))
}

#[test]
fn kcat_produces_and_consumes_keys_values_headers_timestamps() {
    let Some(kcat) = kcat() else { return };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    broker.create_topic("kcat", 1);
    let t0 = now_ms();
    kcat_produce(&kcat, &bootstrap, "kcat");
    let t1 = now_ms();

    let read = kcat_read(&kcat, &bootstrap, "kcat");
    let expected = kcat_expected();
    assert_eq!(read.len(), expected.len(), "kcat read back {read:?}");
    for (i, ((r, tstype), (key, value))) in read.iter().zip(&expected).enumerate() {
        assert_eq!(r.offset, i as i64);
        assert_eq!((&r.key, &r.value), (key, value), "record {i}");
        let headers: Vec<_> = KCAT_HEADERS
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.as_bytes().to_vec())))
            .collect();
        assert_eq!(
            r.headers, headers,
            "record {i}: headers in order, duplicates kept"
        );
        assert_eq!(tstype, "create", "record {i}");
        assert!(
            (t0..=t1).contains(&r.timestamp),
            "record {i}: ts {} not in [{t0}, {t1}]",
            r.timestamp
        );
    }
    let recs: Vec<SpecRecord> = read.iter().map(|(r, _)| r.clone()).collect();
    assert_eq!(
        stored(&broker, "kcat", 1),
        recs,
        "kcat reads what the broker stored"
    );

    // ListOffsets by timestamp: the first offset whose timestamp is at or after it.
    for probe in [3usize, 6] {
        let ts = recs[probe].timestamp;
        let want = recs.iter().position(|r| r.timestamp >= ts).unwrap() as i64;
        assert_eq!(
            kcat_offset_for(&kcat, &bootstrap, "kcat", ts),
            want,
            "ts of record {probe}"
        );
    }
    assert_eq!(
        kcat_offset_for(&kcat, &bootstrap, "kcat", -1),
        recs.len() as i64,
        "latest"
    );
    assert_eq!(
        kcat_offset_for(&kcat, &bootstrap, "kcat", -2),
        0,
        "earliest"
    );
}

#[test]
fn records_produced_by_one_client_are_read_exactly_by_every_other() {
    let (Some(py), Some(kcat)) = (python(), kcat()) else {
        return;
    };
    let broker = TestBroker::start();
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir().unwrap();
    let mut topics = Vec::new();
    for producer in PY_CLIENTS {
        // Text only, so that kcat's JSON output can carry it.
        let recs = spec_for(producer, 12, 2, false);
        let topic = format!("from-{producer}");
        broker.create_topic(&topic, 2);
        let path = write_spec(dir.path(), &topic, &recs);
        let args = [
            "--client",
            producer,
            "--bootstrap",
            &bootstrap,
            "--topic",
            &topic,
            "--spec",
            path.to_str().unwrap(),
        ];
        let Some(result) = run_script(&py, "produce.py", &args) else {
            return;
        };
        assert_delivered(producer, &result, &recs);
        assert_eq!(
            stored(&broker, &topic, 2),
            by_position(recs.clone()),
            "{producer}"
        );
        topics.push((topic, path, 2));
    }
    broker.create_topic("from-kcat", 1);
    kcat_produce(&kcat, &bootstrap, "from-kcat");
    let from_kcat = stored(&broker, "from-kcat", 1);
    assert_eq!(from_kcat.len(), KCAT_LINES.len());
    topics.push((
        "from-kcat".to_string(),
        write_spec(dir.path(), "from-kcat", &from_kcat),
        1,
    ));

    for (topic, path, partitions) in &topics {
        let consumers: Vec<_> = PY_CLIENTS
            .iter()
            .map(|consumer| {
                let mut cmd = Command::new(&py);
                cmd.arg(script("consume.py")).args([
                    "--client",
                    consumer,
                    "--bootstrap",
                    &bootstrap,
                    "--topic",
                    topic,
                    "--expect",
                    path.to_str().unwrap(),
                    "--partitions",
                    &partitions.to_string(),
                ]);
                let label = format!("consume.py --client {consumer} --topic {topic}");
                (label.clone(), Proc::spawn(label, cmd))
            })
            .collect();
        let expected = stored(&broker, topic, *partitions);
        let read: Vec<_> = kcat_read(&kcat, &bootstrap, topic)
            .into_iter()
            .map(|(r, tstype)| {
                assert_eq!(tstype, "create");
                r
            })
            .collect();
        assert_eq!(read, expected, "kcat reads {topic} exactly");
        for (label, p) in consumers {
            if script_result(&label, p.wait(CLIENT_TIMEOUT)).is_none() {
                return;
            }
        }
    }
}
