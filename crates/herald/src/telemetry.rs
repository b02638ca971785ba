//! Metrics of the consumer runtime, through the `metrics` facade.
//!
//! Every metric carries the labels `group`, `topic` and `type` (the event type, or
//! `unknown` for records that are not CloudEvents). Names follow
//! `herald_sdk_<name>_total` for counters.

use std::{sync::Arc, time::Duration};

/// Events whose handler succeeded.
pub const HANDLED: &str = "herald_sdk_handled_total";
/// Handler attempts that failed (each failed attempt counts once).
pub const FAILED: &str = "herald_sdk_failed_total";
/// Attempts scheduled again after a transient failure.
pub const RETRIED: &str = "herald_sdk_retried_total";
/// Events written to the dead-letter topic after failing.
pub const DEAD_LETTERED: &str = "herald_sdk_dead_lettered_total";
/// Events parked in the dead-letter topic behind an earlier failure of their key.
pub const PARKED: &str = "herald_sdk_parked_total";
/// Events skipped because the inbox had already seen their id.
pub const DUPLICATES: &str = "herald_sdk_duplicates_total";
/// Handler latency of successful and failed attempts, in seconds.
pub const HANDLER_SECONDS: &str = "herald_sdk_handler_duration_seconds";

/// The labels of one handled event, built once per event and shared by its metrics
/// (each use clones reference-counted strings, not the text).
#[derive(Debug, Clone)]
pub(crate) struct Labels([metrics::Label; 3]);

impl Labels {
    pub(crate) fn new(group: Arc<str>, topic: &str, event_type: &str) -> Self {
        Self([
            metrics::Label::new("group", group),
            metrics::Label::new("topic", Arc::<str>::from(topic)),
            metrics::Label::new("type", Arc::<str>::from(event_type)),
        ])
    }

    pub(crate) fn count(&self, name: &'static str) {
        metrics::counter!(name, self.0.iter()).increment(1);
    }

    pub(crate) fn handler_latency(&self, took: Duration) {
        metrics::histogram!(HANDLER_SECONDS, self.0.iter()).record(took.as_secs_f64());
    }
}
