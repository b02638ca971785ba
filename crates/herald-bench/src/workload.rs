//! The herald-log cases and the timed operations that drive a [`Log`].
//!
//! Every append re-uses one pre-built batch buffer per writer: `Log::append` rewrites the
//! base offset in place, so the buffer stays valid and the builder stays out of the
//! measurement.

use std::{
    collections::VecDeque,
    fs,
    path::{Path, PathBuf},
    sync::Barrier,
    thread,
    time::{Duration, Instant},
};

use herald_format::{
    batch::BatchHeader,
    records::{BatchBuilder, Compression},
};
use herald_log::{Durability, Log, LogConfig, PendingAppend};

use crate::{BenchError, Result};

/// Record value sizes of the append cases, in bytes.
pub const VALUE_SIZES: [usize; 2] = [100, 1024];
/// Records per batch of the append cases.
pub const BATCH_RECORDS: [usize; 3] = [1, 16, 256];
/// Concurrent appender threads of the append cases.
pub const WRITERS: [usize; 2] = [1, 8];
/// Size of one read in the sequential-read cases (a typical fetch size).
pub const READ_BYTES: usize = 1 << 20;

/// Segment size of every benchmark log. Smaller than the 1 GiB default so that a
/// no-fsync run reaches its steady state (a segment roll syncs the sealed segment) within
/// a few seconds, and so that closing a log never waits on gigabytes of dirty pages.
pub const SEGMENT_BYTES: u64 = 256 << 20;
/// Retention of every benchmark log: with `SEGMENT_BYTES`, at most three segments on disk.
pub const RETENTION_BYTES: u64 = 512 << 20;

/// The durability policies under test, with the name each is reported under.
pub fn policies() -> [(&'static str, Durability); 3] {
    [
        ("every_append", Durability::EveryAppend),
        ("group_commit", Durability::group_commit()),
        ("never", Durability::Never),
    ]
}

/// The shape of one appended batch: how many records, and how large each value is.
/// Records have no key and no headers, so the value is the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Bytes of each record's value.
    pub value_bytes: usize,
    /// Records in the batch.
    pub records: usize,
}

impl Shape {
    /// A batch of `records` records of `value_bytes` each.
    pub const fn new(value_bytes: usize, records: usize) -> Self {
        Self {
            value_bytes,
            records,
        }
    }

    /// The uncompressed v2 batch, exactly as a producer would send it.
    pub fn build(&self) -> Vec<u8> {
        let value = vec![b'x'; self.value_bytes];
        let now = 1_700_000_000_000;
        let mut builder = BatchBuilder::new(Compression::None);
        for i in 0..self.records {
            builder.push(now + i as i64, None, Some(&value), &[]);
        }
        builder
            .build()
            .expect("benchmark batches are far below the format's limits")
    }

    /// Short name used in case ids: `100B_x16`, `1KiB_x256`.
    pub fn label(&self) -> String {
        let value = if self.value_bytes.is_multiple_of(1024) {
            format!("{}KiB", self.value_bytes / 1024)
        } else {
            format!("{}B", self.value_bytes)
        };
        format!("{value}_x{}", self.records)
    }
}

/// A directory for one benchmark run under `root`, removed when dropped.
///
/// Put `root` on the disk you mean to measure: the benches use cargo's target directory
/// (`CARGO_TARGET_TMPDIR`), never a tmpfs.
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// Creates `root/herald-bench-<pid>`. A relative `root` is made absolute against the
    /// current directory first: peers started by the suite get paths inside it (config
    /// files, `dir`), and they resolve relative paths against their own directory.
    pub fn new(root: impl AsRef<Path>) -> Result<Self> {
        let root = std::path::absolute(root.as_ref())
            .map_err(|e| BenchError::io("absolutise scratch root", root.as_ref(), e))?;
        let dir = root.join(format!("herald-bench-{}", std::process::id()));
        fs::create_dir_all(&dir).map_err(|e| BenchError::io("create scratch dir", &dir, e))?;
        Ok(Self { dir })
    }

    /// The run's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A fresh, empty path for one case inside the run's directory.
    pub fn case_dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.dir.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(|e| BenchError::io("clear case dir", &dir, e))?;
        }
        Ok(dir)
    }

    /// The device and filesystem type the run's directory is on, from `/proc/mounts`
    /// (longest matching mount point), e.g. `("/dev/vda", "ext4")`.
    pub fn filesystem(&self) -> Option<(String, String)> {
        let mounts = fs::read_to_string("/proc/mounts").ok()?;
        let dir = fs::canonicalize(&self.dir).ok()?;
        mounts
            .lines()
            .filter_map(|line| {
                let mut f = line.split_whitespace();
                let (dev, mount, fstype) = (f.next()?, f.next()?, f.next()?);
                dir.starts_with(mount)
                    .then(|| (mount.len(), dev.to_string(), fstype.to_string()))
            })
            .max_by_key(|(len, _, _)| *len)
            .map(|(_, dev, fstype)| (dev, fstype))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// The configuration of every benchmark log: defaults, except for the durability policy
/// and the segment size and size-only retention that keep the disk usage bounded.
pub fn log_config(durability: Durability) -> LogConfig {
    LogConfig {
        durability,
        segment_bytes: SEGMENT_BYTES,
        retention_bytes: Some(RETENTION_BYTES),
        retention_age: None,
        ..LogConfig::default()
    }
}

/// A log under append load, with the batch every writer appends.
#[derive(Debug)]
pub struct AppendTarget {
    log: Log,
    batch: Vec<u8>,
}

impl AppendTarget {
    /// Opens a new log in `dir` (which must not hold one) under `durability`.
    pub fn open(dir: &Path, durability: Durability, shape: Shape) -> Result<Self> {
        Ok(Self {
            log: Log::open(dir, log_config(durability))?,
            batch: shape.build(),
        })
    }

    /// Bytes of one appended batch.
    pub fn batch_bytes(&self) -> u64 {
        self.batch.len() as u64
    }

    /// An appender with its own copy of the batch, for appending from the calling thread.
    pub fn writer(&self) -> Writer<'_> {
        Writer {
            log: &self.log,
            batch: self.batch.clone(),
        }
    }

    /// `appends` appends split evenly over `writers` threads that start together; returns
    /// the time from the start until the last append is acknowledged.
    pub fn timed_appends(&self, writers: usize, appends: u64) -> Result<Duration> {
        let writers = writers.max(1);
        let start_line = Barrier::new(writers + 1);
        let (started, results) = thread::scope(|s| {
            let handles: Vec<_> = (0..writers as u64)
                .map(|w| {
                    let share = appends / writers as u64 + u64::from(w < appends % writers as u64);
                    let start_line = &start_line;
                    s.spawn(move || -> Result<()> {
                        let mut writer = self.writer();
                        start_line.wait();
                        for _ in 0..share {
                            writer.append()?;
                        }
                        Ok(())
                    })
                })
                .collect();
            start_line.wait();
            let started = Instant::now();
            let results: Vec<_> = handles.into_iter().map(join).collect();
            (started, results)
        });
        let elapsed = started.elapsed();
        results.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(elapsed)
    }

    /// `writers` threads append until `slot` has passed; returns the appends made and the
    /// time from the start until the last one was acknowledged.
    pub fn appends_for(&self, writers: usize, slot: Duration) -> Result<(u64, Duration)> {
        let writers = writers.max(1);
        let start_line = Barrier::new(writers + 1);
        let (started, results) = thread::scope(|s| {
            let handles: Vec<_> = (0..writers)
                .map(|_| {
                    let start_line = &start_line;
                    s.spawn(move || -> Result<u64> {
                        let mut writer = self.writer();
                        start_line.wait();
                        let deadline = Instant::now() + slot;
                        let mut appends = 0;
                        while Instant::now() < deadline {
                            writer.append()?;
                            appends += 1;
                        }
                        Ok(appends)
                    })
                })
                .collect();
            start_line.wait();
            let started = Instant::now();
            let results: Vec<_> = handles.into_iter().map(join).collect();
            (started, results)
        });
        let elapsed = started.elapsed();
        let appends = results.into_iter().sum::<Result<u64>>()?;
        Ok((appends, elapsed))
    }

    /// One thread keeps up to `depth` appends in flight with `Log::append_deferred` (as a
    /// broker does for a producer that pipelines requests) until `slot` has passed;
    /// returns the appends acknowledged and the time until the last one was.
    pub fn pipelined_appends_for(&self, depth: usize, slot: Duration) -> Result<(u64, Duration)> {
        let mut batch = self.batch.clone();
        let mut in_flight = VecDeque::with_capacity(depth);
        let mut appends = 0;
        let started = Instant::now();
        while started.elapsed() < slot {
            if in_flight.len() >= depth.max(1) {
                let oldest: PendingAppend = in_flight.pop_front().expect("queue is full");
                oldest.wait()?;
                appends += 1;
            }
            // The log copies the batch before returning, so the buffer is free again.
            in_flight.push_back(self.log.append_deferred(&mut batch)?);
        }
        for pending in in_flight {
            pending.wait()?;
            appends += 1;
        }
        Ok((appends, started.elapsed()))
    }

    /// Deletes segments beyond the retention size; call it between timed runs.
    pub fn trim(&self) -> Result<()> {
        self.log.apply_retention()?;
        Ok(())
    }

    /// Closes the log and deletes its directory.
    pub fn destroy(self) -> Result<()> {
        self.log.destroy()?;
        Ok(())
    }
}

/// Appends one pre-built batch to a log, again and again, from one thread.
#[derive(Debug)]
pub struct Writer<'a> {
    log: &'a Log,
    batch: Vec<u8>,
}

impl Writer<'_> {
    /// Appends the batch once and waits until it is durable under the log's policy.
    pub fn append(&mut self) -> Result<()> {
        self.log.append(&mut self.batch)?;
        Ok(())
    }

    /// Appends the batch once; returns the time until it was acknowledged.
    pub fn timed_append(&mut self) -> Result<Duration> {
        let started = Instant::now();
        self.append()?;
        Ok(started.elapsed())
    }
}

fn join<T>(handle: thread::ScopedJoinHandle<'_, Result<T>>) -> Result<T> {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// A pre-written log to read front to back.
#[derive(Debug)]
pub struct ReadTarget {
    log: Log,
    bytes: u64,
    records: u64,
}

impl ReadTarget {
    /// The bytes and records [`prepare`](Self::prepare) writes for `shape` and
    /// `total_bytes`: whole batches, at least `total_bytes`.
    pub fn planned(shape: Shape, total_bytes: u64) -> (u64, u64) {
        let batch = shape.build().len() as u64;
        let batches = total_bytes.div_ceil(batch);
        (batches * batch, batches * shape.records as u64)
    }

    /// Writes at least `total_bytes` of `shape` batches into a new log in `dir` (without
    /// fsync per append, then one flush).
    pub fn prepare(dir: &Path, shape: Shape, total_bytes: u64) -> Result<Self> {
        let log = Log::open(
            dir,
            LogConfig {
                // Reading never deletes anything, so keep everything that was written.
                retention_bytes: None,
                ..log_config(Durability::Never)
            },
        )?;
        let mut batch = shape.build();
        let mut bytes = 0;
        let mut records = 0;
        while bytes < total_bytes {
            log.append(&mut batch)?;
            bytes += batch.len() as u64;
            records += shape.records as u64;
        }
        log.flush()?;
        Ok(Self {
            log,
            bytes,
            records,
        })
    }

    /// Bytes in the log.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Records in the log.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// The log's directory (for reading its segment files directly).
    pub fn dir(&self) -> &Path {
        self.log.dir()
    }

    /// Reads the whole log front to back in [`READ_BYTES`] reads; returns the bytes read.
    pub fn scan(&self) -> Result<u64> {
        let mut offset = 0;
        let mut total = 0;
        loop {
            let read = self.log.read(offset, READ_BYTES)?;
            if read.bytes.is_empty() {
                return Ok(total);
            }
            total += read.bytes.len() as u64;
            offset = next_offset(&read.bytes).expect("a read returns whole, valid batches");
        }
    }

    /// Closes the log and deletes its directory.
    pub fn destroy(self) -> Result<()> {
        self.log.destroy()?;
        Ok(())
    }
}

/// The offset after the last of the concatenated batches in `bytes`.
fn next_offset(mut bytes: &[u8]) -> Option<u64> {
    let mut next = None;
    while !bytes.is_empty() {
        let header = BatchHeader::parse(bytes).ok()?;
        next = Some(header.last_offset() as u64 + 1);
        bytes = bytes.get(header.total_len()..)?;
    }
    next
}

/// Cargo's target directory, found from the running binary's path
/// (`target/<profile>/<binary>`).
pub fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

/// What the suite runs and how long each part may take.
#[derive(Debug, Clone, PartialEq)]
pub struct SuiteConfig {
    /// Time producers run in one throughput sample.
    pub slot: Duration,
    /// Interleaved throughput rounds.
    pub rounds: usize,
    /// Value sizes of the throughput scenarios.
    pub value_sizes: Vec<usize>,
    /// Producer counts of the throughput scenarios.
    pub producers: Vec<usize>,
    /// Fixed rates of the latency scenarios, messages per second.
    pub latency_rates: Vec<f64>,
    /// Length of each latency run.
    pub latency_duration: Duration,
    /// Value size of the latency, fan-out and catch-up scenarios.
    pub message_bytes: usize,
    /// Time the fan-out producer runs.
    pub fan_out_slot: Duration,
    /// Messages in the catch-up backlog.
    pub backlog: u64,
    /// Value size of the backlog.
    pub backlog_bytes: usize,
    /// Longest time spent writing the backlog, and again reading it.
    pub backlog_bound: Duration,
    /// Only targets whose name contains one of these (all if empty).
    pub only: Vec<String>,
    /// Also run Herald over Kafka with a SASL_SSL listener (SCRAM-SHA-512 over TLS), to
    /// compare with plaintext.
    pub sasl_ssl: bool,
}

impl Default for SuiteConfig {
    /// About 5 minutes with all eight targets.
    fn default() -> Self {
        Self {
            slot: Duration::from_secs(1),
            rounds: 3,
            value_sizes: vec![100, 1024],
            producers: vec![1, 4],
            latency_rates: vec![1_000.0, 10_000.0, 50_000.0],
            latency_duration: Duration::from_secs(3),
            message_bytes: 1024,
            fan_out_slot: Duration::from_secs(2),
            backlog: 1_000_000,
            backlog_bytes: 100,
            backlog_bound: Duration::from_secs(10),
            only: Vec::new(),
            sasl_ssl: false,
        }
    }
}
