//! The tables of `docs/configuration.md` are generated from [`SETTINGS`]; these tests
//! fail when the page and the declaration differ, and when a field of [`BrokerConfig`]
//! has no declaration (or a declaration names no field). After changing a setting, run
//! `HERALD_UPDATE_DOCS=1 cargo test -p herald-cli settings::docs` to rewrite the tables.

use std::{cell::RefCell, collections::BTreeSet};

use herald_broker::BrokerConfig;
use serde::{
    Deserialize, Deserializer,
    de::{self, DeserializeSeed, IntoDeserializer, MapAccess, Visitor},
    forward_to_deserialize_any,
};

use super::declared::{CONFIG_ENV, CONFIG_WHAT, SETTINGS, Setting};

const DOC_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md");

/// Keys the binary takes out of the table before the rest becomes a [`BrokerConfig`].
const BINARY_KEYS: &[&str] = &[
    "http_listen",
    "http_max_body_bytes",
    "http_allowed_hosts",
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "sasl_mechanisms",
    "super_users",
    "http_auth",
    "http_auth_metrics",
    "registry_listen",
    "log_level",
];

/// One generated table: its marker name, its header, and its rows.
fn tables() -> Vec<(&'static str, String)> {
    let row = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
    let code = |s: &str| format!("`{s}`");
    let mut flags = String::from(
        "| flag | environment | file key | default | what |\n| --- | --- | --- | --- | --- |\n",
    );
    flags += &row(&[
        code("--config FILE"),
        code(CONFIG_ENV),
        String::new(),
        "none".into(),
        CONFIG_WHAT.into(),
    ]);
    let mut broker =
        String::from("| environment | file key | default | what |\n| --- | --- | --- | --- |\n");
    let mut topic = String::from(
        "| environment | key in `[default_topic_config]` | default | what |\n\
         | --- | --- | --- | --- |\n",
    );
    for s in SETTINGS {
        let common = |s: &Setting| {
            vec![
                code(&s.env()),
                code(s.file_key()),
                s.default.to_string(),
                s.what.to_string(),
            ]
        };
        match (s.long(), s.key) {
            (Some(long), _) => {
                let mut cells = vec![code(&format!("--{long} {}", s.flag.unwrap_or_default()))];
                cells.extend(common(s));
                flags += &row(&cells);
            }
            (None, [_]) => broker += &row(&common(s)),
            (None, ["default_topic_config", _]) => topic += &row(&common(s)),
            (None, key) => panic!("{key:?}: no table in docs/configuration.md for this key"),
        }
    }
    vec![
        ("settings-flags", flags),
        ("settings-broker", broker),
        ("settings-topic", topic),
    ]
}

fn markers(name: &str) -> (String, String) {
    (
        format!(
            "<!-- {name}: generated from crates/herald-cli/src/serve/settings/declared.rs -->\n"
        ),
        format!("<!-- end {name} -->"),
    )
}

#[test]
fn docs_tables_match_the_declaration() {
    let mut doc = std::fs::read_to_string(DOC_PATH).expect("docs/configuration.md");
    let update = std::env::var_os("HERALD_UPDATE_DOCS").is_some();
    let mut stale = Vec::new();
    for (name, table) in tables() {
        let (open, close) = markers(name);
        let start = doc
            .find(&open)
            .unwrap_or_else(|| panic!("docs/configuration.md lacks the line {open:?}"))
            + open.len();
        let end = start
            + doc[start..]
                .find(&close)
                .unwrap_or_else(|| panic!("docs/configuration.md lacks {close:?}"));
        if doc[start..end] != table {
            stale.push(name);
            doc.replace_range(start..end, &table);
        }
    }
    if update {
        std::fs::write(DOC_PATH, &doc).expect("write docs/configuration.md");
    } else {
        assert!(
            stale.is_empty(),
            "docs/configuration.md differs from the declared settings in {stale:?}; run \
             HERALD_UPDATE_DOCS=1 cargo test -p herald-cli settings::docs and commit the page"
        );
    }
}

#[test]
fn every_broker_config_field_is_declared_and_nothing_else() {
    let mut fields = BTreeSet::new();
    for top in struct_fields(|d| BrokerConfig::deserialize(d).map(drop)) {
        match nested_fields(top) {
            Some(inner) => fields.extend(inner.iter().map(|f| format!("{top}.{f}"))),
            None => {
                fields.insert(top.to_string());
            }
        }
    }
    fields.extend(BINARY_KEYS.iter().map(|k| k.to_string()));
    let declared: BTreeSet<String> = SETTINGS.iter().map(|s| s.key.join(".")).collect();
    assert_eq!(
        declared, fields,
        "each field of BrokerConfig (and each key the binary takes) needs exactly one entry \
         in SETTINGS"
    );
}

type ProbeError = de::value::Error;

/// The field names a derived `Deserialize` asks for, read off `deserialize_struct`.
fn struct_fields(
    deserialize: impl FnOnce(Probe<'_>) -> Result<(), ProbeError>,
) -> &'static [&'static str] {
    let found = RefCell::new(None);
    let _ = deserialize(Probe { found: &found });
    found.into_inner().expect("a struct")
}

/// The fields of `BrokerConfig`'s field `key` when that field is itself a struct (a TOML
/// table such as `default_topic_config`), else `None`.
fn nested_fields(key: &'static str) -> Option<&'static [&'static str]> {
    let found = RefCell::new(None);
    let _ = BrokerConfig::deserialize(OneKey { key, found: &found });
    found.into_inner()
}

/// A deserializer that answers nothing but records the fields of the struct asked for.
struct Probe<'a> {
    found: &'a RefCell<Option<&'static [&'static str]>>,
}

impl<'de> Deserializer<'de> for Probe<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(de::Error::custom("probe"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, ProbeError> {
        *self.found.borrow_mut() = Some(fields);
        Err(de::Error::custom("probe"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// A map with one key whose value is a [`Probe`].
struct OneKey<'a> {
    key: &'static str,
    found: &'a RefCell<Option<&'static [&'static str]>>,
}

impl<'de> Deserializer<'de> for OneKey<'_> {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ProbeError> {
        visitor.visit_map(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for OneKey<'_> {
    type Error = ProbeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ProbeError> {
        seed.deserialize(self.key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, ProbeError> {
        seed.deserialize(Probe { found: self.found })
    }
}
