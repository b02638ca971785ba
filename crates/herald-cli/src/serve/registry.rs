//! The schema registry inside `herald serve`: opened from `<data-dir>/registry/`, its
//! Confluent REST API bound on `registry_listen`, and handed to the broker as the check
//! behind `confluent.{key,value}.schema.validation`.

use std::{net::SocketAddr, sync::Arc};

use herald_broker::validation::{SchemaIdCheck, SchemaIdStatus};
use herald_registry::{
    IdStatus, Registry, RegistryConfig,
    http::{RegistryHttpConfig, RegistryServer},
};

use super::{ServeConfig, in_use};
use crate::error::CliError;

/// The open registry and its listener.
pub(super) struct Served {
    registry: Registry,
    server: RegistryServer,
}

/// The registry after its listener stopped, until its log is closed.
pub(super) struct Stopped(Registry);

impl Served {
    pub(super) async fn start(
        config: &ServeConfig,
        tls: Option<&herald_security::TlsServer>,
    ) -> Result<Self, CliError> {
        let data_dir = config.broker.data_dir.clone();
        let registry = tokio::task::spawn_blocking(move || {
            Registry::open(&data_dir, RegistryConfig::default())
        })
        .await
        .map_err(|e| CliError::runtime(format!("the schema registry did not open: {e}")))?
        .map_err(|e| {
            CliError::runtime(format!(
                "cannot open the schema registry in {}: {e}",
                config.broker.data_dir.join("registry").display()
            ))
        })?;
        let mut http = RegistryHttpConfig::new(config.registry_listen);
        http.allowed_hosts.clone_from(&config.http.allowed_hosts);
        http.basic_auth.clone_from(&config.http.basic_auth);
        http.authorizer.clone_from(&config.http.authorizer);
        if config.tls_on.registry {
            http.tls = tls.cloned();
        }
        let server = RegistryServer::bind(http, registry.clone())
            .await
            .map_err(|e| {
                in_use(
                    config.registry_listen,
                    "schema registry",
                    "--registry-listen",
                    e,
                )
            })?;
        Ok(Self { registry, server })
    }

    pub(super) fn local_addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub(super) fn id_check(&self) -> Arc<dyn SchemaIdCheck> {
        Arc::new(IdCheck(self.registry.clone()))
    }

    /// Stops the listener (requests in flight finish); the log stays open for the
    /// broker's validation until [`Stopped::close`].
    pub(super) async fn stop_serving(self) -> Stopped {
        self.server.shutdown().await;
        Stopped(self.registry)
    }
}

impl Stopped {
    pub(super) async fn close(self) -> Result<(), CliError> {
        self.0.close().await.map_err(|e| {
            CliError::runtime(format!("the schema registry did not close cleanly: {e}"))
        })
    }
}

/// The registry as the broker's schema-id check: the one place the two meet, so neither
/// crate depends on the other.
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
