//! The connection budget of the Kafka listeners, as Kafka's `max.connections` and
//! `max.connections.per.ip`: at most `max_connections` open at once over every listener
//! (beyond it the listeners stop accepting, so new clients wait in the backlog until one
//! closes), and at most `max_connections_per_ip` from one address (a connection beyond it
//! is closed at once, counted and logged).

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The budget, shared by every listener of a broker.
#[derive(Debug)]
pub(crate) struct Connections {
    total: Arc<Semaphore>,
    max_total: usize,
    max_per_ip: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in the budget; given back when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    _total: OwnedSemaphorePermit,
    ip: Option<IpAddr>,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(ip) = self.ip else { return };
        let mut counts = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// A place in the total, not yet given to an address.
#[derive(Debug)]
pub(crate) struct Reserved {
    permit: OwnedSemaphorePermit,
    max_per_ip: usize,
    per_ip: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Connections {
    pub(crate) fn new(max_total: usize, max_per_ip: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max_total)),
            max_total,
            max_per_ip,
            per_ip: Arc::default(),
        }
    }

    /// Waits for room in the total; the first wait of an episode is logged.
    pub(crate) async fn reserve(&self) -> Reserved {
        let permit = match self.total.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                crate::telemetry::connection_limit(
                    None,
                    "max_connections",
                    &format!(
                        "{} Kafka connections are open, the most max_connections allows: new \
                         clients wait until one closes (raise max_connections if the host \
                         has the descriptors)",
                        self.max_total
                    ),
                );
                self.total
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        Reserved {
            permit,
            max_per_ip: self.max_per_ip,
            per_ip: self.per_ip.clone(),
        }
    }
}

impl Reserved {
    /// The connection's slot, or `None` (logged, counted) when its address already has
    /// `max_connections_per_ip` open.
    pub(crate) fn admit(self, ip: IpAddr) -> Option<Slot> {
        if self.max_per_ip == 0 {
            return Some(Slot {
                _total: self.permit,
                ip: None,
                per_ip: self.per_ip,
            });
        }
        {
            let mut counts = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
            let n = counts.entry(ip).or_default();
            if *n >= self.max_per_ip {
                drop(counts);
                crate::telemetry::connection_limit(
                    Some(ip),
                    "max_connections_per_ip",
                    &format!(
                        "closing a new Kafka connection from {ip}: it has {} open, the most \
                         max_connections_per_ip allows (a client leaking connections?)",
                        self.max_per_ip
                    ),
                );
                return None;
            }
            *n += 1;
        }
        Some(Slot {
            _total: self.permit,
            ip: Some(ip),
            per_ip: self.per_ip,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_total_waits_and_an_address_over_its_limit_is_refused() {
        let c = Connections::new(2, 1);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = c.reserve().await.admit(a).expect("room");
        assert!(c.reserve().await.admit(a).is_none(), "a's second");
        let second = c.reserve().await.admit(b).expect("b's first");
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), c.reserve()).await;
        assert!(waiting.is_err(), "the total is full: a third waits");
        drop(first);
        let third = c.reserve().await.admit(a).expect("a's slot came back");
        drop((second, third));
        assert!(c.per_ip.lock().unwrap().is_empty(), "counts return to zero");
    }
}
