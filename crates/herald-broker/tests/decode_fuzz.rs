//! The request-decoding fuzz target (`fuzz/fuzz_targets/decode_request.rs`) run as
//! ordinary tests on stable Rust: the checked-in corpus, a bounded stream of seeded
//! random inputs, and mutations of valid requests of every API and version the broker
//! dispatches; then mutated requests over a socket to a live broker, which must answer,
//! close the connection, or wait, but never panic or stop serving others.
//!
//! `cargo fuzz run decode_request` (nightly, see docs/protocol.md) explores the same
//! target without bounds. `HERALD_FUZZ_WRITE_CORPUS=1` writes the seeds below into
//! `fuzz/seeds/decode_request/`; inputs that once failed go to
//! `fuzz/regressions/decode_request/`, and both are replayed here.

use std::{
    net::SocketAddr,
    panic::{AssertUnwindSafe, catch_unwind},
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use bytes::{BufMut, Bytes, BytesMut};
use herald_broker::{
    Broker, BrokerConfig,
    fuzzing::{Decoded, decode_request, decode_request_unguarded},
};
use herald_format::records::{BatchBuilder, Compression, Header};
use kafka_protocol::{
    messages::{
        AlterConfigsRequest, ApiKey, ApiVersionsRequest, BrokerId, CreatePartitionsRequest,
        CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
        DescribeConfigsRequest, DescribeGroupsRequest, FetchRequest, FindCoordinatorRequest,
        GroupId, HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest,
        JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, ListOffsetsRequest,
        MetadataRequest, OffsetCommitRequest, OffsetFetchRequest, ProduceRequest, RequestHeader,
        SyncGroupRequest, TopicName,
        create_topics_request::{CreatableTopic, CreatableTopicConfig},
        fetch_request::{FetchPartition, FetchTopic},
        join_group_request::JoinGroupRequestProtocol,
        metadata_request::MetadataRequestTopic,
        offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic},
        produce_request::{PartitionProduceData, TopicProduceData},
    },
    protocol::{Encodable, StrBytes},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

// ---------------------------------------------------------------- inputs

/// xorshift64*: a fixed sequence per seed, so that any failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn a_batch(compression: Compression) -> Bytes {
    let mut b = BatchBuilder::new(compression);
    b.push(
        1_700_000_000_000,
        Some(b"k"),
        Some(b"value"),
        &[Header::new("h", b"v".to_vec())],
    );
    b.push(1_700_000_000_001, None, None, &[]);
    Bytes::from(b.build().unwrap())
}

/// A request frame (length prefix included) of `api` at `version`, or `None` when the
/// message does not encode at that version.
fn frame<R: Encodable>(api: ApiKey, version: i16, req: &R) -> Option<Vec<u8>> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = 7;
    header.client_id = Some(s("fuzz"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .ok()?;
    req.encode(&mut body, version).ok()?;
    let mut framed = BytesMut::new();
    framed.put_i32(body.len() as i32);
    framed.extend_from_slice(&body);
    Some(framed.to_vec())
}

/// Valid requests of every API the broker dispatches, at every version kafka-protocol
/// encodes, with a few populated fields so that mutations reach arrays and records.
fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut add = |api: ApiKey, f: &dyn Fn(i16) -> Option<Vec<u8>>| {
        let range = api.valid_versions();
        for v in range.min..=range.max {
            if let Some(bytes) = f(v) {
                out.push((format!("{api:?}-v{v}"), bytes));
            }
        }
    };
    add(ApiKey::Produce, &|v| {
        let codec = [Compression::None, Compression::Gzip, Compression::Lz4][v as usize % 3];
        let mut p = PartitionProduceData::default();
        p.records = Some(a_batch(codec));
        let mut t = TopicProduceData::default();
        t.name = topic("t");
        t.partition_data = vec![p];
        let mut req = ProduceRequest::default();
        req.acks = -1;
        req.timeout_ms = 1000;
        req.topic_data = vec![t];
        frame(ApiKey::Produce, v, &req)
    });
    add(ApiKey::Fetch, &|v| {
        let mut p = FetchPartition::default();
        p.partition_max_bytes = 1 << 20;
        let mut t = FetchTopic::default();
        t.topic = topic("t");
        t.partitions = vec![p];
        let mut req = FetchRequest::default();
        req.replica_id = BrokerId(-1);
        req.max_bytes = 1 << 20;
        req.session_epoch = -1;
        req.topics = vec![t];
        frame(ApiKey::Fetch, v, &req)
    });
    add(ApiKey::Metadata, &|v| {
        let mut t = MetadataRequestTopic::default();
        t.name = Some(topic("t"));
        let req = MetadataRequest::default().with_topics(Some(vec![t]));
        frame(ApiKey::Metadata, v, &req)
    });
    add(ApiKey::CreateTopics, &|v| {
        let mut c = CreatableTopicConfig::default();
        c.name = s("retention.ms");
        c.value = Some(s("1000"));
        let mut t = CreatableTopic::default();
        t.name = topic("new");
        t.num_partitions = 2;
        t.replication_factor = 1;
        t.configs = vec![c];
        let mut req = CreateTopicsRequest::default();
        req.topics = vec![t];
        frame(ApiKey::CreateTopics, v, &req)
    });
    add(ApiKey::OffsetCommit, &|v| {
        let mut p = OffsetCommitRequestPartition::default();
        p.committed_offset = 5;
        p.committed_metadata = Some(s("m"));
        let mut t = OffsetCommitRequestTopic::default();
        t.name = topic("t");
        t.partitions = vec![p];
        let mut req = OffsetCommitRequest::default();
        req.group_id = GroupId(s("g"));
        req.generation_id_or_member_epoch = -1;
        req.topics = vec![t];
        frame(ApiKey::OffsetCommit, v, &req)
    });
    add(ApiKey::JoinGroup, &|v| {
        let mut p = JoinGroupRequestProtocol::default();
        p.name = s("range");
        p.metadata = Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 0]);
        let mut req = JoinGroupRequest::default();
        req.group_id = GroupId(s("g"));
        req.session_timeout_ms = 6000;
        req.rebalance_timeout_ms = 100;
        req.protocol_type = s("consumer");
        req.protocols = vec![p];
        frame(ApiKey::JoinGroup, v, &req)
    });
    macro_rules! defaults {
        ($($api:ident => $t:ty),* $(,)?) => {
            $(add(ApiKey::$api, &|v| frame(ApiKey::$api, v, &<$t>::default()));)*
        };
    }
    defaults!(
        ListOffsets => ListOffsetsRequest,
        ApiVersions => ApiVersionsRequest,
        DeleteTopics => DeleteTopicsRequest,
        CreatePartitions => CreatePartitionsRequest,
        DeleteRecords => DeleteRecordsRequest,
        DescribeConfigs => DescribeConfigsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        InitProducerId => InitProducerIdRequest,
        FindCoordinator => FindCoordinatorRequest,
        SyncGroup => SyncGroupRequest,
        Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest,
        OffsetFetch => OffsetFetchRequest,
        ListGroups => ListGroupsRequest,
        DescribeGroups => DescribeGroupsRequest,
        DeleteGroups => DeleteGroupsRequest,
    );
    out
}

/// Values that break length and count fields.
const INTERESTING: [&[u8]; 8] = [
    &[0x7f, 0xff, 0xff, 0xff],
    &[0xff, 0xff, 0xff, 0xff],
    &[0x80, 0x00, 0x00, 0x00],
    &[0x00, 0x00, 0x00, 0x00],
    &[0xff, 0xff, 0xff, 0xff, 0x0f], // varint u32::MAX
    &[0xfe, 0xff, 0xff, 0xff, 0x07], // varint i32::MAX
    &[0x7f, 0xff],
    &[0xff],
];

/// One to four random edits of `input`.
fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] ^= 1 << rng.below(8);
            }
            1 if !out.is_empty() => {
                let i = at.min(out.len() - 1);
                out[i] = rng.next() as u8;
            }
            2 => out.truncate(at),
            3 => {
                let v = INTERESTING[rng.below(INTERESTING.len())];
                let end = (at + v.len()).min(out.len());
                out.splice(at..end, v.iter().copied());
            }
            4 => {
                let n = rng.below(16);
                let bytes = rng.bytes(n);
                out.splice(at..at, bytes);
            }
            _ => {
                let n = rng.below(8).min(out.len() - at.min(out.len()));
                out.drain(at..at + n);
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs one input; a panic fails the test with the input as a reproducer.
fn check(what: &str, input: &[u8]) -> Decoded {
    catch_unwind(AssertUnwindSafe(|| decode_request(input))).unwrap_or_else(|_| {
        panic!(
            "decode_request panicked on {what}; reproducer (hex): {}",
            hex(input)
        )
    })
}

/// Totals over many inputs.
#[derive(Default)]
struct Stats {
    inputs: usize,
    requests: usize,
    skipped: usize,
    first_skipped: Option<(String, Vec<u8>)>,
}

impl Stats {
    fn run(&mut self, what: impl FnOnce() -> String, input: &[u8]) -> Decoded {
        let what = what();
        let d = check(&what, input);
        self.inputs += 1;
        self.requests += d.requests;
        self.skipped += d.skipped;
        if d.skipped > 0 && self.first_skipped.is_none() {
            self.first_skipped = Some((what, input.to_vec()));
        }
        d
    }
}

fn corpus_dirs() -> Vec<PathBuf> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    vec![
        fuzz.join("seeds/decode_request"),
        fuzz.join("regressions/decode_request"),
    ]
}

// ---------------------------------------------------------------- decoding

#[test]
fn decode_request_survives_corpus_random_bytes_and_mutated_requests() {
    let start = Instant::now();
    let seeds = seeds();
    if std::env::var("HERALD_FUZZ_WRITE_CORPUS").is_ok_and(|v| v == "1") {
        let dir = &corpus_dirs()[0];
        std::fs::create_dir_all(dir).unwrap();
        for (name, bytes) in &seeds {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut stats = Stats::default();
    for (name, bytes) in &seeds {
        let d = stats.run(|| name.clone(), bytes);
        assert!(d.requests >= 1, "{name}: a valid request decodes ({d:?})");
    }
    for dir in corpus_dirs() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            stats.run(
                || path.display().to_string(),
                &std::fs::read(&path).unwrap(),
            );
        }
    }
    let mut rng = Rng(0x4845_5241_4c44_2d31);
    // Random bytes, half of them behind a plausible frame and request header prefix.
    const RANDOM: usize = 200_000;
    let keys: Vec<i16> = seeds
        .iter()
        .map(|(_, b)| i16::from_be_bytes([b[4], b[5]]))
        .collect();
    for _ in 0..RANDOM {
        let n = rng.below(200);
        let mut input = rng.bytes(n);
        if rng.below(2) == 0 {
            let key = keys[rng.below(keys.len())];
            let mut prefix = Vec::new();
            prefix.extend_from_slice(&(n as i32 + 8).to_be_bytes());
            prefix.extend_from_slice(&key.to_be_bytes());
            prefix.extend_from_slice(&(rng.below(18) as i16).to_be_bytes());
            prefix.extend_from_slice(&7i32.to_be_bytes());
            input.splice(0..0, prefix);
        }
        stats.run(|| "random input".into(), &input);
    }
    // Mutations of valid requests.
    const MUTATIONS: usize = 100_000;
    for i in 0..MUTATIONS {
        let (name, seed) = &seeds[i % seeds.len()];
        let input = mutate(&mut rng, seed);
        stats.run(|| format!("a mutation of {name}"), &input);
    }
    eprintln!(
        "decode_request: {} inputs ({} seeds of {} APIs, {RANDOM} random, {MUTATIONS} mutated) \
         in {:?}: no panic; {} requests decoded; {} bodies skipped because kafka-protocol 0.18 \
         would reserve a huge array for them (the broker aborts on those)",
        stats.inputs,
        seeds.len(),
        keys.iter().collect::<std::collections::BTreeSet<_>>().len(),
        start.elapsed(),
        stats.requests,
        stats.skipped,
    );
    if let Some((what, input)) = &stats.first_skipped {
        eprintln!("first skipped input ({what}): {}", hex(input));
    }
}

/// Array counts come off the wire; kafka-protocol 0.18 reserves `count` elements before
/// decoding one, so a few bytes can ask for gigabytes. The broker must refuse such a
/// request as undecodable, not abort the process.
#[test]
fn huge_array_counts_are_refused_without_allocating() {
    // Metadata v1: header (key 3, version 1, correlation id, null client id), then a
    // topics array of i32::MAX entries and no entries.
    let mut input = Vec::new();
    input.extend_from_slice(&14i32.to_be_bytes());
    input.extend_from_slice(&[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff]);
    input.extend_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(
        decode_request_unguarded(&input),
        0,
        "Metadata v1 with 2^31-1 topics"
    );
    // Metadata v9 (flexible): compact array length u32::MAX as a varint.
    let mut body = vec![0, 3, 0, 9, 0, 0, 0, 7, 0xff, 0xff, 0];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut input = (body.len() as i32).to_be_bytes().to_vec();
    input.extend_from_slice(&body);
    assert_eq!(
        decode_request_unguarded(&input),
        0,
        "Metadata v9 with 2^32-2 topics"
    );
}

/// The guard of `decode_request` sees what would abort the broker, so fuzzing goes on.
#[test]
fn guarded_decoding_skips_what_kafka_protocol_would_over_allocate() {
    let mut v1 = Vec::new();
    v1.extend_from_slice(&14i32.to_be_bytes());
    v1.extend_from_slice(&[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff]);
    v1.extend_from_slice(&i32::MAX.to_be_bytes());
    let mut body = vec![0, 3, 0, 9, 0, 0, 0, 7, 0xff, 0xff, 0];
    body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
    let mut v9 = (body.len() as i32).to_be_bytes().to_vec();
    v9.extend_from_slice(&body);
    for input in [v1, v9] {
        let d = decode_request(&input);
        assert_eq!(d.requests, 0);
        assert!(d.skipped >= 1, "{d:?}");
    }
    // A large count that the bytes can hold is not skipped.
    let fetch = &seeds()
        .into_iter()
        .find(|(n, _)| n == "Fetch-v12")
        .unwrap()
        .1;
    assert_eq!(
        decode_request(fetch),
        Decoded {
            requests: 1,
            skipped: 0
        }
    );
}

// ---------------------------------------------------------------- live broker

static PANICS: AtomicUsize = AtomicUsize::new(0);

/// Sends `frame` on a fresh connection; `true` when the broker answered or closed the
/// connection, `false` when it is still working on it (a long poll, a JoinGroup wait).
async fn send(addr: SocketAddr, frame: &[u8]) -> bool {
    let mut s = TcpStream::connect(addr)
        .await
        .expect("the broker accepts connections");
    let _ = s.write_all(frame).await;
    let _ = s.shutdown().await;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_millis(300), s.read_to_end(&mut buf))
        .await
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_broker_survives_mutated_requests() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        previous(info);
    }));
    let dir = tempfile::tempdir().unwrap();
    let mut config = BrokerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    // Mutated CreateTopics may ask for any count: keep each topic small.
    config.max_partitions_per_topic = 4;
    let broker = Broker::start(config).await.expect("broker starts");
    let addr = broker.kafka_addr();
    let seeds = seeds();
    for (name, seed) in &seeds {
        assert!(
            send(addr, seed).await || name.starts_with("JoinGroup"),
            "{name}"
        );
    }
    // The 18-byte Metadata v1 request declaring 2^31-1 topics used to abort the broker.
    let mut huge = Vec::new();
    huge.extend_from_slice(&14i32.to_be_bytes());
    huge.extend_from_slice(&[0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff]);
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    assert!(
        send(addr, &huge).await,
        "the huge-count request is refused at once"
    );
    let mut rng = Rng(0x6c69_7665_2d31);
    let budget = Duration::from_secs(20);
    let start = Instant::now();
    let (mut sent, mut pending) = (0, 0);
    while sent < 3000 && start.elapsed() < budget {
        let (_, seed) = &seeds[rng.below(seeds.len())];
        let input = mutate(&mut rng, seed);
        // Inputs that once aborted the process (huge wire array counts) are sent too:
        // with the patched kafka-protocol they are refused like any undecodable frame.
        if !send(addr, &input).await {
            pending += 1;
        }
        sent += 1;
    }
    // Still serving: a fresh connection gets an ApiVersions answer.
    let probe = frame(ApiKey::ApiVersions, 0, &ApiVersionsRequest::default()).unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&probe).await.unwrap();
    let mut len = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len))
        .await
        .expect("the broker still answers")
        .unwrap();
    eprintln!(
        "live broker: {sent} mutated requests in {:?}, {pending} still waiting after 300 ms \
         (long polls, joins), {} panics",
        start.elapsed(),
        PANICS.load(Ordering::SeqCst)
    );
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a broker task panicked (see above)"
    );
    broker.shutdown().await.unwrap();
}
