//! The commands that talk to a running broker over its HTTP API.

mod demo;
mod groups;
mod produce;
mod sagas;
mod schemas;
mod tail;
mod topics;

pub(crate) use demo::{DemoArgs, demo};
pub(crate) use groups::{GroupsCommand, groups};
pub(crate) use produce::{ProduceArgs, produce};
pub(crate) use sagas::{SagaSource, SagasCommand, sagas};
pub(crate) use schemas::{RegistryArgs, SchemasCommand, schemas};
pub(crate) use tail::{TailArgs, tail};
pub(crate) use topics::{TopicsCommand, topics};

/// Splits `k=v` (for `--config` and `--header`).
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}
