//! Router overhead: 1 KiB events end to end through the embedded transport (publish →
//! router with retry and the in-memory inbox → handler), against raw herald-log append and
//! read-back of the same record bytes, in the same run and on the same disk.
//!
//! Both sides use the default log configuration (group commit), append in batches of
//! [`BATCH`] records and decode every record on the way back. Criterion reports each side.
//! Then the target is checked on its own: [`RATIO_ROUNDS`] rounds of [`RATIO_EVENTS`]
//! events, each round running both sides back to back (which goes first alternates), and
//! the median of the per-round ratios router / raw against the target ≥ 0.75 (at most 25%
//! overhead). Pairing each router run with a raw run of the same moment cancels most of
//! the drift of a shared disk's fsync speed, which moves both sides together.
//!
//! `cargo bench -p herald --bench router --no-default-features`
//! (`HERALD_BENCH_RATIO_ROUNDS=0` skips the ratio check, e.g. with `--profile-time`;
//! `HERALD_BENCH_DURABILITY=never` runs both sides without fsync, which leaves only
//! the CPU cost of each path).
// why: `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald::{
    EmbeddedTransport, Envelope, Event, HandlerContext, MemoryInbox, RetryPolicy, Router,
    transport::{Admin, OutgoingRecord, Publisher, embedded::EmbeddedConfig},
};
use herald_format::records::{BatchBuilder, Compression, decode_batch};
use herald_log::{Durability, Log, LogConfig};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Records per publish call and per raw batch.
const BATCH: usize = 100;

/// The benchmark event: about 1 KiB of JSON payload.
#[derive(Serialize, Deserialize)]
struct Blob {
    key: String,
    body: String,
}

impl Event for Blob {
    const TYPE: &'static str = "bench.blob";
    const VERSION: u32 = 1;
    fn key(&self) -> String {
        self.key.clone()
    }
}

/// `n` fresh 1 KiB events as records (new ids each time: the inbox must not skip them).
fn records(n: u64) -> Vec<OutgoingRecord> {
    let body = "x".repeat(1000);
    (0..n)
        .map(|i| {
            Envelope::from_event(
                "urn:bench",
                &Blob {
                    key: format!("k{}", i % 64),
                    body: body.clone(),
                },
            )
            .expect("serializes")
            .to_record()
        })
        .collect()
}

/// The log configuration of both sides: the default (group commit), or with
/// `HERALD_BENCH_DURABILITY=never` no fsync at all.
fn log_config() -> LogConfig {
    let mut config = LogConfig::default();
    if std::env::var("HERALD_BENCH_DURABILITY").as_deref() == Ok("never") {
        config.durability = Durability::Never;
    }
    config
}

/// Rounds of the ratio check.
const RATIO_ROUNDS: usize = 9;
/// Events per side per round of the ratio check.
const RATIO_EVENTS: u64 = 20_000;

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Publishes `iters` events through the embedded transport and waits for the router's
/// handler to see all of them; the router starts before the clock and stops after it.
fn router_run(rt: &tokio::runtime::Runtime, iters: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let batch = records(iters);
    rt.block_on(async {
        let config = EmbeddedConfig {
            log: log_config(),
            ..EmbeddedConfig::default()
        };
        let t = EmbeddedTransport::open_with(dir.path(), config).expect("open");
        t.create_topic("bench", 1).await.expect("topic");
        let seen = Arc::new(AtomicU64::new(0));
        let done = Arc::new(Notify::new());
        let (s, d) = (seen.clone(), done.clone());
        let router = Router::builder(t.clone(), "bench")
            .retry(RetryPolicy::default())
            .inbox(Arc::new(MemoryInbox::new()))
            .on("bench", move |_: Blob, _: HandlerContext| {
                let (s, d) = (s.clone(), d.clone());
                async move {
                    if s.fetch_add(1, Ordering::Relaxed) + 1 == iters {
                        d.notify_one();
                    }
                    Ok(())
                }
            })
            .start()
            .await
            .expect("router starts");
        let start = Instant::now();
        let mut batch = batch;
        while !batch.is_empty() {
            let rest = batch.split_off(batch.len().min(BATCH));
            t.publish("bench", batch).await.expect("publish");
            batch = rest;
        }
        done.notified().await;
        let elapsed = start.elapsed();
        router.shutdown().await.expect("router stops");
        elapsed
    })
}

/// Appends the same records to a raw herald-log in batches of [`BATCH`], then reads and
/// decodes them all back.
fn raw_run(iters: u64) -> Duration {
    let dir = tempfile::tempdir().expect("temp dir");
    let recs = records(iters);
    let log = Log::open(dir.path(), log_config()).expect("open");
    let start = Instant::now();
    for chunk in recs.chunks(BATCH) {
        let mut builder = BatchBuilder::new(Compression::None);
        for r in chunk {
            builder.push(0, r.key.as_deref(), r.value.as_deref(), &r.headers);
        }
        let mut bytes = builder.build().expect("batch");
        log.append(&mut bytes).expect("append");
    }
    let mut next = 0;
    let mut decoded = 0u64;
    while next < iters {
        let read = log.read(next, 1 << 20).expect("read");
        let batches = herald_format::batch::validate_all(&read.bytes).expect("batches");
        for (at, header) in batches {
            let batch = decode_batch(&read.bytes[at..at + header.total_len()]).expect("decode");
            decoded += batch.records.len() as u64;
            next = (header.last_offset() + 1) as u64;
        }
    }
    assert_eq!(decoded, iters);
    start.elapsed()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("sdk_router_1KiB");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(20)
        .measurement_time(Duration::from_secs(10));
    // Runs below one batch are timed as one batch and scaled down.
    group.bench_function("raw_log_append_read", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(BATCH as u64);
            raw_run(n).mul_f64(iters as f64 / n as f64)
        })
    });
    group.bench_function("router_embedded_retry_inbox", |b| {
        b.iter_custom(|iters| {
            let n = iters.max(BATCH as u64);
            router_run(&rt, n).mul_f64(iters as f64 / n as f64)
        })
    });
    group.finish();
}

/// The target check: paired rounds, median of the per-round ratios.
fn ratio(_: &mut Criterion) {
    let rounds = std::env::var("HERALD_BENCH_RATIO_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RATIO_ROUNDS);
    if rounds == 0 {
        return;
    }
    let rt = runtime();
    let n = RATIO_EVENTS;
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    let (mut raws, mut routers, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let (raw, router) = if round % 2 == 0 {
            let raw = rate(raw_run(n));
            (raw, rate(router_run(&rt, n)))
        } else {
            let router = rate(router_run(&rt, n));
            (rate(raw_run(n)), router)
        };
        println!(
            "round {round}: raw herald-log {raw:.0} events/s, router {router:.0} events/s, \
             ratio {:.2}",
            router / raw
        );
        raws.push(raw);
        routers.push(router);
        ratios.push(router / raw);
    }
    let ratio = median(&mut ratios);
    println!(
        "sdk router, 1 KiB events, {rounds} paired rounds of {n} events: median raw herald-log \
         {:.0} events/s, median router {:.0} events/s, median ratio {ratio:.2} \
         (target >= 0.75: {})",
        median(&mut raws),
        median(&mut routers),
        if ratio >= 0.75 { "PASS" } else { "FAIL" }
    );
}

criterion_group!(benches, bench, ratio);
criterion_main!(benches);
