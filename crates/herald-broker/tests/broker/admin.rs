use kafka_protocol::{
    messages::{
        BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
        CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse, DeleteTopicsRequest,
        DeleteTopicsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
        create_partitions_request::{CreatePartitionsAssignment, CreatePartitionsTopic},
        create_topics_request::{CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig},
        delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic},
        delete_topics_request::DeleteTopicState,
        describe_configs_request::DescribeConfigsResource,
        describe_configs_response::DescribeConfigsResult,
        incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig},
    },
    protocol::StrBytes,
};

use crate::common::{Client, batch, decode_all, rec, start, topic_name};

fn creatable(name: &str, partitions: i32, rf: i16, configs: &[(&str, &str)]) -> CreatableTopic {
    let mut t = CreatableTopic::default();
    t.name = topic_name(name);
    t.num_partitions = partitions;
    t.replication_factor = rf;
    t.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut c = CreatableTopicConfig::default();
            c.name = StrBytes::from_string(k.to_string());
            c.value = Some(StrBytes::from_string(v.to_string()));
            c
        })
        .collect();
    t
}

async fn create(
    c: &mut Client,
    version: i16,
    topics: Vec<CreatableTopic>,
    validate_only: bool,
) -> CreateTopicsResponse {
    let mut req = CreateTopicsRequest::default();
    req.topics = topics;
    req.timeout_ms = 5000;
    req.validate_only = validate_only;
    c.call(version, req).await
}

#[tokio::test]
async fn create_topics_checks_everything() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let resp = create(
        &mut c,
        7,
        vec![
            creatable("good", 3, 1, &[("retention.ms", "60000")]),
            creatable("defaults", -1, -1, &[]),
            creatable("bad name", 1, 1, &[]),
            creatable("replicated", 1, 3, &[]),
            creatable("zero", 0, 1, &[]),
            creatable("badcfg", 1, 1, &[("retention.ms", "soon")]),
            creatable("unknowncfg", 1, 1, &[("compression.typo", "x")]),
            creatable("compact", 1, 1, &[("cleanup.policy", "compact")]),
            creatable("dup", 1, 1, &[]),
            creatable("dup", 1, 1, &[]),
        ],
        false,
    )
    .await;
    let codes: Vec<i16> = resp.topics.iter().map(|t| t.error_code).collect();
    assert_eq!(codes, [0, 0, 17, 38, 37, 40, 40, 40, 42, 42]);
    let good = &resp.topics[0];
    assert!(!good.topic_id.is_nil(), "v7 returns the topic id");
    assert_eq!(good.num_partitions, 3);
    assert_eq!(good.replication_factor, 1);
    let configs = good.configs.as_ref().unwrap();
    let retention = configs
        .iter()
        .find(|c| c.name.as_str() == "retention.ms")
        .unwrap();
    assert_eq!(retention.value.as_deref(), Some("60000"));
    assert_eq!(retention.config_source, 1);
    assert_eq!(
        resp.topics[1].num_partitions, 1,
        "-1 means the default count"
    );
    assert!(
        resp.topics[2]
            .error_message
            .as_ref()
            .unwrap()
            .contains("bad name")
    );

    // Already exists; validate_only changes nothing; an explicit assignment works.
    let resp = create(&mut c, 2, vec![creatable("good", 1, 1, &[])], false).await;
    assert_eq!(resp.topics[0].error_code, 36);
    let resp = create(&mut c, 4, vec![creatable("dry", 2, 1, &[])], true).await;
    assert_eq!(resp.topics[0].error_code, 0);
    assert!(broker.broker().topics().get("dry").is_none());
    let mut assigned = creatable("assigned", -1, -1, &[]);
    assigned.assignments = (0..2)
        .map(|p| {
            let mut a = CreatableReplicaAssignment::default();
            a.partition_index = p;
            a.broker_ids = vec![BrokerId(1)];
            a
        })
        .collect();
    let mut elsewhere = creatable("elsewhere", -1, -1, &[]);
    let mut a = CreatableReplicaAssignment::default();
    a.broker_ids = vec![BrokerId(2)];
    elsewhere.assignments = vec![a];
    let resp = create(&mut c, 5, vec![assigned, elsewhere], false).await;
    assert_eq!(resp.topics[0].error_code, 0);
    assert_eq!(resp.topics[1].error_code, 39);
    assert_eq!(
        broker
            .broker()
            .topics()
            .get("assigned")
            .unwrap()
            .partition_count(),
        2
    );
    broker.shutdown().await.unwrap();
}

async fn describe(
    c: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> DescribeConfigsResult {
    let mut r = DescribeConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = StrBytes::from_string(name.to_string());
    r.configuration_keys = keys.map(|k| {
        k.iter()
            .map(|s| StrBytes::from_string(s.to_string()))
            .collect()
    });
    let mut req = DescribeConfigsRequest::default();
    req.resources = vec![r];
    req.include_synonyms = true;
    req.include_documentation = version >= 3;
    let mut resp: DescribeConfigsResponse = c.call(version, req).await;
    resp.results.remove(0)
}

fn value(r: &DescribeConfigsResult, key: &str) -> (String, i8) {
    let e = r
        .configs
        .iter()
        .find(|c| c.name.as_str() == key)
        .unwrap_or_else(|| panic!("{key} described"));
    (e.value.as_deref().unwrap().to_string(), e.config_source)
}

async fn alter(
    c: &mut Client,
    topic: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    let mut r = AlterConfigsResource::default();
    r.resource_type = 2;
    r.resource_name = StrBytes::from_string(topic.to_string());
    r.configs = ops
        .iter()
        .map(|(k, op, v)| {
            let mut a = AlterableConfig::default();
            a.name = StrBytes::from_string(k.to_string());
            a.config_operation = *op;
            a.value = v.map(|v| StrBytes::from_string(v.to_string()));
            a
        })
        .collect();
    let mut req = IncrementalAlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    let resp: IncrementalAlterConfigsResponse = c.call(1, req).await;
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

#[tokio::test]
async fn describe_and_alter_topic_configs() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[("retention.ms", "60000")]).await;
    for version in [1, 2, 3, 4] {
        let r = describe(&mut c, version, 2, "t", None).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.configs.len(), 20, "v{version}");
        assert_eq!(
            value(&r, "confluent.value.schema.validation"),
            ("false".into(), 5)
        );
        assert_eq!(
            value(&r, "confluent.key.schema.validation"),
            ("false".into(), 5)
        );
        assert_eq!(value(&r, "retention.ms"), ("60000".into(), 1));
        assert_eq!(value(&r, "retention.bytes"), ("-1".into(), 5));
        assert_eq!(value(&r, "segment.bytes"), ((1u64 << 30).to_string(), 5));
        assert_eq!(value(&r, "segment.ms"), ("604800000".into(), 5));
        assert_eq!(value(&r, "max.message.bytes"), ("1048588".into(), 5));
        assert_eq!(value(&r, "cleanup.policy"), ("delete".into(), 5));
        assert_eq!(value(&r, "herald.durability"), ("group-commit".into(), 5));
        let retention = r
            .configs
            .iter()
            .find(|c| c.name.as_str() == "retention.ms")
            .unwrap();
        let synonyms: Vec<(&str, Option<&str>, i8)> = retention
            .synonyms
            .iter()
            .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
            .collect();
        assert_eq!(
            synonyms,
            vec![
                ("retention.ms", Some("60000"), 1),
                ("log.retention.ms", Some("604800000"), 5)
            ],
            "the override, then the default under Kafka's broker name"
        );
        if version >= 3 {
            assert_eq!(retention.config_type, 5, "LONG");
            assert!(retention.documentation.is_some());
        }
    }
    let r = describe(&mut c, 4, 2, "t", Some(&["segment.bytes", "no.such.key"])).await;
    assert_eq!(r.configs.len(), 1);
    assert_eq!(describe(&mut c, 1, 2, "missing", None).await.error_code, 3);
    let b = describe(&mut c, 4, 4, "1", None).await;
    assert_eq!(b.error_code, 0);
    assert_eq!(value(&b, "num.partitions"), ("1".into(), 5));
    assert_eq!(value(&b, "log.retention.ms"), ("604800000".into(), 5));
    assert_eq!(
        value(&b, "log.message.timestamp.type"),
        ("CreateTime".into(), 5)
    );
    assert_eq!(value(&b, "min.insync.replicas"), ("1".into(), 5));
    assert_eq!(value(&b, "compression.type"), ("producer".into(), 5));
    assert!(b.configs.iter().all(|e| e.read_only));
    assert_eq!(describe(&mut c, 4, 4, "7", None).await.error_code, 42);

    // SET and DELETE; the change reaches the log and the catalog.
    let (code, msg) = alter(
        &mut c,
        "t",
        &[
            ("retention.ms", 1, None),
            ("herald.durability", 0, Some("every-append")),
            ("max.message.bytes", 0, Some("5000")),
        ],
        false,
    )
    .await;
    assert_eq!(code, 0, "{msg:?}");
    let r = describe(&mut c, 4, 2, "t", None).await;
    assert_eq!(value(&r, "retention.ms"), ("604800000".into(), 5));
    assert_eq!(value(&r, "herald.durability"), ("every-append".into(), 1));
    assert_eq!(value(&r, "max.message.bytes"), ("5000".into(), 1));
    let big = vec![b'x'; 6000];
    assert_eq!(
        c.produce(9, -1, "t", 0, batch(&[rec(1, &big)]))
            .await
            .error_code,
        10
    );

    // Bad values, unknown keys, compact, validate_only.
    for ops in [
        vec![("segment.bytes", 0i8, Some("12"))],
        vec![("retention.ms", 0, Some("x"))],
        vec![("no.such", 0, Some("1"))],
        vec![("cleanup.policy", 0, Some("compact"))],
        vec![("retention.ms", 0, None)],
        vec![("retention.ms", 3, Some("1"))],
        vec![
            ("retention.ms", 0, Some("1")),
            ("retention.ms", 0, Some("2")),
        ],
    ] {
        let (code, msg) = alter(&mut c, "t", &ops, false).await;
        assert_eq!(code, 40, "{ops:?}: {msg:?}");
        assert!(msg.is_some());
    }
    assert_eq!(
        alter(&mut c, "t", &[("retention.ms", 0, Some("1"))], true)
            .await
            .0,
        0
    );
    assert_eq!(
        value(&describe(&mut c, 4, 2, "t", None).await, "retention.ms").1,
        5
    );
    assert_eq!(
        alter(&mut c, "missing", &[("retention.ms", 0, Some("1"))], false)
            .await
            .0,
        3
    );

    // Overrides survive a restart.
    broker.shutdown().await.unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let r = describe(&mut c, 4, 2, "t", None).await;
    assert_eq!(value(&r, "herald.durability"), ("every-append".into(), 1));
    assert_eq!(value(&r, "max.message.bytes"), ("5000".into(), 1));
    broker.shutdown().await.unwrap();
}

/// A legacy AlterConfigs (KIP-133) of one resource at `version`.
async fn alter_legacy(
    c: &mut Client,
    version: i16,
    resource_type: i8,
    name: &str,
    configs: &[(&str, Option<&str>)],
    validate_only: bool,
) -> (i16, Option<String>) {
    use kafka_protocol::messages::{
        AlterConfigsRequest, AlterConfigsResponse, alter_configs_request,
    };
    let mut r = alter_configs_request::AlterConfigsResource::default();
    r.resource_type = resource_type;
    r.resource_name = StrBytes::from_string(name.to_string());
    r.configs = configs
        .iter()
        .map(|(k, v)| {
            let mut a = alter_configs_request::AlterableConfig::default();
            a.name = StrBytes::from_string(k.to_string());
            a.value = v.map(|v| StrBytes::from_string(v.to_string()));
            a
        })
        .collect();
    let mut req = AlterConfigsRequest::default();
    req.resources = vec![r];
    req.validate_only = validate_only;
    let resp: AlterConfigsResponse = c.call(version, req).await;
    let r = &resp.responses[0];
    assert_eq!(r.resource_name.as_str(), name);
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// The legacy AlterConfigs replaces a topic's overrides with exactly those given (KIP-133);
/// a bad request changes nothing.
#[tokio::test]
async fn legacy_alter_configs_replaces_every_override() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[("retention.ms", "60000")]).await;
    for version in [0, 1, 2] {
        let ms = (70_000 + i64::from(version)).to_string();
        let (code, msg) = alter_legacy(
            &mut c,
            version,
            2,
            "t",
            &[
                ("max.message.bytes", Some("5000")),
                ("retention.ms", Some(&ms)),
            ],
            false,
        )
        .await;
        assert_eq!(code, 0, "v{version}: {msg:?}");
        let r = describe(&mut c, 4, 2, "t", None).await;
        assert_eq!(value(&r, "retention.ms"), (ms.clone(), 1), "v{version}");
        assert_eq!(value(&r, "max.message.bytes"), ("5000".into(), 1));
    }
    // Not named: back to its default.
    let (code, msg) =
        alter_legacy(&mut c, 1, 2, "t", &[("retention.ms", Some("80000"))], false).await;
    assert_eq!(code, 0, "{msg:?}");
    let r = describe(&mut c, 4, 2, "t", None).await;
    assert_eq!(value(&r, "retention.ms"), ("80000".into(), 1));
    assert_eq!(value(&r, "max.message.bytes"), ("1048588".into(), 5));

    // validate_only and every refusal leave the overrides as they are.
    let (code, _) = alter_legacy(&mut c, 1, 2, "t", &[("retention.ms", Some("1"))], true).await;
    assert_eq!(code, 0);
    for (configs, want) in [
        (&[("no.such.key", Some("1"))][..], 40),
        (&[("retention.ms", None)][..], 40),
        (
            &[("retention.ms", Some("5")), ("retention.ms", Some("6"))][..],
            40,
        ),
        (&[("retention.ms", Some("soon"))][..], 40),
    ] {
        let (code, msg) = alter_legacy(&mut c, 1, 2, "t", configs, false).await;
        assert_eq!(code, want, "{configs:?}: {msg:?}");
        assert!(msg.is_some(), "a refusal says why");
    }
    let r = describe(&mut c, 4, 2, "t", None).await;
    assert_eq!(value(&r, "retention.ms"), ("80000".into(), 1));

    let (code, _) = alter_legacy(&mut c, 1, 2, "missing", &[], false).await;
    assert_eq!(code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let (code, msg) =
        alter_legacy(&mut c, 1, 4, "1", &[("num.partitions", Some("3"))], false).await;
    assert_eq!(code, 42, "broker configs are static: {msg:?}");
}

/// `message.timestamp.type=LogAppendTime`: the broker stamps each batch with its append
/// time (in the stored batch, which consumers read, and in the produce response);
/// CreateTime, the default, keeps the producer's timestamps; other values are refused.
#[tokio::test]
async fn log_append_time_topics_carry_the_brokers_clock() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("stamped", 1, &[("message.timestamp.type", "LogAppendTime")])
        .await;
    c.create_topic("created", 1, &[]).await;
    let r = describe(&mut c, 4, 2, "stamped", None).await;
    assert_eq!(
        value(&r, "message.timestamp.type"),
        ("LogAppendTime".into(), 1)
    );
    let r = describe(&mut c, 4, 2, "created", None).await;
    assert_eq!(
        value(&r, "message.timestamp.type"),
        ("CreateTime".into(), 5)
    );

    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let p = c
        .produce(
            9,
            -1,
            "stamped",
            0,
            batch(&[rec(1_000, b"a"), rec(2_000, b"b")]),
        )
        .await;
    assert_eq!(p.error_code, 0);
    assert!(p.log_append_time_ms >= before, "{}", p.log_append_time_ms);
    let stored = c.fetch(12, "stamped", 0, 0, 0, 1).await;
    let bytes = stored.records.unwrap();
    let header = herald_format::batch::BatchHeader::parse(&bytes).unwrap();
    assert_eq!(
        header.attributes & herald_format::batch::ATTR_TIMESTAMP_TYPE,
        0x08
    );
    assert_eq!(header.max_timestamp, p.log_append_time_ms);
    let records = decode_all(&bytes);
    assert!(records.iter().all(|r| r.timestamp == p.log_append_time_ms));

    let p = c
        .produce(9, -1, "created", 0, batch(&[rec(1_000, b"a")]))
        .await;
    assert_eq!(
        p.log_append_time_ms, -1,
        "CreateTime answers -1, as Kafka does"
    );
    let stored = c.fetch(12, "created", 0, 0, 0, 1).await;
    assert_eq!(decode_all(&stored.records.unwrap())[0].timestamp, 1_000);

    // Switching a topic to LogAppendTime stamps what comes after.
    let (code, msg) = alter(
        &mut c,
        "created",
        &[("message.timestamp.type", 0, Some("LogAppendTime"))],
        false,
    )
    .await;
    assert_eq!(code, 0, "{msg:?}");
    let p = c
        .produce(9, -1, "created", 0, batch(&[rec(1_000, b"b")]))
        .await;
    assert!(p.log_append_time_ms >= before);
    let (code, msg) = alter(
        &mut c,
        "created",
        &[("message.timestamp.type", 0, Some("BrokerTime"))],
        false,
    )
    .await;
    assert_eq!(code, 40, "INVALID_CONFIG: {msg:?}");
}

/// `compression.type`: a topic that names a codec stores every batch in it, whatever the
/// producer sent (records, producer fields and order unchanged); `producer` keeps the
/// producer's codec; unknown codecs are refused.
#[tokio::test]
async fn compression_type_recompresses_on_append() {
    use herald_format::{batch::BatchHeader, records::Compression};

    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("z", 1, &[("compression.type", "zstd")])
        .await;
    c.create_topic("plain", 1, &[("compression.type", "uncompressed")])
        .await;
    c.create_topic("asis", 1, &[]).await;
    let r = describe(&mut c, 4, 2, "asis", None).await;
    assert_eq!(value(&r, "compression.type"), ("producer".into(), 5));
    let r = describe(&mut c, 4, 2, "z", None).await;
    assert_eq!(value(&r, "compression.type"), ("zstd".into(), 1));

    let payload = b"the same text again and again, the same text again and again";
    let recs = [rec(1_000, payload), rec(2_000, b"b"), rec(3_000, payload)];
    for (topic, sent, stored) in [
        ("z", Compression::Lz4, 4),
        ("z", Compression::None, 4),
        ("z", Compression::Zstd, 4),
        ("plain", Compression::Gzip, 0),
        ("asis", Compression::Snappy, 2),
    ] {
        let p = c
            .produce(
                9,
                -1,
                topic,
                0,
                crate::common::batch_with(sent, None, &recs),
            )
            .await;
        assert_eq!(p.error_code, 0, "{topic} {sent:?}");
        let fetched = c.fetch(12, topic, 0, p.base_offset, 0, 1).await;
        let bytes = fetched.records.unwrap();
        let header = BatchHeader::parse(&bytes).unwrap();
        assert_eq!(header.compression(), stored, "{topic}, sent {sent:?}");
        assert_eq!(header.base_offset, p.base_offset);
        let got = decode_all(&bytes[..header.total_len()]);
        let want: Vec<(i64, Option<Vec<u8>>)> = recs
            .iter()
            .map(|r| (r.ts, r.value.map(<[u8]>::to_vec)))
            .collect();
        let got: Vec<(i64, Option<Vec<u8>>)> =
            got.into_iter().map(|r| (r.timestamp, r.value)).collect();
        assert_eq!(got, want, "{topic}, sent {sent:?}");
    }

    let (code, msg) = alter(
        &mut c,
        "asis",
        &[("compression.type", 0, Some("brotli"))],
        false,
    )
    .await;
    assert_eq!(code, 40, "INVALID_CONFIG: {msg:?}");
    let (code, msg) = alter(
        &mut c,
        "asis",
        &[("compression.type", 0, Some("lz4"))],
        false,
    )
    .await;
    assert_eq!(code, 0, "{msg:?}");
    let p = c
        .produce(
            9,
            -1,
            "asis",
            0,
            crate::common::batch_with(Compression::None, None, &recs),
        )
        .await;
    let fetched = c.fetch(12, "asis", 0, p.base_offset, 0, 1).await;
    let header = BatchHeader::parse(&fetched.records.unwrap()).unwrap();
    assert_eq!(header.compression(), 3, "lz4 from now on");
}

/// KIP-937 bounds: a CreateTime topic with `message.timestamp.before.max.ms` /
/// `after.max.ms` refuses a batch with a record too old or too far ahead (INVALID_TIMESTAMP,
/// nothing written); the defaults accept any timestamp; LogAppendTime topics ignore them.
#[tokio::test]
async fn timestamp_bounds_refuse_records_too_old_or_too_new() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let bounds = [
        ("message.timestamp.before.max.ms", "3600000"),
        ("message.timestamp.after.max.ms", "60000"),
    ];
    c.create_topic("bounded", 1, &bounds).await;
    c.create_topic("open", 1, &[]).await;
    let r = describe(&mut c, 4, 2, "bounded", None).await;
    assert_eq!(
        value(&r, "message.timestamp.before.max.ms"),
        ("3600000".into(), 1)
    );
    let r = describe(&mut c, 4, 2, "open", None).await;
    assert_eq!(
        value(&r, "message.timestamp.after.max.ms"),
        (i64::MAX.to_string(), 5)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let ok = c
        .produce(9, -1, "bounded", 0, batch(&[rec(now - 1_000, b"a")]))
        .await;
    assert_eq!(ok.error_code, 0);
    for ts in [now - 7_200_000, now + 600_000] {
        let p = c
            .produce(
                9,
                -1,
                "bounded",
                0,
                batch(&[rec(now, b"fine"), rec(ts, b"bad")]),
            )
            .await;
        assert_eq!(p.error_code, 32, "INVALID_TIMESTAMP for {ts}");
        let msg = p.error_message.map(|m| m.to_string()).unwrap_or_default();
        assert!(msg.contains("record 1"), "{msg}");
    }
    let fetched = c.fetch(12, "bounded", 0, 0, 0, 1).await;
    assert_eq!(
        decode_all(&fetched.records.unwrap()).len(),
        1,
        "nothing else written"
    );
    let p = c
        .produce(9, -1, "open", 0, batch(&[rec(1_000, b"old")]))
        .await;
    assert_eq!(p.error_code, 0, "no bounds by default");

    let (code, msg) = alter(
        &mut c,
        "bounded",
        &[("message.timestamp.type", 0, Some("LogAppendTime"))],
        false,
    )
    .await;
    assert_eq!(code, 0, "{msg:?}");
    let p = c
        .produce(9, -1, "bounded", 0, batch(&[rec(1_000, b"stamped")]))
        .await;
    assert_eq!(p.error_code, 0, "LogAppendTime replaces the timestamp");
    let (code, _) = alter(
        &mut c,
        "bounded",
        &[("message.timestamp.after.max.ms", 0, Some("-5"))],
        false,
    )
    .await;
    assert_eq!(code, 40, "INVALID_CONFIG");
}

#[tokio::test]
async fn delete_topics_by_name_and_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("a", 2, &[]).await;
    c.create_topic("b", 1, &[]).await;
    c.produce(9, -1, "a", 1, batch(&[rec(1, b"x")])).await;
    let mut req = DeleteTopicsRequest::default();
    req.topic_names = vec![topic_name("a"), topic_name("zzz")];
    let resp: DeleteTopicsResponse = c.call(4, req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[1].error_code, 3);
    assert!(!dir.path().join("topics/a-1").exists(), "data is gone");

    let id = broker.broker().topics().get("b").unwrap().id();
    let mut req = DeleteTopicsRequest::default();
    let mut by_id = DeleteTopicState::default();
    by_id.topic_id = id;
    let mut unknown = DeleteTopicState::default();
    unknown.topic_id = uuid::Uuid::from_u128(7);
    req.topics = vec![by_id, unknown];
    let resp: DeleteTopicsResponse = c.call(6, req).await;
    assert_eq!(resp.responses[0].error_code, 0);
    assert_eq!(resp.responses[0].name.as_ref().unwrap().as_str(), "b");
    assert_eq!(resp.responses[1].error_code, 100, "UNKNOWN_TOPIC_ID");
    assert!(broker.broker().topics().list().is_empty());

    // A new topic of a deleted name starts empty.
    c.create_topic("a", 2, &[]).await;
    let p = c.fetch(12, "a", 1, 0, 0, 0).await;
    assert_eq!(p.high_watermark, 0);
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn create_partitions_only_grows() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    let topic = |name: &str, count: i32, assign: Option<i32>| {
        let mut t = CreatePartitionsTopic::default();
        t.name = topic_name(name);
        t.count = count;
        t.assignments = assign.map(|b| {
            let mut a = CreatePartitionsAssignment::default();
            a.broker_ids = vec![BrokerId(b)];
            vec![a]
        });
        t
    };
    for version in [0, 3] {
        let mut req = CreatePartitionsRequest::default();
        req.timeout_ms = 5000;
        req.topics = vec![
            topic("t", 1, None),
            topic("missing", 2, None),
            topic("t", 3, Some(9)),
        ];
        let resp: CreatePartitionsResponse = c.call(version, req).await;
        let codes: Vec<i16> = resp.results.iter().map(|r| r.error_code).collect();
        assert_eq!(codes, [37, 3, 39], "v{version}");
    }
    let mut req = CreatePartitionsRequest::default();
    req.topics = vec![topic("t", 3, None)];
    req.validate_only = true;
    let resp: CreatePartitionsResponse = c.call(2, req.clone()).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(c.metadata(9, &["t"]).await.topics[0].partitions.len(), 1);
    req.validate_only = false;
    let resp: CreatePartitionsResponse = c.call(2, req).await;
    assert_eq!(resp.results[0].error_code, 0);
    assert_eq!(c.metadata(9, &["t"]).await.topics[0].partitions.len(), 3);
    assert_eq!(
        c.produce(9, -1, "t", 2, batch(&[rec(1, b"x")]))
            .await
            .error_code,
        0
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn delete_records_moves_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("t", 1, &[]).await;
    for i in 0..4 {
        c.produce(9, -1, "t", 0, batch(&[rec(i, b"x")])).await;
    }
    let delete = |offset: i64, partition: i32| {
        let mut p = DeleteRecordsPartition::default();
        p.partition_index = partition;
        p.offset = offset;
        let mut t = DeleteRecordsTopic::default();
        t.name = topic_name("t");
        t.partitions = vec![p];
        let mut req = DeleteRecordsRequest::default();
        req.topics = vec![t];
        req.timeout_ms = 5000;
        req
    };
    let resp: DeleteRecordsResponse = c.call(0, delete(2, 0)).await;
    let p = &resp.topics[0].partitions[0];
    assert_eq!((p.error_code, p.low_watermark), (0, 2));
    assert_eq!(
        c.fetch(12, "t", 0, 1, 0, 0).await.error_code,
        1,
        "before the start"
    );
    let fetched = c.fetch(12, "t", 0, 2, 0, 0).await;
    assert_eq!(fetched.log_start_offset, 2);
    let resp: DeleteRecordsResponse = c.call(2, delete(99, 0)).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 1);
    let resp: DeleteRecordsResponse = c.call(2, delete(0, 3)).await;
    assert_eq!(resp.topics[0].partitions[0].error_code, 3);
    let resp: DeleteRecordsResponse = c.call(1, delete(-1, 0)).await;
    assert_eq!(
        resp.topics[0].partitions[0].low_watermark, 4,
        "-1 means the high watermark"
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn broker_settings_from_the_configuration_are_described_as_static() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::common::config(dir.path());
    config.default_partitions = 4;
    config.default_topic_config.retention_age = Some(std::time::Duration::from_secs(3600));
    let broker = herald_broker::Broker::start(config).await.unwrap();
    let mut c = Client::connect(broker.kafka_addr()).await;
    let b = describe(&mut c, 4, 4, "", None).await;
    assert_eq!(value(&b, "num.partitions"), ("4".into(), 4));
    assert_eq!(value(&b, "log.retention.ms"), ("3600000".into(), 4));
    assert_eq!(value(&b, "log.segment.bytes").1, 5, "not set: the default");
    let partitions = b
        .configs
        .iter()
        .find(|e| e.name.as_str() == "num.partitions")
        .unwrap();
    let synonyms: Vec<(Option<&str>, i8)> = partitions
        .synonyms
        .iter()
        .map(|s| (s.value.as_deref(), s.source))
        .collect();
    assert_eq!(synonyms, vec![(Some("4"), 4), (Some("1"), 5)]);

    // A topic without an override inherits the static setting, and says so.
    c.create_topic("t", 1, &[("retention.ms", "1000")]).await;
    c.create_topic("u", 1, &[]).await;
    let r = describe(&mut c, 4, 2, "u", Some(&["retention.ms"])).await;
    assert_eq!(value(&r, "retention.ms"), ("3600000".into(), 4));
    let r = describe(&mut c, 4, 2, "t", Some(&["retention.ms"])).await;
    let synonyms: Vec<(&str, Option<&str>, i8)> = r.configs[0]
        .synonyms
        .iter()
        .map(|s| (s.name.as_str(), s.value.as_deref(), s.source))
        .collect();
    assert_eq!(
        synonyms,
        vec![
            ("retention.ms", Some("1000"), 1),
            ("log.retention.ms", Some("3600000"), 4),
            ("log.retention.ms", Some("604800000"), 5),
        ]
    );
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn min_insync_replicas_above_one_refuses_acks_all_produces() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("strict", 1, &[("min.insync.replicas", "2")])
        .await;
    c.create_topic("plain", 1, &[("min.insync.replicas", "1")])
        .await;
    let r = describe(&mut c, 4, 2, "strict", Some(&["min.insync.replicas"])).await;
    assert_eq!(value(&r, "min.insync.replicas"), ("2".into(), 1));

    let p = c
        .produce(9, -1, "strict", 0, batch(&[rec(1, b"all")]))
        .await;
    assert_eq!(p.error_code, 19, "NOT_ENOUGH_REPLICAS");
    let msg = p.error_message.map(|m| m.to_string()).unwrap_or_default();
    assert!(msg.contains("min.insync.replicas"), "{msg}");
    let p = c
        .produce(9, 1, "strict", 0, batch(&[rec(1, b"leader")]))
        .await;
    assert_eq!(p.error_code, 0, "acks=1 needs only the leader");
    let p = c.produce(9, -1, "plain", 0, batch(&[rec(1, b"all")])).await;
    assert_eq!(p.error_code, 0);
    // acks=1 is answered before the fsync; the long poll waits until it is readable.
    let fetched = c.fetch(12, "strict", 0, 0, 5_000, 1).await;
    let values: Vec<Vec<u8>> = decode_all(&fetched.records.unwrap())
        .into_iter()
        .map(|r| r.value.unwrap().to_vec())
        .collect();
    assert_eq!(
        values,
        vec![b"leader".to_vec()],
        "the refused batch is not written"
    );

    for bad in ["0", "two", "-1"] {
        let (code, msg) = alter(
            &mut c,
            "plain",
            &[("min.insync.replicas", 0, Some(bad))],
            false,
        )
        .await;
        assert_eq!(code, 40, "{bad}: {msg:?}");
    }
    let (code, msg) = alter(&mut c, "strict", &[("min.insync.replicas", 1, None)], false).await;
    assert_eq!(code, 0, "{msg:?}");
    let p = c
        .produce(9, -1, "strict", 0, batch(&[rec(1, b"now")]))
        .await;
    assert_eq!(p.error_code, 0, "back to the default of 1");
    broker.shutdown().await.unwrap();
}

#[tokio::test]
async fn message_format_version_is_accepted_and_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    c.create_topic("old", 1, &[("message.format.version", "0.10.2")])
        .await;
    let r = describe(&mut c, 4, 2, "old", Some(&["message.format.version"])).await;
    assert_eq!(value(&r, "message.format.version"), ("0.10.2".into(), 1));
    c.create_topic("new", 1, &[]).await;
    let r = describe(&mut c, 4, 2, "new", Some(&["message.format.version"])).await;
    assert_eq!(value(&r, "message.format.version"), ("3.0-IV1".into(), 5));
    let p = c
        .produce(9, -1, "old", 0, batch(&[rec(1, b"v2 anyway")]))
        .await;
    assert_eq!(p.error_code, 0);
    for good in ["2.8", "3.0-IV1", "0.11.0", "0.10.0.0", "0.10.0-IV1"] {
        let (code, msg) = alter(
            &mut c,
            "old",
            &[("message.format.version", 0, Some(good))],
            false,
        )
        .await;
        assert_eq!(code, 0, "{good}: {msg:?}");
    }
    for bad in ["latest", "3", "3.0-IVx", "", "1.2.3.4.5"] {
        let (code, _) = alter(
            &mut c,
            "old",
            &[("message.format.version", 0, Some(bad))],
            false,
        )
        .await;
        assert_eq!(code, 40, "{bad:?}");
    }
    broker.shutdown().await.unwrap();
}

/// librdkafka's 0081 creates topics with `delete.retention.ms`: Kafka accepts the
/// compaction settings on every topic (they shape compacted topics only), with its ranges.
#[tokio::test]
async fn compaction_settings_are_accepted_on_every_topic() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let set = [
        ("delete.retention.ms", "3600000"),
        ("min.compaction.lag.ms", "1000"),
        ("max.compaction.lag.ms", "60000"),
        ("min.cleanable.dirty.ratio", "0.25"),
    ];
    c.create_topic("compactable", 1, &set).await;
    let r = describe(&mut c, 4, 2, "compactable", None).await;
    for (key, want) in set {
        assert_eq!(value(&r, key), (want.to_string(), 1), "{key}");
    }
    c.create_topic("plain", 1, &[]).await;
    let r = describe(&mut c, 4, 2, "plain", None).await;
    assert_eq!(value(&r, "delete.retention.ms"), ("86400000".into(), 5));
    assert_eq!(value(&r, "min.cleanable.dirty.ratio"), ("0.5".into(), 5));
    let ratio = r
        .configs
        .iter()
        .find(|e| e.name.as_str() == "min.cleanable.dirty.ratio")
        .unwrap();
    assert_eq!(ratio.config_type, 6, "DOUBLE");
    for (key, bad) in [
        ("delete.retention.ms", "-1"),
        ("max.compaction.lag.ms", "0"),
        ("min.cleanable.dirty.ratio", "1.5"),
        ("min.cleanable.dirty.ratio", "half"),
    ] {
        let (code, msg) = alter(&mut c, "plain", &[(key, 0, Some(bad))], false).await;
        assert_eq!(code, 40, "{key}={bad}: {msg:?}");
    }
    broker.shutdown().await.unwrap();
}

/// DescribeCluster (KIP-700), as admin clients and UIs ask for the cluster.
#[tokio::test]
async fn describe_cluster_names_this_broker_as_the_cluster_and_its_controller() {
    use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};
    let dir = tempfile::tempdir().unwrap();
    let broker = start(dir.path()).await;
    let mut c = Client::connect(broker.kafka_addr()).await;
    let meta = c.metadata(12, &[]).await;
    for version in 0..=1 {
        let mut req = DescribeClusterRequest::default();
        req.include_cluster_authorized_operations = version == 1;
        if version >= 1 {
            req.endpoint_type = 1;
        }
        let resp: DescribeClusterResponse = c.call(version, req).await;
        assert_eq!(resp.error_code, 0, "v{version}");
        assert_eq!(Some(&resp.cluster_id), meta.cluster_id.as_ref());
        assert_eq!(resp.controller_id, meta.controller_id);
        assert_eq!(resp.brokers.len(), 1);
        assert_eq!(resp.brokers[0].port, broker.kafka_addr().port() as i32);
        if version == 1 {
            assert_ne!(resp.cluster_authorized_operations & (1 << 8), 0, "DESCRIBE");
        } else {
            assert_eq!(resp.cluster_authorized_operations, i32::MIN, "not asked");
        }
    }
    let mut req = DescribeClusterRequest::default();
    req.endpoint_type = 2;
    let resp: DescribeClusterResponse = c.call(1, req).await;
    assert_eq!(resp.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
    broker.shutdown().await.unwrap();
}
