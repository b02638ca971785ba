//! Herald's serializers and deserializers against a registry on 127.0.0.1:0: derived and
//! supplied schemas, auto-registration or lookup only, Avro schema resolution to a reader
//! schema, JSON Schema validation on both sides, Protobuf message indexes, and errors.

mod support;

use std::sync::Arc;

use herald_schema::serde::{
    AvroDeserializer, AvroSerializer, JsonSchemaDeserializer, JsonSchemaSerializer,
    ProtobufDeserializer, ProtobufSerializer, SchemaRegistryClient, SerdeError, topic_subject,
    unframe,
};
use serde::{Deserialize, Serialize};
use support::TestRegistry;

#[derive(
    Debug, Clone, PartialEq, Serialize, Deserialize, apache_avro::AvroSchema, schemars::JsonSchema,
)]
struct OrderPlaced {
    order_id: String,
    cents: i64,
    express: bool,
}

fn order() -> OrderPlaced {
    OrderPlaced {
        order_id: "o-1".into(),
        cents: 1250,
        express: true,
    }
}

async fn setup() -> (TestRegistry, Arc<SchemaRegistryClient>) {
    let r = TestRegistry::start().await;
    let client = Arc::new(SchemaRegistryClient::new(&r.url).unwrap());
    (r, client)
}

#[tokio::test]
async fn avro_with_a_derived_schema_round_trips_and_registers_once() {
    let (r, client) = setup().await;
    let ser = AvroSerializer::<OrderPlaced>::derived(client.clone(), true).unwrap();
    let subject = topic_subject("orders", false);
    let a = ser.serialize(&subject, &order()).await.unwrap();
    let b = ser.serialize(&subject, &order()).await.unwrap();
    assert_eq!(a, b);
    assert_eq!(&a[..5], &[0, 0, 0, 0, 1], "magic byte and id 1");
    assert_eq!(
        r.get("/subjects/orders-value/versions").await.1,
        serde_json::json!([1])
    );
    let back: OrderPlaced = AvroDeserializer::new(client.clone())
        .deserialize(&a)
        .await
        .unwrap();
    assert_eq!(back, order());
}

#[tokio::test]
async fn avro_reader_schema_resolves_old_data() {
    let (_r, client) = setup().await;
    let writer = r#"{"type":"record","name":"OrderPlaced","fields":[{"name":"order_id","type":"string"},{"name":"cents","type":"int"}]}"#;
    #[derive(Serialize)]
    struct Old {
        order_id: String,
        cents: i32,
    }
    let ser = AvroSerializer::<Old>::new(client.clone(), writer, Vec::new(), true).unwrap();
    let bytes = ser
        .serialize(
            "o-value",
            &Old {
                order_id: "x".into(),
                cents: 5,
            },
        )
        .await
        .unwrap();
    // The reader promotes int to long and fills the new field from its default.
    let reader = r#"{"type":"record","name":"OrderPlaced","fields":[{"name":"order_id","type":"string"},{"name":"cents","type":"long"},{"name":"express","type":"boolean","default":false}]}"#;
    let de = AvroDeserializer::<OrderPlaced>::with_reader_schema(client, reader).unwrap();
    let got = de.deserialize(&bytes).await.unwrap();
    assert_eq!(
        got,
        OrderPlaced {
            order_id: "x".into(),
            cents: 5,
            express: false
        }
    );
}

#[tokio::test]
async fn without_auto_registration_an_unregistered_schema_is_an_error() {
    let (r, client) = setup().await;
    let ser = AvroSerializer::<OrderPlaced>::derived(client.clone(), false).unwrap();
    let err = ser.serialize("orders-value", &order()).await.unwrap_err();
    assert!(
        matches!(
            err,
            SerdeError::Registry {
                error_code: 40401,
                ..
            }
        ),
        "{err}"
    );
    // Once registered (by someone else), lookup finds its id.
    let schema =
        serde_json::to_string(&<OrderPlaced as apache_avro::AvroSchema>::get_schema()).unwrap();
    let id = r
        .register("orders-value", serde_json::json!({ "schema": schema }))
        .await;
    let bytes = ser.serialize("orders-value", &order()).await.unwrap();
    assert_eq!(unframe(&bytes).unwrap().0 as u64, id);
}

#[tokio::test]
async fn json_schema_derived_with_schemars_validates_both_ways() {
    let (r, client) = setup().await;
    let ser = JsonSchemaSerializer::<OrderPlaced>::derived(client.clone(), true).unwrap();
    let bytes = ser.serialize("j-value", &order()).await.unwrap();
    let (_, payload) = unframe(&bytes).unwrap();
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(payload).unwrap()["cents"],
        1250
    );
    let (_, v) = r.get("/subjects/j-value/versions/latest").await;
    assert_eq!(v["schemaType"], "JSON");
    let back: OrderPlaced = JsonSchemaDeserializer::new(client.clone())
        .deserialize(&bytes)
        .await
        .unwrap();
    assert_eq!(back, order());

    // A value the schema refuses is not serialized.
    #[derive(Serialize)]
    struct Loose {
        cents: i64,
    }
    let strict = r#"{"type":"object","properties":{"cents":{"type":"integer","minimum":0}},"required":["cents"]}"#;
    let ser = JsonSchemaSerializer::<Loose>::new(client.clone(), strict, true).unwrap();
    let err = ser
        .serialize("l-value", &Loose { cents: -1 })
        .await
        .unwrap_err();
    assert!(
        matches!(err, SerdeError::Serialize(ref m) if m.contains("minimum")),
        "{err}"
    );
    // A record that does not match the schema it names is refused on reading.
    let id = unframe(&ser.serialize("l-value", &Loose { cents: 1 }).await.unwrap())
        .unwrap()
        .0;
    let mut forged = vec![0];
    forged.extend_from_slice(&id.to_be_bytes());
    forged.extend_from_slice(br#"{"cents": -5}"#);
    let err = JsonSchemaDeserializer::<serde_json::Value>::new(client)
        .deserialize(&forged)
        .await
        .unwrap_err();
    assert!(matches!(err, SerdeError::Deserialize(_)), "{err}");
}

#[derive(Clone, PartialEq, prost::Message)]
struct Refund {
    #[prost(string, tag = "1")]
    order_id: String,
    #[prost(int64, tag = "2")]
    cents: i64,
}

#[tokio::test]
async fn protobuf_writes_message_indexes_of_nested_and_later_messages() {
    let (_r, client) = setup().await;
    let proto = "syntax = \"proto3\"; package shop;\n\
                 message Order { string id = 1; message Line { string sku = 1; } }\n\
                 message Refund { string order_id = 1; int64 cents = 2; }\n";
    let ser =
        ProtobufSerializer::<Refund>::new(client.clone(), proto, "shop.Refund", true).unwrap();
    let refund = Refund {
        order_id: "o-1".into(),
        cents: 300,
    };
    let bytes = ser.serialize("refunds-value", &refund).await.unwrap();
    // Refund is the second top-level message: indexes [1] = count 1, index 1 (zig-zag).
    assert_eq!(&bytes[5..7], &[2, 2]);
    let de = ProtobufDeserializer::<Refund>::new(client.clone());
    assert_eq!(de.deserialize(&bytes).await.unwrap(), refund);
    let dynamic = de.deserialize_dynamic(&bytes).await.unwrap();
    use prost_reflect::ReflectMessage;
    assert_eq!(dynamic.descriptor().full_name(), "shop.Refund");
    assert!(ProtobufSerializer::<Refund>::new(client, proto, "shop.Nope", true).is_err());
}

#[tokio::test]
async fn bad_bytes_and_wrong_formats_are_errors() {
    let (_r, client) = setup().await;
    let de = AvroDeserializer::<OrderPlaced>::new(client.clone());
    assert!(matches!(
        de.deserialize(b"plain").await,
        Err(SerdeError::Deserialize(_))
    ));
    assert!(matches!(
        de.deserialize(&[0, 0, 0, 0, 9, 1]).await,
        Err(SerdeError::Registry {
            error_code: 40403,
            ..
        })
    ));
    let json = JsonSchemaSerializer::<OrderPlaced>::derived(client.clone(), true).unwrap();
    let bytes = json.serialize("x-value", &order()).await.unwrap();
    let err = de.deserialize(&bytes).await.unwrap_err();
    assert!(err.to_string().contains("not AVRO"), "{err}");
    let unreachable = Arc::new(SchemaRegistryClient::new("http://127.0.0.1:9").unwrap());
    let ser = AvroSerializer::<OrderPlaced>::derived(unreachable, true).unwrap();
    assert!(matches!(
        ser.serialize("s", &order()).await,
        Err(SerdeError::Unreachable { .. })
    ));
}
