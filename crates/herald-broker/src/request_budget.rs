//! The memory budget of requests being received (Kafka's `queued.max.request.bytes`):
//! before a request's buffer is allocated, its bytes are taken from one budget shared by
//! every connection, and given back once the request has been handled (a produce: once
//! its batches are written). When the budget is spent, connections wait before reading
//! the next request's body, so clients that declare large frames and send them slowly,
//! or not at all, cannot hold more memory than the budget.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes per permit: the budget counts in KiB so that it fits the semaphore's range.
const UNIT: usize = 1024;

/// The budget, shared by every connection of a broker.
#[derive(Debug, Clone)]
pub(crate) struct RequestBudget {
    permits: Arc<Semaphore>,
    units: usize,
    bytes: usize,
}

/// A request's share of the budget, given back when dropped.
#[derive(Debug)]
pub(crate) struct Reservation(#[allow(dead_code)] OwnedSemaphorePermit);

impl RequestBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        let units = bytes.div_ceil(UNIT).max(1);
        Self {
            permits: Arc::new(Semaphore::new(units)),
            units,
            bytes,
        }
    }

    /// Takes `len` bytes (all of the budget at most, so one request larger than it still
    /// proceeds alone), waiting while the budget is spent.
    pub(crate) async fn reserve(&self, len: usize) -> Reservation {
        let units = len.div_ceil(UNIT).clamp(1, self.units) as u32;
        match self.permits.clone().try_acquire_many_owned(units) {
            Ok(p) => Reservation(p),
            Err(_) => {
                crate::telemetry::request_budget_spent(self.bytes);
                Reservation(
                    self.permits
                        .clone()
                        .acquire_many_owned(units)
                        .await
                        .expect("the semaphore is never closed"),
                )
            }
        }
    }
}
