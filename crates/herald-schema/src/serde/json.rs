//! JSON Schema: JSON text validated against the schema on both sides.

use std::{marker::PhantomData, sync::Arc};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{SchemaRegistryClient, SerdeError, Writer, frame, unframe};
use crate::{
    format::ParsedSchema,
    types::{SchemaRequest, SchemaType},
};

/// Writes `T` as JSON after validating it against the serializer's JSON Schema.
#[derive(Debug)]
pub struct JsonSchemaSerializer<T> {
    writer: Writer,
    validator: jsonschema::Validator,
    _t: PhantomData<fn(&T)>,
}

impl<T: Serialize> JsonSchemaSerializer<T> {
    /// A serializer with a schema supplied as JSON Schema text.
    pub fn new(
        client: Arc<SchemaRegistryClient>,
        schema: &str,
        auto_register: bool,
    ) -> Result<Self, SerdeError> {
        let parsed =
            ParsedSchema::parse(SchemaType::Json, schema, &[]).map_err(SerdeError::Schema)?;
        let validator = jsonschema::validator_for(parsed.as_json().expect("parsed as JSON"))
            .map_err(|e| SerdeError::Schema(e.to_string()))?;
        let request = SchemaRequest::new(SchemaType::Json, schema);
        Ok(Self {
            writer: Writer {
                client,
                request,
                auto_register,
            },
            validator,
            _t: PhantomData,
        })
    }

    /// A serializer whose schema is derived from `T` with `schemars`.
    pub fn derived(
        client: Arc<SchemaRegistryClient>,
        auto_register: bool,
    ) -> Result<Self, SerdeError>
    where
        T: schemars::JsonSchema,
    {
        let schema = schemars::schema_for!(T);
        let text = serde_json::to_string(&schema).map_err(|e| SerdeError::Schema(e.to_string()))?;
        Self::new(client, &text, auto_register)
    }

    /// Validates and serializes `value` for `subject`.
    pub async fn serialize(&self, subject: &str, value: &T) -> Result<Vec<u8>, SerdeError> {
        let json = serde_json::to_value(value).map_err(|e| SerdeError::Serialize(e.to_string()))?;
        if let Err(e) = self.validator.validate(&json) {
            return Err(SerdeError::Serialize(format!(
                "the value does not match the schema: {e} (at {})",
                e.instance_path
            )));
        }
        let id = self.writer.id(subject).await?;
        Ok(frame(id, None, json.to_string().as_bytes()))
    }
}

/// Reads JSON records, validated against the schema they were written with.
#[derive(Debug)]
pub struct JsonSchemaDeserializer<T> {
    client: Arc<SchemaRegistryClient>,
    validate: bool,
    _t: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> JsonSchemaDeserializer<T> {
    /// A deserializer that validates each record against its writer's schema.
    pub fn new(client: Arc<SchemaRegistryClient>) -> Self {
        Self {
            client,
            validate: true,
            _t: PhantomData,
        }
    }

    /// Skips validation (faster; trusts the producer).
    pub fn without_validation(mut self) -> Self {
        self.validate = false;
        self
    }

    /// Deserializes wire-format bytes.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<T, SerdeError> {
        let (id, payload) = unframe(bytes)?;
        let json: Value =
            serde_json::from_slice(payload).map_err(|e| SerdeError::Deserialize(e.to_string()))?;
        if self.validate {
            let writer = self.client.schema(id).await?;
            let schema = writer.as_json().ok_or_else(|| {
                SerdeError::Deserialize(format!(
                    "schema {id} is {}, not JSON",
                    writer.schema_type()
                ))
            })?;
            let validator =
                jsonschema::validator_for(schema).map_err(|e| SerdeError::Schema(e.to_string()))?;
            if let Err(e) = validator.validate(&json) {
                return Err(SerdeError::Deserialize(format!(
                    "record does not match schema {id}: {e}"
                )));
            }
        }
        serde_json::from_value(json).map_err(|e| SerdeError::Deserialize(e.to_string()))
    }
}
