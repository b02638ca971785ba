//! The Confluent REST API of the registry, over HTTP: every endpoint, its status codes
//! and error bodies, references, durability across a restart, and concurrent writers.

mod support;

use serde_json::{Value, json};
use support::{TestRegistry, assert_error};

const USER_V1: &str =
    r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
// USER_V1 again, with other whitespace and key order: the same schema.
const USER_V1_SPACED: &str = r#"{ "namespace": "shop", "name": "User", "type": "record",
    "fields": [ { "type": "long", "name": "id" } ] }"#;
const USER_V2: &str = r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"email","type":["null","string"],"default":null}]}"#;
const USER_BAD: &str = r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"email","type":"string"}]}"#;

fn avro(s: &str) -> Value {
    json!({ "schema": s })
}

#[tokio::test]
async fn register_fetch_and_lookup_avro() {
    let r = TestRegistry::start().await;
    assert_eq!(
        r.get("/schemas/types").await,
        (200, json!(["JSON", "PROTOBUF", "AVRO"]))
    );
    assert_eq!(r.get("/subjects").await, (200, json!([])));
    let id = r.register("users-value", avro(USER_V1)).await;
    assert_eq!(id, 1);
    // The same schema, differently written: same id, no new version.
    assert_eq!(r.register("users-value", avro(USER_V1_SPACED)).await, 1);
    assert_eq!(
        r.get("/subjects/users-value/versions").await,
        (200, json!([1]))
    );
    // Another subject with the same schema shares the id.
    assert_eq!(r.register("users-key", avro(USER_V1)).await, 1);
    let id2 = r.register("users-value", avro(USER_V2)).await;
    assert_eq!(id2, 2);

    let (s, v) = r.get("/subjects/users-value/versions/latest").await;
    assert_eq!(s, 200);
    assert_eq!(
        (
            v["subject"].as_str(),
            v["version"].as_i64(),
            v["id"].as_i64()
        ),
        (Some("users-value"), Some(2), Some(2))
    );
    assert_eq!(v["schema"], USER_V2);
    assert!(v.get("schemaType").is_none(), "AVRO is implied: {v}");
    assert_eq!(
        r.get("/subjects/users-value/versions/-1").await.1["version"],
        2
    );
    assert_eq!(r.get("/subjects/users-value/versions/1").await.1["id"], 1);
    assert_eq!(
        r.get("/subjects/users-value/versions/1/schema").await.1,
        json!(serde_json::from_str::<Value>(USER_V1).unwrap())
    );
    assert_eq!(
        r.get("/schemas/ids/1").await,
        (200, json!({ "schema": USER_V1 }))
    );
    assert_eq!(r.get("/schemas/ids/2?fetchMaxId=true").await.1["maxId"], 2);
    assert_eq!(
        r.get("/schemas/ids/1/subjects").await,
        (200, json!(["users-key", "users-value"]))
    );
    assert_eq!(
        r.get("/schemas/ids/1/versions").await,
        (
            200,
            json!([{"subject": "users-key", "version": 1}, {"subject": "users-value", "version": 1}])
        )
    );
    assert_eq!(
        r.get("/subjects?subjectPrefix=users-v").await,
        (200, json!(["users-value"]))
    );
    let (s, all) = r.get("/schemas?latestOnly=true").await;
    assert_eq!((s, all.as_array().unwrap().len()), (200, 2));

    let (s, found) = r.post("/subjects/users-value", avro(USER_V1_SPACED)).await;
    assert_eq!(
        (s, found["version"].as_i64(), found["id"].as_i64()),
        (200, Some(1), Some(1))
    );
    assert_error(
        r.post("/subjects/users-value", avro(USER_BAD)).await,
        404,
        40403,
    );
    assert_error(r.post("/subjects/nobody", avro(USER_V1)).await, 404, 40401);
    assert_error(r.get("/subjects/nobody/versions").await, 404, 40401);
    assert_error(r.get("/subjects/users-value/versions/9").await, 404, 40402);
    assert_error(
        r.get("/subjects/users-value/versions/zero").await,
        422,
        42202,
    );
    assert_error(r.get("/schemas/ids/99").await, 404, 40403);
    assert_error(r.get("/no/such/endpoint").await, 404, 404);
    assert_eq!(r.get("/").await, (200, json!({})));
}

#[tokio::test]
async fn incompatible_schema_is_409_naming_the_field_and_rule() {
    let r = TestRegistry::start().await;
    r.register("users-value", avro(USER_V1)).await;
    let msg = assert_error(
        r.post("/subjects/users-value/versions", avro(USER_BAD))
            .await,
        409,
        409,
    );
    assert!(
        msg.contains("READER_FIELD_MISSING_DEFAULT_VALUE") && msg.contains("email"),
        "{msg}"
    );
    assert_eq!(
        r.get("/subjects/users-value/versions").await.1,
        json!([1]),
        "nothing stored"
    );
    let (s, v) = r
        .post(
            "/compatibility/subjects/users-value/versions/latest?verbose=true",
            avro(USER_BAD),
        )
        .await;
    assert_eq!((s, &v["is_compatible"]), (200, &json!(false)));
    assert!(v["messages"][0].as_str().unwrap().contains("/email"), "{v}");
    let (_, v) = r
        .post(
            "/compatibility/subjects/users-value/versions",
            avro(USER_V2),
        )
        .await;
    assert_eq!(v, json!({"is_compatible": true}));
    assert_error(
        r.post(
            "/compatibility/subjects/users-value/versions/7",
            avro(USER_V2),
        )
        .await,
        404,
        40402,
    );
    // With NONE the same schema registers.
    assert_eq!(
        r.put("/config/users-value", json!({"compatibility": "NONE"}))
            .await,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(r.register("users-value", avro(USER_BAD)).await, 2);
}

#[tokio::test]
async fn config_and_mode() {
    let r = TestRegistry::start().await;
    assert_eq!(
        r.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );
    assert_eq!(
        r.put("/config", json!({"compatibility": "full_transitive"}))
            .await,
        (200, json!({"compatibility": "FULL_TRANSITIVE"}))
    );
    assert_eq!(
        r.get("/config").await.1,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    assert_error(r.get("/config/s").await, 404, 40408);
    assert_eq!(
        r.get("/config/s?defaultToGlobal=true").await.1,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    r.put("/config/s", json!({"compatibility": "FORWARD"}))
        .await;
    assert_eq!(
        r.get("/config/s").await.1,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_eq!(
        r.delete("/config/s").await.1,
        json!({"compatibilityLevel": "FORWARD"})
    );
    assert_error(r.get("/config/s").await, 404, 40408);
    assert_eq!(
        r.delete("/config").await.1,
        json!({"compatibilityLevel": "FULL_TRANSITIVE"})
    );
    assert_eq!(
        r.get("/config").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );

    assert_eq!(r.get("/mode").await, (200, json!({"mode": "READWRITE"})));
    assert_error(r.get("/mode/s").await, 404, 40409);
    assert_eq!(
        r.put("/mode/s", json!({"mode": "READONLY"})).await,
        (200, json!({"mode": "READONLY"}))
    );
    let msg = assert_error(
        r.post("/subjects/s/versions", avro(USER_V1)).await,
        422,
        42205,
    );
    assert!(msg.contains("read-only"), "{msg}");
    r.register("other", avro(USER_V1)).await;
    assert_eq!(r.delete("/mode/s").await.1, json!({"mode": "READONLY"}));
    r.register("s", avro(USER_V1)).await;
    r.put("/mode", json!({"mode": "READONLY"})).await;
    assert_error(
        r.post("/subjects/t/versions", avro(USER_V1)).await,
        422,
        42205,
    );
    assert_error(r.delete("/subjects/s").await, 422, 42205);
    r.put("/mode", json!({"mode": "READWRITE"})).await;
    // IMPORT needs force on a registry with subjects, then keeps the given id and version.
    assert_error(r.put("/mode", json!({"mode": "IMPORT"})).await, 422, 42205);
    r.put("/mode?force=true", json!({"mode": "IMPORT"})).await;
    let (s, v) = r
        .post(
            "/subjects/imported/versions",
            json!({"schema": USER_V2, "id": 40, "version": 3}),
        )
        .await;
    assert_eq!((s, v), (200, json!({"id": 40})));
    assert_eq!(r.get("/subjects/imported/versions").await.1, json!([3]));
    assert_error(
        r.post(
            "/subjects/imported/versions",
            json!({"schema": USER_V1, "id": 40}),
        )
        .await,
        422,
        42207,
    );
    r.put("/mode", json!({"mode": "READWRITE"})).await;
    assert_error(
        r.post("/subjects/x/versions", json!({"schema": USER_V1, "id": 50}))
            .await,
        422,
        42205,
    );
    // New ids continue after an imported one.
    r.put("/config", json!({"compatibility": "NONE"})).await;
    assert_eq!(
        r.register("later", avro(r#"{"type":"fixed","name":"F","size":4}"#))
            .await,
        41
    );
}

#[tokio::test]
async fn soft_and_permanent_deletes() {
    let r = TestRegistry::start().await;
    r.register("s", avro(USER_V1)).await;
    r.register("s", avro(USER_V2)).await;
    assert_error(
        r.delete("/subjects/s/versions/1?permanent=true").await,
        404,
        40407,
    );
    assert_eq!(r.delete("/subjects/s/versions/1").await, (200, json!(1)));
    assert_error(r.delete("/subjects/s/versions/1").await, 404, 40406);
    assert_eq!(r.get("/subjects/s/versions").await.1, json!([2]));
    assert_eq!(
        r.get("/subjects/s/versions?deleted=true").await.1,
        json!([1, 2])
    );
    assert_error(r.get("/subjects/s/versions/1").await, 404, 40402);
    assert_eq!(
        r.get("/subjects/s/versions/1?deleted=true").await.1["id"],
        1
    );
    // A soft-deleted schema is still readable by id (old records must stay readable).
    assert_eq!(r.get("/schemas/ids/1").await.0, 200);
    assert_eq!(
        r.delete("/subjects/s/versions/1?permanent=true").await,
        (200, json!(1))
    );
    assert_error(r.get("/schemas/ids/1").await, 404, 40403);

    assert_error(r.delete("/subjects/s?permanent=true").await, 404, 40405);
    assert_eq!(r.delete("/subjects/s").await, (200, json!([2])));
    assert_error(r.delete("/subjects/s").await, 404, 40404);
    assert_eq!(r.get("/subjects").await.1, json!([]));
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!(["s"]));
    assert_error(r.get("/subjects/s/versions").await, 404, 40401);
    assert_eq!(
        r.delete("/subjects/s?permanent=true").await,
        (200, json!([2]))
    );
    assert_error(r.delete("/subjects/s").await, 404, 40401);
    // Ids are never reused.
    r.put("/config", json!({"compatibility": "NONE"})).await;
    assert_eq!(r.register("s", avro(r#""string""#)).await, 3);
    assert_eq!(r.get("/subjects/s/versions").await.1, json!([1]));
}

#[tokio::test]
async fn references_between_subjects() {
    let r = TestRegistry::start().await;
    let address = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"city","type":"string"}]}"#;
    let customer = r#"{"type":"record","name":"Customer","namespace":"shop","fields":[{"name":"address","type":"shop.Address"}]}"#;
    r.register("address", avro(address)).await;
    let refs = json!([{"name": "shop.Address", "subject": "address", "version": 1}]);
    assert_error(
        r.post("/subjects/customer/versions", json!({"schema": customer}))
            .await,
        422,
        42201,
    );
    let id = r
        .register("customer", json!({"schema": customer, "references": refs}))
        .await;
    let (_, v) = r.get(&format!("/schemas/ids/{id}")).await;
    assert_eq!(v["references"], refs);
    assert_eq!(
        r.get("/subjects/address/versions/1/referencedby").await,
        (200, json!([id]))
    );
    let msg = assert_error(r.delete("/subjects/address/versions/1").await, 422, 42206);
    assert!(msg.contains("address"), "{msg}");
    assert_error(r.delete("/subjects/address").await, 422, 42206);
    let bad_ref = json!([{"name": "shop.Address", "subject": "address", "version": 5}]);
    let msg = assert_error(
        r.post(
            "/subjects/c2/versions",
            json!({"schema": customer, "references": bad_ref}),
        )
        .await,
        422,
        42201,
    );
    assert!(msg.contains("version 5"), "{msg}");

    // JSON Schema and Protobuf references.
    let money =
        r#"{"type":"object","properties":{"cents":{"type":"integer"}},"required":["cents"]}"#;
    r.register("money", json!({"schemaType": "JSON", "schema": money}))
        .await;
    let order = r#"{"type":"object","properties":{"total":{"$ref":"money.json"}}}"#;
    let refs = json!([{"name": "money.json", "subject": "money", "version": 1}]);
    r.register(
        "order-json",
        json!({"schemaType": "JSON", "schema": order, "references": refs}),
    )
    .await;
    let common = "syntax = \"proto3\";\npackage shop;\nmessage Money { int64 cents = 1; }\n";
    r.register(
        "money-proto",
        json!({"schemaType": "PROTOBUF", "schema": common}),
    )
    .await;
    let order = "syntax = \"proto3\";\npackage shop;\nimport \"money.proto\";\nmessage Order { Money total = 1; }\n";
    let refs = json!([{"name": "money.proto", "subject": "money-proto", "version": 1}]);
    r.register(
        "order-proto",
        json!({"schemaType": "PROTOBUF", "schema": order, "references": refs}),
    )
    .await;
    assert_error(
        r.post(
            "/subjects/o2/versions",
            json!({"schemaType": "PROTOBUF", "schema": order}),
        )
        .await,
        422,
        42201,
    );
}

#[tokio::test]
async fn json_and_protobuf_are_normalised() {
    let r = TestRegistry::start().await;
    let a = json!({"schemaType": "JSON", "schema": r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#});
    let b = json!({"schemaType": "JSON", "schema": "{\n  \"properties\": {\"b\": {\"type\": \"integer\"}, \"a\": {\"type\": \"string\"}},\n  \"type\": \"object\"\n}"});
    let id = r.register("j", a).await;
    assert_eq!(r.register("j", b).await, id);
    let (_, v) = r.get("/subjects/j/versions/1").await;
    assert_eq!(v["schemaType"], "JSON");

    let p1 = "syntax = \"proto3\";\npackage shop;\n// an order\nmessage Order {\n  string id = 1;\n  int64 cents = 2;\n}\n";
    let p2 = "syntax=\"proto3\"; package shop; message Order { int64 cents = 2; string id = 1; }";
    let id = r
        .register("p", json!({"schemaType": "PROTOBUF", "schema": p1}))
        .await;
    assert_eq!(
        r.register("p", json!({"schemaType": "PROTOBUF", "schema": p2}))
            .await,
        id
    );
    // The serialized descriptor (as confluent-kafka's serializers send it) is the same schema.
    let (_, ser) = r.get(&format!("/schemas/ids/{id}?format=serialized")).await;
    let b64 = ser["schema"].as_str().unwrap().to_string();
    assert!(!b64.contains(' ') && !b64.contains("message"), "{b64}");
    assert_eq!(
        r.register("p", json!({"schemaType": "PROTOBUF", "schema": b64}))
            .await,
        id
    );
    assert_eq!(r.get(&format!("/schemas/ids/{id}")).await.1["schema"], p1);
    let (_, found) = r
        .post(
            "/subjects/p",
            json!({"schemaType": "PROTOBUF", "schema": b64}),
        )
        .await;
    assert_eq!(found["id"].as_u64(), Some(id));
}

#[tokio::test]
async fn bad_input_is_4xx_with_a_confluent_body_and_stores_nothing() {
    let r = TestRegistry::start_in(tempfile::tempdir().unwrap(), 4096).await;
    let cases: Vec<(&str, Option<&str>, String, u16, u64)> = vec![
        (
            "invalid avro",
            None,
            json!({"schema": "{\"type\": \"recrod\"}"}).to_string(),
            422,
            42201,
        ),
        (
            "avro not json",
            None,
            json!({"schema": "{not json"}).to_string(),
            422,
            42201,
        ),
        (
            "invalid json schema",
            None,
            json!({"schemaType": "JSON", "schema": "{\"type\": 12}"}).to_string(),
            422,
            42201,
        ),
        (
            "invalid protobuf",
            None,
            json!({"schemaType": "PROTOBUF", "schema": "message { int32 = 1 }"}).to_string(),
            422,
            42201,
        ),
        (
            "unknown type",
            None,
            json!({"schemaType": "XML", "schema": "<a/>"}).to_string(),
            422,
            42201,
        ),
        (
            "malformed body",
            None,
            "{\"schema\": ".to_string(),
            400,
            400,
        ),
        (
            "wrong body shape",
            None,
            json!({"schema": 5}).to_string(),
            422,
            422,
        ),
        (
            "wrong content type",
            Some("text/plain"),
            json!({"schema": "\"string\""}).to_string(),
            415,
            415,
        ),
        (
            "form post (the browser guard)",
            Some("application/x-www-form-urlencoded"),
            json!({"schema": "\"string\""}).to_string(),
            415,
            415,
        ),
        (
            "oversized body",
            None,
            json!({"schema": format!("\"{}\"", "x".repeat(8192))}).to_string(),
            413,
            413,
        ),
    ];
    for (what, ct, body, status, code) in cases {
        let resp = r
            .http
            .post(format!("{}/subjects/s/versions", r.url))
            .header("content-type", ct.unwrap_or(support::CT))
            .body(body)
            .send()
            .await
            .unwrap();
        let got_status = resp.status().as_u16();
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|e| panic!("{what}: body is not JSON: {e}"));
        assert_eq!(
            (got_status, v["error_code"].as_u64()),
            (status, Some(code)),
            "{what}: {v}"
        );
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{what}: {v}"
        );
    }
    assert_error(
        r.put("/config", json!({"compatibility": "SIDEWAYS"})).await,
        422,
        42203,
    );
    assert_error(
        r.put("/config/s", json!({"compatibility": "SIDEWAYS"}))
            .await,
        422,
        42203,
    );
    assert_error(
        r.put("/mode", json!({"mode": "SOMETIMES"})).await,
        422,
        42204,
    );
    assert_error(r.post("/subjects/s/versions", json!({"schema": "\"string\"", "references": [{"name": "x", "subject": "none", "version": 1}]})).await, 422, 42201);
    // Nothing was stored, also after a restart.
    let r = r.restart().await;
    assert_eq!(r.get("/subjects?deleted=true").await.1, json!([]));
    assert_eq!(
        r.get("/config").await.1,
        json!({"compatibilityLevel": "BACKWARD"})
    );
    assert_eq!(r.get("/mode").await.1, json!({"mode": "READWRITE"}));
    assert_eq!(
        r.register("s", avro(r#""string""#)).await,
        1,
        "no id was used up"
    );
}

#[tokio::test]
async fn state_survives_a_restart() {
    let r = TestRegistry::start().await;
    r.register("a", avro(USER_V1)).await;
    r.register("a", avro(USER_V2)).await;
    r.register(
        "b",
        json!({"schemaType": "JSON", "schema": "{\"type\":\"string\"}"}),
    )
    .await;
    r.delete("/subjects/a/versions/1").await;
    r.put("/config/b", json!({"compatibility": "FULL"})).await;
    r.put("/mode/b", json!({"mode": "READONLY"})).await;
    let before = (
        r.get("/subjects?deleted=true").await,
        r.get("/subjects/a/versions?deleted=true").await,
        r.get("/schemas?deleted=true").await,
    );
    let r = r.restart().await;
    let after = (
        r.get("/subjects?deleted=true").await,
        r.get("/subjects/a/versions?deleted=true").await,
        r.get("/schemas?deleted=true").await,
    );
    assert_eq!(before, after);
    assert_eq!(r.get("/subjects/a/versions").await.1, json!([2]));
    assert_eq!(
        r.get("/config/b").await.1,
        json!({"compatibilityLevel": "FULL"})
    );
    assert_eq!(r.get("/mode/b").await.1, json!({"mode": "READONLY"}));
    // Compatibility still applies to the replayed schemas, and ids continue.
    assert_error(
        r.post("/subjects/a/versions", avro(USER_BAD)).await,
        409,
        409,
    );
    assert_eq!(r.register("c", avro(r#""int""#)).await, 4);
}

#[tokio::test]
async fn concurrent_registrations_of_one_schema_get_one_id() {
    let r = TestRegistry::start().await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let http = r.http.clone();
        let url = r.url.clone();
        // Three subjects, eight writers each, the same schema in three spellings.
        let schema = [USER_V1, USER_V1_SPACED, &USER_V1.replace(',', ", ")][i % 3].to_string();
        tasks.push(tokio::spawn(async move {
            let resp = http
                .post(format!("{url}/subjects/s{}/versions", i % 3))
                .header("content-type", support::CT)
                .body(json!({ "schema": schema }).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()["id"].as_u64().unwrap()
        }));
    }
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert!(ids.iter().all(|&id| id == 1), "{ids:?}");
    for s in ["s0", "s1", "s2"] {
        assert_eq!(
            r.get(&format!("/subjects/{s}/versions")).await.1,
            json!([1])
        );
    }
    let r = r.restart().await;
    assert_eq!(
        r.get("/schemas/ids/1/subjects").await.1,
        json!(["s0", "s1", "s2"])
    );
}

#[tokio::test]
async fn a_registry_log_record_it_cannot_read_stops_the_open_with_its_offset() {
    let r = TestRegistry::start().await;
    r.register("s", avro(USER_V1)).await;
    let dir = r.dir.path().to_path_buf();
    let TestRegistry {
        dir: keep,
        registry,
        server,
        ..
    } = r;
    server.unwrap().shutdown().await;
    registry.close().await.unwrap();
    drop(registry);
    // Another program appends a record this version of Herald does not understand.
    let log =
        herald_log::Log::open(dir.join("registry"), herald_log::LogConfig::default()).unwrap();
    let mut b =
        herald_format::records::BatchBuilder::new(herald_format::records::Compression::None);
    b.push(
        0,
        Some(b"future".as_slice()),
        Some(br#"{"kind":"from_the_future"}"#.as_slice()),
        &[],
    );
    log.append(&mut b.build().unwrap()).unwrap();
    log.close().unwrap();
    let err = herald_registry::Registry::open(&dir, herald_registry::RegistryConfig::default())
        .unwrap_err();
    assert_eq!(err.error_code(), 50001);
    // Offsets 0 and 1 are the schema and version records of the registration.
    assert!(err.to_string().contains("offset 2"), "{err}");
    drop(keep);
}

#[tokio::test]
async fn pages_in_a_browser_cannot_reach_the_registry() {
    let r = TestRegistry::start().await;
    let subjects = format!("{}/subjects", r.url);
    let versions = format!("{}/subjects/s/versions", r.url);
    let body = json!({"schema": "\"string\""}).to_string();
    // A POST without a content type: what a no-cors fetch sends.
    let resp = r
        .http
        .post(&versions)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    // A DNS-rebinding page: its own name in Host.
    let resp = r
        .http
        .get(&subjects)
        .header("host", "rebound.evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error_code"], 40301, "{v}");
    // A cross-origin page, even with the right content type.
    let resp = r
        .http
        .post(&versions)
        .header("content-type", support::CT)
        .header("origin", "https://evil.example")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 403);
    // No CORS: a preflight gets no permission to send anything.
    let resp = r
        .http
        .request(reqwest::Method::OPTIONS, &versions)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    assert!(
        resp.headers().get("access-control-allow-origin").is_none(),
        "{:?}",
        resp.headers()
    );
    assert_eq!(
        r.get("/subjects?deleted=true").await.1,
        json!([]),
        "nothing stored"
    );
    // Tools (no Origin, an IP or localhost as Host) go on working.
    assert_eq!(r.register("s", avro(r#""string""#)).await, 1);
}
