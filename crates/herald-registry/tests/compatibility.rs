//! The compatibility suite: for each format a table of documented cases (earlier
//! versions, a new schema, a level, and the expected outcome with the rule that decides
//! it), covering all seven levels. Each case runs twice: as a compatibility test
//! (`/compatibility/subjects/{s}/versions`) and as a registration, which must agree.
//! docs/schema-registry.md describes the rules.

// Avro schema resolution.
#[path = "compatibility/avro.rs"]
mod avro;
// JSON Schema: properties, required, types, enums, bounds, additionalProperties.
#[path = "compatibility/json.rs"]
mod json;
// Protobuf wire rules: numbers, kinds, removed and reserved fields, oneofs.
#[path = "compatibility/protobuf.rs"]
mod protobuf;

use herald_registry::{
    CompatibilityLevel, Registry, RegistryConfig, RegistryError, SchemaRequest, SchemaType,
};

/// One documented case.
pub(crate) struct Case {
    /// What changes, in words.
    pub(crate) name: &'static str,
    /// The level checked.
    pub(crate) level: CompatibilityLevel,
    /// Earlier versions, oldest first (registered with NONE).
    pub(crate) old: &'static [&'static str],
    /// The schema checked against them.
    pub(crate) new: &'static str,
    /// `None`: compatible; `Some(rule)`: incompatible, with `rule` in a message.
    pub(crate) broken: Option<&'static str>,
}

pub(crate) const fn ok(
    name: &'static str,
    level: CompatibilityLevel,
    old: &'static [&'static str],
    new: &'static str,
) -> Case {
    Case {
        name,
        level,
        old,
        new,
        broken: None,
    }
}

pub(crate) const fn breaks(
    name: &'static str,
    level: CompatibilityLevel,
    old: &'static [&'static str],
    new: &'static str,
    rule: &'static str,
) -> Case {
    Case {
        name,
        level,
        old,
        new,
        broken: Some(rule),
    }
}

pub(crate) async fn run(schema_type: SchemaType, cases: &[Case]) {
    assert!(
        cases.len() >= 15,
        "{schema_type}: only {} cases",
        cases.len()
    );
    for level in CompatibilityLevel::ALL {
        assert!(
            cases.iter().any(|c| c.level == level),
            "{schema_type}: no case at level {level}"
        );
    }
    let mut failures = Vec::new();
    for case in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = Registry::open(dir.path(), RegistryConfig::default()).unwrap();
        r.set_config(Some("s"), CompatibilityLevel::None)
            .await
            .unwrap();
        for (i, old) in case.old.iter().enumerate() {
            r.register("s", SchemaRequest::new(schema_type, *old))
                .await
                .unwrap_or_else(|e| panic!("{}: old version {}: {e}", case.name, i + 1));
        }
        assert_ne!(
            case.old.last(),
            Some(&case.new),
            "{}: the new schema must differ from the latest",
            case.name
        );
        r.set_config(Some("s"), case.level).await.unwrap();
        let req = SchemaRequest::new(schema_type, case.new);
        let tested = r.test_compatibility("s", None, &req).unwrap();
        let registered = r.register("s", req).await;
        let outcome = match (&case.broken, tested.is_compatible, &registered) {
            (None, true, Ok(_)) => Ok(()),
            (Some(rule), false, Err(RegistryError::Incompatible { messages, .. }))
                if tested.messages.iter().any(|m| m.contains(rule))
                    && messages.iter().any(|m| m.contains(rule)) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "{schema_type} case {:?} at {}: expected {}, test said {:?}, register said {:?}",
                case.name,
                case.level,
                case.broken
                    .map_or("compatible".to_string(), |r| format!("incompatible by {r}")),
                tested,
                registered
            )),
        };
        if let Err(e) = outcome {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn avro_cases() {
    run(SchemaType::Avro, avro::CASES).await;
}

#[tokio::test]
async fn json_schema_cases() {
    run(SchemaType::Json, json::CASES).await;
}

#[tokio::test]
async fn protobuf_cases() {
    run(SchemaType::Protobuf, protobuf::CASES).await;
}
