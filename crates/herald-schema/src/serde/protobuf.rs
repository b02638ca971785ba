//! Protobuf: prost messages with message indexes in the frame.

use std::{marker::PhantomData, sync::Arc};

use prost::Message;

use super::{SchemaRegistryClient, SerdeError, Writer, frame, read_message_indexes, unframe};
use crate::{
    format::ParsedSchema,
    types::{SchemaRequest, SchemaType},
};

/// Writes prost messages with a supplied .proto schema.
#[derive(Debug)]
pub struct ProtobufSerializer<M> {
    writer: Writer,
    indexes: Vec<i32>,
    _m: PhantomData<fn(&M)>,
}

impl<M: Message> ProtobufSerializer<M> {
    /// A serializer for messages `message` (full name, e.g. `shop.Order`) of the .proto
    /// `schema`.
    pub fn new(
        client: Arc<SchemaRegistryClient>,
        schema: &str,
        message: &str,
        auto_register: bool,
    ) -> Result<Self, SerdeError> {
        let parsed =
            ParsedSchema::parse(SchemaType::Protobuf, schema, &[]).map_err(SerdeError::Schema)?;
        let indexes = parsed
            .as_protobuf()
            .and_then(|p| p.message_indexes(message))
            .ok_or_else(|| SerdeError::Schema(format!("the schema has no message {message:?}")))?;
        let request = SchemaRequest::new(SchemaType::Protobuf, schema);
        Ok(Self {
            writer: Writer {
                client,
                request,
                auto_register,
            },
            indexes,
            _m: PhantomData,
        })
    }

    /// Serializes `message` for `subject`.
    pub async fn serialize(&self, subject: &str, message: &M) -> Result<Vec<u8>, SerdeError> {
        let id = self.writer.id(subject).await?;
        Ok(frame(id, Some(&self.indexes), &message.encode_to_vec()))
    }
}

/// Reads Protobuf records into a prost message type, or into a dynamic message of the
/// writer's schema.
#[derive(Debug)]
pub struct ProtobufDeserializer<M> {
    client: Arc<SchemaRegistryClient>,
    _m: PhantomData<fn() -> M>,
}

impl<M: Message + Default> ProtobufDeserializer<M> {
    /// A deserializer of `M`.
    pub fn new(client: Arc<SchemaRegistryClient>) -> Self {
        Self {
            client,
            _m: PhantomData,
        }
    }

    /// Deserializes wire-format bytes into `M`.
    pub async fn deserialize(&self, bytes: &[u8]) -> Result<M, SerdeError> {
        let (_, rest) = unframe(bytes)?;
        let (_, payload) = read_message_indexes(rest)?;
        M::decode(payload).map_err(|e| SerdeError::Deserialize(e.to_string()))
    }

    /// Deserializes into a dynamic message of the schema and message the bytes name.
    pub async fn deserialize_dynamic(
        &self,
        bytes: &[u8],
    ) -> Result<prost_reflect::DynamicMessage, SerdeError> {
        let (id, rest) = unframe(bytes)?;
        let (indexes, payload) = read_message_indexes(rest)?;
        let writer = self.client.schema(id).await?;
        let proto = writer.as_protobuf().ok_or_else(|| {
            SerdeError::Deserialize(format!(
                "schema {id} is {}, not PROTOBUF",
                writer.schema_type()
            ))
        })?;
        let desc = proto.message_at(&indexes).ok_or_else(|| {
            SerdeError::Deserialize(format!("schema {id} has no message at indexes {indexes:?}"))
        })?;
        prost_reflect::DynamicMessage::decode(desc, payload)
            .map_err(|e| SerdeError::Deserialize(e.to_string()))
    }
}
