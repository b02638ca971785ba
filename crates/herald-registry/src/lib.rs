//! herald-registry: Herald's schema registry, compatible with Confluent's.
//!
//! - [`registry::Registry`]: subjects, versions, global ids, compatibility levels and
//!   modes, kept durably in a herald-log log under `<data-dir>/registry/` and replayed
//!   on open. Writes are serialised, so one schema registered concurrently gets one id.
//! - [`format`](mod@format): Avro, JSON Schema and Protobuf: parsing with references, the identity
//!   form that makes "the same schema" the same id, and the compatibility rules of each
//!   (named in every incompatibility message).
//! - [`http`]: the Confluent REST API (`/subjects`, `/schemas`, `/config`, `/mode`,
//!   `/compatibility`) with Confluent's status codes and `{"error_code", "message"}`
//!   bodies; `herald serve` binds it on `registry_listen` (default 127.0.0.1:8081).
//! - [`Registry::id_status`] answers whether a schema id is registered under a subject:
//!   `herald serve` adapts it to the broker's schema-id check, so topics with
//!   `confluent.value.schema.validation=true` refuse records whose schema id is not
//!   registered under `<topic>-value`. The registry does not depend on the broker.
//!
//! The formats and the vocabulary are herald-schema's ([`format`](mod@format) and [`types`] are
//! re-exported from it), as are the wire-format serializers a service uses: a client
//! needs herald-schema only, never this server crate.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_registry::{
//!     http::{RegistryHttpConfig, RegistryServer},
//!     registry::{Registry, RegistryConfig},
//!     types::{SchemaRequest, SchemaType},
//! };
//!
//! let registry = Registry::open("/tmp/herald-data".as_ref(), RegistryConfig::default())?;
//! let id = registry
//!     .register("orders-value", SchemaRequest::new(SchemaType::Avro, r#""string""#))
//!     .await?;
//! let server = RegistryServer::bind(RegistryHttpConfig::new("127.0.0.1:0".parse()?), registry).await?;
//! println!("schema {id}; registry at http://{}", server.local_addr());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! docs/schema-registry.md documents the API coverage, normalisation, the rules of each
//! format and the broker-side validation.
#![deny(missing_docs)]

pub mod authz;
pub mod error;
pub mod http;
pub mod registry;
mod store;

pub use herald_schema::{format, types};

pub use error::RegistryError;
pub use registry::{IdStatus, Registry, RegistryConfig};
pub use types::{CompatibilityLevel, Mode, SchemaReference, SchemaRequest, SchemaType};
