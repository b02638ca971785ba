//! Serializers and deserializers in Confluent's wire format, for services that use the
//! registry from Rust:
//!
//! | bytes | what |
//! | --- | --- |
//! | 0 | magic byte 0 |
//! | 1..5 | schema id, big-endian u32 |
//! | Protobuf only | message indexes: zig-zag varint count, then each index (`[0]` is the single byte 0) |
//! | rest | the Avro binary datum, the JSON text, or the Protobuf message |
//!
//! A serializer holds its schema: supplied as text, or derived from the type (Avro via
//! apache-avro's `AvroSchema`, JSON Schema via `schemars`). With auto-registration it
//! registers the schema under the subject on first use; without, it looks the schema up
//! and fails if it is not registered. Ids are cached per subject, schemas per id.
//!
//! ```no_run
//! # async fn run() -> Result<(), herald_schema::serde::SerdeError> {
//! use std::sync::Arc;
//! use herald_schema::serde::{JsonSchemaDeserializer, JsonSchemaSerializer, SchemaRegistryClient, topic_subject};
//!
//! #[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
//! struct OrderPlaced { order_id: String, cents: i64 }
//!
//! let client = Arc::new(SchemaRegistryClient::new("http://127.0.0.1:8081")?);
//! let ser = JsonSchemaSerializer::<OrderPlaced>::derived(client.clone(), true)?;
//! let bytes = ser.serialize(&topic_subject("orders", false), &OrderPlaced { order_id: "o-1".into(), cents: 1250 }).await?;
//! let back: OrderPlaced = JsonSchemaDeserializer::new(client).deserialize(&bytes).await?;
//! # Ok(())
//! # }
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use reqwest::{Method, Url};
use serde_json::Value;
use thiserror::Error;

mod avro;
mod json;
mod protobuf;

pub use avro::{AvroDeserializer, AvroSerializer, ResolvedReferenceSpec};
pub use json::{JsonSchemaDeserializer, JsonSchemaSerializer};
pub use protobuf::{ProtobufDeserializer, ProtobufSerializer};

use crate::{
    format::{ParsedSchema, ResolvedReference},
    types::{SchemaReference, SchemaRequest, SchemaType},
};

/// The wire format's first byte.
pub const MAGIC_BYTE: u8 = 0;

/// Why serializing or deserializing failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum SerdeError {
    /// The registry URL is not usable.
    #[error("invalid schema registry URL {url:?}: {reason}")]
    Url {
        /// The URL given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The registry could not be reached.
    #[error("schema registry at {url} not reachable: {source}")]
    Unreachable {
        /// The registry URL.
        url: String,
        /// The HTTP client's error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an error.
    #[error("schema registry refused: {message} (HTTP {status}, error_code {error_code})")]
    Registry {
        /// HTTP status.
        status: u16,
        /// Confluent error code.
        error_code: i64,
        /// The registry's message.
        message: String,
    },
    /// A schema cannot be used.
    #[error("schema: {0}")]
    Schema(String),
    /// The value does not fit the schema, or cannot be encoded.
    #[error("cannot serialize: {0}")]
    Serialize(String),
    /// The bytes are not in the wire format, or do not decode.
    #[error("cannot deserialize: {0}")]
    Deserialize(String),
}

/// The subject of Confluent's TopicNameStrategy: `<topic>-key` or `<topic>-value`.
pub fn topic_subject(topic: &str, is_key: bool) -> String {
    format!("{topic}-{}", if is_key { "key" } else { "value" })
}

/// Frames `payload` with the magic byte, the schema id and (Protobuf) message indexes.
pub fn frame(id: u32, message_indexes: Option<&[i32]>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    if let Some(indexes) = message_indexes {
        if indexes == [0] {
            out.push(0);
        } else {
            put_zigzag(&mut out, indexes.len() as i64);
            for &i in indexes {
                put_zigzag(&mut out, i64::from(i));
            }
        }
    }
    out.extend_from_slice(payload);
    out
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    let mut u = ((v << 1) ^ (v >> 63)) as u64;
    while u >= 0x80 {
        out.push((u as u8) | 0x80);
        u >>= 7;
    }
    out.push(u as u8);
}

fn get_zigzag(bytes: &mut &[u8]) -> Result<i64, SerdeError> {
    let mut u: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = bytes
            .split_first()
            .ok_or_else(|| SerdeError::Deserialize("message indexes end early".into()))?;
        *bytes = rest;
        u |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((u >> 1) as i64) ^ -((u & 1) as i64));
        }
    }
    Err(SerdeError::Deserialize(
        "over-long varint in message indexes".into(),
    ))
}

/// Splits wire-format bytes into the schema id and the rest.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), SerdeError> {
    if bytes.len() < 5 || bytes[0] != MAGIC_BYTE {
        return Err(SerdeError::Deserialize(format!(
            "{} bytes starting {:02x?} are not in the schema registry wire format (magic byte 0, 4-byte id)",
            bytes.len(),
            &bytes[..bytes.len().min(5)]
        )));
    }
    Ok((
        u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]),
        &bytes[5..],
    ))
}

/// Reads the Protobuf message indexes after the id.
pub fn read_message_indexes(mut rest: &[u8]) -> Result<(Vec<i32>, &[u8]), SerdeError> {
    let count = get_zigzag(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(1..=100).contains(&count) {
        return Err(SerdeError::Deserialize(format!("{count} message indexes")));
    }
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(
            i32::try_from(get_zigzag(&mut rest)?)
                .map_err(|_| SerdeError::Deserialize("message index out of range".into()))?,
        );
    }
    Ok((out, rest))
}

/// An HTTP client of a schema registry (Herald's or Confluent's) with caches: ids by
/// subject and schema, parsed schemas by id.
#[derive(Debug)]
pub struct SchemaRegistryClient {
    base: Url,
    http: reqwest::Client,
    /// HTTP Basic credentials (Confluent's `basic.auth.user.info`).
    basic_auth: Option<(String, String)>,
    ids: Mutex<HashMap<(String, String, bool), u32>>,
    schemas: Mutex<HashMap<u32, Arc<ParsedSchema>>>,
}

impl SchemaRegistryClient {
    /// A client of the registry at `url` (e.g. `http://127.0.0.1:8081`).
    pub fn new(url: &str) -> Result<Self, SerdeError> {
        let base = Url::parse(url).map_err(|e| SerdeError::Url {
            url: url.into(),
            reason: e.to_string(),
        })?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(SerdeError::Url {
                url: url.into(),
                reason: "not an http:// or https:// URL".into(),
            });
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| SerdeError::Url {
                url: url.into(),
                reason: e.to_string(),
            })?;
        Ok(Self {
            base,
            http,
            basic_auth: None,
            ids: Mutex::default(),
            schemas: Mutex::default(),
        })
    }

    /// Sends HTTP Basic credentials with every request (a registry with authentication;
    /// Confluent's clients call it `basic.auth.user.info`).
    pub fn with_basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.basic_auth = Some((user.into(), password.into()));
        self
    }

    /// The registry URL.
    pub fn url(&self) -> &Url {
        &self.base
    }

    fn url_of(&self, segments: &[&str], query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        url
    }

    /// Sends a request and returns the JSON answer, or the registry's error.
    pub async fn request(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, SerdeError> {
        let mut req = self
            .http
            .request(method, self.url_of(segments, query))
            .header(
                "accept",
                "application/vnd.schemaregistry.v1+json, application/json",
            );
        if let Some(b) = body {
            req = req
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(b.to_string());
        }
        if let Some((user, password)) = &self.basic_auth {
            req = req.basic_auth(user, Some(password));
        }
        let unreachable = |source| SerdeError::Unreachable {
            url: self.base.to_string(),
            source,
        };
        let resp = req.send().await.map_err(unreachable)?;
        let status = resp.status();
        let text = resp.text().await.map_err(unreachable)?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        if status.is_success() {
            return Ok(json);
        }
        Err(SerdeError::Registry {
            status: status.as_u16(),
            error_code: json["error_code"].as_i64().unwrap_or(-1),
            message: json["message"].as_str().map_or(text, str::to_string),
        })
    }

    async fn id_for(
        &self,
        subject: &str,
        req: &SchemaRequest,
        register: bool,
    ) -> Result<u32, SerdeError> {
        let key = (subject.to_string(), req.schema.clone(), register);
        if let Some(id) = self.ids.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
            return Ok(*id);
        }
        let body = serde_json::to_value(req).map_err(|e| SerdeError::Schema(e.to_string()))?;
        let answer = if register {
            self.request(
                Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(&body),
            )
            .await?
        } else {
            self.request(Method::POST, &["subjects", subject], &[], Some(&body))
                .await?
        };
        let id = answer["id"]
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .ok_or_else(|| {
                SerdeError::Schema(format!("no id in the registry's answer {answer}"))
            })?;
        self.ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, id);
        Ok(id)
    }

    /// Registers `req` under `subject` (or finds it) and returns its id.
    pub async fn register(&self, subject: &str, req: &SchemaRequest) -> Result<u32, SerdeError> {
        self.id_for(subject, req, true).await
    }

    /// The id of `req` if it is registered under `subject`.
    pub async fn lookup(&self, subject: &str, req: &SchemaRequest) -> Result<u32, SerdeError> {
        self.id_for(subject, req, false).await
    }

    /// The schema with `id`, parsed (its references fetched and resolved).
    pub async fn schema(&self, id: u32) -> Result<Arc<ParsedSchema>, SerdeError> {
        if let Some(s) = self
            .schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
        {
            return Ok(s.clone());
        }
        let idtext = id.to_string();
        let v = self
            .request(Method::GET, &["schemas", "ids", &idtext], &[], None)
            .await?;
        let (schema_type, text, refs) = Self::schema_parts(&v)?;
        let mut resolved = Vec::new();
        self.resolve(&refs, &mut resolved, 0).await?;
        let parsed = Arc::new(
            ParsedSchema::parse(schema_type, &text, &resolved).map_err(SerdeError::Schema)?,
        );
        self.schemas
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, parsed.clone());
        Ok(parsed)
    }

    fn schema_parts(v: &Value) -> Result<(SchemaType, String, Vec<SchemaReference>), SerdeError> {
        let schema_type = match v["schemaType"].as_str() {
            Some(t) => t
                .parse()
                .map_err(|e: crate::types::TypeError| SerdeError::Schema(e.to_string()))?,
            None => SchemaType::Avro,
        };
        let text = v["schema"]
            .as_str()
            .ok_or_else(|| SerdeError::Schema(format!("no schema in {v}")))?
            .to_string();
        let refs: Vec<SchemaReference> =
            serde_json::from_value(v["references"].clone()).unwrap_or_default();
        Ok((schema_type, text, refs))
    }

    fn resolve<'a>(
        &'a self,
        refs: &'a [SchemaReference],
        out: &'a mut Vec<ResolvedReference>,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SerdeError>> + Send + 'a>>
    {
        Box::pin(async move {
            if depth > 32 {
                return Err(SerdeError::Schema("references nest too deep".into()));
            }
            for r in refs {
                let version = r.version.to_string();
                let v = self
                    .request(
                        Method::GET,
                        &["subjects", &r.subject, "versions", &version],
                        &[],
                        None,
                    )
                    .await?;
                let (schema_type, text, nested) = Self::schema_parts(&v)?;
                self.resolve(&nested, out, depth + 1).await?;
                if !out.iter().any(|o| o.name == r.name) {
                    out.push(ResolvedReference {
                        name: r.name.clone(),
                        schema_type,
                        text,
                    });
                }
            }
            Ok(())
        })
    }
}

/// The schema a serializer writes with, and how it gets its id.
#[derive(Debug)]
struct Writer {
    client: Arc<SchemaRegistryClient>,
    request: SchemaRequest,
    auto_register: bool,
}

impl Writer {
    async fn id(&self, subject: &str) -> Result<u32, SerdeError> {
        if self.auto_register {
            self.client.register(subject, &self.request).await
        } else {
            self.client.lookup(subject, &self.request).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_message_indexes() {
        for indexes in [vec![0], vec![1], vec![0, 2], vec![3, 1, 70]] {
            let bytes = frame(258, Some(&indexes), b"payload");
            let (id, rest) = unframe(&bytes).unwrap();
            assert_eq!(id, 258);
            let (got, payload) = read_message_indexes(rest).unwrap();
            assert_eq!((got, payload), (indexes.clone(), b"payload".as_slice()));
        }
        // [0] is the single byte 0, as Confluent's serializers write it.
        assert_eq!(frame(1, Some(&[0]), b"")[5..], [0]);
        assert_eq!(frame(1, None, b"x"), [0, 0, 0, 0, 1, b'x']);
        assert!(unframe(&[1, 0, 0, 0, 1]).is_err());
        assert!(unframe(&[0, 0]).is_err());
    }

    #[test]
    fn topic_name_strategy() {
        assert_eq!(topic_subject("orders", false), "orders-value");
        assert_eq!(topic_subject("orders", true), "orders-key");
    }
}
