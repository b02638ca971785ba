//! Avro: binary datums with a supplied or derived schema, resolved to a reader schema.

use std::{marker::PhantomData, sync::Arc};

use serde::{Serialize, de::DeserializeOwned};

use super::{SchemaRegistryClient, SerdeError, Writer, frame, unframe};
use crate::{
    format::{ParsedSchema, ResolvedReference},
    types::{SchemaReference, SchemaRequest, SchemaType},
};

/// Writes `T` as Avro binary with the serializer's schema.
#[derive(Debug)]
pub struct AvroSerializer<T> {
    writer: Writer,
    schema: ParsedSchema,
    _t: PhantomData<fn(&T)>,
}

impl<T: Serialize> AvroSerializer<T> {
    /// A serializer with a schema supplied as Avro JSON text (and its references).
    pub fn new(
        client: Arc<SchemaRegistryClient>,
        schema: &str,
        references: Vec<ResolvedReferenceSpec>,
        auto_register: bool,
    ) -> Result<Self, SerdeError> {
        let (request, resolved) =
            ResolvedReferenceSpec::split(SchemaType::Avro, schema, references);
        let parsed =
            ParsedSchema::parse(SchemaType::Avro, schema, &resolved).map_err(SerdeError::Schema)?;
        Ok(Self {
            writer: Writer {
                client,
                request,
                auto_register,
            },
            schema: parsed,
            _t: PhantomData,
        })
    }

    /// A serializer whose schema is derived from `T` (`#[derive(AvroSchema)]`).
    pub fn derived(
        client: Arc<SchemaRegistryClient>,
        auto_register: bool,
    ) -> Result<Self, SerdeError>
    where
        T: apache_avro::AvroSchema,
    {
        let text = serde_json::to_string(&T::get_schema())
            .map_err(|e| SerdeError::Schema(e.to_string()))?;
        Self::new(client, &text, Vec::new(), auto_register)
    }

    /// Serializes `value` for `subject`.
    pub async fn serialize(&self, subject: &str, value: &T) -> Result<Vec<u8>, SerdeError> {
        let (schema, schemata) = self.schema.as_avro().expect("parsed as Avro");
        let v = apache_avro::to_value(value).map_err(|e| SerdeError::Serialize(e.to_string()))?;
        let v = v
            .resolve_schemata(schema, schemata.clone())
            .map_err(|e| SerdeError::Serialize(e.to_string()))?;
        let payload = apache_avro::to_avro_datum_schemata(schema, schemata, v)
            .map_err(|e| SerdeError::Serialize(e.to_string()))?;
        let id = self.writer.id(subject).await?;
        Ok(frame(id, None, &payload))
    }
}

/// Reads Avro records written with any registered schema, resolved to an optional
/// reader schema, into `T`.
#[derive(Debug)]
pub struct AvroDeserializer<T> {
    client: Arc<SchemaRegistryClient>,
    reader: Option<ParsedSchema>,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> AvroDeserializer<T> {
    /// Reads with the writer's schema.
    pub fn new(client: Arc<SchemaRegistryClient>) -> Self {
        Self {
            client,
            reader: None,
            _t: PhantomData,
        }
    }

    /// Resolves the writer's data to `reader_schema` (Avro schema resolution).
    pub fn with_reader_schema(
        client: Arc<SchemaRegistryClient>,
        reader_schema: &str,
    ) -> Result<Self, SerdeError> {
        let parsed = ParsedSchema::parse(SchemaType::Avro, reader_schema, &[])
            .map_err(SerdeError::Schema)?;
        Ok(Self {
            client,
            reader: Some(parsed),
            _t: PhantomData,
        })
    }

    /// Deserializes wire-format bytes.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let (id, mut payload) = unframe(bytes)?;
        let writer = self.client.schema(id).await?;
        let (ws, wschemata) = writer.as_avro().ok_or_else(|| {
            SerdeError::Deserialize(format!("schema {id} is {}, not AVRO", writer.schema_type()))
        })?;
        let reader = self
            .reader
            .as_ref()
            .and_then(ParsedSchema::as_avro)
            .map(|(s, _)| s);
        let value = apache_avro::from_avro_datum_schemata(ws, wschemata, &mut payload, reader)
            .map_err(|e| SerdeError::Deserialize(e.to_string()))?;
        apache_avro::from_value(&value).map_err(|e| SerdeError::Deserialize(e.to_string()))
    }
}

/// A reference a serializer's schema uses: the name it uses, the subject and version it
/// is registered as, and its text (for encoding locally).
#[derive(Debug, Clone)]
pub struct ResolvedReferenceSpec {
    /// The name the schema uses.
    pub name: String,
    /// The referenced subject.
    pub subject: String,
    /// The referenced version.
    pub version: i32,
    /// The referenced schema's text.
    pub schema: String,
}

impl ResolvedReferenceSpec {
    fn split(
        schema_type: SchemaType,
        schema: &str,
        refs: Vec<ResolvedReferenceSpec>,
    ) -> (SchemaRequest, Vec<ResolvedReference>) {
        let request = SchemaRequest::new(schema_type, schema).with_references(
            refs.iter()
                .map(|r| SchemaReference {
                    name: r.name.clone(),
                    subject: r.subject.clone(),
                    version: r.version,
                })
                .collect(),
        );
        let resolved = refs
            .into_iter()
            .map(|r| ResolvedReference {
                name: r.name,
                schema_type,
                text: r.schema,
            })
            .collect();
        (request, resolved)
    }
}
