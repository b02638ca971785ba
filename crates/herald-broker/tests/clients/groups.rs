//! Consumer groups with confluent-kafka (librdkafka's classic group protocol): members
//! split partitions, survivors take over when a member leaves or dies, and committed
//! offsets survive a broker restart.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::support::{
    CLIENT_TIMEOUT, Proc, TestBroker, assert_delivered, python, run_script, script, script_result,
    spec, write_spec,
};

/// The members' `session.timeout.ms` (the coordinator's minimum is 6 s, as in Kafka).
const SESSION_TIMEOUT: Duration = Duration::from_secs(6);
/// Upper bound for a group to form: the initial rebalance delay (3 s) plus client start.
const FORM_TIMEOUT: Duration = Duration::from_secs(30);

/// A group_member.py process, the assignment it last reported and how many times it
/// was assigned or revoked partitions.
struct Member {
    name: &'static str,
    proc: Proc,
    assigned: Vec<i32>,
    rebalances: usize,
}

impl Member {
    fn start(py: &Path, bootstrap: &str, group: &str, topic: &str, name: &'static str) -> Self {
        Self::spawn(py, bootstrap, group, topic, name, None)
    }

    /// A static member (`group.instance.id` = `instance`).
    fn start_static(
        py: &Path,
        bootstrap: &str,
        group: &str,
        topic: &str,
        name: &'static str,
        instance: &str,
    ) -> Self {
        Self::spawn(py, bootstrap, group, topic, name, Some(instance))
    }

    fn spawn(
        py: &Path,
        bootstrap: &str,
        group: &str,
        topic: &str,
        name: &'static str,
        instance: Option<&str>,
    ) -> Self {
        let mut cmd = Command::new(py);
        cmd.arg(script("group_member.py")).args([
            "--bootstrap",
            bootstrap,
            "--group",
            group,
            "--topic",
            topic,
            "--session-timeout-ms",
            &SESSION_TIMEOUT.as_millis().to_string(),
        ]);
        if let Some(instance) = instance {
            cmd.args(["--instance-id", instance]);
        }
        Self {
            name,
            proc: Proc::spawn(format!("group member {name}"), cmd),
            assigned: Vec::new(),
            rebalances: 0,
        }
    }

    /// Applies the events printed so far.
    fn drain(&mut self) {
        while let Some(line) = self.proc.try_line() {
            let event: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: bad event {line:?}: {e}", self.name));
            let parts = || -> Vec<i32> {
                event["partitions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_i64().unwrap() as i32)
                    .collect()
            };
            match event["event"].as_str() {
                Some("assigned") => {
                    self.assigned = parts();
                    self.rebalances += 1;
                }
                Some("revoked") => {
                    self.assigned.clear();
                    self.rebalances += 1;
                }
                _ => {}
            }
        }
    }
}

/// Waits until `cond` holds for the members' assignments; returns how long it took.
fn wait_for(
    members: &mut [&mut Member],
    within: Duration,
    what: &str,
    cond: impl Fn(&[Vec<i32>]) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        for m in members.iter_mut() {
            m.drain();
        }
        let assigned: Vec<Vec<i32>> = members.iter().map(|m| m.assigned.clone()).collect();
        if cond(&assigned) {
            return start.elapsed();
        }
        if start.elapsed() > within {
            let outputs: Vec<String> = members.iter().map(|m| m.proc.output()).collect();
            panic!(
                "not within {within:?}: {what}; assignments {assigned:?}\n{}",
                outputs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn split_evenly(a: &[Vec<i32>]) -> bool {
    let all: BTreeSet<i32> = a.iter().flatten().copied().collect();
    a.iter().all(|p| p.len() == 3) && all == (0..6).collect()
}

fn owns_all(a: &[Vec<i32>]) -> bool {
    a[0] == (0..6).collect::<Vec<_>>()
}

/// Two members of one group on a six-partition topic, split three and three.
fn two_members(broker: &TestBroker, py: &Path, group: &str) -> (Member, Member) {
    broker.create_topic(group, 6);
    let bootstrap = broker.bootstrap();
    let mut a = Member::start(py, &bootstrap, group, group, "a");
    let mut b = Member::start(py, &bootstrap, group, group, "b");
    let took = wait_for(
        &mut [&mut a, &mut b],
        FORM_TIMEOUT,
        "3 + 3 partitions",
        split_evenly,
    );
    eprintln!("{group}: two members split 6 partitions after {took:?}");
    (a, b)
}

#[test]
fn two_consumers_split_six_partitions_and_the_survivor_takes_all_when_one_closes() {
    let Some(py) = python() else { return };
    let broker = TestBroker::start();
    let (mut a, mut b) = two_members(&broker, &py, "closes");
    b.proc.write_stdin(Some(b"close\n"));
    let took = wait_for(
        &mut [&mut a],
        SESSION_TIMEOUT,
        "the survivor owns all 6 partitions within the session timeout",
        owns_all,
    );
    eprintln!("closes: survivor owns all 6 partitions {took:?} after the other closed");
    let done = b.proc.wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "member b:\n{}", done.stderr);
    assert!(done.stdout.contains("\"closed\""));
    a.proc.write_stdin(Some(b"close\n"));
    let done = a.proc.wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "member a:\n{}", done.stderr);
}

#[test]
fn two_consumers_split_six_partitions_and_the_survivor_takes_all_when_one_is_killed() {
    let Some(py) = python() else { return };
    let broker = TestBroker::start();
    let (mut a, mut b) = two_members(&broker, &py, "killed");
    b.proc.kill(); // SIGKILL: no LeaveGroup, only the session timeout can tell.
    let took = wait_for(
        &mut [&mut a],
        SESSION_TIMEOUT + Duration::from_secs(15),
        "the survivor owns all 6 partitions after the session timeout",
        owns_all,
    );
    eprintln!(
        "killed: survivor owns all 6 partitions {took:?} after SIGKILL (session timeout {SESSION_TIMEOUT:?})"
    );
    a.proc.write_stdin(Some(b"close\n"));
    let done = a.proc.wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "member a:\n{}", done.stderr);
}

#[test]
fn a_static_member_restarting_within_its_session_gets_its_partitions_back_without_a_rebalance() {
    let Some(py) = python() else { return };
    let broker = TestBroker::start();
    let (group, bootstrap) = ("static", broker.bootstrap());
    broker.create_topic(group, 6);
    let mut a = Member::start_static(&py, &bootstrap, group, group, "a", "app-a");
    let mut b = Member::start_static(&py, &bootstrap, group, group, "b", "app-b");
    wait_for(
        &mut [&mut a, &mut b],
        FORM_TIMEOUT,
        "3 + 3 partitions",
        split_evenly,
    );
    let (a_before, b_partitions) = (a.rebalances, b.assigned.clone());

    // A static member closes without LeaveGroup; its replacement, same instance id,
    // comes back well within the session timeout, as in a rolling restart.
    b.proc.write_stdin(Some(b"close\n"));
    let done = b.proc.wait(CLIENT_TIMEOUT);
    assert_eq!(done.code, Some(0), "member b:\n{}", done.stderr);
    let mut b2 = Member::start_static(&py, &bootstrap, group, group, "b2", "app-b");
    wait_for(
        &mut [&mut b2],
        SESSION_TIMEOUT,
        "the restarted member gets its partitions back",
        |a| a[0] == b_partitions,
    );
    // Long enough for a rebalance that was started to reach the other member.
    std::thread::sleep(Duration::from_secs(2));
    a.drain();
    assert_eq!(
        a.rebalances,
        a_before,
        "the other member was neither revoked nor reassigned:\n{}",
        a.proc.output()
    );
    for mut m in [a, b2] {
        m.proc.write_stdin(Some(b"close\n"));
        let done = m.proc.wait(CLIENT_TIMEOUT);
        assert_eq!(done.code, Some(0), "member {}:\n{}", m.name, done.stderr);
    }
}

/// What a group_member.py --consume run read and committed.
struct Consumed {
    /// (partition, offset) of each record, in the order read.
    records: Vec<(i32, i64)>,
    /// Partition to committed offset, as the consumer saw it before closing.
    committed: BTreeMap<i32, i64>,
}

/// Runs group_member.py --consume `n` to completion.
fn consume_and_commit(
    py: &Path,
    bootstrap: &str,
    group: &str,
    topic: &str,
    n: usize,
) -> Option<Consumed> {
    let args = [
        "--bootstrap",
        bootstrap,
        "--group",
        group,
        "--topic",
        topic,
        "--consume",
        &n.to_string(),
    ];
    let mut cmd = Command::new(py);
    cmd.arg(script("group_member.py")).args(args);
    let label = format!("group_member.py --consume {n}");
    let done = Proc::spawn(label.clone(), cmd).wait(Duration::from_secs(55));
    let stdout = done.stdout.clone();
    script_result(&label, done)?;
    let mut records = Vec::new();
    let mut committed = BTreeMap::new();
    for line in stdout.lines() {
        let e: Value = serde_json::from_str(line).unwrap();
        match e["event"].as_str() {
            Some("record") => records.push((
                e["partition"].as_i64().unwrap() as i32,
                e["offset"].as_i64().unwrap(),
            )),
            Some("committed") => {
                for (p, o) in e["offsets"].as_object().unwrap() {
                    committed.insert(p.parse().unwrap(), o.as_i64().unwrap());
                }
            }
            _ => {}
        }
    }
    assert_eq!(records.len(), n, "{label}: records read\n{stdout}");
    Some(Consumed { records, committed })
}

#[test]
fn committed_offsets_survive_a_broker_restart() {
    let Some(py) = python() else { return };
    let mut broker = TestBroker::start();
    let topic = "resume";
    broker.create_topic(topic, 6);
    let dir = tempfile::tempdir().unwrap();
    let recs = spec(60, 6, false);
    let path = write_spec(dir.path(), topic, &recs);
    let bootstrap = broker.bootstrap();
    let produce = [
        "--client",
        "confluent",
        "--bootstrap",
        &bootstrap,
        "--topic",
        topic,
        "--spec",
        path.to_str().unwrap(),
    ];
    let Some(result) = run_script(&py, "produce.py", &produce) else {
        return;
    };
    assert_delivered("confluent", &result, &recs);

    let Some(Consumed {
        records: first,
        committed,
    }) = consume_and_commit(&py, &bootstrap, "g", topic, 25)
    else {
        return;
    };
    // Each partition's committed offset is one past the last record read from it.
    let mut last = BTreeMap::new();
    for &(p, o) in &first {
        last.insert(p, o + 1);
    }
    for (p, next) in &last {
        assert_eq!(
            committed.get(p),
            Some(next),
            "committed offset of partition {p}"
        );
    }

    broker.restart();
    let bootstrap = broker.bootstrap();
    let Some(Consumed {
        records: second, ..
    }) = consume_and_commit(&py, &bootstrap, "g", topic, 35)
    else {
        return;
    };
    for p in 0..6 {
        let resumed = second.iter().find(|(q, _)| *q == p).map(|(_, o)| *o);
        let expected_start = last.get(&p).copied().unwrap_or(0);
        if expected_start < 10 {
            assert_eq!(
                resumed,
                Some(expected_start),
                "partition {p} resumes at its committed offset after the restart"
            );
        }
    }
    let mut all: Vec<(i32, i64)> = first.into_iter().chain(second).collect();
    all.sort();
    let expected: Vec<(i32, i64)> = (0..6).flat_map(|p| (0..10).map(move |o| (p, o))).collect();
    assert_eq!(
        all, expected,
        "every record read exactly once across the restart"
    );
}
