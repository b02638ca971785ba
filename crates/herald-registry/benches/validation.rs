//! What broker-side schema validation adds to a produce: checking every record of a
//! batch against the registry (decode, magic byte, id lookup under the subject), beside
//! the peer measured in the same run, herald-log appending the same batch (durability
//! none, so the comparison is CPU against CPU).
//!
//! `cargo bench -p herald-registry --bench validation`; docs/benchmarks.md records a run.
// why: `criterion_group!` generates an undocumented function.
#![allow(missing_docs)]

#[path = "../tests/id_check/mod.rs"]
mod id_check;

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use herald_broker::validation::{Validation, validate_batch};
use herald_format::records::{BatchBuilder, Compression};
use herald_log::{Durability, Log, LogConfig};
use herald_registry::{Registry, RegistryConfig, SchemaRequest, SchemaType};

const RECORDS: usize = 100;
const VALUE_BYTES: usize = 1024;

fn batch(id: u32, codec: Compression) -> Vec<u8> {
    let mut value = vec![0u8];
    value.extend_from_slice(&id.to_be_bytes());
    value.extend((0..VALUE_BYTES - 5).map(|i| (i % 251) as u8));
    let mut b = BatchBuilder::new(codec);
    for i in 0..RECORDS {
        let key = format!("key-{i}");
        b.push(
            1_700_000_000_000 + i as i64,
            Some(key.as_bytes()),
            Some(value.as_slice()),
            &[],
        );
    }
    b.build().unwrap()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let registry = Registry::open(dir.path(), RegistryConfig::default()).unwrap();
    // A subject with 50 versions, so the id lookup is not a trivial one.
    let mut id = 0;
    rt.block_on(async {
        registry
            .set_config(
                Some("orders-value"),
                herald_registry::CompatibilityLevel::None,
            )
            .await
            .unwrap();
        for v in 0..50 {
            let schema = format!(
                r#"{{"type":"record","name":"Order","fields":[{{"name":"f{v}","type":"long"}}]}}"#
            );
            id = registry
                .register("orders-value", SchemaRequest::new(SchemaType::Avro, schema))
                .await
                .unwrap();
        }
    });
    let check = id_check::IdCheck(registry.clone());
    let value_only = Validation {
        key: false,
        value: true,
    };
    for (name, codec) in [("none", Compression::None), ("lz4", Compression::Lz4)] {
        let bytes = batch(id, codec);
        let mut g = c.benchmark_group(format!("produce_100x1KiB_{name}"));
        g.throughput(Throughput::Elements(RECORDS as u64));
        g.bench_function("validate", |b| {
            b.iter(|| validate_batch(&check, "orders", value_only, black_box(&bytes)).unwrap())
        });
        let log_dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            durability: Durability::Never,
            ..LogConfig::default()
        };
        let log = Log::open(log_dir.path(), config).unwrap();
        g.bench_function("log_append", |b| {
            b.iter_batched(
                || bytes.clone(),
                |mut v| log.append(&mut v).unwrap(),
                BatchSize::SmallInput,
            )
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
