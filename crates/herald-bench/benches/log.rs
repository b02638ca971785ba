//! The herald-log benchmark: `cargo bench -p herald-bench --bench log`.
//!
//! In one run, on one directory (cargo's target dir, or `$HERALD_BENCH_DIR`):
//!
//! 1. the disk's own limits through a plain `File`: write-and-`sync_data` rate, and
//!    sequential write bandwidth of the same batch buffers with a `sync_data` per 4 MiB;
//! 2. appends for every record size × batch size × durability policy × writer count;
//! 3. sequential reads with 1 MiB reads, from the page cache and from the disk, against
//!    plain reads of the same segment files;
//! 4. a markdown table of the medians of every case, then the target check of
//!    `herald_bench::summary` (each target interleaved with its baseline).
//!
//! One iteration is one append (any writer), one 4 MiB chunk of the write baseline, one
//! write-and-sync of the fsync baseline, or one scan of a whole log. Under `cargo test
//! --benches` criterion runs each case once and step 4 is skipped.

use std::{path::PathBuf, time::Duration};

use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use herald_bench::{
    Result,
    disk::{self, RawFile, chunk_copies},
    stats::{PerOp, Recorder},
    summary::{self, SummaryConfig},
    workload::{
        AppendTarget, BATCH_RECORDS, ReadTarget, Scratch, Shape, VALUE_SIZES, WRITERS, policies,
    },
};

/// Samples per case; the table takes its medians over this many last samples.
const SAMPLE_SIZE: usize = 10;
/// Bytes of the log read back in the large-batch read cases.
const READ_LOG_BYTES: u64 = 256 << 20;
/// Bytes of the log read back in the 1-record-batch read case.
const SMALL_READ_LOG_BYTES: u64 = 32 << 20;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // criterion's other modes (`cargo test --benches`, `--list`, `--test`) skip the table
    // and the target check.
    let benchmarking = args.iter().any(|a| a == "--bench")
        && !args
            .iter()
            .any(|a| ["--list", "--test", "--profile-time"].contains(&a.as_str()));
    let root = std::env::var_os("HERALD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")));
    let scratch = Scratch::new(&root).expect("create the scratch directory");
    if let Some((device, fstype)) = scratch.filesystem() {
        println!(
            "scratch: {} on {device} ({fstype})",
            scratch.path().display()
        );
        if fstype == "tmpfs" {
            println!("warning: tmpfs measures memory, not a disk; set HERALD_BENCH_DIR");
        }
    }
    let rec = Recorder::default();
    let mut c = Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();

    disk_baselines(&mut c, &scratch, &rec);
    for (policy, durability) in policies() {
        let name = format!("append_{policy}");
        let mut group = flat_group(&mut c, &name);
        for value_bytes in VALUE_SIZES {
            for records in BATCH_RECORDS {
                let shape = Shape::new(value_bytes, records);
                for writers in WRITERS {
                    let id = format!("{}/{writers}w", shape.label());
                    let dir = scratch.case_dir(&format!("{policy}-{}-{writers}w", shape.label()));
                    let dir = dir.expect("case directory");
                    let per_op = PerOp {
                        bytes: shape.build().len() as u64,
                        records: records as u64,
                    };
                    let mut state = None;
                    measure(
                        (&mut group, &name, &rec),
                        &id,
                        per_op,
                        Throughput::BytesDecimal(per_op.bytes),
                        &mut state,
                        || AppendTarget::open(&dir, durability, shape),
                        |log, iters| {
                            let elapsed = log.timed_appends(writers, iters)?;
                            log.trim()?;
                            Ok(elapsed)
                        },
                    );
                    if let Some(log) = state {
                        log.destroy().expect("delete the case's log");
                    }
                }
            }
        }
        group.finish();
    }
    reads(&mut c, &scratch, &rec);
    c.final_summary();

    if !benchmarking {
        return;
    }
    println!("\n## herald-log: every case (median of the last {SAMPLE_SIZE} samples)\n");
    println!("{}", rec.markdown(SAMPLE_SIZE));
    let summary = summary::run(&scratch, &SummaryConfig::default()).expect("run the target check");
    println!("{}", summary.markdown());
    println!("{}", summary.json());
}

fn flat_group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut group = c.benchmark_group(name);
    // Iterations cost milliseconds and scale linearly: equal-sized samples suffice.
    group.sampling_mode(SamplingMode::Flat);
    group
}

/// Benchmarks one case whose state is made on first use, so that cases a filter skips
/// cost nothing, and records every timed run in `rec`.
fn measure<T>(
    (group, group_name, rec): (&mut BenchmarkGroup<'_, WallTime>, &str, &Recorder),
    id: &str,
    per_op: PerOp,
    throughput: Throughput,
    state: &mut Option<T>,
    mut setup: impl FnMut() -> Result<T>,
    mut run: impl FnMut(&mut T, u64) -> Result<Duration>,
) {
    group.throughput(throughput);
    group.bench_function(id, |b| {
        b.iter_custom(|iters| {
            if state.is_none() {
                *state = Some(setup().unwrap_or_else(|e| panic!("{group_name}/{id}: setup: {e}")));
            }
            let target = state.as_mut().expect("set above");
            let elapsed = run(target, iters).unwrap_or_else(|e| panic!("{group_name}/{id}: {e}"));
            rec.record(group_name, id, per_op, iters, elapsed);
            elapsed
        })
    });
}

/// The disk's limits: fsync rate and sequential write bandwidth, plain `File`.
fn disk_baselines(c: &mut Criterion, scratch: &Scratch, rec: &Recorder) {
    let name = "disk_raw_fsync";
    let mut group = flat_group(c, name);
    for value_bytes in VALUE_SIZES {
        let shape = Shape::new(value_bytes, 1);
        let batch = shape.build();
        let dir = scratch.case_dir(&format!("raw-fsync-{}", shape.label()));
        let dir = dir.expect("case directory");
        let per_op = PerOp {
            bytes: batch.len() as u64,
            records: 1,
        };
        let mut state = None;
        measure(
            (&mut group, name, rec),
            &shape.label(),
            per_op,
            Throughput::Elements(1),
            &mut state,
            || RawFile::create(&dir),
            |file, iters| {
                let elapsed = file.timed_fsyncs(&batch, iters)?;
                file.roll_if_full()?;
                Ok(elapsed)
            },
        );
        if let Some(file) = state {
            file.destroy().expect("delete the baseline file");
        }
    }
    group.finish();

    let name = "disk_raw_write";
    let mut group = flat_group(c, name);
    for value_bytes in VALUE_SIZES {
        for records in BATCH_RECORDS {
            let shape = Shape::new(value_bytes, records);
            let batch = shape.build();
            let dir = scratch.case_dir(&format!("raw-write-{}", shape.label()));
            let dir = dir.expect("case directory");
            let copies = chunk_copies(batch.len() as u64);
            let per_op = PerOp {
                bytes: copies * batch.len() as u64,
                records: copies * records as u64,
            };
            let mut state = None;
            measure(
                (&mut group, name, rec),
                &shape.label(),
                per_op,
                Throughput::BytesDecimal(per_op.bytes),
                &mut state,
                || RawFile::create(&dir),
                |file, iters| {
                    let elapsed = file.timed_chunks(&batch, iters)?;
                    file.roll_if_full()?;
                    Ok(elapsed)
                },
            );
            if let Some(file) = state {
                file.destroy().expect("delete the baseline file");
            }
        }
    }
    group.finish();
}

/// Sequential reads of a pre-written log, herald's `Log::read` against plain reads of its
/// segment files: from the page cache (`read_warm`) and, for large batches, from the disk
/// after dropping the files' cached pages (`read_cold`).
fn reads(c: &mut Criterion, scratch: &Scratch, rec: &Recorder) {
    for (shape, total, cold) in [
        (Shape::new(1024, 256), READ_LOG_BYTES, true),
        (Shape::new(100, 1), SMALL_READ_LOG_BYTES, false),
    ] {
        let dir = scratch.case_dir(&format!("read-{}", shape.label()));
        let dir = dir.expect("case directory");
        let (bytes, records) = ReadTarget::planned(shape, total);
        let per_op = PerOp { bytes, records };
        let mut state = None;
        let prepare = || ReadTarget::prepare(&dir, shape, total);
        let modes: &[(&str, bool)] = if cold {
            &[("read_warm", false), ("read_cold", true)]
        } else {
            &[("read_warm", false)]
        };
        for &(name, evict) in modes {
            let mut group = flat_group(c, name);
            let herald_id = format!("herald_log/{}", shape.label());
            measure(
                (&mut group, name, rec),
                &herald_id,
                per_op,
                Throughput::BytesDecimal(bytes),
                &mut state,
                prepare,
                |log, iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        if evict {
                            disk::evict_from_cache(log.dir())?;
                        }
                        let started = std::time::Instant::now();
                        let read = log.scan()?;
                        elapsed += started.elapsed();
                        assert_eq!(read, log.bytes(), "a scan reads the whole log");
                    }
                    Ok(elapsed)
                },
            );
            let raw_id = format!("raw_file/{}", shape.label());
            measure(
                (&mut group, name, rec),
                &raw_id,
                per_op,
                Throughput::BytesDecimal(bytes),
                &mut state,
                prepare,
                |log, iters| {
                    let mut elapsed = Duration::ZERO;
                    for _ in 0..iters {
                        if evict {
                            disk::evict_from_cache(log.dir())?;
                        }
                        let (read, took) = disk::timed_read_segments(log.dir())?;
                        elapsed += took;
                        assert_eq!(read, log.bytes(), "the segments hold the whole log");
                    }
                    Ok(elapsed)
                },
            );
            group.finish();
        }
        if let Some(log) = state {
            log.destroy().expect("delete the read log");
        }
    }
}
