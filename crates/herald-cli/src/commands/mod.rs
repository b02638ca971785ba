//! The commands that talk to a running broker over its HTTP API.

mod admin;
mod demo;
mod produce;
mod sagas;
mod schemas;
mod tail;

pub(crate) use admin::{GroupsCommand, TopicsCommand, groups, topics};
pub(crate) use demo::{DemoArgs, demo};
pub(crate) use produce::{ProduceArgs, produce};
pub(crate) use sagas::{SagaSource, SagasCommand, sagas};
pub(crate) use schemas::{RegistryArgs, SchemasCommand, schemas};
pub(crate) use tail::{TailArgs, tail};

use crate::error::CliError;

/// Splits `k=v` (for `--config` and `--header`).
pub(crate) fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// A field of an API answer that must be there.
pub(crate) fn field<'a>(
    v: &'a serde_json::Value,
    name: &str,
) -> Result<&'a serde_json::Value, CliError> {
    v.get(name).ok_or_else(|| {
        CliError::runtime(format!("unexpected answer from herald: no {name:?} in {v}"))
    })
}
