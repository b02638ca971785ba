//! The schema registry's vocabulary: schema types, compatibility levels, modes, references, and
//! the JSON shapes of the Confluent REST API.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A name that is no schema type, compatibility level or mode. The registry answers it
/// with Confluent's error codes (42201, 42203, 42204).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TypeError {
    /// Not AVRO, JSON or PROTOBUF.
    #[error("unknown schema type {0:?}: use AVRO, JSON or PROTOBUF")]
    SchemaType(String),
    /// Unknown compatibility level.
    #[error(
        "Invalid compatibility level {0:?}: use one of NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE"
    )]
    CompatibilityLevel(String),
    /// Unknown mode.
    #[error("Invalid mode {0:?}: use one of READWRITE, READONLY, READONLY_OVERRIDE, IMPORT")]
    Mode(String),
}

/// A schema format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro (the default when a request names no type).
    Avro,
    /// JSON Schema.
    Json,
    /// Protocol Buffers (.proto text, or a base64 `FileDescriptorProto`).
    Protobuf,
}

impl SchemaType {
    /// Every type, as `GET /schemas/types` lists them.
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    /// The Confluent name.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Json => "JSON",
            SchemaType::Protobuf => "PROTOBUF",
        }
    }
}

impl fmt::Display for SchemaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SchemaType {
    type Err = TypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "AVRO" => Ok(SchemaType::Avro),
            "JSON" => Ok(SchemaType::Json),
            "PROTOBUF" => Ok(SchemaType::Protobuf),
            _ => Err(TypeError::SchemaType(s.to_string())),
        }
    }
}

/// A compatibility level: which earlier versions a new one is checked against, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema reads data written with the latest version.
    Backward,
    /// The new schema reads data written with every version.
    BackwardTransitive,
    /// The latest version reads data written with the new schema.
    Forward,
    /// Every version reads data written with the new schema.
    ForwardTransitive,
    /// Backward and forward against the latest version.
    Full,
    /// Backward and forward against every version.
    FullTransitive,
}

impl CompatibilityLevel {
    /// Every level.
    pub const ALL: [CompatibilityLevel; 7] = [
        CompatibilityLevel::None,
        CompatibilityLevel::Backward,
        CompatibilityLevel::BackwardTransitive,
        CompatibilityLevel::Forward,
        CompatibilityLevel::ForwardTransitive,
        CompatibilityLevel::Full,
        CompatibilityLevel::FullTransitive,
    ];

    /// The Confluent name.
    pub fn as_str(self) -> &'static str {
        match self {
            CompatibilityLevel::None => "NONE",
            CompatibilityLevel::Backward => "BACKWARD",
            CompatibilityLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatibilityLevel::Forward => "FORWARD",
            CompatibilityLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatibilityLevel::Full => "FULL",
            CompatibilityLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether the new schema must read old data.
    pub fn backward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Backward
                | CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Whether old schemas must read new data.
    pub fn forward(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::Forward
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::Full
                | CompatibilityLevel::FullTransitive
        )
    }

    /// Whether every earlier version is checked, not only the latest.
    pub fn transitive(self) -> bool {
        matches!(
            self,
            CompatibilityLevel::BackwardTransitive
                | CompatibilityLevel::ForwardTransitive
                | CompatibilityLevel::FullTransitive
        )
    }
}

impl fmt::Display for CompatibilityLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatibilityLevel {
    type Err = TypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CompatibilityLevel::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| TypeError::CompatibilityLevel(s.to_string()))
    }
}

/// Whether a subject (or the registry) takes writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Mode {
    /// Normal operation.
    Readwrite,
    /// Registrations and deletes are refused.
    Readonly,
    /// As `READONLY`, and a subject-level override cannot lift it.
    ReadonlyOverride,
    /// Registrations keep the ids and versions they name (migrating another registry);
    /// compatibility is not checked.
    Import,
}

impl Mode {
    /// The Confluent name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Readwrite => "READWRITE",
            Mode::Readonly => "READONLY",
            Mode::ReadonlyOverride => "READONLY_OVERRIDE",
            Mode::Import => "IMPORT",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = TypeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Mode::Readwrite,
            Mode::Readonly,
            Mode::ReadonlyOverride,
            Mode::Import,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s.trim()))
        .ok_or_else(|| TypeError::Mode(s.to_string()))
    }
}

/// A reference from one schema to a version of another subject, under the name the
/// referring schema uses for it (an Avro full name, a JSON Schema `$ref` URL, a
/// Protobuf import path).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The name the referring schema uses.
    pub name: String,
    /// The referenced subject.
    pub subject: String,
    /// The referenced version.
    pub version: i32,
}

/// Body of `POST /subjects/{subject}/versions`, `POST /subjects/{subject}` and the
/// compatibility endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The schema text.
    pub schema: String,
    /// The format; AVRO when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    /// References to other subjects' versions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    /// In IMPORT mode: the id to register the schema under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    /// In IMPORT mode: the version to register the schema as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i64>,
    /// Data-contract metadata (accepted, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    /// Data-contract rules (accepted, not stored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<serde_json::Value>,
}

impl SchemaRequest {
    /// A request for `schema` of `schema_type` without references.
    pub fn new(schema_type: SchemaType, schema: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            schema_type: Some(schema_type.as_str().to_string()),
            references: Vec::new(),
            id: None,
            version: None,
            metadata: None,
            rule_set: None,
        }
    }

    /// The same request with references.
    pub fn with_references(mut self, references: Vec<SchemaReference>) -> Self {
        self.references = references;
        self
    }

    /// The declared type (AVRO when absent).
    pub fn parsed_type(&self) -> Result<SchemaType, TypeError> {
        match &self.schema_type {
            None => Ok(SchemaType::Avro),
            Some(t) => t.parse(),
        }
    }
}

/// A version of a subject as the API shows it (`GET /subjects/{s}/versions/{v}`,
/// `POST /subjects/{s}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version within the subject, from 1.
    pub version: i32,
    /// The global schema id.
    pub id: u32,
    /// The format (omitted for AVRO, as Confluent does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<SchemaType>,
    /// References.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
    /// The schema text.
    pub schema: String,
}

/// `{subject, version}` pairs of `GET /schemas/ids/{id}/versions`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SubjectAndVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: i32,
}
