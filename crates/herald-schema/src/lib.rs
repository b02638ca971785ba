//! herald-schema: the client side of Herald's schema registry, usable by a service
//! without the registry server. It holds the registry's vocabulary ([`types`]), the
//! three schema formats with their identity form and compatibility rules ([`format`](mod@format)),
//! and serializers in Confluent's wire format over a caching registry HTTP client
//! ([`serde`](mod@serde)).
//!
//! - [`types`]: schema types, compatibility levels, modes, references, and the JSON
//!   shapes of the Confluent REST API.
//! - [`format`](mod@format): Avro, JSON Schema and Protobuf: parsing with references, the identity
//!   form that makes "the same schema" the same id, and the compatibility rules of each
//!   (named in every incompatibility message). herald-registry checks registrations with
//!   them; a client can check a schema before registering it.
//! - [`serde`](mod@serde): serializers and deserializers in Confluent's wire format
//!   (magic byte 0, 4-byte id, Protobuf message indexes) for Avro, JSON Schema and
//!   Protobuf, over a caching [`serde::SchemaRegistryClient`], with optional
//!   auto-registration. They work against herald's registry and Confluent's alike.
#![deny(missing_docs)]

pub mod format;
pub mod serde;
pub mod types;

pub use types::{CompatibilityLevel, Mode, SchemaReference, SchemaRequest, SchemaType};
