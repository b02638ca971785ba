//! The shop assembled: every service in one process ([`Shop`]), or one service at a time
//! ([`start_service`]) for separate processes.

use std::{net::SocketAddr, sync::Arc};

use herald::{
    RouterHandle,
    transport::{Admin, Transport, TransportError},
};

use crate::{
    ShopError,
    db::{ServiceDb, Storage},
    events::{PARTITIONS, TOPICS},
    inventory,
    order::{self, Orders},
    payment, reactions,
    saga::OrderSaga,
    service::ServiceHandle,
    settings::Settings,
    shipping,
};

/// The services, in the order they start.
pub const SERVICES: [&str; 7] = [
    inventory::NAME,
    payment::NAME,
    shipping::NAME,
    reactions::NOTIFICATION,
    reactions::ANALYTICS,
    reactions::LOYALTY,
    order::NAME,
];

/// Creates the shop's topics (those that exist are kept).
pub async fn create_topics<T: Admin>(transport: &T) -> Result<(), ShopError> {
    for topic in TOPICS {
        match transport.create_topic(topic, PARTITIONS).await {
            Ok(()) | Err(TransportError::TopicExists { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Starts the order service: its tables, the saga runtime, the relay. Returns the
/// handle and the state the HTTP API serves ([`order::http`]).
pub async fn start_order<T: Transport>(
    transport: T,
    db: ServiceDb,
    settings: &Settings,
) -> Result<(ServiceHandle, Orders), ShopError> {
    db.create_tables(order::TABLES).await?;
    let saga = OrderSaga::open(&db, settings).await?;
    let relay = db.start_relay(transport.clone());
    let runtime = saga.start_runtime(transport, db.clone()).await?;
    let orders = Orders::new(db.clone(), Arc::new(settings.clone()), saga);
    let handle = ServiceHandle::new(order::NAME, db)
        .with_relay(relay)
        .with_stop(runtime);
    Ok((handle, orders))
}

/// Starts the service called `name` (one of [`SERVICES`]) on `transport`, with its
/// database in `storage`. The order service's HTTP API is served by the caller
/// ([`start_order`] gives its state).
pub async fn start_service<T: Transport>(
    name: &str,
    transport: T,
    storage: &Storage,
    settings: &Settings,
) -> Result<ServiceHandle, ShopError> {
    if !SERVICES.contains(&name) {
        return Err(ShopError::Other(format!(
            "unknown service {name:?}; the services are {}",
            SERVICES.join(", ")
        )));
    }
    create_topics(&transport).await?;
    let db = ServiceDb::open(storage, name).await?;
    match name {
        inventory::NAME => inventory::start(transport, db, settings).await,
        payment::NAME => payment::start(transport, db, settings).await,
        shipping::NAME => shipping::start(transport, db, settings).await,
        reactions::NOTIFICATION => reactions::start_notification(transport, db, settings).await,
        reactions::ANALYTICS => reactions::start_analytics(transport, db, settings).await,
        reactions::LOYALTY => reactions::start_loyalty(transport, db, settings).await,
        _ => Ok(start_order(transport, db, settings).await?.0),
    }
}

/// Starts the consumers of service `name` again (after [`ServiceHandle::crash_consumers`]).
pub(crate) async fn restart_consumers<T: Transport>(
    name: &str,
    transport: T,
    db: &ServiceDb,
    settings: &Settings,
) -> Result<RouterHandle, ShopError> {
    Ok(match name {
        inventory::NAME => inventory::start_consumers(transport, db, settings).await?,
        payment::NAME => payment::start_consumers(transport, db, settings).await?,
        shipping::NAME => shipping::start_consumers(transport, db, settings).await?,
        reactions::NOTIFICATION => {
            reactions::notification_consumers(transport, db, settings).await?
        }
        reactions::ANALYTICS => reactions::analytics_consumers(transport, db, settings).await?,
        reactions::LOYALTY => reactions::loyalty_consumers(transport, db, settings).await?,
        other => {
            return Err(ShopError::Other(format!(
                "{other:?} has no consumers to restart"
            )));
        }
    })
}

/// Every service of the shop in this process, on one transport.
pub struct Shop<T: Transport> {
    transport: T,
    settings: Settings,
    orders: Orders,
    services: Vec<ServiceHandle>,
}

impl<T: Transport> std::fmt::Debug for Shop<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shop")
            .field("services", &self.services)
            .finish_non_exhaustive()
    }
}

impl<T: Transport> Shop<T> {
    /// Creates the topics and starts every service, each with its database in `storage`.
    pub async fn start(
        transport: T,
        storage: Storage,
        settings: Settings,
    ) -> Result<Self, ShopError> {
        create_topics(&transport).await?;
        let mut services = Vec::new();
        for name in SERVICES.iter().filter(|n| **n != order::NAME) {
            services.push(start_service(name, transport.clone(), &storage, &settings).await?);
        }
        let db = ServiceDb::open(&storage, order::NAME).await?;
        let (order_service, orders) = start_order(transport.clone(), db, &settings).await?;
        services.push(order_service);
        Ok(Self {
            transport,
            settings,
            orders,
            services,
        })
    }

    /// Serves the order service's HTTP API on `addr` (port 0 picks one); returns the
    /// address and the server's task.
    pub async fn serve(
        &self,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), ShopError> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local = listener.local_addr()?;
        let app = order::http(self.orders.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "the order API stopped");
            }
        });
        Ok((local, task))
    }

    /// The order service's state (what `POST /orders` calls).
    pub fn orders(&self) -> &Orders {
        &self.orders
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The settings.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The database of service `name`.
    pub fn db(&self, name: &str) -> Option<&ServiceDb> {
        self.service(name).map(ServiceHandle::db)
    }

    fn service(&self, name: &str) -> Option<&ServiceHandle> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Whether some consumer stopped by itself.
    pub fn failed_services(&self) -> Vec<&'static str> {
        self.services
            .iter()
            .filter(|s| s.has_failed())
            .map(|s| s.name)
            .collect()
    }

    /// Crashes the consumers of service `name` (they abort without committing).
    pub async fn crash_consumers(&mut self, name: &str) -> Result<(), ShopError> {
        let service = self
            .services
            .iter_mut()
            .find(|s| s.name == name)
            .ok_or_else(|| ShopError::Other(format!("no service {name:?}")))?;
        service.crash_consumers().await;
        Ok(())
    }

    /// Starts the consumers of service `name` again; they resume from the last commit.
    pub async fn restart_consumers(&mut self, name: &str) -> Result<(), ShopError> {
        let index = self
            .services
            .iter()
            .position(|s| s.name == name)
            .ok_or_else(|| ShopError::Other(format!("no service {name:?}")))?;
        let db = self.services[index].db().clone();
        let router = restart_consumers(name, self.transport.clone(), &db, &self.settings).await?;
        self.services[index].restart_consumers(vec![router]);
        Ok(())
    }

    /// Stops every service cleanly (order service first, so no new saga commands).
    pub async fn shutdown(self) -> Result<(), ShopError> {
        let mut errors = Vec::new();
        for service in self.services.into_iter().rev() {
            let db = service.db().clone();
            if let Err(e) = service.shutdown().await {
                errors.push(e);
            }
            db.close().await;
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ShopError::Other(errors.join("; ")))
        }
    }
}
