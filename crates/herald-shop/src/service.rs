//! What every consumer of the shop shares: a router per service with the service's
//! inbox, dead-letter topics and retries, and the unit of work each handler runs in.
//!
//! A handler's unit of work is one transaction of the service's database: record the
//! event in the inbox (a duplicate stops there), make the effect, put the replies in the
//! outbox as caused by the handled event (so they carry its correlation id and trace),
//! commit. The relay publishes the replies afterwards. A crash anywhere either rolls all
//! of it back (the event is redelivered) or leaves all of it done (the redelivered copy
//! is a duplicate): each effect happens once.

use std::time::Duration;

use herald::{
    Envelope, Event, HandlerError, RetryPolicy, Router, RouterHandle, router::RouterBuilder,
    transport::Transport,
};
use herald_sql::{FromValue, RelayHandle, Row};

use crate::db::ServiceDb;

/// Builds a reply to the handled event: `event` in an envelope from `source`, for
/// [`UnitOfWork::publish`](herald_sql::UnitOfWork::publish), which marks it as caused by
/// the handled event.
pub(crate) fn reply<E: Event>(source: &str, event: &E) -> Result<Envelope, HandlerError> {
    Envelope::from_event(source, event).map_err(HandlerError::permanent)
}

/// Column `index` of `row` as `T`, inside a handler: another type is a bug of the
/// statement, which no retry fixes.
pub(crate) fn col<T: FromValue>(row: &Row, index: usize) -> Result<T, HandlerError> {
    row.get(index).map_err(HandlerError::permanent)
}

/// How handlers retry: transient failures (a busy database, a mail server that is down)
/// back off up to `max_delay` and keep trying for `give_up_after` before the event is
/// dead-lettered; a permanent failure (an event that does not decode) is dead-lettered
/// at once.
pub fn retry_policy(give_up_after: Duration) -> RetryPolicy {
    RetryPolicy::default()
        .with_max_attempts(u32::MAX)
        .with_delays(Duration::from_millis(20), Duration::from_millis(500), 2.0)
        .with_max_elapsed(Some(give_up_after))
}

/// A consumer group of a service, configured the shop's way: the service's inbox, its
/// source, the shop's retry policy. Events that fail for good go to
/// `<topic>.<group>.dlq`.
pub(crate) fn router<T: Transport>(
    transport: T,
    group: &str,
    db: &ServiceDb,
    give_up_after: Duration,
) -> RouterBuilder<T> {
    Router::builder(transport, group)
        .source(format!("urn:herald-shop:{group}"))
        .inbox(db.inbox())
        .retry(retry_policy(give_up_after))
}

/// A running service: its consumer groups, its relay, its database.
pub struct ServiceHandle {
    /// The service's name (also its consumer group).
    pub name: &'static str,
    routers: Vec<RouterHandle>,
    relay: Option<RelayHandle>,
    stops: Vec<Stop>,
    db: ServiceDb,
}

/// Stops a part of a service that is neither a router nor a relay (the saga runtime, the
/// HTTP server): `true` asks for a crash-like stop, `false` for a clean one.
pub(crate) type Stop = Box<
    dyn FnOnce(
            bool,
        )
            -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
        + Send
        + Sync,
>;

impl std::fmt::Debug for ServiceHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceHandle")
            .field("name", &self.name)
            .field("routers", &self.routers.len())
            .finish_non_exhaustive()
    }
}

impl ServiceHandle {
    pub(crate) fn new(name: &'static str, db: ServiceDb) -> Self {
        Self {
            name,
            routers: Vec::new(),
            relay: None,
            stops: Vec::new(),
            db,
        }
    }

    pub(crate) fn with_router(mut self, router: RouterHandle) -> Self {
        self.routers.push(router);
        self
    }

    pub(crate) fn with_relay(mut self, relay: RelayHandle) -> Self {
        self.relay = Some(relay);
        self
    }

    pub(crate) fn with_stop(mut self, stop: Stop) -> Self {
        self.stops.push(stop);
        self
    }

    /// The service's database.
    pub fn db(&self) -> &ServiceDb {
        &self.db
    }

    /// Whether a router stopped by itself (a fatal transport error).
    pub fn has_failed(&self) -> bool {
        self.routers.iter().any(RouterHandle::is_finished)
    }

    /// Crashes the service's consumers: their routers abort without committing, so what
    /// they read since their last commit is delivered again to whoever joins next. The
    /// relay and the database keep going, as they would in a process whose consumer
    /// task died.
    pub async fn crash_consumers(&mut self) {
        for router in self.routers.drain(..) {
            router.abort().await;
        }
    }

    /// Adds consumers started again after [`crash_consumers`](Self::crash_consumers).
    pub fn restart_consumers(&mut self, routers: Vec<RouterHandle>) {
        self.routers.extend(routers);
    }

    /// Stops cleanly: routers drain and commit, the relay hands its slots over.
    pub async fn shutdown(self) -> Result<(), String> {
        let mut errors = Vec::new();
        for stop in self.stops {
            if let Err(e) = stop(false).await {
                errors.push(format!("{}: {e}", self.name));
            }
        }
        for router in self.routers {
            if let Err(e) = router.shutdown().await {
                errors.push(format!("{}: {e}", self.name));
            }
        }
        if let Some(relay) = self.relay
            && let Err(e) = relay.shutdown().await
        {
            errors.push(format!("{} relay: {e}", self.name));
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}
