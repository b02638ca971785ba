//! The three schema formats behind one interface: parse (with references), the identity
//! form that decides "same schema", and the reader/writer compatibility check whose
//! rules each format's module documents.

pub(crate) mod avro;
pub(crate) mod json;
pub(crate) mod protobuf;

use std::fmt;

use serde_json::Value;

use crate::types::SchemaType;

/// One violated compatibility rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatibility {
    /// The rule's name, e.g. `READER_FIELD_MISSING_DEFAULT_VALUE`.
    pub rule: &'static str,
    /// Where in the schema: a field path (Avro, Protobuf) or a JSON pointer (JSON Schema).
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl Incompatibility {
    pub(crate) fn new(rule: &'static str, path: String, message: String) -> Self {
        Self {
            rule,
            path,
            message,
        }
    }
}

impl fmt::Display for Incompatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at '{}': {}", self.rule, self.path, self.message)
    }
}

/// A referenced schema, already resolved to its text.
#[derive(Debug, Clone)]
pub struct ResolvedReference {
    /// The name the referring schema uses for it.
    pub name: String,
    /// Its format.
    pub schema_type: SchemaType,
    /// Its text.
    pub text: String,
}

/// A schema that parsed and passed its format's checks.
#[derive(Debug, Clone)]
pub struct ParsedSchema(Inner);

#[derive(Debug, Clone)]
enum Inner {
    Avro(Box<avro::AvroSchema>),
    Json(Box<json::JsonSchema>),
    Protobuf(Box<protobuf::ProtoSchema>),
}

impl ParsedSchema {
    /// Parses `text` as `schema_type`; `references` are every schema it reaches through
    /// its references, dependencies before dependents.
    pub fn parse(
        schema_type: SchemaType,
        text: &str,
        references: &[ResolvedReference],
    ) -> Result<ParsedSchema, String> {
        if let Some(r) = references.iter().find(|r| r.schema_type != schema_type) {
            return Err(format!(
                "reference {:?} is a {} schema; a {schema_type} schema can only reference {schema_type} schemas",
                r.name, r.schema_type
            ));
        }
        match schema_type {
            SchemaType::Avro => {
                let texts: Vec<&str> = references.iter().map(|r| r.text.as_str()).collect();
                avro::parse(text, &texts).map(|s| ParsedSchema(Inner::Avro(Box::new(s))))
            }
            SchemaType::Json => {
                let refs: Vec<(&str, &str)> = references
                    .iter()
                    .map(|r| (r.name.as_str(), r.text.as_str()))
                    .collect();
                json::parse(text, &refs).map(|s| ParsedSchema(Inner::Json(Box::new(s))))
            }
            SchemaType::Protobuf => {
                let refs: Vec<(&str, &str)> = references
                    .iter()
                    .map(|r| (r.name.as_str(), r.text.as_str()))
                    .collect();
                protobuf::parse(text, &refs).map(|s| ParsedSchema(Inner::Protobuf(Box::new(s))))
            }
        }
    }

    /// The format.
    pub fn schema_type(&self) -> SchemaType {
        match &self.0 {
            Inner::Avro(_) => SchemaType::Avro,
            Inner::Json(_) => SchemaType::Json,
            Inner::Protobuf(_) => SchemaType::Protobuf,
        }
    }

    /// The identity form: two registrations with the same form (and references) are the
    /// same schema and share an id.
    pub fn canonical(&self) -> &str {
        match &self.0 {
            Inner::Avro(s) => &s.canonical,
            Inner::Json(s) => &s.canonical,
            Inner::Protobuf(s) => &s.canonical,
        }
    }

    /// A Protobuf schema as a serialized `FileDescriptorProto` in base64 (the registry's
    /// `?format=serialized`); `None` for Avro and JSON Schema.
    pub fn protobuf_serialized(&self) -> Option<String> {
        self.as_protobuf().map(protobuf::ProtoSchema::serialized)
    }

    /// The Protobuf view, for the serdes.
    pub(crate) fn as_protobuf(&self) -> Option<&protobuf::ProtoSchema> {
        match &self.0 {
            Inner::Protobuf(p) => Some(p),
            _ => None,
        }
    }

    /// The Avro schema and the schemas its references name, for the serdes.
    pub fn as_avro(&self) -> Option<(&apache_avro::Schema, Vec<&apache_avro::Schema>)> {
        match &self.0 {
            Inner::Avro(a) => Some((&a.schema, a.schemata.iter().collect())),
            _ => None,
        }
    }

    /// The JSON Schema document, for the serdes.
    pub fn as_json(&self) -> Option<&Value> {
        match &self.0 {
            Inner::Json(j) => Some(&j.value),
            _ => None,
        }
    }

    /// The rules broken when data written with `writer` is read with `reader`
    /// (`reader_is_new` says which of them is the schema being registered). Schemas of
    /// different formats never read each other.
    pub fn can_read(
        reader: &ParsedSchema,
        writer: &ParsedSchema,
        reader_is_new: bool,
    ) -> Vec<Incompatibility> {
        match (&reader.0, &writer.0) {
            (Inner::Avro(r), Inner::Avro(w)) => avro::can_read(r, w),
            (Inner::Json(r), Inner::Json(w)) => json::can_read(r, w),
            (Inner::Protobuf(r), Inner::Protobuf(w)) => protobuf::can_read(r, w, reader_is_new),
            _ => vec![Incompatibility::new(
                "SCHEMA_TYPE_CHANGED",
                "/".into(),
                format!(
                    "a {} schema cannot read {} data",
                    reader.schema_type(),
                    writer.schema_type()
                ),
            )],
        }
    }
}

/// JSON with object keys sorted and no insignificant whitespace.
pub(crate) fn canonical_json(v: &Value) -> String {
    fn write(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push(':');
                    write(&m[k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(v, &mut out);
    out
}
