//! herald-api: the request and response bodies of Herald's HTTP API (`/api/v1`), and
//! nothing else. `herald serve` (herald-broker's HTTP server) answers with these types
//! and the `herald` CLI reads them, so the two cannot disagree on a field name; the
//! wire form of each is documented in `docs/http-api.md`.
//!
//! The crate is serde only: no server, no client, no I/O.

pub mod error;
pub mod groups;
pub mod records;
pub mod security;
pub mod topics;

pub use error::{ErrorBody, codes};
