//! The registry as the broker's schema-id check, as `herald serve` installs it
//! (crates/herald-cli/src/serve/registry.rs): shared by the client test and the
//! validation bench (`#[path]`-included there).

use herald_broker::validation::{SchemaIdCheck, SchemaIdStatus};
use herald_registry::{IdStatus, Registry};

/// Adapts [`Registry::id_status`] to the broker's trait.
#[derive(Debug)]
pub(crate) struct IdCheck(pub(crate) Registry);

impl SchemaIdCheck for IdCheck {
    fn check(&self, subject: &str, id: u32) -> SchemaIdStatus {
        match self.0.id_status(subject, id) {
            IdStatus::Registered => SchemaIdStatus::Registered,
            IdStatus::NotInSubject => SchemaIdStatus::NotInSubject,
            IdStatus::UnknownId => SchemaIdStatus::UnknownId,
        }
    }
}
