//! Metrics of the consumer runtime, through the `metrics` facade.
//!
//! Every metric carries the labels `group`, `topic` and `type` (the event type, or
//! `unknown` for records that are not CloudEvents). Names follow
//! `herald_sdk_<name>_total` for counters.

use std::time::Duration;

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

/// The labels of one handled event.
#[derive(Debug, Clone)]
pub(crate) struct Labels {
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) event_type: String,
}

impl Labels {
    fn pairs(&self) -> [(&'static str, String); 3] {
        [
            ("group", self.group.clone()),
            ("topic", self.topic.clone()),
            ("type", self.event_type.clone()),
        ]
    }

    pub(crate) fn count(&self, name: &'static str) {
        metrics::counter!(name, &self.pairs()).increment(1);
    }

    pub(crate) fn handler_latency(&self, took: Duration) {
        metrics::histogram!(HANDLER_SECONDS, &self.pairs()).record(took.as_secs_f64());
    }
}
