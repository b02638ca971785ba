//! Confluent's own Python client against Herald: confluent-kafka's SchemaRegistryClient,
//! AvroSerializer, JSONSerializer and ProtobufSerializer register, fetch and serialize
//! against the registry, and a confluent-kafka producer and consumer round-trip values
//! through the broker with those serializers (tests/clients/confluent_sr.py). Both
//! directions of interop are checked: Herald's Rust serdes write records the Python
//! deserializers read, and read the records the Python serializers wrote. The broker runs
//! in-process with the registry installed as its schema-id check, on 127.0.0.1:0.
//!
//! The Python comes from `HERALD_TEST_PYTHON` (`source scripts/test-env.sh` after
//! `bash .ci/run install`); unset, the test prints why and passes, unless
//! `HERALD_REQUIRE_SERVICES=1` (herald-test-support's rule).

mod id_check;

use std::{collections::BTreeMap, path::PathBuf, process::Command, sync::Arc, time::Duration};

use herald_broker::{Acks, Broker, BrokerConfig, NewTopic};
use herald_format::{
    batch::BatchHeader,
    records::{BatchBuilder, Compression, decode_batch},
};
use herald_registry::{
    Registry, RegistryConfig,
    http::{RegistryHttpConfig, RegistryServer},
};
use herald_schema::serde::{
    AvroDeserializer, AvroSerializer, JsonSchemaDeserializer, JsonSchemaSerializer,
    ProtobufDeserializer, ProtobufSerializer, SchemaRegistryClient, topic_subject,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const ORDER_AVRO: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"string"},{"name":"cents","type":"long"},{"name":"tags","type":{"type":"array","items":"string"}}]}"#;
const ORDER_JSON: &str = r#"{"$schema":"http://json-schema.org/draft-07/schema#","title":"Order","type":"object","properties":{"id":{"type":"string"},"cents":{"type":"integer"}},"required":["id","cents"]}"#;
const ORDER_PROTO: &str = "syntax = \"proto3\";\npackage shop;\nmessage Order {\n  string id = 1;\n  int64 cents = 2;\n}\n";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: String,
    cents: i64,
    tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct OrderJson {
    id: String,
    cents: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
struct OrderPb {
    #[prost(string, tag = "1")]
    id: String,
    #[prost(int64, tag = "2")]
    cents: i64,
}

/// The orders the Python script writes (its `orders` list).
fn python_orders() -> Vec<Order> {
    (0..5)
        .map(|i: i64| Order {
            id: format!("o-{i}"),
            cents: 100 * i + 7,
            tags: ["a", "ü"][..(i % 3) as usize]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        })
        .collect()
}

async fn produce(broker: &Broker, topic: &str, values: Vec<Vec<u8>>) {
    let mut b = BatchBuilder::new(Compression::Lz4);
    for v in &values {
        b.push(1_700_000_000_000, None, Some(v.as_slice()), &[]);
    }
    broker
        .produce(topic, 0, b.build().unwrap(), Acks::All)
        .await
        .unwrap();
}

async fn values(broker: &Broker, topic: &str) -> Vec<Vec<u8>> {
    let read = broker.read(topic, 0, 0, 1 << 20).await.unwrap();
    let mut bytes = &read.bytes[..];
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let len = BatchHeader::parse(bytes).unwrap().total_len();
        out.extend(
            decode_batch(&bytes[..len])
                .unwrap()
                .records
                .into_iter()
                .filter_map(|r| r.value),
        );
        bytes = &bytes[len..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafka_python_serializers_round_trip_through_herald() {
    let Some(python) = herald_test_support::python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path(), RegistryConfig::default()).unwrap();
    let server = RegistryServer::bind(
        RegistryHttpConfig::new("127.0.0.1:0".parse().unwrap()),
        registry.clone(),
    )
    .await
    .unwrap();
    let url = format!("http://{}", server.local_addr());
    let mut config = BrokerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap())
        .with_schema_id_check(Arc::new(id_check::IdCheck(registry.clone())));
    // The script's consumer groups have one member each: no need to wait for more.
    config.group_initial_rebalance_delay_ms = 0;
    let handle = Broker::start(config).await.unwrap();
    let broker = handle.broker().clone();
    for topic in [
        "avro-py",
        "json-py",
        "proto-py",
        "rust-avro",
        "rust-json",
        "rust-proto",
    ] {
        let configs = BTreeMap::from([(
            "confluent.value.schema.validation".to_string(),
            "true".to_string(),
        )]);
        broker
            .create_topic(NewTopic {
                name: topic.into(),
                partitions: 1,
                configs,
            })
            .await
            .unwrap();
    }

    // Herald's serializers write what confluent-kafka's deserializers must read.
    let client = Arc::new(SchemaRegistryClient::new(&url).unwrap());
    let rust_orders: Vec<Order> = (0..3)
        .map(|i| Order {
            id: format!("r-{i}"),
            cents: -i,
            tags: vec!["x".repeat(i as usize)],
        })
        .collect();
    let avro = AvroSerializer::<Order>::new(client.clone(), ORDER_AVRO, Vec::new(), true).unwrap();
    let json_ser =
        JsonSchemaSerializer::<OrderJson>::new(client.clone(), ORDER_JSON, true).unwrap();
    let proto = ProtobufSerializer::<OrderPb>::new(client.clone(), ORDER_PROTO, "shop.Order", true)
        .unwrap();
    let (mut a, mut j, mut p) = (Vec::new(), Vec::new(), Vec::new());
    for o in &rust_orders {
        a.push(
            avro.serialize(&topic_subject("rust-avro", false), o)
                .await
                .unwrap(),
        );
        let oj = OrderJson {
            id: o.id.clone(),
            cents: o.cents,
        };
        j.push(
            json_ser
                .serialize(&topic_subject("rust-json", false), &oj)
                .await
                .unwrap(),
        );
        let op = OrderPb {
            id: o.id.clone(),
            cents: o.cents,
        };
        p.push(
            proto
                .serialize(&topic_subject("rust-proto", false), &op)
                .await
                .unwrap(),
        );
    }
    produce(&broker, "rust-avro", a).await;
    produce(&broker, "rust-json", j).await;
    produce(&broker, "rust-proto", p).await;

    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/clients/confluent_sr.py");
    let bootstrap = handle.kafka_addr().to_string();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new(python);
        cmd.arg(script)
            .args([&url, &bootstrap])
            .env("PYTHONDONTWRITEBYTECODE", "1");
        herald_test_support::output_within(&mut cmd, None, Duration::from_secs(120))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    match output.status.code() {
        Some(0) => {}
        // A client library the script needs is not installed.
        Some(77) => {
            herald_test_support::skip(format!("confluent_sr.py: {stderr}"));
            return;
        }
        code => {
            panic!("confluent_sr.py failed ({code:?})\n--- stdout\n{stdout}\n--- stderr\n{stderr}")
        }
    }
    let result: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("no JSON result ({e}): {stdout}\n{stderr}"));
    assert_eq!(result["client_api"], "ok");
    assert_eq!(
        result["round_trip"],
        json!({"avro-py": 5, "json-py": 5, "proto-py": 5})
    );
    assert_eq!(result["refused"], 2);

    // What confluent-kafka read of Herald's records.
    let rust_avro: Vec<Order> =
        serde_json::from_value(result["rust"]["rust-avro"].clone()).unwrap();
    assert_eq!(rust_avro, rust_orders);
    let rust_json: Vec<OrderJson> =
        serde_json::from_value(result["rust"]["rust-json"].clone()).unwrap();
    let rust_proto: Vec<OrderJson> =
        serde_json::from_value(result["rust"]["rust-proto"].clone()).unwrap();
    let slim: Vec<OrderJson> = rust_orders
        .iter()
        .map(|o| OrderJson {
            id: o.id.clone(),
            cents: o.cents,
        })
        .collect();
    assert_eq!(rust_json, slim);
    assert_eq!(rust_proto, slim);

    // What Herald's deserializers read of confluent-kafka's records; the broker stored
    // only the five valid records per topic, none of the two refused ones.
    let expected = python_orders();
    let avro_de = AvroDeserializer::<Order>::new(client.clone());
    let got = values(&broker, "avro-py").await;
    assert_eq!(got.len(), 5, "the refused records were not written");
    for (bytes, want) in got.iter().zip(&expected) {
        assert_eq!(&avro_de.deserialize(bytes).await.unwrap(), want);
    }
    let json_de = JsonSchemaDeserializer::<OrderJson>::new(client.clone());
    let proto_de = ProtobufDeserializer::<OrderPb>::new(client.clone());
    for (i, want) in expected.iter().enumerate() {
        let j = json_de
            .deserialize(&values(&broker, "json-py").await[i])
            .await
            .unwrap();
        assert_eq!((j.id.as_str(), j.cents), (want.id.as_str(), want.cents));
        let bytes = &values(&broker, "proto-py").await[i];
        let pm = proto_de.deserialize(bytes).await.unwrap();
        assert_eq!((pm.id.as_str(), pm.cents), (want.id.as_str(), want.cents));
        let dynamic = proto_de.deserialize_dynamic(bytes).await.unwrap();
        use prost_reflect::ReflectMessage;
        assert_eq!(dynamic.descriptor().full_name(), "shop.Order");
    }
    // The Protobuf schema confluent-kafka registered (a serialized descriptor) is stored
    // under the topic's subject and renders as .proto text.
    let sv = registry
        .version(
            "proto-py-value",
            herald_registry::registry::VersionSpec::Latest,
            false,
        )
        .unwrap();
    let shown = client
        .request(
            reqwest::Method::GET,
            &["schemas", "ids", &sv.id.to_string()],
            &[],
            None,
        )
        .await
        .unwrap();
    assert!(
        shown["schema"].as_str().unwrap().contains("message Order"),
        "{shown}"
    );

    handle.shutdown().await.unwrap();
    server.shutdown().await;
}
